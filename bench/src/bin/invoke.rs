//! Issue 4's benchmark: the whole platform, through its REST API, against a `whisk standalone`
//! (release build) that this program starts itself on 127.0.0.1, port 0, with a temporary data
//! directory, as root. It prints four tables:
//!
//! 1. warm blocking invoke latency (`POST …/actions/noop?blocking=true&result=true`) next to the
//!    same Node.js proxy started as a plain process and its `/run` called directly, interleaved;
//! 2. cold start — a new action's first blocking invoke — per runtime, with the manifest's stem
//!    cells and with `[invoker] stem-cells = false` (a second platform);
//! 3. throughput at 1, 8 and 32 concurrent keep-alive clients, for one no-op action and for 100
//!    distinct ones;
//! 4. resident memory of the platform and of each warm container;
//! 5. per runtime (`nodejs:20`, `python:3.11`, `java:8`, `wasm:wasi`), warm blocking invoke latency
//!    (the runtimes interleaved sample by sample, so they share the machine's noise) — the cold
//!    starts of `java:8` and `wasm:wasi` join table 2. The Java action is a jar compiled at bench
//!    time with `javac` and `jar` against the host's Gson; the WebAssembly one is a WASI echo
//!    module assembled from WAT text;
//! 6. an OCI image as a blackbox action (`--docker`), next to Node.js: warm latency interleaved
//!    with a Node.js no-op, and cold starts with the image's root filesystem already unpacked
//!    and from a freshly imported image (unpacked on first use). The image is
//!    `whisk_image::testing`'s skeleton image, built at bench time from the `whisk` binary
//!    under test and imported with `whisk admin image import` into the platform's data
//!    directory, as the tests do.
//! 7. WebAssembly cold starts in detail, each action with a module of its own (the echo module
//!    with a distinct exported constant), so that every sample's module is new to the engine and
//!    its compile happens where the platform puts it (when the action is written): the `PUT`,
//!    the first invoke 1.5 s later (table 2's protocol) next to a second invoke of the same
//!    action after the same pause (a warm control, which shows what the pause alone costs) and
//!    a `GET /api/v1` after the same pause (the pause's cost on a path with no invoke at all),
//!    and the first invoke right after the `PUT` next to a warm invoke right after it.
//!
//! `cargo build --release -p whisk && cargo run --release -p whisk-bench --bin invoke`; flags:
//! `--whisk PATH` (default: `<target>/release/whisk`), `--runs N` warm samples (200), `--cold N`
//! cold samples per runtime and mode (20), `--seconds S` per throughput cell (5), `--runtimes`
//! to measure only the per-runtime tables (cold starts and warm latency), which takes minutes,
//! `--wasm` to measure only the WebAssembly rows (warm latency, table 2's row and table 7).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use whisk_bench::proxy::{call, start_plain};
use whisk_bench::{
    Summary, flag, load_line, mib, ms, pss_bytes, ratio, rss_bytes, running_as_root,
};
use whisk_runtime::{HostTools, LaunchLayout, RuntimeClient};

/// The guest subject `whisk standalone` creates on its first start (OpenWhisk's well-known key).
const GUEST: (&str, &str) = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
    "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
);

/// The no-op both the platform and the bare proxy run.
const NOOP_JS: &str = "function main(params) { return params; }";
const NOOP_PY: &str = "def main(args):\n    return args\n";
/// The Java no-op, compiled into a jar at bench time (`main` = the class).
const NOOP_JAVA: &str = "import com.google.gson.JsonObject;\n\
    public class Noop { public static JsonObject main(JsonObject args) { return args; } }\n";

