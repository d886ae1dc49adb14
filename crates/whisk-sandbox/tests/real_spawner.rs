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
         for p in /root /home /work /var /sys {host} /etc/shadow; do test -e $p && echo visible=$p; done; \
         echo cgroup=$(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\\n' ' '); \
         echo procsys=$(grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1); \
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_has_no_capabilities_no_new_privs_seccomp_and_unprivileged_ids() {
    let Some(sandbox) = sandbox("confined").await else {
        return;
    };
    let out = confinement_report(&sandbox).await;
    if sandbox.user_namespaces() {
        assert_eq!(value(&out, "uidmap"), Some("0 2000000000 65536"), "{out}");
        assert_eq!(value(&out, "uid"), Some("0"), "root inside, mapped: {out}");
    } else {
        eprintln!("no user namespaces on this kernel: the uid map is not checked");
    }
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_user_namespace_the_program_runs_as_an_unprivileged_host_uid() {
    if !running_as_root() {
        eprintln!("SKIPPED: containers need root, and this test runs as another user");
        return;
    }
    let mut config = config(instance("nouserns"));
    config.user_namespaces = false;
    let sandbox = whisk_sandbox::Sandbox::start(config).await.expect("start");
    assert!(!sandbox.user_namespaces());
    let out = confinement_report(&sandbox).await;
    assert_eq!(value(&out, "uid"), Some("2000000000"), "{out}");
    assert_eq!(
        value(&out, "uidmap"),
        Some("0 0 4294967295"),
        "the host's ids: {out}"
    );
    let (out, err, status) = run(
        &sandbox,
        shell(
            "nouserns-iso",
            "for p in /root /work /home; do test -e $p && echo visible=$p; done; echo done=1",
        ),
    )
    .await;
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(value(&out, "visible"), None, "{out}");
    sandbox.shutdown().await.expect("shutdown");
}

/// Runs a script printing the program's capabilities, flags, ids and limits as `key=value`
/// lines, checks what holds with or without a user namespace, and returns the output.
async fn confinement_report(sandbox: &whisk_sandbox::Sandbox) -> String {
    let script = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status \
                  | tr -d ' \\t' | tr ':' '='; \
                  echo uid=$(id -u); \
                  echo uidmap=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'); \
                  echo nofile=$(ulimit -n); echo core=$(ulimit -c); \
                  echo rootro=$(touch /x 2>/dev/null && echo no || echo yes); \
                  echo tmp=$(touch /tmp/x && echo writable)";
    let (out, err, status) = run(sandbox, shell("caps", script)).await;
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(value(&out, key), Some("0000000000000000"), "{key}: {out}");
    }
    assert_eq!(value(&out, "NoNewPrivs"), Some("1"), "{out}");
    assert_eq!(value(&out, "Seccomp"), Some("2"), "{out}");
    assert_eq!(value(&out, "nofile"), Some("1024"), "{out}");
    assert_eq!(value(&out, "core"), Some("0"), "{out}");
    assert_eq!(value(&out, "rootro"), Some("yes"), "{out}");
    assert_eq!(value(&out, "tmp"), Some("writable"), "{out}");
    out
}

