//! The action's input built from an HTTP request (REFERENCE §11.3).

use std::collections::HashSet;

use axum::http::{HeaderMap, Method};
use base64::Engine;
use serde_json::{Map, Value};

use super::media::{MediaType, is_binary};

/// Names of the parameters the platform sets itself; a request may not set them.
pub const RESERVED: [&str; 7] = [
    "__ow_method",
    "__ow_headers",
    "__ow_path",
    "__ow_user",
    "__ow_body",
    "__ow_query",
    "__ow_raw",
];

/// Headers that stay inside the platform.
const INTERNAL_HEADERS: [&str; 1] = ["timeout-access"];

/// A request whose body or query sets a reserved or `final` parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Request defines parameters that are not allowed (e.g., reserved properties).")]
pub struct ParametersNotAllowed;

/// What of the HTTP request becomes the action's input.
#[derive(Debug)]
pub struct WebRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub extra_path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// The caller's namespace when the request carried valid credentials.
    pub user: Option<&'a str>,
}

/// Builds the request's parameters. `raw` is the action's `raw-http` annotation; `immutable` the
/// names of the action's `final` parameters, which a non-raw request may not override.
pub fn request_parameters(
    request: &WebRequest<'_>,
    raw: bool,
    immutable: &HashSet<String>,
) -> Result<Map<String, Value>, ParametersNotAllowed> {
    let mut from_request = Map::new();
    let content_type = request
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(MediaType::parse);
    let content_type = content_type.as_ref();
    if raw {
        from_request.insert(
            "__ow_query".into(),
            Value::String(request.query.unwrap_or_default().to_string()),
        );
        from_request.insert("__ow_body".into(), raw_body(request.body, content_type));
    } else {
        if let Some(query) = request.query {
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                from_request.insert(key.into_owned(), Value::String(value.into_owned()));
            }
        }
        let body = merge_body(&mut from_request, request.body, content_type);
        let forbidden = from_request
            .keys()
            .any(|key| RESERVED.contains(&key.as_str()) || immutable.contains(key));
        if forbidden {
            return Err(ParametersNotAllowed);
        }
        if let Some(body) = body {
            from_request.insert("__ow_body".into(), body);
        }
    }
    from_request.insert(
        "__ow_method".into(),
        Value::String(request.method.as_str().to_ascii_lowercase()),
    );
    from_request.insert("__ow_headers".into(), headers_object(request.headers));
    from_request.insert(
        "__ow_path".into(),
        Value::String(request.extra_path.to_string()),
    );
    if let Some(user) = request.user {
        from_request.insert("__ow_user".into(), Value::String(user.to_string()));
    }
    Ok(from_request)
}

fn headers_object(headers: &HeaderMap) -> Value {
    let mut object = Map::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        if INTERNAL_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // Repeated headers keep the last value in a JSON object, as one value per name.
        object.insert(name, Value::String(value));
    }
    Value::Object(object)
}

/// A raw action's body: base64 for binary and JSON media types, text otherwise.
fn raw_body(body: &[u8], content_type: Option<&MediaType>) -> Value {
    if body.is_empty() {
        return Value::String(String::new());
    }
    let encode = content_type.is_some_and(|media| is_binary(media) || media.is_json());
    if encode {
        Value::String(base64::engine::general_purpose::STANDARD.encode(body))
    } else {
        Value::String(String::from_utf8_lossy(body).into_owned())
    }
}

