//! The invoker's side of the runtime protocol (REFERENCE §13.1–13.3): `POST /init` and `POST /run`
//! to the proxy listening in one container.
//!
//! HTTP/1.1 connections are kept open per container and reused, because a warm activation should
//! cost one request on an established socket, not a TCP handshake as well. Overlapping calls (an
//! action allowing concurrent activations) each take a connection of their own.
//! Outcomes are typed so that [`crate::mapping`] can turn them into OpenWhisk's statuses without
//! looking at transport details.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tracing::{debug, warn};

/// OpenWhisk's default cap on an action's result (REFERENCE §6.2): 1 MB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long to wait between two connection attempts while the proxy is still starting.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(2);

/// A reply the proxy sent, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeReply {
    /// HTTP status of the reply.
    pub status: u16,
    /// The body as text (lossy UTF-8), cut at the client's response cap.
    pub body: String,
    /// Total length of the body in bytes, also when `body` was cut.
    pub length: u64,
    /// True when the body was longer than the cap and `body` holds only its first bytes.
    pub truncated: bool,
    /// Time from sending the request to the end of the reply.
    pub elapsed: Duration,
}

/// Why a call produced no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The deadline passed before the reply was complete (the proxy may still be working).
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection could not be made or broke before a full reply: the proxy (or the whole
    /// container) has died.
    #[error("connection to the runtime failed: {0}")]
    Connection(String),
    /// The request could not be encoded (never expected with JSON values).
    #[error("the request could not be built: {0}")]
    Request(String),
}

impl CallError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout(_))
    }
}

/// The outcome of one `/init` or `/run` call.
pub type CallResult = Result<RuntimeReply, CallError>;

/// A client for the runtime proxy of one container.
#[derive(Debug)]
pub struct RuntimeClient {
    addr: SocketAddr,
    max_response: usize,
    /// Idle kept-alive connections. Usually one; more only while calls overlap (an action with
    /// `limits.concurrency` above 1), each call holding its own connection meanwhile.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl RuntimeClient {
    /// A client for the proxy at `addr` with OpenWhisk's 1 MB result cap.
    pub fn new(addr: SocketAddr) -> RuntimeClient {
        RuntimeClient::with_max_response(addr, DEFAULT_MAX_RESPONSE_BYTES)
    }

    /// A client with a different result cap (a namespace may lower it).
    pub fn with_max_response(addr: SocketAddr, max_response: usize) -> RuntimeClient {
        RuntimeClient {
            addr,
            max_response,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn max_response(&self) -> usize {
        self.max_response
    }

    /// `POST /init`. Connection refusals are retried until `timeout` because the proxy of a fresh
    /// container may not be listening yet (§13.1); any other failure is returned at once.
    pub async fn init(&self, payload: &Value, timeout: Duration) -> CallResult {
        self.call("/init", payload, timeout, true).await
    }

    /// `POST /run`. No retry: a refused connection here means the container died.
    pub async fn run(&self, payload: &Value, timeout: Duration) -> CallResult {
        self.call("/run", payload, timeout, false).await
    }

    async fn call(
        &self,
        path: &str,
        payload: &Value,
        timeout: Duration,
        retry_refused: bool,
    ) -> CallResult {
        let started = Instant::now();
        let deadline = started + timeout;
        let body = serde_json::to_vec(payload).map_err(|e| CallError::Request(e.to_string()))?;
        let outcome = tokio::time::timeout_at(
            deadline.into(),
            self.exchange(path, Bytes::from(body), retry_refused),
        )
        .await;
        // On a timeout the dropped exchange drops its connection too, so a late reply can never
        // be read as the answer to a later call.
        let result = outcome.unwrap_or(Err(CallError::Timeout(timeout)));
        let result = result.map(|mut reply| {
            reply.elapsed = started.elapsed();
            reply
        });
        debug!(addr = %self.addr, path, elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(), "runtime call");
        result
    }

    async fn exchange(&self, path: &str, body: Bytes, retry_refused: bool) -> CallResult {
        let request = http::Request::post(path)
            .header(http::header::HOST, self.addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| CallError::Request(e.to_string()))?;
        let (mut sender, reused) = match self.take_idle() {
            Some(sender) => (sender, true),
            None => (self.connect(retry_refused).await?, false),
        };
        let response = match send(&mut sender, request).await {
            Ok(response) => response,
            // A kept-alive connection the proxy closed while idle: the request never left, so
            // sending it once more on a new connection cannot run the action twice.
            Err(Unsent::Request(request, e)) if reused => {
                debug!(addr = %self.addr, error = %e, "idle runtime connection was closed; reconnecting");
                sender = self.connect(retry_refused).await?;
                send(&mut sender, *request)
                    .await
                    .map_err(Unsent::into_error)?
            }
            Err(e) => return Err(e.into_error()),
        };
        let status = response.status().as_u16();
        let (body, length, truncated) = self.read_capped(response.into_body()).await?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(sender);
        }
        Ok(RuntimeReply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            length,
            truncated,
            elapsed: Duration::ZERO,
        })
    }

    /// An idle connection that is still open, if any.
    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Reads the whole body but keeps only the first `max_response` bytes, so the size in the
    /// "exceeded the allowed length" message is the real one and the connection stays usable.
    async fn read_capped(&self, mut body: Incoming) -> Result<(Vec<u8>, u64, bool), CallError> {
        let mut kept = Vec::new();
        let mut length: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CallError::Connection(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                length += data.len() as u64;
                let room = self.max_response.saturating_sub(kept.len());
                kept.extend_from_slice(&data[..room.min(data.len())]);
            }
        }
        let truncated = length > self.max_response as u64;
        Ok((kept, length, truncated))
    }

    /// Connects; with `retry_refused`, a refused connection is tried again until the caller's
    /// deadline cancels this future (the proxy of a new container may not listen yet).
    async fn connect(&self, retry_refused: bool) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let stream = loop {
            match TcpStream::connect(self.addr).await {
                Ok(stream) => break stream,
                Err(e) if retry_refused && e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
                }
                Err(e) => return Err(CallError::Connection(e.to_string())),
            }
        };
        // Small JSON requests must leave at once rather than wait for Nagle's algorithm.
        if let Err(e) = stream.set_nodelay(true) {
            warn!(addr = %self.addr, error = %e, "could not disable Nagle's algorithm");
        }
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Connection(e.to_string()))?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%addr, error = %e, "runtime connection ended");
            }
        });
        Ok(sender)
    }
}

/// A failed send: either the request never left (and is handed back), or it may have.
enum Unsent {
    Request(Box<http::Request<Full<Bytes>>>, hyper::Error),
    Failed(hyper::Error),
}

impl Unsent {
    fn into_error(self) -> CallError {
        match self {
            Unsent::Request(_, e) | Unsent::Failed(e) => CallError::Connection(e.to_string()),
        }
    }
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<Incoming>, Unsent> {
    if let Err(e) = sender.ready().await {
        return Err(Unsent::Request(Box::new(request), e));
    }
    sender.try_send_request(request).await.map_err(|mut e| {
        let error = e.error().to_string();
        match e.take_message() {
            Some(request) => Unsent::Request(Box::new(request), hyper_error(e)),
            None => {
                debug!(%error, "runtime request failed after it was sent");
                Unsent::Failed(hyper_error(e))
            }
        }
    })
}

fn hyper_error(e: hyper::client::conn::TrySendError<http::Request<Full<Bytes>>>) -> hyper::Error {
    e.into_error()
}
