//! `wsk action invoke` and `wsk trigger fire`: the two commands that start work rather than
//! manage entities. Their arguments travel as one JSON object built from `-p`/`-P`.

use anyhow::Context;
use clap::{ArgAction, Args};
use reqwest::Method;
use serde_json::{Map, Value};
use whisk_cli::names::QualifiedName;

use crate::{Settings, entities, entity_path, pretty};

/// `-p`/`-P` as they apply to a request body rather than to an entity.
#[derive(Debug, Args)]
pub struct Payload {
    /// Parameter `KEY VALUE`; the value is JSON when it parses as JSON, else a string.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    param: Vec<String>,
    /// JSON file whose top-level keys become parameters (`-p` wins on the same key).
    #[arg(short = 'P', long = "param-file", value_name = "FILE")]
    param_file: Option<std::path::PathBuf>,
}

impl Payload {
    /// The request body: the pairs folded into one object, later keys winning.
    fn body(&self) -> anyhow::Result<Value> {
        let pairs = entities::pairs_from(&self.param, self.param_file.as_deref())?;
        let mut object = Map::new();
        for pair in pairs {
            if let Some(key) = pair["key"].as_str() {
                object.insert(key.to_string(), pair["value"].clone());
            }
        }
        Ok(Value::Object(object))
    }
}

#[derive(Debug, Args)]
pub struct Invoke {
    name: String,
    #[command(flatten)]
    payload: Payload,
    /// Wait for the result and print the activation.
    #[arg(short = 'b', long)]
    blocking: bool,
    /// Wait and print only the result (implies --blocking).
    #[arg(short = 'r', long)]
    result: bool,
}

#[derive(Debug, Args)]
pub struct Fire {
    name: String,
    #[command(flatten)]
    payload: Payload,
}

pub async fn invoke(invoke: Invoke, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    let name = invoke.name.as_str();
    let context = || format!("Unable to invoke action '{name}'");
    let qualified = QualifiedName::parse(name, &settings.namespace).with_context(context)?;
    let body = invoke.payload.body().with_context(context)?;
    let blocking = invoke.blocking || invoke.result;
    let query = [
        ("blocking", blocking.to_string()),
        ("result", invoke.result.to_string()),
    ];
    let answer = client
        .send(
            Method::POST,
            &entity_path(&qualified, "actions"),
            &query,
            Some(&body),
        )
        .await
        .with_context(context)?;
    let shown = qualified.fully_qualified();
    if invoke.result {
        out!("{}", pretty(&answer)?);
        return Ok(());
    }
    let id = answer["activationId"].as_str().unwrap_or("");
    // A blocking call that outlasts the server's wait comes back as just an id (202).
    let finished = answer.get("response").is_some();
    if blocking && !finished {
        out!("ok: invoked {shown}, but the request has not yet finished, with id {id}");
        return Ok(());
    }
    out!("ok: invoked {shown} with id {id}");
    if blocking {
        out!("{}", pretty(&answer)?);
    }
    Ok(())
}

pub async fn fire(fire: Fire, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    let name = fire.name.as_str();
    let context = || format!("Unable to fire trigger '{name}'");
    let qualified = QualifiedName::parse(name, &settings.namespace).with_context(context)?;
    let body = fire.payload.body().with_context(context)?;
    let answer = client
        .send(
            Method::POST,
            &entity_path(&qualified, "triggers"),
            &[],
            Some(&body),
        )
        .await
        .with_context(context)?;
    let shown = qualified.fully_qualified();
    // 204 without a body means no rule was active, so nothing ran and there is no activation.
    match answer["activationId"].as_str() {
        Some(id) => out!("ok: triggered {shown} with id {id}"),
        None => out!("ok: triggered {shown}"),
    }
    Ok(())
}
