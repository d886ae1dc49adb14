//! Per-action limits, their bounds, the platform-wide limits and the shapes that report them
//! (REFERENCE §2, §6).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::error::ErrorClass;
use crate::identity::NamespaceLimits;

const BYTES_PER_MB: u64 = 1024 * 1024;

/// OpenWhisk's default action timeout (ms).
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// OpenWhisk's default action memory (MB).
pub const DEFAULT_MEMORY_MB: u64 = 256;
/// OpenWhisk's default log limit (MB).
pub const DEFAULT_LOGS_MB: u64 = 10;
/// OpenWhisk's default activations per container.
pub const DEFAULT_CONCURRENCY: u64 = 1;

/// A limit value that breaks its bounds. `Display` strings are OpenWhisk's exact messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("duration {value} milliseconds exceeds allowed threshold of {max} milliseconds")]
    TimeoutTooHigh { value: u64, max: u64 },
    #[error("duration {value} milliseconds below allowed threshold of {min} milliseconds")]
    TimeoutTooLow { value: u64, min: u64 },
    #[error("memory size {value} MB exceeds allowed threshold of {max} MB")]
    MemoryTooHigh { value: u64, max: u64 },
    #[error("memory size {value} MB below allowed threshold of {min} MB")]
    MemoryTooLow { value: u64, min: u64 },
    #[error("log size {value} MB exceeds allowed threshold of {max} MB")]
    LogsTooHigh { value: u64, max: u64 },
    #[error("log size {value} MB below allowed threshold of {min} MB")]
    LogsTooLow { value: u64, min: u64 },
    #[error("concurrency {value} exceeds allowed threshold of {max}")]
    ConcurrencyTooHigh { value: u64, max: u64 },
    #[error("concurrency {value} below allowed threshold of {min}")]
    ConcurrencyTooLow { value: u64, min: u64 },
    #[error("Max action instance concurrency must not exceed your namespace concurrency of {max}.")]
    InstancesTooHigh { value: u64, max: u64 },
}

impl LimitError {
    /// Bound violations are plain `400`s: the controller checks them against the caller's
    /// namespace bounds after the body was read, not while parsing it.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::BadRequest
    }
}

fn default_logs() -> u64 {
    DEFAULT_LOGS_MB
}

fn default_concurrency() -> u64 {
    DEFAULT_CONCURRENCY
}

/// The `limits` object of an action: `{"timeout":ms,"memory":MB,"logs":MB,"concurrency":n}`
/// plus `"instances"` when set. Stored documents must have `timeout` and `memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLimits {
    /// Milliseconds.
    pub timeout: u64,
    /// Megabytes.
    pub memory: u64,
    /// Megabytes of log output kept per activation.
    #[serde(default = "default_logs")]
    pub logs: u64,
    /// Activations one container may run at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u64,
    /// Maximum containers for this action (scheduler only); absent unless the user set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u64>,
}

impl Default for ActionLimits {
    fn default() -> ActionLimits {
        ActionLimits {
            timeout: DEFAULT_TIMEOUT_MS,
            memory: DEFAULT_MEMORY_MB,
            logs: DEFAULT_LOGS_MB,
            concurrency: DEFAULT_CONCURRENCY,
            instances: None,
        }
    }
}

impl ActionLimits {
    /// These limits with every field the patch sets replaced (the per-field merge of §5.3).
    pub fn with_patch(&self, patch: &ActionLimitsPatch) -> ActionLimits {
        ActionLimits {
            timeout: patch.timeout.unwrap_or(self.timeout),
            memory: patch.memory.unwrap_or(self.memory),
            logs: patch.logs.unwrap_or(self.logs),
            concurrency: patch.concurrency.unwrap_or(self.concurrency),
            instances: patch.instances.or(self.instances),
        }
    }

    /// Memory in bytes, for callers that size containers.
    pub fn memory_bytes(&self) -> u64 {
        self.memory * BYTES_PER_MB
    }

