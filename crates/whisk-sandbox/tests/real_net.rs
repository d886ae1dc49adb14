//! Real network namespaces (as root): isolation, NAT, the API relay, sweep and shutdown.
//!
//! Every test claims its own /24 out of 172.16.0.0/12 (an abstract socket named after it is
//! the lock, released by the kernel when the process dies) and its own instance name, so tests
//! running in parallel never meet. Traffic only flows between the host and namespaces the test
//! made; the "outside world" is a namespace of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use whisk_sandbox::net::{
    Ipv4Subnet, NetConfig, NetError, NetMode, NetTools, NetworkPool, PreparedNetwork,
};

/// Generous: CI runs many tests in parallel on two cores.
const DEADLINE: Duration = Duration::from_secs(60);

/// Prints a line and accepts connections forever, answering each with the peer's address.
const SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, a = s.accept()
    c.sendall(("peer=%s" % a[0]).encode())
    c.close()
"#;

/// Connects, sends the optional third argument, prints `OK <answer>` once connected (even if
/// the answer then fails or times out) or `ERR <error>` when the connection itself fails.
const CLIENT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
except OSError as e:
    print("ERR", type(e).__name__, e.errno)
    sys.exit(0)
data = b""
try:
    if len(sys.argv) > 3:
        s.sendall(sys.argv[3].encode())
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError as e:
    data += ("<%s>" % type(e).__name__).encode()
print("OK", data.decode(errors="replace"))
"#;

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !running_as_root() {
            eprintln!("skipped: network namespaces need root");
            return;
        }
    };
}

/// A /24 for the pool, a /30 next to it for the simulated outside, and names, all this
/// test's own while `_lock` lives.
struct Claim {
    _lock: UnixListener,
    index: u32,
    instance: String,
    pool: Ipv4Subnet,
    outside: Ipv4Subnet,
}

fn claim() -> Claim {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let call = COUNTER.fetch_add(1, Ordering::Relaxed);
    let start = std::process::id().wrapping_mul(31).wrapping_add(call * 7) % 2048;
    let in_use = host_networks();
    for step in 0..2048 {
        let index = (start + step) % 2048;
        let base = u32::from(Ipv4Addr::new(172, 16, 0, 0)) + index * 512;
        let both = Ipv4Subnet::new(Ipv4Addr::from(base), 23).unwrap();
        if in_use.iter().any(|network| network.overlaps(&both)) {
            continue;
        }
        let name = format!("whisk-net-test-{index}");
        let address = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let Ok(lock) = UnixListener::bind_addr(&address) else {
            continue;
        };
        return Claim {
            _lock: lock,
            index,
            instance: format!("nt{}x{index}", std::process::id()),
            pool: Ipv4Subnet::new(Ipv4Addr::from(base), 24).unwrap(),
            outside: Ipv4Subnet::new(Ipv4Addr::from(base + 256), 30).unwrap(),
        };
    }
    panic!("every test subnet is taken");
}

/// The networks the host's own addresses and routes cover (a CI host may well use part of
/// 172.16.0.0/12 itself, e.g. for a Docker bridge), leaving out the /32 routes of containers
/// of other tests, whose subnets are locked anyway.
fn host_networks() -> Vec<Ipv4Subnet> {
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let output = std::process::Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let mut networks = Vec::new();
    for route in json(&["-j", "-4", "route", "show"]) {
        if let Some(Ok(network)) = route["dst"].as_str().map(str::parse::<Ipv4Subnet>)
            && network.prefix_len() < 32
        {
            networks.push(network);
        }
    }
    for link in json(&["-j", "-4", "address", "show"]) {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(local), Some(prefix)) = (info["local"].as_str(), info["prefixlen"].as_u64())
            else {
                continue;
            };
            let address: Ipv4Addr = local.parse().unwrap();
            let prefix = u8::try_from(prefix).unwrap();
            if prefix == 32 {
                continue;
            }
            let mask = u32::MAX << (32 - u32::from(prefix));
            networks
                .push(Ipv4Subnet::new(Ipv4Addr::from(u32::from(address) & mask), prefix).unwrap());
        }
    }
    networks
}

