//! When an alarm fires: the three kinds of the alarms package (cron, interval, once), their
//! parameters as the feed actions pass them, and the next fire time after a given instant.
//!
//! Everything here is pure (instants are epoch milliseconds handed in by the caller), so the
//! scheduler's clock stays injectable and the rules are unit-tested without waiting.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How long after creation an interval alarm without `startDate` first fires, as the alarms
/// package does (it gives the trigger's rules time to be created).
pub const INTERVAL_DEFAULT_DELAY_MS: u64 = 30_000;

/// A registration's parameters that are wrong; the message goes back to the feed action, which
/// returns it as its error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("alarms trigger feeds require a {0} parameter")]
    Missing(&'static str),
    #[error("cron pattern '{pattern}' is not valid: {reason}")]
    BadCron { pattern: String, reason: String },
    #[error("cron pattern '{0}' must have 5 fields (or 6 with seconds first)")]
    CronFields(String),
    #[error("timezone '{0}' is not a known IANA time zone")]
    BadTimezone(String),
    #[error("{name} is not a valid date: {value}")]
    BadDate { name: &'static str, value: String },
    #[error("{name} must be in the future")]
    PastDate { name: &'static str },
    #[error("stopDate must be after startDate")]
    StopBeforeStart,
    #[error("the minutes parameter must be an integer greater than 0")]
    BadMinutes,
    #[error("deleteAfterFire must be false, true or rules")]
    BadDeleteAfterFire,
    #[error("maxTriggers is no longer supported; use stopDate")]
    MaxTriggers,
}

/// Which feed of the alarms package a registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmKind {
    Alarm,
    Interval,
    Once,
}

impl AlarmKind {
    /// The kind named by a feed route segment.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "alarm" => Some(Self::Alarm),
            "interval" => Some(Self::Interval),
            "once" => Some(Self::Once),
            _ => None,
        }
    }
}

/// What a `once` alarm removes after it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeleteAfterFire {
    /// Nothing: the registration just ends.
    #[default]
    No,
    /// The trigger.
    Trigger,
    /// The trigger and the rules attached to it.
    Rules,
}

/// A validated alarm, as stored with its registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmSpec {
    pub kind: AlarmKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_date: Option<u64>,
    #[serde(default)]
    pub delete_after_fire: DeleteAfterFire,
    /// The fire body (`trigger_payload`; a string becomes `{"payload": string}`).
    #[serde(default)]
    pub payload: Map<String, Value>,
}

