//! The OpenWhisk runtime protocol as whisk-rs speaks it (REFERENCE §13): the client the invoker
//! uses for `POST /init` and `POST /run`, the mapping of its outcomes to activation statuses
//! (§8.2), how to start each runtime we support inside a container, and the proxies we ship:
//! Node.js, Python and Java (a jar compiled by `build.rs` when a JDK is there) proxies as
//! embedded assets, and the native ActionLoop/dockerskeleton proxy
//! in Rust (`whisk proxy actionloop|skeleton`).

pub mod assets;
pub mod client;
pub mod launch;
pub mod mapping;
pub mod payload;
pub mod proxy;

pub use assets::{
    JAVA_PROXY_JAR, JAVA_PROXY_PATH, NODE_PROXY, NODE_PROXY_PATH, PYTHON_PROXY, PYTHON_PROXY_PATH,
    write_assets,
};
pub use client::{CallError, CallResult, DEFAULT_MAX_RESPONSE_BYTES, RuntimeClient, RuntimeReply};
pub use launch::{
    HostTools, LaunchLayout, LaunchSpec, Tool, java_heap_mb, launch_spec, launch_spec_with_memory,
    supported_kinds, unavailable,
};
pub use mapping::{Verdict, init_verdict, run_verdict};
pub use payload::{ActivationContext, InitCode, env_value, init_payload, run_payload};

/// The line every proxy we ship writes on stdout and on stderr after each activation (§13.4).
pub const LOG_SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// The port a runtime proxy listens on inside its container (§13.1).
pub const PROXY_PORT: u16 = 8080;

/// Environment variable that moves a proxy we ship off port 8080 (tests run them on the host).
pub const PROXY_PORT_ENV: &str = "__OW_PROXY_PORT";
