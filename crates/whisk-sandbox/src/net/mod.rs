//! Network namespaces for containers: a pool of prepared ones, their isolation, NAT and the
//! relay to the platform's API.
//!
//! Creating a network namespace is serialized in the kernel and costs more than the rest of a
//! container start, so a [`NetworkPool`] keeps a few ready and refills in the background. A
//! container joins one by path ([`PreparedNetwork::netns_path`]) before it is cloned.
//!
//! Each namespace has a veth pair: `eth0` inside with a /32 address and a default route through
//! the instance's gateway address, which lives on the host (on an "anchor" interface of its
//! own). The host reaches every container directly by its address (the invoker talks to port
//! 8080 that way). One nftables table per instance keeps containers away from each other, from
//! the host (except the API relay port on the gateway address) and from link-local addresses,
//! and masquerades what they send outside in [`NetMode::Nat`]. In [`NetMode::None`] nothing a
//! container starts leaves the host.
//!
//! The host tools are `ip` (iproute2) and `nft` (nftables), run as processes: a whole table is
//! applied atomically by one `nft -f`, and a namespace is prepared with two `ip -batch` runs.

mod command;
mod host;
mod names;
mod relay;
mod rules;
mod subnet;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use self::command::run;
use self::names::{MAX_ID, NETNS_DIR, Names};
use self::relay::Relay;
use self::rules::RuleSet;
use self::subnet::Addresses;
pub use self::subnet::Ipv4Subnet;

/// The subnet a pool uses when none is configured.
pub const DEFAULT_SUBNET: Ipv4Subnet = match Ipv4Subnet::from_octets([10, 231, 0, 0], 16) {
    Some(subnet) => subnet,
    None => panic!("the default subnet is valid"),
};

/// How many prepared namespaces a pool keeps ready by default.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Where IPv4 forwarding is switched on.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// What a container may reach besides the invoker and the API relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetMode {
    /// The outside world, through the host's address (masquerade).
    #[default]
    Nat,
    /// Nothing: what a container starts never leaves the host, except to the API relay.
    None,
}

/// The host programs the pool runs. Configurable so that a host with them outside `PATH` (or
/// a test wanting a failing one) can say where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetTools {
    /// iproute2's `ip`.
    pub ip: PathBuf,
    /// nftables' `nft`.
    pub nft: PathBuf,
}

impl Default for NetTools {
    fn default() -> Self {
        Self {
            ip: PathBuf::from("ip"),
            nft: PathBuf::from("nft"),
        }
    }
}

/// How a [`NetworkPool`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Names every host resource of the pool (namespaces `<instance>.<n>`, table
    /// `inet whisk_<instance>`, interfaces aliased `whisk-net:<instance>`), so that two
    /// platforms on one host never meet and a sweep finds a crashed run's leftovers. One live
    /// pool per name: starting a pool removes whatever already exists under its name.
    pub instance: String,
    /// Container addresses come from here; the first host address is the gateway. It must not
    /// overlap anything the host already has.
    pub subnet: Ipv4Subnet,
    pub mode: NetMode,
    /// The platform's API (normally on loopback), relayed to containers when set.
    pub api_relay: Option<SocketAddr>,
    /// How many prepared namespaces to keep ready; 0 prepares each one on demand.
    pub pool_size: usize,
    pub tools: NetTools,
}

impl NetConfig {
    /// A NAT configuration on [`DEFAULT_SUBNET`] without an API relay.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            subnet: DEFAULT_SUBNET,
            mode: NetMode::default(),
            api_relay: None,
            pool_size: DEFAULT_POOL_SIZE,
            tools: NetTools::default(),
        }
    }
}

/// A network namespace ready for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedNetwork {
    /// The namespace's name (`<instance>.<n>`).
    pub name: String,
    /// What the spawner `setns`es into before cloning the container.
    pub netns_path: PathBuf,
    /// The container's address; the host reaches its port 8080 here.
    pub address: Ipv4Addr,
    /// The container's default gateway, on the host.
    pub gateway: Ipv4Addr,
    /// The host side of the veth pair.
    pub host_interface: String,
}

