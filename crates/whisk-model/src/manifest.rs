//! The runtime manifest: which kinds exist, which is each family's default, which images run
//! them (REFERENCE §2, §7.2; same schema as OpenWhisk's `runtimes.json`).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::exec::{BLACKBOX_KIND, ExecError, SEQUENCE_KIND};

/// The manifest whisk-rs ships, embedded at build time.
const BUILTIN_MANIFEST: &str = include_str!("../runtimes.json");

/// Tag used when an image reference does not name one (Docker's convention).
pub const DEFAULT_IMAGE_TAG: &str = "latest";

/// Suffix that asks for a family's default kind, as in `nodejs:default`.
const DEFAULT_KIND_SUFFIX: &str = ":default";

/// Why a manifest document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("runtime manifest is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("runtime family '{family}' has no kinds")]
    EmptyFamily { family: String },
    #[error("runtime family '{family}' must have exactly one default kind, found {found}")]
    DefaultCount { family: String, found: usize },
    #[error("runtime kind '{kind}' is listed more than once")]
    DuplicateKind { kind: String },
    #[error("stem cell memory '{memory}' of kind '{kind}' is not a size like '256 MB'")]
    StemCellMemory { kind: String, memory: String },
}

/// A container image reference split the way OpenWhisk does: `[registry/][prefix/]name[:tag]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

fn is_image_component(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

fn is_image_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_registry_host(segment: &str) -> bool {
    let (host, port) = match segment.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (segment, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    port_ok && is_image_component(&host.to_ascii_lowercase())
}

impl ImageName {
    /// Parses a Docker reference such as `openwhisk/dockerskeleton:nightly`,
    /// `docker.io/me/img` or `localhost:5000/tools/img:1`. A leading segment is taken as a
    /// registry when it looks like a host (contains `.` or `:`, or is `localhost`), as Docker does.
    pub fn parse(reference: &str) -> Result<ImageName, ExecError> {
        let invalid = || ExecError::InvalidImage {
            image: reference.to_string(),
        };
        let mut segments: Vec<&str> = reference.split('/').collect();
        let last = segments.pop().ok_or_else(invalid)?;
        let (name, tag) = match last.split_once(':') {
            Some((name, tag)) => (name, Some(tag)),
            None => (last, None),
        };
        if !is_image_component(name) || tag.is_some_and(|t| !is_image_tag(t)) {
            return Err(invalid());
        }
        let registry = match segments.first() {
            Some(first) if first.contains('.') || first.contains(':') || *first == "localhost" => {
                if !is_registry_host(first) {
                    return Err(invalid());
                }
                let host = (*first).to_string();
                segments.remove(0);
                Some(host)
            }
            _ => None,
        };
        if !segments.iter().all(|s| is_image_component(s)) {
            return Err(invalid());
        }
        let prefix = if segments.is_empty() {
            None
        } else {
            Some(segments.join("/"))
        };
        Ok(ImageName {
            registry,
            prefix,
            name: name.to_string(),
            tag: tag.map(str::to_string),
        })
    }

    /// `[registry/][prefix/]name:tag`, with `latest` when no tag was given.
    pub fn resolved(&self) -> String {
        let mut text = String::new();
        for part in [&self.registry, &self.prefix].into_iter().flatten() {
            if !part.is_empty() {
                text.push_str(part);
                text.push('/');
            }
        }
        text.push_str(&self.name);
        text.push(':');
        text.push_str(
            self.tag
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or(DEFAULT_IMAGE_TAG),
        );
        text
    }

    /// Same image ignoring registry and tag; used to recognise native blackbox images.
    fn same_repository(&self, other: &ImageName) -> bool {
        self.prefix == other.prefix && self.name == other.name
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resolved())
    }
}

/// How a kind's code is stored (the manifest's `attached` block); whisk-rs keeps it for
/// schema fidelity and to report `attached` in `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentSpec {
    pub attachment_name: String,
    pub attachment_type: String,
}

/// Growth rules for a stem cell pool that reacts to demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactiveStemCells {
    pub min_count: u32,
    pub max_count: u32,
    /// A duration string such as `"2 minutes"`; see [`parse_duration_ms`].
    pub ttl: String,
    pub threshold: u32,
    pub increment: u32,
}

