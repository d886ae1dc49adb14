//! Actions, packages, triggers and rules: their stored/API documents, their PUT bodies, the
//! pure create/update merge rules of REFERENCE §5.3, §7.3–7.4, §9.1, §12.1–12.2, and their list
//! summaries (§5.4).
//!
//! The `Serialize` form of each entity is the full API document, which is also what the store
//! keeps (the store adds its own bookkeeping fields around it).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::error::{ErrorClass, ModelError, messages};
use crate::exec::{Exec, ExecError, ExecInput};
use crate::limits::{ActionLimits, ActionLimitsPatch, LimitBounds, SystemLimits};
use crate::manifest::RuntimeManifest;
use crate::names::{EntityName, EntityPath, FullyQualifiedEntityName, fqn_object};
use crate::params::{Annotations, Parameters};

/// Annotation keys the platform itself reads or writes.
pub mod annotation_keys {
    /// `false` on newly created actions unless the user set it: the API key is not passed.
    pub const PROVIDE_API_KEY: &str = "provide-api-key";
    /// The action's kind, rewritten on every create and update.
    pub const EXEC: &str = "exec";
    /// On bindings, `{"namespace":..,"name":..}` of the bound package.
    pub const BINDING: &str = "binding";
    /// On triggers: the fully qualified feed action. On actions: marks a feed.
    pub const FEED: &str = "feed";
    /// `true` (boolean) makes every defined parameter immutable at invocation.
    pub const FINAL: &str = "final";
    /// Truthy on web actions.
    pub const WEB_EXPORT: &str = "web-export";
    /// Name of the parameter that lists a sequence's components (legacy, still written).
    pub const SEQUENCE_ACTIONS_PARAMETER: &str = "_actions";
}

/// Rule violations found while building entities. `Display` strings are OpenWhisk's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    #[error("{}", messages::PACKAGE_CANNOT_BECOME_BINDING)]
    PackageCannotBecomeBinding,
    #[error("{}", messages::FEED_NAME_INVALID)]
    FeedNameInvalid,
    #[error("{}", messages::RULE_REQUIRES_TRIGGER_AND_ACTION)]
    RuleNeedsTriggerAndAction,
    #[error("{}", messages::unknown_rule_status(status))]
    UnknownRuleStatus { status: String },
    #[error("bad semantic version '{version}'")]
    InvalidVersion { version: String },
}

impl EntityError {
    pub fn class(&self) -> ErrorClass {
        match self {
            EntityError::PackageCannotBecomeBinding => ErrorClass::Conflict,
            EntityError::FeedNameInvalid | EntityError::RuleNeedsTriggerAndAction => {
                ErrorClass::BadRequest
            }
            // OpenWhisk finds both while parsing the body.
            EntityError::UnknownRuleStatus { .. } | EntityError::InvalidVersion { .. } => {
                ErrorClass::MalformedContent
            }
        }
    }
}

fn check_size(field: &'static str, size: u64, allowed: u64) -> Result<(), ModelError> {
    if size > allowed {
        Err(ModelError::TooLarge {
            field,
            size,
            allowed,
        })
    } else {
        Ok(())
    }
}

fn check_parameter_sizes(
    parameters: Option<&Parameters>,
    annotations: Option<&Annotations>,
    system: &SystemLimits,
) -> Result<(), ModelError> {
    if let Some(parameters) = parameters {
        check_size(
            "parameters",
            parameters.size_bytes(),
            system.max_parameter_size,
        )?;
    }
    if let Some(annotations) = annotations {
        check_size(
            "annotations",
            annotations.size_bytes(),
            system.max_parameter_size,
        )?;
    }
    Ok(())
}

// ---- versions -----------------------------------------------------------------------------------

/// An entity version `major.minor.patch`; new entities start at `0.0.1` and every update
/// without an explicit version bumps the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SemVer {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl SemVer {
    pub fn new(major: u32, minor: u32, patch: u32) -> SemVer {
        SemVer {
            major,
            minor,
            patch,
        }
    }

    /// The next patch version (`0.0.1` → `0.0.2`).
    pub fn bump_patch(self) -> SemVer {
        SemVer {
            patch: self.patch.saturating_add(1),
            ..self
        }
    }

    pub fn parse(text: &str) -> Result<SemVer, EntityError> {
        let invalid = || EntityError::InvalidVersion {
            version: text.to_string(),
        };
        let mut parts = text.trim().split('.').map(|part| part.parse::<u32>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => {
                Ok(SemVer::new(major, minor, patch))
            }
            _ => Err(invalid()),
        }
    }
}

impl Default for SemVer {
    fn default() -> SemVer {
        SemVer::new(0, 0, 1)
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for SemVer {
    type Err = EntityError;

    fn from_str(s: &str) -> Result<SemVer, EntityError> {
        SemVer::parse(s)
    }
}

impl Serialize for SemVer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SemVer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SemVer, D::Error> {
        let raw = String::deserialize(deserializer)?;
        SemVer::parse(&raw).map_err(serde::de::Error::custom)
    }
}

// ---- actions ------------------------------------------------------------------------------------

/// An action as stored and as returned by `GET` (§7.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskAction {
    /// `ns` or `ns/pkg`.
    pub namespace: EntityPath,
    pub name: EntityName,
    pub exec: Exec,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub limits: ActionLimits,
    #[serde(default)]
    pub version: SemVer,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub annotations: Annotations,
    /// Epoch milliseconds of the last write.
    #[serde(default)]
    pub updated: u64,
}

/// The body of `PUT .../actions/{name}`. Unknown fields (including `namespace` and `name`,
/// which come from the URL) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionPut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ActionLimitsPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SemVer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Annotation keys to drop on update, before the new annotations are merged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub del_annotations: Option<Vec<String>>,
}

impl ActionPut {
    /// The checks that need the caller's limits: `413` for an `exec`, `parameters` or
    /// `annotations` over the size limit (in that order), then `400` for limits outside `bounds`.
    pub fn validate(&self, system: &SystemLimits, bounds: &LimitBounds) -> Result<(), ModelError> {
        if let Some(exec) = &self.exec {
            check_size("exec", exec.size_bytes(), system.max_exec_size)?;
        }
        check_parameter_sizes(self.parameters.as_ref(), self.annotations.as_ref(), system)?;
        if let Some(limits) = &self.limits {
            bounds.validate_patch(limits)?;
        }
        Ok(())
    }
}

