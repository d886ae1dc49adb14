//! The OpenAPI 2 documents the gateway keeps per API, and the pure operations on them:
//! reading a route-management request, adding and removing one endpoint, and finding the
//! operation a request path and method lead to.
//!
//! The documents have the shape OpenWhisk's route management gives its clients: `swagger: "2.0"`,
//! `info.title` (the API name), `basePath`, and `paths[relPath][method]` operations whose
//! `x-openwhisk` extension names the web action (`namespace`, `package`, `action`, `url`). The
//! `url`'s extension is the route's response type, so documents imported from a swagger file
//! and documents built here are served the same way.

use serde_json::{Map, Value, json};

use crate::web::{Extension, WebAddress};

/// The methods a route may have (`wsk`'s list), lower case as OpenAPI writes them.
pub const OPERATIONS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// The response types a route may ask for, which become the web action's extension.
pub const RESPONSE_TYPES: [&str; 5] = ["json", "http", "html", "text", "svg"];

/// Why a route-management request cannot be carried out; the messages are OpenWhisk's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiDocError {
    #[error("apidoc is required.")]
    MissingApidoc,
    #[error("apidoc field cannot be parsed. Ensure it is valid JSON.")]
    UnparsableApidoc,
    #[error("apidoc field is of type {0} and should be a JSON object or a JSON string.")]
    ApidocType(&'static str),
    #[error("apidoc is missing the namespace field")]
    MissingNamespace,
    #[error("swagger and gatewayBasePath are mutually exclusive and cannot be specified together.")]
    SwaggerAndBasePath,
    #[error("swagger field cannot be parsed. Ensure it is valid JSON.")]
    UnparsableSwagger,
    #[error("swagger is missing the {0} field.")]
    SwaggerMissing(&'static str),
    #[error("apidoc is missing the {0} field")]
    ApidocMissing(&'static str),
    #[error("action is missing the {0} field.")]
    ActionMissing(&'static str),
    #[error("'{0}' must begin with '/'.")]
    NoLeadingSlash(String),
    #[error("'{0}' is not a valid API verb.")]
    InvalidVerb(String),
    #[error("'{0}' is not a valid response type. Valid values are: json, http, html, text, svg")]
    InvalidResponseType(String),
    #[error("'{0}' is not a valid action name.")]
    InvalidActionName(String),
    #[error("path {0} does not exist in the API")]
    NoSuchPath(String),
    #[error("path {0} with operation {1} does not exist in the API")]
    NoSuchOperation(String, String),
}

/// The web action an operation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub package: Option<String>,
    pub action: String,
    pub extension: Extension,
}

impl Target {
    /// The web action address a request to `rel_path` is served as. Like OpenWhisk's gateway,
    /// an `.http` route passes the request's relative path on (as `__ow_path`), so an action
    /// behind a `{param}` path can read its parameters; the other types get none.
    pub fn address(&self, rel_path: &str) -> WebAddress {
        let extra_path = if self.extension == Extension::Http {
            rel_path.to_string()
        } else {
            String::new()
        };
        WebAddress {
            namespace: self.namespace.clone(),
            package: self.package.clone(),
            action: self.action.clone(),
            extension: self.extension,
            extra_path,
        }
    }
}

/// One route to add: `basePath` + `relPath` + method → web action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub base_path: String,
    pub api_name: Option<String>,
    pub rel_path: String,
    /// Lower case.
    pub operation: String,
    pub namespace: String,
    pub package: Option<String>,
    pub action: String,
    pub response_type: String,
    /// Where the platform is reached (`scheme://host[:port]`), for the operation's `url`.
    pub origin: String,
    /// OpenAPI parameter objects for the `{name}` segments of `rel_path`.
    pub path_parameters: Vec<Value>,
}

/// What a create request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum NewApi {
    /// A whole API from a swagger document, replacing any API on its base path.
    Swagger(Value),
    /// One endpoint, added to the API on its base path (created if missing).
    Endpoint(Endpoint),
}

impl NewApi {
    /// The base path the API lives at.
    pub fn base_path(&self) -> &str {
        match self {
            NewApi::Swagger(doc) => doc.get("basePath").and_then(Value::as_str).unwrap_or("/"),
            NewApi::Endpoint(endpoint) => &endpoint.base_path,
        }
    }
}

