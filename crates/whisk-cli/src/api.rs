//! `wsk api create|get|delete|list`: routes from an API path and verb to web actions.
//!
//! Route management is reached as OpenWhisk exposes it, through the `whisk.system/apimgmt`
//! web actions (`createApi`, `getApi`, `deleteApi`, `.http`), which whisk-rs answers natively;
//! the requests, outputs and messages follow `wsk`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use whisk_cli::client::Client;
use whisk_cli::config;
use whisk_cli::names::QualifiedName;

use crate::{Settings, entity_path, pretty};

/// The route-management actions, below `/api/v1/`.
const MANAGEMENT: [&str; 3] = ["web", "whisk.system", "apimgmt"];

/// The verbs a route may have.
const VERBS: [&str; 7] = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"];

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Create a new API: `[BASE_PATH|API_NAME] API_PATH API_VERB ACTION`, or `--config-file`.
    Create(ApiCreate),
    /// Show an API's configuration (its OpenAPI document).
    Get {
        /// The API's base path (starting with `/`) or its name.
        base_path_or_name: String,
        /// Show the full API configuration, not just the OpenAPI document.
        #[arg(short = 'f', long)]
        full: bool,
        /// Output format: json or yaml.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Delete an API, one of its paths, or one verb of a path.
    Delete {
        base_path_or_name: String,
        api_path: Option<String>,
        api_verb: Option<String>,
    },
    /// List APIs, optionally only one API, path or verb.
    List {
        base_path_or_name: Option<String>,
        api_path: Option<String>,
        api_verb: Option<String>,
        #[arg(short = 's', long, default_value_t = 0)]
        skip: u64,
        #[arg(short = 'l', long, default_value_t = 30)]
        limit: u64,
        /// Sort by base path, path and verb.
        #[arg(short = 'n', long)]
        name_sort: bool,
        /// Show each route in full.
        #[arg(short = 'f', long)]
        full: bool,
    },
}

#[derive(Debug, Args)]
pub struct ApiCreate {
    /// `[BASE_PATH|API_NAME] API_PATH API_VERB ACTION`.
    #[arg(num_args = 0..=4)]
    args: Vec<String>,
    /// Friendly name of the API (default: the base path); ignored with `--config-file`.
    #[arg(short = 'n', long)]
    apiname: Option<String>,
    /// A swagger (OpenAPI 2) file, JSON or YAML, holding the whole API.
    #[arg(short = 'c', long, value_name = "CFG_FILE")]
    config_file: Option<PathBuf>,
    /// The web action response type: html, http, json, text or svg.
    #[arg(long, default_value = "json")]
    response_type: String,
}

pub async fn api(command: ApiCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    match command {
        ApiCommand::Create(create) => create_api(&client, settings, create).await,
        ApiCommand::Get {
            base_path_or_name,
            full,
            format,
        } => get_api(&client, &base_path_or_name, full, &format).await,
        ApiCommand::Delete {
            base_path_or_name,
            api_path,
            api_verb,
        } => delete_api(&client, &base_path_or_name, api_path, api_verb).await,
        ApiCommand::List {
            base_path_or_name,
            api_path,
            api_verb,
            skip,
            limit,
            name_sort,
            full,
        } => {
            let filter = Filter::new(api_path, api_verb)?;
            let query = match &base_path_or_name {
                Some(wanted) => vec![("basepath", wanted.clone())],
                None => vec![("skip", skip.to_string()), ("limit", limit.to_string())],
            };
            let answer = management(&client, Method::GET, "getApi", &query, None)
                .await
                .map_err(|error| anyhow!("Unable to obtain the API list: {error}"))?;
            let apis = answer["apis"].as_array().cloned().unwrap_or_default();
            let mut routes: Vec<Route> = apis
                .iter()
                .flat_map(|api| routes_of(&api["value"], &filter))
                .collect();
            if name_sort {
                routes.sort_by_key(|route| {
                    format!("{}{}{}", route.base_path, route.rel_path, route.verb).to_lowercase()
                });
            }
            out!("ok: APIs");
            for line in list_lines(&routes, full) {
                out!("{line}");
            }
            Ok(())
        }
    }
}

