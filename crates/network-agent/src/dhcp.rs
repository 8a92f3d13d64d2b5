//! DHCP for one network: a `qdhcp-` namespace holding the network's DHCP port (a veth pair
//! into the bridge), dnsmasq answering from static entries for the network's ports, and the
//! metadata proxy on 169.254.169.254 (Neutron's isolated-metadata layout).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ferro_api_types::network::{HostState, NetworkState, PortState, SubnetState};
use ferro_host::dnsmasq::{self, Dnsmasq};
use ferro_host::{link, netns};

use crate::{NetworkAgent, Result};

/// The address guests reach the metadata service at.
pub const METADATA_IP: &str = "169.254.169.254";

/// Whether `net` has a subnet this agent serves DHCP on (IPv4 with DHCP enabled).
pub fn serves(net: &NetworkState) -> bool {
    net.admin_state_up && net.subnets.iter().any(dhcp_v4)
}

fn dhcp_v4(s: &SubnetState) -> bool {
    s.enable_dhcp && s.ip_version == 4
}

/// dnsmasq's directory for `network_id`.
pub fn dir(state_dir: &Path, network_id: &str) -> PathBuf {
    state_dir.join("dhcp").join(network_id)
}

fn prefix_len(cidr: &str) -> Option<&str> {
    cidr.split_once('/').map(|(_, l)| l)
}

/// The DHCP name of a port: its `dns_name`, else `host-<ip with dashes>` as Neutron's.
fn host_name(p: &PortState, ip: &str) -> String {
    if p.dns_name.is_empty() {
        format!("host-{}", ip.replace(['.', ':'], "-"))
    } else {
        p.dns_name.clone()
    }
}

/// The `--dhcp-optsfile` lines of one subnet: router, DNS servers, MTU and classless static
/// routes (host routes, the metadata route through the DHCP port, the default route — a
/// client that takes option 121 ignores option 3, so it carries the default too).
fn subnet_options(s: &SubnetState, dhcp_ip: Option<&str>, mtu: i64, metadata: bool) -> Vec<String> {
    let tag = format!("tag:subnet-{}", s.id);
    let mut o = Vec::new();
    let dns = if s.dns_nameservers.is_empty() {
        dhcp_ip.map(String::from).into_iter().collect::<Vec<_>>()
    } else {
        s.dns_nameservers.clone()
    };
    if !dns.is_empty() {
        o.push(format!("{tag},option:dns-server,{}", dns.join(",")));
    }
    o.push(format!("{tag},option:mtu,{mtu}"));
    let mut routes: Vec<(String, String)> = s.host_routes.clone();
    if metadata && let Some(ip) = dhcp_ip {
        routes.push((format!("{METADATA_IP}/32"), ip.to_string()));
    }
    match s.gateway_ip.as_deref() {
        Some(gw) if !gw.is_empty() => {
            o.push(format!("{tag},option:router,{gw}"));
            routes.push(("0.0.0.0/0".into(), gw.to_string()));
        }
        // No gateway: say so, or the client takes the DHCP server as its router.
        _ => o.push(format!("{tag},option:router")),
    }
    if !routes.is_empty() {
        let r: Vec<String> = routes.iter().map(|(d, n)| format!("{d},{n}")).collect();
        o.push(format!(
            "{tag},option:classless-static-route,{}",
            r.join(",")
        ));
    }
    o
}