    /// Log limit in bytes, for the log collector.
    pub fn logs_bytes(&self) -> u64 {
        self.logs * BYTES_PER_MB
    }
}

/// Reads an optional limit that must be a whole, non-negative JSON number; `256.0` is accepted
/// like `256` (JSON does not distinguish them), `1.5`, `-1` and `"256"` are not.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    let Some(value) = value else {
        return Ok(None);
    };
    let Value::Number(number) = &value else {
        return Err(serde::de::Error::custom(format!(
            "limit value {value} must be a whole number"
        )));
    };
    if let Some(whole) = number.as_u64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && float >= 0.0 && float <= u64::MAX as f64 => {
            Ok(Some(float as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "limit value {number} must be a whole number"
        ))),
    }
}

/// The `limits` object of an action PUT: every field optional, merged per field on update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActionLimitsPatch {
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<u64>,
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<u64>,
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub logs: Option<u64>,
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub concurrency: Option<u64>,
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub instances: Option<u64>,
}

/// Inclusive minimum and maximum of each action limit, plus the cap on `instances`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitBounds {
    pub min_timeout: u64,
    pub max_timeout: u64,
    pub min_memory: u64,
    pub max_memory: u64,
    pub min_logs: u64,
    pub max_logs: u64,
    pub min_concurrency: u64,
    pub max_concurrency: u64,
    /// `instances` may not exceed this (the namespace's concurrent invocation limit).
    pub max_instances: u64,
}

impl Default for LimitBounds {
    /// OpenWhisk's system bounds (§6.1); `max_instances` is the documented concurrency default.
    fn default() -> LimitBounds {
        LimitBounds {
            min_timeout: 100,
            max_timeout: 300_000,
            min_memory: 128,
            max_memory: 512,
            min_logs: 0,
            max_logs: 10,
            min_concurrency: 1,
            max_concurrency: 1,
            max_instances: DEFAULT_CONCURRENT_INVOCATIONS,
        }
    }
}

fn check_range(
    value: u64,
    min: u64,
    max: u64,
    too_high: impl FnOnce(u64, u64) -> LimitError,
    too_low: impl FnOnce(u64, u64) -> LimitError,
) -> Result<(), LimitError> {
    if value > max {
        Err(too_high(value, max))
    } else if value < min {
        Err(too_low(value, min))
    } else {
        Ok(())
    }
}

impl LimitBounds {
    /// Checks every field; the first violation (timeout, memory, logs, concurrency, instances)
    /// is reported.
    pub fn validate(&self, limits: &ActionLimits) -> Result<(), LimitError> {
        self.validate_patch(&ActionLimitsPatch {
            timeout: Some(limits.timeout),
            memory: Some(limits.memory),
            logs: Some(limits.logs),
            concurrency: Some(limits.concurrency),
            instances: limits.instances,
        })
    }

    /// Checks only the fields a PUT body sets, as OpenWhisk does (stored values are not re-judged).
    pub fn validate_patch(&self, patch: &ActionLimitsPatch) -> Result<(), LimitError> {
        if let Some(value) = patch.timeout {
            check_range(
                value,
                self.min_timeout,
                self.max_timeout,
                |value, max| LimitError::TimeoutTooHigh { value, max },
                |value, min| LimitError::TimeoutTooLow { value, min },
            )?;
        }
        if let Some(value) = patch.memory {
            check_range(
                value,
                self.min_memory,
                self.max_memory,
                |value, max| LimitError::MemoryTooHigh { value, max },
                |value, min| LimitError::MemoryTooLow { value, min },
            )?;
        }
        if let Some(value) = patch.logs {
            check_range(
                value,
                self.min_logs,
                self.max_logs,
                |value, max| LimitError::LogsTooHigh { value, max },
                |value, min| LimitError::LogsTooLow { value, min },
            )?;
        }
        if let Some(value) = patch.concurrency {
            check_range(
                value,
                self.min_concurrency,
                self.max_concurrency,
                |value, max| LimitError::ConcurrencyTooHigh { value, max },
                |value, min| LimitError::ConcurrencyTooLow { value, min },
            )?;
        }
        if let Some(value) = patch.instances
            && value > self.max_instances
        {
            return Err(LimitError::InstancesTooHigh {
                value,
                max: self.max_instances,
            });
        }
        Ok(())
    }

