//! What an action runs: managed-runtime code, a blackbox image, or a sequence (REFERENCE §7.2).
//!
//! [`ExecInput`] is the loosely typed PUT form, kept as raw JSON so that every mistake gets
//! OpenWhisk's own message; [`ExecInput::resolve`] turns it into the stored [`Exec`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::error::{ErrorClass, messages};
use crate::manifest::{ImageName, RuntimeManifest};
use crate::names::{EntityName, FullyQualifiedEntityName, NameError, fqn_object};

/// The `kind` of sequence actions.
pub const SEQUENCE_KIND: &str = "sequence";
/// The `kind` of actions that run a user-supplied image.
pub const BLACKBOX_KIND: &str = "blackbox";

/// Why an `exec` could not be accepted. `Display` strings are OpenWhisk's exact messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{}", messages::KIND_NOT_A_STRING)]
    KindNotAString,
    #[error("{}", messages::invalid_runtime(kind, valid))]
    InvalidRuntime { kind: String, valid: Vec<String> },
    #[error("{}", messages::runtime_deprecated(kind))]
    RuntimeDeprecated { kind: String },
    #[error("{}", messages::code_missing(kind))]
    CodeMissing { kind: String },
    #[error("{}", messages::code_not_a_string(kind))]
    CodeNotAString { kind: String },
    #[error("{}", messages::main_required(kind))]
    MainRequired { kind: String },
    #[error("{}", messages::main_not_a_string(kind))]
    MainNotAString { kind: String },
    #[error("{}", messages::IMAGE_MISSING)]
    ImageMissing,
    #[error("image name '{image}' is not a valid container image reference")]
    InvalidImage { image: String },
    #[error("{}", messages::COMPONENTS_MISSING)]
    ComponentsMissing,
    #[error("{}", messages::COMPONENTS_NOT_AN_ARRAY)]
    ComponentsNotAnArray,
    /// A component that is neither a name string nor a `{path, name}` object.
    #[error("fully qualified name malformed")]
    ComponentMalformed,
    #[error(transparent)]
    Component(#[from] NameError),
    #[error("{}", messages::SEQUENCE_NO_COMPONENT)]
    SequenceEmpty,
    #[error("{}", messages::EXEC_UNDEFINED)]
    Undefined,
}

impl ExecError {
    /// Shape errors are what OpenWhisk's body parser reports (malformed content); missing exec,
    /// deprecated kinds and empty sequences are rule violations found afterwards.
    pub fn class(&self) -> ErrorClass {
        match self {
            ExecError::RuntimeDeprecated { .. }
            | ExecError::SequenceEmpty
            | ExecError::Undefined => ErrorClass::BadRequest,
            _ => ErrorClass::MalformedContent,
        }
    }
}

/// OpenWhisk's test for "this code string is base64": after trimming, non-empty, a multiple of
/// four long, and strict base64 with at most two `=` of padding at the very end.
pub fn is_binary_code(code: &str) -> bool {
    // Java's String.trim strips every char up to U+0020, not Unicode whitespace.
    let trimmed = code.trim_matches(|c: char| c <= ' ');
    let bytes = trimmed.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return false;
    }
    let is_alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    let (body, tail) = bytes.split_at(bytes.len() - 2);
    body.iter().all(is_alphabet)
        && match tail {
            [a, b] => {
                (is_alphabet(a) && (is_alphabet(b) || *b == b'=')) || (*a == b'=' && *b == b'=')
            }
            _ => false,
        }
}

/// The stored and returned form of what an action runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exec {
    /// Code for a manifest kind such as `nodejs:20`. `binary` means `code` is base64 (a zip or
    /// an executable), decided from the code itself.
    Code {
        kind: String,
        code: String,
        main: Option<String>,
        binary: bool,
    },
    /// A container image, optionally with code to inject. `image` is the resolved reference
    /// (`prefix/name:tag`).
    Blackbox {
        image: String,
        code: Option<String>,
        main: Option<String>,
        binary: bool,
    },
    /// Actions invoked one after the other, stored fully qualified.
    Sequence {
        components: Vec<FullyQualifiedEntityName>,
    },
}

