//! The service side of the network agents' bus contract (`ferro_api_types::network`):
//! answers their syncs with the part of the model their host needs, makes DHCP ports,
//! records port status, keeps the agents' heartbeats, and tells every agent when the
//! model changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferro_api_types::network::{
    AGENT_FANOUT, AgentNotice, AgentReport, HostState, NetworkState, PLUGIN_TOPIC, PluginRequest,
    PortState, RouterState, RuleState, SecurityGroupState, SubnetState,
};
use ferro_bus::{Bus, Envelope};
use ferro_common::RequestContext;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::db::{self, Table};
use crate::fault::{NetError, Result};
use crate::manager::{Doc, Networking};
use crate::model::{Body, b, s};

/// A network agent as its last sync described it.
#[derive(Clone, Debug)]
pub struct AgentRecord {
    pub host: String,
    pub dhcp: bool,
    /// The host holds routers (an L3 agent).
    pub l3: bool,
    pub tunnel_ip: Option<String>,
    /// The agent's account of its previous sync.
    pub report: AgentReport,
    /// Microseconds since the epoch.
    pub started_at: i64,
    pub last_seen: i64,
}

/// An agent whose last sync is older than this is not alive (Neutron's `agent_down_time`).
pub const AGENT_DOWN_TIME: Duration = Duration::from_secs(75);

/// How long the notifier waits for more changes before it tells the agents.
const COALESCE: Duration = Duration::from_millis(20);

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// `(a, b)` of each object in the array `field` of `d` (routes, fixed IPs, address pairs).
fn pairs(d: &Doc, field: &str, a: &str, b: &str) -> Vec<(String, String)> {
    let f = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    d.get(field)
        .and_then(Value::as_array)
        .map(|v| v.iter().map(|o| (f(o, a), f(o, b))).collect())
        .unwrap_or_default()
}

fn subnet_state(d: &Doc) -> SubnetState {
    SubnetState {
        id: s(d, "id").into(),
        cidr: s(d, "cidr").into(),
        ip_version: d.get("ip_version").and_then(Value::as_i64).unwrap_or(4),
        gateway_ip: d
            .get("gateway_ip")
            .and_then(Value::as_str)
            .map(String::from),
        enable_dhcp: b(d, "enable_dhcp"),
        dns_nameservers: strings(d.get("dns_nameservers")),
        host_routes: pairs(d, "host_routes", "destination", "nexthop"),
    }
}

/// The agent's view of a port document.
pub fn port_state(d: &Doc) -> PortState {
    PortState {
        id: s(d, "id").into(),
        network_id: s(d, "network_id").into(),
        mac_address: s(d, "mac_address").into(),
        fixed_ips: pairs(d, "fixed_ips", "subnet_id", "ip_address"),
        device_owner: s(d, "device_owner").into(),
        device_id: s(d, "device_id").into(),
        host: s(d, "binding:host_id").into(),
        admin_state_up: d
            .get("admin_state_up")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        status: s(d, "status").into(),
        dns_name: s(d, "dns_name").into(),
        project_id: s(d, "project_id").into(),
        security_groups: strings(d.get("security_groups")),
        port_security_enabled: d
            .get("port_security_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        allowed_address_pairs: pairs(d, "allowed_address_pairs", "ip_address", "mac_address"),
    }
}

/// The `device_id` of the DHCP port `host` serves `network_id` from (Neutron's
/// `dhcp<uuid5(host)>-<network>`).
fn dhcp_device_id(host: &str, network_id: &str) -> String {
    let h = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, host.as_bytes());
    format!("dhcp{h}-{network_id}")
}

/// The privileges the service acts with for an agent (and for the topologies it makes).
pub(crate) fn service_context(project_id: &str) -> RequestContext {
    RequestContext {
        request_id: format!("req-{}", uuid::Uuid::new_v4()),
        user_id: "network-agent".into(),
        project_id: Some(project_id.to_string()),
        roles: vec![("admin".into(), "admin".into())],
        ..RequestContext::default()
    }
}

