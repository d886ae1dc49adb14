//! A cluster of separate `whisk controller` and `whisk invoker` processes over a real
//! PostgreSQL and a real NATS server (started by `.ci/run`, found through
//! `WHISK_TEST_POSTGRES_URL` and `WHISK_TEST_NATS_URL`), shared by the cluster tests. Each
//! cluster gets a schema and a NATS cluster name of its own, so tests running in parallel never
//! meet.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{GUEST_AUTH, Reply};
use reqwest::Method;
use serde_json::{Value, json};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Long enough for a loaded CI machine to start containers and move messages.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The services the cluster runs on, or `None` (with the reason printed) when this run has none.
pub fn services() -> Option<(String, String)> {
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
pub struct Role {
    pub child: Option<Child>,
    /// The controller's URL (`None` for an invoker).
    pub url: Option<String>,
    pub log: PathBuf,
}

impl Role {
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit (an invoker removes its containers first).
    pub fn stop(&mut self) {
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
pub fn plain_log(path: &Path) -> String {
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

pub fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(6000);
    text.get(start..).unwrap_or(&text).to_owned()
}

/// Two controllers and two invokers of one test's cluster.
pub struct Cluster {
    pub postgres: String,
    pub nats: String,
    pub schema: String,
    pub name: String,
    pub dir: tempfile::TempDir,
    pub controllers: Vec<Role>,
    pub invokers: Vec<Role>,
    pub client: reqwest::Client,
    /// Bumped at each start, so every process writes a log of its own.
    pub generation: u32,
}

impl Cluster {
    /// Starts the cluster `name` (`extra` is added to every process's configuration file), or
    /// `None` when the services are missing.
    pub fn start(name: &str, extra: &str) -> Option<Self> {
        let (postgres, nats) = services()?;
        Some(Self::start_on(name, extra, &postgres, &nats))
    }

    /// Starts the cluster `name` on the PostgreSQL at `postgres` and the nats-server at `nats`
    /// (a test's own, see [`PrivateServices`]); the caller has checked that it may run.
    pub fn start_on(name: &str, extra: &str, postgres: &str, nats: &str) -> Self {
        let (postgres, nats) = (postgres.to_owned(), nats.to_owned());
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
        cluster
    }

    pub fn start_all(&mut self) {
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

    pub fn stop_all(&mut self) {
        for role in self.invokers.iter_mut().chain(self.controllers.iter_mut()) {
            role.stop();
        }
        self.invokers.clear();
        self.controllers.clear();
    }

    pub fn spawn(&self, role: &str, id: u32) -> Role {
        self.spawn_with(role, id, &[])
    }

    /// [`Cluster::spawn`] with `extra` arguments on the command line.
    pub fn spawn_with(&self, role: &str, id: u32, extra: &[&str]) -> Role {
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
        command.args(extra);
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

    /// Like [`Cluster::start`], but the invokers relay their containers' API calls to
    /// controller 0 (`--api`), so actions that call the API (feed actions) work: the invokers
    /// [`Cluster::start`] began are stopped and started again with it.
    pub fn start_with_api(name: &str, extra: &str) -> Option<Self> {
        let mut cluster = Self::start(name, extra)?;
        for role in &mut cluster.invokers {
            role.stop();
        }
        cluster.invokers.clear();
        cluster.generation += 1;
        let api = cluster.url(0).trim_start_matches("http://").to_owned();
        for id in 0..2 {
            let role = cluster.spawn_with("invoker", id, &["--api", &api]);
            cluster.invokers.push(role);
        }
        Some(cluster)
    }

    /// Starts invoker `id` again (after a kill): its sandbox and network pool sweep what the
    /// killed process left on the host.
    pub fn restart_invoker(&mut self, id: u32) {
        self.generation += 1;
        let role = self.spawn("invoker", id);
        let index = usize::try_from(id).expect("index");
        self.invokers[index] = role;
    }

    /// Starts controller `id` again (after a kill), on a new port.
    pub fn restart_controller(&mut self, id: u32) {
        self.generation += 1;
        let role = self.spawn("controller", id);
        let index = usize::try_from(id).expect("index");
        self.controllers[index] = role;
    }

    pub fn url(&self, controller: usize) -> &str {
        self.controllers[controller]
            .url
            .as_deref()
            .expect("controller URL")
    }

    pub async fn guest(
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
    pub async fn wait_for_invokers(&self, action: &str) {
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
    pub async fn record(&self, controller: usize, id: &str) -> Value {
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

    /// Runs `whisk admin` on the cluster's store (PostgreSQL), as an operator would.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_whisk"))
            .arg("admin")
            .args(["--store", &self.postgres, "--store-schema", &self.schema])
            .arg("--data-dir")
            .arg(self.dir.path().join("admin"))
            .args(args)
            .env_remove("WHISK_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run whisk admin")
    }

    /// Like [`Cluster::guest`], as the holder of `auth` (`uuid:key`), without a body.
    pub async fn call_as(
        &self,
        controller: usize,
        auth: &str,
        method: Method,
        path: &str,
    ) -> Reply {
        let (user, key) = auth.split_once(':').expect("uuid:key");
        let request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.url(controller)))
            .basic_auth(user, Some(key))
            .timeout(DEADLINE);
        Reply::from(
            request
                .send()
                .await
                .expect("request reaches the controller"),
        )
        .await
    }

    pub fn logs(&self) -> String {
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

pub async fn put_action(cluster: &Cluster, name: &str, code: &str, limits: Value) {
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

pub const ECHO: &str = "function main(params) { return {echo: params.n, pid: process.pid} }";

/// Sleeps `params.ms` milliseconds, then answers.
pub const SLEEPY: &str = "function main(params) { \
     return new Promise(done => setTimeout(() => done({n: params.n}), params.ms || 0)) }";

/// A PostgreSQL and a nats-server of one test's own (started with `.ci/postgres` and
/// `.ci/nats`), which the test may stop and start again on the same port and data to provoke
/// an outage; both are stopped and removed when dropped. The shared services of `.ci/run` are
/// never touched.
pub struct PrivateServices {
    dir: tempfile::TempDir,
    pub postgres: String,
    pub nats: String,
}

impl PrivateServices {
    /// Starts both, or `None` (with the reason printed) when this machine cannot: not root
    /// (invokers need it, and PostgreSQL then runs as its own user), or no PostgreSQL or
    /// nats-server binaries (`.ci/run` installs them).
    pub fn start() -> Option<Self> {
        if !is_root() {
            eprintln!(
                "SKIPPED: invokers need root for containers, and this test runs as another user"
            );
            return None;
        }
        let initdb = std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
            versions
                .flatten()
                .any(|version| version.path().join("bin/initdb").exists())
        });
        let nats_server = Path::new("/usr/sbin/nats-server").exists()
            || Command::new("sh")
                .args(["-c", "command -v nats-server"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
        if !initdb || !nats_server {
            eprintln!(
                "SKIPPED: PostgreSQL (initdb under /usr/lib/postgresql) or nats-server is not \
                 installed (.ci/run installs both)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        // PostgreSQL runs as the `postgres` user, which must reach its data directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod temp dir");
        let mut services = Self {
            dir,
            postgres: String::new(),
            nats: String::new(),
        };
        services.postgres = services.script("postgres", "start", "WHISK_TEST_POSTGRES_URL");
        services.nats = services.script("nats", "start", "WHISK_TEST_NATS_URL");
        Some(services)
    }

    /// Runs `.ci/<service> <action> DIR`; returns the value it exports as `variable`, if asked.
    fn script(&self, service: &str, action: &str, variable: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.ci")
            .join(service);
        let output = Command::new(&script)
            .arg(action)
            .arg(self.dir.path().join(service))
            .stdin(Stdio::null())
            .output()
            .expect("run the service script");
        assert!(
            output.status.success(),
            "{} {action} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let prefix = format!("export {variable}=");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// Stops PostgreSQL, keeping its data and port.
    pub fn pause_postgres(&self) {
        self.script("postgres", "pause", "");
    }

    /// Starts PostgreSQL again where it was.
    pub fn resume_postgres(&self) {
        self.script("postgres", "resume", "");
    }

    /// Stops nats-server, keeping its JetStream store and port.
    pub fn pause_nats(&self) {
        self.script("nats", "pause", "");
    }

    /// Starts nats-server again on the same port and store.
    pub fn resume_nats(&self) {
        self.script("nats", "resume", "");
    }
}

impl Drop for PrivateServices {
    fn drop(&mut self) {
        for service in ["nats", "postgres"] {
            let _ = Command::new(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../.ci")
                    .join(service),
            )
            .arg("stop")
            .arg(self.dir.path().join(service))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}