/// The parameters a sequence is forced to carry: `_actions` listing its components.
fn sequence_parameters(exec: &Exec) -> Parameters {
    let components: Vec<String> = exec.components().iter().map(ToString::to_string).collect();
    Parameters::single(
        annotation_keys::SEQUENCE_ACTIONS_PARAMETER,
        json!(components),
    )
}

/// §7.3: `provide-api-key: false` on create unless the user set it, and `exec: <kind>` always.
fn amend_action_annotations(
    mut annotations: Annotations,
    exec: &Exec,
    create: bool,
) -> Annotations {
    if create && !annotations.contains_key(annotation_keys::PROVIDE_API_KEY) {
        annotations.insert(annotation_keys::PROVIDE_API_KEY, json!(false));
    }
    annotations.insert(annotation_keys::EXEC, json!(exec.kind()));
    annotations
}

fn resolve_exec(
    input: ExecInput,
    manifest: &RuntimeManifest,
    namespace: &EntityPath,
) -> Result<Exec, ExecError> {
    Ok(input.resolve(manifest)?.resolve_namespace(namespace.root()))
}

impl WhiskAction {
    /// Builds a new action from a PUT body with OpenWhisk's default limits.
    /// See [`WhiskAction::create_with_limits`].
    pub fn create(
        namespace: EntityPath,
        name: EntityName,
        put: ActionPut,
        manifest: &RuntimeManifest,
        now_ms: u64,
    ) -> Result<WhiskAction, ModelError> {
        WhiskAction::create_with_limits(
            namespace,
            name,
            put,
            manifest,
            &ActionLimits::default(),
            now_ms,
        )
    }

    /// Builds a new action: `exec` is required (`exec undefined`), limits not in the body come
    /// from `defaults`, a sequence gets the `_actions` parameter instead of user parameters,
    /// `_` in sequence components becomes the action's namespace, and the §7.3 annotations are
    /// added. Size and bound checks are [`ActionPut::validate`]'s job.
    pub fn create_with_limits(
        namespace: EntityPath,
        name: EntityName,
        put: ActionPut,
        manifest: &RuntimeManifest,
        defaults: &ActionLimits,
        now_ms: u64,
    ) -> Result<WhiskAction, ModelError> {
        let input = put.exec.ok_or(ExecError::Undefined)?;
        let exec = resolve_exec(input, manifest, &namespace)?;
        let parameters = if exec.is_sequence() {
            sequence_parameters(&exec)
        } else {
            put.parameters.unwrap_or_default()
        };
        let limits = defaults.with_patch(&put.limits.unwrap_or_default());
        let annotations =
            amend_action_annotations(put.annotations.unwrap_or_default(), &exec, true);
        Ok(WhiskAction {
            namespace,
            name,
            exec,
            parameters,
            limits,
            version: put.version.unwrap_or_default(),
            publish: put.publish.unwrap_or(false),
            annotations,
            updated: now_ms,
        })
    }

    /// Applies an update PUT (§5.3, §7.4): `exec` replaced if given; parameters replaced if
    /// given, except that a sequence always carries `_actions`, a sequence updated without
    /// `exec` keeps its parameters, and a sequence turned into another kind without new
    /// parameters gets none; annotations merged (old minus `delAnnotations`, then the new ones
    /// on top) with `exec` rewritten; limits merged per field; `publish` kept unless given;
    /// version bumped unless given.
    pub fn update(
        &self,
        put: ActionPut,
        manifest: &RuntimeManifest,
        now_ms: u64,
    ) -> Result<WhiskAction, ModelError> {
        let new_exec = put
            .exec
            .map(|input| resolve_exec(input, manifest, &self.namespace))
            .transpose()?;
        let (exec, parameters) = match new_exec {
            Some(exec) if exec.is_sequence() => {
                let parameters = sequence_parameters(&exec);
                (exec, parameters)
            }
            Some(exec) => {
                let parameters = match put.parameters {
                    Some(parameters) => parameters,
                    None if self.exec.is_sequence() => Parameters::new(),
                    None => self.parameters.clone(),
                };
                (exec, parameters)
            }
            None if self.exec.is_sequence() => (self.exec.clone(), self.parameters.clone()),
            None => (
                self.exec.clone(),
                put.parameters.unwrap_or_else(|| self.parameters.clone()),
            ),
        };
        let mut annotations = self.annotations.clone();
        for key in put.del_annotations.iter().flatten() {
            annotations.remove(key);
        }
        if let Some(new_annotations) = &put.annotations {
            annotations = annotations.merge(new_annotations);
        }
        let annotations = amend_action_annotations(annotations, &exec, false);
        Ok(WhiskAction {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            exec,
            parameters,
            limits: self.limits.with_patch(&put.limits.unwrap_or_default()),
            version: put.version.unwrap_or_else(|| self.version.bump_patch()),
            publish: put.publish.unwrap_or(self.publish),
            annotations,
            updated: now_ms,
        })
    }

    pub fn fqn(&self) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName::new(self.namespace.clone(), self.name.clone())
    }

    /// `ns[/pkg]/name`.
    pub fn doc_id(&self) -> String {
        self.fqn().doc_id()
    }

    /// The `GET` document; `include_code = false` is the `?code=false` form.
    pub fn to_api_json(&self, include_code: bool) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "exec": self.exec.to_json(include_code),
            "parameters": self.parameters,
            "limits": self.limits,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "updated": self.updated,
        })
    }

    /// The list entry (§5.4): no code, no parameters, `exec` reduced to `{"binary": bool}`.
    pub fn to_summary_json(&self) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "limits": self.limits,
            "exec": self.exec.to_summary_json(),
            "updated": self.updated,
        })
    }

    /// Whether the invocation should receive the API key. Actions created before the
    /// annotation existed lack it and keep receiving the key.
    pub fn provides_api_key(&self) -> bool {
        self.annotations
            .is_truthy_or(annotation_keys::PROVIDE_API_KEY, true)
    }

    /// `final: true` (a JSON boolean) makes defined parameters immutable (§9.3).
    pub fn is_final(&self) -> bool {
        self.annotations.get_bool(annotation_keys::FINAL) == Some(true)
    }

    pub fn is_web_action(&self) -> bool {
        self.annotations.is_truthy(annotation_keys::WEB_EXPORT)
    }

    /// Actions annotated `feed` (any value) are listed under a package's `feeds`.
    pub fn is_feed(&self) -> bool {
        self.annotations.contains_key(annotation_keys::FEED)
    }
}

