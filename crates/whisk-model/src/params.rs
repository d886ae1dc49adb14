//! Parameters and annotations: the `[{"key":..,"value":..}]` encoding of REFERENCE §5.2.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One key/value pair, with the optional flags OpenWhisk attaches to parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub key: String,
    pub value: Value,
    /// Marks an init parameter: delivered in the `/init` environment, removed from `/run` input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// The at-rest encryption scheme of `value`, kept verbatim so a stored value can be decrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
}

impl Parameter {
    pub fn new(key: impl Into<String>, value: Value) -> Parameter {
        Parameter {
            key: key.into(),
            value,
            init: false,
            encryption: None,
        }
    }

    /// Bytes counted against the parameter size limit: the key plus the compact JSON of the value.
    pub fn size_bytes(&self) -> u64 {
        let value_bytes = serde_json::to_string(&self.value).map_or(0, |text| text.len());
        (self.key.len() + value_bytes) as u64
    }
}

/// An ordered set of parameters with unique keys.
///
/// OpenWhisk treats the list as a map (order not significant, last duplicate wins); we keep
/// the first-seen order of keys so responses are stable and easy to compare.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parameters {
    entries: Vec<Parameter>,
}

/// Annotations use exactly the same encoding and rules as parameters.
pub type Annotations = Parameters;

impl Parameters {
    pub fn new() -> Parameters {
        Parameters::default()
    }

    /// A set holding a single plain key/value pair.
    pub fn single(key: impl Into<String>, value: Value) -> Parameters {
        let mut parameters = Parameters::new();
        parameters.insert(key, value);
        parameters
    }

    /// Builds a set from a JSON object, one plain parameter per field (e.g. an invocation body).
    pub fn from_object(object: &Map<String, Value>) -> Parameters {
        object
            .iter()
            .map(|(key, value)| Parameter::new(key.clone(), value.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Parameter> {
        self.entries.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|p| p.key.as_str())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|p| p.key == key)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_parameter(key).map(|p| &p.value)
    }

    pub fn get_parameter(&self, key: &str) -> Option<&Parameter> {
        self.entries.iter().find(|p| p.key == key)
    }

    /// The value of `key` if it is a JSON string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The value of `key` if it is a JSON boolean (how `final: true` must be written).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// Sets a plain parameter, replacing any existing entry with that key in place.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.insert_parameter(Parameter::new(key, value));
    }

