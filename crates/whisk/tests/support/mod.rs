//! Starts the real `whisk` binary on a free port with a temporary data directory, for tests that
//! drive it over HTTP exactly as a user would.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub mod cluster;

use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const GUEST_AUTH: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// One running `whisk standalone`, stopped (SIGTERM) when dropped.
pub struct Platform {
    /// Whether `whisk standalone` may start its invoker (and so containers and host networking).
    invoker: bool,
    /// Extra command-line arguments given at every start (restarts too), e.g. `--tls-self-signed`.
    args: Vec<String>,
    child: Option<Child>,
    pub url: String,
    data_dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Platform {
    /// A platform for API tests: no invoker, so no containers or host network setup.
    pub fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let (child, url) = spawn(data_dir.path(), false, &[]);
        Self {
            invoker: false,
            args: Vec::new(),
            child: Some(child),
            url,
            data_dir,
            client: reqwest::Client::new(),
        }
    }

    /// Starts with `toml` as the configuration file (kept in the data directory as
    /// `whisk.toml`, so restarts use it too); its `[invoker]` section decides about the invoker.
    pub fn start_with_config(toml: &str) -> Self {
        Self::start_with_config_and_args(toml, &[])
    }

    /// Like [`Platform::start_with_config`], with extra `whisk standalone` arguments. With
    /// `--tls-self-signed` the platform serves HTTPS and [`Platform::call`] trusts the certificate
    /// it generated (see [`Platform::tls_certificate`]).
    pub fn start_with_config_and_args(toml: &str, args: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        std::fs::write(data_dir.path().join(CONFIG_FILE), toml).expect("write whisk.toml");
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let (child, url) = spawn(data_dir.path(), true, &args);
        let mut platform = Self {
            invoker: true,
            args,
            child: Some(child),
            url,
            data_dir,
            client: reqwest::Client::new(),
        };
        if platform.url.starts_with("https://") {
            platform.client = platform.client_builder().build().expect("HTTPS client");
        }
        platform
    }

    /// The self-signed certificate a `--tls-self-signed` platform wrote, as PEM.
    pub fn tls_certificate(&self) -> Vec<u8> {
        let path = self.data_dir.path().join("tls/self-signed-cert.pem");
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// A client builder for this platform: over HTTPS it trusts only the platform's own
    /// self-signed certificate, so a test proves the certificate is the one served.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        if !self.url.starts_with("https://") {
            return builder;
        }
        let certificate =
            reqwest::Certificate::from_pem(&self.tls_certificate()).expect("PEM certificate");
        builder
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(certificate)
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        let (child, url) = spawn(self.data_dir.path(), self.invoker, &self.args);
        self.child = Some(child);
        self.url = url;
    }

    /// Sends SIGTERM and waits; panics if the server does not exit cleanly in time.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let status = wait_with_timeout(&mut child, Duration::from_secs(10));
            assert!(status.success(), "whisk exited with {status}");
        }
    }

    /// Runs `whisk admin …` on this platform's data directory.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_whisk"))
            .arg("admin")
            .args(args)
            .env("WHISK_DATA_DIR", self.data_dir.path())
            .output()
            .expect("run whisk admin")
    }

    /// Creates a subject with `whisk admin user create` and returns its `uuid:key`.
    pub fn create_user(&self, subject: &str) -> String {
        let output = self.admin(&["user", "create", subject]);
        assert!(
            output.status.success(),
            "user create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// Sends a request as `auth` (`uuid:key`, or none) and returns the status, headers and JSON body
    /// (`Value::Null` for an empty or non-JSON body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.api(path));
        if let Some(auth) = auth {
            let (user, key) = auth.split_once(':').expect("uuid:key");
            request = request.basic_auth(user, Some(key));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request reaches the server")).await
    }

    pub async fn guest(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(GUEST_AUTH), body).await
    }

    /// Repeats a bodiless request as `auth` until `accept` takes its reply (30 s at most). For
    /// what `whisk admin` changed: it writes the store behind the server's back, and the server
    /// serves identities and limits from a cache for up to `IDENTITY_TTL` (2 s).
    pub async fn call_until(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        accept: impl Fn(&Reply) -> bool,
    ) -> Reply {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.call(method.clone(), path, auth, None).await;
            if accept(&reply) {
                return reply;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{method} {path} never gave the expected reply; last: {} {}",
                reply.status,
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn raw(&self) -> &reqwest::Client {
        &self.client
    }

    /// Polls `GET /activations/{id}` as the guest until the record is stored (30 s at most):
    /// records are written after the answer, so a test must not expect one at once.
    pub async fn wait_for_record(&self, id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self
                .guest(
                    Method::GET,
                    &format!("/namespaces/_/activations/{id}"),
                    None,
                )
                .await;
            if reply.status == StatusCode::OK {
                return reply.body;
            }
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
            assert!(
                std::time::Instant::now() < deadline,
                "no record for {id} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Platform {
    /// Stops gracefully so an invoker removes its containers, cgroups and network namespaces
    /// from the host; kills only a server that does not stop in time.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
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

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    /// Asserts an OpenWhisk error reply: this status, this exact message, and the transaction id
    /// in `code` matching the `X-Request-ID` header.
    #[track_caller]
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status.as_u16(), status, "reply: {}", self.text);
        assert_eq!(self.body["error"], message, "reply: {}", self.text);
        let request_id = self
            .headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok());
        assert_eq!(
            self.body["code"].as_str(),
            request_id,
            "reply: {}",
            self.text
        );
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "reply: {}", self.text);
        &self.body
    }
}

/// The configuration file [`Platform::start_with_config`] writes into the data directory.
const CONFIG_FILE: &str = "whisk.toml";

fn spawn(data_dir: &Path, invoker: bool, args: &[String]) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_whisk"));
    command
        .args(["standalone", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .args(args);
    if !invoker {
        command.env("WHISK_INVOKER_ENABLED", "false");
    }
    let config = data_dir.join(CONFIG_FILE);
    if config.exists() {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .env("WHISK_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start whisk standalone");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("whisk printed nothing before exiting")
        .expect("readable stdout");
    let url = first
        .rsplit(' ')
        .next()
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for whisk") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("whisk did not stop within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Whether this process runs as root, which real containers need (namespaces, cgroups, nftables).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

static NEXT_INVOKER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A platform whose invoker runs real containers, with `extra` appended to its configuration
/// and `args` given to `whisk standalone`; `None` (with the reason printed) without root.
///
/// Its instance name (which names the host's cgroups, network namespaces and nft table) and its
/// subnet are its own, so tests running in parallel processes never meet on the host.
pub fn platform_with_invoker(name: &str, extra: &str, args: &[&str]) -> Option<Platform> {
    if !running_as_root() {
        eprintln!("SKIPPED: containers need root, and this test runs as another user");
        return None;
    }
    let pid = std::process::id();
    let n = NEXT_INVOKER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A random /26 of 10.192.0.0/11: the network pool refuses a subnet already on the host, so
    // parallel processes must not pick the same one.
    let slot: u32 = rand::random_range(0..32_768);
    let base = u32::from(std::net::Ipv4Addr::new(10, 192, 0, 0)) + slot * 64;
    let subnet = format!("{}/26", std::net::Ipv4Addr::from(base));
    Some(Platform::start_with_config_and_args(
        &format!(
            "[invoker]\ninstance = \"e2e-{name}-{pid}-{n}\"\nsubnet = \"{subnet}\"\n\
             stem-cells = false\nnetwork = \"none\"\n{extra}"
        ),
        args,
    ))
}
