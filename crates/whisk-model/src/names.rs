//! Entity names, paths, fully qualified names and activation ids (REFERENCE §4).
//!
//! Every type here is validated on construction and on deserialization, so code
//! holding one never has to re-check it. All of them serialize as plain strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest name segment OpenWhisk accepts, in characters.
pub const ENTITY_NAME_MAX_LENGTH: usize = 256;

/// Separates the segments of an entity path and of a fully qualified name.
pub const PATH_SEPARATOR: char = '/';

/// The placeholder namespace that stands for "the caller's own namespace".
pub const DEFAULT_NAMESPACE: &str = "_";

/// The package name reserved for "no package" in web action URLs.
pub const RESERVED_PACKAGE_NAME: &str = "default";

/// Number of hex characters in an activation id.
pub const ACTIVATION_ID_LENGTH: usize = 32;

/// Why a name, path or id was rejected. The `Display` strings are OpenWhisk's exact messages
/// so the controller can put them straight into an error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("The namespace contains illegal characters.")]
    NamespaceIllegal,
    #[error("Namespace longer than allowed: {length} > {ENTITY_NAME_MAX_LENGTH}.")]
    NamespaceTooLong { length: usize },
    #[error("The name of the entity contains illegal characters.")]
    EntityNameIllegal,
    /// The misspelling "segement" is OpenWhisk's and clients may match on it.
    #[error("Name segement longer than allowed: {length} > {ENTITY_NAME_MAX_LENGTH}.")]
    EntityNameTooLong { length: usize },
    #[error("Package name '{name}' is reserved.")]
    PackageNameReserved { name: String },
    /// An entity path needs at least one segment.
    #[error("The entity path is empty.")]
    EmptyPath,
    /// OpenWhisk reports this from a failed `require`, hence the prefix; inside a request body
    /// the controller wraps it as `The request content was malformed:\n<this>`.
    #[error(
        "requirement failed: The fully qualified name of the entity must contain at least the namespace and the name of the entity."
    )]
    MissingNamespaceOrName,
    /// A name that §4's resolution rules cannot turn into a fully qualified name
    /// (a single segment with a leading slash, or more than three segments).
    #[error("The name '{name}' cannot be resolved to a fully qualified entity name.")]
    Unresolvable { name: String },
    #[error("Activation id length is {length} but must be {ACTIVATION_ID_LENGTH}.")]
    ActivationIdLength { length: usize },
    #[error("The activation id is not valid.")]
    ActivationIdIllegal,
}

impl NameError {
    /// How the controller reports this error when it comes out of a request *body*: a reserved
    /// package name is a plain bad request, everything else a malformed body. (For a bad URL
    /// segment OpenWhisk answers a plain `400` with the bare message.)
    pub fn class(&self) -> crate::error::ErrorClass {
        match self {
            NameError::PackageNameReserved { .. } => crate::error::ErrorClass::BadRequest,
            _ => crate::error::ErrorClass::MalformedContent,
        }
    }
}

/// Which set of messages a failed name check reports: a namespace segment and an entity name
/// obey the same rule but OpenWhisk words the rejection differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRole {
    Namespace,
    Entity,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The §4 rule `\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\z` with ASCII `\w`, written out by hand
/// because the `regex` crate's `\w` is Unicode-aware and would accept more than OpenWhisk does.
fn check_name(candidate: &str, role: NameRole) -> Result<(), NameError> {
    let length = candidate.chars().count();
    if length > ENTITY_NAME_MAX_LENGTH {
        return Err(match role {
            NameRole::Namespace => NameError::NamespaceTooLong { length },
            NameRole::Entity => NameError::EntityNameTooLong { length },
        });
    }
    let illegal = match role {
        NameRole::Namespace => NameError::NamespaceIllegal,
        NameRole::Entity => NameError::EntityNameIllegal,
    };
    let mut chars = candidate.chars();
    let Some(first) = chars.next() else {
        return Err(illegal);
    };
    if !is_word_char(first) {
        return Err(illegal);
    }
    let Some(last) = chars.next_back() else {
        return Ok(());
    };
    let middle_ok = chars.all(|c| is_word_char(c) || matches!(c, '@' | ' ' | '.' | '&' | '-'));
    let last_ok = is_word_char(last) || matches!(last, '@' | '.' | '&' | '-');
    if middle_ok && last_ok {
        Ok(())
    } else {
        Err(illegal)
    }
}