    /// Namespace-specific bounds: each override replaces the system value but is clamped into
    /// the system range, so a namespace can narrow but never widen what the platform allows.
    pub fn for_namespace(&self, overrides: &NamespaceLimits) -> LimitBounds {
        let clamp = |value: Option<u64>, fallback: u64, min: u64, max: u64| {
            value.map_or(fallback, |v| v.clamp(min, max))
        };
        LimitBounds {
            min_timeout: clamp(
                overrides.min_action_timeout,
                self.min_timeout,
                self.min_timeout,
                self.max_timeout,
            ),
            max_timeout: clamp(
                overrides.max_action_timeout,
                self.max_timeout,
                self.min_timeout,
                self.max_timeout,
            ),
            min_memory: clamp(
                overrides.min_action_memory,
                self.min_memory,
                self.min_memory,
                self.max_memory,
            ),
            max_memory: clamp(
                overrides.max_action_memory,
                self.max_memory,
                self.min_memory,
                self.max_memory,
            ),
            min_logs: clamp(
                overrides.min_action_logs,
                self.min_logs,
                self.min_logs,
                self.max_logs,
            ),
            max_logs: clamp(
                overrides.max_action_logs,
                self.max_logs,
                self.min_logs,
                self.max_logs,
            ),
            min_concurrency: clamp(
                overrides.min_action_concurrency,
                self.min_concurrency,
                self.min_concurrency,
                self.max_concurrency,
            ),
            max_concurrency: clamp(
                overrides.max_action_concurrency,
                self.max_concurrency,
                self.min_concurrency,
                self.max_concurrency,
            ),
            max_instances: overrides
                .max_action_instances
                .or(overrides.concurrent_invocations)
                .unwrap_or(self.max_instances),
        }
    }
}

/// Documented default of invocations per minute per namespace (the deployed default is 60).
pub const DEFAULT_INVOCATIONS_PER_MINUTE: u64 = 120;
/// Documented default of concurrent invocations per namespace (the deployed default is 30).
pub const DEFAULT_CONCURRENT_INVOCATIONS: u64 = 100;
/// Default of trigger fires per minute per namespace.
pub const DEFAULT_FIRES_PER_MINUTE: u64 = 60;
/// 1 MB: parameters, annotations, invocation payload and action result.
pub const DEFAULT_MAX_PARAMETER_SIZE: u64 = 1_048_576;
/// 48 MB, OpenWhisk's hard cap on `exec` (code + main + image).
pub const MAX_EXEC_SIZE: u64 = 50_331_648;
/// Most atomic actions one sequence or composition may run.
pub const DEFAULT_SEQUENCE_MAX_LENGTH: u64 = 50;

/// The platform-wide limits. whisk-rs uses OpenWhisk's *documented* throttle defaults
/// (120/min, 100 concurrent), not the 60/30 its deployments ship with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemLimits {
    pub invocations_per_minute: u64,
    pub concurrent_invocations: u64,
    pub fires_per_minute: u64,
    /// Bounds applied to every namespace unless it has narrower ones.
    pub action_bounds: LimitBounds,
    /// Limits given to an action whose PUT does not set them.
    pub action_defaults: ActionLimits,
    /// Bytes, for each of `parameters` and `annotations` on PUT.
    pub max_parameter_size: u64,
    /// Bytes of `exec` (code + main + image).
    pub max_exec_size: u64,
    /// Bytes of an invoke or fire request body.
    pub max_payload_size: u64,
    /// Bytes of an action result before it is truncated into an error.
    pub max_result_size: u64,
    pub sequence_max_length: u64,
}

