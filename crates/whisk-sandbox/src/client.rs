//! The server's side of the spawner: starts the process, sends it requests and routes its
//! answers and exit reports, all on the async runtime without ever forking in it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketFlags,
    SocketType, recvmsg, send, socketpair,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use crate::SandboxError;
use crate::protocol::{self, ExitStatus, FromSpawner, ToSpawner};
use crate::spec::ContainerSpec;

/// What the spawner hands back for a new container.
#[derive(Debug)]
pub(crate) struct Created {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub exit: watch::Receiver<Option<ExitStatus>>,
}

type Reply = Result<Created, String>;

#[derive(Debug, Default)]
struct Routes {
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    exits: HashMap<u32, watch::Sender<Option<ExitStatus>>>,
    gone: bool,
}

/// A running spawner process and the socket to it.
#[derive(Debug)]
pub struct Spawner {
    socket: Arc<AsyncFd<OwnedFd>>,
    routes: Arc<Mutex<Routes>>,
    next_request: AtomicU64,
    child: Mutex<Child>,
    user_namespaces: bool,
    reader: tokio::task::JoinHandle<()>,
}

impl Spawner {
    /// Starts `program args…` as the spawner (the `whisk` binary with `spawner`, or the crate's
    /// `whisk-spawner` test binary) and waits for its greeting. Must run inside a tokio runtime.
    /// With `user_namespaces` false, containers never get a user namespace (as on a kernel
    /// that refuses them).
    pub async fn start(
        program: &Path,
        args: &[OsString],
        user_namespaces: bool,
    ) -> Result<Self, SandboxError> {
        let start_error = |source| SandboxError::SpawnerStart {
            program: program.to_path_buf(),
            source,
        };
        let (first, second) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|error| start_error(error.into()))?;
        // Our own fd 0 may be closed (CI has no stdin), so either end may have come back as a
        // stdio number; move both above them (and close the originals, or the spawner's end
        // would stay open here and its exit would go unnoticed).
        let ours = rustix::io::fcntl_dupfd_cloexec(&first, 3)
            .map_err(|error| start_error(error.into()))?;
        let theirs = rustix::io::fcntl_dupfd_cloexec(&second, 3)
            .map_err(|error| start_error(error.into()))?;
        drop((first, second));
        rustix::io::ioctl_fionbio(&ours, true).map_err(|error| start_error(error.into()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env(protocol::PARENT_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::from(theirs));
        if !user_namespaces {
            command.env(protocol::NO_USER_NAMESPACES_ENV, "1");
        }
        let child = command.spawn().map_err(start_error)?;
        // The command still holds the spawner's end of the socket.
        drop(command);
        let socket = Arc::new(crate::sys::async_fd(ours).map_err(start_error)?);
        let (message, _) = receive(&socket)
            .await
            .map_err(start_error)?
            .ok_or_else(|| {
                start_error(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the spawner exited before greeting",
                ))
            })?;
        let FromSpawner::Hello { user_namespaces } = message else {
            return Err(start_error(io::Error::other(
                "the spawner's first message was not its greeting",
            )));
        };
        if user_namespaces {
            info!(pid = child.id(), "spawner started");
        } else {
            warn!(
                pid = child.id(),
                "user namespaces refused or disabled: containers run without one, as an unprivileged host uid"
            );
        }
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader = tokio::spawn(read_loop(socket.clone(), routes.clone()));
        Ok(Self {
            socket,
            routes,
            next_request: AtomicU64::new(1),
            child: Mutex::new(child),
            user_namespaces,
            reader,
        })
    }

    /// Whether containers get their own user namespace.
    pub fn user_namespaces(&self) -> bool {
        self.user_namespaces
    }

    /// The spawner's pid (tests kill it to check that containers die with it).
    pub fn pid(&self) -> u32 {
        self.child.lock().map_or(0, |child| child.id())
    }