impl Exec {
    /// The kind as stored and as reported in the `exec` annotation.
    pub fn kind(&self) -> &str {
        match self {
            Exec::Code { kind, .. } => kind,
            Exec::Blackbox { .. } => BLACKBOX_KIND,
            Exec::Sequence { .. } => SEQUENCE_KIND,
        }
    }

    pub fn binary(&self) -> bool {
        match self {
            Exec::Code { binary, .. } | Exec::Blackbox { binary, .. } => *binary,
            Exec::Sequence { .. } => false,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Exec::Code { code, .. } => Some(code),
            Exec::Blackbox { code, .. } => code.as_deref(),
            Exec::Sequence { .. } => None,
        }
    }

    pub fn main(&self) -> Option<&str> {
        match self {
            Exec::Code { main, .. } | Exec::Blackbox { main, .. } => main.as_deref(),
            Exec::Sequence { .. } => None,
        }
    }

    pub fn is_sequence(&self) -> bool {
        matches!(self, Exec::Sequence { .. })
    }

    /// The sequence's components, or an empty slice for other kinds.
    pub fn components(&self) -> &[FullyQualifiedEntityName] {
        match self {
            Exec::Sequence { components } => components,
            _ => &[],
        }
    }

    /// Bytes counted against the 48 MB exec limit: code + main + image, or for a sequence the
    /// bytes of its component names.
    pub fn size_bytes(&self) -> u64 {
        let bytes = match self {
            Exec::Code { code, main, .. } => code.len() + main.as_ref().map_or(0, String::len),
            Exec::Blackbox {
                image, code, main, ..
            } => {
                image.len()
                    + code.as_ref().map_or(0, String::len)
                    + main.as_ref().map_or(0, String::len)
            }
            Exec::Sequence { components } => components
                .iter()
                .map(FullyQualifiedEntityName::size_bytes)
                .sum(),
        };
        bytes as u64
    }

    /// Replaces a `_` namespace in sequence components with the caller's namespace.
    pub fn resolve_namespace(self, caller_namespace: &EntityName) -> Exec {
        match self {
            Exec::Sequence { components } => Exec::Sequence {
                components: components
                    .iter()
                    .map(|c| c.resolve_namespace(caller_namespace))
                    .collect(),
            },
            other => other,
        }
    }

    /// The JSON of `exec`; `include_code = false` is the `?code=false` form, which drops
    /// `code` but keeps everything else.
    pub fn to_json(&self, include_code: bool) -> Value {
        let mut object = Map::new();
        object.insert("kind".into(), json!(self.kind()));
        match self {
            Exec::Code {
                code, main, binary, ..
            } => {
                if include_code {
                    object.insert("code".into(), json!(code));
                }
                object.insert("binary".into(), json!(binary));
                if let Some(main) = main {
                    object.insert("main".into(), json!(main));
                }
            }
            Exec::Blackbox {
                image,
                code,
                main,
                binary,
            } => {
                object.insert("image".into(), json!(image));
                object.insert("binary".into(), json!(binary));
                if include_code && let Some(code) = code {
                    object.insert("code".into(), json!(code));
                }
                if let Some(main) = main {
                    object.insert("main".into(), json!(main));
                }
            }
            Exec::Sequence { components } => {
                let names: Vec<String> = components.iter().map(ToString::to_string).collect();
                object.insert("components".into(), json!(names));
            }
        }
        Value::Object(object)
    }

    /// The `exec` of an action list entry: only `{"binary": bool}`.
    pub fn to_summary_json(&self) -> Value {
        json!({ "binary": self.binary() })
    }
}

impl Serialize for Exec {
    /// The full form, with code.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json(true).serialize(serializer)
    }
}

