//! Turning an action's result into the HTTP response a web action gives (REFERENCE §11.4).

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use base64::Engine;
use serde_json::{Map, Value};

use super::address::Extension;
use super::media::{MediaType, is_binary};

/// Why a result cannot be served in the form the request asked for; each is a client-visible
/// error with OpenWhisk's status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("Response is not valid 'application/json'.")]
    NotJson,
    #[error("Response is not valid 'text/html'.")]
    NotHtml,
    #[error("Response is not valid 'image/svg+xml'.")]
    NotSvg,
    #[error("Response does not include requested property.")]
    MissingProperty,
    #[error("Response is not valid 'message/http'.")]
    NotHttp,
    #[error("Response type in header did not match generated content type.")]
    ContentTypeMismatch,
    #[error("Response did not specify a known content-type.")]
    UnknownContentType,
}

impl ShapeError {
    pub fn status(&self) -> StatusCode {
        match self {
            ShapeError::MissingProperty => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Shapes `result` (for an application error: the value of its `error` property) for the
/// requested extension.
pub fn shape(extension: Extension, result: &Value) -> Result<Response<Body>, ShapeError> {
    match extension {
        Extension::Json => match result {
            Value::Object(_) | Value::Array(_) => Ok(json_response(StatusCode::OK, result)),
            _ => Err(ShapeError::NotJson),
        },
        Extension::Html => {
            let text = property(result, "html")
                .and_then(Value::as_str)
                .ok_or(ShapeError::NotHtml)?;
            Ok(text_response(text, "text/html; charset=UTF-8"))
        }
        Extension::Svg => {
            let text = property(result, "svg")
                .and_then(Value::as_str)
                .ok_or(ShapeError::NotSvg)?;
            Ok(text_response(text, "image/svg+xml"))
        }
        Extension::Text => {
            let value = match result {
                Value::Object(_) => property(result, "text").ok_or(ShapeError::MissingProperty)?,
                other => other,
            };
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Object(_) | Value::Array(_) => {
                    serde_json::to_string_pretty(value).unwrap_or_default()
                }
                other => other.to_string(),
            };
            Ok(text_response(&text, "text/plain; charset=UTF-8"))
        }
        Extension::Http => shape_http(result),
    }
}

/// `body` when the object has it, else the extension's own property.
fn property<'a>(result: &'a Value, name: &str) -> Option<&'a Value> {
    let object = result.as_object()?;
    object.get("body").or_else(|| object.get(name))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn text_response(text: &str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_string()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn shape_http(result: &Value) -> Result<Response<Body>, ShapeError> {
    let object = result.as_object().ok_or(ShapeError::NotHttp)?;
    let headers = response_headers(object.get("headers"))?;
    let status = match object.get("statusCode") {
        None | Some(Value::Null) => None,
        Some(value) => Some(status_code(value)?),
    };
    let declared_type = headers
        .iter()
        .find(|(name, _)| name == header::CONTENT_TYPE)
        .map(|(_, value)| value.clone());

    let (body, content_type, default_status) = match object.get("body") {
        None | Some(Value::Null) => (Vec::new(), None, StatusCode::NO_CONTENT),
        Some(Value::String(text)) if text.is_empty() => (Vec::new(), None, StatusCode::NO_CONTENT),
        Some(Value::String(text)) => {
            let declared = declared_type
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .unwrap_or("text/html");
            let media = MediaType::parse(declared);
            if !media.is_valid() {
                return Err(ShapeError::UnknownContentType);
            }
            let bytes = if is_binary(&media) {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| ShapeError::NotHttp)?
            } else if media.is_json() {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap_or_else(|_| text.as_bytes().to_vec())
            } else {
                text.as_bytes().to_vec()
            };
            let content_type = match &declared_type {
                Some(value) => value.clone(),
                None => HeaderValue::from_static("text/html; charset=UTF-8"),
            };
            (bytes, Some(content_type), StatusCode::OK)
        }
        Some(other) => {
            if let Some(declared) = &declared_type {
                let media = MediaType::parse(declared.to_str().unwrap_or_default());
                if !media.is_valid() {
                    return Err(ShapeError::UnknownContentType);
                }
                if !media.is_json() {
                    return Err(ShapeError::ContentTypeMismatch);
                }
            }
            let content_type = declared_type
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("application/json"));
            (
                other.to_string().into_bytes(),
                Some(content_type),
                StatusCode::OK,
            )
        }
    };

    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status.unwrap_or(default_status);
    let response_headers = response.headers_mut();
    for (name, value) in headers {
        if name == header::CONTENT_TYPE {
            continue;
        }
        response_headers.append(name, value);
    }
    if let Some(content_type) = content_type {
        response_headers.insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

fn status_code(value: &Value) -> Result<StatusCode, ShapeError> {
    let number = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    number
        .and_then(|number| u16::try_from(number).ok())
        .and_then(|number| StatusCode::from_u16(number).ok())
        .ok_or(ShapeError::NotHttp)
}

/// The action's `headers` object as header pairs; arrays become repeated headers (`Set-Cookie`).
fn response_headers(headers: Option<&Value>) -> Result<Vec<(HeaderName, HeaderValue)>, ShapeError> {
    let object: &Map<String, Value> = match headers {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(ShapeError::NotHttp),
    };
    let mut pairs = Vec::new();
    for (name, value) in object {
        let header_name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| ShapeError::NotHttp)?;
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => return Err(ShapeError::NotHttp),
            };
            let header_value = HeaderValue::from_str(&text).map_err(|_| ShapeError::NotHttp)?;
            pairs.push((header_name.clone(), header_value));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http_body_util::BodyExt;
    use serde_json::json;

    use super::*;

    async fn body_of(response: Response<Body>) -> Vec<u8> {
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    fn content_type(response: &Response<Body>) -> &str {
        response.headers()[header::CONTENT_TYPE].to_str().unwrap()
    }

    #[tokio::test]
    async fn json_extension_needs_an_object_or_array() {
        let response = shape(Extension::Json, &json!({"a": 1})).unwrap();
        assert_eq!(content_type(&response), "application/json");
        assert_eq!(body_of(response).await, br#"{"a":1}"#);
        assert!(shape(Extension::Json, &json!([1])).is_ok());
        assert_eq!(
            shape(Extension::Json, &json!("x")).unwrap_err(),
            ShapeError::NotJson
        );
    }

    #[tokio::test]
    async fn html_and_svg_take_body_then_their_own_property() {
        let response = shape(Extension::Html, &json!({"html": "<p>hi</p>"})).unwrap();
        assert_eq!(content_type(&response), "text/html; charset=UTF-8");
        assert_eq!(body_of(response).await, b"<p>hi</p>");
        let response = shape(Extension::Html, &json!({"body": "b", "html": "h"})).unwrap();
        assert_eq!(body_of(response).await, b"b");
        assert_eq!(
            shape(Extension::Html, &json!({"html": 1})).unwrap_err(),
            ShapeError::NotHtml
        );
        let response = shape(Extension::Svg, &json!({"svg": "<svg/>"})).unwrap();
        assert_eq!(content_type(&response), "image/svg+xml");
        assert_eq!(
            shape(Extension::Svg, &json!({})).unwrap_err(),
            ShapeError::NotSvg
        );
    }

    #[tokio::test]
    async fn text_extension_renders_values_and_reports_a_missing_property() {
        let response = shape(Extension::Text, &json!({"text": 42})).unwrap();
        assert_eq!(body_of(response).await, b"42");
        let response = shape(Extension::Text, &json!({"text": {"a": 1}})).unwrap();
        assert_eq!(body_of(response).await, b"{\n  \"a\": 1\n}");
        let response = shape(Extension::Text, &json!({"text": null})).unwrap();
        assert_eq!(body_of(response).await, b"null");
        let missing = shape(Extension::Text, &json!({"other": 1})).unwrap_err();
        assert_eq!(missing, ShapeError::MissingProperty);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn http_defaults_204_without_body_and_200_with_one() {
        let response = shape(Extension::Http, &json!({})).unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let response = shape(
            Extension::Http,
            &json!({"body": "", "headers": {"Content-Type": "text/plain"}}),
        )
        .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.headers().get(header::CONTENT_TYPE).is_none());
        let response = shape(Extension::Http, &json!({"body": "<h1>x</h1>"})).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(content_type(&response), "text/html; charset=UTF-8");
    }

    #[tokio::test]
    async fn http_status_headers_cookies_and_redirects() {
        let response = shape(
            Extension::Http,
            &json!({
                "statusCode": "302",
                "headers": {"location": "https://example.invalid/", "Set-Cookie": ["a=1", "b=2"], "X-Num": 7}
            }),
        )
        .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()["location"], "https://example.invalid/");
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(response.headers()["x-num"], "7");
        for bad in [
            json!({"statusCode": "abc"}),
            json!({"statusCode": 99999}),
            json!({"headers": []}),
            json!({"headers": {"x": {"nested": 1}}}),
            json!("not an object"),
        ] {
            assert_eq!(
                shape(Extension::Http, &bad).unwrap_err(),
                ShapeError::NotHttp,
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn http_binary_bodies_are_base64_decoded() {
        let response = shape(
            Extension::Http,
            &json!({"headers": {"Content-Type": "image/png"}, "body": "iVBORw0KGgo="}),
        )
        .unwrap();
        assert_eq!(content_type(&response), "image/png");
        assert_eq!(body_of(response).await, b"\x89PNG\r\n\x1a\n");
        let undecodable = json!({"headers": {"Content-Type": "image/png"}, "body": "***"});
        assert_eq!(
            shape(Extension::Http, &undecodable).unwrap_err(),
            ShapeError::NotHttp
        );
    }

    #[tokio::test]
    async fn http_json_bodies_and_their_content_type_rules() {
        let response = shape(Extension::Http, &json!({"body": {"ok": true}})).unwrap();
        assert_eq!(content_type(&response), "application/json");
        assert_eq!(body_of(response).await, br#"{"ok":true}"#);
        let mismatch = json!({"headers": {"Content-Type": "text/html"}, "body": [1]});
        assert_eq!(
            shape(Extension::Http, &mismatch).unwrap_err(),
            ShapeError::ContentTypeMismatch
        );
        let unknown = json!({"headers": {"Content-Type": "nonsense"}, "body": "x"});
        assert_eq!(
            shape(Extension::Http, &unknown).unwrap_err(),
            ShapeError::UnknownContentType
        );
        let legacy =
            json!({"headers": {"Content-Type": "application/json"}, "body": "eyJhIjoxfQ=="});
        let response = shape(Extension::Http, &legacy).unwrap();
        assert_eq!(body_of(response).await, br#"{"a":1}"#);
    }
}
