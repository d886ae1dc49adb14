//! The nftables table of one network instance.
//!
//! One table per instance, so that instances (and other platforms on the host) never edit each
//! other's rules and a sweep removes everything with one `delete table`. Every rule matches the
//! instance's own container interfaces; a packet of anything else passes these chains untouched.
//! Refusals are `reject`, not `drop`: a function that tries a forbidden address fails at once
//! instead of hanging until its connect timeout.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::NetMode;
use super::names::Names;
use super::subnet::Ipv4Subnet;

/// What the rules depend on.
#[derive(Debug)]
pub(crate) struct RuleSet<'a> {
    pub(crate) names: &'a Names,
    pub(crate) subnet: Ipv4Subnet,
    pub(crate) gateway: Ipv4Addr,
    pub(crate) relay_port: Option<u16>,
    pub(crate) mode: NetMode,
}

/// Appends the two rules that refuse what `matcher` selects: a TCP reset for TCP, an ICMP
/// "administratively prohibited" for the rest.
fn reject(out: &mut String, matcher: &str) {
    let _ = writeln!(out, "    {matcher} meta l4proto tcp reject with tcp reset");
    let _ = writeln!(out, "    {matcher} reject with icmpx type admin-prohibited");
}

impl RuleSet<'_> {
    /// The table as an `nft -f` script.
    pub(crate) fn render(&self) -> String {
        let veths = format!("\"{}\"", self.names.veth_pattern());
        let from = format!("iifname {veths}");
        let to = format!("oifname {veths}");
        let mut out = String::new();
        let _ = writeln!(out, "table inet {} {{", self.names.table());

        // Traffic from a container to the host itself: only answers to connections the host
        // opened (the invoker talking to port 8080) and the API relay.
        let _ = writeln!(out, "  chain input {{");
        let _ = writeln!(
            out,
            "    type filter hook input priority filter; policy accept;"
        );
        let _ = writeln!(out, "    {from} ct state established,related accept");
        if let Some(port) = self.relay_port {
            let _ = writeln!(
                out,
                "    {from} ip daddr {} tcp dport {port} accept",
                self.gateway
            );
        }
        reject(&mut out, &from);
        // The gateway address exists for the containers (and the host itself): a neighbour
        // on the host's own network routing to it must not reach the relay.
        reject(
            &mut out,
            &format!(
                "ip daddr {} iifname != \"lo\" iifname != {veths}",
                self.gateway
            ),
        );
        let _ = writeln!(out, "  }}");

        // Traffic routed through the host. Nothing new ever enters a container (that is how
        // containers cannot reach each other, whichever instance they belong to); what leaves
        // one goes only outside, and only in NAT mode.
        let _ = writeln!(out, "  chain forward {{");
        let _ = writeln!(
            out,
            "    type filter hook forward priority filter; policy accept;"
        );
        let _ = writeln!(out, "    {to} ct state established,related accept");
        reject(&mut out, &to);
        match self.mode {
            NetMode::Nat => {
                reject(&mut out, &format!("{from} ip daddr 169.254.0.0/16"));
                reject(&mut out, &format!("{from} ip daddr {}", self.subnet));
                reject(&mut out, &format!("{from} oifname \"wv*\""));
                let _ = writeln!(out, "    {from} meta nfproto ipv4 accept");
                reject(&mut out, &from);
            }
            NetMode::None => reject(&mut out, &from),
        }
        let _ = writeln!(out, "  }}");

        if self.mode == NetMode::Nat {
            let _ = writeln!(out, "  chain postrouting {{");
            let _ = writeln!(
                out,
                "    type nat hook postrouting priority srcnat; policy accept;"
            );
            let _ = writeln!(
                out,
                "    ip saddr {} oifname != {veths} masquerade",
                self.subnet
            );
            let _ = writeln!(out, "  }}");
        }
        let _ = writeln!(out, "}}");
        out
    }
}
