//! `wsk action get`: besides the whole action it can print one field, a summary, the web URL, or
//! write the code back to a file, which is how users recover code they only have on the server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use reqwest::Method;
use serde_json::Value;
use whisk_cli::client::Client;
use whisk_cli::names::QualifiedName;

use crate::{ActionGet, Settings, entity_path, pretty};

pub async fn get_action(
    client: &Client,
    settings: &Settings,
    get: ActionGet,
) -> anyhow::Result<()> {
    let name = get.name.as_str();
    let context = || format!("Unable to get action '{name}'");
    let qualified = QualifiedName::parse(name, &settings.namespace).with_context(context)?;
    let action = client
        .send(Method::GET, &entity_path(&qualified, "actions"), &[], None)
        .await
        .with_context(context)?;
    if get.url {
        out!("ok: got action {name}");
        out!("{}", web_url(client, &action).with_context(context)?);
    } else if get.summary {
        summary("action", &action)
            .iter()
            .for_each(|line| out!("{line}"));
    } else if get.save || get.save_as.is_some() {
        let path = save(&action, get.save_as)
            .with_context(|| format!("Unable to save action '{name}'"))?;
        out!("ok: saved action code to {}", path.display());
    } else if let Some(field) = &get.field {
        let value = action
            .get(field.as_str())
            .with_context(|| format!("Unable to get action '{name}': no field '{field}'"))?;
        out!("ok: got action {name}, displaying field {field}");
        out!("{}", pretty(value)?);
    } else {
        out!("ok: got action {name}");
        out!("{}", pretty(&action)?);
    }
    Ok(())
}

/// Web actions live at `/api/v1/web/NAMESPACE/PACKAGE/NAME`, with `default` standing for "no
/// package"; the action's `namespace` field already is `ns` or `ns/pkg`.
fn web_url(client: &Client, action: &Value) -> anyhow::Result<String> {
    let namespace = action["namespace"]
        .as_str()
        .context("the action has no namespace")?;
    let name = action["name"].as_str().context("the action has no name")?;
    let (ns, package) = namespace.split_once('/').unwrap_or((namespace, "default"));
    Ok(client.url(&["web", ns, package, name], &[])?.to_string())
}

/// Two lines: `NOUN /ns/name` with the `description` annotation if any, then the parameter
/// names (those the `parameters` annotation documents, else the bound ones). Shared by every
/// `get --summary`, since actions, packages and triggers document themselves the same way.
pub(crate) fn summary(noun: &str, action: &Value) -> Vec<String> {
    let annotation = |key: &str| {
        action["annotations"]
            .as_array()
            .and_then(|all| all.iter().find(|a| a["key"] == key))
            .map(|a| a["value"].clone())
    };
    let mut first = format!(
        "{noun} /{}/{}",
        action["namespace"].as_str().unwrap_or(""),
        action["name"].as_str().unwrap_or("")
    );
    if let Some(Value::String(description)) = annotation("description") {
        first.push_str(": ");
        first.push_str(&description);
    }
    let documented = annotation("parameters").and_then(|v| v.as_array().cloned());
    let names: Vec<String> = documented
        .or_else(|| action["parameters"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["name"].as_str().or_else(|| p["key"].as_str()))
        .map(str::to_string)
        .collect();
    let parameters = if names.is_empty() {
        "none defined".to_string()
    } else {
        names.join(", ")
    };
    vec![first, format!("   (parameters: {parameters})")]
}

/// The file extension matching a kind, so a saved action can be created again from its file
/// with the kind inferred.
fn extension(exec: &Value) -> &'static str {
    let kind = exec["kind"].as_str().unwrap_or("");
    let family = kind.split(':').next().unwrap_or("");
    match family {
        "java" => "jar",
        _ if exec["binary"].as_bool().unwrap_or(false) => "zip",
        "nodejs" => "js",
        "python" => "py",
        "swift" => "swift",
        "php" => "php",
        "ruby" => "rb",
        "go" => "go",
        "rust" => "rs",
        "ballerina" => "balx",
        _ => "txt",
    }
}

/// Writes the code to `save_as` or `NAME.ext` in the current directory, refusing to replace an
/// existing file (a lost local edit cannot be recovered), and returns the absolute path.
fn save(action: &Value, save_as: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let exec = &action["exec"];
    let code = exec["code"]
        .as_str()
        .context("the action has no code to save (a sequence or an image-only action)")?;
    let path = match save_as {
        Some(path) => path,
        None => PathBuf::from(format!(
            "{}.{}",
            action["name"].as_str().unwrap_or("action"),
            extension(exec)
        )),
    };
    let path = std::path::absolute(&path)
        .with_context(|| format!("cannot resolve '{}'", path.display()))?;
    if path.exists() {
        bail!("the file '{}' already exists", path.display());
    }
    let bytes = if exec["binary"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(code)
            .context("the stored code is not valid base64")?
    } else {
        code.as_bytes().to_vec()
    };
    std::fs::write(&path, bytes).with_context(|| format!("cannot write '{}'", path.display()))?;
    Ok(path)
}
