//! Issue 8's benchmark: the same blocking load through `whisk standalone` and through a cluster
//! (one `whisk controller` over PostgreSQL and NATS) with one and with two `whisk invoker`s, in
//! one run, so the three rows share the machine's conditions. It prints one markdown table:
//! activations per second and the p50/p99 of a blocking invoke at a fixed number of keep-alive
//! clients, each client cycling over a set of distinct no-op Node.js actions (one action would
//! mostly stay on its home invoker and never show the second one).
//!
//! Needs root (containers) and the two services: `WHISK_TEST_POSTGRES_URL` and
//! `WHISK_TEST_NATS_URL` as `.ci/postgres start` and `.ci/nats start` print them.
//! `cargo build --release -p whisk && cargo run --release -p whisk-bench --bin cluster`; flags:
//! `--whisk PATH` (default `<target>/release/whisk`), `--clients N` (16), `--actions N` (8),
//! `--seconds S` per row after as long a warm-up (10).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use whisk_bench::{Summary, flag, load_line, ms, running_as_root};

/// The guest subject every platform creates on its first start (OpenWhisk's well-known key).
const GUEST: (&str, &str) = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
    "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
);

const NOOP_JS: &str = "function main(params) { return params; }";

/// Limits high enough that the throttles never refuse the load (they are not what is measured).
const LIMITS: &str =
    "[limits]\ninvocations-per-minute = 10000000\nconcurrent-invocations = 100000\n";

/// How long a process may take to start and an invoker to be heard of.
const START_DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run(&args)) {
        eprintln!("cluster benchmark failed: {error:#}");
        std::process::exit(1);
    }
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    if !running_as_root() {
        bail!("run as root: the invokers create containers");
    }
    let postgres = std::env::var("WHISK_TEST_POSTGRES_URL")
        .context("WHISK_TEST_POSTGRES_URL is not set (.ci/postgres start DIR prints it)")?;
    let nats = std::env::var("WHISK_TEST_NATS_URL")
        .context("WHISK_TEST_NATS_URL is not set (.ci/nats start DIR prints it)")?;
    let whisk = flag(args, "--whisk", default_whisk())?;
    let clients: usize = flag(args, "--clients", 16)?;
    let actions: usize = flag(args, "--actions", 8)?;
    let seconds: u64 = flag(args, "--seconds", 10)?;
    let load = Load {
        clients,
        actions,
        duration: Duration::from_secs(seconds),
    };

    let mut rows = Vec::new();
    {
        let mut setup = Setup::new(&whisk)?;
        let url = setup.spawn_standalone()?;
        // Its invoker is in process: no invoker to be heard of.
        let row = measure(&url, &load, &setup, 0).await?;
        rows.push(("standalone (in-process invoker)".to_owned(), row));
    }
    for invokers in [1u32, 2] {
        let mut setup = Setup::new(&whisk)?;
        let url = setup.spawn_cluster(&postgres, &nats, invokers)?;
        let label = format!("cluster: 1 controller, {invokers} invoker(s)");
        rows.push((label, measure(&url, &load, &setup, invokers).await?));
    }

    println!(
        "### Cluster throughput, Node.js no-op, blocking invokes ({clients} keep-alive clients over \
         {actions} actions, {seconds} s per row after as long a warm-up; {})\n",
        load_line()
    );
    println!("| setup | activations/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|");
    for (label, row) in rows {
        println!(
            "| {label} | {:.0} | {} | {} | {} |",
            row.per_second,
            row.latency.map_or("–".to_owned(), |s| ms(s.p50)),
            row.latency.map_or("–".to_owned(), |s| ms(s.p99)),
            row.errors
        );
    }
    Ok(())
}

fn default_whisk() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("release").join("whisk")
}

struct Load {
    clients: usize,
    actions: usize,
    duration: Duration,
}

struct Row {
    per_second: f64,
    latency: Option<Summary>,
    errors: u64,
}

/// The processes of one row, stopped (SIGTERM, then SIGKILL) when dropped.
struct Setup {
    whisk: PathBuf,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    /// The log of the process serving the API (the controller's names the invokers it hears).
    api_log: Option<PathBuf>,
}

