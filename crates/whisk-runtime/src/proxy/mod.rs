//! `whisk proxy actionloop|skeleton`: the runtime proxy for native executables, run inside a
//! container by the `whisk` binary bound into it.
//!
//! * `actionloop` (kinds like `go:1.20`): OpenWhisk's ActionLoop protocol (REFERENCE §13.6). The
//!   executable is started once at `/init` and then gets one JSON line on stdin per activation,
//!   answering with one JSON line on file descriptor 3.
//! * `skeleton` (`blackbox` with `openwhisk/dockerskeleton`, `wsk action create --native`): the
//!   executable runs once per activation with the JSON arguments as its first argument; the last
//!   line it prints on stdout is the result.
//!
//! The action's files go to the container's writable `/action` (overridable for tests), never to
//! a host path. The server is a single-threaded tokio runtime: one container runs one activation
//! at a time, and a thread pool would only cost start-up time and memory.

mod actionloop;
pub mod archive;
mod skeleton;

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::{LOG_SENTINEL, PROXY_PORT, PROXY_PORT_ENV};

pub use actionloop::ActionLoop;
pub use skeleton::Skeleton;

/// Environment variable naming the address the proxy binds (default all interfaces).
pub const PROXY_HOST_ENV: &str = "__OW_PROXY_HOST";
/// Environment variable naming a file the proxy writes its bound port to once it listens, so a
/// test can start it on port 0 and learn the port without a race.
pub const PROXY_PORT_FILE_ENV: &str = "__OW_PROXY_PORT_FILE";
/// Environment variable moving the action directory away from `/action` (tests on the host).
pub const ACTION_DIR_ENV: &str = "__OW_ACTION_DIR";
/// Where the action's code is written inside a container (a writable tmpfs).
pub const DEFAULT_ACTION_DIR: &str = "/action";

/// Largest request body accepted: a 48 MB action encoded in base64, with room to spare.
const MAX_REQUEST_BYTES: usize = 80 * 1024 * 1024;

/// OpenWhisk's replies shared by both modes.
pub(crate) mod replies {
    pub const REINIT: &str = "Cannot initialize the action more than once.";
    pub const MISSING_CODE: &str = "Missing main/no code to execute.";
    pub const NO_BINARY: &str =
        "The action failed to generate or locate a binary. See logs for details.";
    pub const CANNOT_START: &str = "Cannot start action. Check logs for details.";
}

/// Which protocol the proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    ActionLoop,
    Skeleton,
}

/// Everything the proxy needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub mode: ProxyMode,
    pub addr: SocketAddr,
    pub action_dir: PathBuf,
    pub port_file: Option<PathBuf>,
}

/// Why the proxy could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("usage: whisk proxy actionloop|skeleton [--port N] [--host ADDR] [--dir PATH]: {0}")]
    Usage(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ProxyConfig {
    /// Reads the mode and options from `args` (after `proxy`), with the environment as fallback.
    pub fn from_args(args: &[String]) -> Result<ProxyConfig, ProxyError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut mode = None;
        let mut port = env(PROXY_PORT_ENV);
        let mut host = env(PROXY_HOST_ENV);
        let mut dir = env(ACTION_DIR_ENV);
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = |flag: &str| {
                rest.next()
                    .cloned()
                    .ok_or_else(|| ProxyError::Usage(format!("{flag} needs a value")))
            };
            match arg.as_str() {
                "actionloop" => mode = Some(ProxyMode::ActionLoop),
                "skeleton" => mode = Some(ProxyMode::Skeleton),
                "--port" => port = Some(value("--port")?),
                "--host" => host = Some(value("--host")?),
                "--dir" => dir = Some(value("--dir")?),
                other => return Err(ProxyError::Usage(format!("unexpected argument {other:?}"))),
            }
        }
        let mode = mode.ok_or_else(|| ProxyError::Usage("no mode given".into()))?;
        let port = match port {
            Some(text) => text
                .parse::<u16>()
                .map_err(|_| ProxyError::Usage(format!("bad port {text:?}")))?,
            None => PROXY_PORT,
        };
        let ip = match host {
            Some(text) => text
                .parse::<IpAddr>()
                .map_err(|_| ProxyError::Usage(format!("bad host {text:?}")))?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        Ok(ProxyConfig {
            mode,
            addr: SocketAddr::new(ip, port),
            action_dir: PathBuf::from(dir.unwrap_or_else(|| DEFAULT_ACTION_DIR.to_string())),
            port_file: env(PROXY_PORT_FILE_ENV).map(PathBuf::from),
        })
    }
}

