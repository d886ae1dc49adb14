//! The spawner process: single-threaded, started by the server before (or apart from) its async
//! runtime, it creates every container with `clone(2)`, which is only sound in a process without
//! other threads.
//!
//! It reads [`ToSpawner`] requests from the SOCK_SEQPACKET socket it gets as stdin, answers each
//! with the container's pid and descriptors or a named error, reaps its containers' first
//! processes and reports how they ended. It dies with the server (parent-death signal), and its
//! containers die with it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, recv, sendmsg};
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions, pidfd_open, waitpid};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use seccompiler::BpfProgram;

use crate::protocol::{self, ExitStatus, FromSpawner, ToSpawner};
use crate::rootfs::{self, RealHost, Step};
use crate::spec::ContainerSpec;
use crate::sys;

/// First host uid and gid of the range a container's ids map to (with a user namespace), or
/// that its program runs as (without one). Far above any real account.
pub const HOST_ID_BASE: u32 = 2_000_000_000;
/// How many ids each container's user namespace maps.
pub const HOST_ID_COUNT: u32 = 65536;

/// How long a container may take to set itself up before the spawner gives up on it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the new root is assembled, in the container's own mount namespace only (bind sources
/// are opened before it is covered, so a source below it is still reachable).
const STAGING: &str = "/tmp";

/// Runs the spawner on the socket given as stdin, then exits the process. The `whisk` binary
/// calls this for `whisk spawner`, before anything else (no threads may exist yet).
pub fn serve_stdin() -> ! {
    let code = match serve() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("whisk spawner: {error}");
            1
        }
    };
    std::process::exit(code)
}

struct Context {
    socket: OwnedFd,
    own_netns: File,
    user_namespaces: bool,
    filters: Vec<BpfProgram>,
    last_capability: u64,
    children: Vec<(u32, OwnedFd)>,
}

fn serve() -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if let Ok(parent) = std::env::var(protocol::PARENT_PID_ENV) {
        let current = rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get().to_string());
        if current.as_deref() != Some(parent.as_str()) {
            // The server died before the death signal was armed.
            return Ok(());
        }
    }
    // The socket arrives as fd 0; move it out of the stdio range so no program ever gets it
    // as its stdin by accident, and put /dev/null in its place.
    let socket = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdin(), 3)?;
    let null = File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    drop(null);

    let filters = crate::seccomp::build_filters().map_err(io::Error::other)?;
    let last_capability = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    let mut context = Context {
        own_netns: File::open("/proc/self/ns/net")?,
        user_namespaces: std::env::var_os(protocol::NO_USER_NAMESPACES_ENV).is_none()
            && probe_user_namespaces(),
        socket,
        filters,
        last_capability,
        children: Vec::new(),
    };
    send(
        &context.socket,
        &FromSpawner::Hello {
            user_namespaces: context.user_namespaces,
        },
        &[],
    )?;

    let mut buffer = vec![0u8; protocol::MAX_MESSAGE];
    loop {
        let (socket_ready, exited) = wait_for_events(&context)?;
        for pid in exited {
            reap(&mut context, pid)?;
        }
        if !socket_ready {
            continue;
        }
        let (length, _) = recv(&context.socket, &mut buffer[..], RecvFlags::empty())?;
        if length == 0 {
            // The server closed its end: take every container down with us.
            for (pid, _) in &context.children {
                if let Some(pid) = Pid::from_raw(*pid as i32) {
                    // ESRCH (already gone) is the only possible failure and is fine.
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
            }
            return Ok(());
        }
        let request: ToSpawner = match serde_json::from_slice(&buffer[..length]) {
            Ok(request) => request,
            Err(error) => return Err(io::Error::other(format!("bad request: {error}"))),
        };
        match request {
            ToSpawner::Create {
                request,
                spec,
                cgroup_procs,
            } => match create(&context, &spec, &cgroup_procs) {
                Ok((pid, fds)) => {
                    let reply = FromSpawner::Created { request, pid };
                    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                    send(&context.socket, &reply, &borrowed)?;
                    let [pidfd, ..] = fds;
                    context.children.push((pid, pidfd));
                }
                Err(error) => send(
                    &context.socket,
                    &FromSpawner::Failed { request, error },
                    &[],
                )?,
            },
        }
    }
}

