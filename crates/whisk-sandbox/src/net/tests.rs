#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use super::host;
use super::names::{Names, validate_instance};
use super::relay::Relay;
use super::rules::RuleSet;
use super::subnet::{Addresses, Ipv4Subnet};
use super::{DEFAULT_SUBNET, NetError, NetMode};

fn subnet(text: &str) -> Ipv4Subnet {
    text.parse().unwrap()
}

#[test]
fn subnets_parse_and_refuse_host_bits_and_garbage() {
    let net = subnet("10.20.0.0/16");
    assert_eq!(net.network(), Ipv4Addr::new(10, 20, 0, 0));
    assert_eq!(net.prefix_len(), 16);
    assert_eq!(net.to_string(), "10.20.0.0/16");
    assert_eq!(subnet("10.1.2.3").prefix_len(), 32);
    for bad in [
        "10.20.1.0/16",
        "10.20.0.0/33",
        "10.20.0/16",
        "10.20.0.0/x",
        "",
    ] {
        assert!(
            matches!(
                bad.parse::<Ipv4Subnet>(),
                Err(NetError::InvalidSubnet { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(DEFAULT_SUBNET, subnet("10.231.0.0/16"));
    assert_eq!(Ipv4Subnet::from_octets([10, 0, 0, 1], 24), None);
    assert_eq!(Ipv4Subnet::from_octets([10, 0, 0, 0], 33), None);
    assert_eq!(
        Ipv4Subnet::from_octets([0, 0, 0, 0], 0),
        Some(subnet("0.0.0.0/0"))
    );
}

#[test]
fn overlap_and_containment() {
    let net = subnet("172.20.0.0/16");
    assert!(net.contains(Ipv4Addr::new(172, 20, 255, 255)));
    assert!(!net.contains(Ipv4Addr::new(172, 21, 0, 0)));
    assert!(net.overlaps(&subnet("172.20.5.0/24")));
    assert!(subnet("172.20.5.0/24").overlaps(&net));
    assert!(net.overlaps(&subnet("172.0.0.0/8")));
    assert!(!net.overlaps(&subnet("172.21.0.0/24")));
    assert!(subnet("0.0.0.0/0").overlaps(&net));
}

#[test]
fn gateway_is_the_first_host_and_tiny_subnets_have_none() {
    assert_eq!(
        subnet("10.9.0.0/16").gateway(),
        Some(Ipv4Addr::new(10, 9, 0, 1))
    );
    assert_eq!(
        subnet("10.9.0.4/30").gateway(),
        Some(Ipv4Addr::new(10, 9, 0, 5))
    );
    assert_eq!(subnet("10.9.0.4/31").gateway(), None);
    assert_eq!(subnet("10.9.0.4/32").gateway(), None);
}

#[test]
fn addresses_skip_network_gateway_and_broadcast_and_reuse_lowest_first() {
    let mut addresses = Addresses::new(subnet("10.9.0.0/29"));
    let taken: Vec<_> = std::iter::from_fn(|| addresses.take()).collect();
    assert_eq!(
        taken,
        (2..=6)
            .map(|n| Ipv4Addr::new(10, 9, 0, n))
            .collect::<Vec<_>>()
    );
    addresses.give_back(Ipv4Addr::new(10, 9, 0, 5));
    addresses.give_back(Ipv4Addr::new(10, 9, 0, 3));
    // Not ours: ignored rather than handed out.
    addresses.give_back(Ipv4Addr::new(10, 8, 0, 3));
    assert_eq!(addresses.take(), Some(Ipv4Addr::new(10, 9, 0, 3)));
    assert_eq!(addresses.take(), Some(Ipv4Addr::new(10, 9, 0, 5)));
    assert_eq!(addresses.take(), None);

    let mut single = Addresses::new(subnet("10.9.0.0/30"));
    assert_eq!(single.take(), Some(Ipv4Addr::new(10, 9, 0, 2)));
    assert_eq!(single.take(), None);
}

#[test]
fn instance_names_are_checked() {
    for good in ["a", "whisk-prod_2", "T1234x5"] {
        validate_instance(good).unwrap();
    }
    let too_long = format!("a{}", "b".repeat(48));
    for bad in [
        "",
        "1abc",
        "-a",
        "a.b",
        "a b",
        "a/b",
        "é",
        too_long.as_str(),
    ] {
        assert!(
            matches!(
                validate_instance(bad),
                Err(NetError::InvalidInstance { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn names_fit_interface_limits_and_never_claim_another_instance() {
    let names = Names::new("a").unwrap();
    assert_eq!(names.netns(7), "a.7");
    assert_eq!(
        Names::netns_path("a.7"),
        std::path::PathBuf::from("/run/netns/a.7")
    );
    assert!(names.owns_netns("a.7"));
    assert!(names.owns_netns("a.123456"));
    for foreign in ["a-1.7", "a.", "a.7x", "ab.7", "a", "b.7", "a.-1"] {
        assert!(!names.owns_netns(foreign), "{foreign}");
    }
    let veth = names.host_veth(super::names::MAX_ID);
    assert!(veth.len() <= 15, "{veth}");
    assert!(veth.starts_with("wv"));
    assert_eq!(names.veth_pattern().len(), 9);
    assert!(names.anchor().len() <= 15);
    assert_eq!(names.table(), "whisk_a");
    assert_eq!(names.alias(), "whisk-net:a");
    // Different instances get different tags (for these, anyway), and the same one the same.
    assert_ne!(names.anchor(), Names::new("b").unwrap().anchor());
    assert_eq!(names.anchor(), Names::new("a").unwrap().anchor());
}

#[test]
fn nat_rules_allow_relay_and_outside_and_masquerade() {
    let names = Names::new("inst").unwrap();
    let rules = RuleSet {
        names: &names,
        subnet: subnet("10.9.0.0/16"),
        gateway: Ipv4Addr::new(10, 9, 0, 1),
        relay_port: Some(4321),
        mode: NetMode::Nat,
    }
    .render();
    let from = format!("iifname \"{}\"", names.veth_pattern());
    assert!(rules.starts_with("table inet whisk_inst {"), "{rules}");
    assert!(
        rules.contains(&format!("{from} ip daddr 10.9.0.1 tcp dport 4321 accept")),
        "{rules}"
    );
    assert!(
        rules.contains(&format!("{from} ip daddr 169.254.0.0/16 reject")),
        "{rules}"
    );
    assert!(
        rules.contains(&format!("{from} meta nfproto ipv4 accept")),
        "{rules}"
    );
    assert!(
        rules.contains(&format!(
            "ip saddr 10.9.0.0/16 oifname != \"{}\" masquerade",
            names.veth_pattern()
        )),
        "{rules}"
    );
    assert!(
        rules.contains(&format!(
            "ip daddr 10.9.0.1 iifname != \"lo\" iifname != \"{}\" reject",
            names.veth_pattern()
        )),
        "{rules}"
    );
    // The relay is accepted before the input chain's catch-all refusal.
    let relay = rules.find("tcp dport 4321").unwrap();
    let refusal = rules
        .find(&format!("{from} meta l4proto tcp reject"))
        .unwrap();
    assert!(relay < refusal, "{rules}");
}

#[test]
fn none_rules_forward_nothing_and_skip_nat() {
    let names = Names::new("inst").unwrap();
    let rules = RuleSet {
        names: &names,
        subnet: subnet("10.9.0.0/16"),
        gateway: Ipv4Addr::new(10, 9, 0, 1),
        relay_port: None,
        mode: NetMode::None,
    }
    .render();
    assert!(!rules.contains("masquerade"), "{rules}");
    assert!(!rules.contains("nfproto ipv4 accept"), "{rules}");
    assert!(!rules.contains("dport"), "{rules}");
    assert!(!rules.contains("postrouting"), "{rules}");
}

#[test]
fn namespaces_are_listed_by_instance_and_a_missing_directory_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["x.1", "x.20", "x-2.3", "y.1", "x.tmp"] {
        std::fs::write(dir.path().join(name), "").unwrap();
    }
    let names = Names::new("x").unwrap();
    assert_eq!(
        host::namespaces_in(dir.path(), &names).unwrap(),
        ["x.1", "x.20"]
    );
    assert!(
        host::namespaces_in(&dir.path().join("absent"), &names)
            .unwrap()
            .is_empty()
    );
    // A file where the directory should be is an error, not "nothing there".
    let file = dir.path().join("x.1");
    assert!(matches!(
        host::namespaces_in(&file, &names),
        Err(NetError::Io { action: "list", .. })
    ));
}

#[test]
fn forwarding_is_switched_on_once_and_failures_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ip_forward");
    std::fs::write(&path, "0\n").unwrap();
    host::enable_forwarding(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
    host::enable_forwarding(&path).unwrap();
    assert!(matches!(
        host::enable_forwarding(&dir.path().join("absent")),
        Err(NetError::Io { action: "read", .. })
    ));
}

#[tokio::test]
async fn a_relay_on_an_address_the_host_lacks_is_a_relay_error() {
    // 203.0.113.0/24 is reserved for documentation: no host has it, and binding sends nothing.
    let error = Relay::start(
        Ipv4Addr::new(203, 0, 113, 7),
        "127.0.0.1:9".parse().unwrap(),
        "t",
    )
    .await
    .unwrap_err();
    assert!(matches!(error, NetError::Relay { .. }), "{error}");
}

#[tokio::test]
async fn a_relay_forwards_both_ways_and_closes_when_the_api_is_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = api.local_addr().unwrap();
    let relay = Relay::start(Ipv4Addr::LOCALHOST, upstream, "t")
        .await
        .unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = api.accept().await.unwrap();
        let mut buffer = [0u8; 4];
        stream.read_exact(&mut buffer).await.unwrap();
        stream.write_all(b"pong").await.unwrap();
        buffer
    });
    let mut client = tokio::net::TcpStream::connect(relay.local_addr())
        .await
        .unwrap();
    client.write_all(b"ping").await.unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"pong");
    assert_eq!(&server.await.unwrap(), b"ping");

    // The API is gone: the relay accepts, cannot connect, and closes the connection.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let relay = Relay::start(Ipv4Addr::LOCALHOST, gone, "t").await.unwrap();
    let mut client = tokio::net::TcpStream::connect(relay.local_addr())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = client.read_to_end(&mut answer).await;
    assert!(read.is_err() || answer.is_empty(), "{read:?} {answer:?}");
}
