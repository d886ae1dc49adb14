//! Activation records as the invoker writes them (REFERENCE §8.1, §8.3).

use serde_json::json;
use whisk_model::activation::annotation_keys;
use whisk_model::bus::ActivationMessage;
use whisk_model::{
    ActivationResponse, Annotations, EntityName, EntityPath, SemVer, WhiskAction, WhiskActivation,
};
use whisk_store::ActivationEntry;

/// Why a record could not be made or stored.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the invoking namespace '{0}' is not a valid namespace")]
    Namespace(String),
    #[error("activation record does not serialize: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What happened to one activation that ran (or tried to run) in a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Epoch ms when `/init` (cold) or `/run` (warm) started.
    pub start: u64,
    /// Epoch ms when `/run` (or a failed `/init`) ended.
    pub end: u64,
    pub response: ActivationResponse,
    pub logs: Vec<String>,
    /// Milliseconds spent in `/init`, for cold and stem-cell starts.
    pub init_time: Option<u64>,
    /// The action ran into its time limit.
    pub timed_out: bool,
}

/// The `path` annotation and the run's `action_name` name this: the action's own address
/// unless the message says under which name it was invoked.
fn path_of(message: &ActivationMessage) -> String {
    message
        .invoked_as
        .as_ref()
        .unwrap_or(&message.action)
        .doc_id()
}

fn namespace_of(message: &ActivationMessage) -> Result<EntityPath, RecordError> {
    EntityName::namespace(message.user.namespace.clone())
        .map(EntityPath::namespace)
        .map_err(|_| RecordError::Namespace(message.user.namespace.clone()))
}

fn caused_by(message: &ActivationMessage, annotations: &mut Annotations) {
    if let Some(caused_by) = &message.caused_by {
        annotations.insert(annotation_keys::CAUSED_BY, json!(caused_by));
    }
}

/// The full record of an activation of `action`, with every annotation of §8.3.
pub fn execution_record(
    message: &ActivationMessage,
    action: &WhiskAction,
    execution: Execution,
) -> Result<WhiskActivation, RecordError> {
    let mut annotations = Annotations::new();
    annotations.insert(annotation_keys::PATH, json!(path_of(message)));
    annotations.insert(annotation_keys::KIND, json!(action.exec.kind()));
    annotations.insert(
        annotation_keys::LIMITS,
        serde_json::to_value(action.limits)?,
    );
    annotations.insert(annotation_keys::TIMEOUT, json!(execution.timed_out));
    annotations.insert(
        annotation_keys::WAIT_TIME,
        json!(execution.start.saturating_sub(message.accepted_at)),
    );
    if let Some(init_time) = execution.init_time {
        annotations.insert(annotation_keys::INIT_TIME, json!(init_time));
    }
    if let Some(binding) = &message.binding {
        annotations.insert(annotation_keys::BINDING, json!(binding.to_string()));
    }
    caused_by(message, &mut annotations);
    Ok(WhiskActivation {
        namespace: namespace_of(message)?,
        name: action.name.clone(),
        subject: message.user.subject.clone(),
        activation_id: message.activation_id.clone(),
        start: execution.start,
        end: execution.end,
        duration: Some(execution.end.saturating_sub(execution.start)),
        cause: message.cause.clone(),
        response: execution.response,
        logs: execution.logs,
        version: action.version,
        publish: false,
        annotations,
    })
}

/// The record of an activation that never reached a container (its action is gone, could not
/// be read, ...): start and end are now, the duration 0, annotations only `path` and `causedBy`.
pub fn fallback_record(
    message: &ActivationMessage,
    response: ActivationResponse,
    now_ms: u64,
) -> Result<WhiskActivation, RecordError> {
    let mut annotations = Annotations::new();
    annotations.insert(annotation_keys::PATH, json!(path_of(message)));
    caused_by(message, &mut annotations);
    Ok(WhiskActivation {
        namespace: namespace_of(message)?,
        name: message.action.name.clone(),
        subject: message.user.subject.clone(),
        activation_id: message.activation_id.clone(),
        start: now_ms,
        end: now_ms,
        duration: Some(0),
        cause: message.cause.clone(),
        response,
        logs: Vec::new(),
        version: SemVer::default(),
        publish: false,
        annotations,
    })
}

