//! `wsk package|trigger|rule|namespace`: the entity commands other than actions. They share one
//! shape (PUT to create/update, GET, DELETE, list), so the HTTP and printing steps are shared too.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgAction, Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use whisk_cli::client::Client;
use whisk_cli::input::{InputError, key_values_from_file, merge_pairs};
use whisk_cli::names::QualifiedName;

use crate::action_get::summary;
use crate::{Settings, entity_path, key_values, list_row, pretty};

/// `-p`/`-a` pairs shared by every entity that carries parameters and annotations.
#[derive(Debug, Args)]
pub struct Attributes {
    /// Parameter `KEY VALUE`; the value is JSON when it parses as JSON, else a string.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    param: Vec<String>,
    /// Annotation `KEY VALUE`; the value is JSON when it parses as JSON, else a string.
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    annotation: Vec<String>,
    /// JSON file whose top-level keys become parameters (`-p` wins on the same key).
    #[arg(short = 'P', long = "param-file", value_name = "FILE")]
    param_file: Option<PathBuf>,
    /// JSON file whose top-level keys become annotations (`-a` wins on the same key).
    #[arg(short = 'A', long = "annotation-file", value_name = "FILE")]
    annotation_file: Option<PathBuf>,
}

impl Attributes {
    /// Only the attributes given go into the body, so an update leaves the others untouched.
    fn fill(&self, body: &mut serde_json::Map<String, Value>) -> Result<(), InputError> {
        for (key, flat, file) in [
            ("parameters", &self.param, &self.param_file),
            ("annotations", &self.annotation, &self.annotation_file),
        ] {
            let pairs = pairs_from(flat, file.as_deref())?;
            if !pairs.is_empty() {
                body.insert(key.into(), Value::Array(pairs));
            }
        }
        Ok(())
    }
}