/// Blocks until the socket is readable or a container's first process ended; returns whether
/// the socket is readable and the pids that ended.
fn wait_for_events(context: &Context) -> io::Result<(bool, Vec<u32>)> {
    let mut fds = Vec::with_capacity(context.children.len() + 1);
    fds.push(PollFd::new(&context.socket, PollFlags::IN));
    for (_, pidfd) in &context.children {
        fds.push(PollFd::new(pidfd, PollFlags::IN));
    }
    loop {
        match poll(&mut fds, None) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    let socket_ready = !fds[0].revents().is_empty();
    let exited = fds[1..]
        .iter()
        .zip(&context.children)
        .filter(|(fd, _)| !fd.revents().is_empty())
        .map(|(_, (pid, _))| *pid)
        .collect();
    Ok((socket_ready, exited))
}

fn reap(context: &mut Context, pid: u32) -> io::Result<()> {
    let Some(raw) = Pid::from_raw(pid as i32) else {
        return Ok(());
    };
    let status = match waitpid(Some(raw), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(signal)) => ExitStatus::Signal(signal),
            (None, None) => return Ok(()),
        },
        Ok(None) => return Ok(()),
        Err(rustix::io::Errno::CHILD) => ExitStatus::Unknown,
        Err(error) => return Err(error.into()),
    };
    context.children.retain(|(child, _)| *child != pid);
    send(&context.socket, &FromSpawner::Exited { pid, status }, &[])
}

