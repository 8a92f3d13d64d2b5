//! Names of the host objects FerroStack makes, derived from the model's ids.
//!
//! Linux limits an interface name to 15 bytes; like Neutron's `tap`/`brq` + 11 characters of
//! the id, a name is the prefix, one letter for its kind and as much of the id as fits.

/// The naming scheme of one host (all agents of a host must share the prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

/// Longest prefix accepted: leaves 10 characters of the id in an interface name.
pub const MAX_PREFIX: usize = 4;

impl Names {
    /// A scheme with `prefix` (lowercase letters and digits, at most [`MAX_PREFIX`]).
    pub fn new(prefix: &str) -> Result<Names, String> {
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(format!(
                "dataplane prefix {prefix:?}: 1 to {MAX_PREFIX} lowercase letters or digits"
            ));
        }
        Ok(Names {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn device(&self, kind: char, id: &str) -> String {
        let room = 15 - self.prefix.len() - 1;
        let id: String = id.chars().filter(|c| *c != '-').take(room).collect();
        format!("{}{kind}{id}", self.prefix)
    }

    /// The bridge of network `network_id` on this host.
    pub fn bridge(&self, network_id: &str) -> String {
        self.device('b', network_id)
    }

    /// The tap a guest's port is plugged through.
    pub fn tap(&self, port_id: &str) -> String {
        self.device('t', port_id)
    }

    /// The VXLAN device carrying a network between hosts.
    pub fn vxlan(&self, network_id: &str) -> String {
        self.device('x', network_id)
    }

    /// The VLAN device carrying a `vlan` provider network on a host interface.
    pub fn vlan(&self, network_id: &str) -> String {
        self.device('l', network_id)
    }

    /// The host end of a namespace port's veth pair (in the network's bridge).
    pub fn veth_host(&self, port_id: &str) -> String {
        self.device('v', port_id)
    }

    /// The namespace end of a namespace port's veth pair.
    pub fn veth_ns(&self, port_id: &str) -> String {
        self.device('n', port_id)
    }

    /// The DHCP namespace of a network (`qdhcp-<id>` as Neutron's).
    pub fn dhcp_ns(&self, network_id: &str) -> String {
        format!("{}-qdhcp-{network_id}", self.prefix)
    }

    /// The namespace of a router (`qrouter-<id>`).
    pub fn router_ns(&self, router_id: &str) -> String {
        format!("{}-qrouter-{router_id}", self.prefix)
    }

    /// Whether an interface name is one of this scheme's, and of which kind.
    pub fn kind_of(&self, ifname: &str) -> Option<char> {
        let rest = ifname.strip_prefix(&self.prefix)?;
        let k = rest.chars().next()?;
        ("btxvnl".contains(k) && rest.len() > 1).then_some(k)
    }

    /// The network id of a DHCP namespace of this scheme.
    pub fn dhcp_ns_network<'a>(&self, ns: &'a str) -> Option<&'a str> {
        ns.strip_prefix(&self.prefix)?.strip_prefix("-qdhcp-")
    }

    /// Whether `name` (an interface name) stands for `id` under kind `kind`.
    pub fn matches(&self, kind: char, name: &str, id: &str) -> bool {
        self.device(kind, id) == name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_an_interface_name_and_carry_the_prefix() {
        let n = Names::new("fs").unwrap();
        let id = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
        assert_eq!(n.bridge(id), "fsb3f1c2d4e5a6b");
        assert_eq!(n.tap(id).len(), 15);
        assert_eq!(n.kind_of(&n.tap(id)), Some('t'));
        assert_eq!(n.kind_of("eth0"), None);
        assert_eq!(n.kind_of("fs"), None);
        let long = Names::new("abcd").unwrap();
        assert_eq!(long.vxlan(id).len(), 15);
        assert_eq!(n.dhcp_ns_network(&n.dhcp_ns(id)), Some(id));
        assert!(n.matches('b', &n.bridge(id), id));
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for p in ["", "abcde", "A", "a-b", "é"] {
            assert!(Names::new(p).is_err(), "{p:?}");
        }
    }
}
