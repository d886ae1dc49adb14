//! One cgroup per container, on cgroup v1 or v2.
//!
//! The [`CgroupManager`] creates `<hierarchy>/<parent>/<container-id>` (in every v1 hierarchy we
//! use, or once in the v2 tree), applies [`CgroupLimits`], moves processes in, freezes and thaws
//! them, tells whether the kernel OOM-killed one, and removes the cgroup after killing what is left.
//! All calls block on small file reads and writes: call them from the spawner or from
//! `spawn_blocking`, not directly on an async worker.

mod fs;
mod layout;

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tracing::{debug, info, warn};

pub use fs::{CgroupFs, FsOp, RealCgroupFs, RecordingCgroupFs};
pub use layout::{CGROUP_MOUNT_POINT, CgroupLayout};

/// Errors of the cgroup layer.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the {controller} cgroup controller is not enabled or not mounted")]
    MissingController { controller: &'static str },
    #[error("invalid container id {id:?}: {reason}")]
    InvalidContainerId { id: String, reason: &'static str },
    #[error("invalid cgroup parent {parent:?}: it must be a relative path of plain names")]
    InvalidParent { parent: String },
    #[error("pid 0 cannot be moved into a cgroup (writing it would move the caller itself)")]
    InvalidPid,
    #[error("invalid cgroup limits: {reason}")]
    InvalidLimits { reason: &'static str },
    #[error("unexpected contents in {path}: {contents:?}")]
    UnexpectedContents { path: PathBuf, contents: String },
    #[error("{path} did not reach the {wanted} state in time")]
    FreezeTimeout { path: PathBuf, wanted: &'static str },
    #[error("{count} processes still in {path} after killing them")]
    ProcessesRemain { path: PathBuf, count: usize },
    #[error("cannot kill process {pid}: {source}")]
    Kill {
        pid: u32,
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The limits of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLimits {
    /// The action's memory limit; memory+swap is set to the same value so it cannot swap.
    pub memory_bytes: u64,
    /// At most this many processes and threads (stops fork bombs).
    pub pids_max: u64,
}

/// Memory below which a container could not even start a runtime; also guards against a zero
/// limit, which v1 would read as "no memory at all" and v2 as an immediate OOM.
const MIN_MEMORY_BYTES: u64 = 4 * 1024 * 1024;

/// Memory that buys the kernel's default CPU share (1024 on v1, weight 100 on v2): OpenWhisk's
/// default action memory, so a default action gets a default share and others scale with memory.
const MEMORY_PER_DEFAULT_CPU_SHARE: u64 = 256 * 1024 * 1024;
const DEFAULT_CPU_SHARES: u64 = 1024;
const MIN_CPU_SHARES: u64 = 2;
const MAX_CPU_SHARES: u64 = 262_144;

/// v1 `cpu.shares` proportional to memory: 1024 per 256 MB, within the kernel's range.
pub fn cpu_shares_for_memory(memory_bytes: u64) -> u64 {
    let shares = u128::from(memory_bytes) * u128::from(DEFAULT_CPU_SHARES)
        / u128::from(MEMORY_PER_DEFAULT_CPU_SHARE);
    u64::try_from(shares)
        .unwrap_or(MAX_CPU_SHARES)
        .clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// v2 `cpu.weight` for the same share, with the mapping runc and systemd use
/// (shares 2..262144 onto weight 1..10000).
pub fn cpu_weight_for_shares(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + (shares - MIN_CPU_SHARES) * 9999 / (MAX_CPU_SHARES - MIN_CPU_SHARES)
}

/// The directories of one container's cgroup. Plain data, so a container pool can keep it and
/// a sweep can rebuild it from an id with [`CgroupManager::cgroup_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    id: String,
    memory: PathBuf,
    pids: PathBuf,
    cpu: PathBuf,
    freezer: PathBuf,
}

impl ContainerCgroup {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cgroup directory holding the memory controller's files.
    pub fn memory_dir(&self) -> &Path {
        &self.memory
    }

    /// Each distinct directory once (on v2 all controllers share one), in a stable order.
    pub fn dirs(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = Vec::with_capacity(4);
        for dir in [&self.memory, &self.pids, &self.cpu, &self.freezer] {
            if !dirs.contains(&dir.as_path()) {
                dirs.push(dir);
            }
        }
        dirs
    }
}

/// How many times (1 ms apart) to re-read a state the kernel reaches asynchronously
/// (frozen, or empty after SIGKILL) before giving up.
const STATE_POLL_ATTEMPTS: u32 = 2000;
const STATE_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Kill rounds in [`CgroupManager::remove`]: a process may fork between reading `cgroup.procs`
/// and the kill, so the read-and-kill is repeated (frozen on v1, so that is rare).
const KILL_ROUNDS: u32 = 10;

/// Creates and manages the cgroups of containers under one parent cgroup.
#[derive(Debug)]
pub struct CgroupManager<F: CgroupFs = RealCgroupFs> {
    fs: F,
    layout: CgroupLayout,
    parent: PathBuf,
}

impl CgroupManager<RealCgroupFs> {
    /// Detects the host's layout and manages containers under `parent` (e.g. `whisk`).
    pub fn detect(parent: &str) -> Result<Self, CgroupError> {
        let fs = RealCgroupFs;
        let layout = CgroupLayout::detect(&fs)?;
        Self::new(fs, layout, parent)
    }
}

impl<F: CgroupFs> CgroupManager<F> {
    /// A manager for `layout` through `fs`; `parent` is relative to each hierarchy's root.
    pub fn new(fs: F, layout: CgroupLayout, parent: &str) -> Result<Self, CgroupError> {
        let parent_path = PathBuf::from(parent);
        let plain = !parent.is_empty()
            && parent_path
                .components()
                .all(|component| matches!(component, Component::Normal(_)));
        if !plain {
            return Err(CgroupError::InvalidParent {
                parent: parent.to_owned(),
            });
        }
        info!(?layout, parent, "cgroup manager ready");
        Ok(Self {
            fs,
            layout,
            parent: parent_path,
        })
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// The file-system implementation (the fake, in tests).
    pub fn fs(&self) -> &F {
        &self.fs
    }

    /// The cgroup paths of a container, without touching the file system.
    pub fn cgroup_for(&self, container_id: &str) -> Result<ContainerCgroup, CgroupError> {
        validate_container_id(container_id)?;
        let relative = self.parent.join(container_id);
        Ok(match &self.layout {
            CgroupLayout::V1 {
                memory,
                pids,
                cpu,
                freezer,
                ..
            } => ContainerCgroup {
                id: container_id.to_owned(),
                memory: memory.join(&relative),
                pids: pids.join(&relative),
                cpu: cpu.join(&relative),
                freezer: freezer.join(&relative),
            },
            CgroupLayout::V2 { root } => {
                let dir = root.join(&relative);
                ContainerCgroup {
                    id: container_id.to_owned(),
                    memory: dir.clone(),
                    pids: dir.clone(),
                    cpu: dir.clone(),
                    freezer: dir,
                }
            }
        })
    }

    /// Creates the container's cgroup and applies its limits. On failure, whatever was created
    /// is removed again so no half-limited cgroup is left behind.
    pub fn create(
        &self,
        container_id: &str,
        limits: CgroupLimits,
    ) -> Result<ContainerCgroup, CgroupError> {
        if limits.memory_bytes < MIN_MEMORY_BYTES {
            return Err(CgroupError::InvalidLimits {
                reason: "memory must be at least 4 MiB",
            });
        }
        if limits.pids_max == 0 {
            return Err(CgroupError::InvalidLimits {
                reason: "pids_max must be at least 1",
            });
        }
        let cgroup = self.cgroup_for(container_id)?;
        if let CgroupLayout::V2 { root } = &self.layout {
            self.enable_v2_controllers(root)?;
        }
        for dir in cgroup.dirs() {
            if let Err(source) = self.fs.create_dir_all(dir) {
                self.remove_dirs_best_effort(&cgroup);
                return Err(CgroupError::io("create", dir, source));
            }
        }
        if let Err(error) = self.apply_limits(&cgroup, limits) {
            self.remove_dirs_best_effort(&cgroup);
            return Err(error);
        }
        info!(
            container_id,
            memory_bytes = limits.memory_bytes,
            pids_max = limits.pids_max,
            "cgroup created"
        );
        Ok(cgroup)
    }

    /// Moves a process (and the threads and children it has from then on) into the cgroup.
    pub fn add_process(&self, cgroup: &ContainerCgroup, pid: u32) -> Result<(), CgroupError> {
        if pid == 0 {
            return Err(CgroupError::InvalidPid);
        }
        for dir in cgroup.dirs() {
            self.write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        debug!(container_id = cgroup.id(), pid, "process added to cgroup");
        Ok(())
    }

    /// Pauses every process of the container (an idle warm container uses no CPU), returning
    /// once the kernel reports the cgroup frozen.
    pub fn freeze(&self, cgroup: &ContainerCgroup) -> Result<(), CgroupError> {
        self.set_frozen(cgroup, true)?;
        debug!(container_id = cgroup.id(), "cgroup frozen");
        Ok(())
    }

    /// Resumes a frozen container.
    pub fn thaw(&self, cgroup: &ContainerCgroup) -> Result<(), CgroupError> {
        self.set_frozen(cgroup, false)?;
        debug!(container_id = cgroup.id(), "cgroup thawed");
        Ok(())
    }

    /// Whether the kernel's OOM killer has killed a process of this container, so a crashed
    /// activation can be reported as exceeding its memory rather than as a runtime failure.
    pub fn oom_killed(&self, cgroup: &ContainerCgroup) -> Result<bool, CgroupError> {
        let killed = match &self.layout {
            CgroupLayout::V1 { .. } => {
                let path = cgroup.memory.join("memory.oom_control");
                let contents = self.read(&path)?;
                match keyed_value(&path, &contents, "oom_kill")? {
                    Some(kills) => kills > 0,
                    // Kernels before 4.13 have no `oom_kill` counter; hitting the limit is the
                    // best remaining evidence (with memsw = memory there is nowhere else to go).
                    None => {
                        let failcnt_path = cgroup.memory.join("memory.failcnt");
                        let failcnt = self.read(&failcnt_path)?;
                        parse_number(&failcnt_path, &failcnt)? > 0
                    }
                }
            }
            CgroupLayout::V2 { .. } => {
                let path = cgroup.memory.join("memory.events");
                let contents = self.read(&path)?;
                keyed_value(&path, &contents, "oom_kill")?.is_some_and(|kills| kills > 0)
            }
        };
        if killed {
            info!(container_id = cgroup.id(), "container was OOM-killed");
        }
        Ok(killed)
    }

    /// Kills every process still in the cgroup and removes it. Removing a cgroup that is already
    /// gone succeeds, so a sweep after a crash and a normal destroy can both call it.
    pub fn remove(&self, cgroup: &ContainerCgroup) -> Result<(), CgroupError> {
        let existing: Vec<&Path> = cgroup
            .dirs()
            .into_iter()
            .filter(|dir| self.fs.exists(dir))
            .collect();
        if existing.is_empty() {
            debug!(container_id = cgroup.id(), "cgroup already removed");
            return Ok(());
        }
        self.kill_all(cgroup, &existing)?;
        for dir in existing {
            match self.fs.remove_dir(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CgroupError::io("remove", dir, source)),
            }
        }
        info!(container_id = cgroup.id(), "cgroup removed");
        Ok(())
    }

    fn apply_limits(
        &self,
        cgroup: &ContainerCgroup,
        limits: CgroupLimits,
    ) -> Result<(), CgroupError> {
        let memory = limits.memory_bytes.to_string();
        let shares = cpu_shares_for_memory(limits.memory_bytes);
        match &self.layout {
            CgroupLayout::V1 {
                swap_accounting, ..
            } => {
                // memory first: the kernel refuses a memsw limit below the memory limit.
                self.write(&cgroup.memory.join("memory.limit_in_bytes"), &memory)?;
                if *swap_accounting {
                    self.write(&cgroup.memory.join("memory.memsw.limit_in_bytes"), &memory)?;
                }
                self.write(&cgroup.pids.join("pids.max"), &limits.pids_max.to_string())?;
                self.write(&cgroup.cpu.join("cpu.shares"), &shares.to_string())?;
            }
            CgroupLayout::V2 { .. } => {
                self.write(&cgroup.memory.join("memory.max"), &memory)?;
                let swap_max = cgroup.memory.join("memory.swap.max");
                // Absent when the kernel has no swap accounting; then there is no swap to limit.
                if self.fs.exists(&swap_max) {
                    self.write(&swap_max, "0")?;
                }
                self.write(&cgroup.pids.join("pids.max"), &limits.pids_max.to_string())?;
                let weight = cpu_weight_for_shares(shares);
                self.write(&cgroup.cpu.join("cpu.weight"), &weight.to_string())?;
            }
        }
        Ok(())
    }

    /// v2 only offers a controller's files in a child if every ancestor delegates it through
    /// `cgroup.subtree_control`; enable ours from the root down to the parent.
    fn enable_v2_controllers(&self, root: &Path) -> Result<(), CgroupError> {
        let controllers_path = root.join("cgroup.controllers");
        let available = self.read(&controllers_path)?;
        for controller in ["memory", "pids", "cpu"] {
            if !available.split_whitespace().any(|name| name == controller) {
                return Err(CgroupError::MissingController { controller });
            }
        }
        let mut dir = root.to_path_buf();
        let mut ancestors = vec![dir.clone()];
        for component in self.parent.components() {
            dir.push(component);
            ancestors.push(dir.clone());
        }
        for ancestor in ancestors {
            self.fs
                .create_dir_all(&ancestor)
                .map_err(|source| CgroupError::io("create", &ancestor, source))?;
            let subtree = ancestor.join("cgroup.subtree_control");
            let enabled = self.read(&subtree)?;
            let missing: Vec<String> = ["memory", "pids", "cpu"]
                .into_iter()
                .filter(|controller| !enabled.split_whitespace().any(|name| name == *controller))
                .map(|controller| format!("+{controller}"))
                .collect();
            if !missing.is_empty() {
                self.write(&subtree, &missing.join(" "))?;
            }
        }
        Ok(())
    }

    fn set_frozen(&self, cgroup: &ContainerCgroup, frozen: bool) -> Result<(), CgroupError> {
        match &self.layout {
            CgroupLayout::V1 { .. } => {
                let state = cgroup.freezer.join("freezer.state");
                let wanted = if frozen { "FROZEN" } else { "THAWED" };
                self.write(&state, wanted)?;
                // Freezing is asynchronous: the state reads FREEZING until every task stopped.
                self.wait_until(&state, wanted, |contents| contents.trim() == wanted)
            }
            CgroupLayout::V2 { .. } => {
                self.write(
                    &cgroup.freezer.join("cgroup.freeze"),
                    if frozen { "1" } else { "0" },
                )?;
                let events = cgroup.freezer.join("cgroup.events");
                let wanted_line = if frozen { "frozen 1" } else { "frozen 0" };
                let wanted = if frozen { "frozen" } else { "thawed" };
                self.wait_until(&events, wanted, |contents| {
                    contents.lines().any(|line| line.trim() == wanted_line)
                })
            }
        }
    }

    fn wait_until(
        &self,
        path: &Path,
        wanted: &'static str,
        reached: impl Fn(&str) -> bool,
    ) -> Result<(), CgroupError> {
        for _ in 0..STATE_POLL_ATTEMPTS {
            if reached(&self.read(path)?) {
                return Ok(());
            }
            std::thread::sleep(STATE_POLL_INTERVAL);
        }
        Err(CgroupError::FreezeTimeout {
            path: path.to_path_buf(),
            wanted,
        })
    }

    /// SIGKILLs every process in the cgroup and waits until the kernel has emptied it.
    fn kill_all(&self, cgroup: &ContainerCgroup, dirs: &[&Path]) -> Result<(), CgroupError> {
        if let CgroupLayout::V2 { .. } = self.layout {
            let kill_file = cgroup.memory.join("cgroup.kill");
            // cgroup.kill (Linux 5.14) kills atomically, forks included.
            if self.fs.exists(&kill_file) {
                self.write(&kill_file, "1")?;
                return self.wait_until_empty(dirs);
            }
        }
        // A frozen cgroup cannot fork new processes while we read and kill; SIGKILL is delivered
        // as soon as it thaws. Freezing is best effort: a missing freezer still gets the kill rounds.
        let froze = self.fs.exists(&cgroup.freezer) && self.set_frozen(cgroup, true).is_ok();
        for _ in 0..KILL_ROUNDS {
            let pids = self.pids_in(dirs)?;
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                match self.fs.kill(pid) {
                    Ok(()) => debug!(container_id = cgroup.id(), pid, "killed leftover process"),
                    // Already exited between the read and the kill.
                    Err(error)
                        if error.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => {
                    }
                    Err(source) => return Err(CgroupError::Kill { pid, source }),
                }
            }
            if froze {
                // Thaw so the frozen processes can act on SIGKILL, then freeze any survivor. A
                // process stuck in the kernel can keep the cgroup FREEZING; the kill rounds and
                // the final wait still apply, so that is not an error here.
                self.set_frozen(cgroup, false)?;
                if let Err(error) = self.set_frozen(cgroup, true) {
                    warn!(container_id = cgroup.id(), %error, "cannot re-freeze while killing");
                }
            }
        }
        if froze {
            self.set_frozen(cgroup, false)?;
        }
        self.wait_until_empty(dirs)
    }

    fn wait_until_empty(&self, dirs: &[&Path]) -> Result<(), CgroupError> {
        for _ in 0..STATE_POLL_ATTEMPTS {
            if self.pids_in(dirs)?.is_empty() {
                return Ok(());
            }
            std::thread::sleep(STATE_POLL_INTERVAL);
        }
        let mut remaining = 0;
        let mut where_ = PathBuf::new();
        for dir in dirs {
            let count = self.pids_in(&[dir])?.len();
            if count > 0 {
                remaining = count;
                where_ = dir.to_path_buf();
            }
        }
        Err(CgroupError::ProcessesRemain {
            path: where_,
            count: remaining,
        })
    }

    /// All pids listed in the `cgroup.procs` of `dirs`, each once.
    fn pids_in(&self, dirs: &[&Path]) -> Result<Vec<u32>, CgroupError> {
        let mut pids = Vec::new();
        for dir in dirs {
            let path = dir.join("cgroup.procs");
            let contents = match self.fs.read_to_string(&path) {
                Ok(contents) => contents,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CgroupError::io("read", &path, source)),
            };
            for line in contents.lines().filter(|line| !line.trim().is_empty()) {
                let pid = parse_number(&path, line)?;
                let pid = u32::try_from(pid).map_err(|_| CgroupError::UnexpectedContents {
                    path: path.clone(),
                    contents: line.to_owned(),
                })?;
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        Ok(pids)
    }

    fn remove_dirs_best_effort(&self, cgroup: &ContainerCgroup) {
        for dir in cgroup.dirs() {
            if let Err(error) = self.fs.remove_dir(dir)
                && error.kind() != io::ErrorKind::NotFound
            {
                warn!(container_id = cgroup.id(), path = %dir.display(), %error, "cannot clean up cgroup");
            }
        }
    }

    fn read(&self, path: &Path) -> Result<String, CgroupError> {
        self.fs
            .read_to_string(path)
            .map_err(|source| CgroupError::io("read", path, source))
    }

    fn write(&self, path: &Path, contents: &str) -> Result<(), CgroupError> {
        self.fs
            .write(path, contents)
            .map_err(|source| CgroupError::io("write", path, source))
    }
}

/// Container ids become directory names: keep them to a safe alphabet so one can never escape
/// the parent cgroup (`..`, `/`) or collide with a control file (those contain dots).
fn validate_container_id(id: &str) -> Result<(), CgroupError> {
    let invalid = |reason| CgroupError::InvalidContainerId {
        id: id.to_owned(),
        reason,
    };
    if id.is_empty() || id.len() > 64 {
        return Err(invalid("it must have 1 to 64 characters"));
    }
    if !id
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err(invalid(
            "only ASCII letters, digits, '-' and '_' are allowed",
        ));
    }
    Ok(())
}

fn parse_number(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.trim()
        .parse()
        .map_err(|_| CgroupError::UnexpectedContents {
            path: path.to_path_buf(),
            contents: text.to_owned(),
        })
}

/// The value of `key` in a flat keyed file (`key value` per line), `None` if the key is absent.
fn keyed_value(path: &Path, contents: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in contents.lines() {
        if let Some((name, value)) = line.split_once(' ')
            && name == key
        {
            return parse_number(path, value).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