/// The store entry for a record, with the columns the activation API filters on.
///
/// The same rule as the controller's `activation_entry` (which this crate cannot depend on):
/// `path_name` is `binding/name` when invoked through a binding, `pkg/name` when the action
/// lives in a package, else nothing.
pub fn activation_entry(record: &WhiskActivation) -> Result<ActivationEntry, RecordError> {
    let second_segment = |key: &str, segments: usize| {
        let path = EntityPath::parse(record.annotations.get_str(key)?).ok()?;
        (path.len() == segments).then(|| path.segments()[1].to_string())
    };
    let package = second_segment(annotation_keys::BINDING, 2)
        .or_else(|| second_segment(annotation_keys::PATH, 3));
    Ok(ActivationEntry {
        namespace: record.namespace.to_string(),
        activation_id: record.activation_id.to_string(),
        name: record.name.to_string(),
        path_name: package.map(|package| format!("{package}/{}", record.name)),
        start: record.start,
        document: serde_json::to_value(record)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use serde_json::Value;
    use whisk_model::bus::completion_topic;
    use whisk_model::{ActivationId, ActivationStatus, Exec, FullyQualifiedEntityName, Identity};

    use super::*;

    fn message() -> ActivationMessage {
        ActivationMessage {
            transaction_id: "tid".into(),
            activation_id: ActivationId::from_bytes([7; 16]),
            action: FullyQualifiedEntityName::parse("/owner/pkg/hello").unwrap(),
            revision: "3".into(),
            user: Identity {
                subject: "guest-subject".into(),
                namespace: "guest".into(),
                uuid: "u".into(),
                limits: Default::default(),
            },
            api_key: None,
            content: Default::default(),
            init_args: Default::default(),
            blocking: true,
            completion_topic: completion_topic(0),
            cause: None,
            caused_by: None,
            binding: None,
            invoked_as: None,
            accepted_at: 1_000,
        }
    }

    fn action() -> WhiskAction {
        WhiskAction {
            namespace: EntityPath::parse("owner/pkg").unwrap(),
            name: EntityName::new("hello").unwrap(),
            exec: Exec::Code {
                kind: "nodejs:20".into(),
                code: "x".into(),
                main: None,
                binary: false,
            },
            parameters: Default::default(),
            limits: Default::default(),
            version: SemVer::new(0, 0, 3),
            publish: false,
            annotations: Default::default(),
            updated: 0,
        }
    }

    fn execution() -> Execution {
        Execution {
            start: 1_045,
            end: 1_100,
            response: ActivationResponse::success(json!({"ok": true}), Some(11)),
            logs: vec!["line".into()],
            init_time: Some(30),
            timed_out: false,
        }
    }

    #[test]
    fn an_execution_record_has_every_field_and_annotation() {
        let record = execution_record(&message(), &action(), execution()).unwrap();
        let api = record.to_api_json();
        assert_eq!(api["namespace"], "guest");
        assert_eq!(api["name"], "hello");
        assert_eq!(api["subject"], "guest-subject");
        assert_eq!(
            api["activationId"],
            ActivationId::from_bytes([7; 16]).to_string()
        );
        assert_eq!(api["start"], 1_045);
        assert_eq!(api["end"], 1_100);
        assert_eq!(api["duration"], 55);
        assert_eq!(api["version"], "0.0.3");
        assert_eq!(api["publish"], false);
        assert_eq!(api["logs"], json!(["line"]));
        assert_eq!(
            api["response"],
            json!({"status": "success", "success": true, "result": {"ok": true}, "size": 11})
        );
        assert_eq!(
            api["annotations"],
            json!([
                {"key": "path", "value": "owner/pkg/hello"},
                {"key": "kind", "value": "nodejs:20"},
                {"key": "limits", "value": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}},
                {"key": "timeout", "value": false},
                {"key": "waitTime", "value": 45},
                {"key": "initTime", "value": 30},
            ])
        );
        assert!(api.get("cause").is_none());
    }

    #[test]
    fn warm_runs_have_no_init_time_and_sequence_components_say_so() {
        let mut message = message();
        message.cause = Some(ActivationId::from_bytes([9; 16]));
        message.caused_by = Some("sequence".into());
        message.binding = Some(EntityPath::parse("guest/mybinding").unwrap());
        let record = execution_record(
            &message,
            &action(),
            Execution {
                init_time: None,
                ..execution()
            },
        )
        .unwrap();
        assert!(record.annotations.get("initTime").is_none());
        assert_eq!(record.annotations.get_str("causedBy"), Some("sequence"));
        assert_eq!(
            record.annotations.get_str("binding"),
            Some("guest/mybinding")
        );
        assert_eq!(record.cause, Some(ActivationId::from_bytes([9; 16])));
        let entry = activation_entry(&record).unwrap();
        assert_eq!(entry.path_name.as_deref(), Some("mybinding/hello"));
    }

    #[test]
    fn a_fallback_record_has_path_and_zero_duration() {
        let response = ActivationResponse::application_error(json!("gone"));
        let record = fallback_record(&message(), response, 5_000).unwrap();
        assert_eq!(record.start, 5_000);
        assert_eq!(record.end, 5_000);
        assert_eq!(record.effective_duration(), Some(0));
        assert_eq!(record.response.status(), ActivationStatus::ApplicationError);
        assert_eq!(
            serde_json::to_value(&record.annotations).unwrap(),
            json!([{"key": "path", "value": "owner/pkg/hello"}])
        );
    }

    #[test]
    fn entries_carry_the_columns_lists_filter_on() {
        let record = execution_record(&message(), &action(), execution()).unwrap();
        let entry = activation_entry(&record).unwrap();
        assert_eq!(entry.namespace, "guest");
        assert_eq!(entry.name, "hello");
        assert_eq!(entry.path_name.as_deref(), Some("pkg/hello"));
        assert_eq!(entry.start, 1_045);
        // The stored form keeps statusCode, which is what the read API decodes.
        assert_eq!(entry.document["response"]["statusCode"], Value::from(0));
        let decoded: WhiskActivation = serde_json::from_value(entry.document).unwrap();
        assert_eq!(decoded, record);
    }

    #[test]
    fn a_bad_invoking_namespace_is_an_error() {
        let mut message = message();
        message.user.namespace = "not/a/namespace/at/all".into();
        assert!(matches!(
            fallback_record(&message, ActivationResponse::whisk_error(json!("x")), 0),
            Err(RecordError::Namespace(_))
        ));
    }
}
