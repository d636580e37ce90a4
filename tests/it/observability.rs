//! Observability: real Prometheus against the running pipeline (issue 5).