/// Python's ctypes calls the syscalls directly, so the answer is the filter's, not a tool's.
/// (Raw syscall numbers are x86_64's; the test is skipped elsewhere.)
const REFUSED_SYSCALLS: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return 0 if result == 0 else ctypes.get_errno()
print("mount=%d" % errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
print("unshare=%d" % errno_of(libc.unshare(0x10000000)))
print("ptrace=%d" % errno_of(libc.ptrace(0, 0, None, None)))
print("setns=%d" % errno_of(libc.setns(0, 0)))
print("keyctl=%d" % errno_of(libc.syscall(250, 0, 0, 0, 0, 0)))
# A raw x86_64 clone(CLONE_NEWNS | SIGCHLD): the filter checks clone's flags.
pid = libc.syscall(56, 0x00020000 | 17, 0, 0, 0, 0)
if pid == 0:
    os._exit(0)
print("clone_newns=%d" % (ctypes.get_errno() if pid < 0 else 0))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_unshare_and_ptrace_are_refused() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIPPED: the raw syscall numbers in this test are x86_64's");
        return;
    }
    let Some(sandbox) = sandbox("refused").await else {
        return;
    };
    let (out, err, status) = run(
        &sandbox,
        spec("refused", &["python3", "-c", REFUSED_SYSCALLS]),
    )
    .await;
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    for key in [
        "mount",
        "unshare",
        "ptrace",
        "setns",
        "keyctl",
        "clone_newns",
    ] {
        assert_eq!(
            value(&out, key),
            Some("1"),
            "{key} must fail with EPERM: {out}"
        );
    }
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_work_in_python_and_node() {
    let Some(sandbox) = sandbox("threads").await else {
        return;
    };
    let python = "import threading\n\
                  results = []\n\
                  threads = [threading.Thread(target=lambda i=i: results.append(i)) for i in range(8)]\n\
                  [t.start() for t in threads]\n\
                  [t.join() for t in threads]\n\
                  print('python=%d' % len(results))";
    let (out, err, status) = run(&sandbox, spec("py", &["python3", "-c", python])).await;
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(value(&out, "python"), Some("8"), "{out}");

    if which("node") {
        let node = "const { Worker } = require('worker_threads');\n\
                    const w = new Worker('require(\"worker_threads\").parentPort.postMessage(6*7)', { eval: true });\n\
                    w.on('message', (m) => { console.log('node=' + m); process.exit(0); });\n\
                    w.on('error', (e) => { console.error(e); process.exit(3); });";
        let (out, err, status) = run(&sandbox, spec("node", &["node", "-e", node])).await;
        assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
        assert_eq!(value(&out, "node"), Some("42"), "{out}");
    } else {
        eprintln!("node is not installed on this host: only python threads were checked");
    }
    sandbox.shutdown().await.expect("shutdown");
}

