//! wskdeploy manifests (`manifest.yaml`) turned into the REST requests that deploy them.
//!
//! Everything a deployment needs is worked out here, before any request is sent: the YAML is
//! parsed with unknown keys refused, code files are read, kinds are inferred and names resolved.
//! A manifest with a mistake therefore fails as a whole and leaves the namespace untouched,
//! instead of stopping halfway with some entities created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use serde_norway::Value as Yaml;
use sha1::{Digest, Sha1};

use crate::names::QualifiedName;

/// The annotation wskdeploy records a project's ownership in.
pub const MANAGED_ANNOTATION: &str = "whisk-managed";

/// Image of blackbox actions declared `native: true`: OpenWhisk's stock skeleton.
const NATIVE_IMAGE: &str = "openwhisk/dockerskeleton";

/// A manifest that cannot be deployed. Each message names the file, and where it helps the
/// entity or the line, so the user can go straight to the mistake.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    // The underlying errors are part of the one-line message rather than a `source`, so a
    // caller printing the chain does not repeat them.
    #[error("cannot read manifest '{path}': {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Bad YAML and unknown keys; the parser's message carries the key path, line and column.
    #[error("{path}: {error}")]
    Yaml {
        path: PathBuf,
        error: serde_norway::Error,
    },
    #[error("{path}: {entity}: {message}")]
    Invalid {
        path: PathBuf,
        entity: String,
        message: String,
    },
}

/// Which collection an entity lives in, in deployment order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntityKind {
    Package,
    Action,
    Sequence,
    Trigger,
    Rule,
}

impl EntityKind {
    /// The word printed for the entity.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Package => "package",
            Self::Action => "action",
            Self::Sequence => "sequence",
            Self::Trigger => "trigger",
            Self::Rule => "rule",
        }
    }

    /// The REST collection (sequences are actions).
    pub fn collection(self) -> &'static str {
        match self {
            Self::Package => "packages",
            Self::Action | Self::Sequence => "actions",
            Self::Trigger => "triggers",
            Self::Rule => "rules",
        }
    }
}

/// The feed of a trigger: the action to tell, and the inputs that go to it (not onto the trigger).
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    pub action: QualifiedName,
    pub params: Vec<Value>,
}

/// One entity to PUT: its name as `pkg/name` or `name`, and the body without the ownership
/// annotation (the deployer adds that, since it depends on the project name in use).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub kind: EntityKind,
    pub name: QualifiedName,
    pub body: Value,
    /// Actions: the kind to check against the platform's runtimes before anything is sent.
    pub runtime: Option<String>,
    pub feed: Option<Feed>,
}

impl Entity {
    /// `pkg/name` or `name`, as messages show it.
    pub fn display_name(&self) -> String {
        self.name.segments().join("/")
    }
}

/// A parsed manifest: the entities in deployment order (packages, actions, sequences, triggers,
/// rules) and what identifies the project.
#[derive(Debug, Clone)]
pub struct Plan {
    /// From `project: name:`; `--projectname` overrides it.
    pub project: Option<String>,
    /// The manifest path as given, recorded in the ownership annotation as wskdeploy does.
    pub file: String,
    /// wskdeploy's project hash: SHA-1 of `"OpenWhisk " + <size> + "\0" + <contents>`.
    pub hash: String,
    pub entities: Vec<Entity>,
}

impl Plan {
    /// The `whisk-managed` annotation that marks an entity as belonging to `project`.
    pub fn managed_annotation(&self, project: &str) -> Value {
        json!({
            "key": MANAGED_ANNOTATION,
            "value": {
                "projectName": project,
                "projectHash": self.hash,
                "projectDeps": [],
                "file": self.file,
            }
        })
    }
}

/// The project an entity was deployed by, read from its `whisk-managed` annotation.
pub fn managing_project(entity: &Value) -> Option<&str> {
    entity["annotations"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == MANAGED_ANNOTATION)?["value"]["projectName"]
        .as_str()
}

/// wskdeploy's project hash of a manifest's bytes.
pub fn project_hash(contents: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("OpenWhisk {}\0", contents.len()).as_bytes());
    hasher.update(contents);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replaces `$NAME` and `${NAME}` with the variable's value. An unset variable becomes empty,
/// as in wskdeploy (and the shell); a `$` not followed by a name stays as it is.
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(braced) = after.strip_prefix('{')
            && let Some(end) = braced.find('}')
            && is_name(&braced[..end])
        {
            out.push_str(&env(&braced[..end]).unwrap_or_default());
            rest = &braced[end + 1..];
            continue;
        }
        // Name characters are ASCII, so the count is also the byte length.
        let len = after
            .char_indices()
            .take_while(|&(i, c)| {
                c == '_' || c.is_ascii_alphabetic() || i > 0 && c.is_ascii_digit()
            })
            .count();
        if len == 0 {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&env(&after[..len]).unwrap_or_default());
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

