//! Issue 8's benchmark: the same blocking load through `whisk standalone` and through a cluster
//! (one `whisk controller` over PostgreSQL and NATS) with one and with two `whisk invoker`s, in
//! one run, so the three rows share the machine's conditions. It prints one markdown table:
//! activations per second and the p50/p99 of a blocking invoke at a fixed number of keep-alive
//! clients, each client cycling over a set of distinct no-op Node.js actions (one action would
//! mostly stay on its home invoker and never show the second one).
//!
//! Next to each row it measures what an activation costs the machine: the CPU time (user +
//! system, from `/proc`) of the API process, of the invokers, and of every `postgres` and
//! `nats-server` process on the host, divided by the activations of the measured window; and,
//! for the cluster rows, the PostgreSQL work per activation from `pg_stat_user_tables` of the
//! row's own schema (scans ≈ read queries, and rows inserted, updated and deleted), so the
//! store's share of the cluster path is counted, not guessed.
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
use tokio_postgres::NoTls;
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
        let row = measure(&url, &load, &setup, 0, None).await?;
        if row.errors > 0 {
            setup.print_problems();
        }
        rows.push(("standalone (in-process invoker)".to_owned(), row));
    }
    for invokers in [1u32, 2] {
        let mut setup = Setup::new(&whisk)?;
        let url = setup.spawn_cluster(&postgres, &nats, invokers)?;
        let label = format!("cluster: 1 controller, {invokers} invoker(s)");
        let schema = cluster_schema(invokers);
        let store = Some((postgres.as_str(), schema.as_str()));
        let row = measure(&url, &load, &setup, invokers, store).await;
        if row.as_ref().map_or(true, |row| row.errors > 0) {
            setup.print_problems();
        }
        drop(setup);
        drop_schema(&postgres, &schema).await?;
        rows.push((label, row?));
    }

    println!(
        "### Cluster throughput, Node.js no-op, blocking invokes ({clients} keep-alive clients over \
         {actions} actions, {seconds} s per row after as long a warm-up; {})\n",
        load_line()
    );
    println!(
        "| setup | activations/s | p50 ms | p99 ms | errors | load after the row |\n\
         |---|---:|---:|---:|---:|---|"
    );
    for (label, row) in &rows {
        println!(
            "| {label} | {:.0} | {} | {} | {} | {} |",
            row.per_second,
            row.latency.map_or("–".to_owned(), |s| ms(s.p50)),
            row.latency.map_or("–".to_owned(), |s| ms(s.p99)),
            row.errors,
            row.load
        );
    }
    println!(
        "\n### CPU time per activation in the measured window (ms; user + system from /proc; \
         `postgres` and `nats-server` are every such process on the host)\n"
    );
    println!(
        "| setup | API process | invoker(s) | postgres | nats-server | sum |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for (label, row) in &rows {
        let cpu = &row.cpu;
        println!(
            "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            cpu.api,
            cpu.invokers,
            cpu.postgres,
            cpu.nats,
            cpu.api + cpu.invokers + cpu.postgres + cpu.nats
        );
    }
    println!(
        "\n### PostgreSQL work per activation, cluster rows (`pg_stat_user_tables` of the row's \
         schema: scans ≈ read queries; rows written)\n"
    );
    println!(
        "| setup | table | scans | inserted | updated | deleted |\n|---|---|---:|---:|---:|---:|"
    );
    for (label, row) in &rows {
        for table in &row.store {
            println!(
                "| {label} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                table.name, table.scans, table.inserted, table.updated, table.deleted
            );
        }
        if !row.store.is_empty() {
            let sum = |f: fn(&TableWork) -> f64| row.store.iter().map(f).sum::<f64>();
            println!(
                "| {label} | **all** | **{:.2}** | **{:.2}** | **{:.2}** | **{:.2}** |",
                sum(|t| t.scans),
                sum(|t| t.inserted),
                sum(|t| t.updated),
                sum(|t| t.deleted)
            );
        }
    }
    Ok(())
}

