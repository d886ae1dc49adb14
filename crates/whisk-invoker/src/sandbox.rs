//! The production [`ContainerFactory`]: Linux sandboxes (`whisk-sandbox`) running the runtime
//! proxies of `whisk-runtime`, reached over HTTP in their own network namespace.
//!
//! A container gets the launch spec of its kind, a prepared network namespace from a
//! [`NetworkProvider`], the runtime assets and the `whisk` binary bound read-only, and the
//! action directory inside its private `/tmp` (size-limited and charged to its memory cgroup,
//! so an action cannot fill the host's disk). Its stdout and stderr are read continuously into a
//! bounded buffer that the log collector drains after each activation.

use std::any::Any;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Mutex, mpsc};
use tracing::{debug, warn};
use whisk_model::ActivationResponse;
use whisk_model::activation::MEMORY_EXHAUSTED;
use whisk_runtime::{
    DEFAULT_MAX_RESPONSE_BYTES, LOG_SENTINEL, LaunchLayout, PROXY_PORT, RuntimeClient, Verdict,
    init_verdict, launch_spec_with_memory, run_verdict, unavailable,
};
use whisk_sandbox::net::{NetworkPool, PreparedNetwork};
use whisk_sandbox::{Bind, Sandbox};

use crate::container::{
    ActionContainer, CallOutcome, ContainerError, ContainerFactory, ContainerSpec, LogRequest,
};
use crate::images::{ImageLaunch, ImageSource, image_command};
use crate::logs::{self, LogReadError, LogRecord, LogSource, Stream};

/// The kind of actions that name an image (`--docker`).
const BLACKBOX: &str = "blackbox";

/// Where the runtime proxies keep the action's code inside a container: in the private `/tmp`.
pub const ACTION_DIR: &str = "/tmp/action";

/// Output a container may have written and nobody collected yet, before lines are dropped
/// (above the largest log limit, 10 MB, so a truncation notice is always given instead).
const MAX_BUFFERED_LOG_BYTES: u64 = 16 * 1024 * 1024;

/// A single output line longer than this is kept as several records.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// A network namespace prepared for one container, and the address its proxy is reached at.
pub struct ContainerNetwork {
    /// The namespace to join (`None`: a fresh one with only loopback, unreachable from the host).
    pub netns: Option<PathBuf>,
    /// The container's address as the invoker reaches it.
    pub address: IpAddr,
    /// Whatever the provider needs back in [`NetworkProvider::release`].
    pub token: Box<dyn Any + Send + Sync>,
}