/// A WASI command that copies stdin (the parameters) to stdout (the result): the no-op of a
/// `wasm:wasi` action.
const ECHO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (local $len i32)
    (block $done
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (i32.const 130048) (local.get $len)))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
        (br $more)))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Memory of the actions of the throughput runs (OpenWhisk's minimum), so that 100 distinct
/// actions with several containers each fit in the invoker's user memory below.
const THROUGHPUT_ACTION_MB: u64 = 128;
/// `[invoker] user-memory-mb` of both platforms: large, so that memory never limits how many
/// containers the 100-action run keeps (256 of 128 MB; the default, 2048, would hold 16).
const USER_MEMORY_MB: u64 = 32768;

/// Concurrent clients of the throughput runs.
const CLIENTS: [usize; 3] = [1, 8, 32];
/// Distinct actions of the second throughput run.
const DISTINCT: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(&args)));
    if let Err(error) = outcome {
        eprintln!("invoke: {error:#}");
        std::process::exit(1);
    }
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let whisk: PathBuf = flag(args, "--whisk", default_whisk())?;
    let runs: usize = flag(args, "--runs", 200)?;
    let cold: usize = flag(args, "--cold", 20)?;
    let seconds: u64 = flag(args, "--seconds", 5)?;
    let runtimes_only = args.iter().any(|arg| arg == "--runtimes");
    let wasm_only = args.iter().any(|arg| arg == "--wasm");
    if runs == 0 || cold == 0 || seconds == 0 {
        bail!("--runs, --cold and --seconds must be at least 1");
    }
    if !running_as_root() {
        bail!("the platform's invoker needs root (containers)");
    }
    if !whisk.is_file() {
        bail!(
            "no whisk binary at {} (build it: cargo build --release -p whisk)",
            whisk.display()
        );
    }
    let tag = std::process::id();
    if wasm_only {
        return wasm_rows(&whisk, tag, runs, cold).await;
    }
    let build = tempfile::tempdir()?;
    let java = source("java:8", &base64_of(&java_jar(build.path())?), Some("Noop"));
    let wasm = source("wasm:wasi", &base64_of(&echo_module(None)?), None);
    let node = source("nodejs:20", NOOP_JS, None);
    let python = source("python:3.11", NOOP_PY, None);
    let kinds = [
        ("nodejs:20", &node),
        ("python:3.11", &python),
        ("java:8", &java),
        ("wasm:wasi", &wasm),
    ];

    let platform = Platform::start(&whisk, &config(&format!("bench-a{tag}"), true, 244)).await?;
    let warm = if runtimes_only {
        None
    } else {
        Some(warm_latency(&platform, runs).await?)
    };
    let per_runtime = warm_per_runtime(&platform, &kinds, runs).await?;
    let stem_node = cold_starts(&platform, &node, cold).await?;
    let stem_python = cold_starts(&platform, &python, cold).await?;
    let stem_java = cold_starts(&platform, &java, cold).await?;
    let (cold_wasm, wasm_detail) = wasm_cold(&platform, cold).await?;
    let image = oci_image(&platform, &whisk, build.path(), runs, cold).await?;
    let rest = if runtimes_only {
        None
    } else {
        Some((throughput(&platform, seconds).await?, memory(&platform)?))
    };
    platform.stop().await?;

    let platform = Platform::start(&whisk, &config(&format!("bench-b{tag}"), false, 245)).await?;
    let bare_node = cold_starts(&platform, &node, cold).await?;
    let bare_python = cold_starts(&platform, &python, cold).await?;
    let bare_java = cold_starts(&platform, &java, cold).await?;
    platform.stop().await?;

    println!("whisk binary: {}", whisk.display());
    println!();
    if let Some(warm) = warm {
        println!("{warm}");
    }
    println!("{per_runtime}");
    println!("### Cold start: a new action's first blocking invoke ({cold} actions per cell, ms)");
    println!();
    println!(
        "| runtime | stem cells | p50 | p99 | record: waitTime p50 | initTime p50 | duration p50 | load |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for (label, stem, cell) in [
        ("nodejs:20", "on", &stem_node),
        ("nodejs:20", "off", &bare_node),
        ("python:3.11", "on", &stem_python),
        ("python:3.11", "off", &bare_python),
        ("java:8", "on", &stem_java),
        ("java:8", "off", &bare_java),
        ("wasm:wasi", "– (in-process, no container)", &cold_wasm),
    ] {
        println!(
            "| {label} | {stem} | {} | {} | {} | {} | {} | {} |",
            ms(cell.wall.p50),
            ms(cell.wall.p99),
            median(&cell.wait_ms),
            median(&cell.init_ms),
            median(&cell.duration_ms),
            cell.load
        );
    }
    println!();
    println!("{}", image.tables(&stem_node, &bare_node));
    println!("{wasm_detail}");
    if let Some((throughput, memory)) = rest {
        println!("{throughput}");
        println!("{memory}");
    }
    Ok(())
}

/// `--wasm`: only the WebAssembly rows, on one platform (stem cells play no part in them).
async fn wasm_rows(whisk: &Path, tag: u32, runs: usize, cold: usize) -> anyhow::Result<()> {
    let wasm = source("wasm:wasi", &base64_of(&echo_module(None)?), None);
    let platform = Platform::start(whisk, &config(&format!("bench-w{tag}"), false, 246)).await?;
    // Stopped (SIGTERM, so that it removes its networks) whether or not the runs succeeded.
    let measured = async {
        let warm = warm_per_runtime(&platform, &[("wasm:wasi", &wasm)], runs).await?;
        let (row, detail) = wasm_cold(&platform, cold).await?;
        anyhow::Ok((warm, row, detail))
    }
    .await;
    platform.stop().await?;
    let (warm, row, detail) = measured?;
    println!("whisk binary: {}", whisk.display());
    println!();
    println!("{warm}");
    println!("### Cold start: a new action's first blocking invoke ({cold} actions, ms)");
    println!();
    println!("| runtime | p50 | p99 | record: waitTime p50 | initTime p50 | duration p50 | load |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    println!(
        "| wasm:wasi | {} | {} | {} | {} | {} | {} |",
        ms(row.wall.p50),
        ms(row.wall.p99),
        median(&row.wait_ms),
        median(&row.init_ms),
        median(&row.duration_ms),
        row.load
    );
    println!();
    println!("{detail}");
    Ok(())
}

/// The echo module; with `Some(n)` it also exports the constant `n`, which makes it a module of
/// its own (another digest, so the engine's cache has never seen it).
fn echo_module(distinct: Option<u64>) -> anyhow::Result<Vec<u8>> {
    let text = match distinct {
        Some(n) => ECHO_WAT.replacen(
            "(memory",
            &format!("(global (export \"sample\") i64 (i64.const {n}))\n  (memory"),
            1,
        ),
        None => ECHO_WAT.to_string(),
    };
    Ok(wat::parse_str(text)?)
}

