//! The module's stdout and stderr: kept in memory up to a cap, with the full length counted, and
//! journaled line by line in the order the module wrote them.
//!
//! wasmtime-wasi's own memory pipe makes writes past its capacity short writes, so an over-long
//! result would silently arrive cut and be reported as invalid JSON. This sink accepts every
//! write, keeps the first `cap` bytes and counts all of them, so that the run can say the
//! output was too long, and by how much, as OpenWhisk does for an over-long response.
//!
//! Both streams share one journal so that the activation's logs interleave stdout and stderr
//! lines as they were written, each stamped with the time its line ended, like the logs of a
//! container-based action.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a writer may write at once (WASI asks before each write).
const WRITE_PERMIT: usize = 64 * 1024;

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`, as OpenWhisk's log lines name them.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    fn slot(self) -> usize {
        match self {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        }
    }
}

/// One line the module wrote, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line ended (its newline was written, or the run ended).
    pub time: SystemTime,
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Default)]
struct StreamState {
    kept: Vec<u8>,
    total: u64,
    /// The kept bytes after the last newline.
    partial: Vec<u8>,
    /// Lines journaled so far.
    lines: usize,
}

/// A journaled line and its number within its stream.
#[derive(Debug, Clone)]
pub(crate) struct Journaled {
    pub(crate) number: usize,
    pub(crate) line: LogLine,
}

#[derive(Debug, Default)]
struct Outputs {
    streams: [StreamState; 2],
    journal: Vec<Journaled>,
}

impl Outputs {
    fn end_line(&mut self, stream: LogStream, bytes: &[u8], time: SystemTime) {
        let state = &mut self.streams[stream.slot()];
        let text = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = LogLine {
            time,
            stream,
            text: String::from_utf8_lossy(text).into_owned(),
        };
        self.journal.push(Journaled {
            number: state.lines,
            line,
        });
        state.lines += 1;
    }
}

/// One output stream of one run; both streams of a run share their state. Clones share it too.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    cap: usize,
    stream: LogStream,
    shared: Arc<Mutex<Outputs>>,
}

impl Capture {
    /// Stdout and stderr of one run, each keeping at most `cap` bytes.
    pub(crate) fn pair(cap: usize) -> (Capture, Capture) {
        let shared = Arc::new(Mutex::new(Outputs::default()));
        let capture = |stream| Capture {
            cap,
            stream,
            shared: Arc::clone(&shared),
        };
        (capture(LogStream::Stdout), capture(LogStream::Stderr))
    }

    /// The bytes kept of this stream (at most the cap) and how many were written in all.
    pub(crate) fn contents(&self) -> (Vec<u8>, u64) {
        let outputs = self.lock();
        let state = &outputs.streams[self.stream.slot()];
        (state.kept.clone(), state.total)
    }

    /// Ends both streams' unfinished lines and returns every line of the run in write order.
    pub(crate) fn finish(&self) -> Vec<Journaled> {
        let mut outputs = self.lock();
        let now = SystemTime::now();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let partial = std::mem::take(&mut outputs.streams[stream.slot()].partial);
            if !partial.is_empty() {
                outputs.end_line(stream, &partial, now);
            }
        }
        std::mem::take(&mut outputs.journal)
    }

    fn append(&self, bytes: &[u8]) {
        let mut outputs = self.lock();
        let slot = self.stream.slot();
        let state = &mut outputs.streams[slot];
        state.total = state.total.saturating_add(bytes.len() as u64);
        let room = self.cap.saturating_sub(state.kept.len());
        let kept = &bytes[..bytes.len().min(room)];
        state.kept.extend_from_slice(kept);
        if kept.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let mut rest = kept;
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut outputs.streams[slot].partial);
            line.extend_from_slice(&rest[..newline]);
            outputs.end_line(self.stream, &line, now);
            rest = &rest[newline + 1..];
        }
        outputs.streams[slot].partial.extend_from_slice(rest);
    }

    /// Appends are single calls, so a lock poisoned by a panicking writer still guards
    /// consistent data.
    fn lock(&self) -> MutexGuard<'_, Outputs> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(journal: &[Journaled]) -> Vec<(LogStream, usize, &str)> {
        journal
            .iter()
            .map(|j| (j.line.stream, j.number, j.line.text.as_str()))
            .collect()
    }

    #[test]
    fn keeps_up_to_the_cap_and_counts_everything() {
        let (stdout, _) = Capture::pair(5);
        let mut stream = stdout.clone();
        OutputStream::write(&mut stream, Bytes::from_static(b"abc")).ok();
        stdout.append(b"defgh");
        assert_eq!(stdout.contents(), (b"abcde".to_vec(), 8));
        assert_eq!(stream.check_write().ok(), Some(WRITE_PERMIT));
        assert!(!stdout.is_terminal());
    }

    #[test]
    fn lines_of_both_streams_are_journaled_in_write_order() {
        let (stdout, stderr) = Capture::pair(1024);
        stdout.append(b"one\r\ntw");
        stderr.append(b"err 1\n\n");
        stdout.append(b"o\nthree");
        stderr.append(b"err 2");
        let journal = stdout.finish();
        assert_eq!(
            texts(&journal),
            [
                (LogStream::Stdout, 0, "one"),
                (LogStream::Stderr, 0, "err 1"),
                (LogStream::Stderr, 1, ""),
                (LogStream::Stdout, 1, "two"),
                (LogStream::Stdout, 2, "three"),
                (LogStream::Stderr, 2, "err 2"),
            ]
        );
        assert!(
            stderr.finish().is_empty(),
            "finish hands the journal over once"
        );
        assert_eq!(LogStream::Stderr.as_str(), "stderr");
    }

    #[test]
    fn nothing_past_the_cap_is_journaled() {
        let (_, stderr) = Capture::pair(8);
        stderr.append(b"1234\n5678\n9abc\n");
        assert_eq!(
            texts(&stderr.finish()),
            [
                (LogStream::Stderr, 0, "1234"),
                (LogStream::Stderr, 1, "567")
            ]
        );
    }
}
