//! `whisk`: one binary for every role of a whisk-rs deployment.
//!
//! `whisk standalone` runs the whole platform in one process on the embedded store;
//! `whisk admin` manages subjects, namespaces and limits in the same data directory;
//! `whisk controller` and `whisk invoker` are the roles of a cluster over PostgreSQL and NATS.

mod admin;
mod cluster;
mod config;
mod controller;
mod feeds;
mod invoker;
mod standalone;
mod wasm_check;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{ClusterFlags, ServerFlags};

#[derive(Debug, Parser)]
#[command(
    name = "whisk",
    version,
    about = "A serverless platform that speaks OpenWhisk's API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform in one process, with the embedded store.
    Standalone(StandaloneArgs),
    /// Manage subjects, namespaces and namespace limits (like OpenWhisk's wskadmin).
    Admin(admin::AdminArgs),
    /// Run a cluster controller (the API and a load balancer) over PostgreSQL and NATS.
    Controller(ControllerArgs),
    /// Run a cluster invoker (containers for actions) over PostgreSQL and NATS.
    Invoker(InvokerArgs),
}

/// Where the cluster's shared services are; every cluster role needs them.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// The shared store, `postgres://user:password@host:port/dbname`.
    #[arg(long, env = "WHISK_STORE")]
    store: Option<String>,
    /// The PostgreSQL schema of the store's tables (created if missing).
    #[arg(long, env = "WHISK_STORE_SCHEMA")]
    store_schema: Option<String>,
    /// Connect to PostgreSQL over TLS, trusting this PEM CA file.
    #[arg(long, env = "WHISK_STORE_CA")]
    store_ca: Option<PathBuf>,
    /// The bus, `nats://host:port` (comma-separated for several servers).
    #[arg(long, env = "WHISK_BUS")]
    bus: Option<String>,
    /// Prefix of the cluster's NATS subjects and streams [default: whisk].
    #[arg(long, env = "WHISK_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// A TOML configuration file ([cluster], [limits], [invoker], ...).
    #[arg(long, env = "WHISK_CONFIG")]
    config: Option<PathBuf>,
    /// Where this process keeps local files (runtime assets, generated certificates) [default: ~/.whisk].
    #[arg(long, env = "WHISK_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl ClusterArgs {
    fn flags(&self) -> ClusterFlags {
        ClusterFlags {
            store: self.store.clone(),
            store_schema: self.store_schema.clone(),
            store_ca: self.store_ca.clone(),
            bus: self.bus.clone(),
            name: self.cluster_name.clone(),
            ..ClusterFlags::default()
        }
    }
}

#[derive(Debug, clap::Args)]
struct ControllerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// This controller's number, unique in the cluster (its completions topic is `completed<N>`).
    #[arg(long, env = "WHISK_CONTROLLER_ID")]
    controller_id: Option<u32>,
    /// How many controllers share the invokers [default: 1].
    #[arg(long, env = "WHISK_CONTROLLERS")]
    controllers: Option<u32>,
    /// How long (ms) an invoker must be silent before the activations this controller sent it
    /// are recorded as lost [default: 15000].
    #[arg(long, env = "WHISK_LOST_GRACE_MS")]
    lost_grace_ms: Option<u64>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "WHISK_HOST")]
    host: Option<IpAddr>,
    /// Port to listen on [default: 3233].
    #[arg(long, env = "WHISK_PORT")]
    port: Option<u16>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "WHISK_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WHISK_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InvokerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// This invoker's number, unique in the cluster (it pulls the topic `invoker<N>`).
    #[arg(long, env = "WHISK_INVOKER_ID")]
    invoker_id: Option<u32>,
    /// Memory for action containers, in MB [default: 2048].
    #[arg(long, env = "WHISK_USER_MEMORY")]
    user_memory: Option<u64>,
    /// The controller address (host:port) actions reach the API through.
    #[arg(long, env = "WHISK_API")]
    api: Option<SocketAddr>,
    /// Serve Prometheus metrics at /metrics on this port (an invoker has no API port of its
    /// own); off without it.
    #[arg(long, env = "WHISK_METRICS_PORT")]
    metrics_port: Option<u16>,
    /// Address the metrics listener binds; all interfaces by default, so that a scraper
    /// elsewhere in the cluster reaches it.
    #[arg(long, env = "WHISK_METRICS_HOST", default_value = "0.0.0.0")]
    metrics_host: IpAddr,
}