/// Table 2's WebAssembly row and table 7: `count` new actions, each with a module of its own,
/// measured two ways (see the module documentation).
async fn wasm_cold(platform: &Platform, count: usize) -> anyhow::Result<(Cold, String)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let pause = Duration::from_millis(1500);
    let load = load_line();
    let mut puts = Vec::with_capacity(count);
    let (mut cold, mut control) = (Vec::with_capacity(count), Vec::with_capacity(count));
    let (mut info_paused, mut info_hot) = (Vec::with_capacity(count), Vec::with_capacity(count));
    let (mut wait_ms, mut init_ms, mut duration_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        let name = new_wasm_action(platform, &NEXT, &mut puts).await?;
        tokio::time::sleep(pause).await;
        let begun = Instant::now();
        let record = platform.invoke(&name, &json!({})).await?;
        cold.push(begun.elapsed());
        wait_ms.extend(annotation(&record, "waitTime"));
        init_ms.extend(annotation(&record, "initTime"));
        duration_ms.extend(record["duration"].as_u64());
        if annotation(&record, "initTime").is_none() {
            bail!("the first invoke of {name} was not a cold start: {record}");
        }
        tokio::time::sleep(pause).await;
        let begun = Instant::now();
        platform.invoke(&name, &json!({})).await?;
        control.push(begun.elapsed());
        tokio::time::sleep(pause).await;
        let begun = Instant::now();
        platform.info().await?;
        info_paused.push(begun.elapsed());
        let begun = Instant::now();
        platform.info().await?;
        info_hot.push(begun.elapsed());
    }
    let load_after_pauses = load_line();
    let (mut immediate, mut hot) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for _ in 0..count {
        let name = new_wasm_action(platform, &NEXT, &mut puts).await?;
        let begun = Instant::now();
        platform.invoke(&name, &json!({})).await?;
        immediate.push(begun.elapsed());
        let begun = Instant::now();
        platform.invoke(&name, &json!({})).await?;
        hot.push(begun.elapsed());
    }
    let summary = |series: &[Duration]| {
        Summary::of(series).ok_or_else(|| anyhow!("no WebAssembly cold samples"))
    };
    let row = |what: &str, series: &[Duration]| -> anyhow::Result<String> {
        let cell = summary(series)?;
        Ok(format!(
            "| {what} | {} | {} |\n",
            ms(cell.p50),
            ms(cell.p99)
        ))
    };
    let mut table = format!(
        "### WebAssembly cold start, a module of its own per action (blocking invokes, ms; \
         {count} actions per pair of rows; {load} before, {load_after_pauses} after the paused \
         rows)\n\n| what | p50 | p99 |\n|---|---:|---:|\n"
    );
    table.push_str(&row(
        "`PUT` of a new action (its module compiled here)",
        &puts,
    )?);
    table.push_str(&row("first invoke, 1.5 s after the `PUT` (cold)", &cold)?);
    table.push_str(&row(
        "second invoke, 1.5 s after the first (warm, same pause: the control)",
        &control,
    )?);
    table.push_str(&row(
        "`GET /api/v1` 1.5 s after the previous request (no invoke at all)",
        &info_paused,
    )?);
    table.push_str(&row(
        "`GET /api/v1` right after the previous one",
        &info_hot,
    )?);
    table.push_str(&row(
        "first invoke, right after the `PUT` (cold)",
        &immediate,
    )?);
    table.push_str(&row("second invoke, right after the first (warm)", &hot)?);
    let cold = Cold {
        wall: summary(&cold)?,
        wait_ms,
        init_ms,
        duration_ms,
        load,
    };
    Ok((cold, table))
}

/// Creates an action with a module no other action has, adding the `PUT`'s time to `puts`.
async fn new_wasm_action(
    platform: &Platform,
    next: &AtomicU64,
    puts: &mut Vec<Duration>,
) -> anyhow::Result<String> {
    let n = next.fetch_add(1, Ordering::Relaxed);
    let name = format!("wasm-cold-{n}");
    let exec = source("wasm:wasi", &base64_of(&echo_module(Some(n))?), None);
    let begun = Instant::now();
    platform.put_exec(&name, &exec, None).await?;
    puts.push(begun.elapsed());
    Ok(name)
}

/// The `exec` of an action: source text, or base64 of a binary (a jar, a module) with `main`.
fn source(kind: &str, code: &str, main: Option<&str>) -> Value {
    let mut exec = json!({"kind": kind, "code": code});
    if kind == "java:8" || kind == "wasm:wasi" {
        exec["binary"] = json!(true);
    }
    if let Some(main) = main {
        exec["main"] = json!(main);
    }
    exec
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Compiles [`NOOP_JAVA`] with the host's `javac` against its Gson and jars it, in `dir`.
fn java_jar(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let gson = HostTools::detect()
        .gson
        .ok_or_else(|| anyhow!("no Gson on this host (Debian: libgoogle-gson-java)"))?;
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes)?;
    let file = dir.join("Noop.java");
    std::fs::write(&file, NOOP_JAVA)?;
    let status = Command::new("javac")
        .args(["--release", "11", "-encoding", "UTF-8", "-cp"])
        .arg(&gson)
        .arg("-d")
        .arg(&classes)
        .arg(&file)
        .status()
        .context("cannot run javac (a JDK is needed for the java:8 rows)")?;
    if !status.success() {
        bail!("javac failed: {status}");
    }
    let jar = dir.join("noop.jar");
    let status = Command::new("jar")
        .args(["--create", "--file"])
        .arg(&jar)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .status()
        .context("cannot run jar")?;
    if !status.success() {
        bail!("jar failed: {status}");
    }
    Ok(std::fs::read(&jar)?)
}