fn which(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|dir| std::path::Path::new(dir).join(program).exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocating_past_64_mb_is_an_oom_kill_reported_as_such() {
    let Some(sandbox) = sandbox("oom").await else {
        return;
    };
    let mut oom = spec(
        "oom",
        &[
            "python3",
            "-c",
            "x = bytearray(256 * 1024 * 1024)\nprint('survived')",
        ],
    );
    oom.memory_mb = 64;
    let mut container = sandbox.create(oom).await.expect("create");
    let (out, _, status) = tokio::time::timeout(DEADLINE, collect(&mut container))
        .await
        .expect("ended in time");
    assert!(!out.contains("survived"), "{out}");
    assert_ne!(status, ExitStatus::Code(0));
    assert!(container.oom_killed().await.expect("read the OOM state"));
    container.destroy().await.expect("destroy");

    let mut fine = spec("fine", &["python3", "-c", "x = bytearray(8 * 1024 * 1024)"]);
    fine.memory_mb = 64;
    let mut container = sandbox.create(fine).await.expect("create");
    let (_, err, status) = tokio::time::timeout(DEADLINE, collect(&mut container))
        .await
        .expect("ended in time");
    assert_eq!(status, ExitStatus::Code(0), "{err}");
    assert!(!container.oom_killed().await.expect("read the OOM state"));
    container.destroy().await.expect("destroy");
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_stopped_by_the_pids_limit() {
    let Some(sandbox) = sandbox("forkbomb").await else {
        return;
    };
    let mut bomb = shell(
        "bomb",
        "i=0; while [ $i -lt 200 ]; do sleep 1000 & i=$((i+1)); done; echo after=$i",
    );
    bomb.pids_max = 16;
    let mut container = sandbox.create(bomb).await.expect("create");
    let (out, err, _) = tokio::time::timeout(DEADLINE, collect(&mut container))
        .await
        .expect("ended in time");
    assert!(
        err.to_lowercase().contains("fork") || err.contains("Resource temporarily unavailable"),
        "the shell reports failed forks: stdout {out}\nstderr {err}"
    );
    let pids_current = container
        .cgroup()
        .dirs()
        .iter()
        .map(|dir| dir.join("pids.current"))
        .find(|path| path.exists())
        .map(|path| std::fs::read_to_string(path).expect("read pids.current"));
    if let Some(current) = pids_current {
        let current: u64 = current.trim().parse().expect("a number");
        assert!(current <= 16, "pids.current {current}");
    }
    container.destroy().await.expect("destroy");
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_name_their_step_and_leave_nothing() {
    let Some(sandbox) = sandbox("errors").await else {
        return;
    };
    let mut bad_bind = shell("badbind", "true");
    let missing = format!("/nonexistent-{}", std::process::id());
    bad_bind
        .binds
        .push(whisk_sandbox::Bind::read_only(&missing, "/action"));
    let error = sandbox
        .create(bad_bind)
        .await
        .expect_err("a missing bind source");
    let message = error.to_string();
    assert!(
        message.contains(&format!("bind source {missing} for /action"))
            && message.contains("No such file"),
        "{message}"
    );

    let error = sandbox
        .create(spec("noexec", &["/no/such/program"]))
        .await
        .expect_err("a missing program");
    assert!(
        error.to_string().contains("exec /no/such/program"),
        "{error}"
    );

    let mut bad_cwd = shell("badcwd", "true");
    bad_cwd.cwd = "/action".into();
    let error = sandbox.create(bad_cwd).await.expect_err("a missing cwd");
    assert!(
        error.to_string().contains("cwd /action: not a directory"),
        "{error}"
    );

    let mut bad_netns = shell("badnetns", "true");
    bad_netns.netns = Some("/run/netns/whisk-test-missing-namespace".into());
    let error = sandbox
        .create(bad_netns)
        .await
        .expect_err("a missing netns");
    assert!(error.to_string().contains("open netns"), "{error}");

    let mut invalid = shell("invalid", "true");
    invalid.cwd = "relative".into();
    assert!(matches!(
        sandbox.create(invalid).await,
        Err(whisk_sandbox::SandboxError::Spec(_))
    ));

    for id in ["badbind", "noexec", "badcwd", "badnetns"] {
        let cgroup = sandbox.cgroups().cgroup_for(id).expect("cgroup paths");
        for dir in cgroup.dirs() {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
    // The sandbox still works after failures.
    let (out, _, status) = run(&sandbox, shell("after", "echo ok=1")).await;
    assert_eq!(
        (value(&out, "ok"), status),
        (Some("1"), ExitStatus::Code(0))
    );
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_code_dir_is_bound_read_only() {
    let Some(sandbox) = sandbox("binds").await else {
        return;
    };
    let code = tempfile::tempdir().expect("a code dir");
    std::fs::write(code.path().join("main.txt"), "hello from the host\n").expect("write");
    let mut spec = shell(
        "binds",
        "echo content=$(cat /action/main.txt); \
         echo write=$(touch /action/new 2>/dev/null && echo yes || echo no); \
         echo cwd=$(pwd)",
    );
    spec.cwd = "/action".into();
    spec.binds
        .push(whisk_sandbox::Bind::read_only(code.path(), "/action"));
    let (out, err, status) = run(&sandbox, spec).await;
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(value(&out, "content"), Some("hello from the host"), "{out}");
    assert_eq!(value(&out, "write"), Some("no"), "{out}");
    assert_eq!(value(&out, "cwd"), Some("/action"), "{out}");
    assert!(!code.path().join("new").exists());
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_kills_every_process_and_removes_the_cgroup() {
    let Some(sandbox) = sandbox("destroy").await else {
        return;
    };
    let mut container = sandbox
        .create(shell(
            "victim",
            "sleep 1000 & sleep 1000 & echo started=1; wait",
        ))
        .await
        .expect("create");
    let mut stdout = container.take_stdout().expect("stdout");
    wait_for_line(&mut stdout, "started=1").await;
    let pid = container.pid();
    let cgroup = container.cgroup().clone();
    let procs = cgroup.dirs()[0].join("cgroup.procs");
    let count = std::fs::read_to_string(&procs)
        .expect("procs")
        .lines()
        .count();
    assert!(
        count >= 3,
        "init, shell and two sleeps expected, found {count}"
    );
    container.destroy().await.expect("destroy");
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container's init is still there"
    );
    sandbox.shutdown().await.expect("shutdown");
}

async fn wait_for_line(stdout: &mut tokio::net::unix::pipe::Receiver, wanted: &str) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read a line") {
            if line == wanted {
                return true;
            }
        }
        false
    })
    .await
    .expect("the line came in time");
    assert!(found, "the container printed {wanted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_container_runs_again_after_thaw() {
    let Some(sandbox) = sandbox("freeze").await else {
        return;
    };
    let mut container = sandbox
        .create(shell("echo", "while read line; do echo got=$line; done"))
        .await
        .expect("create");
    let mut stdin = container.take_stdin().expect("stdin");
    let mut stdout = container.take_stdout().expect("stdout");
    container.freeze().await.expect("freeze");
    let state = container
        .cgroup()
        .dirs()
        .iter()
        .find_map(|dir| std::fs::read_to_string(dir.join("freezer.state")).ok());
    if let Some(state) = state {
        assert_eq!(state.trim(), "FROZEN");
    }
    use tokio::io::AsyncWriteExt;
    stdin
        .write_all(b"ping\n")
        .await
        .expect("write while frozen");
    container.thaw().await.expect("thaw");
    wait_for_line(&mut stdout, "got=ping").await;
    container.destroy().await.expect("destroy");
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_die_with_the_spawner() {
    let Some(sandbox) = sandbox("spawnerdeath").await else {
        return;
    };
    let container = sandbox
        .create(shell("orphan", "sleep 1000"))
        .await
        .expect("create");
    let spawner = rustix::process::Pid::from_raw(sandbox.spawner_pid() as i32).expect("a pid");
    rustix::process::kill_process(spawner, rustix::process::Signal::KILL).expect("kill");
    let status = tokio::time::timeout(DEADLINE, container.exited())
        .await
        .expect("the container died with its spawner");
    assert_eq!(status, ExitStatus::Unknown);
    let error = sandbox
        .create(shell("late", "true"))
        .await
        .expect_err("no spawner any more");
    assert!(
        matches!(error, whisk_sandbox::SandboxError::SpawnerGone),
        "{error}"
    );
    container.destroy().await.expect("destroy");
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_is_swept_at_the_next_start() {
    if !running_as_root() {
        eprintln!("SKIPPED: containers need root, and this test runs as another user");
        return;
    }
    let name = instance("sweep");
    // What a crashed run leaves: a container cgroup with a live process in it.
    let manager =
        whisk_sandbox::CgroupManager::detect(&format!("whisk/{name}")).expect("cgroup layout");
    let limits = whisk_sandbox::CgroupLimits {
        memory_bytes: 64 * 1024 * 1024,
        pids_max: 8,
    };
    let cgroup = manager.create("leftover", limits).expect("create a cgroup");
    let mut leftover = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("start a process");
    manager
        .add_process(&cgroup, leftover.id())
        .expect("move it into the cgroup");

    let sandbox = whisk_sandbox::Sandbox::start(config(name))
        .await
        .expect("start");
    let status = leftover.wait().expect("the leftover process was killed");
    assert!(!status.success());
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_destroys_what_is_left_and_refuses_new_containers() {
    let Some(sandbox) = sandbox("shutdown").await else {
        return;
    };
    let container = sandbox
        .create(shell("left", "sleep 1000"))
        .await
        .expect("create");
    let cgroup = container.cgroup().clone();
    sandbox.shutdown().await.expect("shutdown");
    let status = tokio::time::timeout(DEADLINE, container.exited())
        .await
        .expect("killed by shutdown");
    assert!(
        matches!(status, ExitStatus::Signal(9) | ExitStatus::Unknown),
        "{status:?}"
    );
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !dir.parent().expect("parent").exists(),
            "instance cgroup left behind"
        );
    }
    assert!(matches!(
        sandbox.create(shell("late", "true")).await,
        Err(whisk_sandbox::SandboxError::ShuttingDown)
    ));
}

/// Without a prepared namespace the container has only its own loopback: up and usable inside,
/// and the host's 127.0.0.1 services are out of reach.
const NETWORK_PROBE: &str = r#"
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=5)
print("own_loopback=ok")
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    print("host_loopback=reached")
except OSError as error:
    print("host_loopback=refused")
print("interfaces=" + ",".join(name for _, name in socket.if_nameindex()))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_has_its_own_loopback_and_cannot_reach_the_hosts() {
    let Some(sandbox) = sandbox("network").await else {
        return;
    };
    let host_service = std::net::TcpListener::bind("127.0.0.1:0").expect("a host service");
    let port = host_service
        .local_addr()
        .expect("its port")
        .port()
        .to_string();
    let (out, err, status) = run(
        &sandbox,
        spec("net", &["python3", "-c", NETWORK_PROBE, &port]),
    )
    .await;
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(value(&out, "own_loopback"), Some("ok"), "{out}");
    assert_eq!(value(&out, "host_loopback"), Some("refused"), "{out}");
    assert_eq!(value(&out, "interfaces"), Some("lo"), "{out}");
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_containers_created_at_once_each_get_their_own_answer() {
    let Some(sandbox) = sandbox("parallel").await else {
        return;
    };
    let sandbox = std::sync::Arc::new(sandbox);
    let started = std::time::Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for index in 0..16 {
        let sandbox = sandbox.clone();
        runs.spawn(async move {
            let (out, _, status) = run(
                &sandbox,
                shell(&format!("p{index}"), &format!("echo me={index}")),
            )
            .await;
            (index, out, status)
        });
    }
    while let Some(result) = runs.join_next().await {
        let (index, out, status) = result.expect("a run");
        assert_eq!(status, ExitStatus::Code(0));
        assert_eq!(value(&out, "me"), Some(index.to_string().as_str()), "{out}");
    }
    eprintln!(
        "16 containers created, run and destroyed in {:?}",
        started.elapsed()
    );
    let duplicate = sandbox
        .create(shell("dup", "sleep 1000"))
        .await
        .expect("create");
    assert!(matches!(
        sandbox.create(shell("dup", "true")).await,
        Err(whisk_sandbox::SandboxError::Duplicate(_))
    ));
    duplicate.destroy().await.expect("destroy");
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_joins_the_prepared_network_namespace_it_names() {
    if !std::path::Path::new("/usr/bin/unshare").exists() {
        eprintln!("SKIPPED: util-linux's unshare is not installed to prepare a namespace");
        return;
    }
    let Some(sandbox) = sandbox("netns").await else {
        return;
    };
    // A namespace of our own, kept alive by a process in it (the net helper's pool names them
    // under /run/netns; any namespace file works the same).
    let mut holder = std::process::Command::new("/usr/bin/unshare")
        .args(["--net", "sleep", "1000"])
        .spawn()
        .expect("start a namespace holder");
    let path = std::path::PathBuf::from(format!("/proc/{}/ns/net", holder.id()));
    let ours = std::fs::read_link("/proc/self/ns/net").expect("our namespace");
    let deadline = std::time::Instant::now() + DEADLINE;
    let theirs = loop {
        let link = std::fs::read_link(&path).expect("the holder's namespace");
        if link != ours {
            break link;
        }
        assert!(std::time::Instant::now() < deadline, "unshare never ran");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let mut joined = shell("joined", "echo netns=$(readlink /proc/self/ns/net)");
    joined.netns = Some(path);
    let (out, err, status) = run(&sandbox, joined).await;
    holder.kill().expect("stop the holder");
    holder.wait().expect("reap the holder");
    assert_eq!(status, ExitStatus::Code(0), "stdout: {out}\nstderr: {err}");
    assert_eq!(
        value(&out, "netns"),
        Some(theirs.to_string_lossy().as_ref()),
        "{out}"
    );
    // The spawner went back to its own namespace: the next container gets a fresh one.
    let (out, _, _) = run(
        &sandbox,
        shell("fresh", "echo netns=$(readlink /proc/self/ns/net)"),
    )
    .await;
    let fresh = value(&out, "netns").expect("a namespace").to_owned();
    assert_ne!(fresh, theirs.to_string_lossy());
    assert_ne!(fresh, ours.to_string_lossy());
    sandbox.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_container_and_an_abandoned_create_are_destroyed_in_the_background() {
    let Some(sandbox) = sandbox("dropped").await else {
        return;
    };
    let container = sandbox
        .create(shell("dropped", "sleep 1000"))
        .await
        .expect("create");
    let (pid, cgroup) = (container.pid(), container.cgroup().clone());
    drop(container);
    let deadline = std::time::Instant::now() + DEADLINE;
    while cgroup.dirs().iter().any(|dir| dir.exists())
        || std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped container is still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // The caller polls the create once and stops waiting; the create finishes in its task and is
    // undone. (Should a create ever complete in its first poll, there was nothing to abandon:
    // destroy that container and try again.)
    let mut abandoned_once = false;
    for _ in 0..20 {
        let mut create = Box::pin(sandbox.create(shell("abandoned", "sleep 1000")));
        let first =
            std::future::poll_fn(|context| std::task::Poll::Ready(create.as_mut().poll(context)))
                .await;
        match first {
            std::task::Poll::Pending => {
                drop(create);
                abandoned_once = true;
                break;
            }
            std::task::Poll::Ready(done) => {
                drop(create);
                done.expect("create").destroy().await.expect("destroy");
            }
        }
    }
    assert!(
        abandoned_once,
        "no create was ever still running after its first poll"
    );
    let deadline = std::time::Instant::now() + DEADLINE;
    let again = loop {
        match sandbox.create(shell("abandoned", "echo again=1")).await {
            Ok(container) => break container,
            Err(whisk_sandbox::SandboxError::Duplicate(_)) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the abandoned container keeps its id"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(error) => panic!("{error}"),
        }
    };
    let mut again = again;
    let (out, _, status) = tokio::time::timeout(DEADLINE, collect(&mut again))
        .await
        .expect("ended in time");
    assert_eq!(
        (value(&out, "again"), status),
        (Some("1"), ExitStatus::Code(0))
    );
    again.destroy().await.expect("destroy");
    sandbox.shutdown().await.expect("shutdown");
}