impl Setup {
    fn new(whisk: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            whisk: whisk.to_owned(),
            dir: tempfile::tempdir()?,
            children: Vec::new(),
            api_log: None,
        })
    }

    /// An invoker section with host resources named for this process, on a /26 of its own.
    fn invoker_section(&self, index: u32) -> String {
        let pid = std::process::id();
        let octet = (pid % 200) as u8;
        let second = 170 + index;
        format!(
            "[invoker]\ninstance = \"bench-{pid}-{index}\"\nsubnet = \"10.{second}.{octet}.0/26\"\n\
             user-memory-mb = 8192\n"
        )
    }

    fn write(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Starts one process and returns the URL on its first line (empty for an invoker).
    fn spawn(&mut self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut child = Command::new(&self.whisk)
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.path().join(name))
            .env("WHISK_LOG", "info")
            .env_remove("WHISK_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", self.whisk.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        self.children.push(child);
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        std::thread::spawn(move || for _ in lines {});
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_default()
            .to_owned();
        if url.is_empty() && !name.starts_with("invoker") {
            bail!(
                "{name} printed {first:?}; log:\n{}",
                std::fs::read_to_string(&log)?
            );
        }
        if !url.is_empty() {
            self.api_log = Some(log);
        }
        Ok(url)
    }

    fn spawn_standalone(&mut self) -> anyhow::Result<String> {
        let config = self.write(
            "standalone.toml",
            &format!("{LIMITS}{}", self.invoker_section(0)),
        )?;
        let config = config.to_string_lossy().into_owned();
        self.spawn(
            "standalone",
            &["standalone", "--port", "0", "--config", &config],
        )
    }

    fn spawn_cluster(
        &mut self,
        postgres: &str,
        nats: &str,
        invokers: u32,
    ) -> anyhow::Result<String> {
        let pid = std::process::id();
        let schema = format!("bench_{pid}_{invokers}");
        let name = format!("bench-{pid}-{invokers}");
        let shared = [
            "--store",
            postgres,
            "--store-schema",
            &schema,
            "--bus",
            nats,
            "--cluster-name",
            &name,
        ];
        let config = self
            .write("controller.toml", LIMITS)?
            .to_string_lossy()
            .into_owned();
        let mut args = vec!["controller"];
        args.extend(shared);
        args.extend([
            "--controller-id",
            "0",
            "--controllers",
            "1",
            "--port",
            "0",
            "--config",
            &config,
        ]);
        let url = self.spawn("controller", &args)?;
        for index in 0..invokers {
            let config = self
                .write(
                    &format!("invoker{index}.toml"),
                    &self.invoker_section(index),
                )?
                .to_string_lossy()
                .into_owned();
            let id = index.to_string();
            let mut args = vec!["invoker"];
            args.extend(shared);
            args.extend(["--invoker-id", &id, "--config", &config]);
            self.spawn(&format!("invoker{index}"), &args)?;
        }
        Ok(url)
    }

    /// Waits until the API process has logged `invokers` invokers joining.
    async fn wait_for_invokers(&self, invokers: u32) -> anyhow::Result<()> {
        let Some(log) = &self.api_log else {
            return Ok(());
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let text = without_colours(&std::fs::read_to_string(log)?);
            let joined = (0..invokers)
                .filter(|id| {
                    text.lines().any(|line| {
                        line.contains("invoker joined") && line.contains(&format!("invoker={id} "))
                    })
                })
                .count();
            if joined == invokers as usize {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {joined} of {invokers} invokers joined; log:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `text` without the terminal colour sequences (`ESC [ … m`) the logs carry.
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for skipped in chars.by_ref() {
                if skipped == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Invokers first (they remove their containers), then the API process.
        for child in self.children.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates the actions, warms them up until each answers, then runs the load twice: once to
/// warm (containers, connections), once measured.
async fn measure(url: &str, load: &Load, setup: &Setup, invokers: u32) -> anyhow::Result<Row> {
    let client = reqwest::Client::new();
    let api = format!("{url}/api/v1/namespaces/_/actions");
    let names: Vec<String> = (0..load.actions)
        .map(|index| format!("noop-{index}"))
        .collect();
    for name in &names {
        let response = client
            .put(format!("{api}/{name}?overwrite=true"))
            .basic_auth(GUEST.0, Some(GUEST.1))
            .json(
                &json!({"exec": {"kind": "nodejs:20", "code": NOOP_JS}, "limits": {"memory": 128}}),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("PUT {name}: {}", response.text().await?);
        }
    }
    setup.wait_for_invokers(invokers).await?;
    let deadline = Instant::now() + START_DEADLINE;
    for name in &names {
        while !invoke(&client, &api, name).await? {
            if Instant::now() > deadline {
                bail!("{name} never ran");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drive(&client, &api, &names, load).await?;
    drive(&client, &api, &names, load).await
}

/// One blocking invoke asking for the result; whether it answered 200.
async fn invoke(client: &reqwest::Client, api: &str, name: &str) -> anyhow::Result<bool> {
    let response = client
        .post(format!("{api}/{name}?blocking=true&result=true"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .json(&json!({"hello": "world"}))
        .send()
        .await?;
    let ok = response.status() == reqwest::StatusCode::OK;
    response.bytes().await?;
    Ok(ok)
}

/// `load.clients` loops of blocking invokes over the actions for `load.duration`.
async fn drive(
    client: &reqwest::Client,
    api: &str,
    names: &[String],
    load: &Load,
) -> anyhow::Result<Row> {
    let names = Arc::new(names.to_vec());
    let begun = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..load.clients {
        let (client, api, names) = (client.clone(), api.to_owned(), Arc::clone(&names));
        let duration = load.duration;
        tasks.push(tokio::spawn(async move {
            let (mut samples, mut errors, mut next) = (Vec::new(), 0u64, index);
            while begun.elapsed() < duration {
                let started = Instant::now();
                match invoke(&client, &api, &names[next % names.len()]).await {
                    Ok(true) => samples.push(started.elapsed()),
                    _ => errors += 1,
                }
                next += 1;
            }
            (samples, errors)
        }));
    }
    let (mut samples, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (mine, failed) = task.await?;
        samples.extend(mine);
        errors += failed;
    }
    let elapsed = begun.elapsed().as_secs_f64();
    Ok(Row {
        per_second: samples.len() as f64 / elapsed,
        latency: Summary::of(&samples),
        errors,
    })
}
