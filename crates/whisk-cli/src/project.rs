//! `wsk project deploy|undeploy`: deploys the entities of a wskdeploy manifest and removes them
//! again. The manifest is planned completely first (see `whisk_cli::manifest`), so a mistake in
//! it is reported before anything is created. Entities carry wskdeploy's `whisk-managed`
//! annotation naming their project, which is what lets undeploy remove only what the project
//! deployed, even when another project or a user reuses a name.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use whisk_cli::client::{Client, ClientError};
use whisk_cli::manifest::{self, Entity, EntityKind, Plan};
use whisk_cli::names::QualifiedName;

use crate::feeds::{Lifecycle, before_delete, invoke_feed};
use crate::{Settings, entity_path};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create or update everything a manifest declares: packages, actions, sequences, triggers
    /// and rules, in that order.
    Deploy(ProjectArgs),
    /// Delete what a manifest declares (rules first, packages last), keeping entities that
    /// belong to another project.
    Undeploy(ProjectArgs),
}

#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// The manifest (default: `manifest.yaml` or `manifest.yml` in the current directory).
    #[arg(short = 'm', long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The project the entities belong to; overrides the manifest's `project: name:`.
    #[arg(long, value_name = "NAME")]
    projectname: Option<String>,
}

pub async fn project(command: ProjectCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Deploy(args) => deploy(&args, settings).await,
        ProjectCommand::Undeploy(args) => undeploy(&args, settings).await,
    }
}

/// The manifest named by `--manifest`, else the one in the current directory, as wskdeploy
/// looks for it.
fn manifest_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    ["manifest.yaml", "manifest.yml"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context(
            "no manifest.yaml or manifest.yml in the current directory; name one with --manifest",
        )
}

/// The plan and the project name in force (`--projectname` wins over the manifest's). Without
/// a project name entities are deployed unmanaged, as wskdeploy does.
fn load(args: &ProjectArgs, settings: &Settings) -> anyhow::Result<(Plan, Option<String>)> {
    let path = manifest_path(args.manifest.as_deref())?;
    let plan = manifest::load(&path, &settings.namespace, &|name| std::env::var(name).ok())?;
    let project = args
        .projectname
        .clone()
        .filter(|p| !p.is_empty())
        .or_else(|| plan.project.clone());
    Ok((plan, project))
}

/// Refuses kinds the platform does not run before anything is created. The list comes from the
/// host's `GET /`; a host that does not answer it (a gateway in front of OpenWhisk, say) is
/// left to check kinds itself when the actions are stored.
async fn check_runtimes(client: &Client, plan: &Plan) -> anyhow::Result<()> {
    let kinds: Vec<(&Entity, &str)> = plan
        .entities
        .iter()
        .filter_map(|e| e.runtime.as_deref().map(|kind| (e, kind)))
        .collect();
    if kinds.is_empty() {
        return Ok(());
    }
    let info = match client.host_info().await {
        Ok(info) => info,
        Err(err @ ClientError::Transport(_)) => return Err(err.into()),
        Err(_) => return Ok(()),
    };
    if !info["runtimes"].is_object() {
        return Ok(());
    }
    for (entity, kind) in kinds {
        if let Some(problem) = manifest::unsupported_runtime(kind, &info["runtimes"]) {
            bail!(
                "{}: action '{}': {problem}",
                plan.file,
                entity.display_name()
            );
        }
    }
    Ok(())
}

async fn deploy(args: &ProjectArgs, settings: &Settings) -> anyhow::Result<()> {
    let (plan, project) = load(args, settings)?;
    let client = settings.client()?;
    check_runtimes(&client, &plan).await?;
    for entity in &plan.entities {
        let noun = entity.kind.noun();
        let name = entity.display_name();
        let context = || format!("Unable to deploy {noun} '{name}'");
        let mut body = entity.body.clone();
        if let (Some(project), Some(annotations)) = (&project, body["annotations"].as_array_mut()) {
            annotations.push(plan.managed_annotation(project));
        }
        let path = entity_path(&entity.name, entity.kind.collection());
        // A feed is told CREATE for a new trigger and UPDATE for one being redeployed.
        let existed = match &entity.feed {
            Some(_) => client.send(Method::GET, &path, &[], None).await.is_ok(),
            None => false,
        };
        client
            .send(
                Method::PUT,
                &path,
                &[("overwrite", "true".to_string())],
                Some(&body),
            )
            .await
            .with_context(context)?;
        if let Some(feed) = &entity.feed {
            let event = if existed {
                Lifecycle::Update
            } else {
                Lifecycle::Create
            };
            let told = invoke_feed(
                &client,
                settings,
                &feed.action,
                &entity.name,
                event,
                feed.params.clone(),
            )
            .await;
            if let Err(err) = told {
                if !existed {
                    // Best effort: the feed's refusal is what the user must see.
                    let _ = client.send(Method::DELETE, &path, &[], None).await;
                }
                return Err(err).with_context(context);
            }
        }
        out!("ok: deployed {noun} {name}");
    }
    Ok(())
}

fn is_not_found(err: &ClientError) -> bool {
    matches!(err, ClientError::Api { status: 404, .. })
}