impl Networking {
    /// Connects the service to the bus its agents use (once).
    pub fn connect_bus(&self, bus: Arc<dyn Bus>) {
        let _ = self.bus.set(bus);
    }

    /// Marks the model changed: the agents are told shortly (changes coalesce).
    pub fn changed(&self) {
        self.dirty.notify_one();
    }

    /// The network agents seen, by host.
    pub fn agent_records(&self) -> Vec<AgentRecord> {
        self.agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn heard_from(
        &self,
        host: &str,
        dhcp: bool,
        l3: bool,
        tunnel_ip: Option<String>,
        report: AgentReport,
    ) {
        let now = ferro_common::time::now_micros();
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let r = agents
            .entry(host.to_string())
            .or_insert_with(|| AgentRecord {
                host: host.to_string(),
                dhcp,
                l3,
                tunnel_ip: None,
                report: AgentReport::default(),
                started_at: now,
                last_seen: now,
            });
        r.dhcp = dhcp;
        r.l3 = l3;
        r.tunnel_ip = tunnel_ip;
        r.report = report;
        r.last_seen = now;
    }

    /// The host of the live L3 agents that holds `router_id` (each router on one host,
    /// spread by a hash of its id; `None`: no L3 agent is alive).
    pub fn router_host(&self, router_id: &str) -> Option<String> {
        let now = ferro_common::time::now_micros();
        let mut hosts: Vec<String> = self
            .agent_records()
            .into_iter()
            .filter(|a| a.l3 && now - a.last_seen < AGENT_DOWN_TIME.as_micros() as i64)
            .map(|a| a.host)
            .collect();
        hosts.sort();
        // FNV-1a: stable across processes and releases, unlike the std hasher.
        let h = router_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let n = hosts.len() as u64;
        (n > 0).then(|| hosts.swap_remove((h % n) as usize))
    }

    /// The model as `host` needs it: networks with a port bound there (and, when it serves
    /// DHCP, every network with a DHCP subnet; when it holds routers, their networks),
    /// their subnets and ports, and the routers it holds.
    pub async fn host_state(&self, host: &str, dhcp: bool) -> Result<HostState> {
        let mut conn = &self.db;
        let nets = db::list(&mut conn, Table::Networks, None).await?;
        let subnets = db::list(&mut conn, Table::Subnets, None).await?;
        let ports = db::list(&mut conn, Table::Ports, None).await?;
        let mut by_net: BTreeMap<&str, Vec<&Doc>> = BTreeMap::new();
        for sn in &subnets {
            by_net.entry(s(sn, "network_id")).or_default().push(sn);
        }
        let routers = self.routers_for(host, &ports).await?;
        let mut wanted: BTreeSet<String> = ports
            .iter()
            .filter(|p| s(p, "binding:host_id") == host)
            .map(|p| s(p, "network_id").to_string())
            .collect();
        for r in &routers {
            wanted.extend(r.gateway.iter().map(|p| p.network_id.clone()));
            wanted.extend(r.interfaces.iter().map(|p| p.network_id.clone()));
        }
        if dhcp {
            for (net, sns) in &by_net {
                if sns.iter().any(|sn| b(sn, "enable_dhcp")) {
                    wanted.insert(net.to_string());
                }
            }
        }
        let networks = nets
            .iter()
            .filter(|n| wanted.contains(s(n, "id")))
            .map(|n| NetworkState {
                id: s(n, "id").into(),
                network_type: s(n, "provider:network_type").into(),
                segmentation_id: n.get("provider:segmentation_id").and_then(Value::as_i64),
                physical_network: n
                    .get("provider:physical_network")
                    .and_then(Value::as_str)
                    .map(String::from),
                mtu: n.get("mtu").and_then(Value::as_i64).unwrap_or(1500),
                admin_state_up: n
                    .get("admin_state_up")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                subnets: by_net
                    .get(s(n, "id"))
                    .map(|v| v.iter().map(|d| subnet_state(d)).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let dhcp_nets: BTreeSet<&str> = if dhcp {
            wanted.iter().map(String::as_str).collect()
        } else {
            BTreeSet::new()
        };
        let all_ports = &ports;
        let ports: Vec<PortState> = ports
            .iter()
            .filter(|p| s(p, "binding:host_id") == host || dhcp_nets.contains(s(p, "network_id")))
            .map(port_state)
            .collect();
        let security_groups = self.groups_for(host, &ports, all_ports).await?;
        let peers = self
            .agent_records()
            .into_iter()
            .filter(|a| a.host != host)
            .filter_map(|a| a.tunnel_ip)
            .collect();
        Ok(HostState {
            networks,
            ports,
            peers,
            security_groups,
            routers,
        })
    }

    /// The routers scheduled to `host`, with their ports and floating IPs.
    async fn routers_for(&self, host: &str, ports: &[Doc]) -> Result<Vec<RouterState>> {
        let routers = db::list(&mut &self.db, Table::Routers, None).await?;
        let mine: Vec<&Doc> = routers
            .iter()
            .filter(|r| self.router_host(s(r, "id")).as_deref() == Some(host))
            .collect();
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let fips = db::list(&mut &self.db, Table::FloatingIps, None).await?;
        let translated = |router: &str| {
            let router = router.to_string();
            fips.iter().filter(move |f| {
                s(f, "router_id") == router && !s(f, "fixed_ip_address").is_empty()
            })
        };
        Ok(mine
            .into_iter()
            .map(|r| {
                let id = s(r, "id");
                let owned = |owner: &str| {
                    ports
                        .iter()
                        .filter(|p| s(p, "device_id") == id && s(p, "device_owner") == owner)
                        .map(port_state)
                        .collect::<Vec<_>>()
                };
                let gw = r.get("external_gateway_info").filter(|v| v.is_object());
                RouterState {
                    id: id.into(),
                    admin_state_up: b(r, "admin_state_up"),
                    gateway: owned(crate::l3::ROUTER_GATEWAY).into_iter().next(),
                    enable_snat: gw
                        .and_then(|g| g.get("enable_snat"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    interfaces: owned(crate::l3::ROUTER_INTERFACE),
                    routes: pairs(r, "routes", "destination", "nexthop"),
                    floating_ips: translated(id)
                        .map(|f| {
                            (
                                s(f, "floating_ip_address").to_string(),
                                s(f, "fixed_ip_address").to_string(),
                            )
                        })
                        .collect(),
                    floating_ip_status: translated(id)
                        .map(|f| (s(f, "id").to_string(), s(f, "status").to_string()))
                        .collect(),
                }
            })
            .collect())
    }

    /// The groups of the ports bound to `host`, with their rules, and the groups those rules
    /// name as remote, each with the fixed IPs of its member ports.
    async fn groups_for(
        &self,
        host: &str,
        ports: &[PortState],
        all_ports: &[Doc],
    ) -> Result<Vec<SecurityGroupState>> {
        let mut wanted: BTreeSet<String> = ports
            .iter()
            .filter(|p| p.host == host)
            .flat_map(|p| p.security_groups.iter().cloned())
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let rules = db::list(&mut &self.db, Table::SecurityGroupRules, None).await?;
        let remote: BTreeSet<String> = rules
            .iter()
            .filter(|r| wanted.contains(s(r, "security_group_id")))
            .filter_map(|r| r.get("remote_group_id").and_then(Value::as_str))
            .map(String::from)
            .collect();
        wanted.extend(remote);
        Ok(wanted
            .iter()
            .map(|g| SecurityGroupState {
                id: g.clone(),
                rules: rules
                    .iter()
                    .filter(|r| s(r, "security_group_id") == g)
                    .map(|r| {
                        let opt = |k: &str| r.get(k).and_then(Value::as_str).map(String::from);
                        RuleState {
                            direction: s(r, "direction").into(),
                            ethertype: s(r, "ethertype").into(),
                            protocol: r.get("protocol").and_then(|v| match v {
                                Value::String(x) => Some(x.clone()),
                                Value::Number(n) => Some(n.to_string()),
                                _ => None,
                            }),
                            port_range_min: r.get("port_range_min").and_then(Value::as_i64),
                            port_range_max: r.get("port_range_max").and_then(Value::as_i64),
                            remote_ip_prefix: opt("remote_ip_prefix"),
                            remote_group_id: opt("remote_group_id"),
                        }
                    })
                    .collect(),
                members: all_ports
                    .iter()
                    .filter(|p| strings(p.get("security_groups")).contains(g))
                    .flat_map(|p| port_state(p).fixed_ips.into_iter().map(|(_, ip)| ip))
                    .collect(),
            })
            .collect())
    }

    /// The DHCP port `host` serves `network_id` from, made (with an address on each DHCP
    /// subnet) when missing.
    pub async fn dhcp_port(&self, host: &str, network_id: &str) -> Result<PortState> {
        let device_id = dhcp_device_id(host, network_id);
        let existing = db::list(
            &mut &self.db,
            Table::Ports,
            Some(("network_id", network_id)),
        )
        .await?
        .into_iter()
        .find(|p| s(p, "device_id") == device_id);
        let net = db::get(&mut &self.db, Table::Networks, network_id)
            .await?
            .ok_or_else(|| crate::manager::network_not_found(network_id))?;
        let dhcp_subnets: Vec<String> = db::list(
            &mut &self.db,
            Table::Subnets,
            Some(("network_id", network_id)),
        )
        .await?
        .iter()
        .filter(|sn| b(sn, "enable_dhcp"))
        .map(|sn| s(sn, "id").to_string())
        .collect();
        let project = s(&net, "project_id").to_string();
        if let Some(p) = existing {
            // A DHCP subnet added since: the port gets an address on it too (Neutron's
            // DHCP agent updates its port the same way).
            let have = port_state(&p);
            let missing: Vec<&String> = dhcp_subnets
                .iter()
                .filter(|sn| !have.fixed_ips.iter().any(|(s, _)| s == *sn))
                .collect();
            if missing.is_empty() {
                return Ok(have);
            }
            let mut ips: Vec<Value> = have
                .fixed_ips
                .iter()
                .map(|(sn, ip)| json!({"subnet_id": sn, "ip_address": ip}))
                .collect();
            ips.extend(missing.iter().map(|sn| json!({"subnet_id": sn})));
            let body = Body::from_request(&json!({"port": {"fixed_ips": ips}}), "port")?;
            let updated = self
                .port_update(&service_context(&project), &have.id, &body, None)
                .await?;
            return port_of(&updated);
        }
        let subnets: Vec<Value> = dhcp_subnets
            .iter()
            .map(|sn| json!({"subnet_id": sn}))
            .collect();
        let body = json!({"port": {
            "network_id": network_id,
            "name": "",
            "device_owner": "network:dhcp",
            "device_id": device_id,
            "binding:host_id": host,
            "fixed_ips": subnets,
            "project_id": project,
        }});
        let body = Body::from_request(&body, "port")?;
        let made = self.port_create(&service_context(&project), &body).await?;
        port_of(&made)
    }

    /// Records the statuses `host`'s agent found for floating IPs `(id, status)`; only
    /// those still translated by a router `host` holds change.
    pub async fn floating_ip_status(
        &self,
        host: &str,
        statuses: &[(String, String)],
    ) -> Result<()> {
        for (id, status) in statuses {
            if !matches!(status.as_str(), "ACTIVE" | "DOWN" | "ERROR") {
                continue;
            }
            retrying!({
                let mut tx = self.begin().await?;
                let Some(mut doc) = db::get(&mut tx, Table::FloatingIps, id).await? else {
                    return Ok(());
                };
                let router = s(&doc, "router_id");
                if router.is_empty()
                    || self.router_host(router).as_deref() != Some(host)
                    || s(&doc, "status") == status
                {
                    return Ok(());
                }
                write_status(&mut tx, Table::FloatingIps, &mut doc, status).await?;
                tx.commit().await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Records that `host` found ports `up` plugged and `down` gone: their status becomes
    /// `ACTIVE` or `DOWN` (only ports bound to that host).
    pub async fn port_status(&self, host: &str, up: &[String], down: &[String]) -> Result<()> {
        let mut changed = false;
        for (ids, status) in [(up, "ACTIVE"), (down, "DOWN")] {
            for id in ids {
                changed |= retrying!({
                    let mut tx = self.begin().await?;
                    let Some(mut doc) = db::get(&mut tx, Table::Ports, id).await? else {
                        return Ok(false);
                    };
                    if s(&doc, "binding:host_id") != host
                        && !s(&doc, "device_owner").starts_with("network:")
                    {
                        return Ok(false);
                    }
                    let old = s(&doc, "status").to_string();
                    if old == status {
                        return Ok(false);
                    }
                    write_status(&mut tx, Table::Ports, &mut doc, status).await?;
                    tx.commit().await?;
                    self.port_status_changed(&doc, &old, status);
                    Ok(true)
                })
                .await?;
            }
        }
        if changed {
            self.changed();
        }
        Ok(())
    }

    async fn serve_agent(&self, req: PluginRequest) -> Result<Value> {
        match req {
            PluginRequest::SyncHost {
                host,
                dhcp,
                l3,
                tunnel_ip,
                report,
                ..
            } => {
                self.heard_from(&host, dhcp, l3, tunnel_ip, report);
                json_of(&self.host_state(&host, dhcp).await?)
            }
            PluginRequest::DhcpPort {
                host, network_id, ..
            } => json_of(&self.dhcp_port(&host, &network_id).await?),
            PluginRequest::FloatingIpStatus { host, statuses, .. } => {
                self.floating_ip_status(&host, &statuses).await?;
                Ok(Value::Null)
            }
            PluginRequest::PortStatus { host, up, down, .. } => {
                self.port_status(&host, &up, &down).await?;
                Ok(Value::Null)
            }
        }
    }
}

/// The agent's view of a `{"port": {...}}` answer.
fn port_of(answer: &Value) -> Result<PortState> {
    answer
        .get("port")
        .and_then(Value::as_object)
        .map(port_state)
        .ok_or_else(|| NetError::internal("the port call answered no port"))
}

fn json_of(v: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(v).map_err(NetError::internal)
}

/// The service's bus workers: the agents' request queue and the change notifier. None
/// when no bus is connected.
pub async fn workers(net: Arc<Networking>) -> Result<Vec<JoinHandle<()>>> {
    let Some(bus) = net.bus.get().cloned() else {
        return Ok(Vec::new());
    };
    let mut sub = bus
        .subscribe(PLUGIN_TOPIC)
        .await
        .map_err(|e| NetError::internal(format!("subscribe to {PLUGIN_TOPIC}: {e}")))?;
    let n = net.clone();
    let consumer = tokio::spawn(async move {
        while let Some(delivery) = sub.next().await {
            let env = delivery.envelope().clone();
            let n = n.clone();
            tokio::spawn(async move {
                let answer = match PluginRequest::parse(&env.method, &env.payload) {
                    Ok(req) => n.serve_agent(req).await.map_err(|e| e.message),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = &answer {
                    tracing::warn!(method = %env.method, error = %e, "network agent request failed");
                }
                let done = if delivery.expects_reply() {
                    delivery.reply(answer).await
                } else {
                    delivery.ack().await
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, "ack failed");
                }
            });
        }
    });
    let n = net;
    let notifier = tokio::spawn(async move {
        loop {
            n.dirty.notified().await;
            tokio::time::sleep(COALESCE).await;
            let (method, payload) = AgentNotice::changed().to_parts();
            if let Err(e) = bus
                .fanout(AGENT_FANOUT, Envelope::new(AGENT_FANOUT, method, payload))
                .await
            {
                tracing::warn!(error = %e, "telling the network agents failed");
            }
        }
    });
    Ok(vec![consumer, notifier])
}

/// Neutron's agent timestamps: `2026-11-24 10:32:45`.
fn agent_time(micros: i64) -> String {
    ferro_common::time::iso8601_seconds(micros)
        .trim_end_matches('Z')
        .replace('T', " ")
}

impl Networking {
    /// The agents as `GET /v2.0/agents` shows them: on each host a Linux bridge agent and,
    /// where it serves DHCP, a DHCP agent and a metadata agent (the proxy lives in the DHCP
    /// namespace), all one process.
    pub fn agent_docs(&self) -> Vec<serde_json::Map<String, Value>> {
        let now = ferro_common::time::now_micros();
        let mut out = Vec::new();
        for a in self.agent_records() {
            let alive = now - a.last_seen < AGENT_DOWN_TIME.as_micros() as i64;
            let mut kinds = vec![("Linux bridge agent", "neutron-linuxbridge-agent", "N/A")];
            if a.dhcp {
                kinds.push(("DHCP agent", "neutron-dhcp-agent", "dhcp_agent"));
                kinds.push(("Metadata agent", "neutron-metadata-agent", "N/A"));
            }
            if a.l3 {
                kinds.push(("L3 agent", "neutron-l3-agent", "l3_agent"));
            }
            for (kind, binary, topic) in kinds {
                let id = uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_OID,
                    format!("{}/{kind}", a.host).as_bytes(),
                );
                let r = &a.report;
                let mut configurations = match kind {
                    "Linux bridge agent" => json!({
                        "tunneling_ip": a.tunnel_ip,
                        "tunnel_types": if a.tunnel_ip.is_some() { json!(["vxlan"]) } else { json!([]) },
                        "interface_mappings": r.interface_mappings,
                    }),
                    "DHCP agent" => json!({
                        "dhcp_driver": "dnsmasq",
                        "networks": r.dhcp_networks,
                        "subnets": r.dhcp_subnets,
                        "ports": r.dhcp_ports,
                        "dnsmasq_restarts": r.dnsmasq_restarts,
                        "dnsmasq_restarted": r.restarted,
                    }),
                    "L3 agent" => json!({"agent_mode": "legacy",
                        "interface_driver": "linuxbridge", "routers": r.routers}),
                    _ => json!({}),
                };
                if let Some(e) = &r.last_error {
                    configurations["last_sync_error"] = json!(e);
                }
                let doc = json!({
                    "id": id.to_string(),
                    "agent_type": kind,
                    "binary": binary,
                    "topic": topic,
                    "host": a.host,
                    "admin_state_up": true,
                    "alive": alive,
                    "availability_zone": if matches!(kind, "DHCP agent" | "L3 agent") { json!("nova") } else { Value::Null },
                    "heartbeat_timestamp": agent_time(a.last_seen),
                    "created_at": agent_time(a.started_at),
                    "started_at": agent_time(a.started_at),
                    "description": Value::Null,
                    "configurations": configurations,
                    "resources_synced": Value::Null,
                    "resource_versions": {},
                });
                if let Value::Object(m) = doc {
                    out.push(m);
                }
            }
        }
        out
    }
}

/// Writes `status` into `doc` of `table` as a new revision, in `tx`.
async fn write_status(
    tx: &mut impl ferro_db::Executor,
    table: Table,
    doc: &mut Doc,
    status: &str,
) -> Result<()> {
    let rev = doc
        .get("revision_number")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    doc.insert("status".into(), json!(status));
    crate::model::touch(doc);
    db::replace(tx, table, doc, rev).await?;
    Ok(())
}