fn send(socket: &OwnedFd, message: &FromSpawner, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(protocol::CREATED_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    sendmsg(
        socket,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Whether this kernel lets us create a user namespace (some disable them by sysctl).
fn probe_user_namespaces() -> bool {
    // SAFETY: the spawner is single-threaded (see the module doc).
    match unsafe { sys::clone_process(libc::CLONE_NEWUSER) } {
        Ok(None) => std::process::exit(0),
        Ok(Some(pid)) => {
            let reaped =
                Pid::from_raw(pid as i32).map(|pid| waitpid(Some(pid), WaitOptions::empty()));
            matches!(reaped, Some(Ok(Some((_, status)))) if status.exit_status() == Some(0))
        }
        Err(_) => false,
    }
}

/// A step's name and what went wrong, reported to the server as `<step>: <error>`.
struct SetupError(String);

fn at(step: impl std::fmt::Display) -> impl FnOnce(io::Error) -> SetupError {
    move |error| SetupError(format!("{step}: {error}"))
}

/// Descriptors of one container being created: the child's ends and the spawner's ends.
struct Pipes {
    stdin: (OwnedFd, OwnedFd),
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    go: (OwnedFd, OwnedFd),
    report: (OwnedFd, OwnedFd),
}

fn create(
    context: &Context,
    spec: &ContainerSpec,
    cgroup_procs: &[PathBuf],
) -> Result<(u32, [OwnedFd; protocol::CREATED_FDS]), String> {
    spec.validate().map_err(|error| format!("spec: {error}"))?;
    let steps = rootfs::plan(spec, &RealHost);
    let pipe = || pipe_with(PipeFlags::CLOEXEC).map_err(|error| format!("pipe: {error}"));
    let pipes = Pipes {
        stdin: pipe()?,
        stdout: pipe()?,
        stderr: pipe()?,
        go: pipe()?,
        report: pipe()?,
    };
    let netns = match &spec.netns {
        Some(path) => Some(
            File::open(path).map_err(|error| format!("open netns {}: {error}", path.display()))?,
        ),
        None => None,
    };
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if context.user_namespaces {
        flags |= libc::CLONE_NEWUSER;
    }
    match &netns {
        // The child inherits the network namespace the spawner is in at clone time, and once it
        // is in its own user namespace it could no longer join one owned by the host's.
        Some(file) => move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|error| format!("setns: {error}"))?,
        None => flags |= libc::CLONE_NEWNET,
    }
    // SAFETY: the spawner is single-threaded (see the module doc).
    let cloned = unsafe { sys::clone_process(flags) };
    // Only the spawner goes back: the child stays in the namespace it was cloned into (and,
    // in its own user namespace, could not go back anyway).
    let restored = match netns {
        Some(_) if !matches!(cloned, Ok(None)) => {
            move_into_link_name_space(context.own_netns.as_fd(), Some(LinkNameSpaceType::Network))
        }
        _ => Ok(()),
    };
    let pid = match cloned {
        Err(error) => return Err(format!("clone: {error}")),
        Ok(None) => container_init(context, spec, &steps, pipes),
        Ok(Some(pid)) => pid,
    };
    if let Err(error) = restored {
        kill_and_reap(pid);
        return Err(format!("setns back: {error}"));
    }
    let Pipes {
        stdin: (stdin_r, stdin_w),
        stdout: (stdout_r, stdout_w),
        stderr: (stderr_r, stderr_w),
        go: (go_r, go_w),
        report: (report_r, report_w),
    } = pipes;
    drop((stdin_r, stdout_w, stderr_w, go_r, report_w));

    let released =
        release_child(context, pid, cgroup_procs, &go_w).and_then(|()| wait_for_report(report_r));
    // Held open until the report is in: the child checks it to notice a spawner that died
    // while its parent-death signal was disarmed (changing ids disarms it).
    drop(go_w);
    if let Err(error) = released {
        kill_and_reap(pid);
        return Err(error);
    }
    let pidfd = Pid::from_raw(pid as i32)
        .ok_or_else(|| "clone: pid 0".to_owned())
        .and_then(|raw| {
            pidfd_open(raw, PidfdFlags::empty()).map_err(|error| format!("pidfd_open: {error}"))
        });
    match pidfd {
        Ok(pidfd) => Ok((pid, [pidfd, stdin_w, stdout_r, stderr_r])),
        Err(error) => {
            kill_and_reap(pid);
            Err(error)
        }
    }
}

/// Maps the child's ids, moves it into its cgroups, then lets it go on.
fn release_child(
    context: &Context,
    pid: u32,
    cgroup_procs: &[PathBuf],
    go: &OwnedFd,
) -> Result<(), String> {
    if context.user_namespaces {
        let map = format!("0 {HOST_ID_BASE} {HOST_ID_COUNT}\n");
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, &map).map_err(|error| format!("{file}: {error}"))?;
        }
    }
    for procs in cgroup_procs {
        write_existing(procs, &pid.to_string())
            .map_err(|error| format!("cgroup {}: {error}", procs.display()))?;
    }
    rustix::io::write(go, b"g")
        .map(|_| ())
        .map_err(io::Error::from)
        .map_err(|error| format!("release: {error}"))
}

fn write_existing(path: &Path, contents: &str) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(contents.as_bytes())
}

/// Reads the child's setup report: nothing before end-of-file means the program started.
fn wait_for_report(report: OwnedFd) -> Result<(), String> {
    let timeout = rustix::time::Timespec {
        tv_sec: SETUP_TIMEOUT.as_secs() as i64,
        tv_nsec: 0,
    };
    let mut fds = [PollFd::new(&report, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) => return Err("setup: timed out".to_owned()),
        Ok(_) => {}
        Err(error) => return Err(format!("setup: {error}")),
    }
    let mut message = String::new();
    File::from(report)
        .read_to_string(&mut message)
        .map_err(|error| format!("setup report: {error}"))?;
    if message.is_empty() {
        Ok(())
    } else {
        Err(message)
    }
}

fn kill_and_reap(pid: u32) {
    if let Some(raw) = Pid::from_raw(pid as i32) {
        // Our own child: the kill cannot be refused, and the wait only reaps it.
        let _ = rustix::process::kill_process(raw, Signal::KILL);
        let _ = waitpid(Some(raw), WaitOptions::empty());
    }
}

