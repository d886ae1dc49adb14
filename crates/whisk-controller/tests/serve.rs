//! `serve` over a real socket: answers requests and stops when told to.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tokio::net::TcpListener;
use whisk_controller::{AppState, ControllerConfig, serve};

#[tokio::test]
async fn serves_until_shutdown_is_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let store = whisk_store::open_sqlite(dir.path()).unwrap();
    let state = AppState::new(store, ControllerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));

    // A plain blocking client on its own thread: the point is a real socket, not a client library.
    let answer = tokio::task::spawn_blocking(move || {
        let mut connection = TcpStream::connect(address).unwrap();
        connection
            .write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        connection.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-request-id: "));
    assert!(answer.ends_with("pong"), "{answer}");

    stop.send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops after the shutdown signal")
        .unwrap();
    assert!(outcome.is_ok());
}
