use super::*;

const MIB: u64 = 1024 * 1024;

fn limits(memory_mib: u64) -> CgroupLimits {
    CgroupLimits {
        memory_bytes: memory_mib * MIB,
        pids_max: 64,
    }
}

fn v1_layout(swap_accounting: bool) -> CgroupLayout {
    CgroupLayout::V1 {
        memory: "/cg/memory".into(),
        pids: "/cg/pids".into(),
        cpu: "/cg/cpu,cpuacct".into(),
        freezer: "/cg/freezer".into(),
        swap_accounting,
    }
}

fn v1_manager(swap_accounting: bool) -> CgroupManager<RecordingCgroupFs> {
    let fs = RecordingCgroupFs::new()
        .with_new_dir_file("cgroup.procs", "")
        .with_new_dir_file(
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .with_new_dir_file("memory.failcnt", "0\n");
    for root in ["/cg/memory", "/cg/pids", "/cg/cpu,cpuacct", "/cg/freezer"] {
        fs.add_dir(root);
    }
    match CgroupManager::new(fs, v1_layout(swap_accounting), "whisk") {
        Ok(manager) => manager,
        Err(error) => panic!("manager: {error}"),
    }
}

fn v2_manager() -> CgroupManager<RecordingCgroupFs> {
    let fs = RecordingCgroupFs::new()
        .with_new_dir_file("cgroup.procs", "")
        .with_new_dir_file("cgroup.subtree_control", "")
        .with_new_dir_file("memory.swap.max", "max\n")
        .with_new_dir_file("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    fs.add_dir("/sys/fs/cgroup");
    fs.set_file(
        "/sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    fs.set_file("/sys/fs/cgroup/cgroup.subtree_control", "memory\n");
    let layout = CgroupLayout::V2 {
        root: "/sys/fs/cgroup".into(),
    };
    match CgroupManager::new(fs, layout, "whisk") {
        Ok(manager) => manager,
        Err(error) => panic!("manager: {error}"),
    }
}

fn create(manager: &CgroupManager<RecordingCgroupFs>, memory_mib: u64) -> ContainerCgroup {
    match manager.create("c1", limits(memory_mib)) {
        Ok(cgroup) => cgroup,
        Err(error) => panic!("create: {error}"),
    }
}

fn writes(manager: &CgroupManager<RecordingCgroupFs>) -> Vec<(String, String)> {
    manager
        .fs()
        .ops()
        .into_iter()
        .filter_map(|op| match op {
            FsOp::Write(path, contents) => Some((path.display().to_string(), contents)),
            _ => None,
        })
        .collect()
}

fn pair(path: &str, contents: &str) -> (String, String) {
    (path.to_owned(), contents.to_owned())
}

#[test]
fn cpu_shares_scale_with_memory_around_the_default_action() {
    assert_eq!(cpu_shares_for_memory(256 * MIB), 1024);
    assert_eq!(cpu_shares_for_memory(128 * MIB), 512);
    assert_eq!(cpu_shares_for_memory(512 * MIB), 2048);
    assert_eq!(cpu_shares_for_memory(0), 2);
    assert_eq!(cpu_shares_for_memory(u64::MAX), 262_144);
    assert_eq!(cpu_weight_for_shares(2), 1);
    assert_eq!(cpu_weight_for_shares(262_144), 10_000);
    assert_eq!(cpu_weight_for_shares(1024), 39);
    assert_eq!(cpu_weight_for_shares(2048), 79);
}

#[test]
fn v1_create_makes_a_cgroup_per_hierarchy_with_memsw_equal_to_memory() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    assert_eq!(cgroup.memory_dir(), Path::new("/cg/memory/whisk/c1"));
    for dir in cgroup.dirs() {
        assert!(manager.fs().has_dir(dir), "{}", dir.display());
    }
    assert_eq!(
        writes(&manager),
        vec![
            pair("/cg/memory/whisk/c1/memory.limit_in_bytes", "268435456"),
            pair(
                "/cg/memory/whisk/c1/memory.memsw.limit_in_bytes",
                "268435456"
            ),
            pair("/cg/pids/whisk/c1/pids.max", "64"),
            pair("/cg/cpu,cpuacct/whisk/c1/cpu.shares", "1024"),
        ]
    );
}

#[test]
fn v1_without_swap_accounting_sets_only_the_memory_limit() {
    let manager = v1_manager(false);
    create(&manager, 128);
    let written = writes(&manager);
    assert!(written.contains(&pair(
        "/cg/memory/whisk/c1/memory.limit_in_bytes",
        "134217728"
    )));
    assert!(!written.iter().any(|(path, _)| path.contains("memsw")));
}

#[test]
fn v2_create_delegates_controllers_and_sets_max_swap_zero_and_weight() {
    let manager = v2_manager();
    let cgroup = create(&manager, 512);
    assert_eq!(cgroup.dirs(), vec![Path::new("/sys/fs/cgroup/whisk/c1")]);
    assert_eq!(
        writes(&manager),
        vec![
            // memory was already delegated at the root; only the missing ones are added.
            pair("/sys/fs/cgroup/cgroup.subtree_control", "+pids +cpu"),
            pair(
                "/sys/fs/cgroup/whisk/cgroup.subtree_control",
                "+memory +pids +cpu"
            ),
            pair("/sys/fs/cgroup/whisk/c1/memory.max", "536870912"),
            pair("/sys/fs/cgroup/whisk/c1/memory.swap.max", "0"),
            pair("/sys/fs/cgroup/whisk/c1/pids.max", "64"),
            pair("/sys/fs/cgroup/whisk/c1/cpu.weight", "79"),
        ]
    );
}

#[test]
fn v2_without_the_memory_controller_is_a_typed_error() {
    let manager = v2_manager();
    manager
        .fs()
        .set_file("/sys/fs/cgroup/cgroup.controllers", "cpu pids\n");
    assert!(matches!(
        manager.create("c1", limits(256)),
        Err(CgroupError::MissingController {
            controller: "memory"
        })
    ));
}

#[test]
fn add_process_writes_the_pid_into_every_hierarchy() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    assert!(manager.add_process(&cgroup, 4242).is_ok());
    for dir in cgroup.dirs() {
        assert_eq!(
            manager.fs().file(dir.join("cgroup.procs")).as_deref(),
            Some("4242\n")
        );
    }
}

#[test]
fn pid_zero_is_refused_because_it_would_move_the_caller() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    let before = manager.fs().ops().len();
    assert!(matches!(
        manager.add_process(&cgroup, 0),
        Err(CgroupError::InvalidPid)
    ));
    assert_eq!(manager.fs().ops().len(), before);
}