// The manifest schema (wskdeploy's specification). `deny_unknown_fields` turns a misspelt key
// into an error naming it, instead of a silently different deployment.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a manifest mapping")]
struct RawManifest {
    project: Option<RawProject>,
    packages: Option<BTreeMap<String, RawPackage>>,
    /// The older single-package form, named by its `name` key.
    package: Option<RawPackage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a project mapping")]
struct RawProject {
    name: Option<String>,
    version: Option<Yaml>,
    description: Option<String>,
    packages: Option<BTreeMap<String, RawPackage>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a package mapping")]
struct RawPackage {
    name: Option<String>,
    version: Option<Yaml>,
    license: Option<String>,
    description: Option<String>,
    public: Option<bool>,
    #[serde(alias = "parameters")]
    inputs: Option<BTreeMap<String, Yaml>>,
    annotations: Option<BTreeMap<String, Yaml>>,
    actions: Option<BTreeMap<String, RawAction>>,
    sequences: Option<BTreeMap<String, RawSequence>>,
    triggers: Option<BTreeMap<String, Option<RawTrigger>>>,
    rules: Option<BTreeMap<String, RawRule>>,
    /// Bindings to packages already on the platform, keyed by the binding's name.
    dependencies: Option<BTreeMap<String, RawDependency>>,
    // Parts of the wskdeploy schema this client does not deploy; named so the error can say
    // "not supported" rather than "unknown".
    apis: Option<Yaml>,
    feeds: Option<Yaml>,
    compositions: Option<Yaml>,
    repositories: Option<Yaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a dependency mapping")]
struct RawDependency {
    location: String,
    version: Option<Yaml>,
    inputs: Option<BTreeMap<String, Yaml>>,
    annotations: Option<BTreeMap<String, Yaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an action mapping")]
struct RawAction {
    version: Option<Yaml>,
    description: Option<String>,
    function: Option<String>,
    code: Option<String>,
    #[serde(alias = "kind")]
    runtime: Option<String>,
    main: Option<String>,
    docker: Option<String>,
    native: Option<bool>,
    conductor: Option<bool>,
    inputs: Option<BTreeMap<String, Yaml>>,
    /// Documentation only; OpenWhisk stores no output schema.
    outputs: Option<Yaml>,
    limits: Option<RawLimits>,
    web: Option<Yaml>,
    #[serde(rename = "web-export")]
    web_export: Option<Yaml>,
    #[serde(rename = "raw-http")]
    raw_http: Option<bool>,
    #[serde(rename = "final")]
    final_: Option<bool>,
    annotations: Option<BTreeMap<String, Yaml>>,
    include: Option<Yaml>,
    exclude: Option<Yaml>,
}

/// Action limits in wskdeploy's units: milliseconds and megabytes.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of limits"
)]
struct RawLimits {
    timeout: Option<u64>,
    memory_size: Option<u64>,
    log_size: Option<u64>,
    concurrency: Option<u64>,
    // Platform-wide limits the specification lists but no API call can change; accepted and
    // ignored as the specification asks.
    concurrent_activations: Option<Yaml>,
    user_invocation_rate: Option<Yaml>,
    code_size: Option<Yaml>,
    parameter_size: Option<Yaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a sequence mapping")]
struct RawSequence {
    actions: Yaml,
    description: Option<String>,
    web: Option<Yaml>,
    #[serde(rename = "web-export")]
    web_export: Option<Yaml>,
    annotations: Option<BTreeMap<String, Yaml>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a trigger mapping")]
struct RawTrigger {
    #[serde(alias = "source")]
    feed: Option<String>,
    description: Option<String>,
    inputs: Option<BTreeMap<String, Yaml>>,
    annotations: Option<BTreeMap<String, Yaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a rule mapping")]
struct RawRule {
    trigger: String,
    action: String,
    description: Option<String>,
    annotations: Option<BTreeMap<String, Yaml>>,
}

/// Reads and plans the manifest at `path`. `namespace` resolves references (`_` for the
/// caller's own); `env` supplies `$VAR` values.
pub fn load(
    path: &Path,
    namespace: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ManifestError> {
    let bytes = std::fs::read(path).map_err(|error| ManifestError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let raw: RawManifest =
        serde_norway::from_slice(&bytes).map_err(|error| ManifestError::Yaml {
            path: path.to_path_buf(),
            error,
        })?;
    let mut planner = Planner {
        path,
        dir: path.parent().unwrap_or(Path::new("")),
        namespace,
        env,
        entities: Vec::new(),
    };
    let mut project = None;
    let mut packages = Vec::new();
    if let Some(p) = raw.project {
        let _ = (p.version, p.description);
        project = p
            .name
            .map(|n| interpolate(&n, env))
            .filter(|n| !n.is_empty());
        packages.extend(p.packages.unwrap_or_default());
    }
    packages.extend(raw.packages.unwrap_or_default());
    if let Some(single) = raw.package {
        let name = single.name.clone().ok_or_else(|| ManifestError::Invalid {
            path: path.to_path_buf(),
            entity: "package".into(),
            message: "the `package` form needs a `name`".into(),
        })?;
        packages.push((name, single));
    }
    if packages.is_empty() {
        return Err(planner.invalid("manifest", "declares no packages".into()));
    }
    for (name, package) in packages {
        planner.package(&interpolate(&name, env), package)?;
    }
    let mut entities = planner.entities;
    // Stable: within a kind, entities keep the order they were declared in.
    entities.sort_by_key(|e| e.kind);
    Ok(Plan {
        project,
        file: path.display().to_string(),
        hash: project_hash(&bytes),
        entities,
    })
}

struct Planner<'a> {
    path: &'a Path,
    dir: &'a Path,
    namespace: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    entities: Vec<Entity>,
}

impl Planner<'_> {
    fn invalid(&self, entity: &str, message: String) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.to_path_buf(),
            entity: entity.to_string(),
            message,
        }
    }

