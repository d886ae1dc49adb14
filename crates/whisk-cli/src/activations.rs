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
    /// Print the logs of new activations as they appear.
    Poll {
        /// Only activations of this action or trigger.
        name: Option<String>,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(short = 'e', long, value_name = "SECONDS")]
        exit: Option<u64>,
        /// Also show activations from this many seconds back.
        #[arg(long)]
        since_seconds: Option<u64>,
        #[arg(long)]
        since_minutes: Option<u64>,
        #[arg(long)]
        since_hours: Option<u64>,
        #[arg(long)]
        since_days: Option<u64>,
    },
}

/// How often `poll` asks for new activations: often enough to feel live, rare enough not to
/// count against anyone's rate of API calls in a meaningful way.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Lists activations started since `since` (epoch ms) with their logs and prints each one not
/// seen before, oldest first, until `exit` elapses.
async fn poll(
    client: &Client,
    settings: &Settings,
    name: Option<String>,
    since: u64,
    exit: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    out!("Enter Ctrl-c to exit.");
    out!("Polling for activation logs");
    loop {
        let mut query = vec![
            ("docs", "true".to_string()),
            ("since", since.to_string()),
            ("limit", "200".to_string()),
        ];
        query.extend(name.clone().map(|n| ("name", n)));
        let body = client
            .send(
                Method::GET,
                &["namespaces", &settings.namespace, "activations"],
                &query,
                None,
            )
            .await
            .context("Unable to obtain the list of activations")?;
        let records = body.as_array().map(Vec::as_slice).unwrap_or_default();
        for record in records.iter().rev() {
            let id = record["activationId"].as_str().unwrap_or("").to_string();
            if !seen.insert(id.clone()) {
                continue;
            }
            out!("");
            out!(
                "Activation: '{}' ({id})",
                record["name"].as_str().unwrap_or("")
            );
            for line in record["logs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                out!(
                    "{}",
                    line.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| line.to_string())
                );
            }
        }
        let wait = match exit {
            Some(limit) => match limit.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => left.min(POLL_INTERVAL),
                _ => return Ok(()),
            },
            None => POLL_INTERVAL,
        };
        tokio::time::sleep(wait).await;
    }
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
        ActivationCommand::Poll {
            name,
            exit,
            since_seconds,
            since_minutes,
            since_hours,
            since_days,
        } => {
            let back_seconds = since_seconds.unwrap_or(0)
                + since_minutes.unwrap_or(0) * 60
                + since_hours.unwrap_or(0) * 3600
                + since_days.unwrap_or(0) * 86_400;
            let since = now_ms().saturating_sub(back_seconds.saturating_mul(1000));
            let exit = exit.map(std::time::Duration::from_secs);
            poll(&client, settings, name, since, exit).await?;
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
