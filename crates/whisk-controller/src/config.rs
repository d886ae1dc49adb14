//! Controller settings, built once by the binary and shared read-only by every request.

use whisk_model::limits::SystemLimits;
use whisk_model::manifest::RuntimeManifest;

/// The largest HTTP request body the server accepts (OpenWhisk: 50 MB).
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 50 * 1024 * 1024;

/// What `GET /api/v1` reports as the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Build date or label (`build`).
    pub build: String,
    /// Build number (`buildno`).
    pub build_number: String,
}

impl Default for BuildInfo {
    fn default() -> Self {
        Self {
            build: env!("CARGO_PKG_VERSION").to_owned(),
            build_number: concat!("whisk-rs-", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Everything the REST API needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// System-wide limits and their defaults (namespace overrides are clamped to these).
    pub limits: SystemLimits,
    /// The runtimes actions may use.
    pub manifest: RuntimeManifest,
    /// Largest accepted request body in bytes (413 above).
    pub max_request_body: u64,
    /// Reported by the API info endpoint.
    pub build_info: BuildInfo,
}

impl ControllerConfig {
    /// The given limits and runtimes with OpenWhisk's request size and our build info.
    pub fn new(limits: SystemLimits, manifest: RuntimeManifest) -> Self {
        Self {
            limits,
            manifest,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            build_info: BuildInfo::default(),
        }
    }
}

impl Default for ControllerConfig {
    /// OpenWhisk's default limits with the runtimes whisk-rs ships.
    ///
    /// Runs once at start-up, never while serving a request. The built-in manifest is
    /// compiled-in data validated by whisk-model's tests, so failing to parse it is a broken
    /// build, not a condition to recover from.
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        let manifest = RuntimeManifest::builtin().expect("the built-in runtime manifest is valid");
        Self::new(SystemLimits::default(), manifest)
    }
}
