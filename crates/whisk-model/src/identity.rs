//! Credentials, subjects and the identity that authentication yields.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The exact length OpenWhisk requires of the secret half of a credential;
/// anything else is malformed and therefore never authenticates.
pub const AUTH_KEY_SECRET_LENGTH: usize = 64;

/// Why a `uuid:key` credential string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthKeyError {
    #[error("credential must have the form 'uuid:key'")]
    MissingSeparator,
    #[error("credential uuid must not be empty")]
    EmptyUuid,
    #[error("credential key must be exactly {AUTH_KEY_SECRET_LENGTH} characters, found {0}")]
    WrongKeyLength(usize),
}

/// A namespace credential: the uuid is the Basic-auth user name, the key the password.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthKey {
    pub uuid: String,
    pub key: String,
}

impl AuthKey {
    /// Builds a credential from its parts, applying the same checks as parsing.
    pub fn new(uuid: impl Into<String>, key: impl Into<String>) -> Result<AuthKey, AuthKeyError> {
        let uuid = uuid.into();
        let key = key.into();
        if uuid.is_empty() {
            return Err(AuthKeyError::EmptyUuid);
        }
        let key_length = key.chars().count();
        if key_length != AUTH_KEY_SECRET_LENGTH {
            return Err(AuthKeyError::WrongKeyLength(key_length));
        }
        Ok(AuthKey { uuid, key })
    }

    /// Parses `uuid:key`; the uuid itself is not format-checked (OpenWhisk does not either).
    pub fn parse(credential: &str) -> Result<AuthKey, AuthKeyError> {
        let (uuid, key) = credential
            .split_once(':')
            .ok_or(AuthKeyError::MissingSeparator)?;
        AuthKey::new(uuid, key)
    }
}

impl FromStr for AuthKey {
    type Err = AuthKeyError;

    fn from_str(credential: &str) -> Result<AuthKey, AuthKeyError> {
        AuthKey::parse(credential)
    }
}

impl fmt::Display for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uuid, self.key)
    }
}

/// Hand-written so the secret never ends up in logs through `{:?}`.
impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKey")
            .field("uuid", &self.uuid)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// One namespace owned by a subject, identified by name and by the uuid of its credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NamespaceKey {
    /// The namespace name, e.g. `guest`.
    pub name: String,
    pub uuid: String,
}

/// A user of the platform (what `wskadmin user` manages); it may own several namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub subject: String,
    pub blocked: bool,
    pub namespaces: Vec<NamespaceKey>,
}

/// Per-namespace overrides of the system limits; `None` means "use the system default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocations_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_invocations: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fires_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_kinds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_activations: Option<bool>,
    /// Megabytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_action_memory: Option<u64>,
    /// Megabytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_action_memory: Option<u64>,
    /// Megabytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_action_logs: Option<u64>,
    /// Megabytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_action_logs: Option<u64>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_action_timeout: Option<u64>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_action_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_action_concurrency: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_action_concurrency: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_action_instances: Option<u64>,
    /// A size string as OpenWhisk renders it, e.g. `"1048576 B"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_size: Option<String>,
    /// A size string as OpenWhisk renders it, e.g. `"1048576 B"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation_size: Option<String>,
}

impl NamespaceLimits {
    /// True when no override is set, i.e. the namespace runs on system defaults only.
    pub fn is_empty(&self) -> bool {
        *self == NamespaceLimits::default()
    }
}

/// Who is calling: what authentication yields for one namespace credential.
///
/// It deliberately does not carry the key, so an identity can be logged,
/// cached and passed around without spreading the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub subject: String,
    pub namespace: String,
    pub uuid: String,
    pub limits: NamespaceLimits,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    const GUEST: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

    #[test]
    fn parses_and_displays_uuid_colon_key() {
        let auth: AuthKey = GUEST.parse().unwrap();
        assert_eq!(AuthKey::parse(GUEST).unwrap(), auth);
        assert_eq!(auth.uuid, "23bc46b1-71f6-4ed5-8c54-816aa4f8c502");
        assert_eq!(auth.key.len(), AUTH_KEY_SECRET_LENGTH);
        assert_eq!(auth.to_string(), GUEST);
    }

    #[test]
    fn rejects_malformed_credentials() {
        assert_eq!(
            "no-separator".parse::<AuthKey>(),
            Err(AuthKeyError::MissingSeparator)
        );
        assert_eq!(
            "uuid:short".parse::<AuthKey>(),
            Err(AuthKeyError::WrongKeyLength(5))
        );
        let long_key = "k".repeat(AUTH_KEY_SECRET_LENGTH + 1);
        assert_eq!(
            format!("uuid:{long_key}").parse::<AuthKey>(),
            Err(AuthKeyError::WrongKeyLength(AUTH_KEY_SECRET_LENGTH + 1))
        );
        let key = "k".repeat(AUTH_KEY_SECRET_LENGTH);
        assert_eq!(
            format!(":{key}").parse::<AuthKey>(),
            Err(AuthKeyError::EmptyUuid)
        );
    }

    #[test]
    fn debug_does_not_reveal_the_key() {
        let auth: AuthKey = GUEST.parse().unwrap();
        let rendered = format!("{auth:?}");
        assert!(rendered.contains(&auth.uuid));
        assert!(!rendered.contains(&auth.key));
    }

    #[test]
    fn limits_use_camel_case_and_skip_absent_fields() {
        let limits = NamespaceLimits {
            invocations_per_minute: Some(10),
            allowed_kinds: Some(vec!["nodejs:20".to_string()]),
            max_payload_size: Some("1048576 B".to_string()),
            ..NamespaceLimits::default()
        };
        let json = serde_json::to_value(&limits).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "invocationsPerMinute": 10,
                "allowedKinds": ["nodejs:20"],
                "maxPayloadSize": "1048576 B"
            })
        );
        let parsed: NamespaceLimits = serde_json::from_value(json).unwrap();
        assert_eq!(parsed, limits);
        assert!(!parsed.is_empty());
        assert_eq!(
            serde_json::to_string(&NamespaceLimits::default()).unwrap(),
            "{}"
        );
        assert!(NamespaceLimits::default().is_empty());
    }
}
