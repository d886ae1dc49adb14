//! Request extractors that reject with OpenWhisk's statuses and messages instead of axum's
//! plain-text defaults: JSON bodies, query parameters and path segments.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Default page size of list requests.
pub const DEFAULT_LIST_LIMIT: u32 = 30;
/// Largest page size of list requests (also what `limit=0` means).
pub const MAX_LIST_LIMIT: u32 = 200;

/// A JSON request body of type `T`.
///
/// Rejections: a content type other than `application/json` → 415; a body larger than the
/// configured maximum → 413 `Request larger than allowed: <n> > <max> bytes.`; text that is not
/// JSON or does not fit `T` → 400 `The request content was malformed:\n<detail>`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body is accepted and means "no payload" (invoke and fire).
#[derive(Debug, Clone)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_json(request, state.config.max_request_body)
            .await
            .map(JsonBody)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_optional_json(request, state.config.max_request_body)
            .await
            .map(OptionalJsonBody)
    }
}

/// Reads a JSON body of type `T` with the rejections described on [`JsonBody`].
///
/// Handlers call this directly (taking the raw `Request` as their last extractor) when the
/// body must be read only after rights were checked, as OpenWhisk does.
pub async fn read_json<T: DeserializeOwned>(request: Request, max_bytes: u64) -> ApiResult<T> {
    require_json_content_type(request.headers())?;
    let bytes = read_body(request, max_bytes).await?;
    parse_json(&bytes)
}

/// Like [`read_json`], but an empty body is `None` whatever its content type.
pub async fn read_optional_json<T: DeserializeOwned>(
    request: Request,
    max_bytes: u64,
) -> ApiResult<Option<T>> {
    if declared_length(request.headers()) == Some(0) {
        return Ok(None);
    }
    let content_type_check = require_json_content_type(request.headers());
    let bytes = read_body(request, max_bytes).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    content_type_check?;
    parse_json(&bytes).map(Some)
}

/// Accepts `application/json` with any parameters (e.g. `; charset=utf-8`).
fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match media_type {
        Some(media) if media.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::unsupported_content_type(content_type)),
    }
}

/// The `Content-Length` a request declares, if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// Reads the whole body, refusing more than `max_bytes`. A declared `Content-Length` over the
/// limit is refused before reading; a streamed body is refused as soon as it passes the limit,
/// reporting how much had arrived by then.
pub async fn read_body(request: Request, max_bytes: u64) -> Result<Bytes, ApiError> {
    if let Some(length) = declared_length(request.headers())
        && length > max_bytes
    {
        return Err(ApiError::too_large("Request", length, max_bytes));
    }
    let mut body: Body = request.into_body();
    let mut collected: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ApiError::malformed_content)?;
        if let Ok(data) = frame.into_data() {
            collected.extend_from_slice(&data);
            let received = u64::try_from(collected.len()).unwrap_or(u64::MAX);
            if received > max_bytes {
                return Err(ApiError::too_large("Request", received, max_bytes));
            }
        }
    }
    Ok(Bytes::from(collected))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            ApiError::malformed_content(without_location(&error))
        } else {
            ApiError::malformed_content(error)
        }
    })
}

/// The text of a data error without serde's " at line L column C" suffix, so that messages
/// the model raises while deserializing (OpenWhisk's exact wording, e.g. the "requirement
/// failed: ..." of a rule's unqualified trigger) reach the client unchanged.
fn without_location(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// Decoded query parameters (the last occurrence of a repeated name wins).
#[derive(Debug, Clone, Default)]
pub struct QueryParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams::parse(parts.uri.query()))
    }
}

impl QueryParams {
    /// Parses a raw query string; undecodable pairs are kept as raw text.
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .map(|query| {
                query
                    .split('&')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                        (percent_decode(name), percent_decode(value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        QueryParams(pairs)
    }

    /// The raw value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A boolean parameter (`true`/`false`, also `yes`/`no`, `on`/`off`, `1`/`0`); absent →
    /// `default`; anything else → 400 naming the parameter.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => parse_boolean(value).ok_or_else(|| {
                ApiError::malformed_query_parameter(
                    name,
                    format!("'{value}' is not a valid Boolean value"),
                )
            }),
        }
    }

    /// The paging options of a list request on `collection` (its name appears in messages).
    pub fn list_options(&self, collection: &str) -> Result<ListOptions, ApiError> {
        let limit = match self.get("limit") {
            None => DEFAULT_LIST_LIMIT,
            Some(raw) => {
                let value = parse_integer(raw).ok_or_else(|| {
                    ApiError::malformed_query_parameter(
                        "limit",
                        format!("The value '{raw}' is not an integer for {collection}."),
                    )
                })?;
                match u32::try_from(value) {
                    Ok(0) => MAX_LIST_LIMIT,
                    Ok(limit) if limit <= MAX_LIST_LIMIT => limit,
                    _ => {
                        return Err(ApiError::malformed_query_parameter(
                            "limit",
                            format!(
                                "The value '{value}' is not in the range of 0 to {MAX_LIST_LIMIT} for {collection}."
                            ),
                        ));
                    }
                }
            }
        };
        let skip = match self.get("skip") {
            None => 0,
            Some(raw) => {
                let value = parse_integer(raw).ok_or_else(|| {
                    ApiError::malformed_query_parameter(
                        "skip",
                        format!("The value '{raw}' is not an integer for {collection}."),
                    )
                })?;
                u32::try_from(value).map_err(|_| {
                    ApiError::malformed_query_parameter(
                        "skip",
                        format!(
                            "The value '{value}' is not greater than or equal to 0 for {collection}."
                        ),
                    )
                })?
            }
        };
        let count = self.boolean("count", false)?;
        Ok(ListOptions { limit, skip, count })
    }
}

