//! Security groups on the host: one nftables `inet` table per prefix whose two forward
//! chains (egress, then ingress) send each plugged port's traffic through its own chains —
//! anti-spoofing and the egress rules for what the guest sends, the ingress rules for what it
//! receives — statefully (replies of allowed connections pass), default deny.
//!
//! Bridged IPv4/IPv6 reaches the `inet` forward hook through br_netfilter
//! (`net.bridge.bridge-nf-call-iptables=1`); the bridge family has no conntrack on hosts
//! without `nf_conntrack_bridge`. There the bridge port is not visible, so a port's traffic
//! is told by its MAC address: `ether saddr` from the guest, `ether daddr` to it.
//! Broadcast and multicast to guests are not filtered; ARP is not IP and passes.

use std::collections::BTreeMap;

use ferro_api_types::network::{PortState, RuleState, SecurityGroupState};

/// The table's name for a device prefix.
pub fn table(prefix: &str) -> String {
    format!("{prefix}_sg")
}

fn chain_id(port_id: &str) -> String {
    port_id.chars().filter(|c| *c != '-').take(12).collect()
}

fn is_v6(ip: &str) -> bool {
    ip.contains(':')
}

/// The nft match of a rule's protocol and ports under family `fam` (`ip`/`ip6`), or None
/// when the protocol is unknown.
fn protocol_match(r: &RuleState, v6: bool) -> Option<String> {
    let p = r.protocol.as_deref().unwrap_or("").to_ascii_lowercase();
    let name = match p.as_str() {
        "" | "any" | "0" => return Some(String::new()),
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "sctp" | "132" => "sctp",
        "icmp" | "1" if !v6 => "icmp",
        "icmp" | "ipv6-icmp" | "icmpv6" | "58" => "ipv6-icmp",
        n => {
            let num: u8 = match n {
                "gre" => 47,
                "esp" => 50,
                "ah" => 51,
                "igmp" => 2,
                "ospf" => 89,
                "vrrp" => 112,
                _ => n.parse().ok()?,
            };
            return Some(format!("meta l4proto {num} "));
        }
    };
    let mut m = format!("meta l4proto {name} ");
    match name {
        "tcp" | "udp" | "sctp" => match (r.port_range_min, r.port_range_max) {
            (Some(a), Some(b)) if a != b => m.push_str(&format!("{name} dport {a}-{b} ")),
            (Some(a), _) => m.push_str(&format!("{name} dport {a} ")),
            _ => {}
        },
        "icmp" | "ipv6-icmp" => {
            let kw = if name == "icmp" { "icmp" } else { "icmpv6" };
            if let Some(t) = r.port_range_min {
                m.push_str(&format!("{kw} type {t} "));
                if let Some(c) = r.port_range_max {
                    m.push_str(&format!("{kw} code {c} "));
                }
            }
        }
        _ => {}
    }
    Some(m)
}

/// One rule as an nft statement in a port's chain, or None when it can match nothing
/// (a remote group without members of its family, an unknown protocol).
fn rule_line(r: &RuleState, groups: &BTreeMap<&str, &SecurityGroupState>) -> Option<String> {
    let v6 = r.ethertype == "IPv6";
    let fam = if v6 { "ip6" } else { "ip" };
    let dir = if r.direction == "ingress" {
        "saddr"
    } else {
        "daddr"
    };
    let mut m = format!("meta nfproto {} ", if v6 { "ipv6" } else { "ipv4" });
    if let Some(prefix) = r.remote_ip_prefix.as_deref()
        && prefix != "0.0.0.0/0"
        && prefix != "::/0"
    {
        m.push_str(&format!("{fam} {dir} {prefix} "));
    }
    if let Some(g) = r.remote_group_id.as_deref() {
        let members: Vec<&str> = groups
            .get(g)
            .map(|g| {
                g.members
                    .iter()
                    .map(String::as_str)
                    .filter(|ip| is_v6(ip) == v6)
                    .collect()
            })
            .unwrap_or_default();
        if members.is_empty() {
            return None;
        }
        m.push_str(&format!("{fam} {dir} {{ {} }} ", members.join(", ")));
    }
    m.push_str(&protocol_match(r, v6)?);
    m.push_str("accept");
    Some(m)
}