/// The pairs of a `-P`/`-A` file (if any) with the `-p`/`-a` flags laid over them.
pub fn pairs_from(flat: &[String], file: Option<&Path>) -> Result<Vec<Value>, InputError> {
    let base = match file {
        Some(path) => key_values_from_file(path)?,
        None => Vec::new(),
    };
    Ok(merge_pairs(base, key_values(flat)))
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Namespace to list (default: the configured one).
    namespace: Option<String>,
    #[arg(short = 's', long, default_value_t = 0)]
    skip: u64,
    #[arg(short = 'l', long, default_value_t = 30)]
    limit: u64,
    /// Sort by name instead of the server's order (most recently updated first).
    #[arg(short = 'n', long)]
    name_sort: bool,
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Create a package.
    Create(PackagePut),
    /// Update a package.
    Update(PackagePut),
    /// Bind a package: `bind PACKAGE BINDING`.
    Bind {
        package: String,
        binding: String,
        #[command(flatten)]
        attributes: Attributes,
        /// Replace an existing binding.
        #[arg(short = 'o', long)]
        overwrite: bool,
    },
    /// Show a package.
    Get {
        name: String,
        /// Print a summary instead of the JSON.
        #[arg(short = 's', long)]
        summary: bool,
    },
    /// Delete a package.
    Delete { name: String },
    /// List packages.
    List(ListArgs),
    /// Ask the server to refresh the namespace's package bindings (`POST .../packages/refresh`).
    Refresh {
        /// Namespace to refresh (default: the configured one), `NAMESPACE` or `/NAMESPACE`.
        namespace: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct PackagePut {
    name: String,
    #[command(flatten)]
    attributes: Attributes,
    /// Share the package with other namespaces: yes|no.
    #[arg(long)]
    shared: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger.
    Create(TriggerPut),
    /// Update a trigger.
    Update(TriggerPut),
    /// Show a trigger.
    Get {
        name: String,
        /// Print a summary instead of the JSON.
        #[arg(short = 's', long)]
        summary: bool,
    },
    /// Delete a trigger.
    Delete { name: String },
    /// List triggers.
    List(ListArgs),
    /// Fire a trigger, starting the actions of its active rules.
    Fire(crate::invoke::Fire),
}

#[derive(Debug, Args)]
pub struct TriggerPut {
    name: String,
    #[command(flatten)]
    attributes: Attributes,
    #[command(flatten)]
    feed: crate::feeds::FeedArgs,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Create a rule: `create NAME TRIGGER ACTION`.
    Create(RulePut),
    /// Update a rule: `update NAME TRIGGER ACTION`.
    Update(RulePut),
    /// Activate a rule.
    Enable { name: String },
    /// Deactivate a rule.
    Disable { name: String },
    /// Show whether a rule is active or inactive.
    Status { name: String },
    /// Show a rule.
    Get {
        name: String,
        /// Print a summary instead of the JSON.
        #[arg(short = 's', long)]
        summary: bool,
    },
    /// Delete a rule.
    Delete {
        name: String,
        /// Disable the rule before deleting it.
        #[arg(long)]
        disable: bool,
    },
    /// List rules.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct RulePut {
    name: String,
    trigger: String,
    action: String,
}

#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// List the namespaces the key may use.
    List,
    /// List every entity of a namespace (default: the configured one).
    Get {
        namespace: Option<String>,
        /// Sort each collection by name.
        #[arg(short = 'n', long)]
        name_sort: bool,
    },
}

/// The noun printed in messages and the URL collection it lives in.
#[derive(Debug, Clone, Copy)]
struct Kind {
    noun: &'static str,
    collection: &'static str,
}

const PACKAGE: Kind = Kind {
    noun: "package",
    collection: "packages",
};
const TRIGGER: Kind = Kind {
    noun: "trigger",
    collection: "triggers",
};
const ACTION: Kind = Kind {
    noun: "action",
    collection: "actions",
};
const RULE: Kind = Kind {
    noun: "rule",
    collection: "rules",
};

/// Names of packages, triggers and rules have no package part, so `/ns/x` and `x` are the only forms.
fn resolve(name: &str, settings: &Settings) -> anyhow::Result<QualifiedName> {
    let qualified = QualifiedName::parse(name, &settings.namespace)?;
    if qualified.package.is_some() {
        anyhow::bail!("'{name}' is not a valid entity name");
    }
    Ok(qualified)
}

async fn put(
    client: &Client,
    settings: &Settings,
    kind: Kind,
    name: &str,
    overwrite: bool,
    body: Value,
) -> anyhow::Result<()> {
    let verb = if overwrite { "update" } else { "create" };
    let qualified = resolve(name, settings)
        .with_context(|| format!("Unable to {verb} {} '{name}'", kind.noun))?;
    client
        .send(
            Method::PUT,
            &entity_path(&qualified, kind.collection),
            &[("overwrite", overwrite.to_string())],
            Some(&body),
        )
        .await
        .with_context(|| format!("Unable to {verb} {} '{name}'", kind.noun))?;
    out!("ok: {verb}d {} {name}", kind.noun);
    Ok(())
}

async fn get(
    client: &Client,
    settings: &Settings,
    kind: Kind,
    name: &str,
    summary: bool,
) -> anyhow::Result<()> {
    let context = || format!("Unable to get {} '{name}'", kind.noun);
    let qualified = resolve(name, settings).with_context(context)?;
    let body = client
        .send(
            Method::GET,
            &entity_path(&qualified, kind.collection),
            &[],
            None,
        )
        .await
        .with_context(context)?;
    if summary {
        summary_lines(kind, &body)
            .iter()
            .for_each(|line| out!("{line}"));
        return Ok(());
    }
    out!("ok: got {} {name}", kind.noun);
    out!("{}", pretty(&body)?);
    Ok(())
}

/// `get --summary`: packages add one indented entry per action they contain; rules, which
/// take no parameters, show their status instead.
fn summary_lines(kind: Kind, entity: &Value) -> Vec<String> {
    let mut lines = summary(kind.noun, entity);
    if kind.collection == RULE.collection {
        lines.truncate(1);
        lines.push(format!(
            "   (status: {})",
            entity["status"].as_str().unwrap_or("unknown")
        ));
    }
    if kind.collection == PACKAGE.collection {
        let package = format!(
            "{}/{}",
            entity["namespace"].as_str().unwrap_or(""),
            entity["name"].as_str().unwrap_or("")
        );
        for action in entity["actions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let mut action = action.clone();
            if let Some(fields) = action.as_object_mut() {
                fields.insert("namespace".into(), Value::String(package.clone()));
            }
            lines.extend(
                summary("action", &action)
                    .into_iter()
                    .map(|l| format!(" {l}")),
            );
        }
    }
    lines
}

async fn delete(
    client: &Client,
    settings: &Settings,
    kind: Kind,
    name: &str,
) -> anyhow::Result<()> {
    let context = || format!("Unable to delete {} '{name}'", kind.noun);
    let qualified = resolve(name, settings).with_context(context)?;
    client
        .send(
            Method::DELETE,
            &entity_path(&qualified, kind.collection),
            &[],
            None,
        )
        .await
        .with_context(context)?;
    out!("ok: deleted {} {name}", kind.noun);
    Ok(())
}

/// Prints the collection header and one row per entity: the fully qualified name padded to 70
/// columns, then `private`/`shared`, then (for rules) the status.
async fn list(
    client: &Client,
    settings: &Settings,
    kind: Kind,
    args: ListArgs,
) -> anyhow::Result<()> {
    let namespace = args
        .namespace
        .as_deref()
        .map(|ns| ns.trim_matches('/').to_string())
        .unwrap_or_else(|| settings.namespace.clone());
    let query = [
        ("limit", args.limit.to_string()),
        ("skip", args.skip.to_string()),
    ];
    let body = client
        .send(
            Method::GET,
            &["namespaces", &namespace, kind.collection],
            &query,
            None,
        )
        .await
        .with_context(|| format!("Unable to obtain the list of {}", kind.collection))?;
    let body = with_rule_status(client, kind, body).await?;
    let body = if args.name_sort {
        sorted_by_name(body)
    } else {
        body
    };
    print_rows(kind, &body);
    Ok(())
}

/// Rule lists carry no `status` (the API keeps it on the trigger), yet it is what users scan a
/// rule list for, so each listed rule is read once more to fill it in, as `wsk` does.
async fn with_rule_status(client: &Client, kind: Kind, mut body: Value) -> anyhow::Result<Value> {
    if kind.collection != RULE.collection {
        return Ok(body);
    }
    for item in body
        .as_array_mut()
        .map(Vec::as_mut_slice)
        .unwrap_or_default()
    {
        if item.get("status").is_some() {
            continue;
        }
        let namespace = item["namespace"].as_str().unwrap_or("_").to_string();
        let name = item["name"].as_str().unwrap_or("").to_string();
        let rule = client
            .send(
                Method::GET,
                &["namespaces", &namespace, RULE.collection, &name],
                &[],
                None,
            )
            .await
            .with_context(|| format!("Unable to get status of rule '{name}'"))?;
        if let (Some(fields), Some(status)) = (item.as_object_mut(), rule.get("status")) {
            fields.insert("status".into(), status.clone());
        }
    }
    Ok(body)
}

/// The header line and one row per listed entity, shared by the per-collection lists and the
/// namespace-wide one.
fn print_rows(kind: Kind, body: &Value) {
    out!("{}", kind.collection);
    for item in body.as_array().map(Vec::as_slice).unwrap_or_default() {
        let name = format!(
            "/{}/{}",
            item["namespace"].as_str().unwrap_or(""),
            item["name"].as_str().unwrap_or("")
        );
        let shared = if item["publish"].as_bool().unwrap_or(false) {
            "shared"
        } else {
            "private"
        };
        let status = item["status"].as_str().unwrap_or("");
        out!("{}", format!("{name:<70} {shared} {status}").trim_end());
    }
}

/// `wsk list` and `wsk namespace get`: every collection of one namespace, in `wsk`'s order
/// (packages, actions, triggers, rules), under a line naming the namespace (`default` for `_`).
/// The listed entities ordered by their fully qualified name (`-n`). The server lists most
/// recently updated first, which is right for "what did I just change" but not for finding one.
pub fn sorted_by_name(mut body: Value) -> Value {
    if let Some(items) = body.as_array_mut() {
        let key = |item: &Value| {
            format!(
                "{}/{}",
                item["namespace"].as_str().unwrap_or(""),
                item["name"].as_str().unwrap_or("")
            )
        };
        items.sort_by_key(key);
    }
    body
}

pub async fn list_all(
    settings: &Settings,
    namespace: Option<String>,
    name_sort: bool,
) -> anyhow::Result<()> {
    let client = settings.client()?;
    let namespace = namespace
        .map(|ns| ns.trim_matches('/').to_string())
        .unwrap_or_else(|| settings.namespace.clone());
    let query = [("limit", "0".to_string())];
    let mut bodies = Vec::new();
    for kind in [PACKAGE, ACTION, TRIGGER, RULE] {
        let body = client
            .send(
                Method::GET,
                &["namespaces", &namespace, kind.collection],
                &query,
                None,
            )
            .await
            .with_context(|| {
                format!("Unable to obtain the list of entities for namespace '{namespace}'")
            })?;
        let body = with_rule_status(&client, kind, body).await?;
        bodies.push((
            kind,
            if name_sort {
                sorted_by_name(body)
            } else {
                body
            },
        ));
    }
    let shown = if namespace == "_" {
        "default"
    } else {
        &namespace
    };
    out!("Entities in namespace: {shown}");
    for (kind, body) in bodies {
        if kind.collection == ACTION.collection {
            out!("actions");
            for item in body.as_array().map(Vec::as_slice).unwrap_or_default() {
                out!("{}", list_row(item));
            }
        } else {
            print_rows(kind, &body);
        }
    }
    Ok(())
}

fn attributes_body(attributes: &Attributes) -> Result<serde_json::Map<String, Value>, InputError> {
    let mut body = serde_json::Map::new();
    attributes.fill(&mut body)?;
    Ok(body)
}

fn package_body(put: &PackagePut) -> anyhow::Result<Value> {
    let mut body = attributes_body(&put.attributes)?;
    match put.shared.as_deref() {
        None => {}
        Some("yes" | "true") => {
            body.insert("publish".into(), Value::Bool(true));
        }
        Some("no" | "false") => {
            body.insert("publish".into(), Value::Bool(false));
        }
        Some(other) => anyhow::bail!("invalid --shared value '{other}': use yes or no"),
    }
    Ok(Value::Object(body))
}

/// `wsk package refresh`: sends what `wsk` sends, `POST /namespaces/NS/packages/refresh`.
/// OpenWhisk's controller (like ours) has no such route and answers 405, which is reported as
/// `wsk` reports it; a server that implements it answers with the bindings it touched.
async fn refresh(
    client: &Client,
    settings: &Settings,
    namespace: Option<String>,
) -> anyhow::Result<()> {
    let namespace = match namespace {
        None => settings.namespace.clone(),
        Some(given) => {
            let bare = given.strip_prefix('/').unwrap_or(&given);
            match bare.split_once('/') {
                Some((_, entity)) if !entity.is_empty() => bail!(
                    "An entity name, '{entity}', was provided instead of a namespace. \
                     Valid namespaces are of the following format: /NAMESPACE."
                ),
                _ => bare.trim_end_matches('/').to_string(),
            }
        }
    };
    let updates = client
        .send(
            Method::POST,
            &["namespaces", &namespace, "packages", "refresh"],
            &[],
            None,
        )
        .await
        .with_context(|| format!("Package refresh for namespace '{namespace}' failed"))?;
    out!("'{namespace}' refreshed successfully");
    for (title, key) in [
        ("created bindings:", "added"),
        ("updated bindings:", "updated"),
        ("deleted bindings:", "deleted"),
    ] {
        out!("{title}");
        for name in updates[key]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            out!(
                "{}",
                name.as_str()
                    .map_or_else(|| name.to_string(), str::to_string)
            );
        }
    }
    Ok(())
}