/// Entry point of `whisk proxy ...` (and of this crate's `whisk-runtime-proxy` binary): reads the
/// process arguments after the word `proxy` (or after the program name) and serves until killed.
/// It never returns, so the caller's own start-up (logging, configuration) never runs in a
/// container.
pub fn main_from_args() -> ! {
    let args: Vec<String> = std::env::args().collect();
    let skip = if args.get(1).map(String::as_str) == Some("proxy") {
        2
    } else {
        1
    };
    let result = ProxyConfig::from_args(args.get(skip..).unwrap_or_default()).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(serve(config))
    });
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("whisk proxy: {e}");
            std::process::exit(2)
        }
    }
}

/// The state of one proxy: the protocol engine for its mode.
#[derive(Debug)]
enum Engine {
    ActionLoop(ActionLoop),
    Skeleton(Skeleton),
}

/// Listens on the configured address and serves `/init` and `/run` until the process ends.
pub async fn serve(config: ProxyConfig) -> Result<(), ProxyError> {
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ProxyError::Bind {
            addr: config.addr,
            source,
        })?;
    if let Some(file) = &config.port_file {
        let port = listener.local_addr()?.port();
        let partial = file.with_extension("partial");
        std::fs::write(&partial, port.to_string())?;
        std::fs::rename(&partial, file)?;
    }
    let engine = Arc::new(match config.mode {
        ProxyMode::ActionLoop => Engine::ActionLoop(ActionLoop::new(config.action_dir.clone())),
        ProxyMode::Skeleton => Engine::Skeleton(Skeleton::new(config.action_dir.clone())),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let engine = Arc::clone(&engine);
                async move { Ok::<_, Infallible>(handle(&engine, request).await) }
            });
            // A broken connection only ends that connection; the invoker reconnects.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A reply: status and body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Reply {
    pub fn error(status: StatusCode, message: &str) -> Reply {
        Reply {
            status,
            body: json!({ "error": message }).to_string(),
        }
    }

    pub fn ok(body: String) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
        }
    }
}

async fn handle(engine: &Engine, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let route = (request.method().clone(), request.uri().path().to_string());
    let reply = match route {
        (Method::POST, path) if path == "/init" || path == "/run" => {
            match Limited::new(request.into_body(), MAX_REQUEST_BYTES)
                .collect()
                .await
            {
                Err(e) => Reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("Cannot read the request: {e}"),
                ),
                Ok(body) => match serde_json::from_slice::<Value>(&body.to_bytes()) {
                    Err(e) => Reply::error(
                        StatusCode::BAD_REQUEST,
                        &format!("Error unmarshaling the request: {e}"),
                    ),
                    Ok(payload) => match (engine, path.as_str()) {
                        (Engine::ActionLoop(engine), "/init") => engine.init(payload).await,
                        (Engine::ActionLoop(engine), _) => engine.run(payload).await,
                        (Engine::Skeleton(engine), "/init") => engine.init(payload).await,
                        (Engine::Skeleton(engine), _) => engine.run(payload).await,
                    },
                },
            }
        }
        _ => Reply::error(StatusCode::NOT_FOUND, "Not found"),
    };
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Writes the end-of-activation line on stdout and stderr (§13.4), after anything written before.
pub(crate) fn write_sentinels() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{LOG_SENTINEL}");
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{LOG_SENTINEL}");
    let _ = err.flush();
}

/// Writes a line for the action's logs on stderr.
pub(crate) fn log_error(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{message}");
    let _ = err.flush();
}

/// The `value` of an `/init` request, as far as the native proxies use it.
#[derive(Debug)]
pub(crate) struct InitRequest {
    pub code: Vec<u8>,
    pub binary: bool,
    pub env: Vec<(String, String)>,
}

impl InitRequest {
    /// The reply to send instead when there is no code (§13.6: 403 "Missing main/no code to
    /// execute.") or binary code is not base64 (400, as OpenWhisk's ActionLoop proxy answers).
    pub fn parse(payload: &Value) -> Result<InitRequest, Reply> {
        let value = payload.get("value").cloned().unwrap_or(Value::Null);
        let code = value.get("code").and_then(Value::as_str).unwrap_or("");
        if code.is_empty() {
            return Err(Reply::error(StatusCode::FORBIDDEN, replies::MISSING_CODE));
        }
        let binary = value
            .get("binary")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let code = if binary {
            base64::engine::general_purpose::STANDARD
                .decode(code.trim())
                .map_err(|e| {
                    Reply::error(
                        StatusCode::BAD_REQUEST,
                        &format!("cannot decode the request: {e}"),
                    )
                })?
        } else {
            code.as_bytes().to_vec()
        };
        let env = match value.get("env") {
            Some(Value::Object(entries)) => env_pairs(entries, ""),
            _ => Vec::new(),
        };
        Ok(InitRequest { code, binary, env })
    }
}

