//! Real containers for the invoker's tests: a sandbox and a network pool per test (unique
//! instance names and subnets, so parallel tests never meet) and the runtime assets in a
//! temporary directory.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use whisk_invoker::{SandboxFactory, SandboxFactoryConfig};
use whisk_runtime::{HostTools, LaunchLayout};
use whisk_sandbox::net::{Ipv4Subnet, NetConfig, NetError, NetMode, NetworkPool};
use whisk_sandbox::{Sandbox, SandboxConfig};

pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A network pool on a /24 of 10.252.0.0/16 of this test's own: the /24 is claimed by binding
/// an abstract socket named after it (released when the test process ends, even by a crash),
/// and one the host already uses is refused by the pool and skipped.
async fn network_pool() -> (UnixListener, NetworkPool) {
    let start = std::process::id()
        .wrapping_mul(31)
        .wrapping_add(unique() * 7)
        % 256;
    for step in 0..256 {
        let index = (start + step) % 256;
        let lock_name = format!("whisk-invoker-test-net-{index}");
        let address = SocketAddr::from_abstract_name(lock_name.as_bytes()).unwrap();
        let Ok(lock) = UnixListener::bind_addr(&address) else {
            continue;
        };
        let config = NetConfig {
            subnet: Ipv4Subnet::new(Ipv4Addr::new(10, 252, index as u8, 0), 24).unwrap(),
            mode: NetMode::None,
            api_relay: None,
            pool_size: 1,
            ..NetConfig::new(format!("it{}x{index}", std::process::id()))
        };
        match NetworkPool::new(config).await {
            Ok(pool) => return (lock, pool),
            Err(NetError::SubnetInUse { .. }) => continue,
            Err(error) => panic!("network pool: {error}"),
        }
    }
    panic!("every test subnet is taken");
}

/// Sweeps a network instance when the test ends, also after a panic (a drop cannot await, so
/// on a thread with its own runtime).
struct SweepOnDrop(String);

impl Drop for SweepOnDrop {
    fn drop(&mut self) {
        let instance = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(NetworkPool::sweep(&instance)))
        })
        .join();
    }
}

/// A sandbox factory for one test, or `None` (with the reason printed) without root.
pub struct Real {
    pub factory: Arc<SandboxFactory>,
    pub sandbox: Arc<Sandbox>,
    pub networks: Arc<NetworkPool>,
    _assets: tempfile::TempDir,
    _sweep: SweepOnDrop,
    _lock: UnixListener,
}

impl Real {
    /// Destroys what is left: containers, then their networks.
    pub async fn shutdown(&self) {
        self.sandbox.shutdown().await.unwrap();
        self.networks.shutdown().await.unwrap();
    }
}