pub async fn package(command: PackageCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    match command {
        PackageCommand::Create(p) => {
            let body = package_body(&p)
                .with_context(|| format!("Unable to create package '{}'", p.name))?;
            put(&client, settings, PACKAGE, &p.name, false, body).await
        }
        PackageCommand::Update(p) => {
            let body = package_body(&p)
                .with_context(|| format!("Unable to update package '{}'", p.name))?;
            put(&client, settings, PACKAGE, &p.name, true, body).await
        }
        PackageCommand::Bind {
            package,
            binding,
            attributes,
            overwrite,
        } => {
            let context = || format!("Binding creation failed for '{binding}'");
            let source = resolve(&package, settings).with_context(context)?;
            let target = resolve(&binding, settings).with_context(context)?;
            let mut body = attributes_body(&attributes).with_context(context)?;
            body.insert(
                "binding".into(),
                json!({"namespace": source.namespace, "name": source.name}),
            );
            client
                .send(
                    Method::PUT,
                    &entity_path(&target, PACKAGE.collection),
                    &[("overwrite", overwrite.to_string())],
                    Some(&Value::Object(body)),
                )
                .await
                .with_context(context)?;
            out!("ok: created binding {binding}");
            Ok(())
        }
        PackageCommand::Refresh { namespace } => refresh(&client, settings, namespace).await,
        PackageCommand::Get { name, summary } => {
            get(&client, settings, PACKAGE, &name, summary).await
        }
        PackageCommand::Delete { name } => delete(&client, settings, PACKAGE, &name).await,
        PackageCommand::List(args) => list(&client, settings, PACKAGE, args).await,
    }
}

