//! `whisk standalone`: the whole platform in one process on the embedded store.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use whisk_bus::{Bus, InProcessBus};
use whisk_controller::cache::{CacheConfig, Caches, cached};
use whisk_controller::edge::{EdgeConfig, PemIdentity};
use whisk_controller::{BalancerConfig, Clock, Invocations, LoadBalancer, SystemClock};
use whisk_image::ImageStore;
use whisk_invoker::images::ImageSource;
use whisk_invoker::pool::stem_cells_from_manifest;
use whisk_invoker::registry::RegistryPuller;
use whisk_invoker::service::in_flight_for;
use whisk_invoker::{
    ContainerError, ContainerNetwork, Invoker, InvokerConfig, InvokerHandle, KindRouter,
    NetworkProvider, SandboxFactory, SandboxFactoryConfig, StemCellConfig, WasmFactory,
    engine_config_for,
};
use whisk_model::identity::AuthKey;
use whisk_model::manifest::RuntimeManifest;
use whisk_runtime::{HostTools, LaunchLayout};
use whisk_sandbox::net::{
    DEFAULT_SUBNET, Ipv4Subnet, NetConfig, NetError, NetMode, NetworkPool, PreparedNetwork,
};
use whisk_sandbox::{Sandbox, SandboxConfig};
use whisk_store::Store;
use whisk_wasm::WasmEngine;

use crate::config::{InvokerSettings, NetworkMode, ServerConfig, ServerFlags, TlsSettings};
use crate::wasm_check::WasmCodeCheck;

/// The development credentials every OpenWhisk standalone install ships with, so that existing
/// `~/.wskprops` files and tutorials work unchanged. (subject = namespace name, uuid:key)
const WELL_KNOWN_SUBJECTS: [(&str, &str); 2] = [
    (
        "guest",
        "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
    ),
    (
        "whisk.system",
        "789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
    ),
];

pub async fn run(flags: ServerFlags) -> anyhow::Result<()> {
    let config = ServerConfig::load(&flags)?;
    let store = whisk_store::open_sqlite(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    ensure_well_known_subjects(&store).await?;
    let _retention =
        crate::config::start_retention(&config.retention, Arc::clone(&store.activations))?;
    // Before anything new is accepted: whatever the previous run left in flight gets its record.
    let closed = whisk_controller::close_unfinished(&store, SystemClock.now_millis())
        .await
        .context("cannot close the activations the previous run left unfinished")?;
    if closed > 0 {
        tracing::warn!(
            closed,
            "closed activations lost when the platform last stopped"
        );
    }

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.host, config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let address = listener.local_addr()?;

    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let balancer = LoadBalancer::new(Arc::clone(&bus), BalancerConfig::default());
    balancer
        .start()
        .await
        .context("cannot start the load balancer")?;
    let controller = controller_config(&config);
    let invoker = if config.invoker.enabled {
        match LocalInvoker::start(
            0,
            &config.invoker,
            &config.data_dir,
            Some(address),
            config.tls != TlsSettings::Off,
            Arc::clone(&bus),
            store.clone(),
            &controller.manifest,
        )
        .await
        {
            Ok(invoker) => Some(invoker),
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "cannot start the invoker; the API runs and invocations answer 503"
                );
                None
            }
        }
    } else {
        tracing::info!("invoker disabled by configuration; invocations answer 503");
        None
    };

    // Modules are compiled as their actions are written, into the local invoker's engine, so
    // that an action's first invoke finds its module ready.
    let code_check = WasmCodeCheck::for_controller(invoker.as_ref().map(LocalInvoker::wasm));
    // One controller: its own writes invalidate its cache, so no bus is needed.
    let caches = Caches::new(CacheConfig::default(), None);
    let state = whisk_controller::AppState::new(cached(store, &caches), controller)
        .with_invocations(Invocations::new(Arc::clone(&balancer)))
        .with_code_check(code_check);
    let edge = edge_config(&config)?;
    let (events, scheduler) = start_events(&config, state, address).await?;
    announce(address, &config);
    let served =
        whisk_controller::edge::serve(listener, events.app(), edge, shutdown_signal()).await;
    // Stopped between fires at worst: the next fire time was stored before any fire began.
    scheduler.abort();
    // The invoker first: it records what it cuts short and removes its containers while the
    // bus still carries its completions.
    if let Some(invoker) = invoker {
        invoker.shutdown().await;
    }
    balancer.stop();
    bus.close().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// An invoker and the sandbox and network pool its containers live in: standalone's in-process
