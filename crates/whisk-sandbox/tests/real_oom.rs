//! The cgroup layer against the real kernel: a process allocating past its container's memory
//! limit is OOM-killed, and the manager reports it. Runs as root (CI does); skips with the reason
//! only where the machine cannot do it at all.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use whisk_sandbox::{CgroupError, CgroupLayout, CgroupLimits, CgroupManager};

const MIB: u64 = 1024 * 1024;

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

/// The parent cgroup's directories, removed at the end (the manager leaves parents in place).
fn parent_dirs(layout: &CgroupLayout, parent: &str) -> Vec<PathBuf> {
    match layout {
        CgroupLayout::V1 {
            memory,
            pids,
            cpu,
            freezer,
            ..
        } => [memory, pids, cpu, freezer]
            .into_iter()
            .map(|root| root.join(parent))
            .collect(),
        CgroupLayout::V2 { root } => vec![root.join(parent)],
    }
}

#[test]
fn a_process_allocating_past_the_memory_limit_is_oom_killed_and_reported() {
    if !running_as_root() {
        eprintln!("SKIPPED: creating cgroups needs root, and this test runs as another user");
        return;
    }
    let parent = format!("whisk-test-{}", std::process::id());
    let manager = match CgroupManager::detect(&parent) {
        Ok(manager) => manager,
        Err(error @ CgroupError::MissingController { .. }) => {
            eprintln!("SKIPPED: {error}");
            return;
        }
        Err(error) => panic!("cannot detect the cgroup layout: {error}"),
    };
    let limits = CgroupLimits {
        memory_bytes: 64 * MIB,
        pids_max: 32,
    };
    let cgroup = match manager.create("oom-test", limits) {
        Ok(cgroup) => cgroup,
        Err(CgroupError::Io { source, path, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            eprintln!(
                "SKIPPED: the kernel refuses to create {}: {source}",
                path.display()
            );
            return;
        }
        Err(error) => panic!("cannot create the cgroup: {error}"),
    };

    // The shell waits for a line on stdin, so it is inside the cgroup before `tail` (which keeps
    // the whole newline-free input in memory) starts allocating.
    let spawned = Command::new("sh")
        .args(["-c", "read ready; head -c 200m /dev/zero | tail"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            let _ = manager.remove(&cgroup);
            panic!("cannot start sh: {error}");
        }
    };
    let added = manager.add_process(&cgroup, child.id());
    let released = child.stdin.take().map(|mut stdin| stdin.write_all(b"go\n"));
    let status = child.wait();
    let oom_killed = manager.oom_killed(&cgroup);
    let removed = manager.remove(&cgroup);
    for dir in parent_dirs(manager.layout(), &parent) {
        let _ = std::fs::remove_dir(dir);
    }

    assert!(added.is_ok(), "add_process: {added:?}");
    assert!(matches!(released, Some(Ok(()))), "{released:?}");
    let status = status.map_err(|error| error.to_string());
    assert!(
        status.as_ref().is_ok_and(|status| !status.success()),
        "the allocation should have been killed: {status:?}"
    );
    assert!(
        matches!(oom_killed, Ok(true)),
        "oom_killed() should report the kill: {oom_killed:?}"
    );
    assert!(removed.is_ok(), "remove: {removed:?}");
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }
    eprintln!("the child ended with {status:?}; oom_killed() = true; cgroup removed");
}