/// An object given either as JSON or as a string holding JSON (both clients do both).
fn object_or_json_text(
    value: &Value,
    unparsable: ApiDocError,
    type_error: impl Fn(&'static str) -> ApiDocError,
) -> Result<Map<String, Value>, ApiDocError> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::String(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(unparsable),
        },
        Value::Array(_) => Err(type_error("object")),
        Value::Number(_) => Err(type_error("number")),
        Value::Bool(_) => Err(type_error("boolean")),
        Value::Null => Err(type_error("object")),
    }
}

fn text_field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// `name`, `pkg/name` or `/ns/pkg/name` → (namespace if given, package, action).
fn split_action_name(name: &str) -> Option<(Option<&str>, Option<&str>, &str)> {
    let parts: Vec<&str> = name.trim_start_matches('/').split('/').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return None;
    }
    match parts.as_slice() {
        [action] => Some((None, None, action)),
        [package, action] if !name.starts_with('/') => Some((None, Some(package), action)),
        [namespace, action] => Some((Some(namespace), None, action)),
        [namespace, package, action] => Some((Some(namespace), Some(package), action)),
        _ => None,
    }
}

/// `scheme://host[:port]` of a URL, if it has one.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() {
        return None;
    }
    let host_end = rest.find('/').unwrap_or(rest.len());
    (host_end > 0).then(|| &url[..scheme.len() + 3 + host_end])
}

/// Reads a create request's body (`{"apidoc": ...}`) as the caller in namespace `caller`.
///
/// Like OpenWhisk, the caller's namespace replaces the one the client wrote (clients often send
/// `_`), and so does the action's namespace when it was the client's namespace too; an action in
/// another namespace keeps its own.
pub fn parse_create(
    body: &Value,
    caller: &str,
    response_type: &str,
    default_origin: &str,
) -> Result<NewApi, ApiDocError> {
    let apidoc = body.get("apidoc").ok_or(ApiDocError::MissingApidoc)?;
    let apidoc = object_or_json_text(apidoc, ApiDocError::UnparsableApidoc, |kind| {
        ApiDocError::ApidocType(kind)
    })?;
    let client_namespace = text_field(&apidoc, "namespace").ok_or(ApiDocError::MissingNamespace)?;
    if let Some(swagger) = apidoc.get("swagger").filter(|value| !value.is_null()) {
        if apidoc.contains_key("gatewayBasePath") {
            return Err(ApiDocError::SwaggerAndBasePath);
        }
        let swagger = object_or_json_text(swagger, ApiDocError::UnparsableSwagger, |_| {
            ApiDocError::UnparsableSwagger
        })?;
        for field in ["basePath", "paths", "info"] {
            if swagger.get(field).is_none_or(Value::is_null) {
                return Err(ApiDocError::SwaggerMissing(field));
            }
        }
        let base_path = text_field(&swagger, "basePath").unwrap_or_default();
        if !base_path.starts_with('/') {
            return Err(ApiDocError::NoLeadingSlash(base_path.to_string()));
        }
        return Ok(NewApi::Swagger(Value::Object(swagger)));
    }
    let base_path = text_field(&apidoc, "gatewayBasePath")
        .ok_or(ApiDocError::ApidocMissing("gatewayBasePath"))?;
    let rel_path =
        text_field(&apidoc, "gatewayPath").ok_or(ApiDocError::ApidocMissing("gatewayPath"))?;
    let method =
        text_field(&apidoc, "gatewayMethod").ok_or(ApiDocError::ApidocMissing("gatewayMethod"))?;
    let action = apidoc
        .get("action")
        .and_then(Value::as_object)
        .ok_or(ApiDocError::ApidocMissing("action"))?;
    for field in ["backendMethod", "backendUrl", "namespace", "name"] {
        if text_field(action, field).is_none() {
            return Err(ApiDocError::ActionMissing(field));
        }
    }
    for path in [base_path, rel_path] {
        if !path.starts_with('/') {
            return Err(ApiDocError::NoLeadingSlash(path.to_string()));
        }
    }
    let operation = method.to_ascii_lowercase();
    if !OPERATIONS.contains(&operation.as_str()) {
        return Err(ApiDocError::InvalidVerb(method.to_string()));
    }
    let response_type = response_type.to_ascii_lowercase();
    if !RESPONSE_TYPES.contains(&response_type.as_str()) {
        return Err(ApiDocError::InvalidResponseType(response_type));
    }
    let name = text_field(action, "name").unwrap_or_default();
    let (named_namespace, package, action_name) =
        split_action_name(name).ok_or_else(|| ApiDocError::InvalidActionName(name.to_string()))?;
    let action_namespace = named_namespace
        .or_else(|| text_field(action, "namespace"))
        .unwrap_or(caller);
    let namespace = if action_namespace == client_namespace || action_namespace == "_" {
        caller
    } else {
        action_namespace
    };
    let origin = text_field(action, "backendUrl")
        .and_then(origin_of)
        .unwrap_or(default_origin);
    Ok(NewApi::Endpoint(Endpoint {
        base_path: base_path.to_string(),
        api_name: text_field(&apidoc, "apiName").map(str::to_owned),
        rel_path: rel_path.to_string(),
        operation,
        namespace: namespace.to_string(),
        package: package.map(str::to_owned),
        action: action_name.to_string(),
        response_type,
        origin: origin.to_string(),
        path_parameters: path_parameters(&apidoc, rel_path),
    }))
}

