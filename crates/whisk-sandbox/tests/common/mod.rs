//! Helpers shared by the real-container tests: a sandbox per test (unique instance name, so
//! parallel tests never meet), specs, and reading a container's output.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use whisk_sandbox::{Container, ContainerSpec, ExitStatus, Sandbox, SandboxConfig};

/// Generous: CI runs many tests in parallel on two cores.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

/// A unique instance name for this test process and call.
pub fn instance(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn config(instance: String) -> SandboxConfig {
    SandboxConfig {
        instance,
        spawner_program: PathBuf::from(env!("CARGO_BIN_EXE_whisk-spawner")),
        spawner_args: Vec::new(),
        user_namespaces: true,
    }
}

/// A started sandbox, or `None` (with the reason printed) where the machine cannot run one.
pub async fn sandbox(name: &str) -> Option<Sandbox> {
    if !running_as_root() {
        eprintln!("SKIPPED: containers need root, and this test runs as another user");
        return None;
    }
    Some(
        Sandbox::start(config(instance(name)))
            .await
            .expect("start the sandbox"),
    )
}

pub fn spec(id: &str, argv: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: id.to_owned(),
        hostname: "action-box".to_owned(),
        argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
        env: vec![
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), "/tmp".to_owned()),
        ],
        cwd: "/".into(),
        binds: Vec::new(),
        tmp_size_mb: 16,
        memory_mb: 256,
        pids_max: 64,
        netns: None,
        rootfs: None,
    }
}

pub fn shell(id: &str, script: &str) -> ContainerSpec {
    spec(id, &["/bin/sh", "-c", script])
}

/// Runs a container to its end: its stdout, stderr and exit status.
pub async fn run(sandbox: &Sandbox, spec: ContainerSpec) -> (String, String, ExitStatus) {
    let mut container = sandbox.create(spec).await.expect("create the container");
    let output = tokio::time::timeout(DEADLINE, collect(&mut container))
        .await
        .expect("the container finished in time");
    container.destroy().await.expect("destroy");
    output
}

pub async fn collect(container: &mut Container) -> (String, String, ExitStatus) {
    drop(container.take_stdin());
    let mut stdout = container.take_stdout().expect("stdout");
    let mut stderr = container.take_stderr().expect("stderr");
    let (mut out, mut err) = (String::new(), String::new());
    let (read_out, read_err) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    read_out.expect("read stdout");
    read_err.expect("read stderr");
    let status = container.exited().await;
    (out, err, status)
}

/// The value of `key=` lines printed by a container script.
pub fn value<'a>(output: &'a str, key: &str) -> Option<&'a str> {
    output
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}