/// invoker 0, and the whole of a `whisk invoker` process.
pub(crate) struct LocalInvoker {
    invoker: InvokerHandle,
    wasm: WasmEngine,
    networks: Arc<NetworkPool>,
    sandbox: Arc<Sandbox>,
}

impl LocalInvoker {
    /// Starts the sandbox (which re-executes this binary as `whisk spawner`, a process of its
    /// own, so the tokio threads of this one never meet a `clone`), the network pool with the
    /// API relayed to `api` (`api_tls`: the API speaks HTTPS, so actions must too), the
    /// runtime assets under `data_dir`, and invoker number `id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        id: u32,
        settings: &InvokerSettings,
        data_dir: &Path,
        api: Option<SocketAddr>,
        api_tls: bool,
        bus: Arc<dyn Bus>,
        store: Store,
        manifest: &RuntimeManifest,
    ) -> anyhow::Result<Self> {
        let whisk_binary =
            std::env::current_exe().context("cannot find this program's own binary")?;
        // One engine for the process: its pooling allocator and epoch ticker are shared by every
        // WebAssembly action, and its cache compiles each module once. Made before the sandbox,
        // so that a failure here has nothing to undo.
        let wasm = WasmEngine::new(engine_config_for(settings.user_memory_mb))
            .context("cannot start the WebAssembly engine")?;
        let mut net = NetConfig::new(settings.instance.clone());
        net.mode = match settings.network {
            NetworkMode::Nat => NetMode::Nat,
            NetworkMode::None => NetMode::None,
        };
        net.api_relay = api;
        let subnets = match &settings.subnet {
            Some(subnet) => vec![
                subnet
                    .parse()
                    .with_context(|| format!("[invoker] subnet {subnet:?} is not a subnet"))?,
            ],
            None => fallback_subnets(id),
        };
        let assets_dir = data_dir.join("runtime");
        whisk_runtime::write_assets(&assets_dir).with_context(|| {
            format!(
                "cannot write the runtime assets to {}",
                assets_dir.display()
            )
        })?;

        let sandbox = Arc::new(
            Sandbox::start(SandboxConfig {
                instance: settings.instance.clone(),
                spawner_program: whisk_binary.clone(),
                spawner_args: vec!["spawner".into()],
                user_namespaces: true,
            })
            .await
            .context("cannot start the sandbox")?,
        );
        let networks = match open_network_pool(net, subnets).await {
            Ok(networks) => Arc::new(networks),
            Err(error) => {
                stop_sandbox(&sandbox).await;
                return Err(error).context("cannot set up container networking");
            }
        };

        let mut factory_config = SandboxFactoryConfig::new(
            LaunchLayout::standard(HostTools::detect()),
            assets_dir,
            whisk_binary,
            settings.instance.clone(),
        );
        let images_dir = crate::admin::image_store_dir(data_dir);
        match ImageStore::open(&images_dir) {
            Ok(images) => {
                factory_config.images = Some(ImageSource::new(
                    Arc::new(images),
                    Arc::new(manifest.clone()),
                    Some(Arc::new(RegistryPuller::new())),
                ));
            }
            Err(error) => {
                stop_networks(&networks).await;
                stop_sandbox(&sandbox).await;
                return Err(error).with_context(|| {
                    format!("cannot open the image store in {}", images_dir.display())
                });
            }
        }
        let stem_cells = if settings.stem_cells {
            startable_stem_cells(stem_cells_from_manifest(manifest), &factory_config.layout)
        } else {
            Vec::new()
        };
        let factory = SandboxFactory::new(
            Arc::clone(&sandbox),
            Arc::new(PooledNetworks(Arc::clone(&networks))),
            factory_config,
        );
        let mut config = InvokerConfig::new(id);
        config.pool.user_memory_mb = settings.user_memory_mb;
        config.pool.pause_grace = Duration::from_millis(settings.pause_grace_ms);
        config.pool.idle_timeout = Duration::from_millis(settings.idle_timeout_ms);
        config.pool.stem_cells = stem_cells;
        config.max_in_flight = in_flight_for(settings.user_memory_mb);
        config.api_host = action_api_host(networks.api_host(), api_tls);
        // WebAssembly kinds run in-process; every other kind in a sandbox container. Where the
        // sandbox cannot start (no root), the invoker does not start either, WebAssembly
        // included: `KindRouter` could run without containers, but the network pool and the
        // sandbox's shutdown would then have to become optional here.
        let factory = KindRouter::new(
            Arc::new(WasmFactory::new(wasm.clone(), settings.instance.clone())),
            Some(Arc::new(factory)),
        );
        match Invoker::start(config, bus, store, Arc::new(factory)).await {
            Ok(invoker) => {
                tracing::info!(invoker = id, instance = %settings.instance, "invoker running");
                Ok(Self {
                    invoker,
                    wasm,
                    networks,
                    sandbox,
                })
            }
            Err(error) => {
                stop_networks(&networks).await;
                stop_sandbox(&sandbox).await;
                Err(error).context("cannot start the invoker")
            }
        }
    }

    /// Stops the invoker (recording interrupted activations, removing containers), then the
    /// network namespaces and the sandbox's cgroups.
    /// The engine this invoker runs WebAssembly actions on (and caches their modules in).
    pub(crate) fn wasm(&self) -> &WasmEngine {
        &self.wasm
    }

    pub(crate) async fn shutdown(self) {
        self.invoker.shutdown().await;
        stop_networks(&self.networks).await;
        stop_sandbox(&self.sandbox).await;
    }
}