/// The `{name}` segments of a relative path, in order, each once.
fn template_names(rel_path: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for segment in rel_path.split('/') {
        if let Some(name) = segment
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .filter(|name| !name.is_empty())
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

/// The parameter objects of a path's templates: the client's own (`wsk` sends
/// `pathParameters`) where it gave them, a plain required string otherwise.
fn path_parameters(apidoc: &Map<String, Value>, rel_path: &str) -> Vec<Value> {
    let given = apidoc
        .get("pathParameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    template_names(rel_path)
        .into_iter()
        .map(|name| {
            given
                .iter()
                .find(|parameter| parameter.get("name").and_then(Value::as_str) == Some(name))
                .cloned()
                .unwrap_or_else(
                    || json!({"name": name, "in": "path", "required": true, "type": "string"}),
                )
        })
        .collect()
}

/// An API with no routes yet; its name defaults to its base path, as in OpenWhisk.
pub fn base_document(base_path: &str, api_name: Option<&str>) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": api_name.unwrap_or(base_path), "version": "1.0.0"},
        "basePath": base_path,
        "paths": {},
    })
}

/// Adds (or replaces) one operation in `doc`.
pub fn add_endpoint(doc: &mut Value, endpoint: &Endpoint) {
    let package = endpoint.package.as_deref().unwrap_or("default");
    let url = format!(
        "{}/api/v1/web/{}/{}/{}.{}",
        endpoint.origin.trim_end_matches('/'),
        endpoint.namespace,
        package,
        endpoint.action,
        endpoint.response_type
    );
    let mut operation = json!({
        "operationId": format!("{}_{}", endpoint.operation, endpoint.rel_path),
        "x-openwhisk": {
            "namespace": endpoint.namespace,
            "package": endpoint.package.as_deref().unwrap_or(""),
            "action": endpoint.action,
            "url": url,
        },
        "responses": {"default": {"description": "Default response"}},
    });
    if !endpoint.path_parameters.is_empty() {
        operation["parameters"] = Value::Array(endpoint.path_parameters.clone());
    }
    if !doc.get("paths").is_some_and(Value::is_object) {
        doc["paths"] = json!({});
    }
    let path = &mut doc["paths"][endpoint.rel_path.as_str()];
    if !path.is_object() {
        *path = json!({});
    }
    path[endpoint.operation.as_str()] = operation;
}

/// Removes a whole relative path, or one of its operations; a path left without operations
/// goes too.
pub fn remove_endpoint(
    doc: &mut Value,
    rel_path: &str,
    operation: Option<&str>,
) -> Result<(), ApiDocError> {
    let paths = doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiDocError::NoSuchPath(rel_path.to_string()))?;
    let Some(operation) = operation else {
        return paths
            .remove(rel_path)
            .map(|_| ())
            .ok_or_else(|| ApiDocError::NoSuchPath(rel_path.to_string()));
    };
    let operation = operation.to_ascii_lowercase();
    let no_such = || ApiDocError::NoSuchOperation(rel_path.to_string(), operation.clone());
    let operations = paths
        .get_mut(rel_path)
        .and_then(Value::as_object_mut)
        .ok_or_else(no_such)?;
    operations.remove(&operation).ok_or_else(no_such)?;
    if operations.is_empty() {
        paths.remove(rel_path);
    }
    Ok(())
}

/// Whether an API has no routes left.
pub fn is_empty(doc: &Value) -> bool {
    doc.get("paths")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty)
}