/// The whole table for `ports` (plugged here, port security on). Each group's rules are
/// one pair of chains (`gi_`/`ge_`) however many ports use it; a port's chains check its
/// addresses and jump to its groups' chains; what no rule accepts is dropped.
pub fn render(prefix: &str, ports: &[&PortState], groups: &[SecurityGroupState]) -> String {
    let by_id: BTreeMap<&str, &SecurityGroupState> =
        groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let t = table(prefix);
    // Two base chains on the forward hook: what a guest sends is judged by its egress rules
    // in the first, what a guest receives by its ingress rules in the second. An accept ends
    // only its own base chain, so traffic between two guests passes both the sender's egress
    // and the receiver's ingress rules (in one chain, the sender's egress accept skipped the
    // receiver's ingress rules whenever the sender's port came first).
    let mut out = format!("table inet {t} {{\n");
    for (name, priority, dir, kind) in [("egress", 0, "saddr", "e"), ("ingress", 1, "daddr", "i")] {
        out.push_str(&format!(
            "  chain {name} {{\n    type filter hook forward priority {priority}; policy accept;\n    ct state established,related accept\n    ct state invalid drop\n"
        ));
        for p in ports {
            out.push_str(&format!(
                "    ether {dir} {mac} jump {kind}_{c}\n",
                mac = p.mac_address,
                c = chain_id(&p.id)
            ));
        }
        out.push_str("  }\n");
    }
    let used: std::collections::BTreeSet<&str> = ports
        .iter()
        .flat_map(|p| p.security_groups.iter().map(String::as_str))
        .filter(|g| by_id.contains_key(g))
        .collect();
    for g in &used {
        let gc = chain_id(g);
        for (kind, direction) in [("gi", "ingress"), ("ge", "egress")] {
            out.push_str(&format!("  chain {kind}_{gc} {{\n"));
            for r in by_id[g].rules.iter().filter(|r| r.direction == direction) {
                if let Some(l) = rule_line(r, &by_id) {
                    out.push_str(&format!("    {l}\n"));
                }
            }
            out.push_str("  }\n");
        }
    }
    const ND: &str = "    meta l4proto ipv6-icmp icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept\n";
    for p in ports {
        let c = chain_id(&p.id);
        let jumps = |kind: &str| -> String {
            p.security_groups
                .iter()
                .filter(|g| used.contains(g.as_str()))
                .map(|g| format!("    jump {kind}_{}\n", chain_id(g)))
                .collect()
        };
        let mut ips: Vec<&str> = p.fixed_ips.iter().map(|(_, ip)| ip.as_str()).collect();
        ips.extend(p.allowed_address_pairs.iter().map(|(ip, _)| ip.as_str()));
        let (v4, v6): (Vec<&str>, Vec<&str>) = ips.into_iter().partition(|ip| !is_v6(ip));
        // What the guest sends: DHCP requests, no DHCP answers, only its addresses.
        out.push_str(&format!("  chain e_{c} {{\n"));
        out.push_str(
            "    ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n",
        );
        out.push_str("    udp sport 67 udp dport 68 drop\n");
        out.push_str(ND);
        for (fam, list) in [("ip", &v4), ("ip6", &v6)] {
            let nf = if fam == "ip" { "ipv4" } else { "ipv6" };
            if list.is_empty() {
                out.push_str(&format!("    meta nfproto {nf} drop\n"));
            } else {
                out.push_str(&format!(
                    "    {fam} saddr != {{ {} }} drop\n",
                    list.join(", ")
                ));
            }
        }
        out.push_str(&jumps("ge"));
        out.push_str("    drop\n  }\n");
        // What the guest receives: DHCP answers, then its groups' ingress rules.
        out.push_str(&format!(
            "  chain i_{c} {{\n    udp sport 67 udp dport 68 accept\n{ND}"
        ));
        out.push_str(&jumps("gi"));
        out.push_str("    drop\n  }\n");
    }
    out.push_str("}\n");
    out
}

/// What one port's rules accept, as the rendered rule lines of its groups per direction,
/// with its addresses: the agent compares these before and after a change to find the
/// connections the change stops allowing ([`revoked`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Allowed {
    pub ips: Vec<String>,
    pub ingress: std::collections::BTreeSet<String>,
    pub egress: std::collections::BTreeSet<String>,
}