/// Table 5: a warm no-op's blocking invoke (`result=true`) per runtime, the runtimes taking
/// turns sample by sample after 20 unmeasured invokes each.
async fn warm_per_runtime(
    platform: &Platform,
    kinds: &[(&str, &Value)],
    runs: usize,
) -> anyhow::Result<String> {
    let params = json!({"hello": "world"});
    let mut names = Vec::with_capacity(kinds.len());
    for (index, (_, exec)) in kinds.iter().enumerate() {
        let name = format!("warm-{index}");
        platform.put_exec(&name, exec, None).await?;
        for _ in 0..20 {
            platform.invoke_result(&name, &params).await?;
        }
        names.push(name);
    }
    let load = load_line();
    let mut samples = vec![Vec::with_capacity(runs); kinds.len()];
    for _ in 0..runs {
        for (name, series) in names.iter().zip(samples.iter_mut()) {
            let begun = Instant::now();
            platform.invoke_result(name, &params).await?;
            series.push(begun.elapsed());
        }
    }
    let mut table = format!(
        "### Warm blocking invoke per runtime, no-op, `?blocking=true&result=true` \
         ({runs} samples each, runtimes interleaved, ms; {load})\n\n\
         | runtime | p50 | p99 |\n|---|---:|---:|\n"
    );
    for ((kind, _), series) in kinds.iter().zip(&samples) {
        let summary = Summary::of(series).ok_or_else(|| anyhow!("no warm samples"))?;
        table.push_str(&format!(
            "| {kind} | {} | {} |
",
            ms(summary.p50),
            ms(summary.p99)
        ));
    }
    Ok(table)
}

/// `<CARGO_TARGET_DIR or the workspace's target>/release/whisk`.
fn default_whisk() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/whisk")
}

/// The platform's configuration: throttles out of the way (a benchmark is not abuse), the
/// invoker's own instance name and subnet, no outbound network.
fn config(instance: &str, stem_cells: bool, subnet_octet: u8) -> String {
    format!(
        "[limits]\ninvocations-per-minute = 100000000\nconcurrent-invocations = 100000\n\
         [invoker]\ninstance = \"{instance}\"\nuser-memory-mb = {USER_MEMORY_MB}\n\
         stem-cells = {stem_cells}\nnetwork = \"none\"\nsubnet = \"10.{subnet_octet}.0.0/16\"\n"
    )
}