/// The stored form read back without a manifest: the kind was validated when it was written,
/// and an action whose kind later disappears must stay readable and deletable.
#[derive(Deserialize)]
struct StoredExec {
    kind: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    main: Option<String>,
    #[serde(default)]
    binary: Option<bool>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    components: Option<Vec<FullyQualifiedEntityName>>,
}

impl<'de> Deserialize<'de> for Exec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Exec, D::Error> {
        let stored = StoredExec::deserialize(deserializer)?;
        match stored.kind.as_str() {
            SEQUENCE_KIND => Ok(Exec::Sequence {
                components: stored
                    .components
                    .ok_or_else(|| serde::de::Error::custom(messages::COMPONENTS_MISSING))?,
            }),
            BLACKBOX_KIND => {
                let binary = stored
                    .binary
                    .unwrap_or_else(|| stored.code.as_deref().is_some_and(is_binary_code));
                Ok(Exec::Blackbox {
                    image: stored
                        .image
                        .ok_or_else(|| serde::de::Error::custom(messages::IMAGE_MISSING))?,
                    code: stored.code,
                    main: stored.main,
                    binary,
                })
            }
            _ => {
                let code = stored.code.ok_or_else(|| {
                    serde::de::Error::custom(messages::code_missing(&stored.kind))
                })?;
                let binary = stored.binary.unwrap_or_else(|| is_binary_code(&code));
                Ok(Exec::Code {
                    kind: stored.kind,
                    code,
                    main: stored.main,
                    binary,
                })
            }
        }
    }
}

/// The `exec` object of an action PUT, fields kept as raw JSON so that type mistakes are
/// reported with OpenWhisk's messages by [`ExecInput::resolve`]. Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
    /// Legacy name of `code` for Java actions; used when `code` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jar: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Value>,
    /// Ignored for string code (binary is inferred); kept so the input round-trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<Value>,
}

impl ExecInput {
    /// `{"kind": kind, "code": code}`.
    pub fn code(kind: &str, code: &str) -> ExecInput {
        ExecInput {
            kind: Some(json!(kind)),
            code: Some(json!(code)),
            ..ExecInput::default()
        }
    }

    /// `{"kind": "blackbox", "image": image}`.
    pub fn blackbox(image: &str) -> ExecInput {
        ExecInput {
            kind: Some(json!(BLACKBOX_KIND)),
            image: Some(json!(image)),
            ..ExecInput::default()
        }
    }

    /// `{"kind": "sequence", "components": [...]}`.
    pub fn sequence<S: AsRef<str>>(components: &[S]) -> ExecInput {
        let names: Vec<&str> = components.iter().map(AsRef::as_ref).collect();
        ExecInput {
            kind: Some(json!(SEQUENCE_KIND)),
            components: Some(json!(names)),
            ..ExecInput::default()
        }
    }

    /// This input with `main` set.
    pub fn with_main(mut self, main: &str) -> ExecInput {
        self.main = Some(json!(main));
        self
    }

    /// Bytes the resolved exec will count against the 48 MB limit (code or jar, main and image
    /// as given), so the controller can answer 413 before doing any other work.
    pub fn size_bytes(&self) -> u64 {
        let text_len =
            |value: &Option<Value>| value.as_ref().and_then(Value::as_str).map_or(0, str::len);
        let code_len = if self.code.is_some() {
            text_len(&self.code)
        } else {
            text_len(&self.jar)
        };
        (code_len + text_len(&self.main) + text_len(&self.image)) as u64
    }

    /// The requested kind after OpenWhisk's normalisation (trimmed, lower-cased), if it is a string.
    pub fn normalized_kind(&self) -> Option<String> {
        self.kind
            .as_ref()
            .and_then(Value::as_str)
            .map(|k| k.trim().to_lowercase())
    }

