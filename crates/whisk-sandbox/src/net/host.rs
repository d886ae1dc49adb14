//! What the host already has: interfaces, addresses, routes, namespaces and tables.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

use super::command::run;
use super::names::{ALIAS_PREFIX, Names};
use super::subnet::Ipv4Subnet;
use super::{NetError, NetTools};

#[derive(Debug, Deserialize)]
struct Link {
    ifname: String,
    #[serde(default)]
    ifalias: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AddressedLink {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<AddressInfo>,
}

#[derive(Debug, Deserialize)]
struct AddressInfo {
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    prefixlen: Option<u8>,
}

#[derive(Debug, Deserialize)]
struct Route {
    dst: String,
    #[serde(default)]
    dev: Option<String>,
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    tools: &NetTools,
    what: &str,
    text: &str,
) -> Result<T, NetError> {
    serde_json::from_str(text).map_err(|error| NetError::Parse {
        program: tools.ip.display().to_string(),
        reason: format!("{what}: {error}"),
    })
}

/// The host interfaces carrying `alias`.
pub(crate) async fn links_with_alias(
    tools: &NetTools,
    alias: &str,
) -> Result<Vec<String>, NetError> {
    let text = run(&tools.ip, &["-j", "link", "show"], None).await?;
    let links: Vec<Link> = parse_json(tools, "link list", &text)?;
    Ok(links
        .into_iter()
        .filter(|link| link.ifalias.as_deref() == Some(alias))
        .map(|link| link.ifname)
        .collect())
}

/// The network of the host's first address or main-table route that overlaps `subnet`, with
/// the interface it is on. Taking a subnet the host already uses would hijack its traffic.
pub(crate) async fn overlapping(
    tools: &NetTools,
    subnet: Ipv4Subnet,
) -> Result<Option<String>, NetError> {
    let text = run(&tools.ip, &["-j", "-4", "address", "show"], None).await?;
    let links: Vec<AddressedLink> = parse_json(tools, "address list", &text)?;
    for link in links {
        for info in link.addr_info {
            let (Some(local), Some(prefix)) = (info.local, info.prefixlen) else {
                continue;
            };
            let Ok(address) = local.parse::<Ipv4Addr>() else {
                continue;
            };
            if let Some(network) = network_of(address, prefix)
                && network.overlaps(&subnet)
            {
                let owner = owner_of(tools, &link.ifname).await;
                return Ok(Some(format!("{local}/{prefix} on {}{owner}", link.ifname)));
            }
        }
    }
    let text = run(&tools.ip, &["-j", "-4", "route", "show"], None).await?;
    let routes: Vec<Route> = parse_json(tools, "route list", &text)?;
    for route in routes {
        if route.dst == "default" {
            continue;
        }
        if let Ok(network) = route.dst.parse::<Ipv4Subnet>()
            && network.overlaps(&subnet)
        {
            let dev = route.dev.unwrap_or_default();
            let owner = owner_of(tools, &dev).await;
            return Ok(Some(format!("route {} dev {dev}{owner}", route.dst)));
        }
    }
    Ok(None)
}

/// Names the network instance an interface belongs to, if it is one of ours: the usual reason
/// for a subnet in use is another platform on the same default subnet, or a crashed one whose
/// instance name (e.g. with a pid in it) the next run does not know to sweep.
async fn owner_of(tools: &NetTools, interface: &str) -> String {
    let Ok(text) = run(&tools.ip, &["-j", "link", "show", "dev", interface], None).await else {
        return String::new();
    };
    let Ok(links) = serde_json::from_str::<Vec<Link>>(&text) else {
        return String::new();
    };
    links
        .into_iter()
        .find_map(|link| link.ifalias?.strip_prefix(ALIAS_PREFIX).map(str::to_owned))
        .map(|instance| {
            format!(" (network instance {instance:?}; if that platform is gone, sweep it)")
        })
        .unwrap_or_default()
}

fn network_of(address: Ipv4Addr, prefix: u8) -> Option<Ipv4Subnet> {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32)))?;
    Ipv4Subnet::new(Ipv4Addr::from(u32::from(address) & mask), prefix).ok()
}

/// The namespaces of the instance found in `dir` (normally `/run/netns`). A missing directory
/// means no namespace was ever named on this host.
pub(crate) fn namespaces_in(dir: &Path, names: &Names) -> Result<Vec<String>, NetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetError::Io {
                action: "list",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NetError::Io {
            action: "list",
            path: dir.to_owned(),
            source,
        })?;
        if let Some(name) = entry.file_name().to_str()
            && names.owns_netns(name)
        {
            found.push(name.to_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// Whether the nftables table `inet <table>` exists.
pub(crate) async fn has_table(tools: &NetTools, table: &str) -> Result<bool, NetError> {
    let text = run(&tools.nft, &["list", "tables", "inet"], None).await?;
    Ok(text
        .lines()
        .any(|line| line.split_whitespace().eq(["table", "inet", table])))
}

/// Turns IPv4 forwarding on (NAT needs it). It is never turned off again: other platforms on
/// the host may rely on it.
pub(crate) fn enable_forwarding(path: &Path) -> Result<(), NetError> {
    let io_error = |action, source| NetError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let current = std::fs::read_to_string(path).map_err(|source| io_error("read", source))?;
    if current.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1\n").map_err(|source| io_error("write", source))?;
    tracing::info!(path = %path.display(), "enabled IPv4 forwarding for container NAT");
    Ok(())
}