pub async fn real(name: &str) -> Option<Real> {
    if !running_as_root() {
        eprintln!("SKIPPED: containers need root, and this test runs as another user");
        return None;
    }
    let instance = format!("inv-{name}-{}-{}", std::process::id(), unique());
    let sandbox = Arc::new(
        Sandbox::start(SandboxConfig {
            instance: instance.clone(),
            spawner_program: PathBuf::from(env!("CARGO_BIN_EXE_whisk-invoker-spawner")),
            spawner_args: Vec::new(),
            user_namespaces: true,
        })
        .await
        .expect("start the sandbox"),
    );
    let assets = tempfile::tempdir().unwrap();
    whisk_runtime::write_assets(assets.path()).unwrap();
    // Containers run as an unprivileged mapped user: the directory must be readable to it.
    std::fs::set_permissions(assets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["nodejs", "python", "java"] {
        let dir = assets.path().join(sub);
        // `java` is only there when this build has the Java proxy.
        if dir.exists() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let config = SandboxFactoryConfig::new(
        LaunchLayout::standard(HostTools::detect()),
        assets.path().to_path_buf(),
        PathBuf::from(env!("CARGO_BIN_EXE_whisk-invoker-proxy")),
        instance,
    );
    let (lock, networks) = network_pool().await;
    let networks = Arc::new(networks);
    let sweep = SweepOnDrop(networks.config().instance.clone());
    let factory = Arc::new(SandboxFactory::new(
        sandbox.clone(),
        networks.clone(),
        config,
    ));
    Some(Real {
        factory,
        sandbox,
        networks,
        _assets: assets,
        _sweep: sweep,
        _lock: lock,
    })
}

/// The whole invoker service over real containers: actions are stored, an activation message goes
/// in on the bus, and the stored record comes back with the completion.
pub struct Harness {
    _dir: tempfile::TempDir,
    real: Real,
    store: whisk_store::Store,
    bus: Arc<whisk_bus::InProcessBus>,
    completions: Box<dyn whisk_bus::Consumer>,
    invoker: Option<whisk_invoker::InvokerHandle>,
    /// How long a completion (and the logs' sentinels) may take.
    deadline: std::time::Duration,
}

impl Harness {
    /// An invoker with its own containers, configured by `configure`; `None` without root.
    pub async fn start(
        name: &str,
        deadline: std::time::Duration,
        configure: impl FnOnce(&mut whisk_invoker::InvokerConfig),
    ) -> Option<Harness> {
        use whisk_bus::Bus;
        let real = real(name).await?;
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        let bus = Arc::new(whisk_bus::InProcessBus::new());
        let completions = bus
            .consume(&whisk_model::bus::completion_topic(0))
            .await
            .unwrap();
        let mut config = whisk_invoker::InvokerConfig::new(0);
        config.log_wait = deadline;
        configure(&mut config);
        let invoker =
            whisk_invoker::Invoker::start(config, bus.clone(), store.clone(), real.factory.clone())
                .await
                .unwrap();
        Some(Harness {
            _dir: dir,
            real,
            store,
            bus,
            completions,
            invoker: Some(invoker),
            deadline,
        })
    }

    /// Stores an action of namespace `guest`; returns it with its revision.
    pub async fn put(
        &self,
        name: &str,
        exec: whisk_model::Exec,
        limits: whisk_model::ActionLimits,
    ) -> (whisk_model::WhiskAction, String) {
        let action = whisk_model::WhiskAction {
            namespace: whisk_model::EntityPath::parse("guest").unwrap(),
            name: whisk_model::EntityName::new(name).unwrap(),
            exec,
            parameters: Default::default(),
            limits,
            version: whisk_model::SemVer::new(0, 0, 1),
            publish: false,
            annotations: Default::default(),
            updated: 1,
        };
        let document = whisk_store::EntityDocument {
            doc_id: action.doc_id(),
            entity_type: whisk_model::EntityType::Action,
            namespace: "guest".into(),
            name: name.into(),
            updated: 1,
            publish: false,
            binding: false,
            document: serde_json::to_value(&action).unwrap(),
        };
        let revision = self.store.entities.put(document, None).await.unwrap();
        (action, revision.to_string())
    }

    /// Sends one blocking activation of `action` and returns its stored record.
    pub async fn invoke(
        &mut self,
        action: &(whisk_model::WhiskAction, String),
        content: serde_json::Value,
    ) -> whisk_model::WhiskActivation {
        use whisk_bus::Bus;
        use whisk_model::bus::{ActivationMessage, CompletionMessage};
        static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
        let message = ActivationMessage {
            transaction_id: "tid".into(),
            activation_id: whisk_model::ActivationId::from_bytes(
                [NEXT.fetch_add(1, Ordering::SeqCst); 16],
            ),
            action: whisk_model::FullyQualifiedEntityName::parse(&format!(
                "/{}",
                action.0.doc_id()
            ))
            .unwrap(),
            revision: action.1.clone(),
            user: whisk_model::Identity {
                subject: "guest".into(),
                namespace: "guest".into(),
                uuid: "u".into(),
                limits: Default::default(),
            },
            api_key: None,
            content: content.as_object().cloned().unwrap_or_default(),
            init_args: Default::default(),
            blocking: true,
            completion_topic: whisk_model::bus::completion_topic(0),
            cause: None,
            caused_by: None,
            binding: None,
            invoked_as: None,
            accepted_at: 0,
        };
        self.bus
            .publish(
                &whisk_model::bus::invoker_topic(0),
                bytes::Bytes::from(serde_json::to_vec(&message).unwrap()),
            )
            .await
            .unwrap();
        let delivery = tokio::time::timeout(self.deadline, self.completions.next())
            .await
            .expect("a completion in time")
            .unwrap();
        let completion: CompletionMessage = serde_json::from_slice(&delivery.payload).unwrap();
        delivery.ack().await.unwrap();
        assert_eq!(completion.activation_id, message.activation_id);
        completion.record.unwrap()
    }

    /// The running invoker's container pool.
    pub fn pool(&self) -> &whisk_invoker::ContainerPool {
        self.invoker.as_ref().unwrap().pool()
    }

    /// Stops the invoker, then removes what is left of its containers and networks.
    pub async fn stop(mut self) {
        self.invoker.take().unwrap().shutdown().await;
        self.real.shutdown().await;
    }
}
