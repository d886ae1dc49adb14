//! The seam between the invoker and whatever makes containers.
//!
//! The pool and the activation logic only ever see [`ContainerFactory`] and [`ActionContainer`],
//! so they are tested with the in-memory [`crate::fake`] implementation and run in production
//! with Linux sandboxes. A container answers `/init` and `/run` with outcomes that are already
//! mapped to OpenWhisk's activation responses (the runtime protocol's mapping lives with the
//! implementation that speaks it), plus whether the container can be used again.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use whisk_model::ActivationResponse;

/// The code a container is made for; `None` in a [`ContainerSpec`] means a stem cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCode {
    /// The bare action name (`/init`'s `name`).
    pub name: String,
    /// Source text or base64 archive; absent for image-only blackbox actions.
    pub code: Option<String>,
    /// The entry point (`/init`'s `main`).
    pub main: String,
    /// Whether `code` is base64.
    pub binary: bool,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The runtime kind (`nodejs:20`, `python:3`, `blackbox`, ...).
    pub kind: String,
    /// The image of a blackbox action; `None` for manifest kinds.
    pub image: Option<String>,
    /// Memory limit in MB (also what the container costs in the pool's budget).
    pub memory_mb: u64,
    /// The action's code for a cold start, `None` for a stem cell.
    pub action: Option<ActionCode>,
    /// The invocation namespace the container will serve; `None` for a stem cell.
    pub namespace: Option<String>,
    /// Environment every process of the container gets (e.g. `__OW_API_HOST`).
    pub env: BTreeMap<String, String>,
}

/// The outcome of one `/init` or `/run` call, already in OpenWhisk's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// `None` only for a successful `/init`; otherwise the activation's response.
    pub response: Option<ActivationResponse>,
    /// The call ran into the action's time limit (record annotation `timeout`).
    pub timed_out: bool,
    /// Whether the container may serve further activations (false after a developer error,
    /// a timeout, an out-of-memory kill or a crash).
    pub reusable: bool,
    /// The runtime answered that it is shutting down: run the activation elsewhere.
    pub reschedule: bool,
    /// Time the call took (`initTime` for `/init`).
    pub elapsed: Duration,
}

impl CallOutcome {
    /// A successful `/init`.
    pub fn ready(elapsed: Duration) -> CallOutcome {
        CallOutcome {
            response: None,
            timed_out: false,
            reusable: true,
            reschedule: false,
            elapsed,
        }
    }

    /// A `/run` that produced a response the container survives (success or application error).
    pub fn answered(response: ActivationResponse, elapsed: Duration) -> CallOutcome {
        CallOutcome {
            response: Some(response),
            timed_out: false,
            reusable: true,
            reschedule: false,
            elapsed,
        }
    }

    /// A call after which the container must be destroyed.
    pub fn failed(response: ActivationResponse, timed_out: bool, elapsed: Duration) -> CallOutcome {
        CallOutcome {
            response: Some(response),
            timed_out,
            reusable: false,
            reschedule: false,
            elapsed,
        }
    }
}

/// What the log collector should do for one activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRequest {
    /// The action's log limit in bytes; 0 means no collection at all.
    pub limit_bytes: u64,
    /// The activation ended in a developer error: do not wait for sentinels, add the warning.
    pub developer_error: bool,
    /// How long to wait for the sentinels before giving up with the collection notice.
    pub wait: Duration,
}

/// Why a container operation failed on the platform's side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// The container could not be created (becomes `Failed to provision resources ...`).
    #[error("container could not be created: {0}")]
    Create(String),
    /// Freezing or thawing failed: the container is not usable.
    #[error("container could not be paused or resumed: {0}")]
    Freeze(String),
    /// Destroying failed (logged; nothing else can be done).
    #[error("container could not be destroyed: {0}")]
    Destroy(String),
    /// The action's image could not be had (becomes the developer error
    /// `Failed to pull container image '<image>'.`).
    #[error("image {image} could not be pulled: {reason}")]
    ImagePull { image: String, reason: String },
}

/// One running container with a runtime proxy inside.
///
/// Methods take `&self` because a container whose action allows intra-container concurrency
/// serves several `/run` calls at once.
#[async_trait]
pub trait ActionContainer: Send + Sync + fmt::Debug {
    /// A name for logs.
    fn id(&self) -> &str;
    /// `POST /init` with the given payload and time limit.
    async fn init(&self, payload: &Value, timeout: Duration) -> CallOutcome;
    /// `POST /run` with the given payload and time limit.
    async fn run(&self, payload: &Value, timeout: Duration) -> CallOutcome;
    /// Freezes every process of the container (idle containers cost no CPU).
    async fn pause(&self) -> Result<(), ContainerError>;
    /// Thaws a paused container.
    async fn resume(&self) -> Result<(), ContainerError>;
    /// Kills everything and releases the container's resources.
    async fn destroy(&self) -> Result<(), ContainerError>;
    /// The log lines of the activation that just ended, formatted per REFERENCE §8.4.
    async fn logs(&self, request: LogRequest) -> Vec<String>;
}

/// Makes containers.
#[async_trait]
pub trait ContainerFactory: Send + Sync + fmt::Debug {
    async fn create(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ActionContainer>, ContainerError>;
}