/// What [`NetworkPool::sweep`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    pub namespaces: usize,
    pub interfaces: usize,
    pub table: bool,
}

impl SweepReport {
    /// Whether nothing was left.
    pub fn is_empty(&self) -> bool {
        self.namespaces == 0 && self.interfaces == 0 && !self.table
    }
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid network instance name {instance:?}: {reason}")]
    InvalidInstance {
        instance: String,
        reason: &'static str,
    },
    #[error("invalid subnet {subnet}: {reason}")]
    InvalidSubnet {
        subnet: String,
        reason: &'static str,
    },
    #[error("subnet {subnet} overlaps {existing}, already on this host")]
    SubnetInUse {
        subnet: Ipv4Subnet,
        existing: String,
    },
    #[error("no container address left in {subnet}")]
    AddressesExhausted { subnet: Ipv4Subnet },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{program} {args}` failed ({status}): {stderr} (input: {input:?})")]
    Command {
        program: String,
        args: String,
        status: String,
        stderr: String,
        input: String,
    },
    #[error("unexpected output of {program}: {reason}")]
    Parse { program: String, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the API relay cannot listen on {address}: {source}")]
    Relay {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the network pool {instance} is shut down")]
    ShutDown { instance: String },
    #[error("network {name} was not handed out by the pool {instance}")]
    Foreign { name: String, instance: String },
}

/// Prepared network namespaces for the containers of one platform instance.
///
/// Dropping the pool stops its background work but leaves the host resources in place (a drop
/// cannot wait for processes); call [`NetworkPool::shutdown`], or let the next run's
/// [`NetworkPool::sweep`] remove them.
#[derive(Debug)]
pub struct NetworkPool {
    shared: Arc<Shared>,
    refill: Mutex<Option<JoinHandle<()>>>,
    relay: Mutex<Option<Relay>>,
    api_host: Option<String>,
}

#[derive(Debug)]
struct Shared {
    names: Names,
    config: NetConfig,
    gateway: Ipv4Addr,
    state: Mutex<State>,
    /// Wakes the refill task when a namespace was taken or the pool shuts down.
    wake: Notify,
}

#[derive(Debug)]
struct State {
    ready: VecDeque<PreparedNetwork>,
    addresses: Addresses,
    next_id: u32,
    /// Every namespace that exists (or is being made), ready or handed out, by name.
    live: HashMap<String, PreparedNetwork>,
    shut_down: bool,
}

/// Locks `mutex`, carrying on after a panic elsewhere: the state stays consistent between
/// statements, and refusing all later network work would be worse.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl NetworkPool {
    /// Sets up the instance: removes what a crashed run of the same instance left, checks the
    /// subnet is free, creates the gateway address, the API relay and the nftables table, and
    /// starts filling the pool. Must run inside a tokio runtime.
    pub async fn new(config: NetConfig) -> Result<Self, NetError> {
        let names = Names::new(&config.instance)?;
        let subnet = config.subnet;
        let gateway = match subnet.gateway() {
            Some(gateway) if subnet.prefix_len() <= 30 => gateway,
            _ => {
                return Err(NetError::InvalidSubnet {
                    subnet: subnet.to_string(),
                    reason: "it must be a /30 or larger",
                });
            }
        };
        let swept = sweep_named(&config.tools, &names).await?;
        if !swept.is_empty() {
            tracing::warn!(
                instance = names.instance(),
                ?swept,
                "removed the network leftovers of an earlier run"
            );
        }
        if let Some(existing) = host::overlapping(&config.tools, subnet).await? {
            return Err(NetError::SubnetInUse { subnet, existing });
        }
        let tools = config.tools.clone();
        match Self::set_up(config, names.clone(), gateway).await {
            Ok(pool) => Ok(pool),
            Err(error) => {
                if let Err(cleanup) = sweep_named(&tools, &names).await {
                    tracing::warn!(instance = names.instance(), %cleanup, "cannot undo a failed network setup");
                }
                Err(error)
            }
        }
    }

    async fn set_up(config: NetConfig, names: Names, gateway: Ipv4Addr) -> Result<Self, NetError> {
        if config.mode == NetMode::Nat {
            host::enable_forwarding(Path::new(IP_FORWARD))?;
        }
        let (anchor, peer, alias) = (names.anchor(), names.anchor_peer(), names.alias());
        let script = format!(
            "link add {anchor} type veth peer name {peer}\n\
             link set {anchor} alias {alias} up\n\
             link set {peer} alias {alias} up\n\
             address add {gateway}/32 dev {anchor}\n"
        );
        run(&config.tools.ip, &["-batch", "-"], Some(&script)).await?;

        let relay = match config.api_relay {
            Some(upstream) => Some(Relay::start(gateway, upstream, names.instance()).await?),
            None => None,
        };
        let relay_address = relay.as_ref().map(Relay::local_addr);
        let rules = RuleSet {
            names: &names,
            subnet: config.subnet,
            gateway,
            relay_port: relay_address.map(|address| address.port()),
            mode: config.mode,
        }
        .render();
        run(&config.tools.nft, &["-f", "-"], Some(&rules)).await?;

        let pool_size = config.pool_size;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                addresses: Addresses::new(config.subnet),
                next_id: 0,
                live: HashMap::new(),
                shut_down: false,
            }),
            names,
            config,
            gateway,
            wake: Notify::new(),
        });
        let refill = (pool_size > 0).then(|| tokio::spawn(refill(Arc::clone(&shared))));
        tracing::info!(
            instance = shared.names.instance(),
            subnet = %shared.config.subnet,
            %gateway,
            mode = ?shared.config.mode,
            relay = ?relay_address,
            pool_size,
            "network pool ready"
        );
        Ok(Self {
            api_host: relay_address.map(|address| format!("http://{address}")),
            shared,
            refill: Mutex::new(refill),
            relay: Mutex::new(relay),
        })
    }

    /// A prepared namespace: one from the pool when there is one, otherwise made now.
    pub async fn take(&self) -> Result<PreparedNetwork, NetError> {
        let ready = {
            let mut state = lock(&self.shared.state);
            if state.shut_down {
                return Err(self.shared.shut_down());
            }
            state.ready.pop_front()
        };
        self.shared.wake.notify_one();
        match ready {
            Some(network) => Ok(network),
            None => prepare(&self.shared).await,
        }
    }

    /// Destroys a namespace [`NetworkPool::take`] handed out, once its container is gone, and
    /// makes its address available again.
    pub async fn release(&self, network: PreparedNetwork) -> Result<(), NetError> {
        {
            let state = lock(&self.shared.state);
            if state.live.get(&network.name) != Some(&network) || state.ready.contains(&network) {
                return Err(NetError::Foreign {
                    name: network.name,
                    instance: self.shared.names.instance().to_owned(),
                });
            }
        }
        // If destroying fails the entry stays live, so that shutdown tries again and the
        // address is not given to another container while it may still be routed.
        destroy(&self.shared.config.tools, &network).await?;
        let mut state = lock(&self.shared.state);
        state.live.remove(&network.name);
        state.addresses.give_back(network.address);
        Ok(())
    }

    /// Destroys every namespace of the instance (ready or handed out), the API relay, the
    /// gateway interface and the nftables table. Later calls to `take` fail.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        lock(&self.shared.state).shut_down = true;
        self.shared.wake.notify_one();
        let refill = lock(&self.refill).take();
        if let Some(task) = refill
            && let Err(error) = task.await
        {
            tracing::warn!(instance = self.shared.names.instance(), %error, "network refill task failed");
        }
        drop(lock(&self.relay).take());
        let networks: Vec<PreparedNetwork> = {
            let mut state = lock(&self.shared.state);
            state.ready.clear();
            state.live.drain().map(|(_, network)| network).collect()
        };
        let mut first_error = None;
        for network in &networks {
            if let Err(error) = destroy(&self.shared.config.tools, network).await {
                tracing::warn!(name = %network.name, %error, "cannot destroy a network namespace");
                first_error.get_or_insert(error);
            }
        }
        match sweep_named(&self.shared.config.tools, &self.shared.names).await {
            Ok(report) => tracing::info!(
                instance = self.shared.names.instance(),
                destroyed = networks.len(),
                ?report,
                "network pool shut down"
            ),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes everything an instance of this name left on the host (namespaces, interfaces,
    /// nftables table), e.g. after a crash. [`NetworkPool::new`] does this itself.
    pub async fn sweep(instance: &str) -> Result<SweepReport, NetError> {
        Self::sweep_with(&NetTools::default(), instance).await
    }

    /// [`NetworkPool::sweep`] with the given host programs.
    pub async fn sweep_with(tools: &NetTools, instance: &str) -> Result<SweepReport, NetError> {
        sweep_named(tools, &Names::new(instance)?).await
    }

    /// The `__OW_API_HOST` value for containers (`http://<gateway>:<port>`), when the pool
    /// relays an API.
    pub fn api_host(&self) -> Option<&str> {
        self.api_host.as_deref()
    }