// ---- packages -----------------------------------------------------------------------------------

/// The package a binding points to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    pub namespace: EntityName,
    pub name: EntityName,
}

impl Binding {
    pub fn new(namespace: EntityName, name: EntityName) -> Binding {
        Binding { namespace, name }
    }

    /// The bound package's fully qualified name.
    pub fn fqn(&self) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName::new(
            EntityPath::namespace(self.namespace.clone()),
            self.name.clone(),
        )
    }

    /// `ns/pkg` of the bound package.
    pub fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn resolve_namespace(&self, caller_namespace: &EntityName) -> Binding {
        let namespace = if self.namespace.is_default_namespace() {
            caller_namespace.clone()
        } else {
            self.namespace.clone()
        };
        Binding {
            namespace,
            name: self.name.clone(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"namespace": self.namespace, "name": self.name})
    }
}

/// Serde for `binding`: `{}` means "not a binding", `{namespace, name}` a binding.
mod binding_object {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::{Map, Value};

    use super::Binding;

    pub fn serialize<S: Serializer>(
        binding: &Option<Binding>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match binding {
            Some(binding) => binding.serialize(serializer),
            None => Map::<String, Value>::new().serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Binding>, D::Error> {
        let value = Option::<Value>::deserialize(deserializer)?;
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(fields)) if fields.is_empty() => Ok(None),
            Some(other) => Binding::deserialize(other)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A package or a package binding, as stored and returned by `GET` (without its contents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskPackage {
    pub namespace: EntityPath,
    pub name: EntityName,
    #[serde(default, with = "binding_object")]
    pub binding: Option<Binding>,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub version: SemVer,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub annotations: Annotations,
    #[serde(default)]
    pub updated: u64,
}

/// The body of `PUT .../packages/{name}`; `"binding": {}` is the same as no binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PackagePut {
    #[serde(
        default,
        with = "binding_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub binding: Option<Binding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SemVer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl PackagePut {
    /// `413` when `parameters` or `annotations` exceed the size limit.
    pub fn validate(&self, system: &SystemLimits) -> Result<(), ModelError> {
        check_parameter_sizes(self.parameters.as_ref(), self.annotations.as_ref(), system)
    }
}

/// User annotations never carry `binding`; bindings get it set from the real binding.
fn amend_package_annotations(
    mut annotations: Annotations,
    binding: Option<&Binding>,
) -> Annotations {
    annotations.remove(annotation_keys::BINDING);
    if let Some(binding) = binding {
        annotations.insert(annotation_keys::BINDING, binding.to_json());
    }
    annotations
}

/// One entry of a package's `actions` or `feeds` in its `GET` response.
fn package_content_json(action: &WhiskAction) -> Value {
    json!({
        "name": action.name,
        "version": action.version,
        "annotations": action.annotations,
    })
}

impl WhiskPackage {
    /// Builds a new package or binding. The name `default` is reserved; a `_` binding
    /// namespace becomes the package's own namespace (the caller's).
    pub fn create(
        namespace: EntityPath,
        name: EntityName,
        put: PackagePut,
        now_ms: u64,
    ) -> Result<WhiskPackage, ModelError> {
        let name = EntityName::package(name.into_string())?;
        let binding = put.binding.map(|b| b.resolve_namespace(namespace.root()));
        let annotations =
            amend_package_annotations(put.annotations.unwrap_or_default(), binding.as_ref());
        Ok(WhiskPackage {
            namespace,
            name,
            binding,
            parameters: put.parameters.unwrap_or_default(),
            version: put.version.unwrap_or_default(),
            publish: put.publish.unwrap_or(false),
            annotations,
            updated: now_ms,
        })
    }

    /// Applies an update PUT: a package cannot become a binding (`409`), a binding may be
    /// re-pointed; parameters and annotations are replaced wholesale when given.
    pub fn update(&self, put: PackagePut, now_ms: u64) -> Result<WhiskPackage, ModelError> {
        if self.binding.is_none() && put.binding.is_some() {
            return Err(EntityError::PackageCannotBecomeBinding.into());
        }
        let binding = put
            .binding
            .map(|b| b.resolve_namespace(self.namespace.root()))
            .or_else(|| self.binding.clone());
        let annotations = amend_package_annotations(
            put.annotations.unwrap_or_else(|| self.annotations.clone()),
            binding.as_ref(),
        );
        Ok(WhiskPackage {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            binding,
            parameters: put.parameters.unwrap_or_else(|| self.parameters.clone()),
            version: put.version.unwrap_or_else(|| self.version.bump_patch()),
            publish: put.publish.unwrap_or(self.publish),
            annotations,
            updated: now_ms,
        })
    }

    pub fn fqn(&self) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName::new(self.namespace.clone(), self.name.clone())
    }

    /// `ns/name`.
    pub fn doc_id(&self) -> String {
        self.fqn().doc_id()
    }

    /// The path actions of this package live under: `ns/name`.
    pub fn contents_path(&self) -> EntityPath {
        self.namespace.child(&self.name)
    }

    pub fn is_binding(&self) -> bool {
        self.binding.is_some()
    }

    /// The `GET` response of a package: its document plus `actions` and `feeds` built from
    /// `contents` (an action annotated `feed` is a feed).
    pub fn to_api_json(&self, contents: &[WhiskAction]) -> Value {
        self.api_json_with(&self.parameters, contents)
    }

    /// The `GET` response of a binding: its own fields, with `parameters` = the bound package's
    /// parameters overlaid by the binding's, and the bound package's `contents`.
    pub fn binding_api_json(&self, bound: &WhiskPackage, contents: &[WhiskAction]) -> Value {
        let parameters = bound.parameters.merge(&self.parameters);
        self.api_json_with(&parameters, contents)
    }

    fn api_json_with(&self, parameters: &Parameters, contents: &[WhiskAction]) -> Value {
        let (feeds, actions): (Vec<&WhiskAction>, Vec<&WhiskAction>) =
            contents.iter().partition(|a| a.is_feed());
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "binding": self.binding.as_ref().map_or_else(|| json!({}), Binding::to_json),
            "parameters": parameters,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "updated": self.updated,
            "actions": actions.into_iter().map(package_content_json).collect::<Vec<_>>(),
            "feeds": feeds.into_iter().map(package_content_json).collect::<Vec<_>>(),
        })
    }

