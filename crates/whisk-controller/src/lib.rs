//! The OpenWhisk-compatible REST API.
