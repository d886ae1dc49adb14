//! `RuntimeClient` against small scripted HTTP servers: retry of `/init` while nothing listens,
//! one kept-alive connection for many calls, reconnecting after the server closed an idle
//! connection, refused runs.
#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use whisk_runtime::{CallError, RuntimeClient};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 requests on `listener`, answering each with `{"n":<request number>}`; counts
/// accepted connections; closes a connection after `per_connection` replies.
fn serve(listener: TcpListener, per_connection: usize) -> Arc<AtomicUsize> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let requests = Arc::new(AtomicUsize::new(0));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let requests = Arc::clone(&requests);
            tokio::spawn(async move {
                let _ = answer(stream, per_connection, &requests).await;
            });
        }
    });
    accepted
}

async fn answer(
    stream: TcpStream,
    per_connection: usize,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    for _ in 0..per_connection {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
        let reply = json!({ "n": n }).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
    }
    // Dropping the stream closes the connection without telling the client beforehand.
    Ok(())
}

#[tokio::test]
async fn warm_calls_share_one_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = RuntimeClient::new(listener.local_addr().unwrap());
    let accepted = serve(listener, usize::MAX);
    for n in 1..=5 {
        let reply = client.run(&json!({"value":{}}), TIMEOUT).await.unwrap();
        assert_eq!(reply.body, json!({ "n": n }).to_string());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = RuntimeClient::new(listener.local_addr().unwrap());
    let accepted = serve(listener, 1);
    for n in 1..=3 {
        let reply = client.run(&json!({"value":{}}), TIMEOUT).await.unwrap();
        assert_eq!(reply.body, json!({ "n": n }).to_string());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// A port nothing listens on (bound, read back, released).
async fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn init_waits_for_the_proxy_to_listen() {
    let addr = free_port().await;
    let client = Arc::new(RuntimeClient::new(addr));
    let calling = Arc::clone(&client);
    let call = tokio::spawn(async move { calling.init(&json!({"value":{}}), TIMEOUT).await });
    // Let the client meet a refused connection at least once before the proxy appears.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    serve(listener, usize::MAX);
    let reply = call.await.unwrap().unwrap();
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn init_that_never_connects_times_out() {
    let client = RuntimeClient::new(free_port().await);
    let outcome = client
        .init(&json!({"value":{}}), Duration::from_millis(200))
        .await;
    assert_eq!(outcome, Err(CallError::Timeout(Duration::from_millis(200))));
}

#[tokio::test]
async fn run_to_a_dead_container_fails_at_once() {
    let client = RuntimeClient::new(free_port().await);
    let outcome = client.run(&json!({"value":{}}), TIMEOUT).await;
    assert!(
        matches!(outcome, Err(CallError::Connection(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_reply_is_a_connection_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = RuntimeClient::new(listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\"")
            .await;
    });
    let outcome = client.run(&json!({"value":{}}), TIMEOUT).await;
    assert!(
        matches!(outcome, Err(CallError::Connection(_))),
        "{outcome:?}"
    );
}