    fn unsupported(&self, entity: &str, present: &[(&str, bool)]) -> Result<(), ManifestError> {
        match present.iter().find(|(_, there)| *there) {
            Some((key, _)) => Err(self.invalid(
                entity,
                format!("`{key}` is not supported by wsk project deploy"),
            )),
            None => Ok(()),
        }
    }

    fn name(&self, text: &str, what: &str) -> Result<QualifiedName, ManifestError> {
        QualifiedName::parse(text, self.namespace).map_err(|e| self.invalid(what, e.to_string()))
    }

    /// A reference to an action: a bare name means the action of that name in `package`.
    fn action_ref(
        &self,
        text: &str,
        package: Option<&str>,
        what: &str,
    ) -> Result<QualifiedName, ManifestError> {
        let text = interpolate(text.trim(), self.env);
        match package {
            Some(package) if !text.contains('/') => self.name(&format!("{package}/{text}"), what),
            _ => self.name(&text, what),
        }
    }

    fn package(&mut self, name: &str, raw: RawPackage) -> Result<(), ManifestError> {
        let label = format!("package '{name}'");
        self.unsupported(
            &label,
            &[
                ("apis", raw.apis.is_some()),
                ("feeds", raw.feeds.is_some()),
                ("compositions", raw.compositions.is_some()),
                ("repositories", raw.repositories.is_some()),
            ],
        )?;
        let _ = (raw.name, raw.version, raw.license);
        // wskdeploy's `default` package stands for "no package": its actions sit directly in
        // the namespace.
        let package = (name != "default").then_some(name);
        if let Some(package) = package {
            let qualified = self.name(package, &label)?;
            if qualified.package.is_some() {
                return Err(self.invalid(&label, "a package name cannot contain '/'".into()));
            }
            let mut body = Map::new();
            let parameters = self.pairs(raw.inputs, &label)?;
            body.insert("parameters".into(), Value::Array(parameters));
            let annotations = self.annotations(raw.annotations, raw.description, &label)?;
            body.insert("annotations".into(), Value::Array(annotations));
            body.insert("publish".into(), Value::Bool(raw.public.unwrap_or(false)));
            self.entities.push(Entity {
                kind: EntityKind::Package,
                name: qualified,
                body: Value::Object(body),
                runtime: None,
                feed: None,
            });
        }
        for (binding, spec) in raw.dependencies.unwrap_or_default() {
            self.binding(&interpolate(&binding, self.env), spec)?;
        }
        for (action, spec) in raw.actions.unwrap_or_default() {
            self.action(package, &interpolate(&action, self.env), spec)?;
        }
        for (sequence, spec) in raw.sequences.unwrap_or_default() {
            self.sequence(package, &interpolate(&sequence, self.env), spec)?;
        }
        for (trigger, spec) in raw.triggers.unwrap_or_default() {
            self.trigger(&interpolate(&trigger, self.env), spec.unwrap_or_default())?;
        }
        for (rule, spec) in raw.rules.unwrap_or_default() {
            self.rule(package, &interpolate(&rule, self.env), spec)?;
        }
        Ok(())
    }

    /// A dependency on a package already deployed (`location: /ns/pkg`) becomes a binding of
    /// it named after the dependency. wskdeploy can also fetch and deploy packages from GitHub;
    /// that needs more than HTTP to the API, so it is refused with a clear message.
    fn binding(&mut self, name: &str, raw: RawDependency) -> Result<(), ManifestError> {
        let label = format!("dependency '{name}'");
        let _ = raw.version;
        let location = interpolate(raw.location.trim(), self.env);
        if !location.starts_with('/') {
            return Err(self.invalid(
                &label,
                format!(
                    "location '{location}' is not supported: only bindings of deployed packages (`/namespace/package`) are"
                ),
            ));
        }
        let bound = self.name(&location, &label)?;
        if bound.package.is_some() {
            return Err(self.invalid(&label, format!("'{location}' is not a package name")));
        }
        let qualified = self.member_name(None, name, &label)?;
        let parameters = self.pairs(raw.inputs, &label)?;
        let annotations = self.annotations(raw.annotations, None, &label)?;
        self.entities.push(Entity {
            kind: EntityKind::Package,
            name: qualified,
            body: json!({
                "binding": {"namespace": bound.namespace, "name": bound.name},
                "parameters": parameters,
                "annotations": annotations,
            }),
            runtime: None,
            feed: None,
        });
        Ok(())
    }

    fn member_name(
        &self,
        package: Option<&str>,
        name: &str,
        label: &str,
    ) -> Result<QualifiedName, ManifestError> {
        if name.contains('/') || name.is_empty() {
            return Err(self.invalid(label, format!("'{name}' is not a valid entity name")));
        }
        match package {
            Some(package) => self.name(&format!("{package}/{name}"), label),
            None => self.name(name, label),
        }
    }

