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
    /// Show an activation record, one field of it, its summary or only its logs.
    Get {
        #[command(flatten)]
        target: Target,
        /// Print only this field of the record (e.g. `response`, `logs`, `annotations`).
        field: Option<String>,
        /// Print the result under a one-line summary of who ran, how it ended and when.
        #[arg(short = 's', long)]
        summary: bool,
        /// Print only the logs, without timestamp and stream.
        #[arg(short = 'g', long)]
        logs: bool,
    },
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

/// Where a `poll` without `--since-*` starts, as `wsk` decides it: just after the start of the
/// newest activation, so only what runs from now on shows, even when this machine's clock
/// and the server's disagree. An empty namespace polls from the epoch (everything that comes
/// is new); when the list cannot be read, from this machine's now.
async fn poll_start(client: &Client, settings: &Settings) -> u64 {
    let newest = client
        .send(
            Method::GET,
            &["namespaces", &settings.namespace, "activations"],
            &[("limit", "1".to_string()), ("docs", "true".to_string())],
            None,
        )
        .await;
    match newest {
        Ok(list) => list[0]["start"]
            .as_u64()
            .map_or(0, |start| start.saturating_add(1)),
        // Not fatal, as in wsk: the polling loop reports lasting trouble; `-v` shows this one.
        Err(_) => now_ms(),
    }
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
            // wsk shows the logs of a polled record as their JSON array.
            out!("{}", pretty(&record["logs"])?);
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
                .context("Activation list does not contain any activations.")
        }
    }
}

/// The words `wsk` shows for the `statusCode` of a record (0 when the summary has none, as a
/// trigger's has not).
fn status_word(item: &Value) -> &'static str {
    match item["statusCode"].as_u64().unwrap_or(0) {
        1 => "application error",
        2 => "developer error",
        3 => "internal error",
        _ => "success",
    }
}

fn annotation<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item["annotations"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// The runtime kind the record was made with; trigger records have none.
fn kind_of(item: &Value) -> &str {
    annotation(item, "kind")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
}

/// Shortens `text` past `max` bytes by cutting out its middle, as `wsk` does so one long name
/// cannot push the table apart.
fn truncate_middle(text: &str, max: usize) -> String {
    if text.len() <= max || !text.is_ascii() {
        return text.to_string();
    }
    let head = max / 2 + max % 2;
    let tail_start = text.len() - max / 2 + 3;
    format!("{}...{}", &text[..head], &text[tail_start..])
}

/// A duration of whole milliseconds the way Go prints one (`0s`, `34ms`, `1.5s`, `2m3.25s`,
/// `1h0m0s`), since `wsk` prints its `time.Duration` as is and scripts read that column.
fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let millis = ms % 60_000;
    let mut seconds = format!("{}.{:03}", millis / 1000, millis % 1000);
    while seconds.ends_with('0') {
        seconds.pop();
    }
    if seconds.ends_with('.') {
        seconds.pop();
    }
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `wsk activation list`'s table: a header, then per record the local start time, id, kind,
/// cold or warm start, duration, status and `namespace/name:version`. The kind and status
/// columns are as wide as their widest entry; an empty list is one empty line, as in `wsk`.
fn table(items: &[Value]) -> Vec<String> {
    if items.is_empty() {
        return vec![String::new()];
    }
    let kind_width = items
        .iter()
        .map(|item| kind_of(item).len())
        .fold("Kind".len(), usize::max);
    let status_width = items
        .iter()
        .map(|item| status_word(item).len())
        .fold("success".len(), usize::max);
    let mut lines = vec![format!(
        "{:<19} {:<32} {:<kind_width$} {:<6}{:<10} {:<status_width$} Entity",
        "Datetime", "Activation ID", "Kind", "Start", "Duration", "Status"
    )];
    for item in items {
        let start = item["start"].as_u64().unwrap_or(0);
        let started = i64::try_from(start)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|utc| {
                utc.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        // wsk measures end - start, and shows 0s when the record reports no duration.
        let duration = if item["duration"].as_u64().unwrap_or(0) == 0 {
            0
        } else {
            item["end"].as_u64().unwrap_or(start).saturating_sub(start)
        };
        let warmth = if annotation(item, "initTime").is_some() {
            "cold"
        } else {
            "warm"
        };
        let entity = format!(
            "{}/{}:{}",
            truncate_middle(item["namespace"].as_str().unwrap_or(""), 20),
            truncate_middle(item["name"].as_str().unwrap_or(""), 30),
            truncate_middle(item["version"].as_str().unwrap_or(""), 20)
        );
        lines.push(format!(
            "{started} {:<32} {:<kind_width$} {warmth:<5} {:<10} {:<status_width$} {entity}",
            item["activationId"].as_str().unwrap_or(""),
            kind_of(item),
            go_duration(duration),
            status_word(item),
        ));
    }
    lines
}

/// The lines of a record's `logs`; anything that is not a string is shown as its JSON.
fn log_lines(logs: &Value) -> Vec<String> {
    logs.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|line| {
            line.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| line.to_string())
        })
        .collect()
}

