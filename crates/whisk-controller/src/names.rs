//! Validation of the name segments of request paths.
//!
//! A bad segment is a 400 with OpenWhisk's bare message (no "malformed" prefix), and the
//! `{ns}` segment `_` stands for the caller's own namespace.

use whisk_model::{EntityName, EntityPath, Identity};

use crate::error::{ApiError, ApiResult};

/// The caller's namespace as a name.
pub fn caller_namespace(caller: &Identity) -> ApiResult<EntityName> {
    // Namespaces are validated when subjects are created; a stored one that no longer
    // validates means the subject record is damaged.
    EntityName::namespace(caller.namespace.as_str()).map_err(|error| {
        tracing::error!(namespace = %caller.namespace, %error, "caller namespace is invalid");
        ApiError::internal()
    })
}

/// The `{ns}` segment of a path: `_` becomes the caller's namespace, anything else must be a
/// valid namespace name.
pub fn resolve_namespace(caller: &Identity, segment: &str) -> ApiResult<EntityName> {
    let namespace = EntityName::namespace(segment)?;
    if namespace.is_default_namespace() {
        caller_namespace(caller)
    } else {
        Ok(namespace)
    }
}

/// An entity (or package) name segment of a path.
pub fn entity_name(segment: &str) -> ApiResult<EntityName> {
    Ok(EntityName::new(segment)?)
}

/// Whether the caller owns (is the root of) the given namespace.
pub fn is_owner(caller: &Identity, namespace: &EntityName) -> bool {
    caller.namespace == namespace.as_str()
}

/// `ns/pkg` as a path.
pub fn package_path(namespace: &EntityName, package: &EntityName) -> EntityPath {
    EntityPath::namespace(namespace.clone()).child(package)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use whisk_model::NamespaceLimits;

    use super::*;

    fn guest() -> Identity {
        Identity {
            subject: "guest".into(),
            namespace: "guest".into(),
            uuid: "u".into(),
            limits: NamespaceLimits::default(),
        }
    }

    #[test]
    fn underscore_is_the_callers_namespace() {
        assert_eq!(resolve_namespace(&guest(), "_").unwrap(), "guest");
        assert_eq!(resolve_namespace(&guest(), "other").unwrap(), "other");
    }

    #[test]
    fn bad_segments_are_400_with_openwhisk_messages() {
        let error = resolve_namespace(&guest(), "bad!").unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        assert_eq!(
            error.message(),
            "The namespace contains illegal characters."
        );
        let error = entity_name(&"a".repeat(257)).unwrap_err();
        assert_eq!(
            error.message(),
            "Name segement longer than allowed: 257 > 256."
        );
        let error = entity_name(" x").unwrap_err();
        assert_eq!(
            error.message(),
            "The name of the entity contains illegal characters."
        );
    }
}
