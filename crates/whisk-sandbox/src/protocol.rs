//! Messages between the server and its spawner process: one JSON document per SOCK_SEQPACKET
//! message, descriptors attached with SCM_RIGHTS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::ContainerSpec;

/// Largest message either side sends (a spec with a large environment fits easily).
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// Descriptors attached to [`FromSpawner::Created`], in this order.
pub(crate) const CREATED_FDS: usize = 4;

/// Environment variable carrying the server's pid, so a spawner whose parent died before it
/// could ask for a parent-death signal notices and exits.
pub(crate) const PARENT_PID_ENV: &str = "WHISK_SPAWNER_PARENT";

/// Set (to anything) to make the spawner create containers without a user namespace even where
/// the kernel allows one.
pub(crate) const NO_USER_NAMESPACES_ENV: &str = "WHISK_SPAWNER_NO_USERNS";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToSpawner {
    /// Create a container whose first process joins the cgroups whose `cgroup.procs` files are
    /// listed, before it does anything else.
    Create {
        request: u64,
        spec: ContainerSpec,
        cgroup_procs: Vec<PathBuf>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromSpawner {
    /// First message after start.
    Hello { user_namespaces: bool },
    /// Attached: pidfd, the write end of stdin, the read ends of stdout and stderr.
    Created { request: u64, pid: u32 },
    /// `<step>: <error>`.
    Failed { request: u64, error: String },
    /// A container's first process ended and was reaped.
    Exited { pid: u32, status: ExitStatus },
}

/// How a container's program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// The spawner went away before reporting it.
    Unknown,
}
