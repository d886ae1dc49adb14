//! Triggers backed by a feed. The feed protocol is driven by the client: after the trigger is
//! stored, the feed action is invoked (blocking) with a lifecycle event so the provider can start,
//! change or stop firing it. The trigger only exists for the user if its feed accepted it, so a
//! failed CREATE deletes the trigger again.

use anyhow::Context;
use clap::{ArgAction, Args};
use reqwest::Method;
use serde_json::{Map, Value, json};
use whisk_cli::client::Client;
use whisk_cli::names::QualifiedName;

use crate::entities::pairs_from;
use crate::{Settings, entity_path, key_values};

/// Flags that only matter for feed triggers.
#[derive(Debug, Args)]
pub struct FeedArgs {
    /// The feed action (e.g. `/whisk.system/alarms/alarm`) that will fire this trigger.
    #[arg(short = 'f', long, value_name = "ACTION")]
    pub feed: Option<String>,
    /// Parameter `KEY VALUE` for the feed only.
    #[arg(short = 'F', long = "feed-param", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    pub feed_param: Vec<String>,
    /// Parameter `KEY VALUE` stored on the trigger even when a feed is given.
    #[arg(short = 'T', long = "trigger-param", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    pub trigger_param: Vec<String>,
}

/// The lifecycle events a client sends.
#[derive(Debug, Clone, Copy)]
pub enum Lifecycle {
    Create,
    Update,
    Delete,
}

impl Lifecycle {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// Invokes `feed` blocking with the event, the trigger's name and the caller's key (which the
/// provider later uses to fire the trigger), plus the feed parameters.
pub async fn invoke_feed(
    client: &Client,
    settings: &Settings,
    feed: &QualifiedName,
    trigger: &QualifiedName,
    event: Lifecycle,
    params: Vec<Value>,
) -> anyhow::Result<()> {
    let mut body = Map::new();
    for pair in params {
        if let Some(key) = pair["key"].as_str() {
            body.insert(key.to_string(), pair["value"].clone());
        }
    }
    body.insert("lifecycleEvent".into(), json!(event.as_str()));
    body.insert("triggerName".into(), json!(trigger.fully_qualified()));
    body.insert(
        "authKey".into(),
        json!(settings.auth.as_deref().unwrap_or_default()),
    );
    client
        .send(
            Method::POST,
            &entity_path(feed, "actions"),
            &[("blocking", "true".to_string())],
            Some(&Value::Object(body)),
        )
        .await?;
    Ok(())
}

/// `trigger create|update --feed`: stores the trigger (with the `feed` annotation and only the
/// `-T` parameters), then tells the feed; a failed CREATE removes the trigger again.
pub async fn put_with_feed(
    client: &Client,
    settings: &Settings,
    name: &str,
    args: &FeedArgs,
    params: (&[String], Option<&std::path::Path>),
    annotations: Vec<Value>,
    overwrite: bool,
) -> anyhow::Result<()> {
    let (verb, event) = if overwrite {
        ("update", Lifecycle::Update)
    } else {
        ("create", Lifecycle::Create)
    };
    let context = || format!("Unable to {verb} trigger '{name}'");
    let trigger = QualifiedName::parse(name, &settings.namespace).with_context(context)?;
    let feed = args.feed.as_deref().unwrap_or_default();
    let feed = QualifiedName::parse(feed, &settings.namespace).with_context(context)?;
    let mut feed_params = pairs_from(params.0, params.1).with_context(context)?;
    feed_params.extend(key_values(&args.feed_param));
    let mut annotations = annotations;
    annotations.push(json!({"key": "feed", "value": feed.fully_qualified()}));
    let mut body = Map::new();
    body.insert("annotations".into(), Value::Array(annotations));
    let stored = key_values(&args.trigger_param);
    if !stored.is_empty() {
        body.insert("parameters".into(), Value::Array(stored));
    }
    let path = entity_path(&trigger, "triggers");
    client
        .send(
            Method::PUT,
            &path,
            &[("overwrite", overwrite.to_string())],
            Some(&Value::Object(body)),
        )
        .await
        .with_context(context)?;
    if let Err(err) = invoke_feed(client, settings, &feed, &trigger, event, feed_params).await {
        if !overwrite {
            // Best effort: the feed error is what the user must see, not a cleanup failure.
            let _ = client.send(Method::DELETE, &path, &[], None).await;
        }
        return Err(err).with_context(context);
    }
    out!("ok: {verb}d trigger {name}");
    Ok(())
}

/// `trigger delete` of a feed trigger: tell the feed first (its failure does not keep the
/// trigger alive, as the provider may be gone for good), then delete the trigger.
pub async fn before_delete(client: &Client, settings: &Settings, trigger: &QualifiedName) {
    let Ok(stored) = client
        .send(Method::GET, &entity_path(trigger, "triggers"), &[], None)
        .await
    else {
        return;
    };
    let feed = stored["annotations"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["key"] == "feed"))
        .and_then(|a| a["value"].as_str())
        .and_then(|f| QualifiedName::parse(f, &settings.namespace).ok());
    if let Some(feed) = feed {
        let _ = invoke_feed(
            client,
            settings,
            &feed,
            trigger,
            Lifecycle::Delete,
            Vec::new(),
        )
        .await;
    }
}