    /// The gateway address of every container (the host end of their routes).
    pub fn gateway(&self) -> Ipv4Addr {
        self.shared.gateway
    }

    /// How many prepared namespaces are waiting to be taken.
    pub fn ready(&self) -> usize {
        lock(&self.shared.state).ready.len()
    }

    pub fn config(&self) -> &NetConfig {
        &self.shared.config
    }
}

impl Drop for NetworkPool {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.refill).take() {
            task.abort();
        }
    }
}

impl Shared {
    fn shut_down(&self) -> NetError {
        NetError::ShutDown {
            instance: self.names.instance().to_owned(),
        }
    }
}

/// Keeps `pool_size` namespaces ready until the pool shuts down.
async fn refill(shared: Arc<Shared>) {
    loop {
        let missing = {
            let state = lock(&shared.state);
            if state.shut_down {
                return;
            }
            shared.config.pool_size.saturating_sub(state.ready.len())
        };
        if missing == 0 {
            shared.wake.notified().await;
            continue;
        }
        match prepare(&shared).await {
            Ok(network) => lock(&shared.state).ready.push_back(network),
            Err(NetError::ShutDown { .. }) => return,
            Err(error) => {
                // A full subnet or a broken host: try again later (or when woken by a
                // release), not in a tight loop.
                tracing::warn!(instance = shared.names.instance(), %error, "cannot prepare a network namespace");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shared.wake.notified() => {}
                }
            }
        }
    }
}

