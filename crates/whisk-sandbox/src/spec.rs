//! What one container should be: the [`ContainerSpec`] the invoker builds and the spawner
//! executes, and its validation (pure, so it is unit-tested without root).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One host path made visible inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// Absolute host path (a directory or a file).
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: PathBuf,
    /// Whether the container may write through it (the action's code dir is read-only).
    pub writable: bool,
}

impl Bind {
    /// A read-only bind, the usual case.
    pub fn read_only(source: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Self {
            source: source.into(),
            target: target.into(),
            writable: false,
        }
    }
}

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique among the live containers of a [`crate::Sandbox`]; names the cgroup, so only ASCII
    /// letters, digits, `-` and `_` (1 to 64 of them).
    pub id: String,
    /// The container's host name (its own UTS namespace).
    pub hostname: String,
    /// The program and its arguments; `argv[0]` is looked up in the `PATH` of `env` when it
    /// holds no `/`.
    pub argv: Vec<String>,
    /// The program's whole environment (nothing of the host's is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory inside the container.
    pub cwd: PathBuf,
    /// Extra binds on top of the runtime directories (e.g. the action's code at `/action`).
    pub binds: Vec<Bind>,
    /// Size of the private `/tmp`.
    pub tmp_size_mb: u64,
    /// Memory limit; memory+swap gets the same value.
    pub memory_mb: u64,
    /// Limit of processes and threads.
    pub pids_max: u64,
    /// A prepared network namespace to join (e.g. `/run/netns/NAME`); without one the
    /// container gets a fresh namespace with only a loopback interface.
    pub netns: Option<PathBuf>,
    /// An image's unpacked root filesystem (a host directory) that replaces the host's runtime
    /// directories as what the container sees at `/`. Many containers share one, so it is only
    /// ever bound read-only and nothing is created inside it.
    #[serde(default)]
    pub rootfs: Option<PathBuf>,
}