/// The `-p`/`-P` parameters of a feed trigger go to the feed, not onto the trigger.
async fn put_feed_trigger(
    client: &Client,
    settings: &Settings,
    t: &TriggerPut,
    overwrite: bool,
) -> anyhow::Result<()> {
    let verb = if overwrite { "update" } else { "create" };
    let annotations = pairs_from(
        &t.attributes.annotation,
        t.attributes.annotation_file.as_deref(),
    )
    .with_context(|| format!("Unable to {verb} trigger '{}'", t.name))?;
    crate::feeds::put_with_feed(
        client,
        settings,
        &t.name,
        &t.feed,
        (&t.attributes.param, t.attributes.param_file.as_deref()),
        annotations,
        overwrite,
    )
    .await
}

pub async fn trigger(command: TriggerCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    match command {
        TriggerCommand::Create(t) if t.feed.feed.is_some() => {
            put_feed_trigger(&client, settings, &t, false).await
        }
        TriggerCommand::Update(t) if t.feed.feed.is_some() => {
            put_feed_trigger(&client, settings, &t, true).await
        }
        TriggerCommand::Create(t) => {
            let body = attributes_body(&t.attributes)
                .map(Value::Object)
                .with_context(|| format!("Unable to create trigger '{}'", t.name))?;
            put(&client, settings, TRIGGER, &t.name, false, body).await
        }
        TriggerCommand::Update(t) => {
            let body = attributes_body(&t.attributes)
                .map(Value::Object)
                .with_context(|| format!("Unable to update trigger '{}'", t.name))?;
            put(&client, settings, TRIGGER, &t.name, true, body).await
        }
        TriggerCommand::Get { name, summary } => {
            get(&client, settings, TRIGGER, &name, summary).await
        }
        TriggerCommand::Delete { name } => {
            if let Ok(trigger) = resolve(&name, settings) {
                crate::feeds::before_delete(&client, settings, &trigger).await;
            }
            delete(&client, settings, TRIGGER, &name).await
        }
        TriggerCommand::List(args) => list(&client, settings, TRIGGER, args).await,
        TriggerCommand::Fire(fire) => crate::invoke::fire(fire, settings).await,
    }
}