async fn management(
    client: &Client,
    method: Method,
    action: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<Value, whisk_cli::client::ClientError> {
    let file = format!("{action}.http");
    let mut segments = MANAGEMENT.to_vec();
    segments.push(&file);
    client.send(method, &segments, query, body).await
}

fn check_path(path: &str) -> anyhow::Result<()> {
    if !path.starts_with('/') {
        bail!("'{path}' must begin with '/'.");
    }
    Ok(())
}

fn check_verb(verb: &str) -> anyhow::Result<String> {
    let upper = verb.to_ascii_uppercase();
    if !VERBS.contains(&upper.as_str()) {
        bail!(
            "'{verb}' is not a valid API verb.  Valid values are: {}",
            VERBS.join(", ")
        );
    }
    Ok(upper)
}

/// Whether a relative path has `{name}` segments.
fn has_path_parameters(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}'))
}

/// The OpenAPI parameter objects `wsk` sends for the `{name}` segments of a path, each once.
fn path_parameters(path: &str) -> Vec<Value> {
    let mut names: Vec<&str> = Vec::new();
    for segment in path.split('/') {
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
        .into_iter()
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "description": format!("Default description for '{name}'"),
                "required": true,
                "type": "string",
            })
        })
        .collect()
}

async fn create_api(client: &Client, settings: &Settings, create: ApiCreate) -> anyhow::Result<()> {
    let fail = |error: &dyn std::fmt::Display| anyhow!("Unable to create API: {error}");
    if create.args.is_empty() {
        let Some(file) = &create.config_file else {
            bail!(
                "Invalid argument(s). Specify a swagger file or specify an API base path with an API path, an API verb, and an action name."
            );
        };
        let swagger = read_swagger(file)?;
        let body =
            json!({"apidoc": {"namespace": settings.namespace, "swagger": swagger.to_string()}});
        let query = [("responsetype", create.response_type.clone())];
        let answer = management(client, Method::POST, "createApi", &query, Some(&body))
            .await
            .map_err(|error| fail(&error))?;
        let base_url = answer["gwApiUrl"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/');
        let base_path = answer["apidoc"]["basePath"].as_str().unwrap_or("");
        for route in routes_of(&answer, &Filter::default()) {
            let path = format!("{}{}", base_path.trim_end_matches('/'), route.rel_path);
            let url = format!("{base_url}{}", route.rel_path);
            if route.action.is_empty() {
                out!("ok: created API {path} {}\n{url}", route.verb);
            } else {
                out!(
                    "ok: created API {path} {} for action {}\n{url}",
                    route.verb,
                    route.action
                );
            }
        }
        return Ok(());
    }
    if !(3..=4).contains(&create.args.len()) {
        bail!(
            "Invalid argument(s). Specify a swagger file or specify an API base path with an API path, an API verb, and an action name."
        );
    }
    let (base_path, name_argument, rest) = if create.args.len() == 4 {
        let first = create.args[0].clone();
        if first.starts_with('/') {
            if has_path_parameters(&first) {
                bail!(
                    "The base path '{first}' cannot have parameters. Only the relative path supports path parameters."
                );
            }
            (first, None, &create.args[1..])
        } else {
            ("/".to_string(), Some(first), &create.args[1..])
        }
    } else {
        ("/".to_string(), None, &create.args[..])
    };
    let (rel_path, verb, action) = (&rest[0], &rest[1], &rest[2]);
    check_path(rel_path)?;
    if has_path_parameters(rel_path) && create.response_type != "http" {
        bail!("A response type of 'http' is required when using path parameters.");
    }
    let verb = check_verb(verb)?;
    let api_name = match (name_argument, create.apiname) {
        (Some(_), Some(_)) => bail!("An API name can only be specified once."),
        (named, flag) => named.or(flag),
    };
    let qualified = QualifiedName::parse(action, &settings.namespace)
        .map_err(|_| anyhow!("'{action}' is not a valid action name."))?;
    require_web_action(client, &qualified).await?;
    let origin = origin(settings)?;
    let package = qualified.package.as_deref().unwrap_or("default");
    let backend_url = format!(
        "{origin}/api/v1/web/{}/{package}/{}.http",
        qualified.namespace, qualified.name
    );
    let mut apidoc = json!({
        "namespace": settings.namespace,
        "gatewayBasePath": base_path,
        "gatewayPath": rel_path,
        "gatewayMethod": verb,
        "id": format!("API:{}:{base_path}", settings.namespace),
        "action": {
            "name": qualified.segments().join("/"),
            "namespace": qualified.namespace,
            "backendMethod": verb,
            "backendUrl": backend_url,
            "authkey": settings.auth.clone().unwrap_or_default(),
        },
    });
    if let Some(name) = api_name {
        apidoc["apiName"] = json!(name);
    }
    let parameters = path_parameters(rel_path);
    if !parameters.is_empty() {
        apidoc["pathParameters"] = Value::Array(parameters);
    }
    let query = [("responsetype", create.response_type.clone())];
    let answer = management(
        client,
        Method::POST,
        "createApi",
        &query,
        Some(&json!({ "apidoc": apidoc })),
    )
    .await
    .map_err(|error| fail(&error))?;
    let base_url = answer["gwApiUrl"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches('/');
    let created = routes_of(
        &answer,
        &Filter::new(Some(rel_path.clone()), Some(verb.clone()))?,
    );
    let action_name = created
        .first()
        .map(|route| route.action.clone())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            format!(
                "/{}/{}",
                qualified.namespace,
                qualified.segments().join("/")
            )
        });
    out!(
        "ok: created API {}{rel_path} {verb} for action {action_name}\n{base_url}{rel_path}",
        base_path.trim_end_matches('/')
    );
    Ok(())
}

