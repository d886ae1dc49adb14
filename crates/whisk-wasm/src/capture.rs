//! The module's stdout and stderr: kept in memory up to a cap, with the full length counted.
//!
//! wasmtime-wasi's own memory pipe makes writes past its capacity short writes, so an over-long
//! result would silently arrive cut and be reported as invalid JSON. This sink accepts every
//! write, keeps the first `cap` bytes and counts all of them, so that the run can say the
//! output was too long, and by how much, as OpenWhisk does for an over-long response.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a writer may write at once (WASI asks before each write).
const WRITE_PERMIT: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    total: u64,
}

/// One output stream of one run. Clones share the same buffer.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    cap: usize,
    shared: Arc<Mutex<Captured>>,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Capture {
        Capture {
            cap,
            shared: Arc::new(Mutex::new(Captured::default())),
        }
    }

    /// The bytes kept (at most the cap) and how many were written in all.
    pub(crate) fn contents(&self) -> (Vec<u8>, u64) {
        let captured = self.lock();
        (captured.kept.clone(), captured.total)
    }

    fn append(&self, bytes: &[u8]) {
        let mut captured = self.lock();
        captured.total = captured.total.saturating_add(bytes.len() as u64);
        let room = self.cap.saturating_sub(captured.kept.len());
        let kept = bytes.len().min(room);
        captured.kept.extend_from_slice(&bytes[..kept]);
    }

    /// Appends are single calls, so a lock poisoned by a panicking writer still guards
    /// consistent data.
    fn lock(&self) -> MutexGuard<'_, Captured> {
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

    #[test]
    fn keeps_up_to_the_cap_and_counts_everything() {
        let capture = Capture::new(5);
        let mut stream = capture.clone();
        OutputStream::write(&mut stream, Bytes::from_static(b"abc")).ok();
        capture.append(b"defgh");
        assert_eq!(capture.contents(), (b"abcde".to_vec(), 8));
        assert_eq!(stream.check_write().ok(), Some(WRITE_PERMIT));
        assert!(!capture.is_terminal());
    }
}