/// One validated name segment: a namespace, a package or an entity name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityName(String);

impl EntityName {
    /// Validates an entity (or package) name, reporting entity-name messages on failure.
    pub fn new(name: impl Into<String>) -> Result<EntityName, NameError> {
        let name = name.into();
        check_name(&name, NameRole::Entity)?;
        Ok(EntityName(name))
    }

    /// Validates a namespace name, reporting the namespace messages on failure
    /// (what the controller answers for a bad `{ns}` URL segment).
    pub fn namespace(name: impl Into<String>) -> Result<EntityName, NameError> {
        let name = name.into();
        check_name(&name, NameRole::Namespace)?;
        Ok(EntityName(name))
    }

    /// Validates a package name: an entity name that is not the reserved `default`.
    pub fn package(name: impl Into<String>) -> Result<EntityName, NameError> {
        let name = EntityName::new(name)?;
        if name.0 == RESERVED_PACKAGE_NAME {
            return Err(NameError::PackageNameReserved { name: name.0 });
        }
        Ok(name)
    }

    /// The `_` placeholder for the caller's namespace.
    pub fn default_namespace() -> EntityName {
        EntityName(DEFAULT_NAMESPACE.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// True for `_`, which stands for the caller's namespace.
    pub fn is_default_namespace(&self) -> bool {
        self.0 == DEFAULT_NAMESPACE
    }

    /// A one-segment path made of this name.
    pub fn to_path(&self) -> EntityPath {
        EntityPath {
            segments: vec![self.clone()],
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EntityName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<EntityName, NameError> {
        EntityName::new(s)
    }
}

impl AsRef<str> for EntityName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for EntityName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for EntityName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for EntityName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntityName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EntityName, D::Error> {
        let raw = String::deserialize(deserializer)?;
        EntityName::new(raw).map_err(serde::de::Error::custom)
    }
}

/// A namespace optionally followed by a package: `ns` or `ns/pkg` (more segments parse,
/// but OpenWhisk never stores them because packages do not nest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityPath {
    segments: Vec<EntityName>,
}

impl EntityPath {
    /// Parses `a/b/c`, dropping empty segments (`"/a//b"` is `a/b`). The first segment is
    /// checked as a namespace, the others as entity names, so errors carry the right wording.
    pub fn parse(path: &str) -> Result<EntityPath, NameError> {
        let mut segments = Vec::new();
        for raw in path.split(PATH_SEPARATOR).filter(|s| !s.is_empty()) {
            let segment = if segments.is_empty() {
                EntityName::namespace(raw)?
            } else {
                EntityName::new(raw)?
            };
            segments.push(segment);
        }
        if segments.is_empty() {
            return Err(NameError::EmptyPath);
        }
        Ok(EntityPath { segments })
    }

    /// Builds a path from already validated segments; `None` when there are none.
    pub fn from_segments(segments: Vec<EntityName>) -> Option<EntityPath> {
        if segments.is_empty() {
            None
        } else {
            Some(EntityPath { segments })
        }
    }

    /// A one-segment path naming a namespace.
    pub fn namespace(namespace: EntityName) -> EntityPath {
        EntityPath {
            segments: vec![namespace],
        }
    }

    /// The first segment, i.e. the namespace.
    pub fn root(&self) -> &EntityName {
        &self.segments[0]
    }

    /// The last segment (the package for `ns/pkg`, the namespace for `ns`).
    pub fn last(&self) -> &EntityName {
        // A path always has at least one segment (enforced by every constructor).
        &self.segments[self.segments.len() - 1]
    }

    pub fn segments(&self) -> &[EntityName] {
        &self.segments
    }

    /// Number of segments (1 for a namespace, 2 for a package).
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Always false: a path has at least one segment. Present because clippy expects it next to `len`.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// True when the path is just a namespace, i.e. the entity lives in the default package.
    pub fn is_default_package(&self) -> bool {
        self.segments.len() == 1
    }

    /// The package segment of `ns/pkg`, if any.
    pub fn package(&self) -> Option<&EntityName> {
        self.segments.get(1)
    }

    /// True when the namespace is the `_` placeholder.
    pub fn is_default_namespace(&self) -> bool {
        self.root().is_default_namespace()
    }

    /// Replaces a leading `_` with the caller's namespace; any other path is returned unchanged.
    pub fn resolve_namespace(&self, caller_namespace: &EntityName) -> EntityPath {
        if self.is_default_namespace() {
            let mut segments = self.segments.clone();
            segments[0] = caller_namespace.clone();
            EntityPath { segments }
        } else {
            self.clone()
        }
    }

    /// This path with one more segment appended (`ns` + `pkg` = `ns/pkg`).
    pub fn child(&self, name: &EntityName) -> EntityPath {
        let mut segments = self.segments.clone();
        segments.push(name.clone());
        EntityPath { segments }
    }

    /// Splits the last segment off as a name: `ns/pkg/a` becomes (`ns/pkg`, `a`).
    /// Fails with OpenWhisk's "must contain at least the namespace and the name" message
    /// when the path has a single segment.
    pub fn to_fully_qualified_name(&self) -> Result<FullyQualifiedEntityName, NameError> {
        if self.segments.len() < 2 {
            return Err(NameError::MissingNamespaceOrName);
        }
        let mut segments = self.segments.clone();
        let name = segments.pop().ok_or(NameError::MissingNamespaceOrName)?;
        Ok(FullyQualifiedEntityName {
            path: EntityPath { segments },
            name,
        })
    }
}

impl fmt::Display for EntityPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, segment) in self.segments.iter().enumerate() {
            if index > 0 {
                f.write_str("/")?;
            }
            f.write_str(segment.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for EntityPath {
    type Err = NameError;

    fn from_str(s: &str) -> Result<EntityPath, NameError> {
        EntityPath::parse(s)
    }
}

impl From<EntityName> for EntityPath {
    fn from(namespace: EntityName) -> EntityPath {
        EntityPath::namespace(namespace)
    }
}

impl Serialize for EntityPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EntityPath, D::Error> {
        let raw = String::deserialize(deserializer)?;
        EntityPath::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An entity's full address: the path it lives in plus its own name.
///
/// The document id is `ns[/pkg]/name`; the user-facing form has a leading slash.
/// Serde uses the leading-slash string (the form of sequence components); the
/// `{path, name}` object form used by rules is in [`fqn_object`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullyQualifiedEntityName {
    pub path: EntityPath,
    pub name: EntityName,
}

impl FullyQualifiedEntityName {
    pub fn new(path: EntityPath, name: EntityName) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName { path, name }
    }

    /// Parses `/ns/name`, `/ns/pkg/name` or `ns/pkg/name` (anything with ≥ 2 segments).
    pub fn parse(qualified_name: &str) -> Result<FullyQualifiedEntityName, NameError> {
        EntityPath::parse(qualified_name)?.to_fully_qualified_name()
    }

    /// The §4 resolution used for conductor `action` fields and by the CLI:
    /// `name` → `ns/name`, `pkg/name` → `ns/pkg/name`, `/ns/name` and `/ns/pkg/name` and
    /// `ns/pkg/name` as given; a leading-slash single segment or more than three segments
    /// is rejected. A `_` namespace in the result is replaced by `default_namespace`.
    pub fn resolve(
        name: &str,
        default_namespace: &EntityName,
    ) -> Result<FullyQualifiedEntityName, NameError> {
        let path = EntityPath::parse(name)?;
        let segments = path.len();
        let leading_slash = name.starts_with(PATH_SEPARATOR);
        if segments > 3 || (leading_slash && segments == 1) {
            return Err(NameError::Unresolvable {
                name: name.to_string(),
            });
        }
        let full_path = if leading_slash || segments == 3 {
            path
        } else {
            let mut segments = vec![default_namespace.clone()];
            segments.extend(path.segments);
            EntityPath { segments }
        };
        full_path
            .resolve_namespace(default_namespace)
            .to_fully_qualified_name()
    }

    /// The namespace (root of the path).
    pub fn namespace(&self) -> &EntityName {
        self.path.root()
    }

    /// The package the entity lives in, if any.
    pub fn package(&self) -> Option<&EntityName> {
        self.path.package()
    }

    /// `ns[/pkg]/name` — the storage key of the entity.
    pub fn doc_id(&self) -> String {
        format!("{}/{}", self.path, self.name)
    }

    /// The path including the name (`ns/pkg/name` as a path).
    pub fn full_path(&self) -> EntityPath {
        self.path.child(&self.name)
    }

    /// Replaces a leading `_` namespace with the caller's.
    pub fn resolve_namespace(&self, caller_namespace: &EntityName) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName {
            path: self.path.resolve_namespace(caller_namespace),
            name: self.name.clone(),
        }
    }