impl fmt::Debug for ContainerNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerNetwork")
            .field("netns", &self.netns)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Hands out prepared network namespaces (the sandbox's network pool in production).
#[async_trait]
pub trait NetworkProvider: Send + Sync + fmt::Debug {
    async fn take(&self) -> Result<ContainerNetwork, ContainerError>;
    /// Gives a namespace back once its container is destroyed.
    async fn release(&self, network: ContainerNetwork);
}

/// The sandbox's network pool hands out the namespaces in production.
#[async_trait]
impl NetworkProvider for NetworkPool {
    async fn take(&self) -> Result<ContainerNetwork, ContainerError> {
        let prepared = NetworkPool::take(self)
            .await
            .map_err(|e| ContainerError::Create(format!("no network: {e}")))?;
        Ok(ContainerNetwork {
            netns: Some(prepared.netns_path.clone()),
            address: IpAddr::V4(prepared.address),
            token: Box::new(prepared),
        })
    }

    async fn release(&self, network: ContainerNetwork) {
        match network.token.downcast::<PreparedNetwork>() {
            Ok(prepared) => {
                if let Err(error) = NetworkPool::release(self, *prepared).await {
                    warn!(%error, "a container's network could not be released");
                }
            }
            Err(_) => warn!("a network from another provider was given back; ignored"),
        }
    }
}

/// Settings of the [`SandboxFactory`].
#[derive(Debug, Clone)]
pub struct SandboxFactoryConfig {
    /// In-container paths of the assets and the `whisk` binary, and the host's interpreters.
    pub layout: LaunchLayout,
    /// Host directory filled by `whisk_runtime::write_assets`.
    pub assets_dir: PathBuf,
    /// Host path of the binary that serves `proxy actionloop|skeleton` (the `whisk` binary).
    pub whisk_binary: PathBuf,
    /// Prefix of container ids; unique per invoker on a machine (ASCII letters, digits, `-`).
    pub id_prefix: String,
    /// Size of each container's private `/tmp` (which also holds the action's code).
    pub tmp_size_mb: u64,
    /// Processes and threads per container.
    pub pids_max: u64,
    /// Result size cap (OpenWhisk: 1 MB).
    pub max_response_bytes: usize,
    /// Where blackbox actions with an image of their own get it from; without it every
    /// blackbox action runs the platform's skeleton proxy.
    pub images: Option<ImageSource>,
}

impl SandboxFactoryConfig {
    /// OpenWhisk-like defaults: 1024 processes, 1 MB results, a 256 MB `/tmp`.
    pub fn new(
        layout: LaunchLayout,
        assets_dir: PathBuf,
        whisk_binary: PathBuf,
        id_prefix: impl Into<String>,
    ) -> SandboxFactoryConfig {
        SandboxFactoryConfig {
            layout,
            assets_dir,
            whisk_binary,
            id_prefix: id_prefix.into(),
            tmp_size_mb: 256,
            pids_max: 1024,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            images: None,
        }
    }
}

/// Creates action containers in a [`Sandbox`].
#[derive(Debug)]
pub struct SandboxFactory {
    sandbox: Arc<Sandbox>,
    networks: Arc<dyn NetworkProvider>,
    config: SandboxFactoryConfig,
    next: AtomicU64,
}

impl SandboxFactory {
    pub fn new(
        sandbox: Arc<Sandbox>,
        networks: Arc<dyn NetworkProvider>,
        config: SandboxFactoryConfig,
    ) -> SandboxFactory {
        SandboxFactory {
            sandbox,
            networks,
            config,
            next: AtomicU64::new(0),
        }
    }

    /// The image a blackbox action brings, ready to run, when it is not one of the platform's.
    async fn foreign_image(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Option<ImageLaunch>, ContainerError> {
        let (Some(images), Some(image)) = (&self.config.images, &spec.image) else {
            return Ok(None);
        };
        if spec.kind != BLACKBOX || !images.is_foreign(image) {
            return Ok(None);
        }
        images.launch(image).await.map(Some)
    }

    /// The sandbox spec for one container of an image: the image's own command, environment
    /// and working directory on its root filesystem, with the platform's environment added.
    fn image_spec(
        &self,
        id: &str,
        spec: &ContainerSpec,
        network: &ContainerNetwork,
        image: ImageLaunch,
    ) -> whisk_sandbox::ContainerSpec {
        let platform_env = spec.env.iter().map(|(k, v)| (k.clone(), v.clone()));
        let (argv, env, cwd) = image_command(&image.config, platform_env);
        whisk_sandbox::ContainerSpec {
            id: id.to_string(),
            hostname: "action".to_string(),
            argv,
            env,
            cwd,
            binds: Vec::new(),
            tmp_size_mb: self.config.tmp_size_mb,
            memory_mb: spec.memory_mb,
            pids_max: self.config.pids_max,
            netns: network.netns.clone(),
            rootfs: Some(image.rootfs),
        }
    }

    /// The sandbox spec for one container of `spec.kind` in `network`.
    fn sandbox_spec(
        &self,
        id: &str,
        spec: &ContainerSpec,
        network: &ContainerNetwork,
    ) -> Result<whisk_sandbox::ContainerSpec, ContainerError> {
        let layout = &self.config.layout;
        let launch =
            launch_spec_with_memory(&spec.kind, layout, spec.memory_mb).ok_or_else(|| {
                let why = unavailable(&spec.kind, layout).unwrap_or_default();
                ContainerError::Create(format!(
                    "kind {} cannot run on this invoker: {why}",
                    spec.kind
                ))
            })?;
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("HOME".to_string(), "/tmp".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            (
                whisk_runtime::proxy::ACTION_DIR_ENV.to_string(),
                ACTION_DIR.to_string(),
            ),
        ];
        env.extend(launch.env);
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut binds = vec![Bind::read_only(
            self.config.assets_dir.clone(),
            layout.assets_dir.clone(),
        )];
        if launch.argv.first().map(PathBuf::from).as_ref() == Some(&layout.whisk_binary) {
            binds.push(Bind::read_only(
                self.config.whisk_binary.clone(),
                layout.whisk_binary.clone(),
            ));
        }
        binds.extend(launch.needs.iter().map(|path| Bind::read_only(path, path)));
        Ok(whisk_sandbox::ContainerSpec {
            id: id.to_string(),
            hostname: "action".to_string(),
            argv: launch.argv,
            env,
            cwd: PathBuf::from("/"),
            binds,
            tmp_size_mb: self.config.tmp_size_mb,
            memory_mb: spec.memory_mb,
            pids_max: self.config.pids_max,
            netns: network.netns.clone(),
            rootfs: None,
        })
    }
}

#[async_trait]
impl ContainerFactory for SandboxFactory {
    async fn create(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Box<dyn ActionContainer>, ContainerError> {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{number}", self.config.id_prefix);
        let image = self.foreign_image(spec).await?;
        let network = self.networks.take().await?;
        let sandbox_spec = match image {
            Some(image) => Ok(self.image_spec(&id, spec, &network, image)),
            None => self.sandbox_spec(&id, spec, &network),
        };
        let sandbox_spec = match sandbox_spec {
            Ok(sandbox_spec) => sandbox_spec,
            Err(error) => {
                self.networks.release(network).await;
                return Err(error);
            }
        };
        let mut container = match self.sandbox.create(sandbox_spec).await {
            Ok(container) => container,
            Err(error) => {
                self.networks.release(network).await;
                return Err(ContainerError::Create(error.to_string()));
            }
        };
        drop(container.take_stdin());
        let buffered = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = mpsc::unbounded_channel();
        if let Some(stdout) = container.take_stdout() {
            tokio::spawn(read_lines(
                stdout,
                Stream::Stdout,
                sender.clone(),
                buffered.clone(),
            ));
        }
        if let Some(stderr) = container.take_stderr() {
            tokio::spawn(read_lines(stderr, Stream::Stderr, sender, buffered.clone()));
        }
        let address = SocketAddr::new(network.address, PROXY_PORT);
        debug!(container = %id, kind = %spec.kind, %address, "container created");
        Ok(Box::new(SandboxContainer {
            id,
            client: RuntimeClient::with_max_response(address, self.config.max_response_bytes),
            container: Mutex::new(Some(container)),
            logs: Mutex::new(LogChannel { receiver, buffered }),
            network: Mutex::new(Some(network)),
            networks: self.networks.clone(),
        }))
    }
}

/// Reads one output stream into records until it ends; drops lines (never sentinels) while the
/// uncollected output is over its bound.
async fn read_lines<R: AsyncRead + Unpin>(
    stream: R,
    which: Stream,
    sender: mpsc::UnboundedSender<LogRecord>,
    buffered: Arc<AtomicU64>,
) {
    let mut reader = BufReader::with_capacity(MAX_LINE_BYTES, stream);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(chunk) => chunk,
            Err(error) => {
                debug!(%error, stream = which.as_str(), "container output ended with an error");
                break;
            }
        };
        if chunk.is_empty() {
            break;
        }
        let (take, complete) = match chunk.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        let take = take.min(room.max(1));
        line.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if complete || line.len() >= MAX_LINE_BYTES {
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            if !emit(&sender, &buffered, which, text) {
                return;
            }
        }
    }
    if !line.is_empty() {
        let text = String::from_utf8_lossy(&line).into_owned();
        emit(&sender, &buffered, which, text);
    }
}

/// Queues one record; `false` once nobody listens any more.
fn emit(
    sender: &mpsc::UnboundedSender<LogRecord>,
    buffered: &AtomicU64,
    which: Stream,
    text: String,
) -> bool {
    let size = text.len() as u64;
    if !text.contains(LOG_SENTINEL)
        && buffered.load(Ordering::Relaxed) + size > MAX_BUFFERED_LOG_BYTES
    {
        return true;
    }
    buffered.fetch_add(size, Ordering::Relaxed);
    sender
        .send(LogRecord::new(SystemTime::now(), which, text))
        .is_ok()
}

/// The collected side of a container's output.
#[derive(Debug)]
struct LogChannel {
    receiver: mpsc::UnboundedReceiver<LogRecord>,
    buffered: Arc<AtomicU64>,
}

#[async_trait]
impl LogSource for LogChannel {
    async fn next_record(&mut self) -> Result<Option<LogRecord>, LogReadError> {
        let record = self.receiver.recv().await;
        if let Some(record) = &record {
            self.buffered
                .fetch_sub(record.text.len() as u64, Ordering::Relaxed);
        }
        Ok(record)
    }
}

/// One sandboxed runtime proxy.
struct SandboxContainer {
    id: String,
    client: RuntimeClient,
    /// `None` once destroyed.
    container: Mutex<Option<whisk_sandbox::Container>>,
    logs: Mutex<LogChannel>,
    network: Mutex<Option<ContainerNetwork>>,
    networks: Arc<dyn NetworkProvider>,
}

impl fmt::Debug for SandboxContainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxContainer")
            .field("id", &self.id)
            .field("proxy", &self.client.addr())
            .finish_non_exhaustive()
    }
}