/// Removes a row's schema once its processes are stopped, so runs leave nothing in the
/// shared database.
async fn drop_schema(postgres: &str, schema: &str) -> anyhow::Result<()> {
    let (db, connection) = tokio_postgres::connect(postgres, NoTls)
        .await
        .context("cannot connect to PostgreSQL to drop the row's schema")?;
    tokio::spawn(connection);
    db.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .with_context(|| format!("cannot drop schema {schema}"))?;
    Ok(())
}

/// The PostgreSQL schema of the cluster row with `invokers` invokers.
fn cluster_schema(invokers: u32) -> String {
    format!("bench_{}_{invokers}", std::process::id())
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
    load: String,
    cpu: CpuPerActivation,
    /// Per table of the cluster's schema; empty for standalone.
    store: Vec<TableWork>,
}

/// CPU milliseconds per activation of the measured window, by process group.
#[derive(Default)]
struct CpuPerActivation {
    api: f64,
    invokers: f64,
    postgres: f64,
    nats: f64,
}

/// What one table of the store did per activation.
struct TableWork {
    name: String,
    scans: f64,
    inserted: f64,
    updated: f64,
    deleted: f64,
}

/// CPU clock ticks (user + system) of one process so far, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command may hold spaces and parentheses: fields are counted after the last `)`.
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After `)`: state is field 3 of the file, so utime (14) and stime (15) are at 11 and 12.
    let field = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// The pids of every process whose command name (`/proc/<pid>/comm`) is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

/// Clock ticks per second, for [`cpu_ticks`] (100 on Linux unless configured otherwise).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU ticks of the row's processes and of the host's database and bus, at one instant.
#[derive(Clone, Copy, Default)]
struct CpuSnapshot {
    api: u64,
    invokers: u64,
    postgres: u64,
    nats: u64,
}

impl CpuSnapshot {
    fn take(setup: &Setup) -> CpuSnapshot {
        let mut pids = setup.children.iter().map(Child::id);
        let api = pids.next().map_or(0, cpu_ticks);
        CpuSnapshot {
            api,
            invokers: pids.map(cpu_ticks).sum(),
            postgres: pids_named("postgres").into_iter().map(cpu_ticks).sum(),
            nats: pids_named("nats-server").into_iter().map(cpu_ticks).sum(),
        }
    }

    /// Milliseconds per activation from `self` (before) to `after`.
    fn per_activation(&self, after: &CpuSnapshot, activations: usize) -> CpuPerActivation {
        let scale = 1000.0 / ticks_per_second() / activations.max(1) as f64;
        let delta = |a: u64, b: u64| b.saturating_sub(a) as f64 * scale;
        CpuPerActivation {
            api: delta(self.api, after.api),
            invokers: delta(self.invokers, after.invokers),
            postgres: delta(self.postgres, after.postgres),
            nats: delta(self.nats, after.nats),
        }
    }
}

/// `(table, scans, inserted, updated, deleted)` of every table of `schema`, as the statistics
/// say now.
async fn table_counters(
    client: &tokio_postgres::Client,
    schema: &str,
) -> anyhow::Result<Vec<(String, i64, i64, i64, i64)>> {
    // A fresh snapshot: within one transaction the statistics would otherwise stay cached.
    client
        .simple_query("SELECT pg_stat_clear_snapshot()")
        .await?;
    let rows = client
        .query(
            "SELECT relname::text, seq_scan + coalesce(idx_scan, 0), n_tup_ins, n_tup_upd, \
             n_tup_del FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY relname",
            &[&schema],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect())
}

