//! Turning a container's stdout/stderr into an activation's `logs` (REFERENCE §8.4, §13.4).
//!
//! The runtime proxy ends the output of every activation with a sentinel line on both streams,
//! so the collector reads until it has seen both and the next activation starts on a clean
//! stream. Every kept line is stamped and tagged with its stream; the total is capped at the
//! action's log limit, and the platform adds OpenWhisk's notices when it cut, gave up or knows
//! the output is incomplete.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use whisk_model::activation::{
    LOG_COLLECTION_FAILURE, LOG_WARNING_DEVELOPER_ERROR, logs_truncated,
};

use crate::container::LogRequest;

/// The line the runtime proxies write to both streams after each activation.
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line a container wrote, with the time it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub time: SystemTime,
    pub stream: Stream,
    /// The line, with or without its newline.
    pub text: String,
}

impl LogRecord {
    pub fn new(time: SystemTime, stream: Stream, text: impl Into<String>) -> LogRecord {
        LogRecord {
            time,
            stream,
            text: text.into(),
        }
    }
}

/// Why reading a container's output failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading container output failed: {0}")]
pub struct LogReadError(pub String);

/// The records of one container's two streams, merged in the order they were read.
#[async_trait]
pub trait LogSource: Send {
    /// The next record; `Ok(None)` when both streams have ended (the container is gone).
    async fn next_record(&mut self) -> Result<Option<LogRecord>, LogReadError>;
}

