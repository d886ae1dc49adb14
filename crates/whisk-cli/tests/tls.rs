//! `wsk` over HTTPS. The platform itself serves plain HTTP, so this test stands up a minimal TLS
//! endpoint with a self-signed certificate (`tests/fixtures/localhost.*`, generated once with
//! openssl for this test only) that answers every request with one canned namespace list. It
//! checks what matters about the client's TLS: a self-signed certificate is refused by default
//! with `wsk`'s unreachable-host status, and `-i` gets past it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CERT: &[u8] = include_bytes!("fixtures/localhost.crt");
const KEY: &[u8] = include_bytes!("fixtures/localhost.key");
const CLIENT_CA: &[u8] = include_bytes!("fixtures/client-ca.crt");
const BODY: &str = r#"["guest","team"]"#;

/// Serves TLS on a free port on a background thread and returns `127.0.0.1:PORT`; with
/// `client_ca`, clients must present a certificate that CA signed. Failed handshakes just move
/// on to the next connection.
fn serve_tls(client_ca: Option<&[u8]>) -> String {
    let certs = CertificateDer::pem_slice_iter(CERT)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            let complete = loop {
                match tls.read(&mut buffer) {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
                if request.windows(4).any(|w| w == b"\r\n\r\n") {
                    break true;
                }
            };
            if complete {
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
                let _ = tls.write_all(response.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    address
}

fn wsk(args: &[&str]) -> (i32, String, String) {
    wsk_with_props("", args)
}

/// Runs `wsk` with a private properties file holding `props`.
fn wsk_with_props(props: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wskprops"), props).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wsk"))
        .args(args)
        .env("WSK_CONFIG_FILE", dir.path().join("wskprops"))
        .env_remove("WHISK_APIHOST")
        .env_remove("WHISK_AUTH")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn self_signed_certificates_are_refused_unless_insecure() {
    let host = serve_tls(None);
    let (code, stdout, stderr) = wsk(&["--apihost", &host, "-u", "a:b", "namespace", "list"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "error: Unable to obtain the list of available namespaces: cannot reach the API: error sending request for url (https://{host}/api/v1/namespaces): client error (Connect): invalid peer certificate: UnknownIssuer\n"
        )
    );

    let (code, stdout, stderr) = wsk(&["-i", "--apihost", &host, "-u", "a:b", "namespace", "list"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout, "namespaces\nguest\nteam\n");
}

#[test]
fn client_certificates_come_from_flags_or_the_properties_file() {
    let host = serve_tls(Some(CLIENT_CA));
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let cert = format!("{fixtures}/client.crt");
    let key = format!("{fixtures}/client.key");

    let (code, stdout, stderr) = wsk(&["-i", "--apihost", &host, "-u", "a:b", "namespace", "list"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(
            "error: Unable to obtain the list of available namespaces: cannot reach the API: "
        ),
        "{stderr}"
    );

    let (code, stdout, stderr) = wsk(&[
        "-i",
        "--apihost",
        &host,
        "-u",
        "a:b",
        "--cert",
        &cert,
        "--key",
        &key,
        "namespace",
        "list",
    ]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout, "namespaces\nguest\nteam\n");

    let (code, stdout, stderr) = wsk(&[
        "-i",
        "--apihost",
        &host,
        "--cert",
        &cert,
        "namespace",
        "list",
    ]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        "error: a client certificate needs both --cert and --key (or CERT and KEY in the properties)\n"
    );
}