    /// The list entry (§5.4): `binding` is `false` for packages.
    pub fn to_summary_json(&self) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "updated": self.updated,
            "binding": self.binding.as_ref().map_or(Value::Bool(false), Binding::to_json),
        })
    }
}

// ---- triggers -----------------------------------------------------------------------------------

/// Whether a rule fires its action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    Active,
    Inactive,
}

impl RuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Active => "active",
            RuleStatus::Inactive => "inactive",
        }
    }

    /// Parses the `status` of a `POST /rules/{name}` body, with the §12.2 message for others.
    pub fn parse(status: &str) -> Result<RuleStatus, EntityError> {
        match status {
            "active" => Ok(RuleStatus::Active),
            "inactive" => Ok(RuleStatus::Inactive),
            other => Err(EntityError::UnknownRuleStatus {
                status: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for RuleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RuleStatus {
    type Err = EntityError;

    fn from_str(s: &str) -> Result<RuleStatus, EntityError> {
        RuleStatus::parse(s)
    }
}

/// What a trigger records about each rule attached to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducedRule {
    #[serde(with = "fqn_object")]
    pub action: FullyQualifiedEntityName,
    pub status: RuleStatus,
}

/// Triggers carry an always-empty `limits` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerLimits {}

/// A trigger as stored and returned by `GET` (§12.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskTrigger {
    pub namespace: EntityPath,
    pub name: EntityName,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub limits: TriggerLimits,
    #[serde(default)]
    pub version: SemVer,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub annotations: Annotations,
    /// Rule doc id → rule summary; absent until a rule was attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<BTreeMap<String, ReducedRule>>,
    #[serde(default)]
    pub updated: u64,
}

/// The body of `PUT .../triggers/{name}`; client-supplied `rules` are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerPut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SemVer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl TriggerPut {
    /// `413` for oversized parameters/annotations, then `400 Feed name is not valid` when a
    /// `feed` annotation is not a string naming a valid entity path.
    pub fn validate(&self, system: &SystemLimits) -> Result<(), ModelError> {
        check_parameter_sizes(self.parameters.as_ref(), self.annotations.as_ref(), system)?;
        let feed = self
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation_keys::FEED));
        match feed {
            None => Ok(()),
            Some(Value::String(path)) if EntityPath::parse(path).is_ok() => Ok(()),
            Some(_) => Err(EntityError::FeedNameInvalid.into()),
        }
    }
}

impl WhiskTrigger {
    /// Builds a new trigger (validation is [`TriggerPut::validate`]'s job).
    pub fn create(
        namespace: EntityPath,
        name: EntityName,
        put: TriggerPut,
        now_ms: u64,
    ) -> WhiskTrigger {
        WhiskTrigger {
            namespace,
            name,
            parameters: put.parameters.unwrap_or_default(),
            limits: TriggerLimits::default(),
            version: put.version.unwrap_or_default(),
            publish: put.publish.unwrap_or(false),
            annotations: put.annotations.unwrap_or_default(),
            rules: None,
            updated: now_ms,
        }
    }

    /// Applies an update PUT: parameters and annotations replaced wholesale when given, the
    /// attached rules kept.
    pub fn update(&self, put: TriggerPut, now_ms: u64) -> WhiskTrigger {
        WhiskTrigger {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            parameters: put.parameters.unwrap_or_else(|| self.parameters.clone()),
            limits: self.limits,
            version: put.version.unwrap_or_else(|| self.version.bump_patch()),
            publish: put.publish.unwrap_or(self.publish),
            annotations: put.annotations.unwrap_or_else(|| self.annotations.clone()),
            rules: self.rules.clone(),
            updated: now_ms,
        }
    }

    pub fn fqn(&self) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName::new(self.namespace.clone(), self.name.clone())
    }

    pub fn doc_id(&self) -> String {
        self.fqn().doc_id()
    }

    /// The `GET` document (same as the serialized form).
    pub fn to_api_json(&self) -> Value {
        json!(self)
    }

    /// The list entry (§5.4).
    pub fn to_summary_json(&self) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": self.publish,
            "annotations": self.annotations,
            "updated": self.updated,
        })
    }

    /// Attaches (or replaces) a rule entry.
    pub fn add_rule(
        &mut self,
        rule_doc_id: String,
        action: FullyQualifiedEntityName,
        status: RuleStatus,
    ) {
        self.rules
            .get_or_insert_with(BTreeMap::new)
            .insert(rule_doc_id, ReducedRule { action, status });
    }

    /// Detaches a rule; the (possibly empty) map stays so the document keeps `rules`.
    pub fn remove_rule(&mut self, rule_doc_id: &str) -> Option<ReducedRule> {
        self.rules
            .as_mut()
            .and_then(|rules| rules.remove(rule_doc_id))
    }

    /// Changes a rule's status; false when the rule is not attached to this trigger.
    pub fn set_rule_status(&mut self, rule_doc_id: &str, status: RuleStatus) -> bool {
        match self
            .rules
            .as_mut()
            .and_then(|rules| rules.get_mut(rule_doc_id))
        {
            Some(rule) => {
                rule.status = status;
                true
            }
            None => false,
        }
    }

    /// A rule's status as the rules API reports it: `inactive` when not attached.
    pub fn rule_status(&self, rule_doc_id: &str) -> RuleStatus {
        self.rules
            .as_ref()
            .and_then(|rules| rules.get(rule_doc_id))
            .map_or(RuleStatus::Inactive, |rule| rule.status)
    }

    /// The rules that fire when this trigger does, in doc id order.
    pub fn active_rules(&self) -> impl Iterator<Item = (&String, &ReducedRule)> {
        self.rules
            .iter()
            .flatten()
            .filter(|(_, rule)| rule.status == RuleStatus::Active)
    }
}