/// Rules reference their trigger and action by fully qualified name; the action may sit in a
/// package, the trigger may not.
fn rule_body(r: &RulePut, settings: &Settings) -> anyhow::Result<Value> {
    let trigger = resolve(&r.trigger, settings)?;
    let action = QualifiedName::parse(&r.action, &settings.namespace)?;
    Ok(json!({"trigger": trigger.fully_qualified(), "action": action.fully_qualified()}))
}

async fn set_rule_status(
    client: &Client,
    settings: &Settings,
    name: &str,
    active: bool,
    report: bool,
) -> anyhow::Result<()> {
    let (verb, status) = if active {
        ("enable", "active")
    } else {
        ("disable", "inactive")
    };
    let context = || format!("Unable to {verb} rule '{name}'");
    let qualified = resolve(name, settings).with_context(context)?;
    client
        .send(
            Method::POST,
            &entity_path(&qualified, RULE.collection),
            &[],
            Some(&json!({"status": status})),
        )
        .await
        .with_context(context)?;
    if report {
        out!("ok: {verb}d rule {name}");
    }
    Ok(())
}

/// `wsk rule status NAME`: the rule's `status` (`active`/`inactive`) in one line, for scripts
/// that only need to know whether the rule fires.
async fn rule_status(client: &Client, settings: &Settings, name: &str) -> anyhow::Result<()> {
    let context = || format!("Unable to get status of rule '{name}'");
    let qualified = resolve(name, settings).with_context(context)?;
    let rule = client
        .send(
            Method::GET,
            &entity_path(&qualified, RULE.collection),
            &[],
            None,
        )
        .await
        .with_context(context)?;
    out!(
        "ok: rule {name} is {}",
        rule["status"].as_str().unwrap_or("")
    );
    Ok(())
}