#[derive(Debug, clap::Args)]
struct StandaloneArgs {
    /// A TOML configuration file (keys: host, port, data-dir, [limits]).
    #[arg(long, env = "WHISK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "WHISK_HOST")]
    host: Option<IpAddr>,
    /// Port to listen on [default: 3233].
    #[arg(long, env = "WHISK_PORT")]
    port: Option<u16>,
    /// Where the embedded store keeps its files [default: ~/.whisk].
    #[arg(long, env = "WHISK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "WHISK_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WHISK_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a development certificate generated at start (written to <data-dir>/tls/).
    #[arg(long, env = "WHISK_TLS_SELF_SIGNED")]
    tls_self_signed: bool,
}

fn main() -> anyhow::Result<()> {
    // `whisk spawner` is the single-threaded container spawner the sandbox starts; it must run
    // before anything else (no runtime, no threads).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "spawner")
    {
        whisk_sandbox::spawner::serve_stdin();
    }
    // Inside a container `whisk proxy ...` is the runtime proxy and nothing else.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "proxy") {
        whisk_runtime::proxy::main_from_args();
    }
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Standalone(args) => {
            let flags = ServerFlags {
                config: args.config,
                host: args.host,
                port: args.port,
                data_dir: args.data_dir,
                tls_cert: args.tls_cert,
                tls_key: args.tls_key,
                tls_self_signed: args.tls_self_signed,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            {
                let _context = runtime.enter();
                standalone::listen_for_shutdown();
            }
            runtime.block_on(standalone::run(flags))
        }
        Command::Controller(args) => {
            let flags = ServerFlags {
                config: args.cluster.config.clone(),
                host: args.host,
                port: args.port,
                data_dir: args.cluster.data_dir.clone(),
                tls_cert: args.tls_cert,
                tls_key: args.tls_key,
                tls_self_signed: false,
            };
            let cluster = ClusterFlags {
                controller_id: args.controller_id,
                controllers: args.controllers,
                lost_grace_ms: args.lost_grace_ms,
                ..args.cluster.flags()
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            {
                let _context = runtime.enter();
                standalone::listen_for_shutdown();
            }
            runtime.block_on(controller::run(flags, cluster))
        }
        Command::Invoker(args) => {
            let flags = ServerFlags {
                config: args.cluster.config.clone(),
                data_dir: args.cluster.data_dir.clone(),
                ..ServerFlags::default()
            };
            let cluster = ClusterFlags {
                invoker_id: args.invoker_id,
                user_memory_mb: args.user_memory,
                api: args.api,
                ..args.cluster.flags()
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let metrics = args
                .metrics_port
                .map(|port| SocketAddr::new(args.metrics_host, port));
            {
                let _context = runtime.enter();
                standalone::listen_for_shutdown();
            }
            runtime.block_on(invoker::run(flags, cluster, metrics))
        }
        Command::Admin(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(admin::run(args))
        }
    }
}

/// Logs go to stderr so that commands whose stdout is read by scripts (`whisk admin`) stay clean.
/// `WHISK_LOG_FORMAT=json` writes one JSON object a line for log collectors; the fields of the
/// enclosing spans go with every event, so a request's lines carry its transaction id (`tid`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHISK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("WHISK_LOG_FORMAT").as_deref() {
        Ok("json") => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        Ok("text") | Err(_) => builder.init(),
        Ok(other) => {
            builder.init();
            tracing::warn!(
                format = other,
                "WHISK_LOG_FORMAT is json or text; logging text"
            );
        }
    }
}