    fn action(
        &mut self,
        package: Option<&str>,
        name: &str,
        raw: RawAction,
    ) -> Result<(), ManifestError> {
        let qualified = self.member_name(package, name, name)?;
        let label = format!("action '{}'", qualified.segments().join("/"));
        self.unsupported(
            &label,
            &[
                ("include", raw.include.is_some()),
                ("exclude", raw.exclude.is_some()),
            ],
        )?;
        let _ = (raw.version, raw.outputs);
        let env = self.env;
        let runtime = raw
            .runtime
            .map(|r| normalize_runtime(&interpolate(&r, env)));
        let main = raw.main.map(|m| interpolate(&m, env));
        let function = raw.function.map(|f| interpolate(&f, env));
        let mut exec = Map::new();
        let image = match (raw.docker, raw.native.unwrap_or(false)) {
            (Some(image), _) => Some(interpolate(&image, env)),
            (None, true) => Some(NATIVE_IMAGE.to_string()),
            (None, false) => None,
        };
        let code = match (&function, raw.code) {
            (Some(_), Some(_)) => {
                return Err(
                    self.invalid(&label, "give either `function` or `code`, not both".into())
                );
            }
            (Some(function), None) => Some(self.code_file(function, &label)?),
            (None, Some(code)) => Some((Value::String(code), false)),
            (None, None) => None,
        };
        let kind = match (&image, &runtime, &function) {
            (Some(_), Some(_), _) => {
                return Err(self.invalid(
                    &label,
                    "`runtime` cannot be combined with `docker` or `native`".into(),
                ));
            }
            (Some(_), None, _) => None,
            (None, Some(runtime), _) => Some(runtime.clone()),
            (None, None, Some(function)) => Some(
                infer_kind(Path::new(function))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        self.invalid(
                            &label,
                            format!("cannot infer a runtime from '{function}'; set `runtime`"),
                        )
                    })?,
            ),
            (None, None, None) if code.is_some() => {
                return Err(self.invalid(&label, "inline `code` needs a `runtime`".into()));
            }
            (None, None, None) => {
                return Err(self.invalid(
                    &label,
                    "needs `function` (a code file), `code`, `docker` or `native`".into(),
                ));
            }
        };
        if image.is_none() && code.is_none() {
            return Err(self.invalid(&label, "needs `function` (a code file) or `code`".into()));
        }
        match &image {
            Some(image) => {
                exec.insert("kind".into(), json!("blackbox"));
                exec.insert("image".into(), json!(image));
            }
            None => {
                exec.insert("kind".into(), json!(kind.clone().unwrap_or_default()));
            }
        }
        if let Some((code, binary)) = code {
            exec.insert("code".into(), code);
            if binary {
                exec.insert("binary".into(), Value::Bool(true));
            }
        }
        if let Some(main) = main {
            exec.insert("main".into(), json!(main));
        }
        let mut body = Map::new();
        body.insert("exec".into(), Value::Object(exec));
        body.insert(
            "parameters".into(),
            Value::Array(self.pairs(raw.inputs, &label)?),
        );
        let mut annotations = self.annotations(raw.annotations, raw.description, &label)?;
        let web = raw.web.or(raw.web_export);
        self.web(&mut annotations, web, &label)?;
        for (key, value) in [("raw-http", raw.raw_http), ("final", raw.final_)] {
            if let Some(value) = value {
                set_pair(&mut annotations, key, Value::Bool(value));
            }
        }
        if raw.conductor == Some(true) {
            set_pair(&mut annotations, "conductor", Value::Bool(true));
        }
        body.insert("annotations".into(), Value::Array(annotations));
        if let Some(limits) = raw.limits {
            let _ = (
                limits.concurrent_activations,
                limits.user_invocation_rate,
                limits.code_size,
                limits.parameter_size,
            );
            let mut map = Map::new();
            for (key, value) in [
                ("timeout", limits.timeout),
                ("memory", limits.memory_size),
                ("logs", limits.log_size),
                ("concurrency", limits.concurrency),
            ] {
                if let Some(value) = value {
                    map.insert(key.into(), json!(value));
                }
            }
            if !map.is_empty() {
                body.insert("limits".into(), Value::Object(map));
            }
        }
        self.entities.push(Entity {
            kind: EntityKind::Action,
            name: qualified,
            body: Value::Object(body),
            runtime: kind.filter(|_| image.is_none()),
            feed: None,
        });
        Ok(())
    }

    /// The code of `function` (relative to the manifest) and whether it travels base64-encoded.
    fn code_file(&self, function: &str, label: &str) -> Result<(Value, bool), ManifestError> {
        let file = self.dir.join(function);
        if file.is_dir() {
            return Err(self.invalid(
                label,
                format!(
                    "'{}' is a directory; zip it and name the zip in `function`",
                    file.display()
                ),
            ));
        }
        let bytes = std::fs::read(&file).map_err(|e| {
            self.invalid(
                label,
                format!("cannot read code file '{}': {e}", file.display()),
            )
        })?;
        if is_binary(&file) {
            let code = base64::engine::general_purpose::STANDARD.encode(&bytes);
            return Ok((Value::String(code), true));
        }
        let code = String::from_utf8(bytes).map_err(|_| {
            self.invalid(
                label,
                format!("code file '{}' is not UTF-8 text", file.display()),
            )
        })?;
        Ok((Value::String(code), false))
    }