/// Formats one line as OpenWhisk does: the timestamp padded to 30 characters, a space, the
/// stream, `: ` and the text without its line ending.
pub fn format_line(time: SystemTime, stream: Stream, text: &str) -> String {
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    format!("{:<30} {}: {}", rfc3339_nanos(time), stream.as_str(), text)
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2024-05-29T16:26:40.123456789Z`.
pub fn rfc3339_nanos(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = since_epoch.as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since_epoch.subsec_nanos()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm,
/// restricted to dates after the epoch, which is all a log timestamp can be).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Reads one activation's records from `source` and returns its formatted `logs`.
///
/// Reading stops when both sentinels were seen. When the limit is reached, the rest up to the
/// sentinels is read and dropped (so the next activation starts clean) and the truncation
/// notice is added. If the sentinels do not come within `request.wait`, or the source fails or
/// ends, the collection notice is added. After a developer error the collector does not wait:
/// it keeps what is already there and adds the developer-error warning.
pub async fn collect(source: &mut dyn LogSource, request: LogRequest) -> Vec<String> {
    let wait = if request.developer_error {
        Duration::ZERO
    } else {
        request.wait
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut lines = Vec::new();
    let mut used: u64 = 0;
    let mut truncated = false;
    let mut seen_stdout = false;
    let mut seen_stderr = false;
    let mut complete = false;
    loop {
        let next = if wait.is_zero() {
            // Only what has already arrived: poll once without waiting.
            match tokio::time::timeout(Duration::ZERO, source.next_record()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        } else {
            match tokio::time::timeout_at(deadline, source.next_record()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        };
        let record = match next {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "log collection failed");
                break;
            }
        };
        if record.text.contains(SENTINEL) {
            match record.stream {
                Stream::Stdout => seen_stdout = true,
                Stream::Stderr => seen_stderr = true,
            }
            if seen_stdout && seen_stderr {
                complete = true;
                break;
            }
            continue;
        }
        if truncated || request.limit_bytes == 0 {
            continue;
        }
        let size = record.text.len() as u64;
        if used + size > request.limit_bytes {
            truncated = true;
            continue;
        }
        used += size;
        lines.push(format_line(record.time, record.stream, &record.text));
    }
    if request.limit_bytes == 0 {
        return Vec::new();
    }
    let now = SystemTime::now();
    if truncated {
        lines.push(format_line(
            now,
            Stream::Stderr,
            &logs_truncated(request.limit_bytes),
        ));
    }
    if request.developer_error {
        lines.push(format_line(
            now,
            Stream::Stderr,
            LOG_WARNING_DEVELOPER_ERROR,
        ));
    } else if !complete {
        lines.push(format_line(now, Stream::Stderr, LOG_COLLECTION_FAILURE));
    }
    lines
}

/// A source over records already in memory (tests, and containers that buffer their output).
#[derive(Debug, Default)]
pub struct VecLogSource {
    records: std::collections::VecDeque<Result<LogRecord, LogReadError>>,
    /// Whether running out of records means the streams ended (else: wait forever).
    ended: bool,
}

impl VecLogSource {
    /// Records that are followed by the end of both streams.
    pub fn ended(records: Vec<LogRecord>) -> VecLogSource {
        VecLogSource {
            records: records.into_iter().map(Ok).collect(),
            ended: true,
        }
    }

    /// Records after which the streams stay open with nothing more to read.
    pub fn open(records: Vec<LogRecord>) -> VecLogSource {
        VecLogSource {
            records: records.into_iter().map(Ok).collect(),
            ended: false,
        }
    }

    /// Adds a read failure after the records so far.
    pub fn push_error(&mut self, error: LogReadError) {
        self.records.push_back(Err(error));
    }
}

#[async_trait]
impl LogSource for VecLogSource {
    async fn next_record(&mut self) -> Result<Option<LogRecord>, LogReadError> {
        match self.records.pop_front() {
            Some(next) => next.map(Some),
            None if self.ended => Ok(None),
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    fn at(nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    fn out(text: &str) -> LogRecord {
        LogRecord::new(at(1_717_000_000_123_456_789), Stream::Stdout, text)
    }

    fn err(text: &str) -> LogRecord {
        LogRecord::new(at(1_717_000_000_123_456_789), Stream::Stderr, text)
    }

    fn request(limit_bytes: u64) -> LogRequest {
        LogRequest {
            limit_bytes,
            developer_error: false,
            wait: Duration::from_secs(30),
        }
    }

    fn sentinels() -> Vec<LogRecord> {
        vec![out(&format!("{SENTINEL}\n")), err(&format!("{SENTINEL}\n"))]
    }

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        assert_eq!(rfc3339_nanos(at(0)), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nanos(at(1_717_000_000_123_456_789)),
            "2024-05-29T16:26:40.123456789Z"
        );
        // A leap day and the end of a leap year.
        assert_eq!(
            rfc3339_nanos(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_nanos(UNIX_EPOCH + Duration::from_secs(1_735_689_599)),
            "2024-12-31T23:59:59.000000000Z"
        );
    }

    #[test]
    fn lines_are_padded_tagged_and_stripped() {
        assert_eq!(
            format_line(at(1_717_000_000_123_456_789), Stream::Stdout, "hello\n"),
            "2024-05-29T16:26:40.123456789Z stdout: hello"
        );
        assert_eq!(
            format_line(at(0), Stream::Stderr, "oops\r\n"),
            "1970-01-01T00:00:00.000000000Z stderr: oops"
        );
        // A shorter timestamp would be padded to 30 characters.
        assert_eq!(
            format!("{:<30}|", "2024-05-29T16:26:40.123456Z"),
            "2024-05-29T16:26:40.123456Z   |"
        );
    }

    #[tokio::test]
    async fn reads_until_both_sentinels_and_drops_them() {
        let mut records = vec![out("one\n"), err("two\n")];
        records.extend(sentinels());
        records.push(out("next activation\n"));
        let mut source = VecLogSource::open(records);
        let lines = collect(&mut source, request(1024)).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" stdout: one"));
        assert!(lines[1].ends_with(" stderr: two"));
        // The next activation's record is still there.
        assert_eq!(
            source.next_record().await.unwrap().unwrap().text,
            "next activation\n"
        );
    }

    #[tokio::test]
    async fn one_sentinel_is_not_enough() {
        let mut source = VecLogSource::ended(vec![out("a\n"), out(&format!("{SENTINEL}\n"))]);
        let lines = collect(&mut source, request(1024)).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with(&format!(" stderr: {LOG_COLLECTION_FAILURE}")));
    }

    #[tokio::test(start_paused = true)]
    async fn missing_sentinels_end_in_the_collection_notice_after_the_wait() {
        let mut source = VecLogSource::open(vec![out("a\n")]);
        let lines = collect(&mut source, request(1024)).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with(&format!(" stderr: {LOG_COLLECTION_FAILURE}")));
    }

    #[tokio::test]
    async fn a_read_failure_ends_in_the_collection_notice() {
        let mut source = VecLogSource::open(vec![out("a\n")]);
        source.push_error(LogReadError("pipe broke".into()));
        let lines = collect(&mut source, request(1024)).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with(LOG_COLLECTION_FAILURE));
    }

    #[tokio::test]
    async fn the_limit_truncates_with_the_notice_and_still_drains_to_the_sentinels() {
        let mut records: Vec<LogRecord> = (0..10).map(|i| out(&format!("line{i}\n"))).collect();
        records.extend(sentinels());
        records.push(out("after\n"));
        let mut source = VecLogSource::open(records);
        // Each record is 6 bytes: three fit in 20.
        let lines = collect(&mut source, request(20)).await;
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[2].ends_with("stdout: line2"));
        assert!(lines[3].ends_with(&format!(" stderr: {}", logs_truncated(20))));
        assert_eq!(source.next_record().await.unwrap().unwrap().text, "after\n");
    }

    #[tokio::test]
    async fn a_zero_limit_collects_nothing_but_drains() {
        let mut records = vec![out("x\n")];
        records.extend(sentinels());
        records.push(out("after\n"));
        let mut source = VecLogSource::open(records);
        assert!(collect(&mut source, request(0)).await.is_empty());
        assert_eq!(source.next_record().await.unwrap().unwrap().text, "after\n");
    }

    #[tokio::test]
    async fn a_developer_error_keeps_what_is_there_and_warns() {
        let mut source = VecLogSource::open(vec![err("boom\n")]);
        let lines = collect(
            &mut source,
            LogRequest {
                developer_error: true,
                ..request(1024)
            },
        )
        .await;
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("stderr: boom"));
        assert!(lines[1].ends_with(&format!(" stderr: {LOG_WARNING_DEVELOPER_ERROR}")));
    }
}