/// Makes one namespace; on failure whatever was made of it is removed again.
async fn prepare(shared: &Shared) -> Result<PreparedNetwork, NetError> {
    let network = {
        let mut state = lock(&shared.state);
        if state.shut_down {
            return Err(shared.shut_down());
        }
        let Some(address) = state.addresses.take() else {
            return Err(NetError::AddressesExhausted {
                subnet: shared.config.subnet,
            });
        };
        let id = state.next_id;
        state.next_id = (id + 1) & MAX_ID;
        let name = shared.names.netns(id);
        let network = PreparedNetwork {
            netns_path: Names::netns_path(&name),
            name,
            address,
            gateway: shared.gateway,
            host_interface: shared.names.host_veth(id),
        };
        state.live.insert(network.name.clone(), network.clone());
        network
    };
    let started = Instant::now();
    let made = create(shared, &network).await;
    let shut_down = lock(&shared.state).shut_down;
    if made.is_err() || shut_down {
        if let Err(error) = destroy(&shared.config.tools, &network).await {
            tracing::warn!(name = %network.name, %error, "cannot remove a half-made network namespace");
        } else {
            let mut state = lock(&shared.state);
            state.live.remove(&network.name);
            state.addresses.give_back(network.address);
        }
        made?;
        return Err(shared.shut_down());
    }
    tracing::debug!(
        name = %network.name,
        address = %network.address,
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "network namespace prepared"
    );
    Ok(network)
}

