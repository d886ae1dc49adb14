//! Inputs that come from files named on the command line: `-P`/`-A` JSON files of parameters or
//! annotations. Kept apart from the commands so the error for a bad file says which file and why.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// A parameter or annotation file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read '{path}': {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{path}' is not valid JSON: {source}")]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// `wsk` turns the top-level keys into `{key, value}` pairs, so only an object makes sense.
    #[error("'{0}' must contain a JSON object")]
    NotObject(PathBuf),
}

/// Reads a JSON object from `path` and turns each top-level key into a `{key, value}` pair.
pub fn key_values_from_file(path: &Path) -> Result<Vec<Value>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| InputError::NotJson {
        path: path.to_path_buf(),
        source,
    })?;
    match value {
        Value::Object(map) => Ok(map
            .into_iter()
            .map(|(key, value)| json!({"key": key, "value": value}))
            .collect()),
        _ => Err(InputError::NotObject(path.to_path_buf())),
    }
}

/// Lays `overrides` over `base` by key: a key in both keeps its place in `base` and takes the
/// override's value, so `-p` given after `-P` wins the way a user reading the command expects.
pub fn merge_pairs(mut base: Vec<Value>, overrides: Vec<Value>) -> Vec<Value> {
    for pair in overrides {
        match base.iter_mut().find(|old| old["key"] == pair["key"]) {
            Some(old) => *old = pair,
            None => base.push(pair),
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_pairs_win_in_place() {
        let merged = merge_pairs(
            vec![
                json!({"key": "a", "value": 1}),
                json!({"key": "b", "value": 2}),
            ],
            vec![
                json!({"key": "a", "value": 3}),
                json!({"key": "c", "value": 4}),
            ],
        );
        assert_eq!(
            merged,
            vec![
                json!({"key": "a", "value": 3}),
                json!({"key": "b", "value": 2}),
                json!({"key": "c", "value": 4}),
            ]
        );
    }
}
