//! Runtime proxies started as plain host processes (the "no isolation" side of every
//! comparison) and the timed `/init` and `/run` calls both benchmarks make.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use whisk_runtime::{ActivationContext, LaunchLayout, RuntimeClient, launch_spec};

/// How long one call or one start may take before a benchmark gives up on it.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Pause between connection attempts while a proxy starts; small next to what is measured.
const POLL: Duration = Duration::from_micros(200);

/// The environment every proxy starts with, as the invoker gives it.
pub fn base_env(action_dir: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), "/tmp".into()),
        ("LANG".into(), "C.UTF-8".into()),
        (
            whisk_runtime::proxy::ACTION_DIR_ENV.into(),
            action_dir.into(),
        ),
    ]
}

/// A proxy running as a plain host process; killed when dropped.
#[derive(Debug)]
pub struct Plain {
    _child: tokio::process::Child,
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

pub async fn start_plain(kind: &str, layout: &LaunchLayout, work: &Path) -> anyhow::Result<Plain> {
    let launch =
        launch_spec(kind, layout).ok_or_else(|| anyhow!("kind {kind} cannot run on the host"))?;
    let dir = tempfile::tempdir_in(work)?;
    let action_dir = dir.path().join("action");
    // A free port, read back from the kernel; the proxy binds it again at once.
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let (program, rest) = launch
        .argv
        .split_first()
        .ok_or_else(|| anyhow!("empty launch command"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(rest)
        .env_clear()
        .envs(base_env(&action_dir.to_string_lossy()))
        .envs(launch.env)
        .env(whisk_runtime::proxy::PROXY_HOST_ENV, "127.0.0.1")
        .env(whisk_runtime::PROXY_PORT_ENV, port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(drain(stdout));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(drain(stderr));
    }
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_listening(address).await?;
    Ok(Plain {
        _child: child,
        address,
        _dir: dir,
    })
}

/// Times one call and insists on a 200: a failing runtime must not pass for a fast one.
pub async fn call(client: &RuntimeClient, path: &str, body: &Value) -> anyhow::Result<Duration> {
    let begun = Instant::now();
    let reply = if path == "/init" {
        client.init(body, LIMIT).await
    } else {
        client.run(body, LIMIT).await
    }
    .map_err(|error| anyhow!("{path} to {}: {error}", client.addr()))?;
    let elapsed = begun.elapsed();
    if reply.status != 200 {
        bail!("{path} answered {}: {}", reply.status, reply.body);
    }
    Ok(elapsed)
}

/// Waits until something accepts TCP connections at `address` (refusals are retried).
pub async fn wait_listening(address: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + LIMIT;
    loop {
        match TcpStream::connect(address).await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() > deadline => {
                bail!("nothing listens at {address} after {LIMIT:?}: {error}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Reads a proxy's output away so it never blocks on a full pipe.
pub async fn drain(mut stream: impl tokio::io::AsyncRead + Unpin) {
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            break;
        }
    }
}

/// The `/run` body the invoker sends for a small parameter object.
pub fn run_payload() -> Value {
    whisk_runtime::run_payload(
        json!({"hello": "world"}),
        &ActivationContext {
            namespace: "guest".into(),
            action_name: "/guest/bench".into(),
            action_version: "0.0.1".into(),
            activation_id: "0123456789abcdef0123456789abcdef".into(),
            transaction_id: "bench".into(),
            deadline_ms: u64::MAX / 2,
            api_key: None,
        },
    )
}