impl NetworkAgent {
    /// Serves DHCP (and metadata) for `net`; answers the DHCP port.
    pub(crate) async fn serve_dhcp(
        &self,
        net: &NetworkState,
        state: &HostState,
    ) -> Result<Option<PortState>> {
        let subnets: Vec<&SubnetState> = net.subnets.iter().filter(|s| dhcp_v4(s)).collect();
        if subnets.is_empty() {
            return Ok(None);
        }
        let port = match state
            .ports
            .iter()
            .find(|p| p.is_dhcp() && p.network_id == net.id && p.host == self.config.host)
        {
            // The service gives it an address on a DHCP subnet added since.
            Some(p)
                if subnets
                    .iter()
                    .all(|s| p.fixed_ips.iter().any(|(id, _)| id == &s.id)) =>
            {
                p.clone()
            }
            _ => self.dhcp_port(&net.id).await?,
        };
        let names = &self.config.names;
        let ns = names.dhcp_ns(&net.id);
        let (host_end, ns_end) = (names.veth_host(&port.id), names.veth_ns(&port.id));
        netns::ensure(&ns).await?;
        link::ensure_veth(&host_end, &ns_end, &ns, &port.mac_address, net.mtu, true).await?;
        link::set_master(&host_end, &names.bridge(&net.id)).await?;
        let mut cidrs: Vec<String> = port
            .fixed_ips
            .iter()
            .filter_map(|(sid, ip)| {
                let s = net.subnets.iter().find(|s| &s.id == sid)?;
                (s.ip_version == 4).then(|| format!("{ip}/{}", prefix_len(&s.cidr).unwrap_or("32")))
            })
            .collect();
        let metadata = self.config.metadata.is_some();
        if metadata {
            cidrs.push(format!("{METADATA_IP}/32"));
        }
        netns::set_addresses(&ns, &ns_end, &cidrs).await?;

        let mut hosts = Vec::new();
        let mut options = Vec::new();
        for s in &subnets {
            let dhcp_ip = port
                .fixed_ips
                .iter()
                .find(|(sid, _)| sid == &s.id)
                .map(|(_, ip)| ip.as_str());
            options.extend(subnet_options(s, dhcp_ip, net.mtu, metadata));
        }
        let mut instances = Vec::new();
        for p in state
            .ports
            .iter()
            .filter(|p| p.network_id == net.id && !p.is_dhcp())
        {
            for (sid, ip) in &p.fixed_ips {
                if !subnets.iter().any(|s| &s.id == sid) || ip.parse::<Ipv4Addr>().is_err() {
                    continue;
                }
                hosts.push(dnsmasq::Host {
                    mac: p.mac_address.clone(),
                    ip: ip.clone(),
                    name: host_name(p, ip),
                });
                if p.device_owner.starts_with("compute:") {
                    instances.push((ip.clone(), p.device_id.clone(), p.project_id.clone()));
                }
            }
        }
        let conf = dnsmasq::Config {
            namespace: ns.clone(),
            interface: ns_end.clone(),
            domain: self.config.dns_domain.clone(),
            subnets: subnets
                .iter()
                .map(|s| dnsmasq::Subnet {
                    id: s.id.clone(),
                    cidr: s.cidr.clone(),
                    lease_secs: self.config.lease_secs,
                })
                .collect(),
            hosts,
            options,
        };
        let d = Dnsmasq::new(dir(&self.config.state_dir, &net.id));
        let was_running = d.pid().is_some();
        if d.ensure(&conf).await? {
            let served_before = !self
                .dhcp_served
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(net.id.clone());
            if served_before && !was_running {
                self.note_dnsmasq_restart(&net.id);
            } else {
                tracing::info!(network = %net.id, namespace = %ns, "dnsmasq started");
            }
        }
        if let Some(target) = &self.config.metadata {
            self.ensure_proxy(&net.id, &ns, target, instances)?;
        }
        Ok(Some(port))
    }

    /// Stops DHCP and metadata for `network_id` and removes its namespace.
    pub(crate) async fn stop_dhcp(&self, network_id: &str) -> Result<()> {
        self.stop_proxy(network_id);
        self.dhcp_served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(network_id);
        Dnsmasq::new(dir(&self.config.state_dir, network_id))
            .stop()
            .await?;
        netns::delete(&self.config.names.dhcp_ns(network_id)).await?;
        tracing::info!(network = %network_id, "DHCP removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_carry_router_dns_mtu_and_routes() {
        let s = SubnetState {
            id: "s".into(),
            cidr: "10.0.0.0/24".into(),
            ip_version: 4,
            gateway_ip: Some("10.0.0.1".into()),
            enable_dhcp: true,
            dns_nameservers: vec![],
            host_routes: vec![("192.168.0.0/16".into(), "10.0.0.9".into())],
        };
        let o = subnet_options(&s, Some("10.0.0.2"), 1450, true);
        assert!(o.contains(&"tag:subnet-s,option:dns-server,10.0.0.2".to_string()));
        assert!(o.contains(&"tag:subnet-s,option:router,10.0.0.1".to_string()));
        assert!(o.contains(&"tag:subnet-s,option:mtu,1450".to_string()));
        assert!(o.contains(
            &"tag:subnet-s,option:classless-static-route,192.168.0.0/16,10.0.0.9,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1"
                .to_string()
        ));
        let no_gw = SubnetState {
            gateway_ip: None,
            host_routes: vec![],
            ..s
        };
        let o = subnet_options(&no_gw, Some("10.0.0.2"), 1500, false);
        assert!(o.contains(&"tag:subnet-s,option:router".to_string()));
        assert!(!o.iter().any(|l| l.contains("classless")));
    }

    #[test]
    fn dhcp_names_follow_neutron() {
        let p = PortState::default();
        assert_eq!(host_name(&p, "10.0.0.5"), "host-10-0-0-5");
    }
}