impl AlarmSpec {
    /// Validates the feed parameters of `kind` against `now` (epoch ms). Interval alarms without
    /// `startDate` start [`INTERVAL_DEFAULT_DELAY_MS`] after `now`.
    pub fn from_params(
        kind: AlarmKind,
        params: &Map<String, Value>,
        now: u64,
    ) -> Result<Self, ScheduleError> {
        if params
            .get("maxTriggers")
            .is_some_and(|value| !value.is_null())
        {
            return Err(ScheduleError::MaxTriggers);
        }
        let mut spec = AlarmSpec {
            kind,
            cron: None,
            timezone: None,
            minutes: None,
            date: None,
            start_date: date_param(params, "startDate")?,
            stop_date: date_param(params, "stopDate")?,
            delete_after_fire: DeleteAfterFire::No,
            payload: payload_param(params.get("trigger_payload")),
        };
        match kind {
            AlarmKind::Alarm => {
                let pattern = string_param(params, "cron").ok_or(ScheduleError::Missing("cron"))?;
                let timezone = string_param(params, "timezone");
                parse_timezone(timezone.as_deref())?;
                parse_cron(&pattern)?;
                spec.cron = Some(pattern);
                spec.timezone = timezone;
            }
            AlarmKind::Interval => {
                let minutes = params
                    .get("minutes")
                    .ok_or(ScheduleError::Missing("minutes"))?;
                let minutes = match minutes {
                    Value::Number(number) => number.as_u64(),
                    Value::String(text) => text.trim().parse::<u64>().ok(),
                    _ => None,
                }
                .filter(|minutes| *minutes > 0)
                .ok_or(ScheduleError::BadMinutes)?;
                spec.minutes = Some(minutes);
                if spec.start_date.is_none() {
                    spec.start_date = Some(now.saturating_add(INTERVAL_DEFAULT_DELAY_MS));
                }
            }
            AlarmKind::Once => {
                let date = date_param(params, "date")?.ok_or(ScheduleError::Missing("date"))?;
                if date <= now {
                    return Err(ScheduleError::PastDate { name: "date" });
                }
                spec.date = Some(date);
                spec.start_date = None;
                spec.stop_date = None;
                spec.delete_after_fire = match params.get("deleteAfterFire") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => DeleteAfterFire::No,
                    Some(Value::Bool(true)) => DeleteAfterFire::Trigger,
                    Some(Value::String(text)) => match text.to_ascii_lowercase().as_str() {
                        "false" => DeleteAfterFire::No,
                        "true" => DeleteAfterFire::Trigger,
                        "rules" => DeleteAfterFire::Rules,
                        _ => return Err(ScheduleError::BadDeleteAfterFire),
                    },
                    Some(_) => return Err(ScheduleError::BadDeleteAfterFire),
                };
            }
        }
        if let Some(stop) = spec.stop_date {
            if stop <= now {
                return Err(ScheduleError::PastDate { name: "stopDate" });
            }
            if spec.start_date.is_some_and(|start| stop <= start) {
                return Err(ScheduleError::StopBeforeStart);
            }
        }
        Ok(spec)
    }

    /// The first fire time strictly after `after` (epoch ms), within `startDate..=stopDate`;
    /// `None` when the schedule has no more fires.
    pub fn next_after(&self, after: u64) -> Result<Option<u64>, ScheduleError> {
        let next = match self.kind {
            AlarmKind::Once => self.date.filter(|date| *date > after),
            AlarmKind::Interval => {
                let period = self
                    .minutes
                    .ok_or(ScheduleError::BadMinutes)?
                    .saturating_mul(60_000);
                let start = self.start_date.unwrap_or(0);
                if after < start {
                    Some(start)
                } else {
                    let periods = (after - start) / period + 1;
                    Some(start.saturating_add(periods.saturating_mul(period)))
                }
            }
            AlarmKind::Alarm => {
                let pattern = self.cron.as_deref().ok_or(ScheduleError::Missing("cron"))?;
                let cron = parse_cron(pattern)?;
                let timezone = parse_timezone(self.timezone.as_deref())?;
                // Strictly after both `after` and (when set) just before the start date.
                let from = match self.start_date {
                    Some(start) if start > after => start.saturating_sub(1),
                    _ => after,
                };
                next_cron(&cron, timezone, from)
            }
        };
        Ok(next.filter(|next| self.stop_date.is_none_or(|stop| *next <= stop)))
    }
}

/// Parses a 5-field cron pattern, or a 6-field one whose first field is seconds.
pub fn parse_cron(pattern: &str) -> Result<Cron, ScheduleError> {
    let fields = pattern.split_whitespace().count();
    if fields != 5 && fields != 6 {
        return Err(ScheduleError::CronFields(pattern.to_owned()));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|error| ScheduleError::BadCron {
            pattern: pattern.to_owned(),
            reason: error.to_string(),
        })
}

/// The time zone a cron pattern is read in: UTC unless named.
fn parse_timezone(name: Option<&str>) -> Result<Tz, ScheduleError> {
    match name {
        None | Some("") => Ok(Tz::UTC),
        Some(name) => Tz::from_str(name).map_err(|_| ScheduleError::BadTimezone(name.to_owned())),
    }
}

/// The first match of `cron` in `timezone` strictly after `after` (epoch ms).
fn next_cron(cron: &Cron, timezone: Tz, after: u64) -> Option<u64> {
    // Matches fall on whole seconds; croner keeps the sub-second part of its start time, so
    // start from the whole second (any match after it is also after `after`).
    let after = i64::try_from(after - after % 1000).ok()?;
    let instant = Utc.timestamp_millis_opt(after).single()?;
    let local: DateTime<Tz> = instant.with_timezone(&timezone);
    let next = cron.find_next_occurrence(&local, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

fn string_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name) {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        _ => None,
    }
}