    fn web(
        &self,
        annotations: &mut Vec<Value>,
        web: Option<Yaml>,
        label: &str,
    ) -> Result<(), ManifestError> {
        let Some(web) = web else { return Ok(()) };
        let word = match &web {
            Yaml::Bool(b) => b.to_string(),
            Yaml::String(s) => interpolate(s, self.env).to_ascii_lowercase(),
            _ => String::new(),
        };
        let (export, raw) = match word.as_str() {
            "true" | "yes" => (true, false),
            "raw" => (true, true),
            "false" | "no" => (false, false),
            _ => {
                return Err(self.invalid(
                    label,
                    format!("invalid `web` value {web:?}: use true, false, yes, no or raw"),
                ));
            }
        };
        set_pair(annotations, "web-export", Value::Bool(export));
        set_pair(annotations, "raw-http", Value::Bool(raw));
        set_pair(annotations, "final", Value::Bool(export));
        Ok(())
    }

    fn sequence(
        &mut self,
        package: Option<&str>,
        name: &str,
        raw: RawSequence,
    ) -> Result<(), ManifestError> {
        let qualified = self.member_name(package, name, name)?;
        let label = format!("sequence '{}'", qualified.segments().join("/"));
        let listed: Vec<String> = match &raw.actions {
            Yaml::String(list) => list.split(',').map(str::to_string).collect(),
            Yaml::Sequence(items) => items
                .iter()
                .map(|item| match item {
                    Yaml::String(s) => Ok(s.clone()),
                    _ => Err(self.invalid(&label, "`actions` must list action names".into())),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(self.invalid(
                    &label,
                    "`actions` must be a comma-separated string or a list".into(),
                ));
            }
        };
        let components = listed
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                self.action_ref(c, package, &label)
                    .map(|q| json!(q.fully_qualified()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if components.is_empty() {
            return Err(self.invalid(&label, "`actions` lists no actions".into()));
        }
        let mut annotations = self.annotations(raw.annotations, raw.description, &label)?;
        self.web(&mut annotations, raw.web.or(raw.web_export), &label)?;
        self.entities.push(Entity {
            kind: EntityKind::Sequence,
            name: qualified,
            body: json!({
                "exec": {"kind": "sequence", "components": components},
                "annotations": annotations,
            }),
            runtime: None,
            feed: None,
        });
        Ok(())
    }

    fn trigger(&mut self, name: &str, raw: RawTrigger) -> Result<(), ManifestError> {
        let label = format!("trigger '{name}'");
        let qualified = self.member_name(None, name, &label)?;
        let inputs = self.pairs(raw.inputs, &label)?;
        let mut annotations = self.annotations(raw.annotations, raw.description, &label)?;
        let feed = match raw.feed {
            Some(feed) => {
                let action = self.name(&interpolate(&feed, self.env), &label)?;
                set_pair(&mut annotations, "feed", json!(action.fully_qualified()));
                Some(Feed {
                    action,
                    params: inputs.clone(),
                })
            }
            None => None,
        };
        // With a feed the inputs configure the feed, as `wsk trigger create --feed -p` does.
        let parameters = if feed.is_some() { Vec::new() } else { inputs };
        self.entities.push(Entity {
            kind: EntityKind::Trigger,
            name: qualified,
            body: json!({"parameters": parameters, "annotations": annotations}),
            runtime: None,
            feed,
        });
        Ok(())
    }

    fn rule(
        &mut self,
        package: Option<&str>,
        name: &str,
        raw: RawRule,
    ) -> Result<(), ManifestError> {
        let label = format!("rule '{name}'");
        let qualified = self.member_name(None, name, &label)?;
        let trigger = self.name(&interpolate(raw.trigger.trim(), self.env), &label)?;
        if trigger.package.is_some() {
            return Err(self.invalid(&label, format!("'{}' is not a trigger name", raw.trigger)));
        }
        let action = self.action_ref(&raw.action, package, &label)?;
        let annotations = self.annotations(raw.annotations, raw.description, &label)?;
        self.entities.push(Entity {
            kind: EntityKind::Rule,
            name: qualified,
            body: json!({
                "trigger": trigger.fully_qualified(),
                "action": action.fully_qualified(),
                "annotations": annotations,
            }),
            runtime: None,
            feed: None,
        });
        Ok(())
    }

    /// `inputs` as `[{key, value}]`. A value may be written plainly or in wskdeploy's typed
    /// form (`{type, description, value|default}`); the typed form contributes its value.
    fn pairs(
        &self,
        inputs: Option<BTreeMap<String, Yaml>>,
        label: &str,
    ) -> Result<Vec<Value>, ManifestError> {
        inputs
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| {
                let value = self.json(typed_value(value), label)?;
                Ok(json!({"key": interpolate(&key, self.env), "value": value}))
            })
            .collect()
    }

    /// `annotations` as pairs, with `description` recorded as an annotation like wskdeploy does.
    fn annotations(
        &self,
        annotations: Option<BTreeMap<String, Yaml>>,
        description: Option<String>,
        label: &str,
    ) -> Result<Vec<Value>, ManifestError> {
        let mut pairs = Vec::new();
        for (key, value) in annotations.unwrap_or_default() {
            if key == MANAGED_ANNOTATION {
                return Err(self.invalid(
                    label,
                    format!("the `{MANAGED_ANNOTATION}` annotation is set by wsk itself"),
                ));
            }
            pairs.push(json!({"key": key, "value": self.json(value, label)?}));
        }
        if let Some(description) = description {
            set_pair(
                &mut pairs,
                "description",
                json!(interpolate(&description, self.env)),
            );
        }
        Ok(pairs)
    }

    /// A YAML value as JSON, with `$VAR` substituted in every string.
    fn json(&self, value: Yaml, label: &str) -> Result<Value, ManifestError> {
        let value = serde_json::to_value(&value).map_err(|e| {
            self.invalid(label, format!("a value cannot be expressed as JSON: {e}"))
        })?;
        Ok(substitute(value, self.env))
    }
}

fn substitute(value: Value, env: &dyn Fn(&str) -> Option<String>) -> Value {
    match value {
        Value::String(s) => Value::String(interpolate(&s, env)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| substitute(v, env)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, substitute(v, env)))
                .collect(),
        ),
        other => other,
    }
}

/// The keys of wskdeploy's typed parameter form.
const PARAMETER_KEYS: [&str; 7] = [
    "type",
    "description",
    "value",
    "default",
    "required",
    "status",
    "schema",
];

/// The value of an input: plain values as written; a mapping made only of the typed form's keys
/// (and having a `type`, `value` or `default`) yields its `value`, else its `default`, else the
/// zero value of its `type`.
fn typed_value(value: Yaml) -> Yaml {
    let Yaml::Mapping(map) = &value else {
        return value;
    };
    let key = |k: &str| map.get(Yaml::String(k.to_string()));
    let all_spec = !map.is_empty()
        && map
            .keys()
            .all(|k| k.as_str().is_some_and(|k| PARAMETER_KEYS.contains(&k)));
    let typed = key("type").is_some() || key("value").is_some() || key("default").is_some();
    if !all_spec || !typed {
        return value;
    }
    if let Some(v) = key("value").or_else(|| key("default")) {
        return v.clone();
    }
    match key("type").and_then(Yaml::as_str) {
        Some("integer") => Yaml::Number(0.into()),
        Some("float") => Yaml::Number(0.0.into()),
        Some("boolean") => Yaml::Bool(false),
        Some("json") => Yaml::Mapping(serde_norway::Mapping::new()),
        _ => Yaml::String(String::new()),
    }
}

/// Sets `key` in a pair list, replacing an earlier value of the same key.
fn set_pair(pairs: &mut Vec<Value>, key: &str, value: Value) {
    match pairs.iter_mut().find(|p| p["key"] == key) {
        Some(pair) => pair["value"] = value,
        None => pairs.push(json!({"key": key, "value": value})),
    }
}

/// wskdeploy writes runtimes as `nodejs`, `nodejs@20` or `nodejs:20`; the API wants a kind.
fn normalize_runtime(runtime: &str) -> String {
    let runtime = runtime.trim().to_ascii_lowercase();
    if let Some((family, version)) = runtime.split_once('@') {
        return format!("{family}:{version}");
    }
    if runtime.contains(':') || runtime == "sequence" || runtime == "blackbox" {
        runtime
    } else {
        format!("{runtime}:default")
    }
}

/// Kind from the code file's extension, as `wsk action create` infers it; `.zip` needs a
/// `runtime`.
pub fn infer_kind(file: &Path) -> Option<&'static str> {
    match file.extension()?.to_str()? {
        "js" => Some("nodejs:default"),
        "py" => Some("python:default"),
        "java" | "jar" => Some("java:default"),
        "swift" => Some("swift:default"),
        "php" => Some("php:default"),
        "rb" => Some("ruby:default"),
        "go" => Some("go:default"),
        "rs" => Some("rust:default"),
        "balx" => Some("ballerina:default"),
        "wasm" => Some("wasm:default"),
        _ => None,
    }
}

