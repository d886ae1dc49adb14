//! Linux containers for whisk-rs action instances.
//!
//! A [`Sandbox`] owns a single-threaded spawner process (containers are cloned there, never in
//! the async server) and a parent cgroup per platform instance. Each [`Container`] gets its own
//! user (where the kernel allows), mount, PID, network, IPC, UTS and cgroup namespaces, a
//! cgroup with the action's limits, a read-only root holding only the host's runtime
//! directories, no capabilities, `no_new_privs` and a seccomp deny-list.
//!
//! Pure logic (spec validation, the root file-system plan, the cgroup layer behind
//! [`cgroup::CgroupFs`]) is unit-tested without root; the rest is tested for real in `tests/`.

pub mod cgroup;
mod client;
pub mod net;
mod protocol;
pub mod rootfs;
mod sandbox;
pub mod seccomp;
pub mod spawner;
mod spec;
mod sys;

pub use cgroup::{
    CgroupError, CgroupFs, CgroupLayout, CgroupLimits, CgroupManager, ContainerCgroup,
    RealCgroupFs, RecordingCgroupFs,
};
pub use client::Spawner;
pub use protocol::ExitStatus;
pub use sandbox::{Container, Sandbox, SandboxConfig, SandboxError};
pub use spec::{Bind, ContainerSpec, SpecError};
