//! Activation records: the stored form, the extended API form, the list summary and the
//! `/result` shape (REFERENCE §8), plus the log lines of trigger activations (§12.3).
//!
//! The platform's own error texts for activations are in [`crate::error::messages`]
//! (`timed_out_run`, `ABNORMAL_RUN`, `MEMORY_EXHAUSTED`, ...) and re-exported here.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use crate::entities::SemVer;
use crate::names::{ActivationId, EntityName, EntityPath};
use crate::params::Annotations;

pub use crate::error::messages::{
    ABNORMAL_INITIALIZATION, ABNORMAL_RUN, ACTION_REMOVED_WHILE_INVOKING, LOG_COLLECTION_FAILURE,
    LOG_WARNING_DEVELOPER_ERROR, MEMORY_EXHAUSTED, NAMESPACE_BLACKLISTED, RESOURCE_PROVISION_ERROR,
    image_pull_error, invalid_init_response, invalid_run_response, logs_truncated, timed_out_init,
    timed_out_run, truncated_response,
};

/// Keys of the annotations the platform puts on activation records (§8.3).
pub mod annotation_keys {
    pub const PATH: &str = "path";
    pub const KIND: &str = "kind";
    pub const LIMITS: &str = "limits";
    pub const TIMEOUT: &str = "timeout";
    pub const WAIT_TIME: &str = "waitTime";
    pub const INIT_TIME: &str = "initTime";
    pub const CAUSED_BY: &str = "causedBy";
    pub const TOPMOST: &str = "topmost";
    pub const CONDUCTOR: &str = "conductor";
    pub const BINDING: &str = "binding";
}

/// The outcome class of an activation (§8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationStatus {
    Success,
    ApplicationError,
    DeveloperError,
    WhiskInternalError,
}

impl ActivationStatus {
    /// The numeric `statusCode` of the stored record.
    pub fn code(self) -> u8 {
        match self {
            ActivationStatus::Success => 0,
            ActivationStatus::ApplicationError => 1,
            ActivationStatus::DeveloperError => 2,
            ActivationStatus::WhiskInternalError => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<ActivationStatus> {
        match code {
            0 => Some(ActivationStatus::Success),
            1 => Some(ActivationStatus::ApplicationError),
            2 => Some(ActivationStatus::DeveloperError),
            3 => Some(ActivationStatus::WhiskInternalError),
            _ => None,
        }
    }

    /// The `status` string of the API form.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationStatus::Success => "success",
            ActivationStatus::ApplicationError => "application error",
            ActivationStatus::DeveloperError => "action developer error",
            ActivationStatus::WhiskInternalError => "whisk internal error",
        }
    }
}

impl fmt::Display for ActivationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn status_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    let code = u8::deserialize(deserializer)?;
    if ActivationStatus::from_code(code).is_none() {
        return Err(serde::de::Error::custom(format!(
            "statusCode {code} is not one of 0, 1, 2, 3"
        )));
    }
    Ok(code)
}

/// The `response` of an activation. Serializes to the stored form
/// `{"statusCode":n,"result":..,"size":n}`; [`ActivationResponse::to_api_json`] gives the API form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationResponse {
    /// 0..=3, see [`ActivationStatus`].
    #[serde(rename = "statusCode", deserialize_with = "status_code")]
    pub status_code: u8,
    /// Absent when the result was not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Length in characters of the raw `/run` reply, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl ActivationResponse {
    pub fn new(
        status: ActivationStatus,
        result: Option<Value>,
        size: Option<u64>,
    ) -> ActivationResponse {
        ActivationResponse {
            status_code: status.code(),
            result,
            size,
        }
    }

    pub fn success(result: Value, size: Option<u64>) -> ActivationResponse {
        ActivationResponse::new(ActivationStatus::Success, Some(result), size)
    }

    /// Errors always carry their value as `{"error": error}`.
    pub fn error(status: ActivationStatus, error: Value, size: Option<u64>) -> ActivationResponse {
        ActivationResponse::new(status, Some(json!({ "error": error })), size)
    }

    pub fn application_error(error: Value) -> ActivationResponse {
        ActivationResponse::error(ActivationStatus::ApplicationError, error, None)
    }

    pub fn developer_error(error: Value) -> ActivationResponse {
        ActivationResponse::error(ActivationStatus::DeveloperError, error, None)
    }

    pub fn whisk_error(error: Value) -> ActivationResponse {
        ActivationResponse::error(ActivationStatus::WhiskInternalError, error, None)
    }

    /// The status class; an out-of-range code (never produced here) counts as a platform error.
    pub fn status(&self) -> ActivationStatus {
        ActivationStatus::from_code(self.status_code)
            .unwrap_or(ActivationStatus::WhiskInternalError)
    }

    pub fn is_success(&self) -> bool {
        self.status() == ActivationStatus::Success
    }

    /// The API form: `statusCode` replaced by `status` and `success`.
    pub fn to_api_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("status".into(), json!(self.status().as_str()));
        object.insert("success".into(), json!(self.is_success()));
        if let Some(result) = &self.result {
            object.insert("result".into(), result.clone());
        }
        if let Some(size) = self.size {
            object.insert("size".into(), json!(size));
        }
        Value::Object(object)
    }
}

