//! Wire formats and entity types shared by every whisk-rs component. No I/O lives here.

pub mod activation;
pub mod bus;
pub mod entities;
pub mod entity_type;
pub mod error;
pub mod exec;
pub mod identity;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod params;

pub use activation::{
    ActivationResponse, ActivationResult, ActivationStatus, RuleFiring, WhiskActivation,
};
pub use entities::{
    ActionPut, Binding, EntityError, PackagePut, ReducedRule, RulePut, RuleStatus,
    RuleStatusChange, SemVer, TriggerPut, WhiskAction, WhiskPackage, WhiskRule, WhiskTrigger,
};
pub use entity_type::EntityType;
pub use error::{ErrorBody, ErrorClass, ModelError, messages};
pub use exec::{Exec, ExecError, ExecInput};
pub use identity::{AuthKey, AuthKeyError, Identity, NamespaceKey, NamespaceLimits, Subject};
pub use limits::{
    ActionLimits, ActionLimitsPatch, EffectiveLimits, LimitBounds, LimitError, SystemLimits,
};
pub use manifest::{ImageName, ManifestError, ResolvedKind, RuntimeKind, RuntimeManifest};
pub use names::{ActivationId, EntityName, EntityPath, FullyQualifiedEntityName, NameError};
pub use params::{Annotations, Parameter, Parameters};
