//! `whisk`: one binary for every role of a whisk-rs deployment.
//!
//! `whisk standalone` runs the whole platform in one process on the embedded store;
//! `whisk admin` manages subjects, namespaces and limits in the same data directory.

mod admin;
mod config;
mod standalone;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ServerFlags;

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
            runtime.block_on(standalone::run(flags))
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
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHISK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
