//! Wire formats and entity types shared by every whisk-rs component. No I/O lives here.

pub mod entity_type;
pub mod identity;

pub use entity_type::EntityType;
pub use identity::{AuthKey, AuthKeyError, Identity, NamespaceKey, NamespaceLimits, Subject};
