//! From what a module wrote on stdout to the activation's result.
//!
//! The rule, chosen so that both a module that prints only its result and one that prints log
//! lines before it work without any protocol of their own:
//! 1. if everything on stdout is one JSON document (pretty-printed over several lines or not),
//!    that document is the result and stdout holds no log lines;
//! 2. otherwise the last non-empty line is the result and every line before it is a stdout log
//!    line (the same convention as OpenWhisk's Docker skeleton);
//! 3. a result that is not JSON is a developer error quoting that line; JSON that is neither an
//!    object nor an array is [`NOT_A_DICTIONARY`].
//!
//! Arrays are accepted because OpenWhisk's `/run` treats a JSON array as a successful result.

use serde_json::Value;

use crate::run::WasmRunError;

/// The developer error for a result that is JSON but neither an object nor an array.
pub const NOT_A_DICTIONARY: &str = "The action did not return a dictionary.";

/// What stdout held: the result (or why there is none) and the stdout lines that are logs.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedOutput {
    pub result: Result<Value, WasmRunError>,
    /// Stdout lines that are not part of the result, in order.
    pub log_lines: Vec<String>,
    /// Characters of the result text (OpenWhisk's response `size`).
    pub size: u64,
}

/// Splits captured output into lines, without the line terminators; a missing final newline
/// does not lose the last line, and a final newline does not add an empty one.
pub(crate) fn lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line).to_string())
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// Applies the module's output rule (see the module documentation) to the captured stdout.
pub fn parse_stdout(stdout: &[u8]) -> ParsedOutput {
    let text = String::from_utf8_lossy(stdout);
    let whole = text.trim();
    if let Ok(value) = serde_json::from_str::<Value>(whole) {
        return ParsedOutput {
            size: whole.chars().count() as u64,
            result: classify(value),
            log_lines: Vec::new(),
        };
    }
    let mut log_lines = lines(stdout);
    while log_lines.last().is_some_and(|line| line.trim().is_empty()) {
        log_lines.pop();
    }
    let last = log_lines.pop().unwrap_or_default();
    let candidate = last.trim();
    let size = candidate.chars().count() as u64;
    let result = match serde_json::from_str::<Value>(candidate) {
        Ok(value) => classify(value),
        Err(_) => Err(WasmRunError::InvalidOutput(candidate.to_string())),
    };
    ParsedOutput {
        result,
        log_lines,
        size,
    }
}

fn classify(value: Value) -> Result<Value, WasmRunError> {
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value),
        _ => Err(WasmRunError::NotADictionary),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_single_document_is_the_result_even_over_several_lines() {
        let parsed = parse_stdout(b"{\n  \"a\": 1,\n  \"b\": [2]\n}\n");
        assert_eq!(parsed.result, Ok(json!({"a": 1, "b": [2]})));
        assert!(parsed.log_lines.is_empty());
        let parsed = parse_stdout(b"[1,2]");
        assert_eq!(parsed.result, Ok(json!([1, 2])));
        assert_eq!(parsed.size, 5);
    }

    #[test]
    fn lines_before_the_last_are_logs() {
        let parsed = parse_stdout(b"starting\r\n{\"x\":1}\nnot json yet\n{\"done\":true}\n\n");
        assert_eq!(parsed.result, Ok(json!({"done": true})));
        assert_eq!(
            parsed.log_lines,
            ["starting", "{\"x\":1}", "not json yet"].map(String::from)
        );
        assert_eq!(parsed.size, 13);
    }

    #[test]
    fn a_last_line_that_is_not_json_is_quoted() {
        let parsed = parse_stdout(b"log\nhello world\n");
        assert_eq!(
            parsed.result,
            Err(WasmRunError::InvalidOutput("hello world".into()))
        );
        assert_eq!(parsed.log_lines, ["log"]);
        assert_eq!(
            parse_stdout(b"").result,
            Err(WasmRunError::InvalidOutput(String::new()))
        );
        assert_eq!(
            parse_stdout(b"\n \n").result,
            Err(WasmRunError::InvalidOutput(String::new()))
        );
    }

    #[test]
    fn scalars_are_not_a_dictionary() {
        for output in [&b"42"[..], b"\"text\"\n", b"log\nnull\n", b"true"] {
            assert_eq!(
                parse_stdout(output).result,
                Err(WasmRunError::NotADictionary),
                "{output:?}"
            );
        }
    }

    #[test]
    fn lines_keep_a_final_line_without_newline_and_replace_bad_utf8() {
        assert_eq!(lines(b"a\nb"), ["a", "b"]);
        assert_eq!(lines(b"a\n\nb\n"), ["a", "", "b"]);
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\xff\n"), ["\u{fffd}"]);
    }
}