/// [`Allowed`] of each of `ports`, by port id.
pub fn allowed(ports: &[&PortState], groups: &[SecurityGroupState]) -> BTreeMap<String, Allowed> {
    let by_id: BTreeMap<&str, &SecurityGroupState> =
        groups.iter().map(|g| (g.id.as_str(), g)).collect();
    ports
        .iter()
        .map(|p| {
            let mut a = Allowed {
                ips: p.fixed_ips.iter().map(|(_, ip)| ip.clone()).collect(),
                ..Allowed::default()
            };
            a.ips
                .extend(p.allowed_address_pairs.iter().map(|(ip, _)| ip.clone()));
            for r in p
                .security_groups
                .iter()
                .filter_map(|g| by_id.get(g.as_str()))
                .flat_map(|g| &g.rules)
            {
                if let Some(l) = rule_line(r, &by_id) {
                    match r.direction.as_str() {
                        "ingress" => a.ingress.insert(l),
                        _ => a.egress.insert(l),
                    };
                }
            }
            (p.id.clone(), a)
        })
        .collect()
}

/// Connections to forget in conntrack: those of `ip` (the original destination for
/// `ingress`, the source for `egress`) and of `protocol` (a conntrack protocol name or
/// number; all when None).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revoked {
    pub ip: String,
    pub ingress: bool,
    pub protocol: Option<String>,
}