impl Claim {
    fn config(&self, mode: NetMode, api: Option<SocketAddr>) -> NetConfig {
        NetConfig {
            subnet: self.pool,
            mode,
            api_relay: api,
            pool_size: 2,
            ..NetConfig::new(&self.instance)
        }
    }
}

/// Sweeps the instance when the test ends, also after a panic (a drop cannot await, so on a
/// thread with its own runtime).
struct SweepOnDrop(String);

impl Drop for SweepOnDrop {
    fn drop(&mut self) {
        let instance = self.0.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(NetworkPool::sweep(&instance))
        })
        .join();
    }
}

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ip {args:?}");
}

/// A namespace standing for the world outside the host: reachable from the host through a
/// veth pair, with no route back to the containers' subnet (only NAT gets answers back), and
/// an extra link-local address standing for a metadata service.
struct Outside {
    name: String,
    host_interface: String,
    host_address: Ipv4Addr,
    address: Ipv4Addr,
    link_local: Ipv4Addr,
}

impl Outside {
    fn new(claim: &Claim) -> Outside {
        let base = u32::from(claim.outside.network());
        let outside = Outside {
            name: format!("{}-world", claim.instance),
            host_interface: format!("wxo{}", claim.index),
            host_address: Ipv4Addr::from(base + 1),
            address: Ipv4Addr::from(base + 2),
            link_local: Ipv4Addr::new(
                169,
                254,
                1 + (claim.index / 256) as u8,
                (claim.index % 256) as u8,
            ),
        };
        let (ns, host) = (&outside.name, &outside.host_interface);
        ip(&["netns", "add", ns]);
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&[
            "address",
            "add",
            &format!("{}/30", outside.host_address),
            "dev",
            host,
        ]);
        ip(&["link", "set", host, "up"]);
        ip(&[
            "route",
            "add",
            &format!("{}/32", outside.link_local),
            "via",
            &outside.address.to_string(),
        ]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            ns,
            "address",
            "add",
            &format!("{}/30", outside.address),
            "dev",
            "eth0",
        ]);
        ip(&[
            "-n",
            ns,
            "address",
            "add",
            &format!("{}/32", outside.link_local),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        outside
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        for args in [
            vec!["link", "delete", self.host_interface.as_str()],
            vec!["netns", "delete", self.name.as_str()],
        ] {
            let _ = std::process::Command::new("ip")
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn python_in(netns: &str, script: &str, args: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={netns}"))
        .args(["python3", "-c", script])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Starts the test server in `netns` on `address:port` and waits until it listens.
async fn serve_in(netns: &str, address: &str, port: u16) -> Child {
    let mut child = python_in(netns, SERVER, &[address, &port.to_string()])
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(DEADLINE, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("the server starts")
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// Runs the test client in `netns`; `Ok(answer)` when it connected, `Err(error)` otherwise.
async fn connect_from(
    netns: &str,
    address: &str,
    port: u16,
    send: Option<&str>,
) -> Result<String, String> {
    let port = port.to_string();
    let mut args = vec![address, port.as_str()];
    args.extend(send);
    let output = tokio::time::timeout(DEADLINE * 2, python_in(netns, CLIENT, &args).output())
        .await
        .expect("the client finishes")
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match text.strip_prefix("OK") {
        Some(answer) => Ok(answer.trim().to_owned()),
        None => {
            assert!(text.starts_with("ERR"), "client output: {text:?}");
            Err(text)
        }
    }
}

/// What the host reads from `address:port` (the test server's answer).
async fn host_reads(address: Ipv4Addr, port: u16) -> String {
    let mut stream = tokio::time::timeout(DEADLINE, TcpStream::connect((address, port)))
        .await
        .expect("connect in time")
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut answer))
        .await
        .expect("answer in time")
        .unwrap();
    answer
}

/// A tiny HTTP server on the host's loopback standing for the platform's API.
async fn fake_api() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = vec![0u8; 1024];
                let read = stream.read(&mut request).await.unwrap_or(0);
                let first = String::from_utf8_lossy(&request[..read])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let body = format!("api saw {first}");
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    address
}

/// The relay's host and port out of `http://a.b.c.d:port`.
fn relay_target(api_host: &str) -> (String, u16) {
    let address: SocketAddr = api_host.strip_prefix("http://").unwrap().parse().unwrap();
    (address.ip().to_string(), address.port())
}

fn path_of(network: &PreparedNetwork) -> String {
    network.netns_path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_reach_the_invoker_and_the_relay_but_not_each_other_or_the_host() {
    require_root!();
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    let api = fake_api().await;
    let pool = NetworkPool::new(claim.config(NetMode::Nat, Some(api)))
        .await
        .unwrap();
    let a = pool.take().await.unwrap();
    let b = pool.take().await.unwrap();
    assert_ne!(a.address, b.address);
    assert!(claim.pool.contains(a.address) && claim.pool.contains(b.address));
    assert_eq!(a.gateway, pool.gateway());
    assert!(a.netns_path.exists());
    let _server_a = serve_in(&path_of(&a), "0.0.0.0", 8080).await;
    let _server_b = serve_in(&path_of(&b), "0.0.0.0", 8080).await;

    // The invoker reaches each container's port 8080 by its address, from the gateway.
    assert_eq!(
        host_reads(a.address, 8080).await,
        format!("peer={}", a.gateway)
    );
    assert_eq!(
        host_reads(b.address, 8080).await,
        format!("peer={}", b.gateway)
    );

    // A container cannot reach another one.
    let refused = connect_from(&path_of(&a), &b.address.to_string(), 8080, None).await;
    assert!(refused.is_err(), "{refused:?}");

    // The API relay works, and the URL containers get points at it.
    let api_host = pool.api_host().unwrap().to_owned();
    let (relay_host, relay_port) = relay_target(&api_host);
    assert_eq!(relay_host, a.gateway.to_string());
    let answer = connect_from(
        &path_of(&a),
        &relay_host,
        relay_port,
        Some("GET /api/v1 HTTP/1.0\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(answer.ends_with("api saw GET /api/v1 HTTP/1.0"), "{answer}");

    // Host services: one on loopback only, one on every address. The host reaches the second
    // on the gateway address; a container reaches neither, by any address of the host.
    let loopback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let loopback_port = loopback.local_addr().unwrap().port();
    let everywhere = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let everywhere_port = everywhere.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = everywhere.accept().await else {
                return;
            };
            let _ = stream.write_all(b"host service").await;
        }
    });
    let mut control = TcpStream::connect((pool.gateway(), everywhere_port))
        .await
        .unwrap();
    let mut text = String::new();
    control.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "host service");
    for (address, port) in [
        ("127.0.0.1", loopback_port),
        (&relay_host, loopback_port),
        (&relay_host, everywhere_port),
        (&relay_host, api.port()),
        (&relay_host, 22),
    ] {
        let refused = connect_from(&path_of(&a), address, port, None).await;
        assert!(refused.is_err(), "{address}:{port} answered {refused:?}");
    }
    drop(loopback);

    pool.release(a).await.unwrap();
    pool.release(b).await.unwrap();
    pool.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_reaches_the_outside_as_the_host_but_never_link_local() {
    require_root!();
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    let outside = Outside::new(&claim);
    let pool = NetworkPool::new(claim.config(NetMode::Nat, None))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    let container = pool.take().await.unwrap();
    let _world = serve_in(&outside.path(), "0.0.0.0", 8080).await;

    // The outside sees the host's address on its link, not the container's: masquerade.
    let answer = connect_from(
        &path_of(&container),
        &outside.address.to_string(),
        8080,
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer, format!("peer={}", outside.host_address));

    // The "metadata service": reachable from the host, refused to the container.
    assert_eq!(
        host_reads(outside.link_local, 8080).await,
        format!("peer={}", outside.host_address)
    );
    let refused = connect_from(
        &path_of(&container),
        &outside.link_local.to_string(),
        8080,
        None,
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");

    // The host's address on that network is the host all the same: refused.
    let host_service = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let host_port = host_service.local_addr().unwrap().port();
    let refused = connect_from(
        &path_of(&container),
        &outside.host_address.to_string(),
        host_port,
        None,
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    drop(host_service);

    pool.release(container).await.unwrap();
    pool.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_mode_keeps_everything_in_but_the_relay() {
    require_root!();
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    let outside = Outside::new(&claim);
    let api = fake_api().await;
    let pool = NetworkPool::new(claim.config(NetMode::None, Some(api)))
        .await
        .unwrap();
    let container = pool.take().await.unwrap();
    let _world = serve_in(&outside.path(), "0.0.0.0", 8080).await;
    let _server = serve_in(&path_of(&container), "0.0.0.0", 8080).await;

    assert_eq!(
        host_reads(outside.address, 8080).await,
        format!("peer={}", outside.host_address)
    );
    let refused = connect_from(
        &path_of(&container),
        &outside.address.to_string(),
        8080,
        None,
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        host_reads(container.address, 8080).await,
        format!("peer={}", container.gateway)
    );
    let (relay_host, relay_port) = relay_target(pool.api_host().unwrap());
    let answer = connect_from(
        &path_of(&container),
        &relay_host,
        relay_port,
        Some("GET / HTTP/1.0\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(answer.ends_with("api saw GET / HTTP/1.0"), "{answer}");

    // A neighbour on the host's network that routes to the gateway address does not get the
    // relay: it is for containers only.
    ip(&[
        "-n",
        &outside.name,
        "route",
        "add",
        &format!("{}/32", pool.gateway()),
        "via",
        &outside.host_address.to_string(),
    ]);
    let refused = connect_from(
        &outside.path(),
        &relay_host,
        relay_port,
        Some("GET / HTTP/1.0\r\n\r\n"),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");

    pool.release(container).await.unwrap();
    pool.shutdown().await.unwrap();
}

fn links_with_alias(alias: &str) -> Vec<String> {
    let output = std::process::Command::new("ip")
        .args(["-j", "link", "show"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let links: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    links
        .into_iter()
        .filter(|link| link["ifalias"] == alias)
        .map(|link| link["ifname"].as_str().unwrap().to_owned())
        .collect()
}

fn namespaces_of(instance: &str) -> Vec<String> {
    let prefix = format!("{instance}.");
    match std::fs::read_dir("/run/netns") {
        Ok(entries) => entries
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn has_table(instance: &str) -> bool {
    let output = std::process::Command::new("nft")
        .args(["list", "tables", "inet"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).contains(&format!("table inet whisk_{instance}\n"))
}

fn assert_nothing_left(instance: &str) {
    assert_eq!(namespaces_of(instance), Vec::<String>::new());
    assert_eq!(
        links_with_alias(&format!("whisk-net:{instance}")),
        Vec::<String>::new()
    );
    assert!(!has_table(instance));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_removes_what_a_dropped_pool_left() {
    require_root!();
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    let pool = NetworkPool::new(claim.config(NetMode::Nat, Some(fake_api().await)))
        .await
        .unwrap();
    let a = pool.take().await.unwrap();
    let b = pool.take().await.unwrap();
    // Let the refill finish, so that no `ip` is half-way through a namespace when the pool
    // is dropped (its namespace could appear after the sweep below has looked).
    let deadline = Instant::now() + DEADLINE;
    while pool.ready() < 2 {
        assert!(Instant::now() < deadline, "the pool never refilled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A crash: no release, no shutdown.
    drop(pool);
    assert!(a.netns_path.exists() && b.netns_path.exists());
    assert!(has_table(&claim.instance));
    let links = links_with_alias(&format!("whisk-net:{}", claim.instance));
    assert!(
        links.contains(&a.host_interface) && links.contains(&b.host_interface),
        "{links:?}"
    );

    let report = NetworkPool::sweep(&claim.instance).await.unwrap();
    assert!(
        report.namespaces >= 2 && report.interfaces >= 3 && report.table,
        "{report:?}"
    );
    assert_nothing_left(&claim.instance);
    assert!(
        NetworkPool::sweep(&claim.instance)
            .await
            .unwrap()
            .is_empty()
    );

    // The next run starts clean on the same names and subnet.
    let pool = NetworkPool::new(claim.config(NetMode::Nat, None))
        .await
        .unwrap();
    let again = pool.take().await.unwrap();
    assert!(claim.pool.contains(again.address));
    pool.shutdown().await.unwrap();
    assert_nothing_left(&claim.instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_and_shutdown_leave_nothing_and_preparing_is_measured() {
    require_root!();
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    let pool = NetworkPool::new(NetConfig {
        pool_size: 0,
        ..claim.config(NetMode::Nat, None)
    })
    .await
    .unwrap();

    // Prepared on demand (pool size 0): this is the cost of one namespace.
    let mut cold = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let network = pool.take().await.unwrap();
        cold.push(started.elapsed());
        assert!(network.netns_path.exists());
        let host_interface = network.host_interface.clone();
        let path = network.netns_path.clone();
        pool.release(network).await.unwrap();
        assert!(!path.exists());
        assert!(!Path::new("/sys/class/net").join(&host_interface).exists());
    }
    cold.sort();
    eprintln!(
        "preparing one network namespace: median {:?}, max {:?} (20 runs)",
        cold[cold.len() / 2],
        cold[cold.len() - 1]
    );

    // A forged or already released network is refused.
    let network = pool.take().await.unwrap();
    let forged = PreparedNetwork {
        name: format!("{}.999999", claim.instance),
        ..network.clone()
    };
    assert!(matches!(
        pool.release(forged).await,
        Err(NetError::Foreign { .. })
    ));
    pool.release(network.clone()).await.unwrap();
    assert!(matches!(
        pool.release(network).await,
        Err(NetError::Foreign { .. })
    ));

    let kept = pool.take().await.unwrap();
    pool.shutdown().await.unwrap();
    assert!(!kept.netns_path.exists());
    assert_nothing_left(&claim.instance);
    assert!(matches!(pool.take().await, Err(NetError::ShutDown { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_pool_hands_out_namespaces_without_waiting() {
    require_root!();
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    let pool = NetworkPool::new(NetConfig {
        pool_size: 3,
        ..claim.config(NetMode::None, None)
    })
    .await
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while pool.ready() < 3 {
        assert!(Instant::now() < deadline, "the pool never filled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let network = pool.take().await.unwrap();
    eprintln!("taking a ready network namespace: {:?}", started.elapsed());
    assert!(network.netns_path.exists());
    // The refill replaces it.
    let deadline = Instant::now() + DEADLINE;
    while pool.ready() < 3 {
        assert!(Instant::now() < deadline, "the pool never refilled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool.release(network).await.unwrap();
    pool.shutdown().await.unwrap();
    assert_nothing_left(&claim.instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subnet_in_use_or_exhausted_is_refused() {
    require_root!();
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    let first = NetworkPool::new(NetConfig {
        pool_size: 0,
        ..claim.config(NetMode::None, None)
    })
    .await
    .unwrap();
    // Another instance on the same subnet would steal the first one's traffic.
    let other = format!("{}b", claim.instance);
    let _sweep_other = SweepOnDrop(other.clone());
    let error = NetworkPool::new(NetConfig {
        instance: other.clone(),
        ..first.config().clone()
    })
    .await
    .unwrap_err();
    match &error {
        NetError::SubnetInUse { existing, .. } => assert!(
            existing.contains(&format!("network instance {:?}", claim.instance)),
            "{existing}"
        ),
        other => panic!("{other}"),
    }
    assert_nothing_left(&other);
    first.shutdown().await.unwrap();

    // A /30 holds exactly one container.
    let tiny = Ipv4Subnet::new(claim.outside.network(), 30).unwrap();
    let pool = NetworkPool::new(NetConfig {
        subnet: tiny,
        pool_size: 0,
        ..claim.config(NetMode::None, None)
    })
    .await
    .unwrap();
    let only = pool.take().await.unwrap();
    let error = pool.take().await.unwrap_err();
    assert!(
        matches!(error, NetError::AddressesExhausted { .. }),
        "{error}"
    );
    pool.release(only).await.unwrap();
    let again = pool.take().await.unwrap();
    pool.release(again).await.unwrap();
    pool.shutdown().await.unwrap();
    assert_nothing_left(&claim.instance);
}

#[tokio::test]
async fn bad_configuration_and_broken_tools_are_named_errors() {
    let error = NetworkPool::new(NetConfig::new("1bad")).await.unwrap_err();
    assert!(matches!(error, NetError::InvalidInstance { .. }), "{error}");
    let error = NetworkPool::sweep("bad.name").await.unwrap_err();
    assert!(matches!(error, NetError::InvalidInstance { .. }), "{error}");
    let error = NetworkPool::new(NetConfig {
        subnet: "10.9.0.0/31".parse().unwrap(),
        ..NetConfig::new("ok")
    })
    .await
    .unwrap_err();
    assert!(matches!(error, NetError::InvalidSubnet { .. }), "{error}");

    let instance = format!("nt{}tools", std::process::id());
    let tools = |ip: &str, nft: &str| NetTools {
        ip: ip.into(),
        nft: nft.into(),
    };
    let error = NetworkPool::sweep_with(&tools("/nonexistent/ip", "nft"), &instance)
        .await
        .unwrap_err();
    assert!(matches!(error, NetError::Spawn { .. }), "{error}");
    // `echo` prints its arguments, which is not the JSON `ip -j` prints.
    let error = NetworkPool::sweep_with(&tools("echo", "nft"), &instance)
        .await
        .unwrap_err();
    assert!(matches!(error, NetError::Parse { .. }), "{error}");
    // `false` fails: the failing command is named.
    let error = NetworkPool::new(NetConfig {
        tools: tools("false", "false"),
        ..NetConfig::new(&instance)
    })
    .await
    .unwrap_err();
    match error {
        NetError::Command { program, .. } => assert_eq!(program, "false"),
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_setup_is_undone() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let claim = claim();
    let _sweep = SweepOnDrop(claim.instance.clone());
    // An `nft` that lists like the real one but refuses to load a table: the gateway interface
    // and the relay exist by then and must be removed again.
    let dir = tempfile::tempdir().unwrap();
    let nft = dir.path().join("nft");
    std::fs::write(
        &nft,
        "#!/bin/sh\nif [ \"$1\" = -f ]; then echo refused >&2; exit 1; fi\nexec nft \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
    let error = NetworkPool::new(NetConfig {
        tools: NetTools {
            ip: "ip".into(),
            nft: nft.clone(),
        },
        ..claim.config(NetMode::Nat, Some(fake_api().await))
    })
    .await
    .unwrap_err();
    match &error {
        NetError::Command { args, stderr, .. } => {
            assert_eq!(args, "-f -");
            assert_eq!(stderr, "refused");
        }
        other => panic!("{other}"),
    }
    assert_nothing_left(&claim.instance);
}
