//! Messages exchanged on the bus between controllers and invokers, and the topic names they use.
//!
//! They are plain serde types so that every bus adapter (in-process, NATS JetStream) carries the
//! same bytes; the bus itself knows nothing of what they mean.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::activation::WhiskActivation;
use crate::identity::Identity;
use crate::names::{ActivationId, EntityPath, FullyQualifiedEntityName};

/// Queue topic an invoker consumes its work from.
pub fn invoker_topic(invoker: u32) -> String {
    format!("invoker{invoker}")
}

/// Queue topic a controller consumes the completions of the activations it published from.
pub fn completion_topic(controller: u32) -> String {
    format!("completed{controller}")
}

/// Broadcast topic of invoker health beats, read by every controller.
pub const HEALTH_TOPIC: &str = "health";

/// One activation for an invoker to run (the controller → invoker half of the path of one
/// activation). The action itself is not carried: the invoker loads it from the store by its
/// name and revision (and caches it per revision), so large code never crosses the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationMessage {
    /// The request's transaction id, for logs on both sides.
    pub transaction_id: String,
    pub activation_id: ActivationId,
    /// The action's own address (`ns[/pkg]/name` of the stored document).
    pub action: FullyQualifiedEntityName,
    /// The stored revision the controller resolved; any update means new containers.
    pub revision: String,
    /// The identity the activation runs as; its namespace owns the record and the containers.
    pub user: Identity,
    /// The caller's `uuid:key`, given to the action as `__OW_API_KEY` unless the action's
    /// `provide-api-key` annotation says otherwise (decided by the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The merged run parameters (package < binding < action < request), without init ones.
    #[serde(default)]
    pub content: serde_json::Map<String, Value>,
    /// Parameters the action marked `init`: passed to `/init` as environment, not to `/run`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub init_args: serde_json::Map<String, Value>,
    /// Whether a controller is waiting for the record (the completion then carries it).
    pub blocking: bool,
    /// Where the completion goes.
    pub completion_topic: String,
    /// The enclosing sequence or composition activation, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ActivationId>,
    /// `causedBy` annotation of the record (e.g. `sequence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
    /// The binding the action was invoked through (`binding` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<EntityPath>,
    /// The name the caller used (`path` annotation), when it differs from `action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_as: Option<FullyQualifiedEntityName>,
    /// Epoch milliseconds when the controller accepted the request (`waitTime` counts from here).
    pub accepted_at: u64,
}

/// What an invoker sends back when an activation is over (or could not be run at all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionMessage {
    pub transaction_id: String,
    pub activation_id: ActivationId,
    pub invoker: u32,
    /// The stored record, for blocking activations (a waiting controller answers with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<WhiskActivation>,
    /// True when the invoker itself failed (not the action): the balancer counts these.
    #[serde(default)]
    pub system_error: bool,
}

/// Whether an invoker takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InvokerState {
    Healthy,
    /// Shutting down: finishing what it has, taking nothing new.
    Draining,
}

/// Sent by every invoker once a second on [`HEALTH_TOPIC`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthBeat {
    pub invoker: u32,
    pub state: InvokerState,
    /// Memory for action containers, in MB (the balancer's capacity for this invoker).
    pub user_memory_mb: u64,
    /// Epoch milliseconds when the beat was sent.
    pub sent_at: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert_eq!(invoker_topic(3), "invoker3");
        assert_eq!(completion_topic(0), "completed0");
    }

    #[test]
    fn health_beat_round_trips_in_camel_case() {
        let beat = HealthBeat {
            invoker: 1,
            state: InvokerState::Draining,
            user_memory_mb: 2048,
            sent_at: 5,
        };
        let json = serde_json::to_value(&beat).unwrap();
        assert_eq!(json["userMemoryMb"], 2048);
        assert_eq!(json["state"], "draining");
        assert_eq!(serde_json::from_value::<HealthBeat>(json).unwrap(), beat);
    }

    #[test]
    fn activation_message_round_trips_and_omits_empty_fields() {
        let message = ActivationMessage {
            transaction_id: "tid".into(),
            activation_id: ActivationId::from_bytes([7; 16]),
            action: FullyQualifiedEntityName::parse("/guest/pkg/hello").unwrap(),
            revision: "1-abc".into(),
            user: Identity {
                subject: "guest".into(),
                namespace: "guest".into(),
                uuid: "23bc46b1-71f6-4ed5-8c54-816aa4f8c502".into(),
                limits: Default::default(),
            },
            api_key: None,
            content: serde_json::Map::new(),
            init_args: serde_json::Map::new(),
            blocking: true,
            completion_topic: completion_topic(0),
            cause: None,
            caused_by: None,
            binding: None,
            invoked_as: None,
            accepted_at: 42,
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["action"], "/guest/pkg/hello");
        assert!(json.get("apiKey").is_none());
        assert!(json.get("initArgs").is_none());
        assert_eq!(json["completionTopic"], "completed0");
        assert_eq!(
            serde_json::from_value::<ActivationMessage>(json).unwrap(),
            message
        );
    }
}