/// `scheme://host[:port]` of the configured API host.
fn origin(settings: &Settings) -> anyhow::Result<String> {
    let base = config::api_base(
        settings.apihost.as_deref().unwrap_or(""),
        &settings.apiversion,
    )?;
    Ok(base.origin().ascii_serialization())
}

/// A route may only lead to a web action, as `wsk` checks before asking for it.
async fn require_web_action(client: &Client, name: &QualifiedName) -> anyhow::Result<()> {
    let full_name = name.fully_qualified();
    let action = client
        .send(Method::GET, &entity_path(name, "actions"), &[], None)
        .await
        .map_err(|error| anyhow!("Unable to get action '{full_name}': {error}"))?;
    let exported = action["annotations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|annotation| {
            annotation["key"] == "web-export" && matches!(&annotation["value"], Value::Bool(true))
        });
    if !exported {
        bail!(
            "Action '{full_name}' is not a web action. Issue 'wsk action update \"{full_name}\" --web true' to convert the action to a web action."
        );
    }
    Ok(())
}

/// Reads a swagger file (YAML when its name ends in `yaml`/`yml`, JSON otherwise) and checks
/// the fields route management needs.
fn read_swagger(file: &Path) -> anyhow::Result<Value> {
    let name = file.display();
    let text = std::fs::read_to_string(file)
        .map_err(|error| anyhow!("Error reading swagger file '{name}': {error}"))?;
    let is_yaml = file
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension == "yaml" || extension == "yml");
    let swagger: Value = if is_yaml {
        serde_norway::from_str(&text)
            .map_err(|error| anyhow!("Unable to parse YAML configuration file: {error}"))?
    } else {
        serde_json::from_str(&text)
            .map_err(|error| anyhow!("Error parsing swagger file '{name}': {error}"))?
    };
    let present = |field: &str| swagger.get(field).is_some_and(|value| !value.is_null());
    if !["basePath", "swagger", "info", "paths"]
        .iter()
        .all(|field| present(field))
    {
        bail!("Swagger file is invalid (missing basePath, info, paths, or swagger fields)");
    }
    if !swagger["basePath"]
        .as_str()
        .is_some_and(|base| base.starts_with('/'))
    {
        bail!("Swagger file basePath must start with a leading slash (/)");
    }
    Ok(swagger)
}

async fn get_api(
    client: &Client,
    base_path_or_name: &str,
    full: bool,
    format: &str,
) -> anyhow::Result<()> {
    let format = format.to_ascii_lowercase();
    if format != "json" && format != "yaml" {
        bail!("Invalid format type: {format}");
    }
    let answer = management(
        client,
        Method::GET,
        "getApi",
        &[("basepath", base_path_or_name.to_string())],
        None,
    )
    .await
    .map_err(|error| anyhow!("Unable to get API '{base_path_or_name}': {error}"))?;
    let value = &answer["apis"][0]["value"];
    let shown = if full { value } else { &value["apidoc"] };
    if shown.is_null() {
        if base_path_or_name.starts_with('/') {
            bail!("API does not exist for basepath {base_path_or_name}");
        }
        bail!("API does not exist for API name {base_path_or_name}");
    }
    if format == "yaml" {
        let yaml = serde_norway::to_string(shown)
            .map_err(|error| anyhow!("Unable to convert API into YAML: {error}"))?;
        out!("{yaml}");
    } else {
        out!("{}", pretty(shown)?);
    }
    Ok(())
}

