//! Issue 3's benchmark: what isolation costs, per runtime. For each runtime (Node.js, Python, a
//! native ActionLoop binary and a dockerskeleton-style native binary, both compiled with gcc
//! here), `--runs` times (default 200), interleaved so both sides see the same machine noise:
//!
//! - **isolated**: a real container from `whisk-sandbox` (namespaces, cgroup, seccomp, read-only
//!   root, a network namespace from the prepared pool), launched exactly as the invoker launches
//!   it (`whisk_runtime::launch_spec` + the same binds and environment);
//! - **plain**: the same proxy started as an ordinary host process on 127.0.0.1.
//!
//! Each sample times create-to-ready (until the proxy accepts a TCP connection), `/init`, and the
//! first `/run`; then one kept container (and one kept process) serves `--runs` warm `/run`s.
//! Calls go through `RuntimeClient`, which opens one connection per call like the invoker.
//!
//! Run as root: `cargo run --release -p whisk-bench --bin containers -- --runs 200`. The binary
//! also serves as the sandbox's spawner (`containers spawner`) and as the native proxy inside the
//! containers (`containers proxy actionloop|skeleton`), so it needs nothing else built.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};
use whisk_bench::proxy::{base_env, call, drain, run_payload, start_plain, wait_listening};
use whisk_bench::{Summary, flag, load_line, ms, ratio, running_as_root};
use whisk_runtime::{HostTools, LaunchLayout, PROXY_PORT, RuntimeClient, launch_spec};
use whisk_sandbox::net::{Ipv4Subnet, NetConfig, NetError, NetMode, NetworkPool};
use whisk_sandbox::{Bind, Sandbox, SandboxConfig};

/// Where the code goes inside a container (its private `/tmp`), as the invoker puts it.
const ACTION_DIR: &str = "/tmp/action";

/// A native ActionLoop program: one JSON line in on stdin, one result line out on fd 3.
const ACTIONLOOP_C: &str = r#"#include <stdio.h>
int main(void) { static char line[1 << 20]; FILE *out = fdopen(3, "w");
  while (fgets(line, sizeof line, stdin)) { fputs("{\"ok\":true}\n", out); fflush(out); }
  return 0; }"#;

/// A dockerskeleton program: run once per activation, the last stdout line is the result.
const SKELETON_C: &str = r#"#include <stdio.h>
int main(void) { puts("{\"ok\":true}"); return 0; }"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Before anything else (no threads may exist yet in the spawner).
    match args.get(1).map(String::as_str) {
        Some("spawner") => whisk_sandbox::spawner::serve_stdin(),
        Some("proxy") => whisk_runtime::proxy::main_from_args(),
        _ => {}
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(&args)));
    if let Err(error) = outcome {
        eprintln!("containers: {error:#}");
        std::process::exit(1);
    }
}

/// One runtime under test: its kind and the `/init` value that makes an identity-like action.
struct Runtime {
    label: &'static str,
    kind: &'static str,
    init: Value,
}

/// What one create-to-first-run sample measured.
struct Sample {
    ready: Duration,
    init: Duration,
    first_run: Duration,
}

#[derive(Default)]
struct Series {
    ready: Vec<Duration>,
    init: Vec<Duration>,
    first_run: Vec<Duration>,
    warm_run: Vec<Duration>,
}

impl Series {
    fn push(&mut self, sample: Sample) {
        self.ready.push(sample.ready);
        self.init.push(sample.init);
        self.first_run.push(sample.first_run);
    }
}

