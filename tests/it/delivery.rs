//! Delivery engine: isolation, limits, retries, dead letters and replay (issue 3).