#[test]
fn freeze_and_thaw_use_freezer_state_on_v1_and_cgroup_freeze_on_v2() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    assert!(manager.freeze(&cgroup).is_ok());
    let state = "/cg/freezer/whisk/c1/freezer.state";
    assert_eq!(manager.fs().file(state).as_deref(), Some("FROZEN"));
    assert!(manager.thaw(&cgroup).is_ok());
    assert_eq!(manager.fs().file(state).as_deref(), Some("THAWED"));

    let manager = v2_manager();
    let cgroup = create(&manager, 256);
    assert!(manager.freeze(&cgroup).is_ok());
    let freeze = "/sys/fs/cgroup/whisk/c1/cgroup.freeze";
    assert_eq!(manager.fs().file(freeze).as_deref(), Some("1"));
    assert!(manager.thaw(&cgroup).is_ok());
    assert_eq!(manager.fs().file(freeze).as_deref(), Some("0"));
}

#[test]
fn oom_kill_is_read_from_oom_control_on_v1_and_memory_events_on_v2() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    assert!(matches!(manager.oom_killed(&cgroup), Ok(false)));
    manager.fs().set_file(
        "/cg/memory/whisk/c1/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    assert!(matches!(manager.oom_killed(&cgroup), Ok(true)));

    let manager = v2_manager();
    let cgroup = create(&manager, 256);
    assert!(matches!(manager.oom_killed(&cgroup), Ok(false)));
    manager.fs().set_file(
        "/sys/fs/cgroup/whisk/c1/memory.events",
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    );
    assert!(matches!(manager.oom_killed(&cgroup), Ok(true)));
}

#[test]
fn old_v1_kernels_without_an_oom_kill_counter_fall_back_to_failcnt() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    let memory = cgroup.memory_dir().to_path_buf();
    manager.fs().set_file(
        memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\n",
    );
    assert!(matches!(manager.oom_killed(&cgroup), Ok(false)));
    manager.fs().set_file(memory.join("memory.failcnt"), "17\n");
    assert!(matches!(manager.oom_killed(&cgroup), Ok(true)));
}

