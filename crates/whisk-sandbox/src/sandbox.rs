//! The facade the invoker uses: a [`Sandbox`] (one spawner and one parent cgroup per platform
//! instance) creating [`Container`]s.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::{RwLock, watch};
use tracing::{debug, info, warn};

use crate::cgroup::{CgroupError, CgroupLimits, CgroupManager, ContainerCgroup};
use crate::client::Spawner;
use crate::protocol::ExitStatus;
use crate::spec::{ContainerSpec, SpecError};

const MIB: u64 = 1024 * 1024;

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid container spec: {0}")]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("cannot start the spawner {program:?}: {source}")]
    SpawnerStart {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the spawner process is gone")]
    SpawnerGone,
    /// The container could not be set up; `message` names the step (`<step>: <error>`).
    #[error("cannot create container {id}: {message}")]
    Setup { id: String, message: String },
    #[error("cannot {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("a container with id {0} already exists")]
    Duplicate(String),
    #[error("invalid sandbox instance name {0:?}: only ASCII letters, digits, '-' and '_'")]
    InvalidInstance(String),
    #[error("the sandbox is shutting down")]
    ShuttingDown,
    #[error("a blocking sandbox task failed: {0}")]
    Task(String),
}

/// How to start a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Names this platform's parent cgroup (`whisk/<instance>`), so that parallel platforms
    /// or tests never touch each other's containers.
    pub instance: String,
    /// The spawner program: the `whisk` binary itself (with `spawner_args` = `["spawner"]`).
    pub spawner_program: PathBuf,
    pub spawner_args: Vec<OsString>,
    /// Give containers a user namespace where the kernel allows it (the normal case); false
    /// forces the fallback without one, where the program runs as an unprivileged host uid.
    pub user_namespaces: bool,
}

type Live = Arc<Mutex<HashMap<String, ContainerCgroup>>>;

/// One platform instance's container factory.
#[derive(Debug)]
pub struct Sandbox {
    spawner: Arc<Spawner>,
    cgroups: Arc<CgroupManager>,
    live: Live,
    /// Read-held by each create in flight, write-held by shutdown (which then sets it).
    closed: Arc<RwLock<bool>>,
}

impl Sandbox {
    /// Detects the cgroup layout, sweeps what a crashed earlier run of the same instance left
    /// behind, and starts the spawner.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let instance_ok = !config.instance.is_empty()
            && config.instance.len() <= 64
            && config
                .instance
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !instance_ok {
            return Err(SandboxError::InvalidInstance(config.instance));
        }
        let parent = format!("whisk/{}", config.instance);
        let cgroups = blocking(move || {
            let manager = CgroupManager::detect(&parent)?;
            sweep(&manager)?;
            Ok(manager)
        })
        .await?;
        let spawner = Spawner::start(
            &config.spawner_program,
            &config.spawner_args,
            config.user_namespaces,
        )
        .await?;
        Ok(Self {
            spawner: Arc::new(spawner),
            cgroups: Arc::new(cgroups),
            live: Arc::default(),
            closed: Arc::new(RwLock::new(false)),
        })
    }

    /// Whether containers get their own user namespace (false where the kernel refuses them).
    pub fn user_namespaces(&self) -> bool {
        self.spawner.user_namespaces()
    }

    /// The spawner process's pid.
    pub fn spawner_pid(&self) -> u32 {
        self.spawner.pid()
    }

    /// The cgroup manager (its layout tells tests and the invoker where containers live).
    pub fn cgroups(&self) -> &CgroupManager {
        &self.cgroups
    }

    /// Creates and starts a container. On any error nothing of it is left (no cgroup, no
    /// process). The work runs in its own task: if the caller stops waiting, the creation still
    /// completes and the unwanted container is destroyed in the background.
    pub async fn create(&self, spec: ContainerSpec) -> Result<Container, SandboxError> {
        let closed = self.closed.clone().read_owned().await;
        if *closed {
            return Err(SandboxError::ShuttingDown);
        }
        spec.validate()?;
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if live.contains_key(&spec.id) {
                return Err(SandboxError::Duplicate(spec.id));
            }
            // Reserved now so a parallel create of the same id fails; the real cgroup follows.
            let placeholder = self.cgroups.cgroup_for(&spec.id)?;
            live.insert(spec.id.clone(), placeholder);
        }
        let (spawner, cgroups, live) = (
            self.spawner.clone(),
            self.cgroups.clone(),
            self.live.clone(),
        );
        let (reply, answer) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = create_registered(&spawner, &cgroups, &live, &spec).await;
            if result.is_err() {
                live.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&spec.id);
            }
            // Shutdown waits for this guard, so it also waits for abandoned creates.
            drop(closed);
            if let Err(Ok(unwanted)) = reply.send(result) {
                // Dropping it destroys it in the background.
                info!(container_id = %unwanted.id, "container created for a caller that left");
            }
        });
        answer
            .await
            .map_err(|_| SandboxError::Task("the create task ended without an answer".into()))?
    }

    /// Refuses new creates, waits for those in flight, then destroys every container left.
    pub async fn shutdown(&self) -> Result<(), SandboxError> {
        let mut closed = self.closed.write().await;
        *closed = true;
        let left: Vec<ContainerCgroup> = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, cgroup)| cgroup)
            .collect();
        let manager = self.cgroups.clone();
        blocking(move || {
            for cgroup in &left {
                manager.remove(cgroup)?;
            }
            remove_parent_dirs(&manager);
            Ok(())
        })
        .await
    }
}