/// The MAC address of every host-side veth. Each veth pair is its own link, so they can all
/// share one (locally administered) address; both ends get permanent neighbour entries, so no
/// ARP is needed at all, which also keeps working on hosts whose `arp_ignore` would refuse to
/// answer for a gateway address held by another interface.
const HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";

/// A locally administered MAC address made from the container's IPv4 address.
fn container_mac(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:77:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The namespace, the veth pair with `eth0` inside, addresses, neighbours and routes.
async fn create(shared: &Shared, network: &PreparedNetwork) -> Result<(), NetError> {
    let PreparedNetwork {
        name,
        address,
        gateway,
        host_interface: host,
        ..
    } = network;
    let alias = shared.names.alias();
    let container_mac = container_mac(*address);
    let outside = format!(
        "netns add {name}\n\
         link add {host} address {HOST_MAC} type veth peer name eth0 address {container_mac} netns {name}\n\
         link set {host} alias {alias} up\n\
         neighbour replace {address} lladdr {container_mac} dev {host} nud permanent\n\
         route add {address}/32 dev {host} src {gateway}\n"
    );
    run(&shared.config.tools.ip, &["-batch", "-"], Some(&outside)).await?;
    let inside = format!(
        "link set lo up\n\
         address add {address}/32 dev eth0\n\
         link set eth0 up\n\
         neighbour replace {gateway} lladdr {HOST_MAC} dev eth0 nud permanent\n\
         route add {gateway}/32 dev eth0 scope link\n\
         route add default via {gateway} dev eth0\n"
    );
    run(
        &shared.config.tools.ip,
        &["-n", name, "-batch", "-"],
        Some(&inside),
    )
    .await?;
    Ok(())
}

/// Removes a namespace and its veth pair, whatever part of them exists. The host side is
/// deleted explicitly: deleting the namespace alone frees the pair only later, asynchronously
/// in the kernel, and the address must not be reused before its route is gone.
async fn destroy(tools: &NetTools, network: &PreparedNetwork) -> Result<(), NetError> {
    let mut script = String::new();
    if Path::new("/sys/class/net")
        .join(&network.host_interface)
        .exists()
    {
        script.push_str(&format!("link delete {}\n", network.host_interface));
    }
    if network.netns_path.exists() {
        script.push_str(&format!("netns delete {}\n", network.name));
    }
    if !script.is_empty() {
        run(&tools.ip, &["-batch", "-"], Some(&script)).await?;
    }
    Ok(())
}

async fn sweep_named(tools: &NetTools, names: &Names) -> Result<SweepReport, NetError> {
    let namespaces = host::namespaces_in(Path::new(NETNS_DIR), names)?;
    let interfaces = host::links_with_alias(tools, &names.alias()).await?;
    let mut script = String::new();
    // Deleting one end of a veth pair deletes the other: the anchor's peer goes with it.
    let anchor = names.anchor();
    let peer = names.anchor_peer();
    let has_anchor = interfaces.contains(&anchor);
    for interface in interfaces
        .iter()
        .filter(|name| !(has_anchor && **name == peer))
    {
        script.push_str(&format!("link delete {interface}\n"));
    }
    for namespace in &namespaces {
        script.push_str(&format!("netns delete {namespace}\n"));
    }
    if !script.is_empty() {
        run(&tools.ip, &["-force", "-batch", "-"], Some(&script)).await?;
    }
    let table = host::has_table(tools, &names.table()).await?;
    if table {
        run(
            &tools.nft,
            &["delete", "table", "inet", &names.table()],
            None,
        )
        .await?;
    }
    Ok(SweepReport {
        namespaces: namespaces.len(),
        interfaces: interfaces.len(),
        table,
    })
}