/// A non-raw action's body: JSON objects and form fields merged top-level (over the query);
/// anything else is returned, to go under `__ow_body` once the request's own names are checked.
fn merge_body(
    parameters: &mut Map<String, Value>,
    body: &[u8],
    content_type: Option<&MediaType>,
) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let text = || Value::String(String::from_utf8_lossy(body).into_owned());
    match content_type {
        Some(media) if media.is_json() => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => {
                parameters.extend(object);
                None
            }
            Ok(other) => Some(other),
            Err(_) => Some(text()),
        },
        Some(media) if media.is_form() => {
            for (key, value) in form_urlencoded::parse(body) {
                parameters.insert(key.into_owned(), Value::String(value.into_owned()));
            }
            None
        }
        Some(media) if is_binary(media) => Some(Value::String(
            base64::engine::general_purpose::STANDARD.encode(body),
        )),
        _ => Some(text()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("X-Custom", HeaderValue::from_static("Yes"));
        headers.insert("timeout-access", HeaderValue::from_static("internal"));
        if let Some(content_type) = content_type {
            headers.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        }
        headers
    }

    fn build(
        content_type: Option<&str>,
        query: Option<&str>,
        body: &[u8],
        raw: bool,
    ) -> Result<Map<String, Value>, ParametersNotAllowed> {
        let headers = headers(content_type);
        let request = WebRequest {
            method: &Method::POST,
            headers: &headers,
            extra_path: "/x/y",
            query,
            body,
            user: None,
        };
        request_parameters(&request, raw, &HashSet::new())
    }

    #[test]
    fn context_parameters_are_always_there() {
        let parameters = build(None, None, b"", false).unwrap();
        assert_eq!(parameters["__ow_method"], "post");
        assert_eq!(parameters["__ow_path"], "/x/y");
        assert_eq!(parameters["__ow_headers"]["x-custom"], "Yes");
        assert!(parameters["__ow_headers"].get("timeout-access").is_none());
        assert!(parameters.get("__ow_user").is_none());
        assert!(parameters.get("__ow_body").is_none());
    }

    #[test]
    fn query_then_json_object_body_merge_top_level() {
        let parameters = build(
            Some("application/json"),
            Some("a=1&b=two%20words"),
            br#"{"a": {"nested": true}, "c": 3}"#,
            false,
        )
        .unwrap();
        assert_eq!(parameters["a"], json!({"nested": true}), "the body wins");
        assert_eq!(parameters["b"], "two words");
        assert_eq!(parameters["c"], 3);
    }

    #[test]
    fn a_json_body_that_is_not_an_object_goes_to_ow_body() {
        let parameters = build(Some("application/vnd.api+json"), None, b"[1,2]", false).unwrap();
        assert_eq!(parameters["__ow_body"], json!([1, 2]));
    }

    #[test]
    fn form_fields_are_strings_and_text_bodies_go_to_ow_body() {
        let form = build(
            Some("application/x-www-form-urlencoded"),
            None,
            b"name=Jane+Doe&n=1",
            false,
        )
        .unwrap();
        assert_eq!(form["name"], "Jane Doe");
        assert_eq!(form["n"], "1");
        let text = build(Some("text/plain"), None, b"hello", false).unwrap();
        assert_eq!(text["__ow_body"], "hello");
    }

    #[test]
    fn binary_bodies_are_base64() {
        let parameters = build(Some("image/png"), None, &[0, 159, 146, 150], false).unwrap();
        assert_eq!(parameters["__ow_body"], "AJ+Slg==");
    }

    #[test]
    fn reserved_and_final_names_cannot_be_set_by_the_request() {
        assert_eq!(
            build(None, Some("__ow_method=get"), b"", false),
            Err(ParametersNotAllowed)
        );
        assert_eq!(
            build(
                Some("application/json"),
                None,
                br#"{"__ow_path": "/"}"#,
                false
            ),
            Err(ParametersNotAllowed)
        );
        let headers = headers(None);
        let request = WebRequest {
            method: &Method::GET,
            headers: &headers,
            extra_path: "",
            query: Some("greeting=hi"),
            body: b"",
            user: Some("guest"),
        };
        let immutable: HashSet<String> = ["greeting".to_string()].into();
        assert_eq!(
            request_parameters(&request, false, &immutable),
            Err(ParametersNotAllowed)
        );
        let allowed = request_parameters(&request, false, &HashSet::new()).unwrap();
        assert_eq!(allowed["__ow_user"], "guest");
    }

    #[test]
    fn raw_actions_get_the_query_and_body_unparsed() {
        let json = build(
            Some("application/json"),
            Some("a=1&b=2"),
            br#"{"x":1}"#,
            true,
        )
        .unwrap();
        assert_eq!(json["__ow_query"], "a=1&b=2");
        assert_eq!(
            json["__ow_body"], "eyJ4IjoxfQ==",
            "JSON bodies are base64 for raw actions"
        );
        assert!(json.get("x").is_none());
        let text = build(Some("text/plain"), None, b"plain", true).unwrap();
        assert_eq!(text["__ow_body"], "plain");
        let empty = build(None, None, b"", true).unwrap();
        assert_eq!(empty["__ow_body"], "");
        assert_eq!(empty["__ow_query"], "");
        // No override check for raw actions: the names are the platform's own anyway.
        assert!(build(None, Some("__ow_method=x"), b"", true).is_ok());
    }
}