    /// Sets a parameter with its flags, replacing any existing entry with that key in place.
    pub fn insert_parameter(&mut self, parameter: Parameter) {
        match self.entries.iter_mut().find(|p| p.key == parameter.key) {
            Some(existing) => *existing = parameter,
            None => self.entries.push(parameter),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Parameter> {
        let index = self.entries.iter().position(|p| p.key == key)?;
        Some(self.entries.remove(index))
    }

    /// A new set with `overlay`'s entries on top of ours (overlay wins, flags included).
    pub fn merge(&self, overlay: &Parameters) -> Parameters {
        let mut merged = self.clone();
        for parameter in overlay.iter() {
            merged.insert_parameter(parameter.clone());
        }
        merged
    }

    /// Size counted against the 1 MB limit: Σ (key bytes + bytes of the value's JSON text).
    pub fn size_bytes(&self) -> u64 {
        self.entries.iter().map(Parameter::size_bytes).sum()
    }

    /// The parameters as a JSON object of key → value (the shape of invocation input).
    pub fn to_object(&self) -> Map<String, Value> {
        self.entries
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect()
    }

    /// Keys of the parameters marked `init: true`.
    pub fn init_keys(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|p| p.init)
            .map(|p| p.key.as_str())
            .collect()
    }

    /// JavaScript-style truthiness of `key`, the way OpenWhisk reads boolean-ish annotations
    /// such as `web-export`: `true`, non-zero numbers, non-empty strings, arrays and objects are
    /// true; `false`, `0`, `""`, `null` and an absent key are false.
    pub fn is_truthy(&self, key: &str) -> bool {
        self.is_truthy_or(key, false)
    }

    /// Like [`Parameters::is_truthy`] but with the answer for an absent key given by the caller
    /// (e.g. `provide-api-key` counts as true on actions created before the annotation existed).
    pub fn is_truthy_or(&self, key: &str, when_absent: bool) -> bool {
        match self.get(key) {
            None => when_absent,
            Some(Value::Bool(flag)) => *flag,
            Some(Value::Number(number)) => number.as_f64().is_some_and(|n| n != 0.0),
            Some(Value::String(text)) => !text.is_empty(),
            Some(Value::Null) => false,
            Some(Value::Array(_) | Value::Object(_)) => true,
        }
    }
}

impl FromIterator<Parameter> for Parameters {
    /// Later duplicates replace earlier ones, as in OpenWhisk.
    fn from_iter<I: IntoIterator<Item = Parameter>>(iter: I) -> Parameters {
        let mut parameters = Parameters::new();
        for parameter in iter {
            parameters.insert_parameter(parameter);
        }
        parameters
    }
}

impl<'a> IntoIterator for &'a Parameters {
    type Item = &'a Parameter;
    type IntoIter = std::slice::Iter<'a, Parameter>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl IntoIterator for Parameters {
    type Item = Parameter;
    type IntoIter = std::vec::IntoIter<Parameter>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Serialize for Parameters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Parameters, D::Error> {
        let entries = Vec::<Parameter>::deserialize(deserializer)?;
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> Parameters {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn last_duplicate_wins_and_keeps_first_position() {
        let parameters = parse(
            r#"[{"key":"a","value":1},{"key":"b","value":2},{"key":"a","value":3,"init":true}]"#,
        );
        assert_eq!(parameters.len(), 2);
        assert_eq!(parameters.get("a"), Some(&json!(3)));
        assert_eq!(parameters.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(parameters.init_keys(), vec!["a"]);
    }

    #[test]
    fn optional_fields_round_trip_and_are_omitted_when_unset() {
        let text = r#"[{"key":"plain","value":null},{"key":"secret","value":"s","init":true},{"key":"x","value":"c","encryption":"aes-128"}]"#;
        let parameters = parse(text);
        assert_eq!(serde_json::to_string(&parameters).unwrap(), text);
        assert_eq!(
            parameters.get_parameter("x").unwrap().encryption.as_deref(),
            Some("aes-128")
        );
        assert!(serde_json::from_str::<Parameters>(r#"[{"value":1}]"#).is_err());
        assert!(serde_json::from_str::<Parameters>(r#"{"key":"a"}"#).is_err());
    }

    #[test]
    fn merge_lets_the_overlay_win() {
        let base = parse(r#"[{"key":"a","value":1},{"key":"b","value":2}]"#);
        let overlay = parse(r#"[{"key":"b","value":20,"init":true},{"key":"c","value":30}]"#);
        let merged = base.merge(&overlay);
        assert_eq!(
            merged.to_object(),
            json!({"a":1,"b":20,"c":30}).as_object().unwrap().clone()
        );
        assert!(merged.get_parameter("b").unwrap().init);
        assert_eq!(base.get("b"), Some(&json!(2)), "merge must not mutate self");
    }

    #[test]
    fn size_counts_key_bytes_plus_compact_json_value() {
        let parameters = parse(r#"[{"key":"ab","value":"xyz"},{"key":"n","value":{"k": [1, 2]}}]"#);
        // "ab" (2) + "\"xyz\"" (5) + "n" (1) + "{\"k\":[1,2]}" (11)
        assert_eq!(parameters.size_bytes(), 19);
        assert_eq!(Parameters::new().size_bytes(), 0);
    }

    #[test]
    fn insert_and_remove_manage_single_entries() {
        let mut parameters = Parameters::new();
        parameters.insert("a", json!(1));
        parameters.insert("a", json!(2));
        assert_eq!(parameters.len(), 1);
        assert_eq!(parameters.remove("a").unwrap().value, json!(2));
        assert!(parameters.remove("a").is_none());
        assert!(parameters.is_empty());
    }

    #[test]
    fn truthiness_follows_javascript() {
        let parameters = parse(
            r#"[{"key":"t","value":true},{"key":"f","value":false},{"key":"one","value":1},
                {"key":"zero","value":0},{"key":"s","value":"no"},{"key":"empty","value":""},
                {"key":"null","value":null},{"key":"obj","value":{}}]"#,
        );
        for key in ["t", "one", "s", "obj"] {
            assert!(parameters.is_truthy(key), "{key} should be truthy");
        }
        for key in ["f", "zero", "empty", "null", "absent"] {
            assert!(!parameters.is_truthy(key), "{key} should be falsy");
        }
        assert!(parameters.is_truthy_or("absent", true));
        assert!(!parameters.is_truthy_or("f", true));
        assert_eq!(parameters.get_bool("t"), Some(true));
        assert_eq!(parameters.get_bool("one"), None);
    }

    #[test]
    fn from_object_keeps_field_order() {
        let object = json!({"z": 1, "a": {"x": true}});
        let parameters = Parameters::from_object(object.as_object().unwrap());
        assert_eq!(parameters.keys().collect::<Vec<_>>(), vec!["z", "a"]);
        assert_eq!(Value::Object(parameters.to_object()), object);
    }
}