/// Environment entries from a JSON object: strings as they are, anything else as compact JSON.
pub(crate) fn env_pairs(entries: &Map<String, Value>, prefix: &str) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|(key, value)| (format!("{prefix}{key}"), crate::payload::env_value(value)))
        .collect()
}

/// `__OW_<KEY>` for every field of a `/run` request other than `value` (§13.3).
pub(crate) fn run_env(payload: &Value) -> Vec<(String, String)> {
    match payload {
        Value::Object(fields) => {
            let rest: Map<String, Value> = fields
                .iter()
                .filter(|(key, _)| key.as_str() != "value")
                .map(|(key, value)| (key.to_uppercase(), value.clone()))
                .collect();
            env_pairs(&rest, "__OW_")
        }
        _ => Vec::new(),
    }
}

/// Writes the action's code under `dir`: an archive is unpacked, anything else becomes `exec`.
pub(crate) fn install_code(init: &InitRequest, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let kind = if init.binary {
        archive::sniff(&init.code)
    } else {
        archive::ArchiveKind::Other
    };
    match kind {
        archive::ArchiveKind::Zip => {
            archive::unpack_zip(&init.code, dir).map_err(|e| e.to_string())
        }
        archive::ArchiveKind::TarGz => {
            archive::unpack_tar_gz(&init.code, dir).map_err(|e| e.to_string())
        }
        archive::ArchiveKind::Other => {
            use std::os::unix::fs::PermissionsExt;
            let exec = dir.join("exec");
            std::fs::write(&exec, &init.code)
                .and_then(|()| {
                    std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|e| format!("cannot write {}: {e}", exec.display()))
        }
    }
}

/// The executable of an installed action: `bin/exec` (ActionLoop's compiled layout) or `exec`.
pub(crate) fn locate_exec(dir: &Path) -> Option<PathBuf> {
    [dir.join("bin").join("exec"), dir.join("exec")]
        .into_iter()
        .find(|path| path.is_file())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_mode_and_options() {
        let config = ProxyConfig::from_args(&args(&[
            "skeleton",
            "--port",
            "9000",
            "--host",
            "127.0.0.1",
            "--dir",
            "/tmp/a",
        ]))
        .unwrap();
        assert_eq!(config.mode, ProxyMode::Skeleton);
        assert_eq!(config.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.action_dir, PathBuf::from("/tmp/a"));
    }

    #[test]
    fn refuses_bad_arguments() {
        for bad in [
            &["--port", "1"][..],
            &["actionloop", "--port", "x"],
            &["actionloop", "--port"],
            &["what"],
        ] {
            assert!(
                matches!(
                    ProxyConfig::from_args(&args(bad)),
                    Err(ProxyError::Usage(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn run_env_upper_cases_every_field_but_value() {
        let env = run_env(&json!({"value":{"a":1},"activation_id":"x","deadline":"5","n":3}));
        assert_eq!(
            env,
            [
                ("__OW_ACTIVATION_ID".to_string(), "x".to_string()),
                ("__OW_DEADLINE".to_string(), "5".to_string()),
                ("__OW_N".to_string(), "3".to_string()),
            ]
        );
    }

    #[test]
    fn init_env_values_become_text() {
        let init = InitRequest::parse(&json!({"value":{"code":"x","env":
            {"S":"s","N":3,"B":true,"O":{"a":[1]},"Z":null}}}))
        .unwrap();
        assert_eq!(
            init.env,
            [
                ("S".to_string(), "s".to_string()),
                ("N".to_string(), "3".to_string()),
                ("B".to_string(), "true".to_string()),
                ("O".to_string(), r#"{"a":[1]}"#.to_string()),
                ("Z".to_string(), String::new()),
            ]
        );
        assert!(!init.binary);
    }

    #[test]
    fn binary_code_that_is_not_base64_fails_init() {
        let reply =
            InitRequest::parse(&json!({"value":{"code":"not base64!","binary":true}})).unwrap_err();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(
            reply
                .body
                .starts_with(r#"{"error":"cannot decode the request: "#),
            "{}",
            reply.body
        );
    }

    #[test]
    fn init_without_code_is_refused() {
        let reply = InitRequest::parse(&json!({"value":{"main":"main"}})).unwrap_err();
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(
            reply.body,
            r#"{"error":"Missing main/no code to execute."}"#
        );
    }
}
