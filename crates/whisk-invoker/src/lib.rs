//! The invoker: runs the activations a controller publishes on the invoker's bus topic.
//!
//! For each activation it loads the action (cached per revision), gets a container from the
//! [`pool`] (warm, stem cell or new), sends `/init` when needed and `/run`, collects the
//! container's [`logs`], stores the activation [`record`] and publishes the completion; once a
//! second it broadcasts a health beat ([`service`]). Containers come from a
//! [`ContainerFactory`]: Linux sandboxes in production, the in-memory [`fake`] in tests.

pub mod actions;
pub mod clock;
pub mod container;
pub mod fake;
pub mod images;
pub mod logs;
pub mod payload;
pub mod pool;
pub mod record;
pub mod registry;
pub mod sandbox;
pub mod service;
pub mod wasm;

pub use clock::{Clock, ManualClock, SystemClock};
pub use container::{
    ActionCode, ActionContainer, CallOutcome, ContainerError, ContainerFactory, ContainerSpec,
    LogRequest,
};
pub use pool::{
    ContainerPool, ContainerRequest, Lease, PoolConfig, PoolError, StemCellConfig, WarmKey,
    stem_cells_from_manifest,
};
pub use sandbox::{ContainerNetwork, NetworkProvider, SandboxFactory, SandboxFactoryConfig};
pub use service::{
    INTERRUPTED_BY_SHUTDOWN, Invoker, InvokerConfig, InvokerError, InvokerHandle, in_flight_for,
};
pub use wasm::{KindRouter, WasmFactory, engine_config_for};
