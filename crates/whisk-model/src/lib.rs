//! Wire formats and entity types shared by every whisk-rs component. No I/O lives here.

pub mod entity_type;
pub mod error;
pub mod identity;
pub mod names;

pub use entity_type::EntityType;
pub use error::{ErrorBody, ErrorClass, ModelError, messages};
pub use identity::{AuthKey, AuthKeyError, Identity, NamespaceKey, NamespaceLimits, Subject};
pub use names::{ActivationId, EntityName, EntityPath, FullyQualifiedEntityName, NameError};
