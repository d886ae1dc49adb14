//! Library half of the `wsk` command-line client: configuration (the `.wskprops` file and its
//! environment/flag overrides), entity-name resolution and a small HTTP client for the OpenWhisk
//! REST API. The client speaks only HTTP so the same binary drives whisk-rs and Apache OpenWhisk.

pub mod client;
pub mod config;
pub mod input;
pub mod manifest;
pub mod names;