/// The stem cells of `cells` whose kind can start on this host. The manifest asks for them
/// whatever the host has, but a kind without its interpreter (a host without a JDK, or a build
/// without the Java proxy) would only fail every prewarm and hold its memory in the meantime, so
/// it is left out, with the reason logged.
fn startable_stem_cells(cells: Vec<StemCellConfig>, layout: &LaunchLayout) -> Vec<StemCellConfig> {
    cells
        .into_iter()
        .filter(
            |cell| match whisk_runtime::unavailable(&cell.kind, layout) {
                None => true,
                Some(reason) => {
                    tracing::info!(kind = %cell.kind, %reason, "no stem cells of this kind on this host");
                    false
                }
            },
        )
        .collect()
}

/// `__OW_API_HOST` for actions: the relay's address, with `https` when the API speaks TLS (the
/// relay forwards bytes, so TLS passes through it end to end).
fn action_api_host(relay: Option<&str>, api_tls: bool) -> Option<String> {
    relay.map(|host| match host.strip_prefix("http://") {
        Some(address) if api_tls => format!("https://{address}"),
        _ => host.to_owned(),
    })
}

/// The subnets tried, in order, when the configuration names none: the sandbox's default,
/// then its neighbours, so a second platform on the same host (or a host already using the
/// default) still gets container networking. Invoker `id` starts `id` places further along
/// (wrapping), so invokers starting together on one host do not race for the same subnet.
fn fallback_subnets(id: u32) -> Vec<Ipv4Subnet> {
    let mut subnets = vec![DEFAULT_SUBNET];
    subnets
        .extend((232..=239).filter_map(|second| Ipv4Subnet::from_octets([10, second, 0, 0], 16)));
    let len = subnets.len();
    subnets.rotate_left(usize::try_from(id).unwrap_or(0) % len);
    subnets
}