// ---- rules --------------------------------------------------------------------------------------

/// A rule as stored and listed (§12.2); the API adds `status` via [`WhiskRule::to_api_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhiskRule {
    pub namespace: EntityPath,
    pub name: EntityName,
    #[serde(with = "fqn_object")]
    pub trigger: FullyQualifiedEntityName,
    #[serde(with = "fqn_object")]
    pub action: FullyQualifiedEntityName,
    #[serde(default)]
    pub version: SemVer,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub annotations: Annotations,
    #[serde(default)]
    pub updated: u64,
}

/// The body of `PUT .../rules/{name}`: `trigger` and `action` as `"/ns/x"` strings or
/// `{path, name}` objects, `_` allowed as namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RulePut {
    #[serde(
        default,
        with = "fqn_object::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub trigger: Option<FullyQualifiedEntityName>,
    #[serde(
        default,
        with = "fqn_object::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub action: Option<FullyQualifiedEntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SemVer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl RulePut {
    /// `413` for oversized annotations.
    pub fn validate(&self, system: &SystemLimits) -> Result<(), ModelError> {
        check_parameter_sizes(None, self.annotations.as_ref(), system)
    }
}

/// The body of `POST /rules/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatusChange {
    pub status: String,
}

impl RuleStatusChange {
    pub fn requested(&self) -> Result<RuleStatus, EntityError> {
        RuleStatus::parse(&self.status)
    }
}

impl WhiskRule {
    /// Builds a new rule; both `trigger` and `action` are required, and `_` in either becomes
    /// the rule's namespace (the caller's). Whether they exist is the controller's check.
    pub fn create(
        namespace: EntityPath,
        name: EntityName,
        put: RulePut,
        now_ms: u64,
    ) -> Result<WhiskRule, ModelError> {
        let (Some(trigger), Some(action)) = (put.trigger, put.action) else {
            return Err(EntityError::RuleNeedsTriggerAndAction.into());
        };
        let caller = namespace.root().clone();
        Ok(WhiskRule {
            namespace,
            name,
            trigger: trigger.resolve_namespace(&caller),
            action: action.resolve_namespace(&caller),
            version: put.version.unwrap_or_default(),
            publish: put.publish.unwrap_or(false),
            annotations: put.annotations.unwrap_or_default(),
            updated: now_ms,
        })
    }

    /// Applies an update PUT: trigger/action replaced when given, annotations replaced wholesale
    /// when given, version bumped unless given.
    pub fn update(&self, put: RulePut, now_ms: u64) -> WhiskRule {
        let caller = self.namespace.root();
        WhiskRule {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            trigger: put
                .trigger
                .map_or_else(|| self.trigger.clone(), |t| t.resolve_namespace(caller)),
            action: put
                .action
                .map_or_else(|| self.action.clone(), |a| a.resolve_namespace(caller)),
            version: put.version.unwrap_or_else(|| self.version.bump_patch()),
            publish: put.publish.unwrap_or(self.publish),
            annotations: put.annotations.unwrap_or_else(|| self.annotations.clone()),
            updated: now_ms,
        }
    }

    pub fn fqn(&self) -> FullyQualifiedEntityName {
        FullyQualifiedEntityName::new(self.namespace.clone(), self.name.clone())
    }

    pub fn doc_id(&self) -> String {
        self.fqn().doc_id()
    }

    /// The `GET`/`PUT`/`DELETE` response: the document with `status` (read from the trigger).
    pub fn to_api_json(&self, status: RuleStatus) -> Value {
        let mut object = Map::new();
        object.insert("namespace".into(), json!(self.namespace));
        object.insert("name".into(), json!(self.name));
        object.insert("status".into(), json!(status));
        object.insert("trigger".into(), fqn_json(&self.trigger));
        object.insert("action".into(), fqn_json(&self.action));
        object.insert("version".into(), json!(self.version));
        object.insert("publish".into(), json!(self.publish));
        object.insert("annotations".into(), json!(self.annotations));
        object.insert("updated".into(), json!(self.updated));
        Value::Object(object)
    }

    /// The list entry: the full document without `status`.
    pub fn to_summary_json(&self) -> Value {
        json!(self)
    }

    /// The entry this rule puts in its trigger's `rules` map.
    pub fn reduced(&self, status: RuleStatus) -> ReducedRule {
        ReducedRule {
            action: self.action.clone(),
            status,
        }
    }
}