/// One running container.
#[derive(Debug)]
pub struct Container {
    id: String,
    pid: u32,
    cgroup: ContainerCgroup,
    cgroups: Arc<CgroupManager>,
    live: Live,
    pidfd: AsyncFd<OwnedFd>,
    exit: watch::Receiver<Option<ExitStatus>>,
    stdin: Option<pipe::Sender>,
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
    /// Set by [`Container::destroy`]; otherwise dropping the container destroys it.
    destroyed: bool,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host pid of the container's init (its pid 1).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn cgroup(&self) -> &ContainerCgroup {
        &self.cgroup
    }

    /// The write end of the program's stdin (once; dropping it closes the program's stdin).
    pub fn take_stdin(&mut self) -> Option<pipe::Sender> {
        self.stdin.take()
    }

    /// The read end of the program's stdout (once).
    pub fn take_stdout(&mut self) -> Option<pipe::Receiver> {
        self.stdout.take()
    }

    /// The read end of the program's stderr (once).
    pub fn take_stderr(&mut self) -> Option<pipe::Receiver> {
        self.stderr.take()
    }

    /// Resolves when the container's init has exited (its program ended, or it was killed),
    /// with the program's status as the spawner reported it.
    pub async fn exited(&self) -> ExitStatus {
        // The pidfd turns readable when the process ends, even if the spawner is gone.
        if let Ok(guard) = self.pidfd.readable().await {
            drop(guard);
        }
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(status) => status.unwrap_or(ExitStatus::Unknown),
            Err(_) => ExitStatus::Unknown,
        }
    }

    /// Pauses every process of the container.
    pub async fn freeze(&self) -> Result<(), SandboxError> {
        let (manager, cgroup) = (self.cgroups.clone(), self.cgroup.clone());
        blocking(move || Ok(manager.freeze(&cgroup)?)).await
    }

    /// Resumes a frozen container.
    pub async fn thaw(&self) -> Result<(), SandboxError> {
        let (manager, cgroup) = (self.cgroups.clone(), self.cgroup.clone());
        blocking(move || Ok(manager.thaw(&cgroup)?)).await
    }

    /// Whether the kernel's OOM killer killed a process of this container.
    pub async fn oom_killed(&self) -> Result<bool, SandboxError> {
        let (manager, cgroup) = (self.cgroups.clone(), self.cgroup.clone());
        blocking(move || Ok(manager.oom_killed(&cgroup)?)).await
    }

    /// Kills every process of the container, waits until they are gone and removes its cgroup.
    pub async fn destroy(mut self) -> Result<(), SandboxError> {
        let (manager, cgroup) = (self.cgroups.clone(), self.cgroup.clone());
        blocking(move || Ok(manager.remove(&cgroup)?)).await?;
        self.destroyed = true;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        // The init was in the cgroup, so it is dead now; wait until the spawner reaped it, so
        // not even a zombie is left when this returns.
        let status = self.exited().await;
        debug!(container_id = %self.id, ?status, "container reaped");
        info!(container_id = %self.id, "container destroyed");
        Ok(())
    }
}