/// Opens the pool on the first of `subnets` not already on the host.
async fn open_network_pool(
    mut config: NetConfig,
    subnets: Vec<Ipv4Subnet>,
) -> Result<NetworkPool, NetError> {
    let mut last = None;
    for subnet in subnets {
        config.subnet = subnet;
        match NetworkPool::new(config.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(error @ NetError::SubnetInUse { .. }) => {
                tracing::info!(%error, "trying another container subnet");
                last = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or(NetError::InvalidSubnet {
        subnet: String::new(),
        reason: "no subnet to try",
    }))
}

async fn stop_networks(networks: &NetworkPool) {
    if let Err(error) = networks.shutdown().await {
        tracing::warn!(%error, "container networking not fully removed");
    }
}

async fn stop_sandbox(sandbox: &Sandbox) {
    if let Err(error) = sandbox.shutdown().await {
        tracing::warn!(%error, "sandbox not fully removed");
    }
}

/// The sandbox's pool of prepared network namespaces, as the invoker's factory asks for them.
#[derive(Debug)]
struct PooledNetworks(Arc<NetworkPool>);

#[async_trait]
impl NetworkProvider for PooledNetworks {
    async fn take(&self) -> Result<ContainerNetwork, ContainerError> {
        let prepared =
            self.0.take().await.map_err(|error| {
                ContainerError::Create(format!("no network namespace: {error}"))
            })?;
        Ok(ContainerNetwork {
            netns: Some(prepared.netns_path.clone()),
            address: IpAddr::V4(prepared.address),
            token: Box::new(prepared),
        })
    }

    async fn release(&self, network: ContainerNetwork) {
        match network.token.downcast::<PreparedNetwork>() {
            Ok(prepared) => {
                if let Err(error) = self.0.release(*prepared).await {
                    tracing::warn!(%error, "network namespace not released");
                }
            }
            Err(_) => tracing::error!("a network handed back was not one of this pool's"),
        }
    }
}

pub(crate) fn controller_config(config: &ServerConfig) -> whisk_controller::ControllerConfig {
    let mut controller = whisk_controller::ControllerConfig::default();
    let limits = &mut controller.limits;
    if let Some(value) = config.limits.invocations_per_minute {
        limits.invocations_per_minute = value.into();
    }
    if let Some(value) = config.limits.concurrent_invocations {
        limits.concurrent_invocations = value.into();
    }
    if let Some(value) = config.limits.fires_per_minute {
        limits.fires_per_minute = value.into();
    }
    controller
}

/// The feed provider of the `whisk.system` packages: opens `<data-dir>/feeds.db`, installs or
/// upgrades the shipped packages (as `whisk.system`, through the API), and starts the alarm
/// scheduler. The returned provider's application serves the feed and webhook routes in front
/// of the controller's.
async fn start_events(
    config: &ServerConfig,
    state: whisk_controller::AppState,
    address: SocketAddr,
) -> anyhow::Result<(whisk_events::Events, tokio::task::JoinHandle<()>)> {
    let feeds = whisk_events::FeedStore::open(&config.data_dir).with_context(|| {
        format!(
            "cannot open {} in {}",
            whisk_events::FEEDS_FILE_NAME,
            config.data_dir.display()
        )
    })?;
    let events = whisk_events::Events::new(state, feeds, public_url(address, config));
    // A namespace whose key the admin changed keeps the packages it has; the platform still runs.
    if let Err(error) = whisk_events::install(events.controller(), WELL_KNOWN_SUBJECTS[1].1).await {
        tracing::warn!(%error, "cannot install the whisk.system packages");
    }
    let scheduler = tokio::spawn(events.scheduler().run(std::future::pending()));
    Ok((events, scheduler))
}

/// Where users reach the API, e.g. `http://127.0.0.1:3233`.
pub(crate) fn public_url(address: SocketAddr, config: &ServerConfig) -> String {
    let scheme = match config.tls {
        TlsSettings::Off => "http",
        TlsSettings::Files { .. } | TlsSettings::SelfSigned => "https",
    };
    format!("{scheme}://{address}")
}

/// `uuid:key` of `whisk.system`, which installs the shipped packages.
pub(crate) fn system_credentials() -> &'static str {
    WELL_KNOWN_SUBJECTS[1].1
}

/// Creates `guest` and `whisk.system` on first start; later starts leave them as the admin left them.
/// Controllers of a cluster starting together may race to create them: whoever loses finds
/// them created, which is what it wanted.
pub(crate) async fn ensure_well_known_subjects(store: &Store) -> anyhow::Result<()> {
    for (subject, credentials) in WELL_KNOWN_SUBJECTS {
        if store.subjects.get_subject(subject).await?.is_some() {
            continue;
        }
        let key = AuthKey::parse(credentials)
            .map_err(|error| anyhow::anyhow!("built-in key of {subject} is invalid: {error}"))?;
        match store.subjects.create_subject(subject, subject, &key).await {
            Ok(()) => tracing::info!(subject, "created well-known namespace"),
            Err(whisk_store::StoreError::AlreadyExists(_)) => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot create the {subject} namespace"));
            }
        }
    }
    Ok(())
}

