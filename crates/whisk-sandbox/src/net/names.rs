//! Names of the host resources of one network instance.
//!
//! Everything a pool creates is found again by name alone, so that a later run can sweep what a
//! crashed one left: namespaces are `<instance>.<id>` under `/run/netns`, the nftables table is
//! `inet whisk_<instance>`, and every host interface carries the alias `whisk-net:<instance>`.
//! Interface names are limited to 15 bytes, too short for an instance name, so they use a
//! 6-hex-digit tag hashed from it instead; the alias, not the tag, is what a sweep trusts.

use std::path::PathBuf;

use super::NetError;

/// Where `ip netns` keeps its named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// What the alias of every host interface of an instance starts with.
pub(crate) const ALIAS_PREFIX: &str = "whisk-net:";

/// The longest accepted instance name: it must fit in a netns file name with its id and read
/// well in logs.
const MAX_INSTANCE_LEN: usize = 48;

/// Ids of container interfaces are printed in hex after 8 bytes of prefix (15 bytes at most).
pub(crate) const MAX_ID: u32 = 0x0fff_ffff;

/// Checks an instance name: an ASCII letter, then letters, digits, `_` or `-`. The characters
/// are the ones nftables accepts in a table name and that cannot be mistaken for the `.` that
/// separates a namespace's id.
pub(crate) fn validate_instance(instance: &str) -> Result<(), NetError> {
    let invalid = |reason| NetError::InvalidInstance {
        instance: instance.to_owned(),
        reason,
    };
    let mut chars = instance.chars();
    match chars.next() {
        None => return Err(invalid("it is empty")),
        Some(first) if !first.is_ascii_alphabetic() => {
            return Err(invalid("it must start with an ASCII letter"));
        }
        Some(_) => {}
    }
    if instance.len() > MAX_INSTANCE_LEN {
        return Err(invalid("it is longer than 48 characters"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid(
            "only ASCII letters, digits, '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// The names derived from one (valid) instance name.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    instance: String,
    tag: String,
}

impl Names {
    pub(crate) fn new(instance: &str) -> Result<Self, NetError> {
        validate_instance(instance)?;
        Ok(Self {
            instance: instance.to_owned(),
            tag: tag(instance),
        })
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// The name of container namespace `id`.
    pub(crate) fn netns(&self, id: u32) -> String {
        format!("{}.{id}", self.instance)
    }

    pub(crate) fn netns_path(name: &str) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(name)
    }

    /// Whether `name` is one of this instance's namespaces (and not, say, instance `a-1`'s
    /// when this is `a`).
    pub(crate) fn owns_netns(&self, name: &str) -> bool {
        name.strip_prefix(&self.instance)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The host side of container `id`'s veth pair.
    pub(crate) fn host_veth(&self, id: u32) -> String {
        format!("wv{}{:x}", self.tag, id & MAX_ID)
    }

    /// The nftables pattern matching every container veth of the instance.
    pub(crate) fn veth_pattern(&self) -> String {
        format!("wv{}*", self.tag)
    }

    /// The interface holding the gateway address (one end of a veth pair used as a dummy:
    /// the `dummy` link type is not available on every kernel, veth is).
    pub(crate) fn anchor(&self) -> String {
        format!("wa{}", self.tag)
    }

    /// The other end of the anchor pair.
    pub(crate) fn anchor_peer(&self) -> String {
        format!("wb{}", self.tag)
    }

    pub(crate) fn table(&self) -> String {
        format!("whisk_{}", self.instance)
    }

    /// The alias set on every host interface of the instance.
    pub(crate) fn alias(&self) -> String {
        format!("{ALIAS_PREFIX}{}", self.instance)
    }
}

/// 24 bits of FNV-1a over the instance name, as 6 hex digits.
fn tag(instance: &str) -> String {
    let hash = instance.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("{:06x}", (hash ^ (hash >> 24)) & 0x00ff_ffff)
}