/// The sandbox side: one sandbox (its own spawner and parent cgroup) and a network pool.
struct Isolated {
    sandbox: Arc<Sandbox>,
    networks: NetworkPool,
    assets: PathBuf,
    me: PathBuf,
    layout: LaunchLayout,
    next: u64,
    /// Holds this run's claim on its subnet (an abstract socket, gone with the process).
    _subnet_lock: std::os::unix::net::UnixListener,
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let runs: usize = flag(args, "--runs", 200)?;
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !running_as_root() {
        bail!("containers need root (cgroups, namespaces, mounts)");
    }
    let me = std::env::current_exe().context("cannot find this program")?;
    let work = tempfile::tempdir().context("cannot make a work directory")?;
    let assets = work.path().join("runtime");
    std::fs::create_dir_all(&assets)?;
    whisk_runtime::write_assets(&assets).context("cannot write the runtime assets")?;
    // Containers run as an unprivileged mapped user: everything they read must be readable.
    for dir in [
        work.path(),
        &assets,
        &assets.join("nodejs"),
        &assets.join("python"),
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let actionloop = gcc(work.path(), "actionloop", ACTIONLOOP_C)?;
    let skeleton = gcc(work.path(), "skeleton", SKELETON_C)?;
    let runtimes = [
        Runtime {
            label: "nodejs:20",
            kind: "nodejs:20",
            init: json!({"main": "main", "code": "function main(p) { return p; }"}),
        },
        Runtime {
            label: "python:3.11",
            kind: "python:3.11",
            init: json!({"main": "main", "code": "def main(a):\n    return a\n"}),
        },
        Runtime {
            label: "go:1.20 (ActionLoop, C exec)",
            kind: "go:1.20",
            init: json!({"main": "main", "code": base64(&actionloop), "binary": true}),
        },
        Runtime {
            label: "blackbox (skeleton, C exec)",
            kind: "blackbox",
            init: json!({"main": "main", "code": base64(&skeleton), "binary": true}),
        },
    ];

    let instance = format!("bench-c{}", std::process::id());
    let sandbox = Arc::new(
        Sandbox::start(SandboxConfig {
            instance: instance.clone(),
            spawner_program: me.clone(),
            spawner_args: vec!["spawner".into()],
            user_namespaces: true,
        })
        .await
        .context("cannot start the sandbox")?,
    );
    let (subnet_lock, networks) = network_pool(&instance).await?;
    let mut isolated = Isolated {
        sandbox: sandbox.clone(),
        networks,
        assets: assets.clone(),
        me: me.clone(),
        layout: LaunchLayout::standard(HostTools::detect()),
        next: 0,
        _subnet_lock: subnet_lock,
    };
    let host_layout = LaunchLayout {
        assets_dir: assets.clone(),
        whisk_binary: me.clone(),
        tools: HostTools::detect(),
    };

    let load_before = load_line();
    let mut table = Vec::new();
    let mut failure = None;
    for runtime in &runtimes {
        eprintln!("{}: {runs} runs…", runtime.label);
        match measure(runtime, runs, &mut isolated, &host_layout, work.path()).await {
            Ok(rows) => table.extend(rows),
            Err(error) => {
                failure = Some(error.context(runtime.label));
                break;
            }
        }
    }
    let shut_sandbox = sandbox.shutdown().await;
    let shut_networks = isolated.networks.shutdown().await;
    if let Some(error) = failure {
        return Err(error);
    }
    shut_sandbox.context("sandbox shutdown")?;
    shut_networks.context("network pool shutdown")?;

    println!(
        "Isolation cost per runtime: {runs} runs per cell, isolated and plain interleaved, times in ms."
    );
    println!(
        "User namespaces: {}. Before: {load_before}. After: {}.",
        if sandbox.user_namespaces() {
            "yes"
        } else {
            "no (fallback)"
        },
        load_line()
    );
    println!();
    println!(
        "| runtime | step | isolated p50 | isolated p99 | plain p50 | plain p99 | ratio p50 | ratio p99 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for row in table {
        println!("{row}");
    }
    Ok(())
}

/// Both sides of one runtime, interleaved sample by sample; returns its table rows.
async fn measure(
    runtime: &Runtime,
    runs: usize,
    isolated: &mut Isolated,
    host_layout: &LaunchLayout,
    work: &Path,
) -> anyhow::Result<Vec<String>> {
    let init = json!({ "value": runtime.init });
    let payload = run_payload();
    let mut boxed = Series::default();
    let mut plain = Series::default();
    for _ in 0..runs {
        boxed.push(isolated.sample(runtime.kind, &init, &payload).await?);
        plain.push(plain_sample(runtime.kind, host_layout, work, &init, &payload).await?);
    }
    // Warm: one kept container and one kept process, alternating calls.
    let container = isolated.start(runtime.kind).await?;
    let process = start_plain(runtime.kind, host_layout, work).await;
    let warm = async {
        let process = process?;
        let boxed_client = RuntimeClient::new(container.address);
        let plain_client = RuntimeClient::new(process.address);
        call(&boxed_client, "/init", &init).await?;
        call(&plain_client, "/init", &init).await?;
        for _ in 0..runs {
            boxed
                .warm_run
                .push(call(&boxed_client, "/run", &payload).await?);
            plain
                .warm_run
                .push(call(&plain_client, "/run", &payload).await?);
        }
        anyhow::Ok(())
    }
    .await;
    isolated.stop(container).await?;
    warm?;
    let steps: [(&str, &Vec<Duration>, &Vec<Duration>); 4] = [
        ("create→ready", &boxed.ready, &plain.ready),
        ("/init", &boxed.init, &plain.init),
        ("first /run", &boxed.first_run, &plain.first_run),
        ("warm /run", &boxed.warm_run, &plain.warm_run),
    ];
    let mut rows = Vec::new();
    for (step, a, b) in steps {
        let (Some(a), Some(b)) = (Summary::of(a), Summary::of(b)) else {
            bail!("no samples for {step}");
        };
        rows.push(format!(
            "| {} | {step} | {} | {} | {} | {} | {} | {} |",
            runtime.label,
            ms(a.p50),
            ms(a.p99),
            ms(b.p50),
            ms(b.p99),
            ratio(a.p50, b.p50),
            ratio(a.p99, b.p99),
        ));
    }
    Ok(rows)
}

/// A container started for a sample, with what must be given back.
struct Started {
    container: whisk_sandbox::Container,
    network: whisk_sandbox::net::PreparedNetwork,
    address: SocketAddr,
}

impl Isolated {
    /// Takes a prepared network, creates the container and waits until its proxy listens.
    async fn start(&mut self, kind: &str) -> anyhow::Result<Started> {
        let network = self.networks.take().await.context("no network")?;
        let spec = match self.spec(kind, &network.netns_path) {
            Ok(spec) => spec,
            Err(error) => {
                self.networks.release(network).await?;
                return Err(error);
            }
        };
        let mut container = match self.sandbox.create(spec).await {
            Ok(container) => container,
            Err(error) => {
                self.networks.release(network).await?;
                return Err(anyhow!(error).context("container create"));
            }
        };
        drop(container.take_stdin());
        if let Some(stdout) = container.take_stdout() {
            tokio::spawn(drain(stdout));
        }
        if let Some(stderr) = container.take_stderr() {
            tokio::spawn(drain(stderr));
        }
        let address = SocketAddr::new(network.address.into(), PROXY_PORT);
        let started = Started {
            container,
            network,
            address,
        };
        if let Err(error) = wait_listening(address).await {
            self.stop(started).await?;
            return Err(error);
        }
        Ok(started)
    }

