//! The edge over real sockets: TLS with HTTP/2 and HTTP/1.1, and the limits it enforces before
//! any handler runs.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use whisk_controller::edge::{EdgeConfig, MAX_URI_LENGTH, PemIdentity, TlsSetupError};
use whisk_controller::{AppState, ControllerConfig, serve_with};

struct Running {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(edge: EdgeConfig) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        let state = AppState::new(store, ControllerConfig::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_with(listener, state, edge, async move {
            let _ = stopped.await;
        }));
        Running {
            address,
            stop: Some(stop),
            server,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let server = &mut self.server;
        let outcome = tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("the edge stops after the shutdown signal")
            .unwrap();
        assert!(outcome.is_ok());
    }
}

fn tls_edge(identity: &PemIdentity) -> EdgeConfig {
    EdgeConfig {
        tls: Some(identity.server_config().unwrap()),
        ..EdgeConfig::default()
    }
}

fn trusting_client(identity: &PemIdentity) -> reqwest::ClientBuilder {
    let certificate =
        reqwest::Certificate::from_pem(identity.certificate_chain.as_bytes()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(certificate)
}

#[tokio::test]
async fn self_signed_tls_serves_http2_and_http1() {
    let identity = PemIdentity::self_signed(&[]).unwrap();
    let edge = Running::start(tls_edge(&identity)).await;
    let url = format!("https://localhost:{}/api/v1", edge.address.port());

    let h2 = trusting_client(&identity).build().unwrap();
    let response = h2.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["description"], "OpenWhisk API");

    let h1 = trusting_client(&identity).http1_only().build().unwrap();
    let response = h1.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    edge.stop().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_by_a_verifying_client() {
    let identity = PemIdentity::self_signed(&[]).unwrap();
    let edge = Running::start(tls_edge(&identity)).await;
    let client = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    let outcome = client
        .get(format!("https://localhost:{}/ping", edge.address.port()))
        .send()
        .await;
    assert!(
        outcome.is_err(),
        "a self-signed certificate must not verify"
    );
    edge.stop().await;
}

#[tokio::test]
async fn plain_http_to_a_tls_port_gets_no_answer_and_the_port_keeps_serving() {
    let identity = PemIdentity::self_signed(&[]).unwrap();
    let edge = Running::start(tls_edge(&identity)).await;
    let address = edge.address;
    let answer = tokio::task::spawn_blocking(move || {
        let mut connection = TcpStream::connect(address).unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        connection
            .write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = connection.read_to_end(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP must not be served"
    );
    let client = trusting_client(&identity).build().unwrap();
    let response = client
        .get(format!("https://localhost:{}/ping", address.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "pong");
    edge.stop().await;
}

#[tokio::test]
async fn a_uri_over_the_limit_is_414_in_openwhisk_error_shape() {
    let edge = Running::start(EdgeConfig::default()).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}/api/v1/namespaces/_/actions/", edge.address);
    let long = format!("{base}{}", "a".repeat(MAX_URI_LENGTH));
    let response = client.get(&long).send().await.unwrap();
    assert_eq!(response.status(), 414);
    let request_id = response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        format!("URI length exceeds the configured limit of {MAX_URI_LENGTH} characters")
    );
    assert_eq!(body["code"], request_id);

    // At the limit the request reaches routing (and authentication asks for credentials).
    let path_room = MAX_URI_LENGTH - "/api/v1/namespaces/_/actions/".len();
    let at_limit = format!("{base}{}", "a".repeat(path_room));
    let response = client.get(&at_limit).send().await.unwrap();
    assert_eq!(response.status(), 401);
    edge.stop().await;
}

#[tokio::test]
async fn an_oversize_request_head_is_refused() {
    let edge = Running::start(EdgeConfig {
        max_head_bytes: 16 * 1024,
        ..EdgeConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{}/ping", edge.address))
        .header("x-padding", "p".repeat(64 * 1024))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        // hyper may also close the connection before the client reads the 431.
        Err(error) => assert!(error.is_request() || error.is_connect(), "{error}"),
    }
    let response = client
        .get(format!("http://{}/ping", edge.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a normal request still works");
    edge.stop().await;
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_head_is_disconnected() {
    let edge = Running::start(EdgeConfig {
        head_timeout: Duration::from_secs(1),
        ..EdgeConfig::default()
    })
    .await;
    let address = edge.address;
    let (closed, waited) = tokio::task::spawn_blocking(move || {
        let mut connection = TcpStream::connect(address).unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        connection
            .write_all(b"GET /ping HTTP/1.1\r\nHost: l")
            .unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let closed = connection.read_to_end(&mut answer).is_ok();
        (closed, started.elapsed())
    })
    .await
    .unwrap();
    assert!(closed, "the edge closes the connection");
    assert!(
        waited < Duration::from_secs(50),
        "closed by the head timeout, not the client's: {waited:?}"
    );
    edge.stop().await;
}

#[test]
fn bad_certificate_material_gives_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let error = PemIdentity::from_files(&missing, &missing).unwrap_err();
    assert!(
        matches!(error, TlsSetupError::Certificate { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("missing.pem"));

    let empty = PemIdentity {
        certificate_chain: String::new(),
        private_key: String::new(),
    };
    assert!(matches!(
        empty.server_config().unwrap_err(),
        TlsSetupError::NoCertificate(_)
    ));

    let identity = PemIdentity::self_signed(&[]).unwrap();
    let other = PemIdentity::self_signed(&[]).unwrap();
    let mismatched = PemIdentity {
        certificate_chain: identity.certificate_chain,
        private_key: other.private_key,
    };
    assert!(matches!(
        mismatched.server_config().unwrap_err(),
        TlsSetupError::Rustls(_)
    ));
}