    /// Applies §7.2: resolves the kind against the manifest (`<family>:default` becomes the
    /// concrete kind), requires code / image / components as the kind demands, requires `main`
    /// where the manifest says so, infers `binary` from string code, and finally refuses
    /// deprecated kinds. Sequence components keep any `_` namespace; see
    /// [`Exec::resolve_namespace`].
    pub fn resolve(self, manifest: &RuntimeManifest) -> Result<Exec, ExecError> {
        let kind = self.normalized_kind().ok_or(ExecError::KindNotAString)?;
        match kind.as_str() {
            SEQUENCE_KIND => {
                let components = match self.components {
                    None => return Err(ExecError::ComponentsMissing),
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .map(parse_component)
                        .collect::<Result<Vec<_>, _>>()?,
                    Some(_) => return Err(ExecError::ComponentsNotAnArray),
                };
                if components.is_empty() {
                    return Err(ExecError::SequenceEmpty);
                }
                Ok(Exec::Sequence { components })
            }
            BLACKBOX_KIND => {
                let image = match self.image {
                    Some(Value::String(image)) => ImageName::parse(&image)?.resolved(),
                    _ => return Err(ExecError::ImageMissing),
                };
                let main = optional_main(self.main, &kind)?;
                let code = match self.code {
                    None | Some(Value::Null) => None,
                    Some(Value::String(code)) if code.trim().is_empty() => None,
                    Some(Value::String(code)) => Some(code),
                    Some(_) => return Err(ExecError::CodeNotAString { kind }),
                };
                let binary = code.as_deref().is_some_and(is_binary_code);
                Ok(Exec::Blackbox {
                    image,
                    code,
                    main,
                    binary,
                })
            }
            _ => {
                let resolved = manifest.lookup_kind(&kind)?;
                let code = match self.code.or(self.jar) {
                    None => return Err(ExecError::CodeMissing { kind }),
                    Some(Value::String(code)) => code,
                    Some(_) => return Err(ExecError::CodeNotAString { kind }),
                };
                let main = match optional_main(self.main, &kind)? {
                    None if resolved.require_main => return Err(ExecError::MainRequired { kind }),
                    main => main,
                };
                if resolved.deprecated {
                    return Err(ExecError::RuntimeDeprecated {
                        kind: resolved.kind,
                    });
                }
                let binary = is_binary_code(&code);
                Ok(Exec::Code {
                    kind: resolved.kind,
                    code,
                    main,
                    binary,
                })
            }
        }
    }
}

fn optional_main(main: Option<Value>, kind: &str) -> Result<Option<String>, ExecError> {
    match main {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(main)) => Ok(Some(main)),
        Some(_) => Err(ExecError::MainNotAString {
            kind: kind.to_string(),
        }),
    }
}