/// One running `whisk standalone`; stopped with SIGTERM by [`Platform::stop`], killed if dropped.
struct Platform {
    child: Option<Child>,
    url: String,
    instance: String,
    client: reqwest::Client,
    _data_dir: tempfile::TempDir,
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Platform {
    async fn start(whisk: &Path, toml: &str) -> anyhow::Result<Platform> {
        let data_dir = tempfile::tempdir()?;
        let config = data_dir.path().join("whisk.toml");
        std::fs::write(&config, toml)?;
        let instance = toml
            .lines()
            .find_map(|line| line.strip_prefix("instance = "))
            .map(|value| value.trim_matches('"').to_string())
            .ok_or_else(|| anyhow!("the configuration names no instance"))?;
        let mut child = Command::new(whisk)
            .args(["standalone", "--port", "0", "--data-dir"])
            .arg(data_dir.path())
            .arg("--config")
            .arg(&config)
            .env("WHISK_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", whisk.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        // The first line names the URL; the rest is drained so the server never blocks.
        let first = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            std::thread::spawn(move || for _ in lines {});
            first
        })
        .await?;
        let mut platform = Platform {
            child: Some(child),
            url: String::new(),
            instance,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .build()?,
            _data_dir: data_dir,
        };
        let first = match first {
            Some(Ok(line)) => line,
            _ => bail!("whisk standalone printed nothing and ended (see its stderr above)"),
        };
        platform.url = first
            .rsplit(' ')
            .next()
            .filter(|url| url.starts_with("http://127.0.0.1:"))
            .ok_or_else(|| anyhow!("unexpected first line from whisk: {first}"))?
            .to_string();
        // Let the invoker announce itself and prewarm its stem cells before anything is timed.
        platform.wait_healthy().await?;
        Ok(platform)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Invokes a throwaway action until it answers 200, then waits a second for stem cells.
    async fn wait_healthy(&self) -> anyhow::Result<()> {
        self.put("warmup", "nodejs:20", NOOP_JS, None).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.invoke("warmup", &json!({})).await {
                Ok(_) => break,
                Err(error) if Instant::now() > deadline => {
                    return Err(error.context("the platform never answered an invoke"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            if !status.success() {
                bail!("kill -TERM failed");
            }
            let waited = tokio::task::spawn_blocking(move || child.wait()).await??;
            if !waited.success() {
                bail!("whisk standalone ended with {waited}");
            }
        }
        Ok(())
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1/namespaces/_{path}", self.url)
    }

    async fn put(
        &self,
        name: &str,
        kind: &str,
        code: &str,
        memory: Option<u64>,
    ) -> anyhow::Result<()> {
        self.put_exec(name, &source(kind, code, None), memory).await
    }

    async fn put_exec(&self, name: &str, exec: &Value, memory: Option<u64>) -> anyhow::Result<()> {
        let mut body = json!({ "exec": exec });
        if let Some(memory) = memory {
            body["limits"] = json!({ "memory": memory });
        }
        let response = self
            .client
            .put(self.api(&format!("/actions/{name}?overwrite=true")))
            .basic_auth(GUEST.0, Some(GUEST.1))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "PUT action {name} answered {status}: {}",
                response.text().await?
            );
        }
        Ok(())
    }

    /// One blocking invoke; anything but a 200 is an error carrying the reply.
    async fn invoke(&self, name: &str, params: &Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(self.api(&format!("/actions/{name}?blocking=true")))
            .basic_auth(GUEST.0, Some(GUEST.1))
            .json(params)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if status != reqwest::StatusCode::OK {
            bail!("invoke {name} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// `GET /api/v1`: no authentication, no store, no invoker; the shortest round trip.
    async fn info(&self) -> anyhow::Result<()> {
        let response = self
            .client
            .get(format!("{}/api/v1", self.url))
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        if status != reqwest::StatusCode::OK {
            bail!("GET /api/v1 answered {status}");
        }
        Ok(())
    }

    /// A blocking invoke asking for the result only (what a latency-minded client sends).
    async fn invoke_result(&self, name: &str, params: &Value) -> anyhow::Result<()> {
        let response = self
            .client
            .post(self.api(&format!("/actions/{name}?blocking=true&result=true")))
            .basic_auth(GUEST.0, Some(GUEST.1))
            .json(params)
            .send()
            .await?;
        let status = response.status();
        let text = response.bytes().await?;
        if status != reqwest::StatusCode::OK {
            bail!(
                "invoke {name} answered {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        Ok(())
    }
}

/// Table 1: REST blocking invoke of a warm no-op next to the bare proxy's `/run`, interleaved.
async fn warm_latency(platform: &Platform, runs: usize) -> anyhow::Result<String> {
    platform.put("noop", "nodejs:20", NOOP_JS, None).await?;
    let params = json!({"hello": "world"});
    for _ in 0..20 {
        platform.invoke_result("noop", &params).await?;
    }
    let work = tempfile::tempdir()?;
    let assets = work.path().join("runtime");
    std::fs::create_dir_all(&assets)?;
    whisk_runtime::write_assets(&assets)?;
    let layout = LaunchLayout {
        assets_dir: assets,
        whisk_binary: PathBuf::from("/nonexistent"),
        tools: HostTools::detect(),
    };
    let bare = start_plain("nodejs:20", &layout, work.path()).await?;
    let runtime_client = RuntimeClient::new(bare.address);
    call(
        &runtime_client,
        "/init",
        &json!({"value": {"main": "main", "code": NOOP_JS}}),
    )
    .await?;
    let run_body = serde_json::to_vec(&whisk_bench::proxy::run_payload())?;
    let run_url = format!("http://{}/run", bare.address);
    for _ in 0..20 {
        bare_run(&platform.client, &run_url, &run_body).await?;
    }
    let load = load_line();
    let (mut rest, mut direct, mut fresh) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let begun = Instant::now();
        platform.invoke_result("noop", &params).await?;
        rest.push(begun.elapsed());
        let begun = Instant::now();
        bare_run(&platform.client, &run_url, &run_body).await?;
        direct.push(begun.elapsed());
        fresh.push(call(&runtime_client, "/run", &whisk_bench::proxy::run_payload()).await?);
    }
    let (Some(rest), Some(direct), Some(fresh)) = (
        Summary::of(&rest),
        Summary::of(&direct),
        Summary::of(&fresh),
    ) else {
        bail!("no warm samples");
    };
    let overhead_p50 = rest.p50.saturating_sub(direct.p50);
    let overhead_p99 = rest.p99.saturating_sub(direct.p99);
    Ok(format!(
        "### Warm blocking invoke, Node.js no-op ({runs} interleaved samples, ms; {load})\n\n\
         | path | p50 | p99 |\n|---|---:|---:|\n\
         | REST `POST …/actions/noop?blocking=true&result=true` (keep-alive) | {} | {} |\n\
         | bare proxy `/run`, plain process, keep-alive | {} | {} |\n\
         | bare proxy `/run`, new connection per call (`RuntimeClient`, as the invoker) | {} | {} |\n\
         | **platform overhead** (REST − bare keep-alive) | **{}** | **{}** |\n\
         | ratio REST / bare keep-alive | {} | {} |\n",
        ms(rest.p50),
        ms(rest.p99),
        ms(direct.p50),
        ms(direct.p99),
        ms(fresh.p50),
        ms(fresh.p99),
        ms(overhead_p50),
        ms(overhead_p99),
        ratio(rest.p50, direct.p50),
        ratio(rest.p99, direct.p99),
    ))
}

async fn bare_run(client: &reqwest::Client, url: &str, body: &[u8]) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await?;
    let status = response.status();
    response.bytes().await?;
    if status != reqwest::StatusCode::OK {
        bail!("bare /run answered {status}");
    }
    Ok(())
}

/// One cold-start cell.
struct Cold {
    wall: Summary,
    /// What the activation records say (ms): the `waitTime` and `initTime` annotations (time
    /// from the controller to the invoker, and the `/init`) and `duration` (`/init` + `/run`).
    wait_ms: Vec<u64>,
    init_ms: Vec<u64>,
    duration_ms: Vec<u64>,
    load: String,
}

/// The middle value, or `–` without values.
fn median(values: &[u64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted
        .get(sorted.len() / 2)
        .map_or("–".to_string(), u64::to_string)
}

/// The value of one annotation of an activation record, when it is a number.
fn annotation(record: &Value, key: &str) -> Option<u64> {
    record["annotations"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["value"]
        .as_u64()
}

/// Creates `count` new actions of `kind` and times each one's first blocking invoke. A pause
/// before each lets the invoker put back the stem cell the previous one used.
async fn cold_starts(platform: &Platform, exec: &Value, count: usize) -> anyhow::Result<Cold> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let load = load_line();
    let mut wall = Vec::with_capacity(count);
    let (mut wait_ms, mut init_ms, mut duration_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..count {
        let name = format!("cold-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        platform.put_exec(&name, exec, None).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let begun = Instant::now();
        let record = platform.invoke(&name, &json!({})).await?;
        wall.push(begun.elapsed());
        wait_ms.extend(annotation(&record, "waitTime"));
        init_ms.extend(annotation(&record, "initTime"));
        duration_ms.extend(record["duration"].as_u64());
    }
    Ok(Cold {
        wall: Summary::of(&wall).ok_or_else(|| anyhow!("no cold samples"))?,
        wait_ms,
        init_ms,
        duration_ms,
        load,
    })
}

/// Table 3: activations per second for 1, 8, 32 clients, one action and 100 distinct ones.
async fn throughput(platform: &Platform, seconds: u64) -> anyhow::Result<String> {
    platform
        .put("tp-one", "nodejs:20", NOOP_JS, Some(THROUGHPUT_ACTION_MB))
        .await?;
    let mut many = Vec::with_capacity(DISTINCT);
    for index in 0..DISTINCT {
        let name = format!("tp-{index}");
        platform
            .put(&name, "nodejs:20", NOOP_JS, Some(THROUGHPUT_ACTION_MB))
            .await?;
        many.push(name);
    }
    let one = vec!["tp-one".to_string()];
    let mut rows = vec![format!(
        "### Throughput, Node.js no-op, blocking invokes ({seconds} s per cell after as long a warm-up; \
         actions of {THROUGHPUT_ACTION_MB} MB, invoker user memory {USER_MEMORY_MB} MB)\n\n\
         | actions | clients | activations/s | failed | p50 ms | p99 ms | load |\n\
         |---:|---:|---:|---:|---:|---:|---|"
    )];
    for (label, names) in [("1", &one), ("100 distinct", &many)] {
        // Every action gets its first container before any cell: a cell's warm-up at one client
        // would reach only the first few dozen of 100 actions, and time their cold starts.
        prewarm(platform, names).await?;
        for clients in CLIENTS {
            let names = Arc::new(names.clone());
            // The same load first, unmeasured: every action has its containers when timing starts.
            drive(platform, &names, clients, Duration::from_secs(seconds)).await?;
            let load = load_line();
            let cell = drive(platform, &names, clients, Duration::from_secs(seconds)).await?;
            let latency = Summary::of(&cell.latencies)
                .ok_or_else(|| anyhow!("no activation succeeded with {clients} clients"))?;
            rows.push(format!(
                "| {label} | {clients} | {:.0} | {} | {} | {} | {load} |",
                cell.latencies.len() as f64 / cell.elapsed.as_secs_f64(),
                cell.failed,
                ms(latency.p50),
                ms(latency.p99),
            ));
        }
    }
    Ok(rows.join("\n") + "\n")
}

/// Invokes each action once, eight at a time.
async fn prewarm(platform: &Platform, names: &[String]) -> anyhow::Result<()> {
    let params = json!({});
    for group in names.chunks(8) {
        let calls = group
            .iter()
            .map(|name| platform.invoke_result(name, &params));
        for outcome in futures_util::future::join_all(calls).await {
            outcome?;
        }
    }
    Ok(())
}

struct Cell {
    latencies: Vec<Duration>,
    failed: u64,
    elapsed: Duration,
    first_error: Option<String>,
}

/// `clients` loops, each invoking the next action of `names` (round robin over all clients)
/// until `length` has passed.
async fn drive(
    platform: &Platform,
    names: &Arc<Vec<String>>,
    clients: usize,
    length: Duration,
) -> anyhow::Result<Cell> {
    let next = Arc::new(AtomicU64::new(0));
    let begun = Instant::now();
    let deadline = begun + length;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, names, next) = (platform.client.clone(), names.clone(), next.clone());
        let base = platform.api("/actions/");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize % names.len();
                let started = Instant::now();
                let outcome = client
                    .post(format!("{base}{}?blocking=true&result=true", names[index]))
                    .basic_auth(GUEST.0, Some(GUEST.1))
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await;
                match outcome {
                    Ok(response) if response.status() == reqwest::StatusCode::OK => {
                        let _ = response.bytes().await;
                        latencies.push(started.elapsed());
                    }
                    Ok(response) => {
                        failed += 1;
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        first_error.get_or_insert(format!("{status}: {text}"));
                    }
                    Err(error) => {
                        failed += 1;
                        first_error.get_or_insert(error.to_string());
                    }
                }
            }
            (latencies, failed, first_error)
        }));
    }
    let mut cell = Cell {
        latencies: Vec::new(),
        failed: 0,
        elapsed: Duration::ZERO,
        first_error: None,
    };
    for task in tasks {
        let (latencies, failed, first_error) = task.await?;
        cell.latencies.extend(latencies);
        cell.failed += failed;
        if cell.first_error.is_none() {
            cell.first_error = first_error;
        }
    }
    cell.elapsed = begun.elapsed();
    if let Some(error) = &cell.first_error {
        eprintln!(
            "{clients} clients over {} action(s): first failure: {error}",
            names.len()
        );
    }
    Ok(cell)
}

/// Table 4: the platform's RSS (and its spawner's), and each live container's memory.
fn memory(platform: &Platform) -> anyhow::Result<String> {
    let pid = platform
        .pid()
        .ok_or_else(|| anyhow!("the platform is gone"))?;
    let platform_rss = rss_bytes(pid).ok_or_else(|| anyhow!("no RSS for pid {pid}"))?;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let helpers: u64 = children
        .split_whitespace()
        .filter_map(|child| child.parse::<u32>().ok())
        .filter_map(rss_bytes)
        .sum();
    let containers = container_memory(&platform.instance);
    let mut usage: Vec<u64> = containers.iter().map(|c| c.0).collect();
    let mut rss: Vec<u64> = containers.iter().map(|c| c.1).collect();
    let mut pss: Vec<u64> = containers.iter().map(|c| c.2).collect();
    usage.sort_unstable();
    rss.sort_unstable();
    pss.sort_unstable();
    let median = |values: &[u64]| {
        values
            .get(values.len() / 2)
            .map_or("–".to_string(), |v| mib(*v))
    };
    let max = |values: &[u64]| values.last().map_or("–".to_string(), |v| mib(*v));
    Ok(format!(
        "### Memory (after the throughput runs; MiB; {})\n\n\
         | what | value |\n|---|---:|\n\
         | `whisk standalone` process RSS | {} |\n\
         | its child processes (the sandbox's spawner) RSS | {} |\n\
         | live containers | {} |\n\
         | per container, cgroup memory usage, median / max | {} / {} |\n\
         | per container, RSS of its processes, median / max | {} / {} |\n\
         | per container, PSS of its processes, median / max | {} / {} |\n",
        load_line(),
        mib(platform_rss),
        mib(helpers),
        containers.len(),
        median(&usage),
        max(&usage),
        median(&rss),
        max(&rss),
        median(&pss),
        max(&pss),
    ))
}

/// `(cgroup memory usage, summed RSS, summed PSS of its processes)` of each container of an instance, from
/// the cgroup v1 memory hierarchy or cgroup v2.
fn container_memory(instance: &str) -> Vec<(u64, u64, u64)> {
    let candidates = [
        (
            PathBuf::from(format!("/sys/fs/cgroup/memory/whisk/{instance}")),
            "memory.usage_in_bytes",
        ),
        (
            PathBuf::from(format!("/sys/fs/cgroup/whisk/{instance}")),
            "memory.current",
        ),
    ];
    for (parent, usage_file) in candidates {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let Some(usage) = std::fs::read_to_string(dir.join(usage_file))
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
            else {
                continue;
            };
            let pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect();
            let rss = pids.iter().copied().filter_map(rss_bytes).sum();
            let pss = pids.iter().copied().filter_map(pss_bytes).sum();
            found.push((usage, rss, pss));
        }
        return found;
    }
    Vec::new()
}

/// The action of the OCI rows: the skeleton image runs it once per activation as `exec`, with
/// the parameters as `$1`; it returns them.
const NOOP_SH: &str = "#!/bin/sh\necho \"$1\"\n";

/// Cold starts of fresh images are capped at this many samples: each one unpacks the whole
/// image (the `whisk` binary, ~50 MB) into a new root filesystem.
const FRESH_IMAGES_MAX: usize = 10;

/// Table 6's measurements, printed with the Node.js rows of the same run.
struct ImageRows {
    warm: String,
    cached: Cold,
    fresh: Cold,
    image_mb: f64,
}

impl ImageRows {
    fn tables(&self, node_on: &Cold, node_off: &Cold) -> String {
        let mut out = self.warm.clone();
        out.push_str(&format!(
            "\n### Cold start of an OCI image as a blackbox action (`--docker`), next to Node.js \
             (a new action's first blocking invoke; image layer {:.1} MB; ms)\n\n\
             | runtime | samples | p50 | p99 | record: waitTime p50 | initTime p50 | duration p50 | load |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n",
            self.image_mb
        ));
        for (label, cell) in [
            ("nodejs:20, stem cell", node_on),
            ("nodejs:20, no stem cell", node_off),
            ("blackbox image, root filesystem cached", &self.cached),
            (
                "blackbox image, freshly imported (unpacked on first use)",
                &self.fresh,
            ),
        ] {
            out.push_str(&format!(
                "| {label} | {} | {} | {} | {} | {} | {} | {} |\n",
                cell.wall.samples,
                ms(cell.wall.p50),
                ms(cell.wall.p99),
                median(&cell.wait_ms),
                median(&cell.init_ms),
                median(&cell.duration_ms),
                cell.load
            ));
        }
        out
    }
}

impl Platform {
    fn data_dir(&self) -> &Path {
        self._data_dir.path()
    }

