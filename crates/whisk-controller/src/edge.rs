//! The HTTP(S) edge: what OpenWhisk deploys NGINX for, built into the server.
//!
//! It accepts connections, optionally terminates TLS (rustls, offering HTTP/2 and HTTP/1.1 by
//! ALPN), and hands each request to the router. It also enforces the limits a public endpoint
//! needs before any handler runs: the size of the request head, the length of the URI, and how
//! long a client may take to send its head (so slow clients cannot hold connections open).
//! Body sizes are enforced by the API's own extractors, with OpenWhisk's messages.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::ApiError;

/// OpenWhisk's front door accepts URIs up to 8 KB (REFERENCE §1.2).
pub const MAX_URI_LENGTH: usize = 8 * 1024;

/// How the edge serves connections.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Terminate TLS with this configuration; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The largest request head (request line and headers) accepted, in bytes.
    pub max_head_bytes: usize,
    /// How long a client may take to send a request head (and, with TLS, to finish the handshake).
    pub head_timeout: Duration,
    /// After the shutdown signal, how long requests in flight (and HTTP/2 clients acknowledging
    /// the shutdown) may take before their connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            tls: None,
            max_head_bytes: 64 * 1024,
            head_timeout: Duration::from_secs(20),
            // OpenWhisk's server request timeout: a blocking invocation accepted just before the
            // signal can still be answered.
            shutdown_grace: Duration::from_secs(65),
        }
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the certificate file {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read the private key file {path}: {reason}")]
    PrivateKey { path: String, reason: String },
    #[error("the certificate file {0} holds no certificate")]
    NoCertificate(String),
    #[error("the certificate and key do not form a usable TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// A certificate chain and its private key, PEM encoded.
#[derive(Clone)]
pub struct PemIdentity {
    pub certificate_chain: String,
    pub private_key: String,
}

impl std::fmt::Debug for PemIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        formatter
            .debug_struct("PemIdentity")
            .finish_non_exhaustive()
    }
}

impl PemIdentity {
    /// Reads a PEM certificate chain and a PEM private key from files.
    pub fn from_files(certificate: &Path, key: &Path) -> Result<PemIdentity, TlsSetupError> {
        let certificate_chain =
            std::fs::read_to_string(certificate).map_err(|error| TlsSetupError::Certificate {
                path: certificate.display().to_string(),
                reason: error.to_string(),
            })?;
        let private_key =
            std::fs::read_to_string(key).map_err(|error| TlsSetupError::PrivateKey {
                path: key.display().to_string(),
                reason: error.to_string(),
            })?;
        Ok(PemIdentity {
            certificate_chain,
            private_key,
        })
    }

    /// A development certificate for `localhost`, `127.0.0.1`, `::1` and the given extra names,
    /// signed by itself (clients need `-i` / `rejectUnauthorized: false`, or to trust it).
    pub fn self_signed(extra_names: &[String]) -> Result<PemIdentity, TlsSetupError> {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        names.extend(extra_names.iter().cloned());
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|error| TlsSetupError::SelfSigned(error.to_string()))?;
        Ok(PemIdentity {
            certificate_chain: certified.cert.pem(),
            private_key: certified.signing_key.serialize_pem(),
        })
    }

    /// A rustls server configuration offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
        let chain = CertificateDer::pem_slice_iter(self.certificate_chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsSetupError::Certificate {
                path: "(certificate)".into(),
                reason: error.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsSetupError::NoCertificate("(certificate)".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(self.private_key.as_bytes()).map_err(|error| {
            TlsSetupError::PrivateKey {
                path: "(key)".into(),
                reason: error.to_string(),
            }
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Refuses URIs longer than [`MAX_URI_LENGTH`] with `414` before routing.
pub async fn uri_limit_middleware(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |path_and_query| path_and_query.as_str().len());
    if length > MAX_URI_LENGTH {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("URI length exceeds the configured limit of {MAX_URI_LENGTH} characters"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Serves `app` on `listener` through the edge until `shutdown` completes, then lets the
/// connections in flight finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: EdgeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%address, scheme, "edge listening");
    let acceptor = config.tls.clone().map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.head_timeout)
        .max_buf_size(config.max_head_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_head_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of descriptors or a reset before accept: keep serving others.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let head_timeout = config.head_timeout;
        tokio::spawn(async move {
            let outcome = match acceptor {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(head_timeout, acceptor.accept(stream)).await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(error) = outcome {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(%address, grace_ms = config.shutdown_grace.as_millis(), "connections still open after the shutdown grace; dropping them");
    }
    tracing::info!(%address, "edge stopped");
    Ok(())
}