/// Paging of list requests, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// Page size, 1..=200.
    pub limit: u32,
    /// Entries to skip.
    pub skip: u32,
    /// Answer `{"<collection>": <n>}` instead of the entries.
    pub count: bool,
}

fn parse_integer(raw: &str) -> Option<i64> {
    raw.trim().parse().ok()
}

fn parse_boolean(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding of one query component.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            b'%' if index + 2 < bytes.len() => match hex_pair(bytes[index + 1], bytes[index + 2]) {
                Some(byte) => {
                    decoded.push(byte);
                    index += 3;
                }
                None => {
                    decoded.push(b'%');
                    index += 1;
                }
            },
            other => {
                decoded.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |byte: u8| char::from(byte).to_digit(16);
    let value = digit(high)? * 16 + digit(low)?;
    u8::try_from(value).ok()
}

/// Path parameters; a segment that is not valid percent-encoded UTF-8 is a 400 rather than
/// axum's plain-text rejection.
#[derive(Debug, Clone)]
pub struct PathSegments<T>(pub T);

impl<T, S> FromRequestParts<S> for PathSegments<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathSegments(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options(query: &str) -> Result<ListOptions, ApiError> {
        QueryParams::parse(Some(query)).list_options("actions")
    }

    #[test]
    fn list_defaults_are_30_and_0() {
        let parsed = QueryParams::parse(None).list_options("actions").unwrap();
        assert_eq!(
            parsed,
            ListOptions {
                limit: 30,
                skip: 0,
                count: false
            }
        );
    }

    #[test]
    fn limit_zero_means_the_maximum() {
        assert_eq!(options("limit=0").unwrap().limit, 200);
        assert_eq!(options("limit=200").unwrap().limit, 200);
        assert_eq!(options("limit=7&skip=3").unwrap().skip, 3);
    }

    #[test]
    fn out_of_range_and_non_integer_values_have_exact_messages() {
        assert_eq!(
            options("limit=201").unwrap_err().message(),
            "The query parameter 'limit' was malformed:\nThe value '201' is not in the range of 0 to 200 for actions."
        );
        assert_eq!(
            options("limit=-1").unwrap_err().message(),
            "The query parameter 'limit' was malformed:\nThe value '-1' is not in the range of 0 to 200 for actions."
        );
        assert_eq!(
            options("limit=abc").unwrap_err().message(),
            "The query parameter 'limit' was malformed:\nThe value 'abc' is not an integer for actions."
        );
        assert_eq!(
            options("skip=-2").unwrap_err().message(),
            "The query parameter 'skip' was malformed:\nThe value '-2' is not greater than or equal to 0 for actions."
        );
        assert_eq!(
            options("skip=x").unwrap_err().message(),
            "The query parameter 'skip' was malformed:\nThe value 'x' is not an integer for actions."
        );
        assert_eq!(
            options("count=maybe").unwrap_err().message(),
            "The query parameter 'count' was malformed:\n'maybe' is not a valid Boolean value"
        );
    }

    #[test]
    fn model_messages_raised_while_deserializing_carry_no_serde_location() {
        let error =
            parse_json::<whisk_model::RulePut>(br#"{"trigger":"t","action":"/_/a"}"#).unwrap_err();
        assert_eq!(
            error.message(),
            "The request content was malformed:\nrequirement failed: The fully qualified name of the entity must contain at least the namespace and the name of the entity."
        );
        let syntax = parse_json::<serde_json::Value>(b"{bad").unwrap_err();
        assert!(syntax.message().ends_with(" at line 1 column 2"));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let params = QueryParams::parse(Some("a=x%20y&b=1+2&c=%zz&d"));
        assert_eq!(params.get("a"), Some("x y"));
        assert_eq!(params.get("b"), Some("1 2"));
        assert_eq!(params.get("c"), Some("%zz"));
        assert_eq!(params.get("d"), Some(""));
    }

    #[test]
    fn content_type_must_be_json() {
        let mut headers = HeaderMap::new();
        assert!(require_json_content_type(&headers).is_err());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let error = require_json_content_type(&headers).unwrap_err();
        assert_eq!(error.status().as_u16(), 415);
        assert!(error.message().contains("[text/plain]"));
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(require_json_content_type(&headers).is_ok());
    }
}