/// Whether `text` starts with an invoker timestamp, `YYYY-MM-DDTHH:MM:SS.<digits>Z`, and where
/// it ends. Only the shape is checked, the way `wsk` does, not that the date exists.
fn timestamp_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if bytes.len() < shape.len() + 2 {
        return None;
    }
    let fits = shape.iter().zip(bytes).all(|(want, got)| match want {
        b'd' => got.is_ascii_digit(),
        other => other == got,
    });
    if !fits {
        return None;
    }
    // One separator (any character), then at least one digit and the closing `Z`.
    let digits = bytes[shape.len() + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let z = shape.len() + 1 + digits;
    (digits > 0 && bytes.get(z) == Some(&b'Z')).then_some(z + 1)
}

/// Drops the `<timestamp> <stream>: ` prefix the invoker writes before each log line, as
/// `wsk activation logs --strip` and `get --logs` do; lines without a timestamp, or with
/// nothing after it, are kept whole.
fn strip(line: &str) -> &str {
    let Some(end) = timestamp_end(line) else {
        return line;
    };
    let mut rest = &line[end..];
    let spaced = rest.trim_start_matches(' ');
    for stream in ["stdout:", "stderr:"] {
        if let Some(after) = spaced.strip_prefix(stream) {
            rest = after;
            break;
        }
    }
    match rest.chars().next() {
        Some(space) if space.is_whitespace() && rest.len() > space.len_utf8() => {
            &rest[space.len_utf8()..]
        }
        _ => line,
    }
}

/// Makes the value printed for a field the record does not have.
type EmptyValue = fn() -> Value;

/// The fields `wsk activation get ID FIELD` accepts (its record type's, compared without
/// case), with what it prints for one the record lacks: its type's empty value.
const RECORD_FIELDS: &[(&str, EmptyValue)] = &[
    ("namespace", || Value::String(String::new())),
    ("name", || Value::String(String::new())),
    ("version", || Value::String(String::new())),
    ("subject", || Value::String(String::new())),
    ("activationId", || Value::String(String::new())),
    ("cause", || Value::String(String::new())),
    ("start", || Value::from(0)),
    ("end", || Value::from(0)),
    ("duration", || Value::from(0)),
    ("statusCode", || Value::from(0)),
    (
        "response",
        || serde_json::json!({"status": "", "statusCode": 0, "success": false}),
    ),
    ("logs", || Value::Null),
    ("annotations", || Value::Null),
    ("publish", || Value::Null),
];

/// One field of a record, found without regard to case as `wsk` does (`activationid` works).
fn record_field(record: &Value, field: &str) -> Value {
    let Some((name, empty)) = RECORD_FIELDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(field))
    else {
        return Value::Null;
    };
    record.get(*name).cloned().unwrap_or_else(empty)
}

