//! Freeze, thaw and removal against the real kernel: a frozen container's processes stop, and
//! removing a cgroup kills everything still in it (grandchildren included) before the rmdir.
//! Runs as root (CI does); skips with the reason only where the machine cannot do it at all.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use whisk_sandbox::{CgroupError, CgroupLayout, CgroupLimits, CgroupManager};

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

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

/// The pids the kernel lists in a cgroup directory.
fn pids_in(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

#[test]
fn freeze_thaw_and_remove_kill_every_process_of_the_container() {
    if !running_as_root() {
        eprintln!("SKIPPED: creating cgroups needs root, and this test runs as another user");
        return;
    }
    let parent = format!("whisk-lifecycle-{}", std::process::id());
    let manager = match CgroupManager::detect(&parent) {
        Ok(manager) => manager,
        Err(error @ CgroupError::MissingController { .. }) => {
            eprintln!("SKIPPED: {error}");
            return;
        }
        Err(error) => panic!("cannot detect the cgroup layout: {error}"),
    };
    let limits = CgroupLimits {
        memory_bytes: 64 * 1024 * 1024,
        pids_max: 16,
    };
    let cgroup = match manager.create("lifecycle-test", limits) {
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

    // Once inside, the shell starts a background grandchild and then waits on its own sleep.
    let spawned = Command::new("sh")
        .args(["-c", "read ready; sleep 300 & sleep 300"])
        .stdin(Stdio::piped())
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
    // Wait (bounded) until the shell and both sleeps are in the cgroup.
    let mut in_cgroup = 0;
    for _ in 0..2000 {
        in_cgroup = pids_in(cgroup.memory_dir()).len();
        if in_cgroup >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let frozen = manager.freeze(&cgroup);
    let thawed = manager.thaw(&cgroup);
    let removed = manager.remove(&cgroup);
    let status = child.wait();
    for dir in parent_dirs(manager.layout(), &parent) {
        let _ = std::fs::remove_dir(dir);
    }

    assert!(added.is_ok(), "add_process: {added:?}");
    assert!(matches!(released, Some(Ok(()))), "{released:?}");
    assert!(
        in_cgroup >= 3,
        "only {in_cgroup} processes reached the cgroup"
    );
    assert!(frozen.is_ok(), "freeze: {frozen:?}");
    assert!(thawed.is_ok(), "thaw: {thawed:?}");
    assert!(removed.is_ok(), "remove: {removed:?}");
    assert!(
        status
            .as_ref()
            .is_ok_and(|status| status.signal() == Some(9)),
        "the shell should have been SIGKILLed: {status:?}"
    );
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }
}