/// The body of `GET .../activations/{id}/result`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivationResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    pub success: bool,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl From<&ActivationResponse> for ActivationResult {
    fn from(response: &ActivationResponse) -> ActivationResult {
        ActivationResult {
            result: response.result.clone(),
            success: response.is_success(),
            status: response.status().as_str(),
            size: response.size,
        }
    }
}

/// An activation record. Serializes to the stored form (with `statusCode`, and `end: 0` for
/// trigger activations); the API forms come from [`WhiskActivation::to_api_json`] and
/// [`WhiskActivation::to_summary_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhiskActivation {
    /// The invoking identity's namespace (for web actions: the owner's).
    pub namespace: EntityPath,
    /// The bare action or trigger name.
    pub name: EntityName,
    pub subject: String,
    pub activation_id: ActivationId,
    /// Epoch milliseconds.
    pub start: u64,
    /// Epoch milliseconds; 0 for trigger activations, which have no end.
    pub end: u64,
    /// Set for sequences and compositions (sum of components); otherwise `end - start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// The parent sequence/composition activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ActivationId>,
    pub response: ActivationResponse,
    #[serde(default)]
    pub logs: Vec<String>,
    #[serde(default)]
    pub version: SemVer,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub annotations: Annotations,
}

impl WhiskActivation {
    /// True when the record has an end time (everything except trigger activations).
    pub fn has_ended(&self) -> bool {
        self.end != 0
    }

    /// The duration the API reports: the stored one, else `end - start`; `None` without an end.
    pub fn effective_duration(&self) -> Option<u64> {
        if self.has_ended() {
            Some(
                self.duration
                    .unwrap_or_else(|| self.end.saturating_sub(self.start)),
            )
        } else {
            None
        }
    }

    /// The storage key OpenWhisk uses: `<namespace>/<activationId>`.
    pub fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.activation_id)
    }

    /// The extended record of `GET /activations/{id}` and blocking invokes (§8.1).
    pub fn to_api_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("namespace".into(), json!(self.namespace));
        object.insert("name".into(), json!(self.name));
        object.insert("subject".into(), json!(self.subject));
        object.insert("activationId".into(), json!(self.activation_id));
        object.insert("start".into(), json!(self.start));
        if let Some(duration) = self.effective_duration() {
            object.insert("end".into(), json!(self.end));
            object.insert("duration".into(), json!(duration));
        }
        if let Some(cause) = &self.cause {
            object.insert("cause".into(), json!(cause));
        }
        object.insert("response".into(), self.response.to_api_json());
        object.insert("logs".into(), json!(self.logs));
        object.insert("version".into(), json!(self.version));
        object.insert("publish".into(), json!(self.publish));
        object.insert("annotations".into(), json!(self.annotations));
        Value::Object(object)
    }

    /// The list entry of `GET /activations` without `docs` (§8.5); trigger records have no
    /// `end`, `duration` or `statusCode`, and `cause` appears only when set.
    pub fn to_summary_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("namespace".into(), json!(self.namespace));
        object.insert("name".into(), json!(self.name));
        object.insert("version".into(), json!(self.version));
        object.insert("publish".into(), json!(self.publish));
        object.insert("annotations".into(), json!(self.annotations));
        object.insert("activationId".into(), json!(self.activation_id));
        object.insert("start".into(), json!(self.start));
        let duration = self.effective_duration();
        if let Some(duration) = duration {
            object.insert("end".into(), json!(self.end));
            object.insert("duration".into(), json!(duration));
        }
        if let Some(cause) = &self.cause {
            object.insert("cause".into(), json!(cause));
        }
        if duration.is_some() {
            object.insert("statusCode".into(), json!(self.response.status_code));
        }
        Value::Object(object)
    }

    /// The body of `GET .../activations/{id}/result`.
    pub fn result(&self) -> ActivationResult {
        ActivationResult::from(&self.response)
    }

    /// The body of `GET .../activations/{id}/logs`.
    pub fn logs_json(&self) -> Value {
        json!({ "logs": self.logs })
    }
}

/// What happened to one rule when a trigger fired; rendered as one compact JSON log line of the
/// trigger activation (§12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleFiring {
    /// The rule's action was invoked; `activation_id` is the action's activation.
    Invoked {
        rule: String,
        action: String,
        activation_id: ActivationId,
    },
    /// The invocation was refused (`4xx`): status code 1.
    Rejected {
        rule: String,
        action: String,
        error: String,
    },
    /// The invocation failed on the platform's side (`5xx` or transport): status code 3.
    Failed {
        rule: String,
        action: String,
        error: String,
    },
}

