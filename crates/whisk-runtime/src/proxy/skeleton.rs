//! The dockerskeleton protocol: the executable runs once per activation with the arguments as
//! JSON in its first argument; what it prints on stdout is the log, except the last line, which
//! is the result.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use hyper::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

use super::{
    InitRequest, Reply, install_code, locate_exec, log_error, replies, run_env, write_sentinels,
};

const NOT_A_DICTIONARY: &str = "The action did not return a dictionary or array.";
const NOT_AN_ARGUMENT: &str = "The action did not receive a dictionary or array as an argument.";
/// Longest single argument Linux accepts (`MAX_ARG_STRLEN`, 32 pages, less the final NUL).
const MAX_ARGUMENT_BYTES: usize = 131_071;
const NO_ACTION: &str = "no action defined yet";

#[derive(Debug)]
enum State {
    Empty,
    Ready {
        exec: PathBuf,
        env: Vec<(String, String)>,
    },
    Failed,
}

/// The dockerskeleton engine of one container.
#[derive(Debug)]
pub struct Skeleton {
    dir: PathBuf,
    state: Mutex<State>,
}

impl Skeleton {
    pub fn new(dir: PathBuf) -> Skeleton {
        Skeleton {
            dir,
            state: Mutex::new(State::Empty),
        }
    }

    pub(crate) async fn init(&self, payload: Value) -> Reply {
        let mut state = self.state.lock().await;
        if !matches!(*state, State::Empty) {
            log_error(replies::REINIT);
            return Reply::error(StatusCode::FORBIDDEN, replies::REINIT);
        }
        // Without code (or with undecodable code) there is no `exec` to locate: this proxy ships
        // no stub action.
        let init = match InitRequest::parse(&payload) {
            Ok(init) => init,
            Err(reply) => {
                *state = State::Failed;
                log_error(&reply.body);
                write_sentinels();
                return Reply::error(StatusCode::BAD_GATEWAY, replies::NO_BINARY);
            }
        };
        let installed = install_code(&init, &self.dir).and_then(|()| {
            locate_exec(&self.dir).ok_or_else(|| "the archive holds no file named 'exec'".into())
        });
        match installed {
            Ok(exec) => {
                make_executable(&exec);
                *state = State::Ready {
                    exec,
                    env: init.env,
                };
                Reply::ok(r#"{"OK":true}"#.to_string())
            }
            Err(message) => {
                *state = State::Failed;
                log_error(&message);
                write_sentinels();
                Reply::error(StatusCode::BAD_GATEWAY, replies::NO_BINARY)
            }
        }
    }

    pub(crate) async fn run(&self, payload: Value) -> Reply {
        let state = self.state.lock().await;
        let State::Ready { exec, env } = &*state else {
            return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, NO_ACTION);
        };
        let args = payload
            .get("value")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        if !(args.is_object() || args.is_array()) {
            write_sentinels();
            return Reply::error(StatusCode::NOT_FOUND, NOT_AN_ARGUMENT);
        }
        let input = args.to_string();
        let mut command = Command::new(exec);
        // The arguments always arrive on stdin, and also as the first argument when the kernel
        // allows a string that long (MAX_ARG_STRLEN).
        if input.len() <= MAX_ARGUMENT_BYTES {
            command.arg(&input);
        }
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .envs(run_env(&payload))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(dir) = exec.parent() {
            command.current_dir(dir);
        }
        // Not `output()`: it would capture stderr too, and stderr belongs to the container's log.
        let output = match command.spawn() {
            Ok(mut child) => {
                if let Some(mut stdin) = child.stdin.take() {
                    // Feed stdin while stdout is drained, or a big input and a big output could
                    // block each other; an executable that never reads stdin is no error.
                    tokio::spawn(async move {
                        let _ = stdin.write_all(input.as_bytes()).await;
                    });
                }
                child.wait_with_output().await
            }
            Err(e) => Err(e),
        };
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                log_error(&format!("cannot start {}: {e}", exec.display()));
                write_sentinels();
                return Reply::error(StatusCode::BAD_GATEWAY, NOT_A_DICTIONARY);
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut lines: Vec<&str> = stdout.lines().collect();
        while lines.last().is_some_and(|line| line.trim().is_empty()) {
            lines.pop();
        }
        let last = lines.pop().unwrap_or("");
        let result = match serde_json::from_str::<Value>(last) {
            Ok(result @ (Value::Object(_) | Value::Array(_))) => Some(result),
            // Not a result: it was a log line like the others, so it is kept as one.
            _ => {
                lines.push(last);
                None
            }
        };
        {
            let mut out = std::io::stdout().lock();
            for line in &lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
        }
        write_sentinels();
        match result {
            Some(result) => Reply::ok(result.to_string()),
            None => Reply::error(StatusCode::BAD_GATEWAY, NOT_A_DICTIONARY),
        }
    }
}

/// A zip made on another system may have lost the executable bit; the skeleton sets it.
fn make_executable(exec: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(exec) {
        let mode = metadata.permissions().mode() | 0o755;
        let _ = std::fs::set_permissions(exec, std::fs::Permissions::from_mode(mode));
    }
}
