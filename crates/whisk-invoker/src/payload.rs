//! The bodies of `/init` and `/run` (REFERENCE §13.2, §13.3).

use serde_json::{Map, Value, json};
use whisk_model::{Exec, WhiskAction};

use crate::container::ActionCode;

/// What an activation tells its action about itself (the `__OW_*` context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    /// The invoking namespace.
    pub namespace: String,
    /// `/ns[/pkg]/name` of the action that runs (the real package, not a binding).
    pub action_name: String,
    pub action_version: String,
    pub activation_id: String,
    pub transaction_id: String,
    /// Epoch milliseconds by which the action must be done.
    pub deadline_ms: u64,
    /// The caller's `uuid:key`, only when the action is to receive it.
    pub api_key: Option<String>,
    /// Where the action reaches the platform's API (`__OW_API_HOST`).
    pub api_host: Option<String>,
}

impl RunContext {
    /// The context as the `__OW_*` environment of `/init`.
    fn env(&self) -> Map<String, Value> {
        let mut env = Map::new();
        if let Some(api_key) = &self.api_key {
            env.insert("__OW_API_KEY".into(), json!(api_key));
        }
        env.insert("__OW_NAMESPACE".into(), json!(self.namespace));
        env.insert("__OW_ACTION_NAME".into(), json!(self.action_name));
        env.insert("__OW_ACTION_VERSION".into(), json!(self.action_version));
        env.insert("__OW_ACTIVATION_ID".into(), json!(self.activation_id));
        env.insert("__OW_TRANSACTION_ID".into(), json!(self.transaction_id));
        env.insert("__OW_DEADLINE".into(), json!(self.deadline_ms.to_string()));
        if let Some(api_host) = &self.api_host {
            env.insert("__OW_API_HOST".into(), json!(api_host));
        }
        env
    }
}

/// An environment value as text: strings as they are, `null` as empty, everything else as
/// compact JSON (numbers and booleans thus as their literal).
pub fn env_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The code of an action as a container receives it; `None` for sequences, which never run
/// in a container.
pub fn action_code(action: &WhiskAction) -> Option<ActionCode> {
    if matches!(action.exec, Exec::Sequence { .. }) {
        return None;
    }
    Some(ActionCode {
        name: action.name.to_string(),
        code: action.exec.code().map(str::to_string),
        main: action.exec.main().unwrap_or("main").to_string(),
        binary: action.exec.binary(),
    })
}

/// `{"value":{"name","main","binary","code","env"}}`; `code` is left out when there is none and
/// `env` when it would be empty. The `__OW_*` context comes first; an `init` parameter never
/// overrides it.
pub fn init_payload(
    code: &ActionCode,
    init_args: &Map<String, Value>,
    context: &RunContext,
) -> Value {
    let mut env = context.env();
    for (key, value) in init_args {
        if !env.contains_key(key) {
            env.insert(key.clone(), Value::String(env_string(value)));
        }
    }
    let mut value = Map::new();
    value.insert("name".into(), json!(code.name));
    value.insert("main".into(), json!(code.main));
    value.insert("binary".into(), json!(code.binary));
    if let Some(text) = &code.code {
        value.insert("code".into(), json!(text));
    }
    if !env.is_empty() {
        value.insert("env".into(), Value::Object(env));
    }
    json!({ "value": value })
}

/// `{"value":..,"namespace","action_name","action_version","activation_id","transaction_id",
/// "deadline"[,"api_key"]}` with the deadline as a string, as the runtimes expect.
pub fn run_payload(content: Map<String, Value>, context: &RunContext) -> Value {
    let mut body = Map::new();
    body.insert("value".into(), Value::Object(content));
    body.insert("namespace".into(), json!(context.namespace));
    body.insert("action_name".into(), json!(context.action_name));
    body.insert("action_version".into(), json!(context.action_version));
    body.insert("activation_id".into(), json!(context.activation_id));
    body.insert("transaction_id".into(), json!(context.transaction_id));
    body.insert("deadline".into(), json!(context.deadline_ms.to_string()));
    if let Some(api_key) = &context.api_key {
        body.insert("api_key".into(), json!(api_key));
    }
    Value::Object(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn context(api_key: Option<&str>) -> RunContext {
        RunContext {
            namespace: "guest".into(),
            action_name: "/guest/pkg/hello".into(),
            action_version: "0.0.1".into(),
            activation_id: "a".repeat(32),
            transaction_id: "tid".into(),
            deadline_ms: 1_717_000_060_123,
            api_key: api_key.map(str::to_string),
            api_host: Some("http://127.0.0.1:3233".into()),
        }
    }

    fn code() -> ActionCode {
        ActionCode {
            name: "hello".into(),
            code: Some("function main() {}".into()),
            main: "main".into(),
            binary: false,
        }
    }

    #[test]
    fn env_values_are_strings() {
        assert_eq!(env_string(&json!("x")), "x");
        assert_eq!(env_string(&Value::Null), "");
        assert_eq!(env_string(&json!(42)), "42");
        assert_eq!(env_string(&json!(true)), "true");
        assert_eq!(env_string(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
    }

    #[test]
    fn init_carries_code_context_and_init_parameters() {
        let mut init_args = Map::new();
        init_args.insert("SECRET".into(), json!(7));
        init_args.insert("__OW_NAMESPACE".into(), json!("forged"));
        let payload = init_payload(&code(), &init_args, &context(Some("u:k")));
        let value = &payload["value"];
        assert_eq!(value["name"], "hello");
        assert_eq!(value["main"], "main");
        assert_eq!(value["binary"], false);
        assert_eq!(value["code"], "function main() {}");
        let env = &value["env"];
        assert_eq!(env["__OW_API_KEY"], "u:k");
        assert_eq!(env["__OW_NAMESPACE"], "guest", "context wins");
        assert_eq!(env["__OW_ACTION_NAME"], "/guest/pkg/hello");
        assert_eq!(env["__OW_DEADLINE"], "1717000060123");
        assert_eq!(env["__OW_API_HOST"], "http://127.0.0.1:3233");
        assert_eq!(env["SECRET"], "7");
    }

    #[test]
    fn init_leaves_out_a_missing_key_and_missing_code() {
        let mut image_only = code();
        image_only.code = None;
        let payload = init_payload(&image_only, &Map::new(), &context(None));
        assert!(payload["value"].get("code").is_none());
        assert!(payload["value"]["env"].get("__OW_API_KEY").is_none());
    }

    #[test]
    fn run_carries_the_value_and_the_context_fields() {
        let mut content = Map::new();
        content.insert("name".into(), json!("Ada"));
        let payload = run_payload(content, &context(Some("u:k")));
        assert_eq!(
            payload,
            json!({"value": {"name": "Ada"}, "namespace": "guest",
                   "action_name": "/guest/pkg/hello", "action_version": "0.0.1",
                   "activation_id": "a".repeat(32), "transaction_id": "tid",
                   "deadline": "1717000060123", "api_key": "u:k"})
        );
        let without = run_payload(Map::new(), &context(None));
        assert!(without.get("api_key").is_none());
        assert_eq!(without["value"], json!({}));
    }
}