/// A sequence component: a `/ns/[pkg/]name` string (≥ 2 segments) or a `{path, name}` object.
fn parse_component(value: Value) -> Result<FullyQualifiedEntityName, ExecError> {
    #[derive(Deserialize)]
    struct Component(#[serde(with = "fqn_object")] FullyQualifiedEntityName);

    match value {
        Value::String(text) => Ok(FullyQualifiedEntityName::parse(&text)?),
        object @ Value::Object(_) => serde_json::from_value::<Component>(object)
            .map(|Component(fqn)| fqn)
            .map_err(|_| ExecError::ComponentMalformed),
        _ => Err(ExecError::ComponentMalformed),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn manifest() -> RuntimeManifest {
        RuntimeManifest::builtin().unwrap()
    }

    fn resolve(input: Value) -> Result<Exec, ExecError> {
        serde_json::from_value::<ExecInput>(input)
            .unwrap()
            .resolve(&manifest())
    }

    #[test]
    fn base64_detection_is_strict() {
        for binary in ["UEsDBA==", "UEsDBAo=", "UEsDBAoA", "  UEsDBA==\n", "ab+/"] {
            assert!(is_binary_code(binary), "{binary:?} should be binary");
        }
        for text in [
            "",
            "   ",
            "abc",
            "abcde",
            "ab=c",
            "a===",
            "ab c",
            "function main(p){return p}",
            "UEsDBA=A",
            "abc-",
        ] {
            assert!(!is_binary_code(text), "{text:?} should not be binary");
        }
    }

    #[test]
    fn code_kinds_resolve_defaults_and_infer_binary() {
        let exec =
            resolve(json!({"kind":" NodeJS:Default ","code":"function main(){}","binary":true}))
                .unwrap();
        assert_eq!(
            exec,
            Exec::Code {
                kind: "nodejs:20".into(),
                code: "function main(){}".into(),
                main: None,
                binary: false,
            }
        );
        let zipped =
            resolve(json!({"kind":"python:3.11","code":"UEsDBA==","binary":false})).unwrap();
        assert!(zipped.binary());
    }

    #[test]
    fn java_needs_main_and_accepts_jar() {
        assert_eq!(
            resolve(json!({"kind":"java:8","code":"UEsDBA=="}))
                .unwrap_err()
                .to_string(),
            "'main' must be a string defined in 'exec' for 'java:8' actions"
        );
        let exec = resolve(json!({"kind":"java:default","jar":"UEsDBA==","main":"Hello"})).unwrap();
        assert_eq!(exec.main(), Some("Hello"));
        assert_eq!(exec.kind(), "java:8");
    }

    #[test]
    fn shape_errors_use_openwhisk_messages() {
        let cases = [
            (
                json!({"code":"x"}),
                "'kind' must be a string defined in 'exec'",
            ),
            (
                json!({"kind":5,"code":"x"}),
                "'kind' must be a string defined in 'exec'",
            ),
            (
                json!({"kind":"nodejs:20"}),
                "'code' must be a string or attachment object defined in 'exec' for 'nodejs:20' actions",
            ),
            (
                json!({"kind":"nodejs:20","code":7}),
                "'code' must be a string defined in 'exec' for 'nodejs:20' actions",
            ),
            (
                json!({"kind":"nodejs:20","code":"x","main":1}),
                "if defined, 'main' be a string in 'exec' for 'nodejs:20' actions",
            ),
            (
                json!({"kind":"blackbox"}),
                "'image' must be a string defined in 'exec' for 'blackbox' actions",
            ),
            (
                json!({"kind":"sequence"}),
                "'components' must be defined for sequence kind",
            ),
            (
                json!({"kind":"sequence","components":"/a/b"}),
                "'components' must be an array",
            ),
            (
                json!({"kind":"sequence","components":["/a"]}),
                "requirement failed: The fully qualified name of the entity must contain at least the namespace and the name of the entity.",
            ),
        ];
        for (input, message) in cases {
            let error = resolve(input.clone()).unwrap_err();
            assert_eq!(error.to_string(), message, "for {input}");
            assert_eq!(error.class(), ErrorClass::MalformedContent, "for {input}");
        }
    }

    #[test]
    fn unknown_kind_lists_valid_values() {
        let error = resolve(json!({"kind":"cobol:1","code":"x"})).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("The specified runtime 'cobol:1' is not supported by this platform. Valid values are: 'blackbox',")
        );
    }

    #[test]
    fn empty_sequences_are_a_bad_request() {
        let error = resolve(json!({"kind":"sequence","components":[]})).unwrap_err();
        assert_eq!(error, ExecError::SequenceEmpty);
        assert_eq!(
            error.to_string(),
            "No component specified for the sequence."
        );
        assert_eq!(error.class(), ErrorClass::BadRequest);
    }

    #[test]
    fn sequences_keep_components_and_resolve_the_default_namespace() {
        let exec = resolve(
            json!({"kind":"sequence","components":["/_/a","/ns/pkg/b",{"path":"ns","name":"c"}]}),
        )
        .unwrap()
        .resolve_namespace(&EntityName::new("guest").unwrap());
        assert_eq!(
            exec.to_json(true),
            json!({"kind":"sequence","components":["/guest/a","/ns/pkg/b","/ns/c"]})
        );
        assert!(!exec.binary());
        assert_eq!(
            exec.size_bytes(),
            ("guest/a".len() + "ns/pkg/b".len() + "ns/c".len()) as u64
        );
    }

    #[test]
    fn blackbox_resolves_the_image_and_optional_code() {
        let exec =
            resolve(json!({"kind":"blackbox","image":"openwhisk/example","code":"  "})).unwrap();
        assert_eq!(
            exec,
            Exec::Blackbox {
                image: "openwhisk/example:latest".into(),
                code: None,
                main: None,
                binary: false,
            }
        );
        let with_zip =
            resolve(json!({"kind":"blackbox","image":"me/img:1","code":"UEsDBA=="})).unwrap();
        assert!(with_zip.binary());
        assert!(matches!(
            resolve(json!({"kind":"blackbox","image":"Bad Image"})),
            Err(ExecError::InvalidImage { .. })
        ));
    }

    #[test]
    fn size_counts_code_main_and_image() {
        let input = ExecInput::code("nodejs:20", "12345").with_main("abc");
        assert_eq!(input.size_bytes(), 8);
        let exec = input.resolve(&manifest()).unwrap();
        assert_eq!(exec.size_bytes(), 8);
        let blackbox = ExecInput::blackbox("a/b:c").resolve(&manifest()).unwrap();
        assert_eq!(blackbox.size_bytes(), 5);
    }

    #[test]
    fn json_forms_match_the_api() {
        let exec = Exec::Code {
            kind: "java:8".into(),
            code: "UEsDBA==".into(),
            main: Some("Hello".into()),
            binary: true,
        };
        assert_eq!(
            serde_json::to_string(&exec).unwrap(),
            r#"{"kind":"java:8","code":"UEsDBA==","binary":true,"main":"Hello"}"#
        );
        assert_eq!(
            exec.to_json(false),
            json!({"kind":"java:8","binary":true,"main":"Hello"})
        );
        assert_eq!(exec.to_summary_json(), json!({"binary":true}));
    }

    #[test]
    fn stored_form_round_trips() {
        for exec in [
            Exec::Code {
                kind: "nodejs:20".into(),
                code: "x".into(),
                main: None,
                binary: false,
            },
            Exec::Blackbox {
                image: "openwhisk/dockerskeleton:nightly".into(),
                code: Some("UEsDBA==".into()),
                main: Some("main".into()),
                binary: true,
            },
            Exec::Sequence {
                components: vec![FullyQualifiedEntityName::parse("/ns/a").unwrap()],
            },
        ] {
            let text = serde_json::to_string(&exec).unwrap();
            assert_eq!(serde_json::from_str::<Exec>(&text).unwrap(), exec, "{text}");
        }
        let without_binary: Exec =
            serde_json::from_str(r#"{"kind":"nodejs:20","code":"UEsDBA=="}"#).unwrap();
        assert!(without_binary.binary());
    }

    #[test]
    fn deprecated_kinds_are_refused_after_shape_checks() {
        let manifest = RuntimeManifest::parse(
            r#"{"runtimes":{"nodejs":[
            {"kind":"nodejs:14","default":false,"deprecated":true,"image":{"name":"n14"}},
            {"kind":"nodejs:20","default":true,"image":{"name":"n20"}}]}}"#,
        )
        .unwrap();
        let missing_code = ExecInput {
            kind: Some(json!("nodejs:14")),
            ..ExecInput::default()
        };
        assert!(matches!(
            missing_code.resolve(&manifest),
            Err(ExecError::CodeMissing { .. })
        ));
        let error = ExecInput::code("nodejs:14", "x")
            .resolve(&manifest)
            .unwrap_err();
        assert_eq!(error.class(), ErrorClass::BadRequest);
        assert!(matches!(error, ExecError::RuntimeDeprecated { .. }));
    }
}