    /// Size counted against limits: the bytes of the document id (OpenWhisk's rule).
    pub fn size_bytes(&self) -> usize {
        self.doc_id().len()
    }
}

impl fmt::Display for FullyQualifiedEntityName {
    /// The user-facing `/ns[/pkg]/name` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.path, self.name)
    }
}

impl FromStr for FullyQualifiedEntityName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<FullyQualifiedEntityName, NameError> {
        FullyQualifiedEntityName::parse(s)
    }
}

impl Serialize for FullyQualifiedEntityName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FullyQualifiedEntityName {
    fn deserialize<D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<FullyQualifiedEntityName, D::Error> {
        let raw = String::deserialize(deserializer)?;
        FullyQualifiedEntityName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for the `{"path": "ns[/pkg]", "name": "x"}` object form that rules use for
/// their trigger and action (and triggers for the actions in their `rules` map).
///
/// Deserialization also accepts the `"/ns/name"` string form, as rule PUT bodies may use either.
pub mod fqn_object {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{EntityName, EntityPath, FullyQualifiedEntityName};

    #[derive(Serialize)]
    struct PathAndNameRef<'a> {
        path: &'a EntityPath,
        name: &'a EntityName,
    }

    #[derive(Deserialize)]
    struct PathAndName {
        path: EntityPath,
        name: EntityName,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum EitherForm {
        Object(PathAndName),
        Text(String),
    }

    pub fn serialize<S: Serializer>(
        fqn: &FullyQualifiedEntityName,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        PathAndNameRef {
            path: &fqn.path,
            name: &fqn.name,
        }
        .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<FullyQualifiedEntityName, D::Error> {
        match EitherForm::deserialize(deserializer)? {
            EitherForm::Object(PathAndName { path, name }) => {
                Ok(FullyQualifiedEntityName { path, name })
            }
            EitherForm::Text(text) => {
                FullyQualifiedEntityName::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    }

    /// The same helpers for `Option<FullyQualifiedEntityName>` (PUT bodies where the field may be absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::super::FullyQualifiedEntityName;

        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] FullyQualifiedEntityName);

        pub fn serialize<S: Serializer>(
            fqn: &Option<FullyQualifiedEntityName>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match fqn {
                Some(fqn) => super::serialize(fqn, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<FullyQualifiedEntityName>, D::Error> {
            Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(fqn)| fqn))
        }
    }
}

/// An activation id: 32 lowercase hex characters (a v4 UUID without dashes in OpenWhisk).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivationId(String);

impl ActivationId {
    /// Builds an id from 16 random bytes; the caller owns the randomness so tests stay deterministic.
    pub fn from_bytes(bytes: [u8; 16]) -> ActivationId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = String::with_capacity(ACTIVATION_ID_LENGTH);
        for byte in bytes {
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        ActivationId(id)
    }

    /// Parses an id from a URL or body, with OpenWhisk's length and character messages.
    pub fn parse(id: &str) -> Result<ActivationId, NameError> {
        let length = id.chars().count();
        if length != ACTIVATION_ID_LENGTH {
            return Err(NameError::ActivationIdLength { length });
        }
        if !id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(NameError::ActivationIdIllegal);
        }
        Ok(ActivationId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActivationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ActivationId {
    type Err = NameError;

    fn from_str(s: &str) -> Result<ActivationId, NameError> {
        ActivationId::parse(s)
    }
}

impl Serialize for ActivationId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ActivationId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ActivationId, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ActivationId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn name(s: &str) -> EntityName {
        EntityName::new(s).unwrap()
    }

    #[test]
    fn accepts_names_allowed_by_the_rule() {
        for ok in [
            "a",
            "_",
            "hello",
            "Hello_World-1",
            "a b",
            "a@b.c&d-e",
            "x.",
            "x-",
            "x@",
            "x&",
            "9lives",
        ] {
            assert!(EntityName::new(ok).is_ok(), "{ok:?} should be valid");
        }
    }

    #[test]
    fn rejects_illegal_characters_and_shapes() {
        for bad in [
            "", " a", "a ", "-a", ".a", "@a", "&a", "a/b", "a!b", "a:b", "é", "aé", "a\tb", "a\n",
        ] {
            assert_eq!(
                EntityName::new(bad),
                Err(NameError::EntityNameIllegal),
                "{bad:?} should be illegal"
            );
            assert_eq!(
                EntityName::namespace(bad),
                Err(NameError::NamespaceIllegal),
                "{bad:?} should be an illegal namespace"
            );
        }
    }

    #[test]
    fn enforces_the_256_character_limit_with_exact_messages() {
        let longest = "a".repeat(256);
        assert!(EntityName::new(longest.as_str()).is_ok());
        let too_long = "a".repeat(257);
        let entity_error = EntityName::new(too_long.as_str()).unwrap_err();
        assert_eq!(
            entity_error.to_string(),
            "Name segement longer than allowed: 257 > 256."
        );
        let namespace_error = EntityName::namespace(too_long.as_str()).unwrap_err();
        assert_eq!(
            namespace_error.to_string(),
            "Namespace longer than allowed: 257 > 256."
        );
    }

    #[test]
    fn illegal_messages_are_openwhisks() {
        assert_eq!(
            NameError::EntityNameIllegal.to_string(),
            "The name of the entity contains illegal characters."
        );
        assert_eq!(
            NameError::NamespaceIllegal.to_string(),
            "The namespace contains illegal characters."
        );
    }

    #[test]
    fn default_is_a_reserved_package_name_only() {
        assert!(EntityName::new("default").is_ok());
        let error = EntityName::package("default").unwrap_err();
        assert_eq!(error.to_string(), "Package name 'default' is reserved.");
        assert!(EntityName::package("utils").is_ok());
    }

    #[test]
    fn paths_drop_empty_segments_and_resolve_the_default_namespace() {
        let path = EntityPath::parse("/a//b/").unwrap();
        assert_eq!(path.to_string(), "a/b");
        assert_eq!(path.root(), "a");
        assert_eq!(path.package().unwrap(), "b");
        assert!(!path.is_default_package());

        let placeholder = EntityPath::parse("_/pkg").unwrap();
        assert!(placeholder.is_default_namespace());
        let resolved = placeholder.resolve_namespace(&name("guest"));
        assert_eq!(resolved.to_string(), "guest/pkg");
        let untouched = EntityPath::parse("other").unwrap();
        assert_eq!(untouched.resolve_namespace(&name("guest")), untouched);

        assert_eq!(EntityPath::parse("//"), Err(NameError::EmptyPath));
        assert_eq!(
            EntityPath::parse("bad!/pkg"),
            Err(NameError::NamespaceIllegal)
        );
        assert_eq!(
            EntityPath::parse("ns/bad!"),
            Err(NameError::EntityNameIllegal)
        );
    }

    #[test]
    fn fully_qualified_names_parse_display_and_give_doc_ids() {
        for (input, display, doc_id) in [
            ("/ns/name", "/ns/name", "ns/name"),
            ("/ns/pkg/name", "/ns/pkg/name", "ns/pkg/name"),
            ("ns/pkg/name", "/ns/pkg/name", "ns/pkg/name"),
        ] {
            let fqn = FullyQualifiedEntityName::parse(input).unwrap();
            assert_eq!(fqn.to_string(), display);
            assert_eq!(fqn.doc_id(), doc_id);
        }
        let fqn = FullyQualifiedEntityName::parse("/ns/pkg/name").unwrap();
        assert_eq!(fqn.namespace(), "ns");
        assert_eq!(fqn.package().unwrap(), "pkg");
        assert_eq!(fqn.name, "name");
        assert_eq!(fqn.full_path().len(), 3);
    }

    #[test]
    fn a_single_segment_is_not_a_fully_qualified_name() {
        let error = FullyQualifiedEntityName::parse("/justone").unwrap_err();
        assert_eq!(
            error.to_string(),
            "requirement failed: The fully qualified name of the entity must contain at least the namespace and the name of the entity."
        );
    }

    #[test]
    fn resolves_names_like_conductor_actions() {
        let guest = name("guest");
        let resolve = |s: &str| FullyQualifiedEntityName::resolve(s, &guest).map(|f| f.doc_id());
        assert_eq!(resolve("hello").unwrap(), "guest/hello");
        assert_eq!(resolve("pkg/hello").unwrap(), "guest/pkg/hello");
        assert_eq!(resolve("/other/hello").unwrap(), "other/hello");
        assert_eq!(resolve("/other/pkg/hello").unwrap(), "other/pkg/hello");
        assert_eq!(resolve("other/pkg/hello").unwrap(), "other/pkg/hello");
        assert_eq!(resolve("/_/hello").unwrap(), "guest/hello");
        assert!(matches!(
            resolve("/hello"),
            Err(NameError::Unresolvable { .. })
        ));
        assert!(matches!(
            resolve("/a/b/c/d"),
            Err(NameError::Unresolvable { .. })
        ));
        assert!(matches!(
            resolve("a/b/c/d"),
            Err(NameError::Unresolvable { .. })
        ));
        assert_eq!(resolve("bad!"), Err(NameError::NamespaceIllegal));
    }

    #[test]
    fn activation_ids_are_32_lowercase_hex() {
        let id = ActivationId::from_bytes([
            0xc7, 0xbb, 0x13, 0x39, 0xcb, 0x4f, 0x40, 0xe3, 0xa6, 0xcc, 0xea, 0xd6, 0xc9, 0x9f,
            0x80, 0x4e,
        ]);
        assert_eq!(id.as_str(), "c7bb1339cb4f40e3a6ccead6c99f804e");
        assert_eq!(ActivationId::parse(id.as_str()).unwrap(), id);

        let short = ActivationId::parse("abc").unwrap_err();
        assert_eq!(
            short.to_string(),
            "Activation id length is 3 but must be 32."
        );
        let upper = ActivationId::parse("C7BB1339CB4F40E3A6CCEAD6C99F804E").unwrap_err();
        assert_eq!(upper.to_string(), "The activation id is not valid.");
        let not_hex = ActivationId::parse("g7bb1339cb4f40e3a6ccead6c99f804e").unwrap_err();
        assert_eq!(not_hex, NameError::ActivationIdIllegal);
    }

    #[test]
    fn serde_uses_plain_strings_and_validates() {
        let fqn = FullyQualifiedEntityName::parse("/ns/pkg/a").unwrap();
        assert_eq!(serde_json::to_string(&fqn).unwrap(), "\"/ns/pkg/a\"");
        assert_eq!(
            serde_json::to_string(&EntityPath::parse("ns/pkg").unwrap()).unwrap(),
            "\"ns/pkg\""
        );
        assert_eq!(serde_json::to_string(&name("x")).unwrap(), "\"x\"");
        assert!(serde_json::from_str::<EntityName>("\"a b \"").is_err());
        assert!(serde_json::from_str::<FullyQualifiedEntityName>("\"/a\"").is_err());
        assert!(serde_json::from_str::<ActivationId>("\"zz\"").is_err());
    }

    #[test]
    fn object_form_serializes_path_and_name_and_reads_both_forms() {
        #[derive(Serialize, Deserialize)]
        struct Holder {
            #[serde(with = "fqn_object")]
            target: FullyQualifiedEntityName,
        }
        let holder = Holder {
            target: FullyQualifiedEntityName::parse("/guest/pkg/hello").unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&holder).unwrap(),
            serde_json::json!({"target": {"path": "guest/pkg", "name": "hello"}})
        );
        let from_text: Holder = serde_json::from_str(r#"{"target":"/_/t"}"#).unwrap();
        assert_eq!(from_text.target.doc_id(), "_/t");
        let from_object: Holder =
            serde_json::from_str(r#"{"target":{"path":"ns","name":"t"}}"#).unwrap();
        assert_eq!(from_object.target.doc_id(), "ns/t");
        assert!(serde_json::from_str::<Holder>(r#"{"target":"t"}"#).is_err());
    }
}
