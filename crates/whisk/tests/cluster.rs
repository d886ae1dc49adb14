//! A cluster of separate `whisk controller` and `whisk invoker` processes over a real
//! PostgreSQL and a real NATS server (started by `.ci/run`, found through
//! `WHISK_TEST_POSTGRES_URL` and `WHISK_TEST_NATS_URL`). Each test gets a schema and a NATS
//! cluster name of its own, so tests running in parallel never meet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{GUEST_AUTH, Reply};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Long enough for a loaded CI machine to start containers and move messages.
const DEADLINE: Duration = Duration::from_secs(120);

/// The services the cluster runs on, or `None` (with the reason printed) when this run has none.
fn services() -> Option<(String, String)> {
    let postgres = std::env::var("WHISK_TEST_POSTGRES_URL").ok();
    let nats = std::env::var("WHISK_TEST_NATS_URL").ok();
    let (Some(postgres), Some(nats)) = (postgres, nats) else {
        eprintln!(
            "SKIPPED: WHISK_TEST_POSTGRES_URL and WHISK_TEST_NATS_URL are not both set \
             (.ci/run starts PostgreSQL and NATS and sets them)"
        );
        return None;
    };
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    });
    if !root {
        eprintln!("SKIPPED: invokers need root for containers, and this test runs as another user");
        return None;
    }
    Some((postgres, nats))
}

/// One process of the cluster; SIGKILLed when dropped if still running.
struct Role {
    child: Option<Child>,
    /// The controller's URL (`None` for an invoker).
    url: Option<String>,
    log: PathBuf,
}

impl Role {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit (an invoker removes its containers first).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + DEADLINE;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(
                        status.success(),
                        "exited with {status}; log:\n{}",
                        read_log(&self.log)
                    );
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "did not stop; log:\n{}",
                    read_log(&self.log)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Gracefully first, so an invoker removes its cgroups and network namespaces.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The whole log with terminal colour codes taken out, for matching.
fn plain_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences end with a letter (`m` for colours).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(6000);
    text.get(start..).unwrap_or(&text).to_owned()
}

/// Two controllers and two invokers of one test's cluster.
struct Cluster {
    postgres: String,
    nats: String,
    schema: String,
    name: String,
    dir: tempfile::TempDir,
    controllers: Vec<Role>,
    invokers: Vec<Role>,
    client: reqwest::Client,
    /// Bumped at each start, so every process writes a log of its own.
    generation: u32,
}

impl Cluster {
    /// Starts the cluster `name` (`extra` is added to every process's configuration file), or
    /// `None` when the services are missing.
    fn start(name: &str, extra: &str) -> Option<Self> {
        let (postgres, nats) = services()?;
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("temp dir");
        // Two random /26s of 10.160.0.0/11 for the two invokers: parallel tests must not pick
        // the same one (the network pool refuses a subnet already on the host).
        let slot: u32 = rand::random_range(0..16_384) * 2;
        let mut config = String::new();
        for invoker in 0..2u32 {
            let base = u32::from(std::net::Ipv4Addr::new(10, 160, 0, 0)) + (slot + invoker) * 64;
            let subnet = format!("{}/26", std::net::Ipv4Addr::from(base));
            let file = format!(
                "{extra}\n[invoker]\ninstance = \"cl-{name}-{pid}-{n}-{invoker}\"\n\
                 subnet = \"{subnet}\"\nstem-cells = false\nnetwork = \"none\"\n"
            );
            std::fs::write(dir.path().join(format!("invoker{invoker}.toml")), file)
                .expect("write invoker config");
        }
        config.push_str(extra);
        std::fs::write(dir.path().join("controller.toml"), config).expect("write config");
        let mut cluster = Self {
            postgres,
            nats,
            schema: format!("cl_{}_{pid}_{n}", name.replace('-', "_")),
            name: format!("cl-{pid}-{n}"),
            dir,
            controllers: Vec::new(),
            invokers: Vec::new(),
            client: reqwest::Client::new(),
            generation: 0,
        };
        cluster.start_all();
        Some(cluster)
    }

    fn start_all(&mut self) {
        self.generation += 1;
        // Controllers first: the first one migrates the schema and creates the namespaces.
        for id in 0..2 {
            let role = self.spawn("controller", id);
            self.controllers.push(role);
        }
        for id in 0..2 {
            let role = self.spawn("invoker", id);
            self.invokers.push(role);
        }
    }

    fn stop_all(&mut self) {
        for role in self.invokers.iter_mut().chain(self.controllers.iter_mut()) {
            role.stop();
        }
        self.invokers.clear();
        self.controllers.clear();
    }

