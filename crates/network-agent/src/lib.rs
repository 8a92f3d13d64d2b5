//! The network agent of one host (Neutron's Linux bridge, DHCP, L3 and metadata agents in
//! one): makes the host's bridges, VXLAN devices, DHCP namespaces with their dnsmasq,
//! metadata proxies and router namespaces match the part of the model the network service
//! sends it, and reports which ports it found plugged.
//!
//! It is a reconciler: every sync computes what the host should have from the whole state
//! and repairs the difference — after a change notice, periodically, and at start — so a
//! lost message, a dead dnsmasq or an agent restart heal on the next pass. It removes only
//! what carries its prefix; taps belong to the hypervisor driver that plugged them.

mod dhcp;
pub mod firewall;
mod metadata;
pub mod router;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferro_api_types::compute::CONTRACT_VERSION;
use ferro_api_types::network::{
    AGENT_FANOUT, AgentReport, HostState, NetworkState, PLUGIN_TOPIC, PluginRequest, PortState,
};
use ferro_bus::{Bus, Envelope};
use ferro_host::{HostError, Names, link};
use tokio::task::JoinHandle;

/// Settings of one host's agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The host name ports are bound to (`binding:host_id`), as the compute agent's.
    pub host: String,
    pub names: Names,
    /// Serve DHCP (and the metadata proxy) for every network with a DHCP subnet.
    pub dhcp: bool,
    /// Hold routers (the service schedules each router to one live L3 host).
    pub l3: bool,
    /// This host's VXLAN endpoint address; VXLAN networks stay host-local without it.
    pub tunnel_ip: Option<String>,
    /// The host interface each physical network is on (`physical_interface_mappings`):
    /// a `flat` network's bridge holds the interface, a `vlan` network's its VLAN device.
    pub physical_interfaces: BTreeMap<String, String>,
    /// dnsmasq's files live under `<state_dir>/dhcp/<network>`.
    pub state_dir: PathBuf,
    /// Sync this often even without a notice.
    pub sync_interval: Duration,
    /// Where the metadata proxy forwards to, and the secret it signs instance ids with;
    /// `None`: no metadata proxy.
    pub metadata: Option<MetadataTarget>,
    /// DHCP lease time (Neutron's `dhcp_lease_duration`).
    pub lease_secs: u32,
    /// DNS domain of the DHCP names (Neutron's `dns_domain`).
    pub dns_domain: String,
}

/// The compute metadata API the proxy forwards to.
#[derive(Clone, Debug)]
pub struct MetadataTarget {
    /// `http://host:8775`.
    pub url: String,
    pub shared_secret: String,
}

impl AgentConfig {
    pub fn new(host: &str, names: Names, state_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            host: host.to_string(),
            names,
            dhcp: true,
            l3: true,
            tunnel_ip: None,
            physical_interfaces: BTreeMap::new(),
            state_dir: state_dir.into(),
            sync_interval: Duration::from_secs(10),
            metadata: None,
            lease_secs: 86400,
            dns_domain: "openstacklocal".into(),
        }
    }
}

/// Why a sync could not finish.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("network service: {0}")]
    Service(String),
    #[error(transparent)]
    Host(#[from] HostError),
}

type Result<T> = std::result::Result<T, AgentError>;

/// One host's network agent.
pub struct NetworkAgent {
    pub config: AgentConfig,
    bus: Arc<dyn Bus>,
    wake: tokio::sync::Notify,
    /// The metadata proxy of each DHCP namespace, by network.
    proxies: Mutex<BTreeMap<String, metadata::Proxy>>,
    /// Last sync's outcome, for status reports (`None`: fine).
    last_error: Mutex<Option<String>>,
    /// The security group table as last applied.
    firewall: Mutex<Option<String>>,
    /// What each guarded port's rules accepted when the table was last written.
    allowed: Mutex<BTreeMap<String, firewall::Allowed>>,
    /// Each router's NAT table as last applied, by router (also: routers set up).
    nat: Mutex<BTreeMap<String, String>>,
    /// What the next sync tells the service (counts, dnsmasq restarts).
    report: Mutex<AgentReport>,
    /// Networks whose dnsmasq this agent has started (a later start is a restart).
    dhcp_served: Mutex<BTreeSet<String>>,
}

