//! Linux containers for whisk-rs action instances.
//!
//! This first slice holds the cgroup layer: one cgroup per container with the action's memory
//! limit (memory+swap, so it cannot swap around it), a pids limit, CPU shares in proportion to
//! memory, freeze/thaw for paused containers, OOM-kill detection and removal. It works on cgroup
//! v1 and v2, detected at start. Namespaces, the root filesystem and the single-threaded spawner
//! are built on top of it (see `shared/ARCHITECTURE.md`).
//!
//! Every file-system side effect goes through [`cgroup::CgroupFs`], so the v1 and v2 logic is
//! unit-tested with a recording fake, without root.

pub mod cgroup;

pub use cgroup::{
    CgroupError, CgroupFs, CgroupLayout, CgroupLimits, CgroupManager, ContainerCgroup,
    RealCgroupFs, RecordingCgroupFs,
};
