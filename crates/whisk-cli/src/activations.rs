//! `wsk activation list|get|logs|result`: reading what ran. `--last` resolves to the newest
//! activation first, because scripts and people alike mostly want "what just happened".

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use whisk_cli::client::Client;

use crate::{Settings, pretty};

#[derive(Debug, Subcommand)]
pub enum ActivationCommand {
    /// List activations, newest first.
    List {
        /// Only activations of this action or trigger (`name` or `pkg/name`).
        name: Option<String>,
        #[arg(short = 's', long, default_value_t = 0)]
        skip: u64,
        #[arg(short = 'l', long, default_value_t = 30)]
        limit: u64,
        /// Only activations that started at or after this time (epoch milliseconds).
        #[arg(long)]
        since: Option<u64>,
        /// Only activations that started at or before this time (epoch milliseconds).
        #[arg(long)]
        upto: Option<u64>,
        /// Print the full records as JSON instead of the table.
        #[arg(short = 'f', long)]
        full: bool,
    },
    /// Show an activation record.
    Get(Target),
    /// Show the logs of an activation.
    Logs {
        #[command(flatten)]
        target: Target,
        /// Print only the messages, without timestamp and stream.
        #[arg(short = 'r', long)]
        strip: bool,
    },
    /// Show the result of an activation.
    Result(Target),
}

/// An activation id, or `--last` for the newest one.
#[derive(Debug, Args)]
pub struct Target {
    id: Option<String>,
    /// Use the most recent activation.
    #[arg(short = 'l', long)]
    last: bool,
}

async fn resolve(client: &Client, settings: &Settings, target: &Target) -> anyhow::Result<String> {
    match (&target.id, target.last) {
        (Some(id), false) => Ok(id.clone()),
        (Some(_), true) => bail!("give an activation id or --last, not both"),
        (None, false) => bail!("an activation id or --last is required"),
        (None, true) => {
            let newest = client
                .send(
                    Method::GET,
                    &["namespaces", &settings.namespace, "activations"],
                    &[("limit", "1".to_string())],
                    None,
                )
                .await
                .context("Unable to obtain the list of activations")?;
            newest[0]["activationId"]
                .as_str()
                .map(str::to_string)
                .context("there are no activations yet")
        }
    }
}

/// One line of the list: id, status and the `namespace/name` that ran.
fn row(item: &Value) -> String {
    let id = item["activationId"].as_str().unwrap_or("");
    let name = format!(
        "{}/{}",
        item["namespace"].as_str().unwrap_or(""),
        item["name"].as_str().unwrap_or("")
    );
    let status = item["statusCode"]
        .as_u64()
        .map(|code| match code {
            0 => "success",
            1 => "application error",
            2 => "developer error",
            _ => "internal error",
        })
        .unwrap_or("");
    format!("{id:<32} {status:<17} {name}")
}

/// Drops the `<timestamp> <stream>: ` prefix the invoker writes before each log line.
fn strip(line: &str) -> &str {
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(stream), Some(message)) if stream.ends_with(':') => message,
        _ => line,
    }
}

pub async fn activation(command: ActivationCommand, settings: &Settings) -> anyhow::Result<()> {
    let client = settings.client()?;
    let base = ["namespaces", settings.namespace.as_str(), "activations"];
    match command {
        ActivationCommand::List {
            name,
            skip,
            limit,
            since,
            upto,
            full,
        } => {
            let mut query = vec![("limit", limit.to_string()), ("skip", skip.to_string())];
            query.extend(name.map(|n| ("name", n)));
            query.extend(since.map(|t| ("since", t.to_string())));
            query.extend(upto.map(|t| ("upto", t.to_string())));
            if full {
                query.push(("docs", "true".to_string()));
            }
            let body = client
                .send(Method::GET, &base, &query, None)
                .await
                .context("Unable to obtain the list of activations")?;
            if full {
                out!("{}", pretty(&body)?);
            } else {
                out!("activations");
                for item in body.as_array().map(Vec::as_slice).unwrap_or_default() {
                    out!("{}", row(item).trim_end());
                }
            }
        }
        ActivationCommand::Get(target) => {
            let id = resolve(&client, settings, &target)
                .await
                .context("Unable to get activation")?;
            let record = client
                .send(Method::GET, &[base[0], base[1], base[2], &id], &[], None)
                .await
                .with_context(|| format!("Unable to get activation '{id}'"))?;
            out!("ok: got activation {id}");
            out!("{}", pretty(&record)?);
        }
        ActivationCommand::Logs {
            target,
            strip: bare,
        } => {
            let id = resolve(&client, settings, &target)
                .await
                .context("Unable to get logs for activation")?;
            let logs = client
                .send(
                    Method::GET,
                    &[base[0], base[1], base[2], &id, "logs"],
                    &[],
                    None,
                )
                .await
                .with_context(|| format!("Unable to get logs for activation '{id}'"))?;
            for line in logs["logs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let line = line
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| line.to_string());
                out!("{}", if bare { strip(&line) } else { &line });
            }
        }
        ActivationCommand::Result(target) => {
            let id = resolve(&client, settings, &target)
                .await
                .context("Unable to get result for activation")?;
            let result = client
                .send(
                    Method::GET,
                    &[base[0], base[1], base[2], &id, "result"],
                    &[],
                    None,
                )
                .await
                .with_context(|| format!("Unable to get result for activation '{id}'"))?;
            out!("{}", pretty(&result["result"])?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_drops_timestamp_and_stream_only() {
        assert_eq!(
            strip("2024-05-29T16:26:40.123Z stdout: hello world"),
            "hello world"
        );
        assert_eq!(strip("no prefix"), "no prefix");
    }
}