fn fqn_json(fqn: &FullyQualifiedEntityName) -> Value {
    json!({"path": fqn.path, "name": fqn.name})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    const NOW: u64 = 1_717_000_000_000;
    const LATER: u64 = 1_717_000_100_000;

    fn manifest() -> RuntimeManifest {
        RuntimeManifest::builtin().unwrap()
    }

    fn path(text: &str) -> EntityPath {
        EntityPath::parse(text).unwrap()
    }

    fn name(text: &str) -> EntityName {
        EntityName::new(text).unwrap()
    }

    fn action_put(body: Value) -> ActionPut {
        serde_json::from_value(body).unwrap()
    }

    fn create_action(body: Value) -> WhiskAction {
        WhiskAction::create(
            path("guest"),
            name("hello"),
            action_put(body),
            &manifest(),
            NOW,
        )
        .unwrap()
    }

    fn annotation_keys_of(annotations: &Annotations) -> Vec<&str> {
        annotations.keys().collect()
    }

    #[test]
    fn semver_parses_bumps_and_defaults() {
        assert_eq!(SemVer::default().to_string(), "0.0.1");
        assert_eq!(
            SemVer::parse("1.2.3").unwrap().bump_patch().to_string(),
            "1.2.4"
        );
        for bad in ["1.2", "1.2.3.4", "a.b.c", "", "1.-2.3"] {
            assert!(SemVer::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_string(&SemVer::new(0, 0, 2)).unwrap(),
            "\"0.0.2\""
        );
        let error = serde_json::from_str::<SemVer>("\"x\"").unwrap_err();
        assert!(error.to_string().contains("bad semantic version 'x'"));
    }

    #[test]
    fn create_action_resolves_kind_and_adds_annotations() {
        let action = create_action(json!({
            "namespace": "ignored", "name": "ignored",
            "exec": {"kind": "nodejs:default", "code": "function main(p){return p}"},
            "parameters": [{"key": "name", "value": "World"}],
            "annotations": [{"key": "web-export", "value": true}, {"key": "exec", "value": "bogus"}]
        }));
        assert_eq!(action.namespace.to_string(), "guest");
        assert_eq!(action.name, "hello");
        assert_eq!(action.exec.kind(), "nodejs:20");
        assert_eq!(action.version.to_string(), "0.0.1");
        assert_eq!(action.limits, ActionLimits::default());
        assert_eq!(action.updated, NOW);
        assert_eq!(
            annotation_keys_of(&action.annotations),
            vec!["web-export", "exec", "provide-api-key"]
        );
        assert_eq!(action.annotations.get("exec"), Some(&json!("nodejs:20")));
        assert_eq!(
            action.annotations.get("provide-api-key"),
            Some(&json!(false))
        );
        assert!(!action.provides_api_key());
        assert!(action.is_web_action());
    }

    #[test]
    fn create_action_keeps_a_user_provide_api_key() {
        let action = create_action(json!({
            "exec": {"kind": "python:3.11", "code": "def main(a): return a"},
            "annotations": [{"key": "provide-api-key", "value": true}]
        }));
        assert_eq!(
            action.annotations.get("provide-api-key"),
            Some(&json!(true))
        );
        assert!(action.provides_api_key());
    }

    #[test]
    fn create_action_requires_exec() {
        let error = WhiskAction::create(
            path("guest"),
            name("a"),
            ActionPut::default(),
            &manifest(),
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "exec undefined");
        assert_eq!(error.class(), ErrorClass::BadRequest);
        assert_eq!(error.api_message(), "exec undefined");
    }

    #[test]
    fn create_action_with_limits_merges_given_fields_into_defaults() {
        let defaults = ActionLimits {
            memory: 128,
            ..ActionLimits::default()
        };
        let action = WhiskAction::create_with_limits(
            path("guest"),
            name("a"),
            action_put(
                json!({"exec": {"kind": "nodejs:20", "code": "x"}, "limits": {"timeout": 1000}}),
            ),
            &manifest(),
            &defaults,
            NOW,
        )
        .unwrap();
        assert_eq!(action.limits.timeout, 1000);
        assert_eq!(action.limits.memory, 128);
    }

    #[test]
    fn sequences_get_the_actions_parameter_with_resolved_names() {
        let action = create_action(json!({
            "exec": {"kind": "sequence", "components": ["/_/a", "/other/pkg/b"]},
            "parameters": [{"key": "discarded", "value": 1}]
        }));
        assert_eq!(
            serde_json::to_value(&action.parameters).unwrap(),
            json!([{"key": "_actions", "value": ["/guest/a", "/other/pkg/b"]}])
        );
        assert_eq!(action.annotations.get("exec"), Some(&json!("sequence")));
    }

    #[test]
    fn update_action_merges_per_section_5_3() {
        let original = create_action(json!({
            "exec": {"kind": "nodejs:20", "code": "old"},
            "parameters": [{"key": "p", "value": 1}],
            "limits": {"memory": 512},
            "publish": true,
            "annotations": [{"key": "a", "value": 1}, {"key": "b", "value": 2}]
        }));
        let updated = original
            .update(
                action_put(json!({
                    "limits": {"timeout": 2000},
                    "annotations": [{"key": "b", "value": 20}, {"key": "c", "value": 30}],
                    "delAnnotations": ["a"]
                })),
                &manifest(),
                LATER,
            )
            .unwrap();
        assert_eq!(updated.exec, original.exec);
        assert_eq!(updated.parameters, original.parameters);
        assert_eq!(updated.limits.memory, 512);
        assert_eq!(updated.limits.timeout, 2000);
        assert!(updated.publish);
        assert_eq!(updated.version.to_string(), "0.0.2");
        assert_eq!(updated.updated, LATER);
        assert_eq!(updated.annotations.get("a"), None);
        assert_eq!(updated.annotations.get("b"), Some(&json!(20)));
        assert_eq!(updated.annotations.get("c"), Some(&json!(30)));
        assert_eq!(updated.annotations.get("exec"), Some(&json!("nodejs:20")));
        assert_eq!(
            updated.annotations.get("provide-api-key"),
            Some(&json!(false)),
            "update keeps what create added"
        );
    }

    #[test]
    fn update_action_replaces_exec_and_parameters_when_given() {
        let original = create_action(json!({
            "exec": {"kind": "nodejs:20", "code": "old"},
            "parameters": [{"key": "p", "value": 1}]
        }));
        let updated = original
            .update(
                action_put(json!({
                    "exec": {"kind": "python:default", "code": "new"},
                    "parameters": [{"key": "q", "value": 2}],
                    "version": "3.0.0",
                    "publish": true
                })),
                &manifest(),
                LATER,
            )
            .unwrap();
        assert_eq!(updated.exec.kind(), "python:3.11");
        assert_eq!(updated.exec.code(), Some("new"));
        assert_eq!(updated.parameters.keys().collect::<Vec<_>>(), vec!["q"]);
        assert_eq!(updated.version.to_string(), "3.0.0");
        assert!(updated.publish);
        assert_eq!(updated.annotations.get("exec"), Some(&json!("python:3.11")));
    }

    #[test]
    fn sequence_parameters_follow_section_7_4() {
        let sequence =
            create_action(json!({"exec": {"kind": "sequence", "components": ["/guest/a"]}}));

        let kept = sequence
            .update(
                action_put(json!({"parameters": [{"key": "x", "value": 1}]})),
                &manifest(),
                LATER,
            )
            .unwrap();
        assert_eq!(
            kept.parameters, sequence.parameters,
            "no exec: parameters kept"
        );

        let repointed = sequence
            .update(
                action_put(
                    json!({"exec": {"kind": "sequence", "components": ["/guest/b"]},
                                  "parameters": [{"key": "x", "value": 1}]}),
                ),
                &manifest(),
                LATER,
            )
            .unwrap();
        assert_eq!(
            repointed.parameters.get("_actions"),
            Some(&json!(["/guest/b"]))
        );
        assert_eq!(repointed.parameters.len(), 1);

        let to_code = sequence
            .update(
                action_put(json!({"exec": {"kind": "nodejs:20", "code": "x"}})),
                &manifest(),
                LATER,
            )
            .unwrap();
        assert!(
            to_code.parameters.is_empty(),
            "sequence → code without parameters resets them"
        );

        let to_code_with_params = sequence
            .update(
                action_put(json!({"exec": {"kind": "nodejs:20", "code": "x"},
                                  "parameters": [{"key": "y", "value": 2}]})),
                &manifest(),
                LATER,
            )
            .unwrap();
        assert_eq!(to_code_with_params.parameters.get("y"), Some(&json!(2)));

        let code = create_action(json!({"exec": {"kind": "nodejs:20", "code": "x"},
                                        "parameters": [{"key": "p", "value": 1}]}));
        let code_new_exec = code
            .update(
                action_put(json!({"exec": {"kind": "nodejs:20", "code": "y"}})),
                &manifest(),
                LATER,
            )
            .unwrap();
        assert_eq!(
            code_new_exec.parameters, code.parameters,
            "code → code keeps parameters"
        );
    }

    #[test]
    fn action_put_validation_reports_413_then_bounds() {
        let system = SystemLimits {
            max_parameter_size: 10,
            max_exec_size: 5,
            ..SystemLimits::default()
        };
        let bounds = LimitBounds::default();
        let too_big_exec = action_put(json!({"exec": {"kind": "nodejs:20", "code": "123456"}}));
        let error = too_big_exec.validate(&system, &bounds).unwrap_err();
        assert_eq!(error.to_string(), "exec larger than allowed: 6 > 5 bytes.");
        assert_eq!(error.class(), ErrorClass::PayloadTooLarge);

        let too_big_params =
            action_put(json!({"parameters": [{"key": "key", "value": "12345678"}]}));
        assert_eq!(
            too_big_params
                .validate(&system, &bounds)
                .unwrap_err()
                .to_string(),
            "parameters larger than allowed: 13 > 10 bytes."
        );
        let too_big_annotations =
            action_put(json!({"annotations": [{"key": "key", "value": "12345678"}]}));
        assert_eq!(
            too_big_annotations
                .validate(&system, &bounds)
                .unwrap_err()
                .to_string(),
            "annotations larger than allowed: 13 > 10 bytes."
        );
        let bad_limits = action_put(json!({"limits": {"memory": 1024}}));
        let error = bad_limits.validate(&system, &bounds).unwrap_err();
        assert_eq!(
            error.to_string(),
            "memory size 1024 MB exceeds allowed threshold of 512 MB"
        );
        assert_eq!(error.class(), ErrorClass::BadRequest);
        assert!(action_put(json!({})).validate(&system, &bounds).is_ok());
    }

    #[test]
    fn action_stored_form_round_trips_and_ignores_store_fields() {
        let action = create_action(json!({"exec": {"kind": "nodejs:20", "code": "x"}}));
        let mut stored = serde_json::to_value(&action).unwrap();
        stored["_id"] = json!("guest/hello");
        stored["_rev"] = json!("1-abc");
        stored["entityType"] = json!("action");
        let read: WhiskAction = serde_json::from_value(stored).unwrap();
        assert_eq!(read, action);
        assert_eq!(action.doc_id(), "guest/hello");
        assert_eq!(action.fqn().to_string(), "/guest/hello");
    }

    #[test]
    fn final_requires_a_boolean_true() {
        let mut action = create_action(json!({"exec": {"kind": "nodejs:20", "code": "x"}}));
        assert!(!action.is_final());
        action.annotations.insert("final", json!("true"));
        assert!(!action.is_final());
        action.annotations.insert("final", json!(true));
        assert!(action.is_final());
    }

    fn package_put(body: Value) -> PackagePut {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn packages_reserve_default_and_strip_user_binding_annotations() {
        let error =
            WhiskPackage::create(path("guest"), name("default"), PackagePut::default(), NOW)
                .unwrap_err();
        assert_eq!(error.to_string(), "Package name 'default' is reserved.");
        assert_eq!(error.class(), ErrorClass::BadRequest);

        let package = WhiskPackage::create(
            path("guest"),
            name("utils"),
            package_put(json!({"binding": {}, "publish": true,
                               "annotations": [{"key": "binding", "value": "fake"}, {"key": "d", "value": 1}]})),
            NOW,
        )
        .unwrap();
        assert!(!package.is_binding());
        assert!(package.publish);
        assert_eq!(annotation_keys_of(&package.annotations), vec!["d"]);
    }

    #[test]
    fn bindings_resolve_the_default_namespace_and_get_the_binding_annotation() {
        let binding = WhiskPackage::create(
            path("guest"),
            name("mine"),
            package_put(json!({"binding": {"namespace": "_", "name": "utils"}})),
            NOW,
        )
        .unwrap();
        assert_eq!(binding.binding.as_ref().unwrap().doc_id(), "guest/utils");
        assert_eq!(
            binding.annotations.get("binding"),
            Some(&json!({"namespace": "guest", "name": "utils"}))
        );
        let repointed = binding
            .update(
                package_put(json!({"binding": {"namespace": "whisk.system", "name": "alarms"}})),
                LATER,
            )
            .unwrap();
        assert_eq!(
            repointed.binding.as_ref().unwrap().doc_id(),
            "whisk.system/alarms"
        );
        assert_eq!(repointed.version.to_string(), "0.0.2");
        let kept = binding.update(PackagePut::default(), LATER).unwrap();
        assert_eq!(kept.binding, binding.binding);
    }

    #[test]
    fn a_package_cannot_become_a_binding() {
        let package =
            WhiskPackage::create(path("guest"), name("p"), PackagePut::default(), NOW).unwrap();
        let error = package
            .update(
                package_put(json!({"binding": {"namespace": "a", "name": "b"}})),
                LATER,
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Resource is a package and cannot be converted into a binding."
        );
        assert_eq!(error.class(), ErrorClass::Conflict);
    }

    #[test]
    fn package_update_replaces_parameters_and_annotations_wholesale() {
        let package = WhiskPackage::create(
            path("guest"),
            name("p"),
            package_put(
                json!({"parameters": [{"key": "a", "value": 1}, {"key": "b", "value": 2}],
                               "annotations": [{"key": "x", "value": 1}]}),
            ),
            NOW,
        )
        .unwrap();
        let updated = package
            .update(
                package_put(json!({"parameters": [{"key": "c", "value": 3}]})),
                LATER,
            )
            .unwrap();
        assert_eq!(updated.parameters.keys().collect::<Vec<_>>(), vec!["c"]);
        assert_eq!(updated.annotations, package.annotations);
        let kept = package.update(PackagePut::default(), LATER).unwrap();
        assert_eq!(kept.parameters, package.parameters);
    }

    #[test]
    fn package_binding_serializes_as_empty_object_or_reference() {
        let package =
            WhiskPackage::create(path("guest"), name("p"), PackagePut::default(), NOW).unwrap();
        let stored = serde_json::to_value(&package).unwrap();
        assert_eq!(stored["binding"], json!({}));
        assert_eq!(
            serde_json::from_value::<WhiskPackage>(stored).unwrap(),
            package
        );
        assert_eq!(package.to_summary_json()["binding"], json!(false));
    }

    #[test]
    fn trigger_feed_annotation_must_be_an_entity_path() {
        let system = SystemLimits::default();
        let ok: TriggerPut = serde_json::from_value(
            json!({"annotations": [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]}),
        )
        .unwrap();
        assert!(ok.validate(&system).is_ok());
        for bad in [json!(true), json!("bad!name"), json!("")] {
            let put: TriggerPut =
                serde_json::from_value(json!({"annotations": [{"key": "feed", "value": bad}]}))
                    .unwrap();
            let error = put.validate(&system).unwrap_err();
            assert_eq!(error.to_string(), "Feed name is not valid");
            assert_eq!(error.class(), ErrorClass::BadRequest);
        }
    }

    #[test]
    fn trigger_update_keeps_rules_and_ignores_client_rules() {
        let put: TriggerPut = serde_json::from_value(json!({
            "parameters": [{"key": "type", "value": "webhook"}],
            "rules": {"guest/evil": {"action": {"path": "guest", "name": "x"}, "status": "active"}}
        }))
        .unwrap();
        let mut trigger = WhiskTrigger::create(path("guest"), name("t"), put, NOW);
        assert!(trigger.rules.is_none());
        trigger.add_rule(
            "guest/r1".to_string(),
            FullyQualifiedEntityName::parse("/guest/hello").unwrap(),
            RuleStatus::Active,
        );
        let updated = trigger.update(TriggerPut::default(), LATER);
        assert_eq!(updated.rules, trigger.rules);
        assert_eq!(updated.parameters, trigger.parameters);
        assert_eq!(updated.version.to_string(), "0.0.2");
        let replaced = trigger.update(
            serde_json::from_value(
                json!({"parameters": [], "annotations": [{"key": "a", "value": 1}]}),
            )
            .unwrap(),
            LATER,
        );
        assert!(replaced.parameters.is_empty());
        assert_eq!(replaced.annotations.len(), 1);
    }

    #[test]
    fn trigger_rule_bookkeeping() {
        let mut trigger =
            WhiskTrigger::create(path("guest"), name("t"), TriggerPut::default(), NOW);
        assert_eq!(trigger.rule_status("guest/r"), RuleStatus::Inactive);
        assert!(!trigger.set_rule_status("guest/r", RuleStatus::Active));
        let action = FullyQualifiedEntityName::parse("/guest/a").unwrap();
        trigger.add_rule("guest/r".into(), action.clone(), RuleStatus::Active);
        trigger.add_rule("guest/s".into(), action, RuleStatus::Inactive);
        assert_eq!(
            trigger
                .active_rules()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            vec!["guest/r"]
        );
        assert!(trigger.set_rule_status("guest/r", RuleStatus::Inactive));
        assert_eq!(trigger.active_rules().count(), 0);
        assert!(trigger.remove_rule("guest/r").is_some());
        assert!(trigger.remove_rule("guest/s").is_some());
        assert_eq!(serde_json::to_value(&trigger).unwrap()["rules"], json!({}));
    }

    fn rule_put(body: Value) -> RulePut {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn rules_need_trigger_and_action_and_resolve_the_default_namespace() {
        let error = WhiskRule::create(
            path("guest"),
            name("r"),
            rule_put(json!({"trigger": "/_/t"})),
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "rule requires a valid trigger and a valid action"
        );
        assert_eq!(error.class(), ErrorClass::BadRequest);

        let rule = WhiskRule::create(
            path("guest"),
            name("r"),
            rule_put(json!({"trigger": "/_/t", "action": {"path": "_/pkg", "name": "a"}})),
            NOW,
        )
        .unwrap();
        assert_eq!(rule.trigger.doc_id(), "guest/t");
        assert_eq!(rule.action.doc_id(), "guest/pkg/a");
        assert!(serde_json::from_value::<RulePut>(json!({"trigger": "t"})).is_err());
    }

    #[test]
    fn rule_update_replaces_given_fields() {
        let rule = WhiskRule::create(
            path("guest"),
            name("r"),
            rule_put(json!({"trigger": "/guest/t", "action": "/guest/a",
                            "annotations": [{"key": "k", "value": 1}]})),
            NOW,
        )
        .unwrap();
        let updated = rule.update(rule_put(json!({"action": "/_/b"})), LATER);
        assert_eq!(updated.trigger, rule.trigger);
        assert_eq!(updated.action.doc_id(), "guest/b");
        assert_eq!(updated.annotations, rule.annotations);
        assert_eq!(updated.version.to_string(), "0.0.2");
        let with_annotations = rule.update(rule_put(json!({"annotations": []})), LATER);
        assert!(with_annotations.annotations.is_empty());
    }

    #[test]
    fn rule_status_parsing() {
        assert_eq!(RuleStatus::parse("active").unwrap(), RuleStatus::Active);
        assert_eq!(RuleStatus::parse("inactive").unwrap(), RuleStatus::Inactive);
        let error = RuleStatus::parse("Active").unwrap_err();
        assert_eq!(
            error.to_string(),
            "'Active' is not a recognized rule state, must be one of ['active', 'inactive']"
        );
        assert_eq!(error.class(), ErrorClass::MalformedContent);
        let change: RuleStatusChange =
            serde_json::from_value(json!({"status": "inactive"})).unwrap();
        assert_eq!(change.requested().unwrap(), RuleStatus::Inactive);
    }
}