async fn delete_api(
    client: &Client,
    base_path_or_name: &str,
    api_path: Option<String>,
    api_verb: Option<String>,
) -> anyhow::Result<()> {
    let mut query = vec![("basepath", base_path_or_name.to_string())];
    if let Some(path) = &api_path {
        check_path(path)?;
        query.push(("relpath", path.clone()));
    }
    let verb = api_verb.as_deref().map(check_verb).transpose()?;
    if let Some(verb) = &verb {
        query.push(("operation", verb.clone()));
    }
    management(client, Method::DELETE, "deleteApi", &query, None)
        .await
        .map_err(|error| anyhow!("Unable to delete API: {error}"))?;
    match (api_path, verb) {
        (None, _) => out!("ok: deleted API {base_path_or_name}"),
        (Some(path), None) => out!("ok: deleted {path} from {base_path_or_name}"),
        (Some(path), Some(verb)) => {
            out!("ok: deleted {path} {verb} from {base_path_or_name}")
        }
    }
    Ok(())
}

/// Which routes of an API a listing shows.
#[derive(Debug, Default)]
struct Filter {
    rel_path: Option<String>,
    verb: Option<String>,
}

impl Filter {
    fn new(rel_path: Option<String>, verb: Option<String>) -> anyhow::Result<Self> {
        if let Some(path) = &rel_path {
            check_path(path)?;
        }
        let verb = verb.as_deref().map(check_verb).transpose()?;
        Ok(Self { rel_path, verb })
    }

    fn keeps(&self, rel_path: &str, verb: &str) -> bool {
        self.rel_path
            .as_deref()
            .is_none_or(|wanted| wanted == rel_path)
            && self
                .verb
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(verb))
    }
}

/// One route of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    /// `/ns/[pkg/]action`, or empty when the operation names none.
    action: String,
    /// As the document writes it (lower case).
    verb: String,
    api_name: String,
    base_path: String,
    rel_path: String,
    url: String,
}

/// The routes of one API (`{gwApiUrl, apidoc}`), paths and verbs in name order.
fn routes_of(api: &Value, filter: &Filter) -> Vec<Route> {
    let apidoc = &api["apidoc"];
    let base_url = api["gwApiUrl"].as_str().unwrap_or("").trim_end_matches('/');
    let api_name = apidoc["info"]["title"].as_str().unwrap_or("").to_string();
    let base_path = apidoc["basePath"].as_str().unwrap_or("").to_string();
    let mut routes = Vec::new();
    let Some(paths) = apidoc["paths"].as_object() else {
        return routes;
    };
    let mut paths: Vec<_> = paths.iter().collect();
    paths.sort_by(|a, b| a.0.cmp(b.0));
    for (rel_path, operations) in paths {
        let Some(operations) = operations.as_object() else {
            continue;
        };
        let mut operations: Vec<_> = operations.iter().collect();
        operations.sort_by(|a, b| a.0.cmp(b.0));
        for (verb, operation) in operations {
            if !filter.keeps(rel_path, verb) {
                continue;
            }
            let target = &operation["x-openwhisk"];
            let text = |field: &str| target[field].as_str().unwrap_or("").to_string();
            let action = match (text("namespace"), text("package"), text("action")) {
                (_, _, action) if action.is_empty() => String::new(),
                (namespace, package, action) if package.is_empty() => {
                    format!("/{namespace}/{action}")
                }
                (namespace, package, action) => format!("/{namespace}/{package}/{action}"),
            };
            routes.push(Route {
                action,
                verb: verb.clone(),
                api_name: api_name.clone(),
                base_path: base_path.clone(),
                rel_path: rel_path.clone(),
                url: format!("{base_url}{rel_path}"),
            });
        }
    }
    routes
}