impl Default for SystemLimits {
    fn default() -> SystemLimits {
        SystemLimits {
            invocations_per_minute: DEFAULT_INVOCATIONS_PER_MINUTE,
            concurrent_invocations: DEFAULT_CONCURRENT_INVOCATIONS,
            fires_per_minute: DEFAULT_FIRES_PER_MINUTE,
            action_bounds: LimitBounds::default(),
            action_defaults: ActionLimits::default(),
            max_parameter_size: DEFAULT_MAX_PARAMETER_SIZE,
            max_exec_size: MAX_EXEC_SIZE,
            max_payload_size: DEFAULT_MAX_PARAMETER_SIZE,
            max_result_size: DEFAULT_MAX_PARAMETER_SIZE,
            sequence_max_length: DEFAULT_SEQUENCE_MAX_LENGTH,
        }
    }
}

impl SystemLimits {
    /// The bounds that apply to actions of a namespace with these overrides.
    pub fn bounds_for(&self, overrides: &NamespaceLimits) -> LimitBounds {
        let system = LimitBounds {
            max_instances: self.concurrent_invocations,
            ..self.action_bounds
        };
        system.for_namespace(overrides)
    }

    pub fn invocations_per_minute_for(&self, overrides: &NamespaceLimits) -> u64 {
        overrides
            .invocations_per_minute
            .unwrap_or(self.invocations_per_minute)
    }

    pub fn concurrent_invocations_for(&self, overrides: &NamespaceLimits) -> u64 {
        overrides
            .concurrent_invocations
            .unwrap_or(self.concurrent_invocations)
    }

    pub fn fires_per_minute_for(&self, overrides: &NamespaceLimits) -> u64 {
        overrides.fires_per_minute.unwrap_or(self.fires_per_minute)
    }

    /// The `GET /namespaces/{ns}/limits` view for a namespace with these overrides.
    pub fn effective(&self, overrides: &NamespaceLimits) -> EffectiveLimits {
        let bounds = self.bounds_for(overrides);
        let concurrent_invocations = self.concurrent_invocations_for(overrides);
        EffectiveLimits {
            invocations_per_minute: self.invocations_per_minute_for(overrides),
            concurrent_invocations,
            fires_per_minute: self.fires_per_minute_for(overrides),
            min_action_memory: bounds.min_memory,
            max_action_memory: bounds.max_memory,
            min_action_logs: bounds.min_logs,
            max_action_logs: bounds.max_logs,
            min_action_timeout: bounds.min_timeout,
            max_action_timeout: bounds.max_timeout,
            min_action_concurrency: bounds.min_concurrency,
            max_action_concurrency: bounds.max_concurrency,
            max_parameter_size: size_string(self.max_parameter_size),
            max_action_instances: overrides
                .max_action_instances
                .unwrap_or(concurrent_invocations),
            allowed_kinds: overrides.allowed_kinds.clone(),
            store_activations: overrides.store_activations,
            max_payload_size: overrides.max_payload_size.clone(),
            truncation_size: overrides.truncation_size.clone(),
        }
    }

    /// The `limits` block of the controller's `GET /` (§2): times in ms, sizes in **bytes**.
    /// OpenWhisk reports the same system bounds under both the `default_` and the plain keys.
    pub fn info_json(&self) -> Value {
        let bounds = &self.action_bounds;
        json!({
            "actions_per_minute": self.invocations_per_minute,
            "triggers_per_minute": self.fires_per_minute,
            "concurrent_actions": self.concurrent_invocations,
            "sequence_length": self.sequence_max_length,
            "default_min_action_duration": bounds.min_timeout,
            "default_max_action_duration": bounds.max_timeout,
            "default_min_action_memory": bounds.min_memory * BYTES_PER_MB,
            "default_max_action_memory": bounds.max_memory * BYTES_PER_MB,
            "default_min_action_logs": bounds.min_logs * BYTES_PER_MB,
            "default_max_action_logs": bounds.max_logs * BYTES_PER_MB,
            "min_action_duration": bounds.min_timeout,
            "max_action_duration": bounds.max_timeout,
            "min_action_memory": bounds.min_memory * BYTES_PER_MB,
            "max_action_memory": bounds.max_memory * BYTES_PER_MB,
            "min_action_logs": bounds.min_logs * BYTES_PER_MB,
            "max_action_logs": bounds.max_logs * BYTES_PER_MB,
        })
    }
}

