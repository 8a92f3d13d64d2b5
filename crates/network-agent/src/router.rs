//! Routers (Neutron's legacy L3 agent): each router a `qrouter-<id>` namespace with a port
//! on each of its subnets (`qr-…`) and one on the external network (`qg-…`), each a veth
//! pair whose host end sits in the network's bridge. Inside, IPv4 forwarding, the default
//! route through the external subnet's gateway and the static routes, and one nftables
//! table doing the address translation: floating IPs as DNAT/SNAT pairs, then SNAT of
//! everything else leaving through the gateway to the gateway's own address.

use std::collections::{BTreeMap, BTreeSet};

use ferro_api_types::network::{HostState, PortState, RouterState};
use ferro_host::cmd::{self, HostError};
use ferro_host::{link, netns};

use crate::{NetworkAgent, Result};

/// The NAT table's name inside a router's namespace.
pub fn nat_table(prefix: &str) -> String {
    format!("{prefix}_nat")
}

/// A router port's name inside its namespace: `qr-`/`qg-` and 11 characters of the port
/// id, as Neutron's.
pub fn port_device(port: &PortState, gateway: bool) -> String {
    let id: String = port.id.chars().take(11).collect();
    format!("{}-{id}", if gateway { "qg" } else { "qr" })
}

/// `address/len` of each fixed IP of `p`, the length from its subnet in `state`.
fn port_cidrs(p: &PortState, state: &HostState) -> Vec<String> {
    p.fixed_ips
        .iter()
        .filter_map(|(sid, ip)| {
            let sn = state
                .networks
                .iter()
                .flat_map(|n| &n.subnets)
                .find(|s| &s.id == sid)?;
            let len = sn.cidr.split_once('/')?.1;
            Some(format!("{ip}/{len}"))
        })
        .collect()
}

/// The gateway IP of the external subnet the router's gateway port has its (first IPv4)
/// address on: the router's default route.
fn upstream_gateway(gw: &PortState, state: &HostState) -> Option<String> {
    gw.fixed_ips.iter().find_map(|(sid, ip)| {
        if ip.contains(':') {
            return None;
        }
        state
            .networks
            .iter()
            .flat_map(|n| &n.subnets)
            .find(|s| &s.id == sid)
            .and_then(|s| s.gateway_ip.clone())
            .filter(|g| !g.is_empty())
    })
}

fn first_v4(p: &PortState) -> Option<&str> {
    p.fixed_ips
        .iter()
        .map(|(_, ip)| ip.as_str())
        .find(|ip| !ip.contains(':'))
}

/// The router's NAT table, or an empty string when it translates nothing.
pub fn render_nat(prefix: &str, r: &RouterState) -> String {
    let Some(gw) = &r.gateway else {
        return String::new();
    };
    let qg = port_device(gw, true);
    let mut pre = Vec::new();
    let mut post = Vec::new();
    for (fip, fixed) in &r.floating_ips {
        if fip.contains(':') || fixed.contains(':') {
            continue;
        }
        pre.push(format!("ip daddr {fip} dnat to {fixed}"));
        post.push(format!("ip saddr {fixed} oifname \"{qg}\" snat to {fip}"));
    }
    if r.enable_snat
        && let Some(ip) = first_v4(gw)
    {
        post.push(format!("oifname \"{qg}\" snat to {ip}"));
    }
    if pre.is_empty() && post.is_empty() {
        return String::new();
    }
    let chain = |name: &str, hook: &str, prio: &str, lines: &[String]| {
        let mut c = format!(
            "  chain {name} {{\n    type nat hook {hook} priority {prio}; policy accept;\n"
        );
        for l in lines {
            c.push_str(&format!("    {l}\n"));
        }
        c.push_str("  }\n");
        c
    };
    format!(
        "table ip {} {{\n{}{}{}}}\n",
        nat_table(prefix),
        chain("prerouting", "prerouting", "dstnat", &pre),
        // Connections the router itself opens to a floating IP (Neutron's OUTPUT DNAT).
        chain("output", "output", "-100", &pre),
        chain("postrouting", "postrouting", "srcnat", &post),
    )
}

/// A route as `ip -json route` names its destination (`default`, no `/32`).
fn route_key(dst: &str) -> String {
    match dst {
        "0.0.0.0/0" => "default".into(),
        d => d.strip_suffix("/32").unwrap_or(d).to_string(),
    }
}