/// Prewarmed containers to keep for a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StemCell {
    pub initial_count: u32,
    /// A size string such as `"256 MB"`; see [`StemCell::memory_mb`].
    pub memory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactive: Option<ReactiveStemCells>,
}

impl StemCell {
    /// The stem cell's memory in MB, or `None` if the size string is not understood.
    pub fn memory_mb(&self) -> Option<u64> {
        parse_size_mb(&self.memory)
    }
}

/// Parses `"<n> <unit>"` sizes (`B`, `KB`, `MB`, `GB`, case-insensitive) into whole MB.
pub fn parse_size_mb(text: &str) -> Option<u64> {
    let (number, unit) = split_quantity(text)?;
    let bytes = match unit.to_ascii_uppercase().as_str() {
        "B" => number,
        "K" | "KB" => number.checked_mul(1024)?,
        "M" | "MB" => number.checked_mul(1024 * 1024)?,
        "G" | "GB" => number.checked_mul(1024 * 1024 * 1024)?,
        _ => return None,
    };
    Some(bytes / (1024 * 1024))
}

/// Parses `"<n> <unit>"` durations (`ms`, `seconds`, `minutes`, `hours`, singular or plural)
/// into milliseconds, as used by the manifest's reactive stem cell `ttl`.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let (number, unit) = split_quantity(text)?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn split_quantity(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number = text.get(..digits_end)?.parse().ok()?;
    Some((number, text.get(digits_end..)?.trim()))
}

/// One kind of a runtime family as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeKind {
    pub kind: String,
    #[serde(default)]
    pub default: bool,
    pub image: ImageName,
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<AttachmentSpec>,
    #[serde(default)]
    pub require_main: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stem_cells: Vec<StemCell>,
}

/// All kinds of one language, in manifest order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFamily {
    pub name: String,
    pub kinds: Vec<RuntimeKind>,
}

/// What a kind named in an action PUT resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKind {
    /// The concrete kind that gets stored (never `<family>:default`).
    pub kind: String,
    pub family: String,
    pub require_main: bool,
    pub deprecated: bool,
    pub image: ImageName,
}

/// The parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeManifest {
    families: Vec<RuntimeFamily>,
    blackboxes: Vec<ImageName>,
}

#[derive(Deserialize)]
struct ManifestDocument {
    runtimes: Map<String, Value>,
    #[serde(default)]
    blackboxes: Vec<ImageName>,
}

impl RuntimeManifest {
    /// The manifest whisk-rs ships (`crates/whisk-model/runtimes.json`).
    pub fn builtin() -> Result<RuntimeManifest, ManifestError> {
        RuntimeManifest::parse(BUILTIN_MANIFEST)
    }

    /// Parses a manifest in the `runtimes.json` schema and checks that every family has exactly
    /// one default, kinds are unique and stem cell sizes are readable.
    pub fn parse(text: &str) -> Result<RuntimeManifest, ManifestError> {
        let document: ManifestDocument =
            serde_json::from_str(text).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let mut families = Vec::with_capacity(document.runtimes.len());
        let mut seen_kinds: Vec<String> = Vec::new();
        for (family_name, kinds) in document.runtimes {
            let kinds: Vec<RuntimeKind> = serde_json::from_value(kinds)
                .map_err(|e| ManifestError::Malformed(format!("family '{family_name}': {e}")))?;
            if kinds.is_empty() {
                return Err(ManifestError::EmptyFamily {
                    family: family_name,
                });
            }
            let defaults = kinds.iter().filter(|k| k.default).count();
            if defaults != 1 {
                return Err(ManifestError::DefaultCount {
                    family: family_name,
                    found: defaults,
                });
            }
            for kind in &kinds {
                if seen_kinds.contains(&kind.kind) {
                    return Err(ManifestError::DuplicateKind {
                        kind: kind.kind.clone(),
                    });
                }
                seen_kinds.push(kind.kind.clone());
                if let Some(cell) = kind.stem_cells.iter().find(|c| c.memory_mb().is_none()) {
                    return Err(ManifestError::StemCellMemory {
                        kind: kind.kind.clone(),
                        memory: cell.memory.clone(),
                    });
                }
            }
            families.push(RuntimeFamily {
                name: family_name,
                kinds,
            });
        }
        Ok(RuntimeManifest {
            families,
            blackboxes: document.blackboxes,
        })
    }

