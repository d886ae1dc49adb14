//! The side effects the cgroup layer needs, behind one small trait.
//!
//! Following youki's `Syscall` trait, [`CgroupFs`] is the only place that touches the kernel, so
//! the v1 and v2 logic above it can be unit-tested with [`RecordingCgroupFs`] and no root.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// File-system (and signal) operations on cgroup hierarchies.
///
/// Killing a process is here too because removing a cgroup means killing whatever still runs in
/// it, and a cgroup v1 hierarchy has no `cgroup.kill` file to do that through the file system.
pub trait CgroupFs: Debug + Send + Sync {
    /// Reads a whole (small) file, such as `memory.events` or `cgroup.procs`.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Writes `contents` to an existing control file in one `write(2)`.
    fn write(&self, path: &Path, contents: &str) -> io::Result<()>;
    /// Creates a cgroup directory and any missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Removes one empty cgroup directory (`rmdir(2)`).
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether a control file or cgroup directory exists (optional files differ per kernel).
    fn exists(&self, path: &Path) -> bool;
    /// Sends SIGKILL to one process.
    fn kill(&self, pid: u32) -> io::Result<()>;
}

/// The real implementation: `std::fs` and `kill(2)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealCgroupFs;

impl CgroupFs for RealCgroupFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, contents: &str) -> io::Result<()> {
        // Not `std::fs::write`: that would create the file, and a missing control file must be
        // an error (it means the controller is not there), not a stray regular file.
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(contents.as_bytes())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn kill(&self, pid: u32) -> io::Result<()> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let pid = rustix::process::Pid::from_raw(raw)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).map_err(io::Error::from)
    }
}

/// One side effect, as recorded by [`RecordingCgroupFs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOp {
    Write(PathBuf, String),
    CreateDir(PathBuf),
    RemoveDir(PathBuf),
    Kill(u32),
}

#[derive(Debug, Default)]
struct FakeState {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, String>,
    /// Control files every newly created directory gets, with their initial contents.
    new_dir_files: Vec<(String, String)>,
    /// File names whose writes fail, as a kernel refusing a value would.
    failing_writes: Vec<String>,
    ops: Vec<FsOp>,
}

/// An in-memory cgroup file system that records every side effect.
///
/// It imitates just enough of the kernel for the manager's logic to be tested: new directories
/// get the configured control files, writing `cgroup.freeze` updates `cgroup.events`, a killed pid
/// disappears from every `cgroup.procs`, and `rmdir` of a cgroup with processes is `EBUSY`.
#[derive(Debug, Default)]
pub struct RecordingCgroupFs {
    state: Mutex<FakeState>,
}

impl RecordingCgroupFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every directory created from now on gets a file `name` holding `contents`.
    pub fn with_new_dir_file(self, name: &str, contents: &str) -> Self {
        self.lock()
            .new_dir_files
            .push((name.to_owned(), contents.to_owned()));
        self
    }

    /// Creates a directory (and its parents) without recording it, as the host's setup.
    pub fn add_dir(&self, path: impl Into<PathBuf>) {
        let path = path.into();
        let mut state = self.lock();
        for ancestor in path.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
    }

    /// Sets a file's contents without recording it, as the kernel would (e.g. an OOM event).
    pub fn set_file(&self, path: impl Into<PathBuf>, contents: &str) {
        self.lock().files.insert(path.into(), contents.to_owned());
    }

    /// Makes every later write to a file called `name` fail with `EACCES`.
    pub fn fail_writes_to(&self, name: &str) {
        self.lock().failing_writes.push(name.to_owned());
    }

    /// The current contents of a file, if any.
    pub fn file(&self, path: impl AsRef<Path>) -> Option<String> {
        self.lock().files.get(path.as_ref()).cloned()
    }

    pub fn has_dir(&self, path: impl AsRef<Path>) -> bool {
        self.lock().dirs.contains(path.as_ref())
    }

    /// The recorded side effects, oldest first.
    pub fn ops(&self) -> Vec<FsOp> {
        self.lock().ops.clone()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panic while holding the lock can only come from a failing test; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

impl CgroupFs for RecordingCgroupFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        self.lock().files.get(path).cloned().ok_or_else(not_found)
    }

    fn write(&self, path: &Path, contents: &str) -> io::Result<()> {
        let mut state = self.lock();
        let parent = path.parent().ok_or_else(not_found)?;
        if !state.dirs.contains(parent) {
            return Err(not_found());
        }
        let refused = path.file_name().is_some_and(|name| {
            state
                .failing_writes
                .iter()
                .any(|failing| name == failing.as_str())
        });
        if refused {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        state
            .ops
            .push(FsOp::Write(path.to_path_buf(), contents.to_owned()));
        if path.file_name().is_some_and(|name| name == "cgroup.freeze") {
            let frozen = contents.trim() == "1";
            state.files.insert(
                parent.join("cgroup.events"),
                format!("populated 0\nfrozen {}\n", u8::from(frozen)),
            );
        }
        if path.file_name().is_some_and(|name| name == "cgroup.procs") {
            // Writing a pid moves it in; the file then lists it with the others.
            let procs = state.files.entry(path.to_path_buf()).or_default();
            procs.push_str(contents.trim());
            procs.push('\n');
        } else {
            state.files.insert(path.to_path_buf(), contents.to_owned());
        }
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.ops.push(FsOp::CreateDir(path.to_path_buf()));
        let new_dirs: Vec<PathBuf> = path
            .ancestors()
            .filter(|ancestor| !state.dirs.contains(*ancestor))
            .map(Path::to_path_buf)
            .collect();
        for dir in new_dirs {
            let templates = state.new_dir_files.clone();
            for (name, contents) in templates {
                state.files.insert(dir.join(name), contents);
            }
            state.dirs.insert(dir);
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.dirs.contains(path) {
            return Err(not_found());
        }
        let has_processes = state
            .files
            .get(&path.join("cgroup.procs"))
            .is_some_and(|procs| !procs.trim().is_empty());
        if has_processes {
            return Err(io::Error::from(io::ErrorKind::ResourceBusy));
        }
        state.ops.push(FsOp::RemoveDir(path.to_path_buf()));
        state.dirs.remove(path);
        state.files.retain(|file, _| file.parent() != Some(path));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.lock();
        state.dirs.contains(path) || state.files.contains_key(path)
    }

    fn kill(&self, pid: u32) -> io::Result<()> {
        let mut state = self.lock();
        state.ops.push(FsOp::Kill(pid));
        let pid_text = pid.to_string();
        for (path, contents) in state.files.iter_mut() {
            if path.file_name().is_some_and(|name| name == "cgroup.procs") {
                *contents = contents
                    .lines()
                    .filter(|line| line.trim() != pid_text)
                    .map(|line| format!("{line}\n"))
                    .collect();
            }
        }
        Ok(())
    }
}