impl RuleFiring {
    /// `{"statusCode":0,"success":true,"activationId":..,"rule":..,"action":..}` or
    /// `{"statusCode":1|3,"success":false,"error":..,"rule":..,"action":..}`.
    pub fn to_log_line(&self) -> String {
        let line = match self {
            RuleFiring::Invoked {
                rule,
                action,
                activation_id,
            } => json!({
                "statusCode": ActivationStatus::Success.code(),
                "success": true,
                "activationId": activation_id,
                "rule": rule,
                "action": action,
            }),
            RuleFiring::Rejected {
                rule,
                action,
                error,
            } => json!({
                "statusCode": ActivationStatus::ApplicationError.code(),
                "success": false,
                "error": error,
                "rule": rule,
                "action": action,
            }),
            RuleFiring::Failed {
                rule,
                action,
                error,
            } => json!({
                "statusCode": ActivationStatus::WhiskInternalError.code(),
                "success": false,
                "error": error,
                "rule": rule,
                "action": action,
            }),
        };
        line.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn id(fill: u8) -> ActivationId {
        ActivationId::from_bytes([fill; 16])
    }

    fn record(end: u64) -> WhiskActivation {
        WhiskActivation {
            namespace: EntityPath::parse("guest").unwrap(),
            name: EntityName::new("hello").unwrap(),
            subject: "guest".into(),
            activation_id: id(0xab),
            start: 1_717_000_000_123,
            end,
            duration: None,
            cause: None,
            response: ActivationResponse::success(json!({"payload": "Hello"}), Some(19)),
            logs: vec![],
            version: SemVer::default(),
            publish: false,
            annotations: Annotations::new(),
        }
    }

    #[test]
    fn statuses_have_codes_and_strings() {
        for (code, text) in [
            (0, "success"),
            (1, "application error"),
            (2, "action developer error"),
            (3, "whisk internal error"),
        ] {
            let status = ActivationStatus::from_code(code).unwrap();
            assert_eq!(status.code(), code);
            assert_eq!(status.as_str(), text);
        }
        assert!(ActivationStatus::from_code(4).is_none());
    }

    #[test]
    fn response_forms() {
        let error = ActivationResponse::developer_error(json!("boom"));
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"statusCode": 2, "result": {"error": "boom"}})
        );
        assert_eq!(
            error.to_api_json(),
            json!({"status": "action developer error", "success": false, "result": {"error": "boom"}})
        );
        let stored: ActivationResponse = serde_json::from_str(r#"{"statusCode":0}"#).unwrap();
        assert_eq!(
            stored.to_api_json(),
            json!({"status": "success", "success": true})
        );
        assert!(serde_json::from_str::<ActivationResponse>(r#"{"statusCode":9}"#).is_err());
    }

    #[test]
    fn duration_defaults_to_end_minus_start_and_vanishes_without_end() {
        let finished = record(1_717_000_000_456);
        assert_eq!(finished.effective_duration(), Some(333));
        let api = finished.to_api_json();
        assert_eq!(api["duration"], json!(333));
        assert_eq!(api["end"], json!(1_717_000_000_456_u64));

        let sequence = WhiskActivation {
            duration: Some(40),
            ..record(1_717_000_000_456)
        };
        assert_eq!(sequence.to_api_json()["duration"], json!(40));

        let trigger = record(0);
        let api = trigger.to_api_json();
        assert!(api.get("end").is_none());
        assert!(api.get("duration").is_none());
        let summary = trigger.to_summary_json();
        assert!(summary.get("end").is_none());
        assert!(summary.get("statusCode").is_none());
        assert_eq!(serde_json::to_value(&trigger).unwrap()["end"], json!(0));
    }

    #[test]
    fn cause_appears_only_when_set() {
        let plain = record(1_717_000_000_456);
        assert!(plain.to_api_json().get("cause").is_none());
        assert!(plain.to_summary_json().get("cause").is_none());
        let component = WhiskActivation {
            cause: Some(id(0x01)),
            ..plain
        };
        assert_eq!(
            component.to_summary_json()["cause"],
            json!("01010101010101010101010101010101")
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let finished = WhiskActivation {
            cause: Some(id(2)),
            duration: Some(7),
            logs: vec!["line".into()],
            ..record(1_717_000_000_456)
        };
        let text = serde_json::to_string(&finished).unwrap();
        assert_eq!(
            serde_json::from_str::<WhiskActivation>(&text).unwrap(),
            finished
        );
        assert_eq!(finished.doc_id(), format!("guest/{}", id(0xab)));
    }

    #[test]
    fn rule_firing_log_lines_are_compact_json() {
        let invoked = RuleFiring::Invoked {
            rule: "guest/r1".into(),
            action: "guest/hello".into(),
            activation_id: id(0x0f),
        };
        assert_eq!(
            invoked.to_log_line(),
            r#"{"statusCode":0,"success":true,"activationId":"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f","rule":"guest/r1","action":"guest/hello"}"#
        );
        let failed = RuleFiring::Failed {
            rule: "guest/r1".into(),
            action: "guest/hello".into(),
            error: "down".into(),
        };
        assert_eq!(
            failed.to_log_line(),
            r#"{"statusCode":3,"success":false,"error":"down","rule":"guest/r1","action":"guest/hello"}"#
        );
        let rejected = RuleFiring::Rejected {
            rule: "r".into(),
            action: "a".into(),
            error: "no".into(),
        };
        assert!(
            rejected
                .to_log_line()
                .starts_with(r#"{"statusCode":1,"success":false"#)
        );
    }
}