    pub fn families(&self) -> &[RuntimeFamily] {
        &self.families
    }

    /// Images that run as native blackboxes (never pulled).
    pub fn blackboxes(&self) -> &[ImageName] {
        &self.blackboxes
    }

    /// The manifest entry of a concrete kind (exact match, e.g. `nodejs:20`).
    pub fn kind(&self, kind: &str) -> Option<&RuntimeKind> {
        self.families
            .iter()
            .flat_map(|f| f.kinds.iter())
            .find(|k| k.kind == kind)
    }

    /// The default kind of a family, e.g. `nodejs` → `nodejs:20`.
    pub fn default_kind(&self, family: &str) -> Option<&RuntimeKind> {
        self.families
            .iter()
            .find(|f| f.name == family)
            .and_then(|f| f.kinds.iter().find(|k| k.default))
    }

    /// Every kind a PUT may name, sorted: the manifest kinds plus `blackbox` and `sequence`.
    /// This is the list quoted by the unknown-kind message.
    pub fn valid_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .families
            .iter()
            .flat_map(|f| f.kinds.iter().map(|k| k.kind.clone()))
            .chain([BLACKBOX_KIND.to_string(), SEQUENCE_KIND.to_string()])
            .collect();
        kinds.sort();
        kinds
    }

    /// Resolves a kind as written by a client (trimmed, lower-cased, `<family>:default` mapped
    /// to the family default) without judging deprecation. Unknown kinds get OpenWhisk's message.
    pub fn lookup_kind(&self, requested: &str) -> Result<ResolvedKind, ExecError> {
        let normalized = requested.trim().to_lowercase();
        let found = self.families.iter().find_map(|family| {
            let entry = match normalized.strip_suffix(DEFAULT_KIND_SUFFIX) {
                Some(family_name) if family_name == family.name => {
                    family.kinds.iter().find(|k| k.default)
                }
                _ => family.kinds.iter().find(|k| k.kind == normalized),
            };
            entry.map(|entry| (family, entry))
        });
        match found {
            Some((family, entry)) => Ok(ResolvedKind {
                kind: entry.kind.clone(),
                family: family.name.clone(),
                require_main: entry.require_main,
                deprecated: entry.deprecated,
                image: entry.image.clone(),
            }),
            None => Err(ExecError::InvalidRuntime {
                kind: normalized,
                valid: self.valid_kinds(),
            }),
        }
    }

    /// [`RuntimeManifest::lookup_kind`] that also refuses deprecated kinds, for PUT and invoke.
    pub fn resolve_kind(&self, requested: &str) -> Result<ResolvedKind, ExecError> {
        let resolved = self.lookup_kind(requested)?;
        if resolved.deprecated {
            return Err(ExecError::RuntimeDeprecated {
                kind: resolved.kind,
            });
        }
        Ok(resolved)
    }

    /// True when the manifest says actions of `kind` must name their entry point.
    pub fn requires_main(&self, kind: &str) -> bool {
        self.kind(kind).is_some_and(|k| k.require_main)
    }

    /// True when `kind` is in the manifest and marked deprecated.
    pub fn is_deprecated(&self, kind: &str) -> bool {
        self.kind(kind).is_some_and(|k| k.deprecated)
    }

    /// True when a blackbox image is one of the manifest's native images (matched on prefix and
    /// name; registry and tag are ignored because whisk-rs never pulls them anyway).
    pub fn is_native_blackbox(&self, image: &ImageName) -> bool {
        self.blackboxes.iter().any(|b| b.same_repository(image))
    }

    /// The `runtimes` block of `GET /` (§2): family → `[{kind, image, deprecated, default,
    /// attached, requireMain}]`.
    pub fn info_json(&self) -> Value {
        let families = self.families.iter().map(|family| {
            let kinds = family
                .kinds
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "kind": k.kind,
                        "image": k.image.resolved(),
                        "deprecated": k.deprecated,
                        "default": k.default,
                        "attached": k.attached.is_some(),
                        "requireMain": k.require_main,
                    })
                })
                .collect();
            (family.name.clone(), Value::Array(kinds))
        });
        Value::Object(families.collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn builtin() -> RuntimeManifest {
        RuntimeManifest::builtin().unwrap()
    }

    #[test]
    fn builtin_manifest_has_the_promised_defaults() {
        let manifest = builtin();
        assert_eq!(manifest.default_kind("nodejs").unwrap().kind, "nodejs:20");
        assert_eq!(manifest.default_kind("python").unwrap().kind, "python:3.11");
        assert_eq!(manifest.default_kind("java").unwrap().kind, "java:8");
        assert_eq!(manifest.default_kind("go").unwrap().kind, "go:1.20");
        assert_eq!(manifest.default_kind("wasm").unwrap().kind, "wasm:wasi");
        assert!(manifest.kind("wasm:wasi").unwrap().attached.is_some());
        assert!(manifest.requires_main("java:8"));
        assert!(!manifest.requires_main("nodejs:20"));
        assert_eq!(
            manifest.blackboxes()[0].resolved(),
            "openwhisk/dockerskeleton:nightly"
        );
    }

    #[test]
    fn builtin_manifest_prewarms_one_node_one_python_and_one_java_container() {
        let manifest = builtin();
        let mut prewarmed = Vec::new();
        for family in manifest.families() {
            for kind in &family.kinds {
                for cell in &kind.stem_cells {
                    prewarmed.push((kind.kind.as_str(), cell.initial_count, cell.memory_mb()));
                }
            }
        }
        assert_eq!(
            prewarmed,
            [
                ("nodejs:20", 1, Some(256)),
                ("python:3.11", 1, Some(256)),
                ("java:8", 1, Some(256))
            ]
        );
    }

    #[test]
    fn kinds_are_trimmed_lowercased_and_defaults_resolved() {
        let manifest = builtin();
        assert_eq!(
            manifest.lookup_kind(" NodeJS:20 ").unwrap().kind,
            "nodejs:20"
        );
        let resolved = manifest.resolve_kind("python:default").unwrap();
        assert_eq!(resolved.kind, "python:3.11");
        assert_eq!(resolved.family, "python");
        assert!(manifest.resolve_kind("java:default").unwrap().require_main);
    }

    #[test]
    fn unknown_kinds_list_every_valid_value() {
        let error = builtin().lookup_kind("Foo").unwrap_err();
        assert_eq!(
            error.to_string(),
            "The specified runtime 'foo' is not supported by this platform. Valid values are: 'blackbox', 'go:1.20', 'java:8', 'nodejs:20', 'python:3.11', 'sequence', 'wasm:wasi'."
        );
        assert!(builtin().lookup_kind("ruby:default").is_err());
        assert!(builtin().lookup_kind("").is_err());
    }

    const WITH_DEPRECATED: &str = r#"{"runtimes":{"nodejs":[
        {"kind":"nodejs:14","default":false,"deprecated":true,"image":{"prefix":"p","name":"n14","tag":"t"}},
        {"kind":"nodejs:20","default":true,"image":{"name":"n20"}}]}}"#;

    #[test]
    fn deprecated_kinds_resolve_only_for_lookup() {
        let manifest = RuntimeManifest::parse(WITH_DEPRECATED).unwrap();
        assert!(manifest.lookup_kind("nodejs:14").unwrap().deprecated);
        assert!(manifest.is_deprecated("nodejs:14"));
        assert_eq!(
            manifest.resolve_kind("nodejs:14").unwrap_err().to_string(),
            "The 'nodejs:14' runtime is no longer supported. You may read and delete but not update or invoke this action."
        );
        assert_eq!(
            manifest.resolve_kind("nodejs:default").unwrap().kind,
            "nodejs:20"
        );
    }

    #[test]
    fn manifests_must_have_one_default_per_family_and_unique_kinds() {
        let no_default = r#"{"runtimes":{"x":[{"kind":"x:1","image":{"name":"x"}}]}}"#;
        assert_eq!(
            RuntimeManifest::parse(no_default),
            Err(ManifestError::DefaultCount {
                family: "x".to_string(),
                found: 0
            })
        );
        let duplicate = r#"{"runtimes":{
            "x":[{"kind":"k:1","default":true,"image":{"name":"x"}}],
            "y":[{"kind":"k:1","default":true,"image":{"name":"y"}}]}}"#;
        assert!(matches!(
            RuntimeManifest::parse(duplicate),
            Err(ManifestError::DuplicateKind { .. })
        ));
        let bad_memory = r#"{"runtimes":{"x":[{"kind":"x:1","default":true,"image":{"name":"x"},
            "stemCells":[{"initialCount":1,"memory":"lots"}]}]}}"#;
        assert!(matches!(
            RuntimeManifest::parse(bad_memory),
            Err(ManifestError::StemCellMemory { .. })
        ));
        assert!(matches!(
            RuntimeManifest::parse("[]"),
            Err(ManifestError::Malformed(_))
        ));
    }

    #[test]
    fn openwhisks_own_manifest_schema_parses() {
        let upstream_shaped = r#"{"description":["x"],"runtimes":{"nodejs":[{"kind":"nodejs:20","default":true,
            "image":{"prefix":"openwhisk","name":"action-nodejs-v20","tag":"nightly"},"deprecated":false,
            "attached":{"attachmentName":"codefile","attachmentType":"text/plain"},
            "stemCells":[{"initialCount":2,"memory":"256 MB","reactive":{"minCount":1,"maxCount":4,
            "ttl":"2 minutes","threshold":1,"increment":1}}]}]},
            "blackboxes":[{"prefix":"openwhisk","name":"dockerskeleton","tag":"nightly"}]}"#;
        let manifest = RuntimeManifest::parse(upstream_shaped).unwrap();
        let kind = manifest.kind("nodejs:20").unwrap();
        assert_eq!(kind.stem_cells[0].memory_mb(), Some(256));
        let reactive = kind.stem_cells[0].reactive.as_ref().unwrap();
        assert_eq!(parse_duration_ms(&reactive.ttl), Some(120_000));
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size_mb("512 MB"), Some(512));
        assert_eq!(parse_size_mb("1 GB"), Some(1024));
        assert_eq!(parse_size_mb("256m"), Some(256));
        assert_eq!(parse_size_mb("MB"), None);
        assert_eq!(parse_duration_ms("30 seconds"), Some(30_000));
        assert_eq!(parse_duration_ms("1 hour"), Some(3_600_000));
        assert_eq!(parse_duration_ms("5 fortnights"), None);
    }

    #[test]
    fn image_references_parse_and_resolve() {
        let cases = [
            (
                "openwhisk/dockerskeleton:nightly",
                "openwhisk/dockerskeleton:nightly",
            ),
            ("openwhisk/example", "openwhisk/example:latest"),
            ("busybox", "busybox:latest"),
            ("docker.io/me/img:1.0", "docker.io/me/img:1.0"),
            (
                "localhost:5000/tools/x/img",
                "localhost:5000/tools/x/img:latest",
            ),
        ];
        for (input, resolved) in cases {
            assert_eq!(
                ImageName::parse(input).unwrap().resolved(),
                resolved,
                "{input}"
            );
        }
        for bad in ["", "Upper/img", "img:", "a//b", "img:bad tag"] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} should be invalid");
        }
        let parsed = ImageName::parse("docker.io/openwhisk/dockerskeleton:latest").unwrap();
        assert!(builtin().is_native_blackbox(&parsed));
        assert!(!builtin().is_native_blackbox(&ImageName::parse("me/other").unwrap()));
    }

    #[test]
    fn info_json_reports_each_kind() {
        let info = builtin().info_json();
        assert_eq!(
            info["java"][0],
            serde_json::json!({"kind":"java:8","image":"openwhisk/java8action:nightly",
                "deprecated":false,"default":true,"attached":true,"requireMain":true})
        );
    }
}