fn truncated(text: &str, width: usize) -> &str {
    match text.char_indices().nth(width) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `wsk api list` output after its `ok: APIs` line: a table whose action and name columns
/// fit their longest entries (at most 40 and 30 characters), or with `--full` one block per route.
fn list_lines(routes: &[Route], full: bool) -> Vec<String> {
    if full {
        return routes
            .iter()
            .map(|route| {
                format!(
                    "Action: {}\n   API Name: {}\n   Base path: {}\n   Path: {}\n   Verb: {}\n   URL: {}",
                    route.action,
                    route.api_name,
                    route.base_path,
                    route.rel_path,
                    route.verb,
                    route.url
                )
            })
            .collect();
    }
    let (action_width, name_width) = if routes.is_empty() {
        (30, 19)
    } else {
        let longest = |pick: fn(&Route) -> usize| routes.iter().map(pick).max().unwrap_or(0);
        (
            longest(|route| route.action.chars().count()).clamp("Action".len(), 40),
            longest(|route| route.api_name.chars().count()).clamp("API Name".len(), 30),
        )
    };
    let row = |action: &str, verb: &str, name: &str, url: &str| {
        format!(
            "{action:<action_width$} {verb:>7} {name:>width$}  {url}",
            width = name_width + 1
        )
    };
    let mut lines = vec![row("Action", "Verb", "API Name", "URL")];
    for route in routes {
        lines.push(row(
            truncated(&route.action, action_width),
            &route.verb,
            truncated(&route.api_name, name_width),
            &route.url,
        ));
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn api() -> Value {
        json!({
            "gwApiUrl": "http://h/api/guest/hello",
            "apidoc": {
                "basePath": "/hello",
                "info": {"title": "Hello"},
                "paths": {
                    "/world": {
                        "post": {"x-openwhisk": {"namespace": "guest", "package": "", "action": "echo"}},
                        "get": {"x-openwhisk": {"namespace": "guest", "package": "tools", "action": "page"}}
                    }
                }
            }
        })
    }

    #[test]
    fn routes_are_read_from_the_document() {
        let routes = routes_of(&api(), &Filter::default());
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].verb, "get");
        assert_eq!(routes[0].action, "/guest/tools/page");
        assert_eq!(routes[1].action, "/guest/echo");
        assert_eq!(routes[1].url, "http://h/api/guest/hello/world");
        let filter = Filter::new(Some("/world".into()), Some("POST".into())).unwrap();
        assert_eq!(routes_of(&api(), &filter).len(), 1);
        let filter = Filter::new(Some("/else".into()), None).unwrap();
        assert!(routes_of(&api(), &filter).is_empty());
        assert!(Filter::new(Some("world".into()), None).is_err());
        assert!(Filter::new(None, Some("FETCH".into())).is_err());
    }

    #[test]
    fn table_columns_fit_their_entries() {
        let lines = list_lines(&routes_of(&api(), &Filter::default()), false);
        assert_eq!(
            lines,
            vec![
                "Action               Verb  API Name  URL",
                "/guest/tools/page     get     Hello  http://h/api/guest/hello/world",
                "/guest/echo          post     Hello  http://h/api/guest/hello/world",
            ]
        );
        let empty = list_lines(&[], false);
        assert_eq!(
            empty,
            vec![format!(
                "{:<30} {:>7} {:>20}  URL",
                "Action", "Verb", "API Name"
            )]
        );
        let full = list_lines(&routes_of(&api(), &Filter::default())[..1], true);
        assert_eq!(
            full[0],
            "Action: /guest/tools/page\n   API Name: Hello\n   Base path: /hello\n   Path: /world\n   Verb: get\n   URL: http://h/api/guest/hello/world"
        );
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(truncated("abcdef", 3), "abc");
        assert_eq!(truncated("ab", 3), "ab");
        assert!(has_path_parameters("/items/{id}"));
        assert!(!has_path_parameters("/items/id"));
        assert_eq!(check_verb("get").unwrap(), "GET");
        let parameters = path_parameters("/a/{id}/b/{id}/{x}");
        let names: Vec<&str> = parameters
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["id", "x"]);
        assert_eq!(parameters[0]["description"], "Default description for 'id'");
        assert!(path_parameters("/a/b").is_empty());
    }
}