/// The container's first process: sets the container up, starts the program, then stays as
/// its init (reaping orphans) and exits with the program's status. Never returns.
fn container_init(context: &Context, spec: &ContainerSpec, steps: &[Step], pipes: Pipes) -> ! {
    let Pipes {
        stdin: (stdin_r, stdin_w),
        stdout: (stdout_r, stdout_w),
        stderr: (stderr_r, stderr_w),
        go: (go_r, go_w),
        report: (report_r, report_w),
    } = pipes;
    drop((stdin_w, stdout_r, stderr_r, go_w, report_r));
    let keep = [
        stdin_r.as_raw_fd(),
        stdout_w.as_raw_fd(),
        stderr_w.as_raw_fd(),
        go_r.as_raw_fd(),
        report_w.as_raw_fd(),
    ];
    let mut report = File::from(report_w);
    let started = sys::close_fds_except(&keep)
        .map_err(at("close inherited descriptors"))
        .and_then(|()| setup(context, spec, steps, go_r))
        .and_then(|()| start_program(spec, stdin_r, stdout_w, stderr_w));
    let program = match started {
        Ok(program) => program,
        Err(SetupError(message)) => {
            // If the spawner is gone there is nobody to tell; exiting is all that is left.
            let _ = report.write_all(message.as_bytes());
            std::process::exit(125);
        }
    };
    drop(report);
    loop {
        match waitpid(None, WaitOptions::empty()) {
            Ok(Some((pid, status))) if pid.as_raw_nonzero().get() as u32 == program => {
                let code = match (status.exit_status(), status.terminating_signal()) {
                    (Some(code), _) => code,
                    (None, Some(signal)) => 128 + signal,
                    (None, None) => continue,
                };
                std::process::exit(code);
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => std::process::exit(126),
        }
    }
}

fn setup(
    context: &Context,
    spec: &ContainerSpec,
    steps: &[Step],
    go: OwnedFd,
) -> Result<(), SetupError> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|error| at("parent death signal")(error.into()))?;
    // Wait until the spawner mapped our ids and moved us into our cgroups. End-of-file without
    // the byte means it gave up on us.
    let mut byte = [0u8; 1];
    let mut go = File::from(go);
    if !matches!(go.read(&mut byte), Ok(1)) {
        std::process::exit(125);
    }
    if context.user_namespaces {
        // Still the host's root underneath (ids are inherited from the spawner); become the
        // namespace's root, i.e. the mapped unprivileged host id, so files we create are ours.
        become_id(0)?;
    }
    // Only after joining our cgroup: the cgroup namespace's root is the cgroup we are in.
    sys::unshare(libc::CLONE_NEWCGROUP).map_err(at("unshare cgroup namespace"))?;
    if spec.netns.is_none() {
        sys::bring_loopback_up().map_err(at("bring up loopback"))?;
    }
    rustix::system::sethostname(spec.hostname.as_bytes())
        .map_err(|error| at("sethostname")(error.into()))?;
    build_root(steps)?;
    let null = File::open("/dev/null").map_err(at("open /dev/null"))?;
    for dup in [
        rustix::stdio::dup2_stdin,
        rustix::stdio::dup2_stdout,
        rustix::stdio::dup2_stderr,
    ] {
        dup(&null).map_err(|error| at("stdio")(error.into()))?;
    }
    drop(null);
    confine(context)?;
    // Changing ids cleared the parent-death signal: arm it again, then make sure the spawner
    // did not die in between (its end of `go` stays open until it has our report).
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|error| at("parent death signal")(error.into()))?;
    let mut fds = [PollFd::new(&go, PollFlags::IN)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).map_err(|error| at("poll the spawner")(error.into()))?;
    if fds[0].revents().contains(PollFlags::HUP) {
        std::process::exit(125);
    }
    Ok(())
}