/// Archives and WebAssembly modules travel base64-encoded with `binary: true`; source files as
/// text.
pub fn is_binary(file: &Path) -> bool {
    matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("zip" | "jar" | "balx" | "wasm")
    )
}

/// Checks a kind against the platform's `runtimes` (from `GET /`): a kind it lists, or
/// `<family>:default` for a family it has. `None` when the kind is fine.
pub fn unsupported_runtime(kind: &str, runtimes: &Value) -> Option<String> {
    let families = runtimes.as_object()?;
    let mut known: Vec<String> = families
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|r| r["kind"].as_str().map(str::to_string))
        .collect();
    let supported = match kind.split_once(':') {
        Some((family, "default")) => families.contains_key(family),
        _ => known.iter().any(|k| k == kind),
    };
    if supported {
        return None;
    }
    known.sort();
    Some(format!(
        "runtime '{kind}' is not supported by this platform (it has {})",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "GREETING" => Some("hello".into()),
            "PKG" => Some("tools".into()),
            _ => None,
        }
    }

    /// Writes `manifest` and `files` into a temp dir and plans it.
    fn plan(manifest: &str, files: &[(&str, &str)]) -> Result<Plan, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        let path = dir.path().join("manifest.yaml");
        std::fs::write(&path, manifest).unwrap();
        load(&path, "_", &env)
    }

    fn message(result: Result<Plan, ManifestError>) -> String {
        result
            .expect_err("the manifest must be refused")
            .to_string()
    }

    #[test]
    fn webassembly_modules_are_binary_and_infer_the_wasm_family() {
        assert_eq!(infer_kind(Path::new("m.wasm")), Some("wasm:default"));
        assert!(is_binary(Path::new("m.wasm")));
        assert!(!is_binary(Path::new("m.js")));
    }

    #[test]
    fn interpolates_both_forms_and_leaves_lone_dollars() {
        assert_eq!(interpolate("$GREETING world", &env), "hello world");
        assert_eq!(interpolate("${GREETING}world", &env), "helloworld");
        assert_eq!(interpolate("a$UNSET-b", &env), "a-b");
        assert_eq!(interpolate("cost: $ 5 $1", &env), "cost: $ 5 $1");
        assert_eq!(interpolate("${not closed", &env), "${not closed");
        assert_eq!(interpolate("no vars", &env), "no vars");
    }

    #[test]
    fn project_hash_follows_the_documented_formula() {
        let mut hasher = Sha1::new();
        hasher.update(b"OpenWhisk 3\0abc");
        let expected: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(project_hash(b"abc"), expected);
        assert_eq!(expected.len(), 40);
    }

    #[test]
    fn plans_every_kind_in_dependency_order() {
        let plan = plan(
            r#"
project:
  name: demo
  packages:
    $PKG:
      public: true
      inputs:
        region: eu
        retries:
          type: integer
          default: 3
      actions:
        hello:
          function: src/hello.js
          main: greet
          web-export: raw
          limits: {timeout: 5000, memorySize: 128, logSize: 1, concurrentActivations: 9}
          inputs: {greeting: "${GREETING}"}
          annotations: {owner: ops}
        zipped:
          function: app.zip
          runtime: python@3
      sequences:
        both:
          actions: hello, zipped, /whisk.system/utils/echo
      triggers:
        tick:
          inputs: {every: 5}
      rules:
        on-tick:
          trigger: tick
          action: both
"#,
            &[
                ("src/hello.js", "function greet() {}"),
                ("app.zip", "PK\u{3}\u{4}"),
            ],
        )
        .unwrap();
        assert_eq!(plan.project.as_deref(), Some("demo"));
        let kinds: Vec<_> = plan
            .entities
            .iter()
            .map(|e| (e.kind, e.display_name()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (EntityKind::Package, "tools".to_string()),
                (EntityKind::Action, "tools/hello".to_string()),
                (EntityKind::Action, "tools/zipped".to_string()),
                (EntityKind::Sequence, "tools/both".to_string()),
                (EntityKind::Trigger, "tick".to_string()),
                (EntityKind::Rule, "on-tick".to_string()),
            ]
        );
        let [package, hello, zipped, both, tick, rule] = &plan.entities[..] else {
            panic!("six entities expected");
        };
        assert_eq!(
            package.body,
            json!({
                "parameters": [{"key": "region", "value": "eu"}, {"key": "retries", "value": 3}],
                "annotations": [],
                "publish": true,
            })
        );
        assert_eq!(
            hello.body,
            json!({
                "exec": {"kind": "nodejs:default", "code": "function greet() {}", "main": "greet"},
                "parameters": [{"key": "greeting", "value": "hello"}],
                "annotations": [
                    {"key": "owner", "value": "ops"},
                    {"key": "web-export", "value": true},
                    {"key": "raw-http", "value": true},
                    {"key": "final", "value": true},
                ],
                "limits": {"timeout": 5000, "memory": 128, "logs": 1},
            })
        );
        assert_eq!(hello.runtime.as_deref(), Some("nodejs:default"));
        assert_eq!(zipped.body["exec"]["kind"], "python:3");
        assert_eq!(zipped.body["exec"]["binary"], true);
        assert_eq!(zipped.body["exec"]["code"], "UEsDBA==");
        assert_eq!(
            both.body["exec"]["components"],
            json!([
                "/_/tools/hello",
                "/_/tools/zipped",
                "/whisk.system/utils/echo"
            ])
        );
        assert_eq!(
            tick.body["parameters"],
            json!([{"key": "every", "value": 5}])
        );
        assert_eq!(tick.feed, None);
        assert_eq!(
            rule.body,
            json!({"trigger": "/_/tick", "action": "/_/tools/both", "annotations": []})
        );
        assert_eq!(
            plan.managed_annotation("demo")["value"]["projectHash"],
            json!(plan.hash)
        );
    }

    #[test]
    fn default_package_and_feed_triggers() {
        let plan = plan(
            r#"
packages:
  default:
    actions:
      top:
        code: "def main(a): return a"
        runtime: python
    triggers:
      alarm:
        feed: /whisk.system/alarms/alarm
        inputs: {cron: "* * * * *"}
"#,
            &[],
        )
        .unwrap();
        assert_eq!(plan.project, None);
        assert_eq!(plan.entities.len(), 2);
        assert_eq!(plan.entities[0].display_name(), "top");
        assert_eq!(plan.entities[0].body["exec"]["kind"], "python:default");
        let alarm = &plan.entities[1];
        assert_eq!(alarm.body["parameters"], json!([]));
        assert_eq!(
            alarm.body["annotations"],
            json!([{"key": "feed", "value": "/whisk.system/alarms/alarm"}])
        );
        let feed = alarm.feed.as_ref().unwrap();
        assert_eq!(feed.action.fully_qualified(), "/whisk.system/alarms/alarm");
        assert_eq!(
            feed.params,
            vec![json!({"key": "cron", "value": "* * * * *"})]
        );
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        let err = message(plan(
            "packages:\n  p:\n    actions:\n      a:\n        function: a.js\n        memory: 5\n",
            &[("a.js", "")],
        ));
        assert!(err.contains("manifest.yaml"), "{err}");
        assert!(err.contains("unknown field `memory`"), "{err}");
        assert!(err.contains("line 6"), "{err}");
        let err = message(plan("packges:\n  p: {}\n", &[]));
        assert!(err.contains("unknown field `packges`"), "{err}");
    }

    #[test]
    fn dependencies_on_deployed_packages_become_bindings() {
        let planned = plan(
            "packages:\n  p:\n    dependencies:\n      myutils:\n        location: /whisk.system/utils\n        inputs: {x: 1}\n",
            &[],
        )
        .unwrap();
        let binding = &planned.entities[1];
        assert_eq!(
            (binding.kind, binding.display_name()),
            (EntityKind::Package, "myutils".to_string())
        );
        assert_eq!(
            binding.body,
            json!({
                "binding": {"namespace": "whisk.system", "name": "utils"},
                "parameters": [{"key": "x", "value": 1}],
                "annotations": [],
            })
        );
        let err = message(plan(
            "packages:\n  p:\n    dependencies:\n      hw:\n        location: github.com/a/b\n",
            &[],
        ));
        assert!(
            err.contains("dependency 'hw': location 'github.com/a/b' is not supported"),
            "{err}"
        );
        let err = message(plan(
            "packages:\n  p:\n    dependencies:\n      hw:\n        location: /ns/a/b\n",
            &[],
        ));
        assert!(err.contains("'/ns/a/b' is not a package name"), "{err}");
    }

    #[test]
    fn unsupported_keys_say_so() {
        let err = message(plan("packages:\n  p:\n    apis: {}\n", &[]));
        assert!(
            err.ends_with("package 'p': `apis` is not supported by wsk project deploy"),
            "{err}"
        );
    }

    #[test]
    fn bad_yaml_reports_the_line() {
        let err = message(plan("packages:\n  p:\n    actions: [\n  x: 1\n", &[]));
        assert!(err.contains("manifest.yaml: "), "{err}");
        assert!(err.contains("line "), "{err}");
    }

    #[test]
    fn code_and_runtime_mistakes_are_refused() {
        let err = message(plan(
            "packages:\n  p:\n    actions:\n      a:\n        function: missing.js\n",
            &[],
        ));
        assert!(err.contains("action 'p/a': cannot read code file"), "{err}");
        assert!(err.contains("missing.js"), "{err}");
        let err = message(plan(
            "packages:\n  p:\n    actions:\n      a:\n        function: a.txt\n",
            &[("a.txt", "")],
        ));
        assert!(err.contains("cannot infer a runtime from 'a.txt'"), "{err}");
        let err = message(plan("packages:\n  p:\n    actions:\n      a: {}\n", &[]));
        assert!(err.contains("needs `function`"), "{err}");
        let err = message(plan(
            "packages:\n  p:\n    actions:\n      a:\n        code: x\n",
            &[],
        ));
        assert!(err.contains("inline `code` needs a `runtime`"), "{err}");
        let err = message(plan(
            "packages:\n  p:\n    actions:\n      a:\n        function: a.js\n        web: maybe\n",
            &[("a.js", "")],
        ));
        assert!(err.contains("invalid `web` value"), "{err}");
        let err = message(plan(
            "packages:\n  p:\n    actions:\n      a:\n        function: src\n",
            &[("src/x.js", "")],
        ));
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn empty_and_malformed_manifests_are_refused() {
        assert!(message(plan("project:\n  name: x\n", &[])).contains("declares no packages"));
        let err = message(plan(
            "packages:\n  p:\n    sequences:\n      s:\n        actions: 5\n",
            &[],
        ));
        assert!(err.contains("comma-separated"), "{err}");
        let err = message(plan(
            "packages:\n  p:\n    rules:\n      r:\n        trigger: a/b\n        action: x\n",
            &[],
        ));
        assert!(err.contains("'a/b' is not a trigger name"), "{err}");
        let err = message(plan(
            "packages:\n  p:\n    annotations:\n      whisk-managed: {}\n",
            &[],
        ));
        assert!(err.contains("set by wsk itself"), "{err}");
        let missing = load(Path::new("/nonexistent/manifest.yaml"), "_", &env);
        assert!(message(missing).starts_with("cannot read manifest '/nonexistent/manifest.yaml'"));
    }

    #[test]
    fn runtimes_are_checked_against_the_platform() {
        let runtimes = json!({"nodejs": [{"kind": "nodejs:20"}], "python": [{"kind": "python:3"}]});
        assert_eq!(unsupported_runtime("nodejs:20", &runtimes), None);
        assert_eq!(unsupported_runtime("python:default", &runtimes), None);
        assert_eq!(
            unsupported_runtime("cobol:default", &runtimes).as_deref(),
            Some(
                "runtime 'cobol:default' is not supported by this platform (it has nodejs:20, python:3)"
            )
        );
        assert!(unsupported_runtime("nodejs:6", &runtimes).is_some());
        assert_eq!(normalize_runtime("NodeJS@20"), "nodejs:20");
        assert_eq!(normalize_runtime("python"), "python:default");
    }

    #[test]
    fn ownership_is_read_from_the_managed_annotation() {
        let entity = json!({"annotations": [
            {"key": "exec", "value": "nodejs:20"},
            {"key": "whisk-managed", "value": {"projectName": "demo"}},
        ]});
        assert_eq!(managing_project(&entity), Some("demo"));
        assert_eq!(managing_project(&json!({"annotations": []})), None);
    }
}