    fn spawn(&self, role: &str, id: u32) -> Role {
        let data_dir = self.dir.path().join(format!("{role}{id}"));
        let log = self
            .dir
            .path()
            .join(format!("{role}{id}-{}.log", self.generation));
        let mut command = Command::new(env!("CARGO_BIN_EXE_whisk"));
        command
            .arg(role)
            .args(["--store", &self.postgres, "--store-schema", &self.schema])
            .args(["--bus", &self.nats, "--cluster-name", &self.name])
            .arg("--data-dir")
            .arg(&data_dir);
        match role {
            "controller" => {
                command
                    .args(["--controller-id", &id.to_string(), "--controllers", "2"])
                    .args(["--port", "0", "--config"])
                    .arg(self.dir.path().join("controller.toml"));
            }
            _ => {
                command
                    .args(["--invoker-id", &id.to_string(), "--user-memory", "1024"])
                    .arg("--config")
                    .arg(self.dir.path().join(format!("invoker{id}.toml")));
            }
        }
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = command
            .env("WHISK_LOG", "info")
            .env_remove("WHISK_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start whisk");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let _ = child.wait();
                panic!("{role} {id} printed nothing; log:\n{}", read_log(&log));
            }
        };
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = (role == "controller").then(|| {
            first
                .rsplit(' ')
                .next()
                .filter(|url| url.starts_with("http://"))
                .unwrap_or_else(|| panic!("unexpected first line: {first}"))
                .to_owned()
        });
        Role {
            child: Some(child),
            url,
            log,
        }
    }

    /// Starts invoker `id` again (after a kill): its sandbox and network pool sweep what the
    /// killed process left on the host.
    fn restart_invoker(&mut self, id: u32) {
        self.generation += 1;
        let role = self.spawn("invoker", id);
        let index = usize::try_from(id).expect("index");
        self.invokers[index] = role;
    }

    /// Starts controller `id` again (after a kill), on a new port.
    fn restart_controller(&mut self, id: u32) {
        self.generation += 1;
        let role = self.spawn("controller", id);
        let index = usize::try_from(id).expect("index");
        self.controllers[index] = role;
    }

    fn url(&self, controller: usize) -> &str {
        self.controllers[controller]
            .url
            .as_deref()
            .expect("controller URL")
    }

    async fn guest(
        &self,
        controller: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let (user, key) = GUEST_AUTH.split_once(':').expect("uuid:key");
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.url(controller)))
            .basic_auth(user, Some(key))
            .timeout(DEADLINE);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(
            request
                .send()
                .await
                .expect("request reaches the controller"),
        )
        .await
    }

    /// Waits until both controllers see both invokers healthy: an invocation accepted then can
    /// land on either invoker.
    async fn wait_for_invokers(&self, action: &str) {
        let deadline = Instant::now() + DEADLINE;
        // Each balancer logs the first beat of every invoker it hears of.
        for (controller, role) in self.controllers.iter().enumerate() {
            for invoker in 0..self.invokers.len() {
                let joined = format!("invoker={invoker} ");
                while !plain_log(&role.log)
                    .lines()
                    .any(|line| line.contains("invoker joined") && line.contains(&joined))
                {
                    assert!(
                        Instant::now() < deadline,
                        "controller {controller} never heard of invoker {invoker}\n{}",
                        self.logs()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        for controller in 0..self.controllers.len() {
            loop {
                let reply = self
                    .guest(
                        controller,
                        Method::POST,
                        &format!("/namespaces/_/actions/{action}?blocking=true&result=true"),
                        Some(json!({"warmup": true})),
                    )
                    .await;
                if reply.status.is_success() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "controller {controller} never ran {action}: {}\n{}",
                    reply.text,
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// The record of `id`, read through `controller`, once it exists.
    async fn record(&self, controller: usize, id: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let reply = self
                .guest(
                    controller,
                    Method::GET,
                    &format!("/namespaces/_/activations/{id}"),
                    None,
                )
                .await;
            if reply.status.is_success() {
                return reply.body;
            }
            assert!(
                Instant::now() < deadline,
                "no record of {id}: {}\n{}",
                reply.text,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for (kind, roles) in [
            ("controller", &self.controllers),
            ("invoker", &self.invokers),
        ] {
            for (id, role) in roles.iter().enumerate() {
                all.push_str(&format!("--- {kind} {id}:\n{}\n", read_log(&role.log)));
            }
        }
        all
    }
}

async fn put_action(cluster: &Cluster, name: &str, code: &str, limits: Value) {
    cluster
        .guest(
            0,
            Method::PUT,
            &format!("/namespaces/_/actions/{name}?overwrite=true"),
            Some(json!({"exec": {"kind": "nodejs:20", "code": code}, "limits": limits})),
        )
        .await
        .assert_ok();
}

const ECHO: &str = "function main(params) { return {echo: params.n, pid: process.pid} }";

/// Sleeps `params.ms` milliseconds, then answers.
const SLEEPY: &str = "function main(params) { \
     return new Promise(done => setTimeout(() => done({n: params.n}), params.ms || 0)) }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_controllers_invoke_and_a_restarted_cluster_keeps_everything() {
    let Some(mut cluster) = Cluster::start("both", "") else {
        return;
    };
    put_action(&cluster, "echo", ECHO, json!({"memory": 128})).await;
    cluster.wait_for_invokers("echo").await;

    // Blocking through either controller is answered by that controller.
    for n in 0..6 {
        let controller = n % 2;
        let reply = cluster
            .guest(
                controller,
                Method::POST,
                "/namespaces/_/actions/echo?blocking=true",
                Some(json!({"n": n})),
            )
            .await;
        let body = reply.assert_ok();
        assert_eq!(body["response"]["result"]["echo"], n, "{body}");
        assert_eq!(body["response"]["status"], "success");
    }
    // Non-blocking through one, read through the other.
    let accepted = cluster
        .guest(
            0,
            Method::POST,
            "/namespaces/_/actions/echo",
            Some(json!({"n": 42})),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.text);
    let id = accepted.body["activationId"]
        .as_str()
        .expect("activation id")
        .to_owned();
    let record = cluster.record(1, &id).await;
    assert_eq!(record["response"]["result"]["echo"], 42, "{record}");

    // The whole cluster down and up again: the action and the records are still there.
    cluster.stop_all();
    cluster.start_all();
    let action = cluster
        .guest(1, Method::GET, "/namespaces/_/actions/echo", None)
        .await;
    assert_eq!(action.assert_ok()["name"], "echo");
    let record = cluster.record(0, &id).await;
    assert_eq!(record["response"]["result"]["echo"], 42, "{record}");
    cluster.wait_for_invokers("echo").await;
    let reply = cluster
        .guest(
            1,
            Method::POST,
            "/namespaces/_/actions/echo?blocking=true&result=true",
            Some(json!({"n": 7})),
        )
        .await;
    assert_eq!(reply.assert_ok()["echo"], 7);
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_loses_none_of_its_accepted_activations() {
    let Some(mut cluster) = Cluster::start("ctlkill", "") else {
        return;
    };
    put_action(&cluster, "sleepy", SLEEPY, json!({"memory": 128})).await;
    cluster.wait_for_invokers("sleepy").await;

    let mut ids = BTreeSet::new();
    for n in 0..8 {
        let accepted = cluster
            .guest(
                0,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"n": n, "ms": 2000})),
            )
            .await;
        assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.text);
        ids.insert(
            accepted.body["activationId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    cluster.controllers[0].kill();
    // Back at once with the same id: the notes its killed run left are for activations still
    // running on live invokers, so they must not be closed as lost.
    cluster.restart_controller(0);
    for (n, id) in ids.iter().enumerate() {
        let record = cluster.record(n % 2, id).await;
        assert_eq!(record["response"]["status"], "success", "{record}");
    }
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoker_killed_under_load_leaves_a_record_for_every_accepted_activation() {
    // Invokers count as dead one second after the balancer sees them silent.
    let Some(mut cluster) = Cluster::start("invkill", "[cluster]\nlost-grace-ms = 1000\n") else {
        return;
    };
    put_action(
        &cluster,
        "sleepy",
        SLEEPY,
        json!({"memory": 128, "timeout": 60000}),
    )
    .await;
    cluster.wait_for_invokers("sleepy").await;

    // 1024 MB per invoker, half of it each controller's: 4 slots of 128 MB per controller and
    // invoker, so 8 through each controller fill both invokers whichever is the action's home.
    let mut ids = BTreeSet::new();
    for n in 0..16 {
        let accepted = cluster
            .guest(
                n % 2,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"n": n, "ms": 15000})),
            )
            .await;
        assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.text);
        ids.insert(
            accepted.body["activationId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // A blocking caller whose activation may be on the dead invoker gets an answer too.
    let (user, key) = GUEST_AUTH.split_once(':').expect("uuid:key");
    let blocking = tokio::spawn(
        cluster
            .client
            .post(format!(
                "{}/api/v1/namespaces/_/actions/sleepy?blocking=true",
                cluster.url(1)
            ))
            .basic_auth(user, Some(key))
            .json(&json!({"n": 99, "ms": 15000}))
            .timeout(DEADLINE)
            .send(),
    );
    cluster.invokers[1].kill();
    let status = blocking
        .await
        .expect("task")
        .expect("blocking call answered")
        .status()
        .as_u16();
    // 200 from the live invoker, 500 with the lost record (a whisk internal error), 202 if the
    // wait ran out.
    assert!([200, 202, 500].contains(&status), "blocking call: {status}");

    let mut lost = 0;
    for id in &ids {
        let record = cluster.record(0, id).await;
        match record["response"]["status"].as_str() {
            Some("success") => {}
            Some("whisk internal error") => lost += 1,
            other => panic!("unexpected status {other:?}: {record}"),
        }
    }
    assert!(
        lost > 0,
        "nothing ran on the killed invoker\n{}",
        cluster.logs()
    );
    assert!(
        lost < ids.len(),
        "nothing ran on the live invoker\n{}",
        cluster.logs()
    );

    // Back with the same instance name, so the host resources the killed one left are swept.
    cluster.restart_invoker(1);
    cluster.stop_all();
}

/// The wall-clock minute the per-minute throttles count in.
fn wall_minute() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    now.as_secs() / 60
}

/// Sleeps until the next wall-clock minute has begun, so its counts start from zero.
async fn next_minute() {
    let start = wall_minute();
    while wall_minute() == start {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_throttles_hold_across_both_controllers() {
    let limits = "[limits]\ninvocations-per-minute = 5\nfires-per-minute = 2\n";
    let Some(mut cluster) = Cluster::start("rate", limits) else {
        return;
    };
    // The throttles count before the action or trigger is looked up, so missing ones need no
    // invoker. The counts are per wall-clock minute: a run that straddles a minute boundary
    // proves nothing, so it starts again at the beginning of the next minute.
    let deadline = Instant::now() + DEADLINE * 2;
    loop {
        let minute = wall_minute();
        let mut statuses = Vec::new();
        for n in 0..6 {
            let reply = cluster
                .guest(
                    n % 2,
                    Method::POST,
                    "/namespaces/_/actions/missing?blocking=true",
                    Some(json!({})),
                )
                .await;
            statuses.push((reply.status.as_u16(), reply));
        }
        let mut fires = Vec::new();
        for n in 0..3 {
            fires.push(
                cluster
                    .guest(n % 2, Method::POST, "/namespaces/_/triggers/missing", None)
                    .await,
            );
        }
        if wall_minute() != minute {
            assert!(Instant::now() < deadline, "never ran within one minute");
            next_minute().await;
            continue;
        }
        for (status, reply) in &statuses[..5] {
            assert_eq!(*status, 404, "within the limit: {}", reply.text);
        }
        // The sixth call of the minute, through whichever controller, is refused.
        statuses[5].1.assert_error(
            429,
            "Too many requests in the last minute (count: 6, allowed: 5).",
        );
        for fire in &fires[..2] {
            assert_eq!(fire.status.as_u16(), 404, "within the limit: {}", fire.text);
        }
        fires[2].assert_error(
            429,
            "Too many requests in the last minute (count: 3, allowed: 2).",
        );
        break;
    }
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_are_counted_across_both_controllers() {
    let Some(mut cluster) = Cluster::start("concurrent", "[limits]\nconcurrent-invocations = 1\n")
    else {
        return;
    };
    put_action(
        &cluster,
        "sleepy",
        SLEEPY,
        json!({"memory": 128, "timeout": 300_000}),
    )
    .await;
    cluster.wait_for_invokers("sleepy").await;
    // The warm-up calls' notes close when their records are stored, which may be just after
    // their answers: until then the namespace is still at its limit.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = cluster
            .guest(
                0,
                Method::POST,
                "/namespaces/_/actions/sleepy",
                Some(json!({"ms": 280_000})),
            )
            .await;
        if reply.status.as_u16() == 202 {
            break;
        }
        // Both warm-up notes may still be open, so the count is 1 or 2.
        assert_eq!(reply.status.as_u16(), 429, "{}", reply.text);
        assert!(
            reply.body["error"]
                .as_str()
                .is_some_and(|error| error.starts_with("Too many concurrent requests in flight")),
            "{}",
            reply.text
        );
        assert!(Instant::now() < deadline, "warm-up notes never closed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The other controller has nothing in flight itself, yet sees the namespace at its limit.
    cluster
        .guest(
            1,
            Method::POST,
            "/namespaces/_/actions/sleepy",
            Some(json!({"ms": 1})),
        )
        .await
        .assert_error(
            429,
            "Too many concurrent requests in flight (count: 1, allowed: 1).",
        );
    cluster.stop_all();
}