/// What a change from `old` to `new` stops allowing on the ports still here: for each rule
/// line a port lost, the connections of that line's family and protocol towards the port
/// (ingress) or from it (egress). Established connections pass the table without looking
/// at the rules, so those must be forgotten for the rules to apply to them again (as
/// Neutron deletes the conntrack entries of removed rules); a connection still allowed
/// by another rule is simply tracked anew by its next packet.
pub fn revoked(old: &BTreeMap<String, Allowed>, new: &BTreeMap<String, Allowed>) -> Vec<Revoked> {
    let mut out = std::collections::BTreeSet::new();
    for (port, before) in old {
        let Some(after) = new.get(port) else {
            continue;
        };
        for (ingress, was, is) in [
            (true, &before.ingress, &after.ingress),
            (false, &before.egress, &after.egress),
        ] {
            for line in was.difference(is) {
                let v6 = line.starts_with("meta nfproto ipv6");
                let protocol = line
                    .split_once("meta l4proto ")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(|p| if p == "ipv6-icmp" { "icmpv6" } else { p }.to_string());
                for ip in after.ips.iter().filter(|ip| is_v6(ip) == v6) {
                    out.insert(Revoked {
                        ip: ip.clone(),
                        ingress,
                        protocol: protocol.clone(),
                    });
                }
            }
        }
    }
    // A flush of every protocol covers the ones of single protocols.
    let all: std::collections::BTreeSet<(String, bool)> = out
        .iter()
        .filter(|r| r.protocol.is_none())
        .map(|r| (r.ip.clone(), r.ingress))
        .collect();
    out.into_iter()
        .filter(|r| r.protocol.is_none() || !all.contains(&(r.ip.clone(), r.ingress)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(direction: &str, protocol: Option<&str>) -> RuleState {
        RuleState {
            direction: direction.into(),
            ethertype: "IPv4".into(),
            protocol: protocol.map(String::from),
            ..RuleState::default()
        }
    }

    #[test]
    fn rules_become_nft_matches() {
        let groups = [SecurityGroupState {
            id: "g".into(),
            rules: vec![],
            members: vec!["10.0.0.5".into(), "fd00::5".into()],
        }];
        let by_id: BTreeMap<&str, &SecurityGroupState> =
            groups.iter().map(|g| (g.id.as_str(), g)).collect();
        let r = RuleState {
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: Some("192.0.2.0/24".into()),
            ..rule("ingress", Some("tcp"))
        };
        assert_eq!(
            rule_line(&r, &by_id).unwrap(),
            "meta nfproto ipv4 ip saddr 192.0.2.0/24 meta l4proto tcp tcp dport 22 accept"
        );
        let r = RuleState {
            port_range_min: Some(8),
            remote_group_id: Some("g".into()),
            ..rule("ingress", Some("icmp"))
        };
        assert_eq!(
            rule_line(&r, &by_id).unwrap(),
            "meta nfproto ipv4 ip saddr { 10.0.0.5 } meta l4proto icmp icmp type 8 accept"
        );
        assert_eq!(
            rule_line(&rule("egress", None), &by_id).unwrap(),
            "meta nfproto ipv4 accept"
        );
        assert_eq!(
            rule_line(&rule("egress", Some("112")), &by_id).unwrap(),
            "meta nfproto ipv4 meta l4proto 112 accept"
        );
        assert!(rule_line(&rule("egress", Some("nosuch")), &by_id).is_none());
        let empty = RuleState {
            remote_group_id: Some("other".into()),
            ..rule("ingress", None)
        };
        assert!(
            rule_line(&empty, &by_id).is_none(),
            "a group without members matches nothing"
        );
    }

    #[test]
    fn removed_rules_revoke_their_connections_only() {
        let p = PortState {
            id: "p".into(),
            fixed_ips: vec![
                ("s".into(), "10.0.0.5".into()),
                ("s6".into(), "fd00::5".into()),
            ],
            security_groups: vec!["g".into()],
            ..PortState::default()
        };
        let group = |rules: Vec<RuleState>| SecurityGroupState {
            id: "g".into(),
            rules,
            members: vec![],
        };
        let icmp = rule("ingress", Some("icmp"));
        let ssh = RuleState {
            port_range_min: Some(22),
            port_range_max: Some(22),
            ..rule("ingress", Some("tcp"))
        };
        let out = rule("egress", None);
        let before = allowed(
            &[&p],
            &[group(vec![icmp.clone(), ssh.clone(), out.clone()])],
        );
        // Nothing removed: nothing to forget.
        assert!(revoked(&before, &before).is_empty());
        // The ICMP rule goes: inbound ICMP of the port's IPv4 address is forgotten.
        let after = allowed(&[&p], &[group(vec![ssh.clone(), out.clone()])]);
        assert_eq!(
            revoked(&before, &after),
            vec![Revoked {
                ip: "10.0.0.5".into(),
                ingress: true,
                protocol: Some("icmp".into()),
            }]
        );
        // The any-protocol egress rule goes: everything the port started, per address
        // of the rule's family.
        let after = allowed(&[&p], &[group(vec![icmp.clone(), ssh.clone()])]);
        assert_eq!(
            revoked(&before, &after),
            vec![Revoked {
                ip: "10.0.0.5".into(),
                ingress: false,
                protocol: None,
            }]
        );
        // The port leaves the group: all its rules are gone.
        let bare = PortState {
            security_groups: vec![],
            ..p.clone()
        };
        let after = allowed(&[&bare], &[group(vec![icmp, ssh, out])]);
        let r = revoked(&before, &after);
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r.contains(&Revoked {
            ip: "10.0.0.5".into(),
            ingress: false,
            protocol: None
        }));
        assert!(r.contains(&Revoked {
            ip: "10.0.0.5".into(),
            ingress: true,
            protocol: Some("tcp".into())
        }));
        assert!(r.contains(&Revoked {
            ip: "10.0.0.5".into(),
            ingress: true,
            protocol: Some("icmp".into())
        }));
        // A port that is gone has nothing left to forget.
        assert!(revoked(&before, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_port_gets_anti_spoofing_and_default_deny() {
        let p = PortState {
            id: "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec![("s".into(), "10.0.0.5".into())],
            security_groups: vec!["g".into()],
            port_security_enabled: true,
            ..PortState::default()
        };
        let g = SecurityGroupState {
            id: "g".into(),
            rules: vec![rule("egress", None)],
            members: vec![],
        };
        let t = render("fs", &[&p], &[g]);
        assert!(t.starts_with("table inet fs_sg {"));
        assert!(t.contains("ether saddr fa:16:3e:00:00:01 jump e_3f1c2d4e5a6b"));
        // Egress and ingress in base chains of their own: a sender's egress accept must not
        // end the evaluation before the receiver's ingress rules.
        let egress = &t[t.find("chain egress {").unwrap()..t.find("chain ingress {").unwrap()];
        assert!(egress.contains("hook forward priority 0;") && !egress.contains("daddr"));
        let ingress = &t[t.find("chain ingress {").unwrap()..];
        assert!(ingress.contains("hook forward priority 1;"));
        assert!(ingress.contains("ether daddr fa:16:3e:00:00:01 jump i_3f1c2d4e5a6b"));
        assert!(t.contains("ip saddr != { 10.0.0.5 } drop"));
        assert!(t.contains("meta nfproto ipv6 drop"));
        assert!(t.contains("chain i_3f1c2d4e5a6b {\n    udp sport 67 udp dport 68 accept"));
        assert!(t.contains("chain ge_g {\n    meta nfproto ipv4 accept\n  }"));
        assert!(t.contains("    jump ge_g\n    drop\n"));
        assert!(t.contains("    jump gi_g\n    drop\n"));
        assert_eq!(t.matches("    drop\n").count(), 2);
    }
}