    /// `whisk admin image import ARCHIVE` into this platform's data directory.
    fn import_image(&self, whisk: &Path, archive: &Path) -> anyhow::Result<()> {
        let output = Command::new(whisk)
            .args(["admin", "image", "import"])
            .arg(archive)
            .env("WHISK_DATA_DIR", self.data_dir())
            .stdin(Stdio::null())
            .output()
            .context("cannot run whisk admin image import")?;
        if !output.status.success() {
            bail!(
                "whisk admin image import {} failed: {}",
                archive.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// The exec of a blackbox action on `image`.
fn blackbox(image: &str) -> Value {
    json!({"kind": "blackbox", "image": image, "code": NOOP_SH})
}

/// Table 6: builds and imports the skeleton image, then measures its warm latency interleaved
/// with a Node.js no-op, its cold starts with the root filesystem cached (the image was used
/// before), and cold starts of images imported just before (each with a config of its own, so a
/// new image digest whose root filesystem is unpacked by that first invoke).
async fn oci_image(
    platform: &Platform,
    whisk: &Path,
    work: &Path,
    runs: usize,
    cold: usize,
) -> anyhow::Result<ImageRows> {
    let image = whisk_image::testing::SkeletonImage::build(whisk, &work.join("image"))?;
    let tag = "whisk-bench/skeleton:1";
    let archive = work.join("skeleton.tar");
    image.write_docker_archive(&archive, tag)?;
    platform.import_image(whisk, &archive)?;

    // Warm: the image action and a Node.js no-op, interleaved; the first invoke unpacks the
    // image's root filesystem, which every later container of the image shares.
    let params = json!({"hello": "world"});
    platform.put_exec("oci-warm", &blackbox(tag), None).await?;
    platform
        .put_exec("oci-node", &source("nodejs:20", NOOP_JS, None), None)
        .await?;
    for name in ["oci-warm", "oci-node"] {
        for _ in 0..20 {
            platform.invoke_result(name, &params).await?;
        }
    }
    let load = load_line();
    let (mut image_samples, mut node_samples) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let begun = Instant::now();
        platform.invoke_result("oci-warm", &params).await?;
        image_samples.push(begun.elapsed());
        let begun = Instant::now();
        platform.invoke_result("oci-node", &params).await?;
        node_samples.push(begun.elapsed());
    }
    let (Some(image_warm), Some(node_warm)) =
        (Summary::of(&image_samples), Summary::of(&node_samples))
    else {
        bail!("no warm samples");
    };
    let warm = format!(
        "### Warm blocking invoke, OCI image as a blackbox action next to Node.js, no-op \
         ({runs} samples each, interleaved, ms; {load})\n\n\
         | runtime | p50 | p99 |\n|---|---:|---:|\n\
         | nodejs:20 | {} | {} |\n\
         | blackbox image (skeleton proxy, `/bin/sh` script per activation) | {} | {} |\n",
        ms(node_warm.p50),
        ms(node_warm.p99),
        ms(image_warm.p50),
        ms(image_warm.p99),
    );

    let cached = cold_starts(platform, &blackbox(tag), cold).await?;

    let fresh_count = cold.min(FRESH_IMAGES_MAX);
    let load = load_line();
    let mut wall = Vec::with_capacity(fresh_count);
    let (mut wait_ms, mut init_ms, mut duration_ms) = (Vec::new(), Vec::new(), Vec::new());
    for sample in 0..fresh_count {
        let mut fresh = image.clone();
        if let Some(env) = fresh.config["config"]["Env"].as_array_mut() {
            env.push(json!(format!("WHISK_BENCH_SAMPLE={sample}")));
        }
        let tag = format!("whisk-bench/fresh-{sample}:1");
        let archive = work.join(format!("fresh-{sample}.tar"));
        fresh.write_docker_archive(&archive, &tag)?;
        platform.import_image(whisk, &archive)?;
        std::fs::remove_file(&archive)?;
        let name = format!("oci-fresh-{sample}");
        platform.put_exec(&name, &blackbox(&tag), None).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let begun = Instant::now();
        let record = platform.invoke(&name, &json!({})).await?;
        wall.push(begun.elapsed());
        wait_ms.extend(annotation(&record, "waitTime"));
        init_ms.extend(annotation(&record, "initTime"));
        duration_ms.extend(record["duration"].as_u64());
    }
    let fresh = Cold {
        wall: Summary::of(&wall).ok_or_else(|| anyhow!("no fresh-image samples"))?,
        wait_ms,
        init_ms,
        duration_ms,
        load,
    };
    Ok(ImageRows {
        warm,
        cached,
        fresh,
        image_mb: image.layer.len() as f64 / 1e6,
    })
}