/// Mounts the new root from the plan in the staging directory and pivots into it.
fn build_root(steps: &[Step]) -> Result<(), SetupError> {
    let staging = Path::new(STAGING);
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(at("make / private"))?;
    // Open every bind source before the staging tmpfs covers anything.
    let mut sources = Vec::new();
    for step in steps {
        if let Step::Bind { source, target, .. } = step {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(source)
                .map_err(at(format!(
                    "bind source {} for {}",
                    source.display(),
                    target.display()
                )))?;
            sources.push(file);
        }
    }
    sys::mount(
        Some(Path::new("tmpfs")),
        staging,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(rootfs::root_tmpfs_options()),
    )
    .map_err(at("mount root tmpfs"))?;
    let inside = |path: &Path| staging.join(path.strip_prefix("/").unwrap_or(path));
    let mut sources = sources.into_iter();
    for step in steps {
        match step {
            Step::Mkdir { path } => {
                std::fs::create_dir_all(inside(path))
                    .map_err(at(format!("mkdir {}", path.display())))?;
            }
            Step::Touch { path } => {
                let target = inside(path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(at(format!("mkdir {}", path.display())))?;
                }
                File::create(&target).map_err(at(format!("create {}", path.display())))?;
            }
            Step::Symlink { target, link } => {
                std::os::unix::fs::symlink(target, inside(link))
                    .map_err(at(format!("symlink {}", link.display())))?;
            }
            Step::WriteFile { path, contents } => {
                std::fs::write(inside(path), contents)
                    .map_err(at(format!("write {}", path.display())))?;
            }
            Step::Bind {
                source,
                target,
                writable,
                devices,
            } => {
                let Some(file) = sources.next() else {
                    return Err(SetupError(format!(
                        "bind {}: source not open",
                        source.display()
                    )));
                };
                let via = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
                let target_inside = inside(target);
                let name = format!("bind {} to {}", source.display(), target.display());
                sys::mount(
                    Some(&via),
                    &target_inside,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .map_err(at(&name))?;
                let mut flags = libc::MS_NOSUID;
                if !*writable {
                    flags |= libc::MS_RDONLY;
                }
                if !*devices {
                    flags |= libc::MS_NODEV;
                }
                remount(&target_inside, flags).map_err(at(format!("remount {name}")))?;
            }
            Step::Tmpfs { target, options } => {
                sys::mount(
                    Some(Path::new("tmpfs")),
                    &inside(target),
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(options),
                )
                .map_err(at(format!("tmpfs {}", target.display())))?;
            }
            Step::Proc { target } => {
                sys::mount(
                    Some(Path::new("proc")),
                    &inside(target),
                    Some("proc"),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    None,
                )
                .map_err(at(format!("mount proc at {}", target.display())))?;
            }
            Step::Cover { source, target } => {
                let name = format!("cover {} with {}", target.display(), source.display());
                let target_inside = inside(target);
                sys::mount(
                    Some(&inside(source)),
                    &target_inside,
                    None,
                    libc::MS_BIND,
                    None,
                )
                .map_err(at(&name))?;
                remount(
                    &target_inside,
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                )
                .map_err(at(format!("remount {name}")))?;
            }
            Step::ReadOnly { target } => {
                let path = inside(target);
                let name = format!("read-only {}", target.display());
                sys::mount(Some(&path), &path, None, libc::MS_BIND | libc::MS_REC, None)
                    .map_err(at(&name))?;
                remount(
                    &path,
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                )
                .map_err(at(&name))?;
            }
        }
    }
    drop(sources);
    std::env::set_current_dir(staging).map_err(at("chdir to the new root"))?;
    let here = Path::new(".");
    sys::pivot_root(here, here).map_err(at("pivot_root"))?;
    sys::detach(here).map_err(at("detach the old root"))?;
    std::env::set_current_dir("/").map_err(at("chdir /"))?;
    remount(
        Path::new("/"),
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
    )
    .map_err(at("read-only root"))?;
    remount(
        Path::new("/dev"),
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
    )
    .map_err(at("read-only /dev"))?;
    Ok(())
}

/// Remounts a bind with `flags` added, keeping the flags the kernel locks for a mount that came
/// from a more privileged namespace (dropping one of those would be refused).
fn remount(path: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let current = rustix::fs::statvfs(path)?.f_flag;
    let mut locked: libc::c_ulong = 0;
    for (stat, mount) in [
        (rustix::fs::StatVfsMountFlags::NOEXEC, libc::MS_NOEXEC),
        (rustix::fs::StatVfsMountFlags::NOSUID, libc::MS_NOSUID),
        (rustix::fs::StatVfsMountFlags::NODEV, libc::MS_NODEV),
        (rustix::fs::StatVfsMountFlags::RDONLY, libc::MS_RDONLY),
        (rustix::fs::StatVfsMountFlags::NOATIME, libc::MS_NOATIME),
        (
            rustix::fs::StatVfsMountFlags::NODIRATIME,
            libc::MS_NODIRATIME,
        ),
        (rustix::fs::StatVfsMountFlags::RELATIME, libc::MS_RELATIME),
    ] {
        if current.contains(stat) {
            locked |= mount;
        }
    }
    sys::mount(
        None,
        path,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags | locked,
        None,
    )
}

/// Limits, ids, capabilities, no_new_privs and seccomp, in the order each still has the
/// privilege the next needs.
fn confine(context: &Context) -> Result<(), SetupError> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let nofile = Rlimit {
        current: Some(1024),
        maximum: Some(1024),
    };
    setrlimit(Resource::Nofile, nofile).map_err(|error| at("rlimit nofile")(error.into()))?;
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, no_core).map_err(|error| at("rlimit core")(error.into()))?;
    // The bounding set first: dropping from it needs CAP_SETPCAP, which changing ids loses.
    for capability in 0..=context.last_capability {
        sys::drop_bounding_capability(capability as libc::c_ulong)
            .map_err(at(format!("drop capability {capability}")))?;
    }
    if !context.user_namespaces {
        // Without a user namespace, root inside would be root outside: run as the
        // unprivileged base id instead (which also clears every capability).
        become_id(HOST_ID_BASE)?;
    }
    rustix::thread::clear_ambient_capability_set()
        .map_err(|error| at("clear ambient capabilities")(error.into()))?;
    rustix::thread::set_no_new_privs(true).map_err(|error| at("no_new_privs")(error.into()))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|error| at("not dumpable")(error.into()))?;
    for filter in &context.filters {
        seccompiler::apply_filter(filter)
            .map_err(|error| SetupError(format!("seccomp: {error}")))?;
    }
    let empty = rustix::thread::CapabilitySets {
        effective: rustix::thread::CapabilitySet::empty(),
        permitted: rustix::thread::CapabilitySet::empty(),
        inheritable: rustix::thread::CapabilitySet::empty(),
    };
    rustix::thread::set_capabilities(None, empty)
        .map_err(|error| at("drop capabilities")(error.into()))?;
    Ok(())
}

/// Sets every uid and gid to `id` and drops supplementary groups.
fn become_id(id: u32) -> Result<(), SetupError> {
    rustix::thread::set_thread_groups(&[]).map_err(|error| at("setgroups")(error.into()))?;
    let gid = rustix::process::Gid::from_raw(id);
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|error| at("setresgid")(error.into()))?;
    let uid = rustix::process::Uid::from_raw(id);
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|error| at("setresuid")(error.into()))?;
    Ok(())
}

/// Starts the program with the spec's argv, env and cwd on the container's stdio pipes, and
/// returns its pid.
fn start_program(
    spec: &ContainerSpec,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<u32, SetupError> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| SetupError("exec: empty argv".to_owned()))?;
    // Checked apart from the exec, whose error would not say that the directory was missing.
    if !spec.cwd.is_dir() {
        return Err(SetupError(format!(
            "cwd {}: not a directory in the container",
            spec.cwd.display()
        )));
    }
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(at(format!("exec {program}")))?;
    Ok(child.id())
}