/// Why a spec was refused before anything was created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("argv must name a program")]
    EmptyArgv,
    #[error("{what} {value:?} contains a NUL byte")]
    Nul { what: &'static str, value: String },
    #[error("invalid environment variable name {0:?}")]
    EnvName(String),
    #[error("{what} {path:?} must be an absolute path without '..'")]
    NotAbsolute { what: &'static str, path: PathBuf },
    #[error("bind target {0:?} would hide a directory the container needs")]
    ReservedTarget(PathBuf),
    #[error("hostname {0:?} must have 1 to 64 characters among letters, digits, '-' and '.'")]
    Hostname(String),
    #[error("tmp_size_mb must be between 1 and 65536, not {0}")]
    TmpSize(u64),
}

/// Targets that the sandbox mounts itself; a bind there would replace or hide them.
const RESERVED_TARGETS: &[&str] = &["/", "/proc", "/dev", "/tmp", "/etc", "/usr", "/oldroot"];

impl ContainerSpec {
    /// Checks everything that can be checked without touching the system, so that a bad spec
    /// is an error the caller can name rather than a half-created container.
    pub fn validate(&self) -> Result<(), SpecError> {
        let Some(program) = self.argv.first() else {
            return Err(SpecError::EmptyArgv);
        };
        if program.is_empty() {
            return Err(SpecError::EmptyArgv);
        }
        for arg in &self.argv {
            no_nul("argument", arg)?;
        }
        for (name, value) in &self.env {
            no_nul("environment variable", name)?;
            no_nul("environment value", value)?;
            if name.is_empty() || name.contains('=') {
                return Err(SpecError::EnvName(name.clone()));
            }
        }
        clean_absolute("cwd", &self.cwd)?;
        let hostname_ok = !self.hostname.is_empty()
            && self.hostname.len() <= 64
            && self
                .hostname
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
        if !hostname_ok {
            return Err(SpecError::Hostname(self.hostname.clone()));
        }
        if self.tmp_size_mb == 0 || self.tmp_size_mb > 65536 {
            return Err(SpecError::TmpSize(self.tmp_size_mb));
        }
        for bind in &self.binds {
            clean_absolute("bind source", &bind.source)?;
            clean_absolute("bind target", &bind.target)?;
            let reserved = RESERVED_TARGETS
                .iter()
                .any(|reserved| bind.target == Path::new(reserved))
                || bind.target.starts_with("/proc")
                || bind.target.starts_with("/dev");
            if reserved {
                return Err(SpecError::ReservedTarget(bind.target.clone()));
            }
        }
        if let Some(netns) = &self.netns {
            clean_absolute("netns", netns)?;
        }
        if let Some(rootfs) = &self.rootfs {
            clean_absolute("rootfs", rootfs)?;
        }
        Ok(())
    }
}

fn no_nul(what: &'static str, value: &str) -> Result<(), SpecError> {
    if value.contains('\0') {
        return Err(SpecError::Nul {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn clean_absolute(what: &'static str, path: &Path) -> Result<(), SpecError> {
    let clean = path.is_absolute()
        && path
            .components()
            .all(|component| matches!(component, Component::RootDir | Component::Normal(_)))
        && !path.as_os_str().as_encoded_bytes().contains(&0);
    if !clean {
        return Err(SpecError::NotAbsolute {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "c1".into(),
            hostname: "action".into(),
            argv: vec!["/bin/true".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            binds: vec![Bind::read_only("/srv/code", "/action")],
            tmp_size_mb: 16,
            memory_mb: 128,
            pids_max: 64,
            netns: None,
            rootfs: None,
        }
    }

    #[test]
    fn a_plain_spec_is_valid() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn an_empty_argv_is_refused() {
        let mut bad = spec();
        bad.argv.clear();
        assert_eq!(bad.validate(), Err(SpecError::EmptyArgv));
        bad.argv.push(String::new());
        assert_eq!(bad.validate(), Err(SpecError::EmptyArgv));
    }

    #[test]
    fn nul_bytes_and_bad_env_names_are_refused() {
        let mut bad = spec();
        bad.argv.push("a\0b".into());
        assert!(matches!(bad.validate(), Err(SpecError::Nul { .. })));
        let mut bad = spec();
        bad.env.push(("A=B".into(), "x".into()));
        assert_eq!(bad.validate(), Err(SpecError::EnvName("A=B".into())));
    }

    #[test]
    fn relative_or_escaping_paths_are_refused() {
        let mut bad = spec();
        bad.cwd = "action".into();
        assert!(matches!(
            bad.validate(),
            Err(SpecError::NotAbsolute { what: "cwd", .. })
        ));
        let mut bad = spec();
        bad.binds[0].target = "/action/../etc".into();
        assert!(matches!(
            bad.validate(),
            Err(SpecError::NotAbsolute {
                what: "bind target",
                ..
            })
        ));
        let mut bad = spec();
        bad.binds[0].source = "code".into();
        assert!(matches!(
            bad.validate(),
            Err(SpecError::NotAbsolute {
                what: "bind source",
                ..
            })
        ));
    }

    #[test]
    fn an_image_root_must_be_a_clean_absolute_path() {
        let mut good = spec();
        good.rootfs = Some("/var/lib/whisk/images/rootfs/ab".into());
        assert_eq!(good.validate(), Ok(()));
        let mut bad = spec();
        bad.rootfs = Some("images/../rootfs".into());
        assert!(matches!(
            bad.validate(),
            Err(SpecError::NotAbsolute { what: "rootfs", .. })
        ));
    }

    #[test]
    fn binds_over_what_the_sandbox_mounts_are_refused() {
        for target in ["/", "/proc", "/proc/sys", "/dev/shm", "/tmp", "/etc"] {
            let mut bad = spec();
            bad.binds[0].target = target.into();
            assert_eq!(
                bad.validate(),
                Err(SpecError::ReservedTarget(target.into())),
                "{target}"
            );
        }
    }

    #[test]
    fn hostname_and_tmp_size_are_bounded() {
        let mut bad = spec();
        bad.hostname = "a b".into();
        assert!(matches!(bad.validate(), Err(SpecError::Hostname(_))));
        let mut bad = spec();
        bad.tmp_size_mb = 0;
        assert_eq!(bad.validate(), Err(SpecError::TmpSize(0)));
    }
}