#[test]
fn garbage_in_a_control_file_is_a_typed_error_not_a_panic() {
    let manager = v2_manager();
    let cgroup = create(&manager, 256);
    manager
        .fs()
        .set_file("/sys/fs/cgroup/whisk/c1/memory.events", "oom_kill many\n");
    assert!(matches!(
        manager.oom_killed(&cgroup),
        Err(CgroupError::UnexpectedContents { .. })
    ));
}

#[test]
fn v1_remove_freezes_kills_every_leftover_then_removes_each_directory() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    assert!(manager.add_process(&cgroup, 10).is_ok());
    assert!(manager.add_process(&cgroup, 11).is_ok());
    let before = manager.fs().ops().len();
    assert!(manager.remove(&cgroup).is_ok());
    let ops = manager.fs().ops().split_off(before);
    let freezer_state = PathBuf::from("/cg/freezer/whisk/c1/freezer.state");
    assert_eq!(
        ops.first(),
        Some(&FsOp::Write(freezer_state, "FROZEN".into()))
    );
    let kills: Vec<&FsOp> = ops
        .iter()
        .filter(|op| matches!(op, FsOp::Kill(_)))
        .collect();
    assert_eq!(kills, vec![&FsOp::Kill(10), &FsOp::Kill(11)]);
    let removed: Vec<&FsOp> = ops
        .iter()
        .filter(|op| matches!(op, FsOp::RemoveDir(_)))
        .collect();
    assert_eq!(removed.len(), 4);
    for dir in cgroup.dirs() {
        assert!(!manager.fs().has_dir(dir));
    }
    // The parent stays for the next container.
    assert!(manager.fs().has_dir("/cg/memory/whisk"));
}

#[test]
fn v2_remove_uses_cgroup_kill_when_the_kernel_has_it() {
    let manager = v2_manager();
    let cgroup = create(&manager, 256);
    let dir = cgroup.memory_dir().to_path_buf();
    manager.fs().set_file(dir.join("cgroup.kill"), "");
    // The fake's kernel does not act on cgroup.kill; an empty cgroup stands for its effect.
    assert!(manager.remove(&cgroup).is_ok());
    assert!(
        manager
            .fs()
            .ops()
            .contains(&FsOp::Write(dir.join("cgroup.kill"), "1".into()))
    );
    assert!(!manager.fs().has_dir(&dir));
}

#[test]
fn removing_a_missing_cgroup_succeeds_so_sweeps_can_repeat() {
    let manager = v1_manager(true);
    let cgroup = create(&manager, 256);
    assert!(manager.remove(&cgroup).is_ok());
    assert!(manager.remove(&cgroup).is_ok());
    let never_created = manager.cgroup_for("never");
    assert!(never_created.is_ok_and(|cgroup| manager.remove(&cgroup).is_ok()));
}

#[test]
fn a_failed_limit_write_removes_the_half_made_cgroup() {
    let manager = v1_manager(true);
    manager.fs().fail_writes_to("pids.max");
    let created = manager.create("c1", limits(256));
    assert!(
        matches!(&created, Err(CgroupError::Io { action: "write", path, .. }) if path.ends_with("pids.max")),
        "{created:?}"
    );
    for dir in ["/cg/memory", "/cg/pids", "/cg/cpu,cpuacct", "/cg/freezer"] {
        assert!(
            !manager.fs().has_dir(Path::new(dir).join("whisk/c1")),
            "{dir}"
        );
    }
}

#[test]
fn limits_are_validated_before_anything_is_touched() {
    let manager = v1_manager(true);
    for bad in [
        CgroupLimits {
            memory_bytes: 1,
            pids_max: 64,
        },
        CgroupLimits {
            memory_bytes: 256 * MIB,
            pids_max: 0,
        },
    ] {
        assert!(matches!(
            manager.create("c1", bad),
            Err(CgroupError::InvalidLimits { .. })
        ));
    }
    assert!(manager.fs().ops().is_empty());
}

#[test]
fn container_ids_and_parents_cannot_escape_the_hierarchy() {
    let manager = v1_manager(true);
    for bad in ["", "..", "a/b", "a.b", "c1 ", &"x".repeat(65)] {
        assert!(
            matches!(
                manager.cgroup_for(bad),
                Err(CgroupError::InvalidContainerId { .. })
            ),
            "{bad:?}"
        );
    }
    for bad in ["", "/whisk", "../whisk", "whisk/../x"] {
        assert!(
            matches!(
                CgroupManager::new(RecordingCgroupFs::new(), v1_layout(false), bad),
                Err(CgroupError::InvalidParent { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(CgroupManager::new(RecordingCgroupFs::new(), v1_layout(false), "whisk/test").is_ok());
}
