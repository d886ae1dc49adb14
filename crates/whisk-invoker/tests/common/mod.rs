//! Real containers for the invoker's tests: a sandbox per test (unique instance name), runtime
//! assets in a temporary directory, and network namespaces made with `ip` for each container
//! (each with its own veth pair and a /30 of its own, so parallel tests never meet).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use whisk_invoker::{
    ContainerError, ContainerNetwork, NetworkProvider, SandboxFactory, SandboxFactoryConfig,
};
use whisk_runtime::{HostTools, LaunchLayout};
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

/// Namespaces made with `ip`: `wis<slot>`, host side `wih<slot>`, container side `eth0`, with
/// the /30 number `slot` of 10.251.0.0/16.
#[derive(Debug)]
pub struct IpNetworks {
    next: AtomicU32,
}

struct Made {
    name: String,
}

async fn ip(args: &[&str]) -> Result<(), ContainerError> {
    let output = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| ContainerError::Create(format!("ip: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ContainerError::Create(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

impl IpNetworks {
    pub fn new() -> IpNetworks {
        IpNetworks {
            next: AtomicU32::new(0),
        }
    }
}

#[async_trait]
impl NetworkProvider for IpNetworks {
    async fn take(&self) -> Result<ContainerNetwork, ContainerError> {
        // A /30 of 10.251.0.0/16 per namespace. The namespace is named after its /30, so
        // creating it claims the addresses atomically: parallel test processes that pick the
        // same slot find the name taken and move on.
        let start = std::process::id()
            .wrapping_mul(64)
            .wrapping_add(self.next.fetch_add(1, Ordering::Relaxed) * 7 + unique());
        let mut claimed = None;
        for attempt in 0..256 {
            let slot = start.wrapping_add(attempt) % 16384;
            let name = format!("wis{slot}");
            if ip(&["netns", "add", &name]).await.is_ok() {
                claimed = Some((slot, name));
                break;
            }
        }
        let (slot, name) =
            claimed.ok_or_else(|| ContainerError::Create("no free test network".into()))?;
        let host = format!("wih{slot}");
        let base = u32::from(Ipv4Addr::new(10, 251, 0, 0)) + slot * 4;
        let host_ip = Ipv4Addr::from(base + 1);
        let container_ip = Ipv4Addr::from(base + 2);
        let setup = async {
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ])
            .await?;
            ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host]).await?;
            ip(&["link", "set", &host, "up"]).await?;
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{container_ip}/30"),
                "dev",
                "eth0",
            ])
            .await?;
            ip(&["-n", &name, "link", "set", "eth0", "up"]).await?;
            ip(&["-n", &name, "link", "set", "lo", "up"]).await
        };
        if let Err(error) = setup.await {
            let _ = ip(&["netns", "del", &name]).await;
            return Err(error);
        }
        Ok(ContainerNetwork {
            netns: Some(PathBuf::from(format!("/run/netns/{name}"))),
            address: IpAddr::V4(container_ip),
            token: Box::new(Made { name }),
        })
    }

    async fn release(&self, network: ContainerNetwork) {
        if let Ok(made) = network.token.downcast::<Made>() {
            // Deleting the namespace deletes its end of the veth pair and so the host end.
            let _ = ip(&["netns", "del", &made.name]).await;
        }
    }
}

/// A sandbox factory for one test, or `None` (with the reason printed) without root.
pub struct Real {
    pub factory: Arc<SandboxFactory>,
    pub sandbox: Arc<Sandbox>,
    _assets: tempfile::TempDir,
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
        })
        .await
        .expect("start the sandbox"),
    );
    let assets = tempfile::tempdir().unwrap();
    whisk_runtime::write_assets(assets.path()).unwrap();
    // Containers run as an unprivileged mapped user: the directory must be readable to it.
    std::fs::set_permissions(assets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["nodejs", "python"] {
        let dir = assets.path().join(sub);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = SandboxFactoryConfig::new(
        LaunchLayout::standard(HostTools::detect()),
        assets.path().to_path_buf(),
        PathBuf::from(env!("CARGO_BIN_EXE_whisk-invoker-proxy")),
        instance,
    );
    let factory = Arc::new(SandboxFactory::new(
        sandbox.clone(),
        Arc::new(IpNetworks::new()),
        config,
    ));
    Some(Real {
        factory,
        sandbox,
        _assets: assets,
    })
}
