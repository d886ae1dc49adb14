//! Shared request state and the injectable sources of time and identifiers.
//!
//! Handlers never read the system clock or a random generator directly: they go through
//! [`Clock`] and [`IdSource`] so tests can pin `updated` timestamps and transaction ids.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::Rng;
use rand::distr::Alphanumeric;
use whisk_model::{ActivationId, Exec};
use whisk_store::Store;

use crate::config::ControllerConfig;
use crate::invoke::Invocations;

/// Length of a generated transaction id (OpenWhisk uses 32 random alphanumerics).
pub const TRANSACTION_ID_LENGTH: usize = 32;

/// Wall-clock time in epoch milliseconds, the unit of every `updated` and `start` field.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// Source of fresh identifiers.
pub trait IdSource: Send + Sync + fmt::Debug {
    /// A new transaction id (echoed as `X-Request-ID` and as `code` in error bodies).
    fn transaction_id(&self) -> String;
    /// A new activation id.
    fn activation_id(&self) -> ActivationId;
}

/// Random identifiers from the thread-local generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn transaction_id(&self) -> String {
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(TRANSACTION_ID_LENGTH)
            .map(char::from)
            .collect()
    }

    fn activation_id(&self) -> ActivationId {
        ActivationId::from_bytes(rand::rng().random())
    }
}

/// Checks an action's code when the action is created or updated, before anything is stored,
/// so that code the platform can never run is refused with a 400 at once instead of failing
/// every activation with an init error.
///
/// Why a seam: the check belongs to a runtime (compiling a WebAssembly module needs the wasm
/// engine, which this crate does not depend on), and what it may keep depends on the process:
/// the binary wires an implementation for its role (see `whisk standalone`, which compiles into
/// the engine its invoker runs from). Without one, any code is accepted, as OpenWhisk does.
#[async_trait]
pub trait CodeCheck: Send + Sync + fmt::Debug {
    /// Refuses `exec` with a message for the developer when it cannot run. Called only when the
    /// request writes an exec (an update that keeps the stored code is not checked again).
    async fn check(&self, exec: &Exec) -> Result<(), CodeRefused>;
}

/// Why an action's code was refused; the text is the 400's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodeRefused(pub String);

/// The [`CodeCheck`] of a controller with no runtime checks: every exec is accepted.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAnyCode;

#[async_trait]
impl CodeCheck for AcceptAnyCode {
    async fn check(&self, _exec: &Exec) -> Result<(), CodeRefused> {
        Ok(())
    }
}

/// Everything a handler needs; cheap to clone (all shared behind `Arc`s).
#[derive(Clone, Debug)]
pub struct AppState {
    /// Entities, subjects and activations.
    pub store: Store,
    /// Limits, runtimes and server settings, loaded once by the binary.
    pub config: Arc<ControllerConfig>,
    /// Time source for `updated` and throttling windows.
    pub clock: Arc<dyn Clock>,
    /// Transaction and activation ids.
    pub ids: Arc<dyn IdSource>,
    /// The balancer and throttles of action invocations.
    pub invocations: Arc<Invocations>,
    /// What checks an action's code when it is written.
    pub code_check: Arc<dyn CodeCheck>,
}

impl AppState {
    /// State with the system clock and random ids.
    pub fn new(store: Store, config: ControllerConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            invocations: Arc::new(Invocations::disabled()),
            code_check: Arc::new(AcceptAnyCode),
        }
    }

    /// The same state with invocations going through `invocations`.
    pub fn with_invocations(mut self, invocations: Invocations) -> Self {
        self.invocations = Arc::new(invocations);
        self
    }

    /// The same state with actions' code checked by `check` when they are written.
    pub fn with_code_check(mut self, check: Arc<dyn CodeCheck>) -> Self {
        self.code_check = check;
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_transaction_ids_are_32_alphanumerics_and_differ() {
        let first = RandomIds.transaction_id();
        let second = RandomIds.transaction_id();
        assert_eq!(first.len(), TRANSACTION_ID_LENGTH);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, second);
    }

    #[test]
    fn generated_activation_ids_are_32_lowercase_hex() {
        let id = RandomIds.activation_id().as_str().to_owned();
        assert_eq!(id.len(), 32);
        assert_ne!(id, RandomIds.activation_id().as_str());
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_millis() > 1_577_836_800_000);
    }
}
