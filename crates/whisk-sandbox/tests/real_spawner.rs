//! Real containers, as root (CI runs as root): isolation, confinement, lifecycle.

mod common;

use common::*;
use whisk_sandbox::ExitStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_sees_only_its_own_root_processes_and_hostname() {
    let Some(sandbox) = sandbox("isolation").await else {
        return;
    };
    let host_file = tempfile::NamedTempFile::new().expect("a host /tmp file");
    let script = format!(
        "echo hostname=$(cat /proc/sys/kernel/hostname); \
         echo pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '); \
         echo root=$(ls / | tr '\\n' ' '); \
         for p in /root /home /work /var {host} /etc/shadow; do test -e $p && echo visible=$p; done; \
         echo done=1",
        host = host_file.path().display()
    );
    let (out, err, status) = run(&sandbox, shell("iso", &script)).await;
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(value(&out, "hostname"), Some("action-box"), "{out}");
    assert_eq!(value(&out, "done"), Some("1"), "{out}");
    assert_eq!(
        value(&out, "visible"),
        None,
        "host paths are visible: {out}"
    );
    let pids: Vec<&str> = value(&out, "pids")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(pids.contains(&"1"), "{out}");
    // The shell and its pipeline, numbered from 1 in the container's own PID namespace.
    let ours = std::process::id().to_string();
    assert!(!pids.contains(&ours.as_str()), "{out}");
    assert!(
        pids.iter()
            .all(|pid| pid.parse::<u32>().is_ok_and(|pid| pid < 100)),
        "only the container's processes: {out}"
    );
    sandbox.shutdown().await.expect("shutdown");
}
