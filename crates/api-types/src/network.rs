//! The bus contract between the network service (topic [`PLUGIN_TOPIC`], as Neutron's
//! `q-plugin`) and the network agents (fanout [`AGENT_FANOUT`]).
//!
//! An agent asks for the part of the model its host needs ([`PluginRequest::SyncHost`],
//! which is also its heartbeat), makes the host match it, and reports which ports it
//! plugged. The service tells every agent when the model changed ([`AgentNotice`]); the
//! agent then syncs again, so a lost notice costs at most one periodic sync.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compute::{CONTRACT_VERSION, ContractError, envelope_parts, join, split};

/// The network service's queue for agent requests.
pub const PLUGIN_TOPIC: &str = "network-plugin";

/// The fanout every network agent listens on.
pub const AGENT_FANOUT: &str = "network-agents";

/// Requests of an agent to the network service (calls).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginRequest {
    /// The model as host `host` needs it ([`HostState`]); registers the agent and its
    /// tunnel address. `dhcp`: the host serves DHCP (it gets every network with DHCP);
    /// `l3`: the host can hold routers (it gets those scheduled to it).
    SyncHost {
        version: String,
        host: String,
        dhcp: bool,
        #[serde(default)]
        l3: bool,
        #[serde(default)]
        tunnel_ip: Option<String>,
        /// How the agent's previous sync went.
        #[serde(default)]
        report: AgentReport,
    },
    /// The DHCP port of `network_id` served from `host`, made when missing ([`PortState`]).
    DhcpPort {
        version: String,
        host: String,
        network_id: String,
    },
    /// Statuses of floating IPs `(id, status)` of routers `host` holds, as its agent found
    /// them after configuring their translation; answers `null`.
    FloatingIpStatus {
        version: String,
        host: String,
        #[serde(default)]
        statuses: Vec<(String, String)>,
    },
    /// Ports the agent found plugged (`up`) or lost (`down`) on its host; answers `null`.
    PortStatus {
        version: String,
        host: String,
        #[serde(default)]
        up: Vec<String>,
        #[serde(default)]
        down: Vec<String>,
    },
}

/// What the service tells every agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentNotice {
    /// Some network, subnet, port or security group changed: sync again.
    Changed { version: String },
}

envelope_parts!(PluginRequest);
envelope_parts!(AgentNotice);

impl AgentNotice {
    pub fn changed() -> Self {
        AgentNotice::Changed {
            version: CONTRACT_VERSION.into(),
        }
    }
}

/// An agent's account of its host, sent with each sync (shown in the agents API).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// What failed in the last sync, if anything.
    #[serde(default)]
    pub last_error: Option<String>,
    /// How often a dnsmasq found dead was started again, and the latest of those restarts
    /// (`<time> network <id>`, newest last).
    #[serde(default)]
    pub dnsmasq_restarts: u64,
    #[serde(default)]
    pub restarted: Vec<String>,
    /// What the host serves: DHCP networks, their subnets and ports, routers.
    #[serde(default)]
    pub dhcp_networks: u64,
    #[serde(default)]
    pub dhcp_subnets: u64,
    #[serde(default)]
    pub dhcp_ports: u64,
    #[serde(default)]
    pub routers: u64,
    /// The agent's `physical_interface_mappings`.
    #[serde(default)]
    pub interface_mappings: std::collections::BTreeMap<String, String>,
}

/// The part of the model one host needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub networks: Vec<NetworkState>,
    /// Ports bound to the host, and every port of the networks it serves DHCP for.
    pub ports: Vec<PortState>,
    /// Tunnel addresses of the other hosts' agents (VXLAN flooding).
    #[serde(default)]
    pub peers: Vec<String>,
    /// The security groups of the host's ports and the groups their rules name.
    #[serde(default)]
    pub security_groups: Vec<SecurityGroupState>,
    /// The routers scheduled to this host (their networks are in `networks`).
    #[serde(default)]
    pub routers: Vec<RouterState>,
}

/// A router as the host holding it makes it: a namespace with a port on each of its
/// subnets and one on the external network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterState {
    pub id: String,
    pub admin_state_up: bool,
    /// The port on the external network, with the network's SNAT setting.
    #[serde(default)]
    pub gateway: Option<PortState>,
    /// Source-translate traffic leaving through the gateway to the gateway's address.
    #[serde(default)]
    pub enable_snat: bool,
    /// Ports on the router's subnets (`network:router_interface`).
    #[serde(default)]
    pub interfaces: Vec<PortState>,
    /// Static routes `(destination, nexthop)`.
    #[serde(default)]
    pub routes: Vec<(String, String)>,
    /// Floating addresses the router translates: `(floating_ip, fixed_ip)`.
    #[serde(default)]
    pub floating_ips: Vec<(String, String)>,
    /// The id and status of each of `floating_ips`, in the same order: the agent reports
    /// those it made work (`ACTIVE`) or could not (`ERROR`), as Neutron's L3 agent.
    #[serde(default)]
    pub floating_ip_status: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupState {
    pub id: String,
    pub rules: Vec<RuleState>,
    /// Fixed IPs of every port in the group (what remote-group rules match).
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// A name (`tcp`, `icmp`...), a number, or none for any.
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<i64>,
    #[serde(default)]
    pub port_range_max: Option<i64>,
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    #[serde(default)]
    pub remote_group_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkState {
    pub id: String,
    /// `vxlan`, `vlan`, `flat`, `local`.
    pub network_type: String,
    #[serde(default)]
    pub segmentation_id: Option<i64>,
    #[serde(default)]
    pub physical_network: Option<String>,
    pub mtu: i64,
    pub admin_state_up: bool,
    pub subnets: Vec<SubnetState>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubnetState {
    pub id: String,
    pub cidr: String,
    pub ip_version: i64,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
    /// `(destination, nexthop)`.
    #[serde(default)]
    pub host_routes: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortState {
    pub id: String,
    pub network_id: String,
    pub mac_address: String,
    /// `(subnet_id, ip_address)`.
    pub fixed_ips: Vec<(String, String)>,
    pub device_owner: String,
    #[serde(default)]
    pub device_id: String,
    /// `binding:host_id`.
    #[serde(default)]
    pub host: String,
    pub admin_state_up: bool,
    pub status: String,
    /// `dns_name`, else empty (the DHCP name is then `host-<ip>`).
    #[serde(default)]
    pub dns_name: String,
    #[serde(default)]
    pub project_id: String,
    /// Security group ids.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Off: no filtering and no anti-spoofing for this port.
    #[serde(default)]
    pub port_security_enabled: bool,
    /// `(ip or cidr, mac)` the port may also send from.
    #[serde(default)]
    pub allowed_address_pairs: Vec<(String, String)>,
}

impl PortState {
    /// Whether this is a network's DHCP port.
    pub fn is_dhcp(&self) -> bool {
        self.device_owner == "network:dhcp"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r = PluginRequest::PortStatus {
            version: CONTRACT_VERSION.into(),
            host: "h".into(),
            up: vec!["p".into()],
            down: vec![],
        };
        let (m, p) = r.to_parts();
        assert_eq!(m, "port_status");
        assert_eq!(PluginRequest::parse(&m, &p).unwrap(), r);
        let (m, p) = AgentNotice::changed().to_parts();
        assert_eq!(AgentNotice::parse(&m, &p).unwrap(), AgentNotice::changed());
    }
}