async fn undeploy(args: &ProjectArgs, settings: &Settings) -> anyhow::Result<()> {
    // `undeploy --projectname P` away from any manifest removes what the namespace holds of P,
    // as `wskdeploy undeploy --projectname` does.
    if args.manifest.is_none()
        && let Some(project) = args.projectname.as_deref().filter(|p| !p.is_empty())
        && manifest_path(None).is_err()
    {
        return undeploy_by_name(project, settings).await;
    }
    let (plan, project) = load(args, settings)?;
    let client = settings.client()?;
    for entity in plan.entities.iter().rev() {
        let noun = entity.kind.noun();
        let name = entity.display_name();
        let context = || format!("Unable to undeploy {noun} '{name}'");
        let path = entity_path(&entity.name, entity.kind.collection());
        let stored = match client.send(Method::GET, &path, &[], None).await {
            Ok(stored) => stored,
            Err(err) if is_not_found(&err) => {
                out!("ok: {noun} {name} was already gone");
                continue;
            }
            Err(err) => return Err(err).with_context(context),
        };
        if let Some(project) = &project
            && let Some(reason) = foreign(&stored, project)
        {
            out!("skipped {noun} {name}: {reason}");
            continue;
        }
        if entity.kind == EntityKind::Trigger {
            before_delete(&client, settings, &entity.name).await;
        }
        match client.send(Method::DELETE, &path, &[], None).await {
            Ok(_) => out!("ok: undeployed {noun} {name}"),
            Err(err) if is_not_found(&err) => out!("ok: {noun} {name} was already gone"),
            Err(err) => return Err(err).with_context(context),
        }
    }
    Ok(())
}

/// Why a stored entity is not the project's to delete, if it is not.
fn foreign(stored: &Value, project: &str) -> Option<String> {
    match manifest::managing_project(stored) {
        Some(owner) if owner == project => None,
        Some(owner) => Some(format!("it belongs to project '{owner}'")),
        None => Some(format!("it is not managed by project '{project}'")),
    }
}

/// Every entity of one collection, page by page (the API returns at most 200 at a time).
async fn list_all(
    client: &Client,
    namespace: &str,
    collection: &str,
) -> Result<Vec<Value>, ClientError> {
    const PAGE: usize = 200;
    let mut all = Vec::new();
    loop {
        let query = [("limit", PAGE.to_string()), ("skip", all.len().to_string())];
        let page = client
            .send(
                Method::GET,
                &["namespaces", namespace, collection],
                &query,
                None,
            )
            .await?;
        let items = match page {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let done = items.len() < PAGE;
        all.extend(items);
        if done {
            return Ok(all);
        }
    }
}

/// Deletes every entity of the namespace whose `whisk-managed` annotation names `project`, in
/// the order that keeps references valid: rules, triggers, actions, packages.
async fn undeploy_by_name(project: &str, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    let namespace = settings.namespace.as_str();
    for (kind, collection) in [
        (EntityKind::Rule, "rules"),
        (EntityKind::Trigger, "triggers"),
        (EntityKind::Action, "actions"),
        (EntityKind::Package, "packages"),
    ] {
        let items = list_all(&client, namespace, collection)
            .await
            .with_context(|| format!("Unable to obtain the list of {collection}"))?;
        for item in items
            .iter()
            .filter(|item| manifest::managing_project(item) == Some(project))
        {
            // `namespace` is `ns` or, for an action in a package, `ns/pkg`.
            let package = item["namespace"]
                .as_str()
                .and_then(|ns| ns.split_once('/'))
                .map(|(_, package)| package);
            let name = item["name"].as_str().unwrap_or_default();
            let shown = match package {
                Some(package) => format!("{package}/{name}"),
                None => name.to_string(),
            };
            let is_sequence = item["annotations"].as_array().is_some_and(|all| {
                all.iter()
                    .any(|a| a["key"] == "exec" && a["value"] == "sequence")
            });
            let noun = if is_sequence {
                EntityKind::Sequence.noun()
            } else {
                kind.noun()
            };
            let qualified = QualifiedName::parse(&shown, namespace)
                .with_context(|| format!("Unable to undeploy {noun} '{shown}'"))?;
            if kind == EntityKind::Trigger {
                before_delete(&client, settings, &qualified).await;
            }
            let path = entity_path(&qualified, collection);
            match client.send(Method::DELETE, &path, &[], None).await {
                Ok(_) => out!("ok: undeployed {noun} {shown}"),
                Err(err) if is_not_found(&err) => out!("ok: {noun} {shown} was already gone"),
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("Unable to undeploy {noun} '{shown}'"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_projects_own_entities_are_its_to_delete() {
        let managed = |project: &str| json!({"annotations": [{"key": "whisk-managed", "value": {"projectName": project}}]});
        assert_eq!(foreign(&managed("demo"), "demo"), None);
        assert_eq!(
            foreign(&managed("other"), "demo").as_deref(),
            Some("it belongs to project 'other'")
        );
        assert_eq!(
            foreign(&json!({"annotations": []}), "demo").as_deref(),
            Some("it is not managed by project 'demo'")
        );
    }
}