/// `activation result for '/ns/name' (status at time)`: the end of the run in local time,
/// written the way Go prints a time (`2024-05-29 16:26:40 +0000 UTC`), since that is what
/// `wsk get --summary` shows and what people grep for.
fn summary_line(record: &Value) -> String {
    let end_seconds = record["end"].as_i64().unwrap_or(0).div_euclid(1000);
    let when = chrono::DateTime::from_timestamp(end_seconds, 0)
        .map(|utc| go_time(&utc.with_timezone(&chrono::Local)))
        .unwrap_or_default();
    format!(
        "activation result for '/{}/{}' ({} at {when})",
        record["namespace"].as_str().unwrap_or(""),
        record["name"].as_str().unwrap_or(""),
        record["response"]["status"].as_str().unwrap_or(""),
    )
}

/// A time as Go's `Time.String` writes it. Go names the zone by its abbreviation, which chrono
/// does not know; UTC (the zone of servers and CI) is named as Go names it, other zones by
/// their offset.
fn go_time<Tz: chrono::TimeZone>(time: &chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let offset = time.format("%z").to_string();
    let zone = if offset == "+0000" {
        "UTC".to_string()
    } else {
        offset.clone()
    };
    format!("{} {offset} {zone}", time.format("%Y-%m-%d %H:%M:%S"))
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
            let items = body.as_array().map(Vec::as_slice).unwrap_or_default();
            if full {
                // wsk prints the records one after the other under a title, not as an array.
                out!("activations");
                for item in items {
                    out!("{}", pretty(item)?);
                }
            } else {
                table(items).iter().for_each(|line| out!("{line}"));
            }
        }
        ActivationCommand::Get {
            target,
            field,
            summary,
            logs,
        } => {
            // With --last, wsk takes the one positional word for the field: `get --last response`.
            let (target, field) = match (target.last, target.id, field) {
                (true, Some(_), Some(extra)) => {
                    bail!("Invalid argument(s): {extra}. An activation ID is required.")
                }
                (true, word, None) => (
                    Target {
                        id: None,
                        last: true,
                    },
                    word,
                ),
                (last, id, field) => (Target { id, last }, field),
            };
            let id = resolve(&client, settings, &target)
                .await
                .context("Unable to get activation")?;
            if let Some(field) = &field
                && !RECORD_FIELDS
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case(field))
            {
                bail!("Invalid field filter '{field}'.");
            }
            let record = client
                .send(Method::GET, &[base[0], base[1], base[2], &id], &[], None)
                .await
                .with_context(|| format!("Unable to get activation '{id}'"))?;
            if summary {
                out!("{}", summary_line(&record));
                out!("{}", pretty(&record["response"]["result"])?);
            } else if logs {
                for line in log_lines(&record["logs"]) {
                    out!("{}", strip(&line));
                }
            } else if let Some(field) = field {
                out!("ok: got activation {id}, displaying field {field}");
                out!("{}", pretty(&record_field(&record, &field))?);
            } else {
                out!("ok: got activation {id}");
                out!("{}", pretty(&record)?);
            }
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
            for line in log_lines(&logs["logs"]) {
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
            let since = if back_seconds == 0 {
                poll_start(&client, settings).await
            } else {
                now_ms().saturating_sub(back_seconds.saturating_mul(1000))
            };
            let exit = exit.map(std::time::Duration::from_secs);
            poll(&client, settings, name, since, exit).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(34), "34ms");
        assert_eq!(go_duration(1000), "1s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(61_250), "1m1.25s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
    }

    #[test]
    fn long_names_lose_their_middle() {
        assert_eq!(truncate_middle("short", 20), "short");
        assert_eq!(
            truncate_middle("abcdefghijklmnopqrstuvwxyz", 20),
            "abcdefghij...tuvwxyz"
        );
        assert_eq!(
            truncate_middle("abcdefghijklmnopqrstuvwxyz", 21),
            "abcdefghijk...tuvwxyz"
        );
    }

    #[test]
    fn the_table_sizes_kind_and_status_to_their_widest_entry() {
        assert_eq!(table(&[]), vec![String::new()]);
        let action = serde_json::json!({
            "namespace": "guest", "name": "hello", "version": "0.0.1",
            "activationId": "0123456789abcdef0123456789abcdef", "start": 0, "end": 1500,
            "duration": 1500, "statusCode": 2,
            "annotations": [{"key": "kind", "value": "nodejs:20"}, {"key": "initTime", "value": 9}]
        });
        let trigger = serde_json::json!({
            "namespace": "guest", "name": "tick", "version": "0.0.1",
            "activationId": "fedcba9876543210fedcba9876543210", "start": 0, "annotations": []
        });
        let lines = table(&[action, trigger]);
        assert_eq!(
            lines[0],
            "Datetime            Activation ID                    Kind      Start Duration   Status          Entity"
        );
        // The time column is the local time of the start, so only the rest is compared.
        assert_eq!(
            &lines[1][20..],
            "0123456789abcdef0123456789abcdef nodejs:20 cold  1.5s       developer error guest/hello:0.0.1"
        );
        assert_eq!(
            &lines[2][20..],
            "fedcba9876543210fedcba9876543210 unknown   warm  0s         success         guest/tick:0.0.1"
        );
    }

    #[test]
    fn strip_drops_timestamp_and_stream_only() {
        assert_eq!(
            strip("2024-05-29T16:26:40.123Z stdout: hello world"),
            "hello world"
        );
        assert_eq!(strip("no prefix"), "no prefix");
        // Lines that only look like the prefix are kept whole.
        assert_eq!(
            strip("2024-05-29 16:26:40 stdout: x"),
            "2024-05-29 16:26:40 stdout: x"
        );
        assert_eq!(
            strip("2024-05-29T16:26:40.Z stdout: x"),
            "2024-05-29T16:26:40.Z stdout: x"
        );
        assert_eq!(strip("2024-05-29T16:26:40.5Z"), "2024-05-29T16:26:40.5Z");
        // The stream is optional, and a stream-like word after the prefix stays.
        assert_eq!(strip("2024-05-29T16:26:40.5Z plain"), "plain");
        assert_eq!(strip("2024-05-29T16:26:40.5Z stderr: oops"), "oops");
        assert_eq!(
            strip("2024-05-29T16:26:40.5Z stdout: stdout: x"),
            "stdout: x"
        );
    }

    #[test]
    fn fields_are_found_without_case_and_default_to_their_empty_value() {
        let record = serde_json::json!({"activationId": "abc", "logs": ["l"], "start": 5});
        assert_eq!(record_field(&record, "ACTIVATIONID"), "abc");
        assert_eq!(record_field(&record, "logs"), serde_json::json!(["l"]));
        assert_eq!(record_field(&record, "cause"), "");
        assert_eq!(record_field(&record, "duration"), 0);
        assert_eq!(record_field(&record, "publish"), Value::Null);
        assert_eq!(record_field(&record, "colour"), Value::Null);
    }

    #[test]
    fn the_summary_names_the_entity_status_and_end_as_go_prints_a_time() {
        let utc = chrono::DateTime::from_timestamp(1_717_000_000, 0).unwrap();
        assert_eq!(go_time(&utc), "2024-05-29 16:26:40 +0000 UTC");
        let east = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            go_time(&utc.with_timezone(&east)),
            "2024-05-29 18:26:40 +0200 +0200"
        );
        let record = serde_json::json!({
            "namespace": "guest", "name": "hello", "end": 1_717_000_000_999_i64,
            "response": {"status": "application error"}
        });
        let line = summary_line(&record);
        assert!(
            line.starts_with("activation result for '/guest/hello' (application error at 2024-05-"),
            "{line}"
        );
        assert!(line.ends_with(')'), "{line}");
    }
}
