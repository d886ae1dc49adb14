//! `whisk standalone` over HTTPS: a generated development certificate, the operator's own files,
//! and clear refusals of incomplete TLS settings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const GUEST: (&str, &str) = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
    "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
);

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn whisk(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_whisk"));
    command
        .args(["standalone", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("WHISK_INVOKER_ENABLED", "false")
        .env("WHISK_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn start(data_dir: &Path, args: &[&str]) -> Server {
    let mut child = whisk(data_dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start whisk standalone");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let url = first.rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("https://"), "{first}");
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

fn client_trusting(cert_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem).unwrap())
        .build()
        .unwrap()
}

async fn namespaces(client: &reqwest::Client, url: &str) -> reqwest::Response {
    // The certificate names localhost and 127.0.0.1; the URL uses the address printed.
    client
        .get(format!("{url}/api/v1/namespaces"))
        .basic_auth(GUEST.0, Some(GUEST.1))
        .send()
        .await
        .unwrap()
}

// Multi-threaded: the clients' connection tasks must keep running while a server is stopped in
// `Drop` (HTTP/2 shutdown waits for the client to acknowledge it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_https_serves_the_api_over_http2() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--tls-self-signed"]);
    let cert = std::fs::read(dir.path().join("tls/self-signed-cert.pem")).unwrap();
    let key = dir.path().join("tls/self-signed-key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "the private key is readable by its owner only"
    );
    let response = namespaces(&client_trusting(&cert), &server.url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!(["guest"]));

    let plain = reqwest::Client::new()
        .get(server.url.replacen("https://", "http://", 1) + "/api/v1")
        .send()
        .await;
    assert!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP is not served on the HTTPS port"
    );
}

// Multi-threaded: the clients' connection tasks must keep running while a server is stopped in
// `Drop` (HTTP/2 shutdown waits for the client to acknowledge it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_certificate_files_are_used() {
    // A first platform generates a certificate and key; a second one serves them as files.
    let first_dir = tempfile::tempdir().unwrap();
    drop(start(first_dir.path(), &["--tls-self-signed"]));
    let cert = first_dir.path().join("tls/self-signed-cert.pem");
    let key = first_dir.path().join("tls/self-signed-key.pem");

    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let client = client_trusting(&std::fs::read(&cert).unwrap());
    assert_eq!(namespaces(&client, &server.url).await.status(), 200);
}

#[test]
fn incomplete_or_unreadable_tls_settings_stop_the_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    for (args, expected) in [
        (vec!["--tls-cert", missing], "--tls-cert needs --tls-key"),
        (vec!["--tls-key", missing], "--tls-key needs --tls-cert"),
        (
            vec!["--tls-self-signed", "--tls-cert", missing],
            "cannot be combined",
        ),
        (
            vec!["--tls-cert", missing, "--tls-key", missing],
            "missing.pem",
        ),
    ] {
        let output = whisk(dir.path(), &args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