impl NetworkAgent {
    /// Makes router `r`'s namespace, ports, routes and NAT; answers the ids of its ports
    /// that are plugged.
    pub(crate) async fn serve_router(
        &self,
        r: &RouterState,
        state: &HostState,
    ) -> Result<Vec<String>> {
        let names = &self.config.names;
        let ns = names.router_ns(&r.id);
        let fresh = !self
            .nat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&r.id);
        netns::ensure(&ns).await?;
        if fresh {
            cmd::run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ],
            )
            .await?;
        }
        let mut plugged = Vec::new();
        let ports = r
            .interfaces
            .iter()
            .map(|p| (p, false))
            .chain(r.gateway.iter().map(|p| (p, true)));
        for (p, gateway) in ports {
            let mtu = state
                .networks
                .iter()
                .find(|n| n.id == p.network_id)
                .map_or(1500, |n| n.mtu);
            let (host_end, dev) = (names.veth_host(&p.id), port_device(p, gateway));
            // An administratively down router keeps its ports plugged (they are ACTIVE,
            // as with OVN, which Tempest expects) but passes no traffic.
            link::ensure_veth(&host_end, &dev, &ns, &p.mac_address, mtu, r.admin_state_up).await?;
            link::set_master(&host_end, &names.bridge(&p.network_id)).await?;
            let mut cidrs = port_cidrs(p, state);
            if gateway {
                // Floating addresses answer ARP on the external network from here.
                cidrs.extend(
                    r.floating_ips
                        .iter()
                        .filter(|(f, _)| !f.contains(':'))
                        .map(|(f, _)| format!("{f}/32")),
                );
            }
            netns::set_addresses(&ns, &dev, &cidrs).await?;
            plugged.push(p.id.clone());
        }
        let mut routes: Vec<(String, String)> = r.routes.clone();
        if let Some(gw) = r.gateway.as_ref().and_then(|g| upstream_gateway(g, state)) {
            routes.push(("0.0.0.0/0".into(), gw));
        }
        self.set_routes(&ns, &routes).await?;
        self.apply_nat(&ns, r).await?;
        Ok(plugged)
    }

    /// Makes the namespace's gateway routes exactly `routes` (`(destination, nexthop)`,
    /// IPv4); connected routes are the kernel's.
    async fn set_routes(&self, ns: &str, routes: &[(String, String)]) -> Result<()> {
        let have = netns::gateway_routes(ns).await?;
        let want: BTreeMap<String, &str> = routes
            .iter()
            .filter(|(d, n)| !d.contains(':') && !n.contains(':'))
            .map(|(d, n)| (route_key(d), n.as_str()))
            .collect();
        let mut ok = BTreeSet::new();
        for (dst, gw) in &have {
            match want.get(dst) {
                Some(n) if n == gw => {
                    ok.insert(dst.clone());
                }
                _ => netns::delete_route(ns, dst, gw).await?,
            }
        }
        for (dst, via) in want.iter().filter(|(d, _)| !ok.contains(*d)) {
            // A nexthop not (yet) on a connected subnet is refused by the kernel: a route
            // the user gave that cannot work now is skipped, not the whole router.
            if let Err(e) = netns::set_route(ns, dst, via).await {
                tracing::warn!(namespace = %ns, route = %dst, nexthop = %via, error = %e, "route not set");
            }
        }
        Ok(())
    }

    /// Makes the router's NAT table match (a no-op when nothing changed).
    async fn apply_nat(&self, ns: &str, r: &RouterState) -> Result<()> {
        let prefix = self.config.names.prefix();
        let text = render_nat(prefix, r);
        if self
            .nat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&r.id)
            == Some(&text)
        {
            return Ok(());
        }
        let t = nat_table(prefix);
        let script = format!("table ip {t} {{}}\ndelete table ip {t}\n{text}");
        let dir = self.config.state_dir.join("routers");
        std::fs::create_dir_all(&dir).map_err(|e| HostError::new(format!("{dir:?}: {e}")))?;
        let path = dir.join(format!("{}.nft", r.id));
        std::fs::write(&path, script).map_err(|e| HostError::new(format!("{path:?}: {e}")))?;
        cmd::run(
            "ip",
            &["netns", "exec", ns, "nft", "-f", &path.to_string_lossy()],
        )
        .await?;
        self.nat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.id.clone(), text);
        Ok(())
    }

    /// Removes router `router_id`'s namespace (and so its ports and NAT).
    pub(crate) async fn remove_router(&self, router_id: &str) -> Result<()> {
        netns::delete(&self.config.names.router_ns(router_id)).await?;
        self.nat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(router_id);
        let _ = std::fs::remove_file(
            self.config
                .state_dir
                .join("routers")
                .join(format!("{router_id}.nft")),
        );
        tracing::info!(router = %router_id, "router removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(id: &str, ip: &str) -> PortState {
        PortState {
            id: id.into(),
            fixed_ips: vec![("s".into(), ip.into())],
            ..PortState::default()
        }
    }

    #[test]
    fn nat_translates_floating_ips_first_then_snats_the_rest() {
        let r = RouterState {
            id: "r".into(),
            admin_state_up: true,
            gateway: Some(port("0123456789abcdef", "172.24.4.3")),
            enable_snat: true,
            floating_ips: vec![("172.24.4.10".into(), "10.0.0.5".into())],
            ..RouterState::default()
        };
        let t = render_nat("fs", &r);
        assert!(t.starts_with("table ip fs_nat {"), "{t}");
        assert!(t.contains("ip daddr 172.24.4.10 dnat to 10.0.0.5"), "{t}");
        let fip = t
            .find("ip saddr 10.0.0.5 oifname \"qg-0123456789a\" snat to 172.24.4.10")
            .expect("floating SNAT");
        let snat = t
            .find("oifname \"qg-0123456789a\" snat to 172.24.4.3")
            .expect("default SNAT");
        assert!(fip < snat, "the floating IP's SNAT comes first: {t}");
        let off = RouterState {
            enable_snat: false,
            floating_ips: vec![],
            ..r.clone()
        };
        assert_eq!(render_nat("fs", &off), "");
        let no_gw = RouterState { gateway: None, ..r };
        assert_eq!(render_nat("fs", &no_gw), "");
    }

    #[test]
    fn routes_are_keyed_as_ip_json_prints_them() {
        assert_eq!(route_key("0.0.0.0/0"), "default");
        assert_eq!(route_key("192.0.2.7/32"), "192.0.2.7");
        assert_eq!(route_key("192.0.2.0/24"), "192.0.2.0/24");
    }
}
