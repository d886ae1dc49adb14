//! The four kinds of entity that share one namespace id space.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of an entity stored in a namespace.
///
/// Actions, packages, triggers and rules share one id space per namespace
/// (an action and a trigger cannot both be named `ns/x`), so code that stores
/// or routes entities needs to carry which kind it is dealing with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityType {
    Action,
    Package,
    Trigger,
    Rule,
}

impl EntityType {
    /// Every entity type, in a fixed order, for code that must visit them all.
    pub const ALL: [EntityType; 4] = [
        EntityType::Action,
        EntityType::Package,
        EntityType::Trigger,
        EntityType::Rule,
    ];

    /// The singular name used in stored documents and messages (`action`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Action => "action",
            EntityType::Package => "package",
            EntityType::Trigger => "trigger",
            EntityType::Rule => "rule",
        }
    }

    /// The plural name used as the collection segment of API paths (`actions`, ...).
    pub fn collection(self) -> &'static str {
        match self {
            EntityType::Action => "actions",
            EntityType::Package => "packages",
            EntityType::Trigger => "triggers",
            EntityType::Rule => "rules",
        }
    }

    /// Parses the singular name produced by [`EntityType::as_str`].
    pub fn from_name(name: &str) -> Option<EntityType> {
        EntityType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Parses the plural collection name produced by [`EntityType::collection`].
    pub fn from_collection(collection: &str) -> Option<EntityType> {
        EntityType::ALL
            .into_iter()
            .find(|t| t.collection() == collection)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for entity_type in EntityType::ALL {
            assert_eq!(
                EntityType::from_name(entity_type.as_str()),
                Some(entity_type)
            );
            assert_eq!(
                EntityType::from_collection(entity_type.collection()),
                Some(entity_type)
            );
            assert_eq!(
                entity_type.collection(),
                format!("{}s", entity_type.as_str())
            );
        }
        assert_eq!(EntityType::from_name("activation"), None);
        assert_eq!(EntityType::from_collection("action"), None);
    }

    #[test]
    fn serde_uses_lowercase_singular() {
        assert_eq!(
            serde_json::to_string(&EntityType::Trigger).unwrap(),
            "\"trigger\""
        );
        let parsed: EntityType = serde_json::from_str("\"package\"").unwrap();
        assert_eq!(parsed, EntityType::Package);
        assert!(serde_json::from_str::<EntityType>("\"Package\"").is_err());
    }
}