/// How long a call to the network service may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl NetworkAgent {
    pub fn new(config: AgentConfig, bus: Arc<dyn Bus>) -> Arc<Self> {
        Arc::new(NetworkAgent {
            config,
            bus,
            wake: tokio::sync::Notify::new(),
            proxies: Mutex::new(BTreeMap::new()),
            last_error: Mutex::new(None),
            firewall: Mutex::new(None),
            allowed: Mutex::new(BTreeMap::new()),
            nat: Mutex::new(BTreeMap::new()),
            report: Mutex::new(AgentReport::default()),
            dhcp_served: Mutex::new(BTreeSet::new()),
        })
    }

    /// The error of the last sync, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn call(&self, req: PluginRequest) -> Result<serde_json::Value> {
        let (method, payload) = req.to_parts();
        self.bus
            .call(
                PLUGIN_TOPIC,
                Envelope::new(PLUGIN_TOPIC, method, payload),
                CALL_TIMEOUT,
            )
            .await
            .map_err(|e| AgentError::Service(e.to_string()))
    }

    /// The report the next sync carries: the counts and restarts so far, the last error.
    fn report_now(&self) -> AgentReport {
        let mut r = self
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        r.last_error = self.last_error();
        r.interface_mappings = self.config.physical_interfaces.clone();
        r
    }

    /// Records that the dnsmasq of `network_id` had died and was started again.
    pub(crate) fn note_dnsmasq_restart(&self, network_id: &str) {
        tracing::warn!(network = %network_id, "dnsmasq had died; restarted");
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        r.dnsmasq_restarts += 1;
        let when = ferro_common::time::iso8601_seconds(ferro_common::time::now_micros());
        r.restarted.push(format!("{when} network {network_id}"));
        let extra = r.restarted.len().saturating_sub(5);
        r.restarted.drain(..extra);
    }

    async fn host_state(&self) -> Result<HostState> {
        let v = self
            .call(PluginRequest::SyncHost {
                version: CONTRACT_VERSION.into(),
                host: self.config.host.clone(),
                dhcp: self.config.dhcp,
                l3: self.config.l3,
                tunnel_ip: self.config.tunnel_ip.clone(),
                report: self.report_now(),
            })
            .await?;
        serde_json::from_value(v).map_err(|e| AgentError::Service(format!("sync_host: {e}")))
    }

    async fn dhcp_port(&self, network_id: &str) -> Result<PortState> {
        let v = self
            .call(PluginRequest::DhcpPort {
                version: CONTRACT_VERSION.into(),
                host: self.config.host.clone(),
                network_id: network_id.to_string(),
            })
            .await?;
        serde_json::from_value(v).map_err(|e| AgentError::Service(format!("dhcp_port: {e}")))
    }

    /// One pass: fetch the host's state, make the host match it, report port status.
    pub async fn sync(&self) -> Result<()> {
        let state = self.host_state().await?;
        let mut up = Vec::new();
        let mut down = Vec::new();
        let mut failures = Vec::new();
        let mut guarded = Vec::new();
        for net in &state.networks {
            if let Err(e) = self.plug_network(net, &state.peers).await {
                failures.push(format!("network {}: {e}", net.id));
            }
        }
        for p in state.ports.iter().filter(|p| self.plugs_here(p)) {
            let tap = self.config.names.tap(&p.id);
            let bridge = self.config.names.bridge(&p.network_id);
            // The port's NIC end is a tap (a guest's) or a veth (a namespace standing in
            // for one, as the dataplane tests plug); a device of another kind with its
            // name (a bridge) is someone else's: the driver's plug failed on it, and it is
            // left alone. One port that cannot be put in its bridge fails only itself.
            let plugged = match link::get(&tap).await? {
                Some(l) if matches!(l.kind(), "tun" | "veth") => {
                    let enslaved = if l.master.as_deref() == Some(bridge.as_str()) {
                        Ok(())
                    } else {
                        link::set_master(&tap, &bridge).await
                    };
                    match enslaved {
                        Ok(()) => true,
                        Err(e) => {
                            failures.push(format!("port {}: {e}", p.id));
                            false
                        }
                    }
                }
                _ => false,
            };
            if plugged && p.port_security_enabled {
                guarded.push(p);
            }
            match (plugged, p.status.as_str()) {
                (true, s) if s != "ACTIVE" => up.push(p.id.clone()),
                (false, "ACTIVE") => down.push(p.id.clone()),
                _ => {}
            }
        }
        if self.config.dhcp {
            for net in state.networks.iter().filter(|n| dhcp::serves(n)) {
                match self.serve_dhcp(net, &state).await {
                    Ok(Some(port)) if port.status != "ACTIVE" => up.push(port.id),
                    Ok(_) => {}
                    Err(e) => failures.push(format!("DHCP of network {}: {e}", net.id)),
                }
            }
        }
        let mut fip_status = Vec::new();
        for r in &state.routers {
            let served = self.serve_router(r, &state).await;
            // IPv6 floating addresses are not translated (no NAT66): never ACTIVE.
            let want = if served.is_ok() { "ACTIVE" } else { "ERROR" };
            fip_status.extend(
                r.floating_ips
                    .iter()
                    .zip(&r.floating_ip_status)
                    .filter(|((f, fixed), (_, now))| {
                        !f.contains(':') && !fixed.contains(':') && now != want
                    })
                    .map(|(_, (id, _))| (id.clone(), want.to_string())),
            );
            match served {
                Ok(plugged) => up.extend(plugged.into_iter().filter(|id| {
                    r.interfaces
                        .iter()
                        .chain(&r.gateway)
                        .any(|p| &p.id == id && p.status != "ACTIVE")
                })),
                Err(e) => failures.push(format!("router {}: {e}", r.id)),
            }
        }
        if let Err(e) = self.apply_firewall(&guarded, &state).await {
            failures.push(format!("security groups: {e}"));
        }
        self.remove_stale(&state).await?;
        self.count(&state);
        if !up.is_empty() || !down.is_empty() {
            self.call(PluginRequest::PortStatus {
                version: CONTRACT_VERSION.into(),
                host: self.config.host.clone(),
                up,
                down,
            })
            .await?;
        }
        if !fip_status.is_empty() {
            self.call(PluginRequest::FloatingIpStatus {
                version: CONTRACT_VERSION.into(),
                host: self.config.host.clone(),
                statuses: fip_status,
            })
            .await?;
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(AgentError::Service(failures.join("; ")))
        }
    }

    /// Counts what the host serves, for the next report.
    fn count(&self, state: &HostState) {
        let dhcp: Vec<&NetworkState> = state
            .networks
            .iter()
            .filter(|n| self.config.dhcp && dhcp::serves(n))
            .collect();
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        r.dhcp_networks = dhcp.len() as u64;
        r.dhcp_subnets = dhcp.iter().map(|n| n.subnets.len() as u64).sum();
        r.dhcp_ports = state
            .ports
            .iter()
            .filter(|p| dhcp.iter().any(|n| n.id == p.network_id))
            .count() as u64;
        r.routers = state.routers.len() as u64;
    }

    /// Ports a hypervisor on this host plugs (the agent only watches their taps).
    fn plugs_here(&self, p: &PortState) -> bool {
        p.host == self.config.host && p.device_owner.starts_with("compute:")
    }

    /// The network's bridge and what carries it off the host: for VXLAN with a tunnel
    /// address a VXLAN device flooding to the other hosts; for a `flat` network the
    /// physical network's host interface itself, for a `vlan` one a VLAN device on it (as
    /// Neutron's Linux bridge agent). Without a mapping the network stays on the host.
    async fn plug_network(&self, net: &NetworkState, peers: &[String]) -> Result<()> {
        let names = &self.config.names;
        let bridge = names.bridge(&net.id);
        link::ensure_bridge(&bridge, Some(net.mtu)).await?;
        let physical = net
            .physical_network
            .as_ref()
            .and_then(|p| self.config.physical_interfaces.get(p));
        match (net.network_type.as_str(), net.segmentation_id, physical) {
            ("vxlan", Some(vni), _) => {
                if let Some(local) = &self.config.tunnel_ip {
                    let vx = names.vxlan(&net.id);
                    link::ensure_vxlan(&vx, vni, local, net.mtu).await?;
                    link::set_master(&vx, &bridge).await?;
                    link::set_flood_peers(&vx, peers).await?;
                }
            }
            ("flat", _, Some(dev)) => {
                link::set_up(dev).await?;
                link::set_master(dev, &bridge).await?;
            }
            ("vlan", Some(vid), Some(dev)) => {
                link::set_up(dev).await?;
                let vl = names.vlan(&net.id);
                link::ensure_vlan(&vl, dev, vid, net.mtu).await?;
                link::set_master(&vl, &bridge).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes this prefix's bridges, VXLAN devices, veth ends, DHCP namespaces and router
    /// namespaces that nothing in the state accounts for.
    async fn remove_stale(&self, state: &HostState) -> Result<()> {
        let n = &self.config.names;
        let nets: BTreeSet<&str> = state.networks.iter().map(|x| x.id.as_str()).collect();
        let dhcp_nets: BTreeSet<&str> = state
            .networks
            .iter()
            .filter(|x| self.config.dhcp && dhcp::serves(x))
            .map(|x| x.id.as_str())
            .collect();
        for ns in ferro_host::netns::list(&format!("{}-qdhcp-", n.prefix())).await? {
            if let Some(net) = n.dhcp_ns_network(&ns)
                && !dhcp_nets.contains(net)
            {
                self.stop_dhcp(net).await?;
            }
        }
        let routers = &state.routers;
        let qrouter = format!("{}-qrouter-", n.prefix());
        for ns in ferro_host::netns::list(&qrouter).await? {
            let id = &ns[qrouter.len()..];
            if !routers.iter().any(|r| r.id == id) {
                self.remove_router(id).await?;
            }
        }
        // Namespace ports: DHCP ports of the networks served, ports of the routers held.
        let ns_ports: Vec<&PortState> = state
            .ports
            .iter()
            .filter(|p| p.is_dhcp() && dhcp_nets.contains(p.network_id.as_str()))
            .chain(
                routers
                    .iter()
                    .flat_map(|r| r.interfaces.iter().chain(&r.gateway)),
            )
            .collect();
        for l in link::list(n.prefix()).await? {
            let stale = match n.kind_of(&l.name) {
                Some('b') => !nets.iter().any(|id| n.matches('b', &l.name, id)),
                Some('x') => !nets.iter().any(|id| n.matches('x', &l.name, id)),
                Some('l') => !nets.iter().any(|id| n.matches('l', &l.name, id)),
                Some('v') => !ns_ports.iter().any(|p| n.matches('v', &l.name, &p.id)),
                _ => false,
            };
            if stale {
                tracing::info!(link = %l.name, "removing a stale link");
                link::delete(&l.name).await?;
            }
        }
        Ok(())
    }

    /// Makes the security group table match `ports` (a no-op when nothing changed).
    async fn apply_firewall(&self, ports: &[&PortState], state: &HostState) -> Result<()> {
        let text = firewall::render(self.config.names.prefix(), ports, &state.security_groups);
        if self
            .firewall
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(&text)
        {
            return Ok(());
        }
        let t = firewall::table(self.config.names.prefix());
        // One transaction: the old table goes and the new one comes, or neither; no
        // guarded port, no table.
        let mut script = format!("table inet {t} {{}}\ndelete table inet {t}\n");
        if !ports.is_empty() {
            script.push_str(&text);
        }
        std::fs::create_dir_all(&self.config.state_dir)
            .map_err(|e| HostError::new(format!("state dir: {e}")))?;
        let path = self.config.state_dir.join("firewall.nft");
        std::fs::write(&path, script)
            .map_err(|e| HostError::new(format!("write {path:?}: {e}")))?;
        ferro_host::cmd::run("nft", &["-f", &path.to_string_lossy()]).await?;
        *self.firewall.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        let allowed = firewall::allowed(ports, &state.security_groups);
        let before = std::mem::replace(
            &mut *self.allowed.lock().unwrap_or_else(|e| e.into_inner()),
            allowed.clone(),
        );
        for r in firewall::revoked(&before, &allowed) {
            forget_connections(&r).await;
        }
        Ok(())
    }

    /// Wakes the sync loop.
    pub fn poke(&self) {
        self.wake.notify_one();
    }
}

/// Deletes the conntrack entries `r` names (`conntrack -D`); none to delete is fine, and
/// a failure is logged: the rules are in place, only connections already made outlive them.
async fn forget_connections(r: &firewall::Revoked) {
    let mut args = vec![
        "-D",
        if r.ingress {
            "--orig-dst"
        } else {
            "--orig-src"
        },
        &r.ip,
    ];
    if r.ip.contains(':') {
        args.extend(["-f", "ipv6"]);
    }
    if let Some(p) = r.protocol.as_deref() {
        args.extend(["-p", p]);
    }
    match ferro_host::cmd::run("conntrack", &args).await {
        Err(e) if !e.what.contains("0 flow entries") => {
            tracing::warn!(ip = %r.ip, error = %e, "conntrack entries of a removed rule not deleted")
        }
        _ => tracing::debug!(?r, "conntrack entries of a removed rule deleted"),
    }
}

/// Removes every host object of scheme `names`: DHCP processes and namespaces, router
/// namespaces, bridges, VXLAN devices, veth ends and taps (tests and `ferrostack network-agent --purge`).
pub async fn purge(
    names: &Names,
    state_dir: &std::path::Path,
) -> std::result::Result<(), HostError> {
    for ns in ferro_host::netns::list(&format!("{}-", names.prefix())).await? {
        if let Some(net) = names.dhcp_ns_network(&ns) {
            ferro_host::dnsmasq::Dnsmasq::new(dhcp::dir(state_dir, net))
                .stop()
                .await?;
        }
        ferro_host::netns::delete(&ns).await?;
    }
    for l in link::list(names.prefix()).await? {
        if names.kind_of(&l.name).is_some() {
            link::delete(&l.name).await?;
        }
    }
    let t = firewall::table(names.prefix());
    match ferro_host::cmd::run("nft", &["delete", "table", "inet", &t]).await {
        Err(e) if !e.what.contains("No such file") && !e.what.contains("not found") => Err(e),
        _ => Ok(()),
    }
}

/// Starts the agent: a sync at once, then after every change notice (coalesced) and every
/// `sync_interval`.
pub async fn start(
    agent: Arc<NetworkAgent>,
) -> std::result::Result<Vec<JoinHandle<()>>, ferro_bus::BusError> {
    let mut notices = agent.bus.subscribe_fanout(AGENT_FANOUT).await?;
    let a = agent.clone();
    let listener = tokio::spawn(async move {
        while let Some(d) = notices.next().await {
            a.poke();
            let _ = d.ack().await;
        }
    });
    let a = agent;
    let syncer = tokio::spawn(async move {
        let mut wait = Duration::from_millis(100);
        loop {
            match a.sync().await {
                Ok(()) => {
                    *a.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    wait = Duration::from_millis(100);
                    let _ = tokio::time::timeout(a.config.sync_interval, a.wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(host = %a.config.host, error = %e, "network sync failed; retrying");
                    *a.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    let _ = tokio::time::timeout(wait, a.wake.notified()).await;
                    wait = (wait * 2).min(a.config.sync_interval);
                }
            }
        }
    });
    Ok(vec![listener, syncer])
}