/// A date parameter: epoch milliseconds (number or digits) or an ISO-8601 / RFC 3339 string.
fn date_param(
    params: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, ScheduleError> {
    let bad = |value: &Value| ScheduleError::BadDate {
        name,
        value: value.to_string(),
    };
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(value @ Value::Number(number)) => number.as_u64().map(Some).ok_or_else(|| bad(value)),
        Some(value @ Value::String(text)) => {
            let text = text.trim();
            if let Ok(millis) = text.parse::<u64>() {
                return Ok(Some(millis));
            }
            let parsed = DateTime::parse_from_rfc3339(text)
                .map(|date| date.timestamp_millis())
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|date| date.and_utc().timestamp_millis())
                })
                .map_err(|_| bad(value))?;
            u64::try_from(parsed).map(Some).map_err(|_| bad(value))
        }
        Some(value) => Err(bad(value)),
    }
}

/// `trigger_payload` as the fire body: objects as they are, strings (JSON text of an object, or
/// any other text) as the alarms package does.
fn payload_param(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(object)) => object.clone(),
        Some(Value::String(text)) if text.is_empty() => Map::new(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            _ => {
                let mut wrapped = Map::new();
                wrapped.insert("payload".into(), Value::String(text.clone()));
                wrapped
            }
        },
        _ => Map::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-01-01T00:00:00Z
    const NEW_YEAR: u64 = 1_767_225_600_000;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn alarm(value: Value) -> Result<AlarmSpec, ScheduleError> {
        AlarmSpec::from_params(AlarmKind::Alarm, &params(value), NEW_YEAR)
    }

    #[test]
    fn five_field_cron_fires_on_the_next_minute_boundary() {
        let spec = alarm(json!({"cron": "*/5 * * * *"})).unwrap();
        assert_eq!(spec.next_after(NEW_YEAR).unwrap(), Some(NEW_YEAR + 300_000));
        assert_eq!(
            spec.next_after(NEW_YEAR + 1).unwrap(),
            Some(NEW_YEAR + 300_000)
        );
    }

    #[test]
    fn six_field_cron_has_seconds_first() {
        let spec = alarm(json!({"cron": "*/2 * * * * *"})).unwrap();
        assert_eq!(spec.next_after(NEW_YEAR).unwrap(), Some(NEW_YEAR + 2_000));
        assert_eq!(
            spec.next_after(NEW_YEAR + 2_500).unwrap(),
            Some(NEW_YEAR + 4_000)
        );
    }

    #[test]
    fn cron_is_read_in_the_named_timezone() {
        // 09:00 in Berlin on 1 January is 08:00 UTC.
        let spec = alarm(json!({"cron": "0 9 * * *", "timezone": "Europe/Berlin"})).unwrap();
        assert_eq!(
            spec.next_after(NEW_YEAR).unwrap(),
            Some(NEW_YEAR + 8 * 3_600_000)
        );
    }

    #[test]
    fn bad_cron_timezone_and_field_counts_are_refused() {
        assert!(matches!(
            alarm(json!({"cron": "61 * * * *"})),
            Err(ScheduleError::BadCron { .. })
        ));
        assert_eq!(
            alarm(json!({"cron": "* * * *"})),
            Err(ScheduleError::CronFields("* * * *".into()))
        );
        assert_eq!(
            alarm(json!({"cron": "* * * * * * *"})),
            Err(ScheduleError::CronFields("* * * * * * *".into()))
        );
        assert_eq!(alarm(json!({})), Err(ScheduleError::Missing("cron")));
        assert_eq!(
            alarm(json!({"cron": "* * * * *", "timezone": "Mars/Olympus"})),
            Err(ScheduleError::BadTimezone("Mars/Olympus".into()))
        );
        assert_eq!(
            alarm(json!({"cron": "* * * * *", "maxTriggers": 3})),
            Err(ScheduleError::MaxTriggers)
        );
    }

    #[test]
    fn start_and_stop_dates_bound_a_cron_alarm() {
        let spec = alarm(json!({
            "cron": "0 * * * *",
            "startDate": NEW_YEAR + 2 * 3_600_000,
            "stopDate": "2026-01-01T04:00:00Z",
        }))
        .unwrap();
        assert_eq!(
            spec.next_after(NEW_YEAR).unwrap(),
            Some(NEW_YEAR + 2 * 3_600_000)
        );
        assert_eq!(
            spec.next_after(NEW_YEAR + 3 * 3_600_000).unwrap(),
            Some(NEW_YEAR + 4 * 3_600_000)
        );
        assert_eq!(spec.next_after(NEW_YEAR + 4 * 3_600_000).unwrap(), None);
    }

    #[test]
    fn past_stop_date_and_stop_before_start_are_refused() {
        assert_eq!(
            alarm(json!({"cron": "* * * * *", "stopDate": NEW_YEAR - 1})),
            Err(ScheduleError::PastDate { name: "stopDate" })
        );
        assert_eq!(
            alarm(
                json!({"cron": "* * * * *", "startDate": NEW_YEAR + 10, "stopDate": NEW_YEAR + 5})
            ),
            Err(ScheduleError::StopBeforeStart)
        );
        assert!(matches!(
            alarm(json!({"cron": "* * * * *", "startDate": "yesterday"})),
            Err(ScheduleError::BadDate {
                name: "startDate",
                ..
            })
        ));
    }

    #[test]
    fn interval_starts_thirty_seconds_late_by_default_then_keeps_its_period() {
        let spec = AlarmSpec::from_params(
            AlarmKind::Interval,
            &params(json!({"minutes": 2})),
            NEW_YEAR,
        )
        .unwrap();
        let first = NEW_YEAR + INTERVAL_DEFAULT_DELAY_MS;
        assert_eq!(spec.next_after(NEW_YEAR).unwrap(), Some(first));
        assert_eq!(spec.next_after(first).unwrap(), Some(first + 120_000));
        // After a long pause the next fire stays on the grid of the start date.
        assert_eq!(
            spec.next_after(first + 10 * 120_000 + 5).unwrap(),
            Some(first + 11 * 120_000)
        );
    }

    #[test]
    fn interval_minutes_must_be_a_positive_integer() {
        for bad in [json!(0), json!(-1), json!("x"), json!(1.5), json!(null)] {
            assert_eq!(
                AlarmSpec::from_params(
                    AlarmKind::Interval,
                    &params(json!({"minutes": bad})),
                    NEW_YEAR
                ),
                Err(ScheduleError::BadMinutes),
                "{bad}"
            );
        }
        assert_eq!(
            AlarmSpec::from_params(AlarmKind::Interval, &Map::new(), NEW_YEAR),
            Err(ScheduleError::Missing("minutes"))
        );
    }

    #[test]
    fn once_fires_once_at_its_date_and_refuses_a_past_date() {
        let spec = AlarmSpec::from_params(
            AlarmKind::Once,
            &params(json!({"date": "2026-01-01T00:01:00.000Z", "deleteAfterFire": "rules"})),
            NEW_YEAR,
        )
        .unwrap();
        assert_eq!(spec.delete_after_fire, DeleteAfterFire::Rules);
        assert_eq!(spec.next_after(NEW_YEAR).unwrap(), Some(NEW_YEAR + 60_000));
        assert_eq!(spec.next_after(NEW_YEAR + 60_000).unwrap(), None);
        assert_eq!(
            AlarmSpec::from_params(
                AlarmKind::Once,
                &params(json!({"date": NEW_YEAR})),
                NEW_YEAR
            ),
            Err(ScheduleError::PastDate { name: "date" })
        );
        assert_eq!(
            AlarmSpec::from_params(
                AlarmKind::Once,
                &params(json!({"date": NEW_YEAR + 1, "deleteAfterFire": "maybe"})),
                NEW_YEAR
            ),
            Err(ScheduleError::BadDeleteAfterFire)
        );
    }

    #[test]
    fn trigger_payload_strings_are_wrapped_unless_they_are_json_objects() {
        let wrapped = alarm(json!({"cron": "* * * * *", "trigger_payload": "hi"})).unwrap();
        assert_eq!(Value::Object(wrapped.payload), json!({"payload": "hi"}));
        let object = alarm(json!({"cron": "* * * * *", "trigger_payload": "{\"a\":1}"})).unwrap();
        assert_eq!(Value::Object(object.payload), json!({"a": 1}));
        let direct = alarm(json!({"cron": "* * * * *", "trigger_payload": {"b": 2}})).unwrap();
        assert_eq!(Value::Object(direct.payload), json!({"b": 2}));
    }
}
