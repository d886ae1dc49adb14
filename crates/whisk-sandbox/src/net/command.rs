//! Running `ip` and `nft`.
//!
//! Several changes go to one process through `-batch -` / `-f -` on stdin: a process start is
//! the main cost of preparing a namespace, and one `nft -f` applies a whole table atomically.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::NetError;

/// Runs `program args...`, writing `input` to its stdin, and returns its stdout.
pub(crate) async fn run(
    program: &Path,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, NetError> {
    let shown = || program.display().to_string();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NetError::Spawn {
            program: shown(),
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that fails early closes its stdin; its exit status says why, so a broken
        // pipe here is left for the status check below.
        let _ = stdin.write_all(text.as_bytes()).await;
        drop(stdin);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| NetError::Spawn {
            program: shown(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetError::Command {
            program: shown(),
            args: args.join(" "),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            input: input.unwrap_or_default().trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