/// Tells a person (and the end-to-end tests, which read the first line) where the API is and how
/// to point the usual clients at it.
fn announce(address: SocketAddr, config: &ServerConfig) {
    announce_as("standalone", address, config);
}

/// [`announce`] for any role (`role` names it in the first line).
pub(crate) fn announce_as(role: &str, address: SocketAddr, config: &ServerConfig) {
    let scheme = match config.tls {
        TlsSettings::Off => "http",
        TlsSettings::Files { .. } | TlsSettings::SelfSigned => "https",
    };
    let url = format!("{scheme}://{address}");
    let guest = WELL_KNOWN_SUBJECTS[0].1;
    println!("whisk-rs {role} listening on {url}");
    println!("data directory: {}", config.data_dir.display());
    if config.tls == TlsSettings::SelfSigned {
        let cert = config.data_dir.join("tls").join(SELF_SIGNED_CERT);
        println!(
            "self-signed certificate: {} (trust it, or use wsk -i)",
            cert.display()
        );
    }
    println!();
    println!("Use it with the wsk CLI:");
    println!("  wsk property set --apihost {url} --auth {guest}");
    println!("or with the openwhisk npm client:");
    println!("  require('openwhisk')({{apihost: '{url}', api_key: '{guest}'}})");
}

/// The edge's TLS: none, the operator's files, or a development certificate generated now and
/// written to `<data-dir>/tls/` (certificate and key) so that clients can be told to trust it.
pub(crate) fn edge_config(config: &ServerConfig) -> anyhow::Result<EdgeConfig> {
    let identity = match &config.tls {
        TlsSettings::Off => return Ok(EdgeConfig::default()),
        TlsSettings::Files { cert, key } => PemIdentity::from_files(cert, key)?,
        TlsSettings::SelfSigned => {
            let identity = PemIdentity::self_signed(&[config.host.to_string()])?;
            let dir = config.data_dir.join("tls");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let cert = dir.join(SELF_SIGNED_CERT);
            std::fs::write(&cert, &identity.certificate_chain)
                .with_context(|| format!("cannot write {}", cert.display()))?;
            let key = dir.join(SELF_SIGNED_KEY);
            write_private(&key, identity.private_key.as_bytes())
                .with_context(|| format!("cannot write {}", key.display()))?;
            identity
        }
    };
    Ok(EdgeConfig {
        tls: Some(identity.server_config()?),
        ..EdgeConfig::default()
    })
}