/// The part of `path` below `base_path`, with its leading slash, if `path` is under it.
pub fn relative_path<'a>(base_path: &str, path: &'a str) -> Option<&'a str> {
    let base = base_path.trim_end_matches('/');
    let rest = path.strip_prefix(base)?;
    (rest.starts_with('/')).then_some(rest)
}

/// Whether a request's relative path fits a route's, where a `{name}` segment stands for any
/// one segment.
fn path_matches(template: &str, path: &str) -> bool {
    let template: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    template.len() == path.len()
        && template.iter().zip(&path).all(|(expected, actual)| {
            expected == actual
                || (expected.starts_with('{') && expected.ends_with('}') && !actual.is_empty())
        })
}

/// The web action for `method` on `rel_path` in `doc`: a literal path wins over a template.
///
/// A browser's pre-flight `OPTIONS` on a path without an `options` operation goes to one of
/// the path's actions, so it is answered (CORS headers, or the action's own `OPTIONS` handling)
/// as a direct web action request would be.
pub fn find_operation(doc: &Value, rel_path: &str, method: &str) -> Option<Target> {
    let paths = doc.get("paths")?.as_object()?;
    let method = method.to_ascii_lowercase();
    let operations = paths.get(rel_path).or_else(|| {
        paths
            .iter()
            .find(|(template, _)| path_matches(template, rel_path))
            .map(|(_, operations)| operations)
    })?;
    match operations.get(&method) {
        Some(operation) => target_of(operation),
        None if method == "options" => OPERATIONS
            .iter()
            .find_map(|name| operations.get(*name).and_then(target_of)),
        None => None,
    }
}

