//! Shared test helpers: start a proxy as a plain host process on 127.0.0.1 (port 0, read back
//! from its port file), capture its stdout/stderr, build zip and tar.gz archives.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a subset; panics fail tests

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use whisk_runtime::{LOG_SENTINEL, RuntimeClient, RuntimeReply};

/// Generous: CI runs many tests in parallel on two cores.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A proxy process with its captured output; killed when dropped.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(mut stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

impl Proxy {
    /// Starts `program args...` with the proxy environment and waits until it listens.
    pub fn start(program: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let action_dir = dir.path().join("action");
        let mut command = Command::new(program);
        command
            .args(args)
            .env("__OW_PROXY_HOST", "127.0.0.1")
            .env("__OW_PROXY_PORT", "0")
            .env("__OW_PROXY_PORT_FILE", &port_file)
            .env("__OW_ACTION_DIR", &action_dir)
            .env("__OW_API_HOST", "http://api.invalid")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        let started = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse::<u16>().unwrap();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "proxy exited with {status}: {}",
                    stderr.lock().unwrap().as_str()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "proxy did not start listening"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stdout,
            stderr,
            dir,
        }
    }

    pub fn node() -> Proxy {
        Proxy::start(&node_path(), &[&proxy_asset("nodejs/proxy.js")], &[])
    }

    pub fn python() -> Proxy {
        Proxy::start(
            &python_path(),
            &["-B", &proxy_asset("python/proxy.py")],
            &[],
        )
    }

    pub fn native(mode: &str) -> Proxy {
        Proxy::start(
            Path::new(env!("CARGO_BIN_EXE_whisk-runtime-proxy")),
            &[mode],
            &[],
        )
    }

    pub fn client(&self) -> RuntimeClient {
        RuntimeClient::new(self.addr)
    }

    /// Waits until stdout and stderr each hold `count` sentinels; returns both texts.
    pub fn logs_after_sentinels(&self, count: usize) -> (String, String) {
        let started = Instant::now();
        loop {
            let out = self.stdout.lock().unwrap().clone();
            let err = self.stderr.lock().unwrap().clone();
            if out.matches(LOG_SENTINEL).count() >= count
                && err.matches(LOG_SENTINEL).count() >= count
            {
                return (out, err);
            }
            assert!(
                started.elapsed() < DEADLINE,
                "sentinels missing; stdout: {out:?} stderr: {err:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// The proxies are written out with `write_assets`, as the invoker does.
pub fn proxy_asset(relative: &str) -> String {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        whisk_runtime::write_assets(dir.path()).unwrap();
        dir
    });
    dir.path().join(relative).to_string_lossy().into_owned()
}

pub fn node_path() -> PathBuf {
    whisk_runtime::HostTools::detect()
        .node
        .expect("node must be installed")
        .path
}

pub fn python_path() -> PathBuf {
    whisk_runtime::HostTools::detect()
        .python
        .expect("python3 must be installed")
        .path
}

pub async fn init(client: &RuntimeClient, value: Value) -> RuntimeReply {
    client
        .init(&json!({ "value": value }), CALL_TIMEOUT)
        .await
        .unwrap()
}

pub async fn run(client: &RuntimeClient, value: Value) -> RuntimeReply {
    client.run(&run_payload(value), CALL_TIMEOUT).await.unwrap()
}

/// The `/run` body the invoker sends, built by the crate's own `run_payload`.
pub fn run_payload(value: Value) -> Value {
    whisk_runtime::run_payload(
        value,
        &whisk_runtime::ActivationContext {
            namespace: "guest".into(),
            action_name: "/guest/pkg/hello".into(),
            action_version: "0.0.1".into(),
            activation_id: "0123456789abcdef0123456789abcdef".into(),
            transaction_id: "tid-1".into(),
            deadline_ms: 1717000060123,
            api_key: Some("uuid:key".into()),
        },
    )
}

pub fn body(reply: &RuntimeReply) -> Value {
    serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", reply.body))
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A zip archive of `(name, contents, unix mode)` entries; deflated when `deflate`.
pub fn zip(entries: &[(&str, &[u8], u32)], deflate: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, mode) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let (method, stored): (u16, Vec<u8>) = if deflate {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            (8, encoder.finish().unwrap())
        } else {
            (0, data.to_vec())
        };
        let offset = out.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
            h.extend_from_slice(&crc.sum().to_le_bytes());
            h.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            if central {
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&((0o100000 | mode) << 16).to_le_bytes());
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(&stored);
        central.extend(header(0x0201_4b50, true));
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A tar.gz archive of `(name, contents, unix mode)` entries.
pub fn tar_gz(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for (name, data, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Compiles a C program with the machine's gcc into `dir/name`.
pub fn gcc(dir: &Path, name: &str, source: &str) -> Vec<u8> {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let status = Command::new("gcc")
        .arg("-O1")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .stdin(Stdio::null())
        .status()
        .expect("gcc must be installed");
    assert!(status.success(), "gcc failed");
    std::fs::read(bin).unwrap()
}
