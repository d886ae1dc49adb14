//! The bodies of `POST /init` and `POST /run` (REFERENCE §13.2, §13.3), built in one place so
//! every invoker path sends exactly what OpenWhisk's runtimes expect.

use serde_json::{Map, Value, json};

/// What a runtime learns about the activation it serves, both at `/init` (as `__OW_*` env) and
/// at `/run` (as fields next to `value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationContext {
    /// The invoking namespace.
    pub namespace: String,
    /// `/` + the resolved fully qualified name (the real package, not a binding).
    pub action_name: String,
    pub action_version: String,
    /// 32 hex digits.
    pub activation_id: String,
    pub transaction_id: String,
    /// Epoch milliseconds by which the activation must end.
    pub deadline_ms: u64,
    /// `uuid:key`, only when the action may receive it (`provide-api-key`).
    pub api_key: Option<String>,
}

impl ActivationContext {
    /// The fields in the order OpenWhisk sends them, with `deadline` as text.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::with_capacity(7);
        if let Some(key) = &self.api_key {
            fields.push(("api_key", key.clone()));
        }
        fields.extend([
            ("namespace", self.namespace.clone()),
            ("action_name", self.action_name.clone()),
            ("action_version", self.action_version.clone()),
            ("activation_id", self.activation_id.clone()),
            ("transaction_id", self.transaction_id.clone()),
            ("deadline", self.deadline_ms.to_string()),
        ]);
        fields
    }
}

/// The code part of an `/init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitCode<'a> {
    /// The action's bare name.
    pub name: &'a str,
    /// `exec.main`, or `"main"`.
    pub main: &'a str,
    /// Source or base64 archive; `None` only for blackbox actions without code.
    pub code: Option<&'a str>,
    pub binary: bool,
}

/// How OpenWhisk turns a parameter into an environment value: strings as they are, `null` as the
/// empty string, anything else as compact JSON.
pub fn env_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `{"value":{name, main, binary, code?, env?}}`: `env` holds the init-flagged parameters and
/// the `__OW_*` context, all as strings, and is left out when empty.
pub fn init_payload(
    code: &InitCode<'_>,
    init_params: &Map<String, Value>,
    context: Option<&ActivationContext>,
) -> Value {
    let mut value = Map::new();
    value.insert("name".into(), json!(code.name));
    value.insert("main".into(), json!(code.main));
    value.insert("binary".into(), json!(code.binary));
    if let Some(source) = code.code {
        value.insert("code".into(), json!(source));
    }
    let mut env = Map::new();
    for (key, param) in init_params {
        env.insert(key.clone(), Value::String(env_value(param)));
    }
    if let Some(context) = context {
        for (key, text) in context.fields() {
            env.insert(format!("__OW_{}", key.to_uppercase()), Value::String(text));
        }
    }
    if !env.is_empty() {
        value.insert("env".into(), Value::Object(env));
    }
    json!({ "value": value })
}

/// `{"value": args, namespace, action_name, action_version, activation_id, transaction_id,
/// deadline, api_key?}`; `args` are the merged arguments without the init parameters.
pub fn run_payload(args: Value, context: &ActivationContext) -> Value {
    let mut body = Map::new();
    body.insert("value".into(), args);
    for (key, text) in context.fields() {
        body.insert(key.into(), Value::String(text));
    }
    Value::Object(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn context(api_key: Option<&str>) -> ActivationContext {
        ActivationContext {
            namespace: "guest".into(),
            action_name: "/guest/pkg/hello".into(),
            action_version: "0.0.1".into(),
            activation_id: "c7bb1339cb4f40e3a6ccead6c99f804e".into(),
            transaction_id: "tid".into(),
            deadline_ms: 1717000060123,
            api_key: api_key.map(str::to_string),
        }
    }

    #[test]
    fn init_carries_code_init_params_as_text_and_the_context() {
        let params = json!({"S":"s","N":1,"O":{"a":[1]},"Z":null});
        let payload = init_payload(
            &InitCode {
                name: "hello",
                main: "main",
                code: Some("function main(){}"),
                binary: false,
            },
            params.as_object().unwrap(),
            Some(&context(Some("uuid:key"))),
        );
        assert_eq!(
            payload,
            json!({"value":{"name":"hello","main":"main","binary":false,"code":"function main(){}",
                "env":{"S":"s","N":"1","O":"{\"a\":[1]}","Z":"",
                    "__OW_API_KEY":"uuid:key","__OW_NAMESPACE":"guest",
                    "__OW_ACTION_NAME":"/guest/pkg/hello","__OW_ACTION_VERSION":"0.0.1",
                    "__OW_ACTIVATION_ID":"c7bb1339cb4f40e3a6ccead6c99f804e",
                    "__OW_TRANSACTION_ID":"tid","__OW_DEADLINE":"1717000060123"}}})
        );
    }

    #[test]
    fn init_without_code_or_env_leaves_them_out() {
        let payload = init_payload(
            &InitCode {
                name: "bb",
                main: "main",
                code: None,
                binary: false,
            },
            &Map::new(),
            None,
        );
        assert_eq!(
            payload,
            json!({"value":{"name":"bb","main":"main","binary":false}})
        );
    }

    #[test]
    fn run_carries_the_context_beside_value() {
        assert_eq!(
            run_payload(json!({"a":1}), &context(None)),
            json!({"value":{"a":1},"namespace":"guest","action_name":"/guest/pkg/hello",
                "action_version":"0.0.1","activation_id":"c7bb1339cb4f40e3a6ccead6c99f804e",
                "transaction_id":"tid","deadline":"1717000060123"})
        );
        assert_eq!(run_payload(json!([1]), &context(Some("k")))["api_key"], "k");
    }
}