impl SandboxContainer {
    /// Turns a verdict into an outcome; a container that failed because the kernel killed it
    /// for memory gets OpenWhisk's out-of-memory message instead.
    async fn outcome(&self, verdict: Verdict, elapsed: Duration) -> CallOutcome {
        let mut response = verdict.response;
        if verdict.destroy_container && !verdict.timed_out && self.oom_killed().await {
            response = Some(ActivationResponse::developer_error(json!(MEMORY_EXHAUSTED)));
        }
        CallOutcome {
            response,
            timed_out: verdict.timed_out,
            reusable: !verdict.destroy_container,
            reschedule: verdict.reschedule,
            elapsed,
        }
    }

    async fn oom_killed(&self) -> bool {
        let container = self.container.lock().await;
        match container.as_ref() {
            Some(container) => match container.oom_killed().await {
                Ok(killed) => killed,
                Err(error) => {
                    warn!(container = %self.id, %error, "cannot read the OOM state");
                    false
                }
            },
            None => false,
        }
    }
}

#[async_trait]
impl ActionContainer for SandboxContainer {
    fn id(&self) -> &str {
        &self.id
    }

    async fn init(&self, payload: &Value, timeout: Duration) -> CallOutcome {
        let started = Instant::now();
        let reply = self.client.init(payload, timeout).await;
        let elapsed = started.elapsed();
        self.outcome(init_verdict(&reply, timeout), elapsed).await
    }