impl Drop for Container {
    /// A container nobody destroyed (a dropped handle, a create whose caller left) must not
    /// keep running: kill it and remove its cgroup in the background.
    fn drop(&mut self) {
        if self.destroyed {
            return;
        }
        let (manager, cgroup, live) =
            (self.cgroups.clone(), self.cgroup.clone(), self.live.clone());
        // The id stays reserved until the cgroup is gone, so a new container of the same id
        // cannot be caught by this removal.
        let remove = move || {
            if let Err(error) = manager.remove(&cgroup) {
                warn!(container_id = cgroup.id(), %error, "cannot destroy a dropped container");
            }
            live.lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(cgroup.id());
        };
        warn!(container_id = %self.id, "container dropped without destroy: destroying it");
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, SandboxError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| SandboxError::Task(error.to_string()))?
}

async fn remove_cgroup(manager: Arc<CgroupManager>, cgroup: ContainerCgroup) {
    let id = cgroup.id().to_owned();
    if let Err(error) = blocking(move || Ok(manager.remove(&cgroup)?)).await {
        warn!(container_id = %id, %error, "cannot remove the cgroup of a failed container");
    }
}

/// The parent directories (one per hierarchy) holding this instance's container cgroups.
fn parent_dirs(manager: &CgroupManager) -> Vec<PathBuf> {
    let Ok(probe) = manager.cgroup_for("probe") else {
        return Vec::new();
    };
    probe
        .dirs()
        .into_iter()
        .filter_map(Path::parent)
        .map(Path::to_path_buf)
        .collect()
}

/// Kills and removes every container cgroup a crashed earlier run of this instance left.
fn sweep(manager: &CgroupManager) -> Result<(), SandboxError> {
    let mut names: Vec<String> = Vec::new();
    for dir in parent_dirs(manager) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str())
                && !names.iter().any(|known| known == name)
            {
                names.push(name.to_owned());
            }
        }
    }
    for name in names {
        let cgroup = manager.cgroup_for(&name)?;
        warn!(container_id = %name, "removing a container left by an earlier run");
        manager.remove(&cgroup)?;
    }
    Ok(())
}

fn remove_parent_dirs(manager: &CgroupManager) {
    for dir in parent_dirs(manager) {
        if let Err(error) = std::fs::remove_dir(&dir)
            && error.kind() != io::ErrorKind::NotFound
        {
            warn!(path = %dir.display(), %error, "cannot remove the instance's cgroup");
        }
    }
}

async fn create_registered(
    spawner: &Spawner,
    cgroups: &Arc<CgroupManager>,
    live: &Live,
    spec: &ContainerSpec,
) -> Result<Container, SandboxError> {
    let limits = CgroupLimits {
        memory_bytes: spec.memory_mb.saturating_mul(MIB),
        pids_max: spec.pids_max,
    };
    let manager = cgroups.clone();
    let id = spec.id.clone();
    let cgroup = blocking(move || Ok(manager.create(&id, limits)?)).await?;
    let procs = cgroup
        .dirs()
        .into_iter()
        .map(|dir| dir.join("cgroup.procs"))
        .collect();
    let created = match spawner.create(spec, procs).await {
        Ok(created) => created,
        Err(error) => {
            remove_cgroup(cgroups.clone(), cgroup).await;
            return Err(error);
        }
    };
    let pid = created.pid;
    let parts = (|| -> io::Result<_> {
        Ok((
            crate::sys::async_fd(created.pidfd)?,
            pipe::Sender::from_owned_fd(created.stdin)?,
            pipe::Receiver::from_owned_fd(created.stdout)?,
            pipe::Receiver::from_owned_fd(created.stderr)?,
        ))
    })();
    let (pidfd, stdin, stdout, stderr) = match parts {
        Ok(parts) => parts,
        Err(source) => {
            remove_cgroup(cgroups.clone(), cgroup).await;
            return Err(SandboxError::Io {
                action: "register the container's descriptors",
                source,
            });
        }
    };
    info!(container_id = %spec.id, pid, "container created");
    Ok(Container {
        id: spec.id.clone(),
        pid,
        cgroup,
        cgroups: cgroups.clone(),
        live: live.clone(),
        pidfd,
        exit: created.exit,
        stdin: Some(stdin),
        stdout: Some(stdout),
        stderr: Some(stderr),
        destroyed: false,
    })
}