fn target_of(operation: &Value) -> Option<Target> {
    let extension = operation.pointer("/x-openwhisk");
    let extension = extension?;
    let text = |name: &str| {
        extension
            .get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    let from_url = text("url")
        .and_then(|url| url.split_once("/api/v1/web/"))
        .and_then(|(_, path)| WebAddress::parse(path));
    let namespace = text("namespace")
        .map(str::to_owned)
        .or_else(|| from_url.as_ref().map(|address| address.namespace.clone()))?;
    let action = text("action")
        .map(str::to_owned)
        .or_else(|| from_url.as_ref().map(|address| address.action.clone()))?;
    let package = match text("package") {
        Some(package) => Some(package.to_string()),
        None if text("action").is_some() => None,
        None => from_url
            .as_ref()
            .and_then(|address| address.package.clone()),
    };
    let extension = from_url.map_or(Extension::Json, |address| address.extension);
    Some(Target {
        namespace,
        package,
        action,
        extension,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cli_body() -> Value {
        json!({"apidoc": {
            "namespace": "_",
            "gatewayBasePath": "/hello",
            "gatewayPath": "/world",
            "gatewayMethod": "get",
            "id": "API:_:/hello",
            "action": {
                "name": "greet",
                "namespace": "_",
                "backendMethod": "GET",
                "backendUrl": "https://example.test:3233/api/v1/web/_/default/greet.http",
                "authkey": "u:k"
            }
        }})
    }

    fn endpoint_of(api: NewApi) -> Endpoint {
        match api {
            NewApi::Endpoint(endpoint) => endpoint,
            NewApi::Swagger(doc) => panic!("expected an endpoint, got {doc}"),
        }
    }

    #[test]
    fn cli_request_becomes_an_endpoint_of_the_caller() {
        let api = parse_create(&cli_body(), "guest", "http", "http://fallback").unwrap();
        assert_eq!(api.base_path(), "/hello");
        let endpoint = endpoint_of(api);
        assert_eq!(endpoint.namespace, "guest");
        assert_eq!(endpoint.operation, "get");
        assert_eq!(endpoint.package, None);
        assert_eq!(endpoint.origin, "https://example.test:3233");
        let mut doc = base_document("/hello", None);
        add_endpoint(&mut doc, &endpoint);
        assert_eq!(doc["info"]["title"], "/hello");
        let operation = &doc["paths"]["/world"]["get"];
        assert_eq!(operation["operationId"], "get_/world");
        assert_eq!(
            operation["x-openwhisk"]["url"],
            "https://example.test:3233/api/v1/web/guest/default/greet.http"
        );
        let target = find_operation(&doc, "/world", "GET").unwrap();
        assert_eq!(target.extension, Extension::Http);
        assert_eq!(target.namespace, "guest");
        assert_eq!(target.address("/world").action, "greet");
        assert_eq!(
            target.address("/world").extra_path,
            "/world",
            ".http passes the path"
        );
        assert!(find_operation(&doc, "/world", "POST").is_none());
        assert_eq!(
            find_operation(&doc, "/world", "OPTIONS"),
            Some(target),
            "pre-flight goes to the path's action"
        );
        assert!(find_operation(&doc, "/other", "OPTIONS").is_none());
        assert!(find_operation(&doc, "/other", "GET").is_none());
    }

    #[test]
    fn packaged_and_foreign_actions_keep_their_parts() {
        let mut body = cli_body();
        body["apidoc"]["action"]["name"] = json!("tools/greet");
        let endpoint = endpoint_of(parse_create(&body, "guest", "json", "http://h").unwrap());
        assert_eq!(endpoint.package.as_deref(), Some("tools"));
        body["apidoc"]["action"]["name"] = json!("/other/pkg/greet");
        let endpoint = endpoint_of(parse_create(&body, "guest", "json", "http://h").unwrap());
        assert_eq!(endpoint.namespace, "other");
        assert_eq!(endpoint.package.as_deref(), Some("pkg"));
        body["apidoc"]["action"]["name"] = json!("a//b");
        assert_eq!(
            parse_create(&body, "guest", "json", "http://h").unwrap_err(),
            ApiDocError::InvalidActionName("a//b".into())
        );
    }

    #[test]
    fn apidoc_may_be_json_text() {
        let mut body = cli_body();
        body["apidoc"] = json!(body["apidoc"].to_string());
        assert!(parse_create(&body, "guest", "json", "http://h").is_ok());
        body["apidoc"] = json!("{not json");
        assert_eq!(
            parse_create(&body, "guest", "json", "http://h").unwrap_err(),
            ApiDocError::UnparsableApidoc
        );
        body["apidoc"] = json!(3);
        assert_eq!(
            parse_create(&body, "guest", "json", "http://h")
                .unwrap_err()
                .to_string(),
            "apidoc field is of type number and should be a JSON object or a JSON string."
        );
    }

    #[test]
    fn every_missing_field_is_named() {
        let parse = |body: &Value| parse_create(body, "guest", "json", "http://h").unwrap_err();
        assert_eq!(parse(&json!({})), ApiDocError::MissingApidoc);
        for (field, expected) in [
            ("namespace", "apidoc is missing the namespace field"),
            (
                "gatewayBasePath",
                "apidoc is missing the gatewayBasePath field",
            ),
            ("gatewayPath", "apidoc is missing the gatewayPath field"),
            ("gatewayMethod", "apidoc is missing the gatewayMethod field"),
            ("action", "apidoc is missing the action field"),
        ] {
            let mut body = cli_body();
            body["apidoc"].as_object_mut().unwrap().remove(field);
            assert_eq!(parse(&body).to_string(), expected);
        }
        for field in ["backendMethod", "backendUrl", "namespace", "name"] {
            let mut body = cli_body();
            body["apidoc"]["action"]
                .as_object_mut()
                .unwrap()
                .remove(field);
            assert_eq!(
                parse(&body).to_string(),
                format!("action is missing the {field} field.")
            );
        }
        let mut body = cli_body();
        body["apidoc"]["gatewayPath"] = json!("world");
        assert_eq!(parse(&body).to_string(), "'world' must begin with '/'.");
        let mut body = cli_body();
        body["apidoc"]["gatewayMethod"] = json!("fetch");
        assert_eq!(parse(&body), ApiDocError::InvalidVerb("fetch".into()));
        assert_eq!(
            parse_create(&cli_body(), "guest", "xml", "http://h").unwrap_err(),
            ApiDocError::InvalidResponseType("xml".into())
        );
    }

    #[test]
    fn swagger_documents_are_checked_and_taken_whole() {
        let swagger = json!({
            "swagger": "2.0",
            "basePath": "/shop",
            "info": {"title": "Shop", "version": "1.0"},
            "paths": {"/items/{id}": {"get": {
                "operationId": "getItem",
                "x-openwhisk": {"namespace": "guest", "package": "", "action": "item",
                                "url": "http://h/api/v1/web/guest/default/item.http"}
            }}}
        });
        let body = json!({"apidoc": {"namespace": "_", "swagger": swagger.to_string()}});
        let api = parse_create(&body, "guest", "json", "http://h").unwrap();
        assert_eq!(api.base_path(), "/shop");
        let NewApi::Swagger(doc) = api else {
            panic!("expected swagger")
        };
        let target = find_operation(&doc, "/items/42", "get").unwrap();
        assert_eq!(target.action, "item");
        assert_eq!(target.extension, Extension::Http);
        let json_target = Target {
            extension: Extension::Json,
            ..target
        };
        assert_eq!(json_target.address("/items/42").extra_path, "");
        assert!(find_operation(&doc, "/items", "get").is_none());
        for field in ["basePath", "paths", "info"] {
            let mut broken = swagger.clone();
            broken.as_object_mut().unwrap().remove(field);
            let body = json!({"apidoc": {"namespace": "_", "swagger": broken}});
            assert_eq!(
                parse_create(&body, "guest", "json", "http://h").unwrap_err(),
                ApiDocError::SwaggerMissing(field)
            );
        }
        let both =
            json!({"apidoc": {"namespace": "_", "swagger": swagger, "gatewayBasePath": "/x"}});
        assert_eq!(
            parse_create(&both, "guest", "json", "http://h").unwrap_err(),
            ApiDocError::SwaggerAndBasePath
        );
        let bad = json!({"apidoc": {"namespace": "_", "swagger": "{"}});
        assert_eq!(
            parse_create(&bad, "guest", "json", "http://h").unwrap_err(),
            ApiDocError::UnparsableSwagger
        );
    }

    #[test]
    fn removing_operations_and_paths() {
        let mut doc = base_document("/hello", Some("Hello"));
        let mut endpoint =
            endpoint_of(parse_create(&cli_body(), "guest", "json", "http://h").unwrap());
        add_endpoint(&mut doc, &endpoint);
        endpoint.operation = "post".into();
        add_endpoint(&mut doc, &endpoint);
        assert_eq!(
            remove_endpoint(&mut doc, "/world", Some("PUT")).unwrap_err(),
            ApiDocError::NoSuchOperation("/world".into(), "put".into())
        );
        remove_endpoint(&mut doc, "/world", Some("GET")).unwrap();
        assert!(!is_empty(&doc));
        remove_endpoint(&mut doc, "/world", Some("post")).unwrap();
        assert!(is_empty(&doc), "a path without operations goes");
        assert_eq!(
            remove_endpoint(&mut doc, "/world", None)
                .unwrap_err()
                .to_string(),
            "path /world does not exist in the API"
        );
        add_endpoint(&mut doc, &endpoint);
        remove_endpoint(&mut doc, "/world", None).unwrap();
        assert!(is_empty(&doc));
    }

    #[test]
    fn path_templates_become_parameters() {
        let mut body = cli_body();
        body["apidoc"]["gatewayPath"] = json!("/items/{id}/parts/{part}/{id}");
        body["apidoc"]["pathParameters"] = json!([
            {"name": "part", "in": "path", "required": true, "type": "string", "description": "which part"}
        ]);
        let endpoint = endpoint_of(parse_create(&body, "guest", "http", "http://h").unwrap());
        assert_eq!(
            endpoint.path_parameters,
            vec![
                json!({"name": "id", "in": "path", "required": true, "type": "string"}),
                json!({"name": "part", "in": "path", "required": true, "type": "string", "description": "which part"}),
            ]
        );
        let mut doc = base_document("/hello", None);
        add_endpoint(&mut doc, &endpoint);
        let operation = &doc["paths"]["/items/{id}/parts/{part}/{id}"]["get"];
        assert_eq!(operation["parameters"].as_array().unwrap().len(), 2);
        let plain = endpoint_of(parse_create(&cli_body(), "guest", "json", "http://h").unwrap());
        let mut doc = base_document("/hello", None);
        add_endpoint(&mut doc, &plain);
        assert!(doc["paths"]["/world"]["get"].get("parameters").is_none());
    }

    #[test]
    fn relative_paths_under_a_base() {
        assert_eq!(relative_path("/hello", "/hello/world"), Some("/world"));
        assert_eq!(relative_path("/hello/", "/hello/world"), Some("/world"));
        assert_eq!(relative_path("/", "/world"), Some("/world"));
        assert_eq!(relative_path("/hello", "/helloworld"), None);
        assert_eq!(relative_path("/hello", "/hello"), None);
    }
}