    async fn run(&self, payload: &Value, timeout: Duration) -> CallOutcome {
        let started = Instant::now();
        let reply = self.client.run(payload, timeout).await;
        let elapsed = started.elapsed();
        let verdict = run_verdict(&reply, timeout, self.client.max_response());
        self.outcome(verdict, elapsed).await
    }

    async fn pause(&self) -> Result<(), ContainerError> {
        match self.container.lock().await.as_ref() {
            Some(container) => container
                .freeze()
                .await
                .map_err(|e| ContainerError::Freeze(e.to_string())),
            None => Err(ContainerError::Freeze("the container is gone".into())),
        }
    }

    async fn resume(&self) -> Result<(), ContainerError> {
        match self.container.lock().await.as_ref() {
            Some(container) => container
                .thaw()
                .await
                .map_err(|e| ContainerError::Freeze(e.to_string())),
            None => Err(ContainerError::Freeze("the container is gone".into())),
        }
    }

    async fn destroy(&self) -> Result<(), ContainerError> {
        let container = self.container.lock().await.take();
        let destroyed = match container {
            Some(container) => container
                .destroy()
                .await
                .map_err(|e| ContainerError::Destroy(e.to_string())),
            None => Ok(()),
        };
        if let Some(network) = self.network.lock().await.take() {
            self.networks.release(network).await;
        }
        destroyed
    }

    async fn logs(&self, request: LogRequest) -> Vec<String> {
        let mut channel = self.logs.lock().await;
        logs::collect(&mut *channel, request).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the right way for a test to fail
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], already_buffered: u64) -> Vec<String> {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicU64::new(already_buffered));
        read_lines(input, Stream::Stdout, sender, buffered).await;
        let mut lines = Vec::new();
        while let Ok(record) = receiver.try_recv() {
            assert_eq!(record.stream, Stream::Stdout);
            lines.push(record.text);
        }
        lines
    }

    #[tokio::test]
    async fn output_is_split_into_lines_and_a_last_partial_line_is_kept() {
        assert_eq!(
            lines_of(b"one\ntwo\nthree", 0).await,
            vec!["one\n", "two\n", "three"]
        );
    }

    #[tokio::test]
    async fn an_overlong_line_becomes_several_records() {
        let long = vec![b'a'; MAX_LINE_BYTES * 2 + 10];
        let lines = lines_of(&long, 0).await;
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[2].len(), 10);
    }

    #[tokio::test]
    async fn over_the_bound_lines_are_dropped_but_never_sentinels() {
        let input = format!("dropped\n{LOG_SENTINEL}\n");
        let lines = lines_of(input.as_bytes(), MAX_BUFFERED_LOG_BYTES).await;
        assert_eq!(lines, vec![format!("{LOG_SENTINEL}\n")]);
    }

    #[tokio::test]
    async fn the_collected_side_gives_back_what_it_reads() {
        let (sender, receiver) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicU64::new(0));
        assert!(emit(&sender, &buffered, Stream::Stderr, "12345\n".into()));
        assert_eq!(buffered.load(Ordering::Relaxed), 6);
        drop(sender);
        let mut channel = LogChannel {
            receiver,
            buffered: buffered.clone(),
        };
        let record = channel.next_record().await.unwrap().unwrap();
        assert_eq!(record.text, "12345\n");
        assert_eq!(buffered.load(Ordering::Relaxed), 0);
        assert_eq!(
            channel.next_record().await.unwrap(),
            None,
            "both streams ended"
        );
    }
}