/// File names of the generated development certificate and key in `<data-dir>/tls/`.
pub const SELF_SIGNED_CERT: &str = "self-signed-cert.pem";
pub const SELF_SIGNED_KEY: &str = "self-signed-key.pem";

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Resolves on SIGINT or SIGTERM, so `serve` can finish the requests in flight and return.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let early = EARLY_SIGNALS
            .lock()
            .map(|mut slot| slot.take())
            .unwrap_or_else(|poisoned| poisoned.into_inner().take());
        match early.map_or_else(EarlySignals::register, Ok) {
            Ok(mut signals) => {
                tokio::select! {
                    _ = signals.interrupt.recv() => {}
                    _ = signals.terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// SIGINT and SIGTERM listeners made as soon as a server's runtime exists. A signal that
/// arrives while the process is still starting (sweeping a crashed run's containers, connecting
/// to the store) would otherwise kill it with the default action instead of stopping it
/// cleanly; registered early, it is kept until [`shutdown_signal`] is awaited, which then
/// returns at once.
#[cfg(unix)]
struct EarlySignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl EarlySignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }
}

#[cfg(unix)]
static EARLY_SIGNALS: std::sync::Mutex<Option<EarlySignals>> = std::sync::Mutex::new(None);

/// Starts listening for the stop signals; call inside the runtime before anything slow.
pub(crate) fn listen_for_shutdown() {
    #[cfg(unix)]
    match EarlySignals::register() {
        Ok(signals) => {
            if let Ok(mut slot) = EARLY_SIGNALS.lock() {
                *slot = Some(signals);
            }
        }
        Err(error) => tracing::warn!(%error, "cannot listen for stop signals yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_reach_the_api_through_the_relay_with_the_edge_scheme() {
        assert_eq!(action_api_host(None, true), None);
        assert_eq!(
            action_api_host(Some("http://10.231.0.1:4000"), false).as_deref(),
            Some("http://10.231.0.1:4000")
        );
        assert_eq!(
            action_api_host(Some("http://10.231.0.1:4000"), true).as_deref(),
            Some("https://10.231.0.1:4000")
        );
    }

    #[test]
    fn only_stem_cells_whose_kind_can_start_here_are_kept() {
        let tool = |path: &str| whisk_runtime::Tool {
            path: path.into(),
            needs: Vec::new(),
        };
        let with_java = LaunchLayout::standard(HostTools {
            node: Some(tool("/usr/bin/node")),
            python: None,
            java: Some(tool("/usr/bin/java")),
            gson: Some("/usr/share/java/gson.jar".into()),
        });
        let mut without_java = with_java.clone();
        without_java.tools.java = None;
        let cells = vec![
            StemCellConfig {
                kind: "nodejs:20".into(),
                memory_mb: 256,
                count: 1,
            },
            StemCellConfig {
                kind: "java:8".into(),
                memory_mb: 256,
                count: 1,
            },
            StemCellConfig {
                kind: "python:3.11".into(),
                memory_mb: 256,
                count: 2,
            },
        ];
        let kinds = |layout: &LaunchLayout| -> Vec<String> {
            startable_stem_cells(cells.clone(), layout)
                .into_iter()
                .map(|cell| cell.kind)
                .collect()
        };
        assert_eq!(kinds(&without_java), ["nodejs:20"]);
        let expected: &[&str] = if whisk_runtime::JAVA_PROXY_JAR.is_some() {
            &["nodejs:20", "java:8"]
        } else {
            &["nodejs:20"]
        };
        assert_eq!(kinds(&with_java), expected);
    }

    #[test]
    fn fallback_subnets_start_with_the_sandbox_default_and_differ() {
        let subnets = fallback_subnets(0);
        assert_eq!(subnets.first(), Some(&DEFAULT_SUBNET));
        assert_eq!(subnets.len(), 9);
        for (index, subnet) in subnets.iter().enumerate() {
            assert!(!subnets[index + 1..].contains(subnet), "{subnet} twice");
        }
    }

    #[test]
    fn invokers_start_their_subnet_search_at_different_places() {
        let first = fallback_subnets(0);
        let second = fallback_subnets(1);
        assert_eq!(second.first(), first.get(1));
        assert_eq!(second.last(), first.first());
        assert_eq!(fallback_subnets(9), first);
    }
}
