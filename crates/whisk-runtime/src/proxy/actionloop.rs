//! The ActionLoop protocol (REFERENCE §13.6): one long-lived executable per container, one JSON
//! line in on stdin and one JSON line out on file descriptor 3 per activation.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use command_fds::{CommandFdExt, FdMapping};
use hyper::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;

use super::{InitRequest, Reply, install_code, locate_exec, log_error, replies, write_sentinels};

/// What a native action must answer for an array or object to count as a result.
const NOT_A_DICTIONARY: &str = "The action did not return a dictionary or array.";
const COMMAND_EXITED: &str = "command exited";
const NO_ACTION: &str = "no action defined yet";
/// Sent to the child as `__OW_PROXY_VERSION` so an action can tell which proxy runs it.
const PROXY_VERSION: &str = "whisk-rs-1";

#[derive(Debug)]
enum State {
    Empty,
    Running(Box<Running>),
    /// Initialised once; the executable is gone (or never started) and nothing can run.
    /// A second `/init` stays refused.
    Dead,
}

#[derive(Debug)]
struct Running {
    child: Child,
    stdin: ChildStdin,
    results: BufReader<pipe::Receiver>,
}

/// The ActionLoop engine of one container.
#[derive(Debug)]
pub struct ActionLoop {
    dir: PathBuf,
    state: Mutex<State>,
}

impl ActionLoop {
    pub fn new(dir: PathBuf) -> ActionLoop {
        ActionLoop {
            dir,
            state: Mutex::new(State::Empty),
        }
    }

    pub(crate) async fn init(&self, payload: Value) -> Reply {
        let mut state = self.state.lock().await;
        if !matches!(*state, State::Empty) {
            return Reply::error(StatusCode::FORBIDDEN, replies::REINIT);
        }
        let init = match InitRequest::parse(&payload) {
            Ok(init) => init,
            Err(reply) => return reply,
        };
        let failed = |message: &str, reply: &str| {
            log_error(message);
            write_sentinels();
            Reply::error(StatusCode::BAD_GATEWAY, reply)
        };
        if let Err(e) = install_code(&init, &self.dir) {
            *state = State::Dead;
            return failed(&e, replies::NO_BINARY);
        }
        let Some(exec) = locate_exec(&self.dir).filter(|exec| is_runnable(exec)) else {
            *state = State::Dead;
            return failed(
                "no executable 'exec' (or 'bin/exec') found, and this runtime compiles no source",
                replies::NO_BINARY,
            );
        };
        match start(&exec, &init.env).await {
            Ok(running) => {
                *state = State::Running(Box::new(running));
                Reply::ok(r#"{"ok":true}"#.to_string())
            }
            Err(e) => {
                *state = State::Dead;
                failed(&e, replies::CANNOT_START)
            }
        }
    }

    pub(crate) async fn run(&self, payload: Value) -> Reply {
        let mut state = self.state.lock().await;
        let running = match &mut *state {
            State::Running(running) => running,
            // After the executable died there is no action any more, as in OpenWhisk's proxy.
            State::Empty | State::Dead => {
                return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, NO_ACTION);
            }
        };
        if matches!(running.child.try_wait(), Ok(Some(_))) {
            *state = State::Dead;
            write_sentinels();
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, COMMAND_EXITED);
        }
        // serde_json writes no raw newline in compact form, so this is exactly one line.
        let mut line = payload.to_string();
        line.push('\n');
        let mut result = String::new();
        let exchanged = async {
            running.stdin.write_all(line.as_bytes()).await?;
            running.stdin.flush().await?;
            running.results.read_line(&mut result).await
        }
        .await;
        match exchanged {
            Ok(n) if n > 0 => {
                write_sentinels();
                let result = result.trim_end_matches(['\n', '\r']);
                match serde_json::from_str::<Value>(result) {
                    Ok(Value::Object(_)) | Ok(Value::Array(_)) => Reply::ok(result.to_string()),
                    _ => Reply::error(StatusCode::BAD_GATEWAY, NOT_A_DICTIONARY),
                }
            }
            _ => {
                // End of fd 3 or a broken stdin: the executable has exited.
                let _ = running.child.start_kill();
                let _ = running.child.wait().await;
                *state = State::Dead;
                write_sentinels();
                Reply::error(StatusCode::BAD_REQUEST, COMMAND_EXITED)
            }
        }
    }
}

/// A native binary or a script with an interpreter line; anything else would need a compiler.
fn is_runnable(exec: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(exec)
        .and_then(|mut file| file.read_exact(&mut head))
        .map(|()| &head == b"\x7fELF" || head.starts_with(b"#!"))
        .unwrap_or(false)
}

/// Starts the executable with fd 3 as its result channel and only the environment ActionLoop
/// defines: the init `env` entries, the proxy's own `__OW_*` variables and the proxy's version.
async fn start(exec: &Path, init_env: &[(String, String)]) -> Result<Running, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let wait_for_ack = std::env::var("OW_WAIT_FOR_ACK").unwrap_or_default();
    let mut command = Command::new(exec);
    command
        .env_clear()
        .envs(std::env::vars().filter(|(key, _)| key.starts_with("__OW_")))
        .env("__OW_PROXY_VERSION", PROXY_VERSION)
        .env("__OW_EXECUTION_ENV", "")
        .env("__OW_WAIT_FOR_ACK", &wait_for_ack)
        .envs(init_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(dir) = exec.parent() {
        command.current_dir(dir);
    }
    command
        .fd_mappings(vec![FdMapping {
            parent_fd: OwnedFd::from(writer),
            child_fd: 3,
        }])
        .map_err(|e| format!("cannot pass fd 3: {e}"))?;
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exec.display()))?;
    // The parent's copy of the write end must close, or fd 3 would never report the child's end.
    drop(command);
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| "the child has no stdin".to_string())?;
    let results = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| format!("cannot read fd 3: {e}"))?;
    let mut running = Running {
        child,
        stdin,
        results: BufReader::new(results),
    };
    if !wait_for_ack.is_empty() {
        let mut ack = String::new();
        let read = running.results.read_line(&mut ack).await;
        let acknowledged = matches!(read, Ok(n) if n > 0)
            && serde_json::from_str::<Value>(ack.trim())
                .ok()
                .and_then(|v| v.get("ok").and_then(Value::as_bool))
                == Some(true);
        if !acknowledged {
            let _ = running.child.start_kill();
            return Err(format!(
                "the action did not acknowledge its start: {:?}",
                ack.trim()
            ));
        }
    }
    Ok(running)
}