pub async fn rule(command: RuleCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    match command {
        RuleCommand::Create(r) => {
            let body = rule_body(&r, settings)
                .with_context(|| format!("Unable to create rule '{}'", r.name))?;
            put(&client, settings, RULE, &r.name, false, body).await
        }
        RuleCommand::Update(r) => {
            let body = rule_body(&r, settings)
                .with_context(|| format!("Unable to update rule '{}'", r.name))?;
            put(&client, settings, RULE, &r.name, true, body).await
        }
        RuleCommand::Enable { name } => set_rule_status(&client, settings, &name, true, true).await,
        RuleCommand::Disable { name } => {
            set_rule_status(&client, settings, &name, false, true).await
        }
        RuleCommand::Status { name } => rule_status(&client, settings, &name).await,
        RuleCommand::Get { name, summary } => get(&client, settings, RULE, &name, summary).await,
        RuleCommand::Delete { name, disable } => {
            if disable {
                set_rule_status(&client, settings, &name, false, false).await?;
            }
            delete(&client, settings, RULE, &name).await
        }
        RuleCommand::List(args) => list(&client, settings, RULE, args).await,
    }
}

pub async fn namespace(command: NamespaceCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    match command {
        NamespaceCommand::List => {
            let body = client
                .send(Method::GET, &["namespaces"], &[], None)
                .await
                .context("Unable to obtain the list of available namespaces")?;
            out!("namespaces");
            for ns in body.as_array().map(Vec::as_slice).unwrap_or_default() {
                out!("{}", ns.as_str().unwrap_or_default());
            }
            Ok(())
        }
        NamespaceCommand::Get {
            namespace,
            name_sort,
        } => list_all(settings, namespace, name_sort).await,
    }
}