/// How OpenWhisk renders a byte size in the limits response, e.g. `"1048576 B"`.
pub fn size_string(bytes: u64) -> String {
    format!("{bytes} B")
}

/// The body of `GET /namespaces/{ns}/limits` (§6.4). Memory and logs in MB, timeouts in ms,
/// `maxParameterSize` as a size string; the trailing keys appear only when the namespace sets them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveLimits {
    pub invocations_per_minute: u64,
    pub concurrent_invocations: u64,
    pub fires_per_minute: u64,
    pub min_action_memory: u64,
    pub max_action_memory: u64,
    pub min_action_logs: u64,
    pub max_action_logs: u64,
    pub min_action_timeout: u64,
    pub max_action_timeout: u64,
    pub min_action_concurrency: u64,
    pub max_action_concurrency: u64,
    pub max_parameter_size: String,
    pub max_action_instances: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_kinds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_activations: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation_size: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn patch(text: &str) -> Result<ActionLimitsPatch, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn defaults_are_openwhisks() {
        assert_eq!(
            serde_json::to_value(ActionLimits::default()).unwrap(),
            json!({"timeout":60000,"memory":256,"logs":10,"concurrency":1})
        );
        let system = SystemLimits::default();
        assert_eq!(system.invocations_per_minute, 120);
        assert_eq!(system.concurrent_invocations, 100);
        assert_eq!(system.fires_per_minute, 60);
        assert_eq!(system.max_exec_size, 48 * 1024 * 1024);
        assert_eq!(system.max_parameter_size, 1_048_576);
        assert_eq!(system.sequence_max_length, 50);
    }

    #[test]
    fn stored_limits_need_timeout_and_memory_only() {
        let limits: ActionLimits =
            serde_json::from_str(r#"{"timeout":1000,"memory":128}"#).unwrap();
        assert_eq!(limits.logs, 10);
        assert_eq!(limits.concurrency, 1);
        assert!(serde_json::from_str::<ActionLimits>(r#"{"memory":128}"#).is_err());
        let with_instances = ActionLimits {
            instances: Some(3),
            ..limits
        };
        assert_eq!(
            serde_json::to_value(with_instances).unwrap()["instances"],
            json!(3)
        );
    }

    #[test]
    fn patch_values_must_be_whole_numbers() {
        assert_eq!(patch(r#"{"memory":256.0}"#).unwrap().memory, Some(256));
        assert_eq!(patch(r#"{"memory":null}"#).unwrap().memory, None);
        for bad in [
            r#"{"memory":1.5}"#,
            r#"{"timeout":"100"}"#,
            r#"{"logs":-1}"#,
            r#"{"concurrency":true}"#,
        ] {
            assert!(patch(bad).is_err(), "{bad} should be malformed");
        }
    }

    #[test]
    fn patch_merges_per_field() {
        let base = ActionLimits::default();
        let merged = base.with_patch(&patch(r#"{"memory":512,"instances":2}"#).unwrap());
        assert_eq!(merged.memory, 512);
        assert_eq!(merged.timeout, base.timeout);
        assert_eq!(merged.instances, Some(2));
        assert_eq!(merged.with_patch(&ActionLimitsPatch::default()), merged);
    }

    #[test]
    fn bounds_report_exact_messages() {
        let bounds = LimitBounds::default();
        let cases = [
            (
                r#"{"timeout":300001}"#,
                "duration 300001 milliseconds exceeds allowed threshold of 300000 milliseconds",
            ),
            (
                r#"{"timeout":99}"#,
                "duration 99 milliseconds below allowed threshold of 100 milliseconds",
            ),
            (
                r#"{"memory":513}"#,
                "memory size 513 MB exceeds allowed threshold of 512 MB",
            ),
            (
                r#"{"memory":127}"#,
                "memory size 127 MB below allowed threshold of 128 MB",
            ),
            (
                r#"{"logs":11}"#,
                "log size 11 MB exceeds allowed threshold of 10 MB",
            ),
            (
                r#"{"concurrency":2}"#,
                "concurrency 2 exceeds allowed threshold of 1",
            ),
            (
                r#"{"concurrency":0}"#,
                "concurrency 0 below allowed threshold of 1",
            ),
            (
                r#"{"instances":101}"#,
                "Max action instance concurrency must not exceed your namespace concurrency of 100.",
            ),
        ];
        for (input, message) in cases {
            let error = bounds.validate_patch(&patch(input).unwrap()).unwrap_err();
            assert_eq!(error.to_string(), message, "for {input}");
            assert_eq!(error.class(), ErrorClass::BadRequest);
        }
        assert!(bounds.validate(&ActionLimits::default()).is_ok());
        let edges =
            patch(r#"{"timeout":100,"memory":512,"logs":0,"concurrency":1,"instances":100}"#)
                .unwrap();
        assert!(bounds.validate_patch(&edges).is_ok());
    }

    #[test]
    fn logs_below_minimum_uses_the_log_message() {
        let bounds = LimitBounds {
            min_logs: 1,
            ..LimitBounds::default()
        };
        let error = bounds
            .validate(&ActionLimits {
                logs: 0,
                ..ActionLimits::default()
            })
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "log size 0 MB below allowed threshold of 1 MB"
        );
    }

    #[test]
    fn namespace_overrides_are_clamped_into_the_system_range() {
        let system = SystemLimits::default();
        let overrides = NamespaceLimits {
            min_action_memory: Some(64),
            max_action_memory: Some(2048),
            max_action_timeout: Some(1000),
            concurrent_invocations: Some(7),
            ..NamespaceLimits::default()
        };
        let bounds = system.bounds_for(&overrides);
        assert_eq!(bounds.min_memory, 128);
        assert_eq!(bounds.max_memory, 512);
        assert_eq!(bounds.max_timeout, 1000);
        assert_eq!(bounds.max_instances, 7);
        assert_eq!(
            bounds
                .validate_patch(&patch(r#"{"instances":8}"#).unwrap())
                .unwrap_err()
                .to_string(),
            "Max action instance concurrency must not exceed your namespace concurrency of 7."
        );
    }

    #[test]
    fn effective_limits_fill_in_system_defaults() {
        let system = SystemLimits::default();
        let plain = system.effective(&NamespaceLimits::default());
        assert_eq!(plain.max_parameter_size, "1048576 B");
        assert_eq!(plain.max_action_instances, 100);
        assert!(plain.allowed_kinds.is_none());

        let overrides = NamespaceLimits {
            invocations_per_minute: Some(5),
            concurrent_invocations: Some(3),
            allowed_kinds: Some(vec!["nodejs:20".to_string()]),
            store_activations: Some(false),
            ..NamespaceLimits::default()
        };
        let custom = serde_json::to_value(system.effective(&overrides)).unwrap();
        assert_eq!(custom["invocationsPerMinute"], json!(5));
        assert_eq!(custom["concurrentInvocations"], json!(3));
        assert_eq!(custom["maxActionInstances"], json!(3));
        assert_eq!(custom["allowedKinds"], json!(["nodejs:20"]));
        assert_eq!(custom["storeActivations"], json!(false));
        assert!(custom.get("maxPayloadSize").is_none());
    }

    #[test]
    fn info_reports_sizes_in_bytes() {
        let info = SystemLimits::default().info_json();
        assert_eq!(info["max_action_memory"], json!(536_870_912));
        assert_eq!(info["min_action_memory"], json!(134_217_728));
        assert_eq!(info["max_action_logs"], json!(10_485_760));
        assert_eq!(info["actions_per_minute"], json!(120));
        assert_eq!(info["concurrent_actions"], json!(100));
    }
}