/// How long a PostgreSQL backend may keep its statistics before publishing them: at most a
/// second under load, and up to ten seconds once idle (PostgreSQL 15's flush intervals).
const STATS_FLUSH: Duration = Duration::from_secs(11);

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

    /// An invoker section with host resources named for this process, on a /22 of its own:
    /// 1,022 container addresses. A /26 (61 containers) ran out under 16 clients, since the
    /// warm containers of 8 actions and the prepared network namespaces all hold one, and the
    /// invoker answered `Failed to provision resources` for the activations it could not place.
    fn invoker_section(&self, index: u32) -> String {
        let pid = std::process::id();
        let third = (pid % 64) * 4;
        let second = 170 + index;
        format!(
            "[invoker]\ninstance = \"bench-{pid}-{index}\"\nsubnet = \"10.{second}.{third}.0/22\"\n\
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
        let schema = cluster_schema(invokers);
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

    /// Prints the warnings and errors the row's processes logged (their logs are in the row's
    /// temporary directory, removed with it), so that failed invokes can be explained.
    fn print_problems(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|extension| extension != "log") {
                continue;
            }
            let text = without_colours(&std::fs::read_to_string(&path).unwrap_or_default());
            let problems: Vec<&str> = text
                .lines()
                .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
                .collect();
            eprintln!("{}: {} warning/error lines", path.display(), problems.len());
            for line in problems.iter().take(20) {
                eprintln!("  {line}");
            }
        }
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
/// warm (containers, connections), once measured. With `store` (the cluster's PostgreSQL URL
/// and schema), the statistics are read before and after the measured run, each time after
/// the backends have published theirs.
async fn measure(
    url: &str,
    load: &Load,
    setup: &Setup,
    invokers: u32,
    store: Option<(&str, &str)>,
) -> anyhow::Result<Row> {
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
        while invoke(&client, &api, name).await.is_err() {
            if Instant::now() > deadline {
                bail!("{name} never ran");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drive(&client, &api, &names, load).await?;
    let statistics = match store {
        Some((postgres, schema)) => {
            let (db, connection) = tokio_postgres::connect(postgres, NoTls)
                .await
                .context("cannot connect to PostgreSQL for its statistics")?;
            tokio::spawn(connection);
            tokio::time::sleep(STATS_FLUSH).await;
            let before = table_counters(&db, schema).await?;
            Some((db, schema, before))
        }
        None => None,
    };
    let cpu_before = CpuSnapshot::take(setup);
    let mut row = drive(&client, &api, &names, load).await?;
    let cpu_after = CpuSnapshot::take(setup);
    row.load = load_line();
    let activations = row.latency.map_or(0, |summary| summary.samples);
    row.cpu = cpu_before.per_activation(&cpu_after, activations);
    if let Some((db, schema, before)) = statistics {
        tokio::time::sleep(STATS_FLUSH).await;
        let after = table_counters(&db, schema).await?;
        let per = |a: i64, b: i64| (b - a) as f64 / activations.max(1) as f64;
        for (name, scans, inserted, updated, deleted) in after {
            let (_, s0, i0, u0, d0) = before
                .iter()
                .find(|(table, ..)| *table == name)
                .cloned()
                .unwrap_or((String::new(), 0, 0, 0, 0));
            row.store.push(TableWork {
                name,
                scans: per(s0, scans),
                inserted: per(i0, inserted),
                updated: per(u0, updated),
                deleted: per(d0, deleted),
            });
        }
    }
    Ok(row)
}

/// One blocking invoke asking for the result; anything but a 200 is an error naming the status
/// and the start of the body.
async fn invoke(client: &reqwest::Client, api: &str, name: &str) -> anyhow::Result<()> {
    let response = client
        .post(format!("{api}/{name}?blocking=true&result=true"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .json(&json!({"hello": "world"}))
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status != reqwest::StatusCode::OK {
        let body = String::from_utf8_lossy(&body);
        bail!("{status}: {}", body.chars().take(160).collect::<String>());
    }
    Ok(())
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
            let (mut samples, mut errors, mut next) = (Vec::new(), Vec::new(), index);
            while begun.elapsed() < duration {
                let started = Instant::now();
                match invoke(&client, &api, &names[next % names.len()]).await {
                    Ok(()) => samples.push(started.elapsed()),
                    Err(error) => errors.push(format!("{error:#}")),
                }
                next += 1;
            }
            (samples, errors)
        }));
    }
    let (mut samples, mut failures) = (Vec::new(), std::collections::BTreeMap::new());
    for task in tasks {
        let (mine, failed) = task.await?;
        samples.extend(mine);
        for failure in failed {
            *failures.entry(failure).or_insert(0u64) += 1;
        }
    }
    let errors = failures.values().sum();
    for (failure, count) in &failures {
        eprintln!("{count} × {failure}");
    }
    let elapsed = begun.elapsed().as_secs_f64();
    Ok(Row {
        per_second: samples.len() as f64 / elapsed,
        latency: Summary::of(&samples),
        errors,
        load: String::new(),
        cpu: CpuPerActivation::default(),
        store: Vec::new(),
    })
}