    pub(crate) async fn create(
        &self,
        spec: &ContainerSpec,
        cgroup_procs: Vec<PathBuf>,
    ) -> Result<Created, SandboxError> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut routes = lock(&self.routes);
            if routes.gone {
                return Err(SandboxError::SpawnerGone);
            }
            routes.pending.insert(request, reply_tx);
        }
        let message = ToSpawner::Create {
            request,
            spec: spec.clone(),
            cgroup_procs,
        };
        let bytes = serde_json::to_vec(&message).map_err(|error| SandboxError::Io {
            action: "encode a spawner request",
            source: io::Error::other(error),
        })?;
        if let Err(source) = self.send(&bytes).await {
            lock(&self.routes).pending.remove(&request);
            return Err(SandboxError::Io {
                action: "send to the spawner",
                source,
            });
        }
        match reply_rx.await {
            Ok(Ok(created)) => Ok(created),
            Ok(Err(message)) => Err(SandboxError::Setup {
                id: spec.id.clone(),
                message,
            }),
            Err(_) => Err(SandboxError::SpawnerGone),
        }
    }

    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.socket.writable().await?;
            match guard.try_io(|socket| {
                send(
                    socket.get_ref(),
                    bytes,
                    SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            }) {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.reader.abort();
        // Closing the socket alone makes the spawner kill its containers and exit; the kill
        // covers a spawner stuck in a container's setup.
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn read_loop(socket: Arc<AsyncFd<OwnedFd>>, routes: Arc<Mutex<Routes>>) {
    loop {
        match receive(&socket).await {
            Ok(Some((message, fds))) => route(&routes, message, fds),
            Ok(None) => {
                warn!("the spawner closed its socket");
                break;
            }
            Err(error) => {
                warn!(%error, "cannot read from the spawner");
                break;
            }
        }
    }
    let mut routes = lock(&routes);
    routes.gone = true;
    // Dropping the senders tells every waiter the spawner is gone.
    routes.pending.clear();
    routes.exits.clear();
}

fn route(routes: &Mutex<Routes>, message: FromSpawner, fds: Vec<OwnedFd>) {
    let mut routes = lock(routes);
    match message {
        FromSpawner::Hello { .. } => warn!("unexpected second greeting from the spawner"),
        FromSpawner::Created { request, pid } => {
            let reply = match <[OwnedFd; protocol::CREATED_FDS]>::try_from(fds) {
                Ok([pidfd, stdin, stdout, stderr]) => {
                    let (exit_tx, exit_rx) = watch::channel(None);
                    routes.exits.insert(pid, exit_tx);
                    Ok(Created {
                        pid,
                        pidfd,
                        stdin,
                        stdout,
                        stderr,
                        exit: exit_rx,
                    })
                }
                Err(fds) => Err(format!(
                    "spawner reply: {} descriptors instead of {}",
                    fds.len(),
                    protocol::CREATED_FDS
                )),
            };
            match routes.pending.remove(&request) {
                Some(waiter) => {
                    if waiter.send(reply).is_err() {
                        debug!(
                            request,
                            pid, "container created for a request nobody awaits"
                        );
                    }
                }
                None => warn!(request, "spawner answered an unknown request"),
            }
        }
        FromSpawner::Failed { request, error } => {
            if let Some(waiter) = routes.pending.remove(&request) {
                let _ = waiter.send(Err(error));
            }
        }
        FromSpawner::Exited { pid, status } => {
            debug!(pid, ?status, "container's first process exited");
            if let Some(exit) = routes.exits.remove(&pid) {
                let _ = exit.send(Some(status));
            }
        }
    }
}

/// One message and its descriptors; `None` at end-of-file.
async fn receive(socket: &AsyncFd<OwnedFd>) -> io::Result<Option<(FromSpawner, Vec<OwnedFd>)>> {
    let mut buffer = vec![0u8; protocol::MAX_MESSAGE];
    loop {
        let mut guard = socket.readable().await?;
        let result = guard.try_io(|socket| receive_now(socket.get_ref().as_fd(), &mut buffer));
        match result {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

fn receive_now(
    socket: std::os::fd::BorrowedFd<'_>,
    buffer: &mut [u8],
) -> io::Result<Option<(FromSpawner, Vec<OwnedFd>)>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(protocol::CREATED_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = recvmsg(
        socket,
        &mut [IoSliceMut::new(buffer)],
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if received.bytes == 0 {
        return Ok(None);
    }
    let message = serde_json::from_slice(&buffer[..received.bytes]).map_err(io::Error::other)?;
    Ok(Some((message, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_fds(count: usize) -> Vec<OwnedFd> {
        (0..count.div_ceil(2))
            .flat_map(|_| {
                let (read, write) = rustix::pipe::pipe().expect("pipe");
                [read, write]
            })
            .take(count)
            .collect()
    }

    fn waiting(routes: &Mutex<Routes>, request: u64) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        lock(routes).pending.insert(request, tx);
        rx
    }

    #[test]
    fn a_created_answer_reaches_its_request_and_arms_the_exit_report() {
        let routes = Mutex::new(Routes::default());
        let mut answer = waiting(&routes, 7);
        let other = waiting(&routes, 8);
        route(
            &routes,
            FromSpawner::Created {
                request: 7,
                pid: 4242,
            },
            pipe_fds(protocol::CREATED_FDS),
        );
        let created = answer.try_recv().expect("answered").expect("created");
        assert_eq!(created.pid, 4242);
        assert_eq!(*created.exit.borrow(), None);
        assert!(
            lock(&routes).pending.contains_key(&8),
            "other requests still wait"
        );
        drop(other);

        route(
            &routes,
            FromSpawner::Exited {
                pid: 4242,
                status: ExitStatus::Code(3),
            },
            Vec::new(),
        );
        assert_eq!(*created.exit.borrow(), Some(ExitStatus::Code(3)));
        assert!(lock(&routes).exits.is_empty());
    }

    #[test]
    fn a_created_answer_with_missing_descriptors_is_an_error() {
        let routes = Mutex::new(Routes::default());
        let mut answer = waiting(&routes, 1);
        route(
            &routes,
            FromSpawner::Created { request: 1, pid: 9 },
            pipe_fds(2),
        );
        let error = answer.try_recv().expect("answered").expect_err("refused");
        assert!(error.contains("2 descriptors instead of 4"), "{error}");
        assert!(lock(&routes).exits.is_empty());
    }

    #[test]
    fn a_failure_reaches_its_request_with_the_spawners_message() {
        let routes = Mutex::new(Routes::default());
        let mut answer = waiting(&routes, 5);
        route(
            &routes,
            FromSpawner::Failed {
                request: 5,
                error: "bind source /x for /action: No such file".into(),
            },
            Vec::new(),
        );
        let error = answer.try_recv().expect("answered").expect_err("failed");
        assert_eq!(error, "bind source /x for /action: No such file");
    }

    #[test]
    fn answers_nobody_waits_for_are_dropped_quietly() {
        let routes = Mutex::new(Routes::default());
        route(
            &routes,
            FromSpawner::Failed {
                request: 99,
                error: "late".into(),
            },
            Vec::new(),
        );
        route(
            &routes,
            FromSpawner::Exited {
                pid: 1,
                status: ExitStatus::Signal(9),
            },
            Vec::new(),
        );
        let routes = lock(&routes);
        assert!(routes.pending.is_empty() && routes.exits.is_empty());
    }
}
