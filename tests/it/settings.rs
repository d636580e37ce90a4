//! Org stream settings end to end (issue 4).