    async fn stop(&mut self, started: Started) -> anyhow::Result<()> {
        let destroyed = started.container.destroy().await;
        self.networks.release(started.network).await?;
        destroyed.context("container destroy")
    }

    /// Create-to-ready, `/init` and the first `/run` of one new container.
    async fn sample(
        &mut self,
        kind: &str,
        init: &Value,
        payload: &Value,
    ) -> anyhow::Result<Sample> {
        let begun = Instant::now();
        let started = self.start(kind).await?;
        let ready = begun.elapsed();
        let client = RuntimeClient::new(started.address);
        let calls = async {
            let init = call(&client, "/init", init).await?;
            let first_run = call(&client, "/run", payload).await?;
            anyhow::Ok((init, first_run))
        }
        .await;
        self.stop(started).await?;
        let (init, first_run) = calls?;
        Ok(Sample {
            ready,
            init,
            first_run,
        })
    }

    /// The container the invoker's `SandboxFactory` would make for `kind`: same launch spec,
    /// environment, binds and limits (256 MB, 1024 pids, a 256 MB `/tmp`).
    fn spec(&mut self, kind: &str, netns: &Path) -> anyhow::Result<whisk_sandbox::ContainerSpec> {
        let launch = launch_spec(kind, &self.layout)
            .ok_or_else(|| anyhow!("kind {kind} cannot run here (interpreter missing?)"))?;
        self.next += 1;
        let mut env = base_env(ACTION_DIR);
        env.extend(launch.env);
        let mut binds = vec![
            Bind::read_only(self.assets.clone(), self.layout.assets_dir.clone()),
            Bind::read_only(self.me.clone(), self.layout.whisk_binary.clone()),
        ];
        binds.extend(launch.needs.iter().map(|path| Bind::read_only(path, path)));
        // Built through its serde form: the sandbox keeps growing optional fields (with serde
        // defaults), and a benchmark should not break on each one.
        let spec = json!({
            "id": format!("bench-{}", self.next),
            "hostname": "action",
            "argv": launch.argv,
            "env": env,
            "cwd": "/",
            "binds": binds,
            "tmp_size_mb": 256,
            "memory_mb": 256,
            "pids_max": 1024,
            "netns": netns,
        });
        serde_json::from_value(spec).context("container spec")
    }
}

async fn plain_sample(
    kind: &str,
    layout: &LaunchLayout,
    work: &Path,
    init: &Value,
    payload: &Value,
) -> anyhow::Result<Sample> {
    let begun = Instant::now();
    let process = start_plain(kind, layout, work).await?;
    let ready = begun.elapsed();
    let client = RuntimeClient::new(process.address);
    let init = call(&client, "/init", init).await?;
    let first_run = call(&client, "/run", payload).await?;
    Ok(Sample {
        ready,
        init,
        first_run,
    })
}

/// A network pool of its own on a free /24 of 10.253.0.0/16, claimed with an abstract socket
/// named after it so two benchmark runs never share one.
async fn network_pool(
    instance: &str,
) -> anyhow::Result<(std::os::unix::net::UnixListener, NetworkPool)> {
    use std::os::linux::net::SocketAddrExt;
    for index in 0..=255u8 {
        let name = format!("whisk-bench-net-{index}");
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let Ok(lock) = std::os::unix::net::UnixListener::bind_addr(&address) else {
            continue;
        };
        let config = NetConfig {
            subnet: Ipv4Subnet::new(Ipv4Addr::new(10, 253, index, 0), 24)?,
            mode: NetMode::None,
            api_relay: None,
            pool_size: 4,
            ..NetConfig::new(instance)
        };
        match NetworkPool::new(config).await {
            Ok(pool) => return Ok((lock, pool)),
            Err(NetError::SubnetInUse { .. }) => continue,
            Err(error) => return Err(anyhow!(error).context("network pool")),
        }
    }
    bail!("every /24 of 10.253.0.0/16 is taken")
}

/// Compiles a C program with the host's gcc and returns the binary.
fn gcc(dir: &Path, name: &str, source: &str) -> anyhow::Result<Vec<u8>> {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source)?;
    let status = std::process::Command::new("gcc")
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .stdin(Stdio::null())
        .status()
        .context("cannot run gcc")?;
    if !status.success() {
        bail!("gcc failed for {name}: {status}");
    }
    Ok(std::fs::read(bin)?)
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
