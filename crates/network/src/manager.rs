//! The work behind the API: visibility and policy per resource, segment allocation,
//! subnet validation, IPAM and port plumbing, security groups. Every write runs in one
//! transaction; a unique-key race or a deadlock runs the whole transaction again, so an
//! address, a MAC, a segment or a `default` group is never handed out twice.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferro_common::RequestContext;
use ferro_db::{Db, Tx};
use ferro_policy::Enforcer;
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::NetworkConfig;
use crate::db::{self, Table};
use crate::fault::{NetError, Result};
use crate::ipam::{self, Cidr, Range};
use crate::listing::{self, Query};
use crate::model::{self, Body, b, s};
use crate::policy::NETWORK_DEFAULTS;

/// How often a transaction that lost a race is run again before giving up.
pub(crate) const MAX_ATTEMPTS: usize = 100;

pub(crate) fn too_many_races() -> NetError {
    NetError::new(
        503,
        "HTTPServiceUnavailable",
        "The request lost too many races with concurrent ones; retry it.",
    )
}

/// The network service: its database, settings and policy.
pub struct Networking {
    pub db: Db,
    pub config: NetworkConfig,
    pub enforcer: Enforcer,
    /// The bus to the network agents, once connected.
    pub(crate) bus: std::sync::OnceLock<Arc<dyn ferro_bus::Bus>>,
    /// Set when the model changed and the agents were not yet told.
    pub(crate) dirty: tokio::sync::Notify,
    /// The network agents heard from, by host.
    pub(crate) agents:
        std::sync::Mutex<std::collections::BTreeMap<String, crate::agents::AgentRecord>>,
    /// Tells the compute API about its servers' ports, once connected.
    pub(crate) nova: std::sync::OnceLock<Arc<crate::nova::NovaNotifier>>,
}

pub(crate) type Doc = Map<String, Value>;

pub(crate) fn network_not_found(id: &str) -> NetError {
    NetError::not_found(
        "NetworkNotFound",
        format!("Network {id} could not be found."),
    )
}
pub(crate) fn subnet_not_found(id: &str) -> NetError {
    NetError::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
}
pub(crate) fn port_not_found(id: &str) -> NetError {
    NetError::not_found("PortNotFound", format!("Port {id} could not be found."))
}
fn group_not_found(id: &str) -> NetError {
    NetError::not_found(
        "SecurityGroupNotFound",
        format!("Security group {id} does not exist"),
    )
}
fn rule_not_found(id: &str) -> NetError {
    NetError::not_found(
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

/// Attributes only some callers may see: (resource, attribute).
const RESTRICTED: &[(&str, &str)] = &[
    ("network", "provider:network_type"),
    ("network", "provider:physical_network"),
    ("network", "provider:segmentation_id"),
    ("port", "binding:vif_type"),
    ("port", "binding:vif_details"),
    ("port", "binding:host_id"),
    ("port", "binding:profile"),
];

impl Networking {
    pub fn open(db: Db, config: NetworkConfig) -> ferro_common::Result<Arc<Networking>> {
        let enforcer =
            ferro_http::policy::enforcer(NETWORK_DEFAULTS, config.policy_file.as_deref())?;
        Ok(Arc::new(Networking {
            db,
            config,
            enforcer,
            bus: Default::default(),
            dirty: Default::default(),
            agents: Default::default(),
            nova: Default::default(),
        }))
    }

    pub(crate) fn allowed(&self, ctx: &RequestContext, rule: &str, target: &Value) -> bool {
        ferro_http::policy::allowed(&self.enforcer, ctx, rule, target)
    }

    pub(crate) fn authorize(&self, ctx: &RequestContext, rule: &str, target: &Value) -> Result<()> {
        if self.allowed(ctx, rule, target) {
            Ok(())
        } else {
            Err(NetError::forbidden(rule))
        }
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(self.db.begin().await?)
    }

    // ---- targets and views

    pub(crate) fn network_target(net: &Doc) -> Value {
        json!({
            "project_id": s(net, "project_id"),
            "tenant_id": s(net, "project_id"),
            "shared": b(net, "shared"),
            "external": b(net, "router:external"),
            "network_project_id": s(net, "project_id"),
        })
    }

    pub(crate) fn child_target(doc: &Doc, net: Option<&Doc>) -> Value {
        json!({
            "project_id": s(doc, "project_id"),
            "tenant_id": s(doc, "project_id"),
            "network_project_id": net.map(|n| s(n, "project_id")).unwrap_or(""),
            "shared": net.is_some_and(|n| b(n, "shared")),
            "external": net.is_some_and(|n| b(n, "router:external")),
            "network_device": s(doc, "device_owner").starts_with("network:"),
        })
    }

    /// `doc` as `ctx` may see it, or `None` when `get_<kind>` hides it.
    pub(crate) fn view(
        &self,
        ctx: &RequestContext,
        kind: &str,
        mut doc: Doc,
        target: &Value,
    ) -> Option<Doc> {
        if !self.allowed(ctx, &format!("get_{kind}"), target) {
            return None;
        }
        for (k, attr) in RESTRICTED {
            if *k == kind && !self.allowed(ctx, &format!("get_{kind}:{attr}"), target) {
                doc.remove(*attr);
            }
        }
        Some(doc)
    }

    async fn networks_by_id(&self) -> Result<HashMap<String, Doc>> {
        Ok(db::list(&mut &self.db, Table::Networks, None)
            .await?
            .into_iter()
            .map(|n| (s(&n, "id").to_string(), n))
            .collect())
    }

    /// Adds the computed `subnets` list of a network.
    fn with_subnets(mut net: Doc, subnets: &[String]) -> Doc {
        net.insert("subnets".into(), json!(subnets));
        net
    }

    async fn network_subnet_ids(
        &self,
        ex: &mut impl ferro_db::Executor,
        id: &str,
    ) -> Result<Vec<String>> {
        Ok(db::list(ex, Table::Subnets, Some(("network_id", id)))
            .await?
            .iter()
            .map(|s| model::s(s, "id").to_string())
            .collect())
    }

    /// A network the caller may see, or `NetworkNotFound`.
    pub(crate) async fn visible_network(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Doc> {
        let net = db::get(ex, Table::Networks, id)
            .await?
            .ok_or_else(|| network_not_found(id))?;
        if !self.allowed(ctx, "get_network", &Self::network_target(&net)) {
            return Err(network_not_found(id));
        }
        Ok(net)
    }

    pub(crate) fn check_if_match(doc: &Doc, if_match: Option<i64>) -> Result<()> {
        let current = doc
            .get("revision_number")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        match if_match {
            Some(expected) if expected != current => Err(NetError::new(
                412,
                "RevisionNumberConstraintFailed",
                format!("Constrained to {expected}, but current revision is {current}"),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn collection_url(&self, collection: &str) -> String {
        format!("{}/v2.0/{collection}", self.config.url)
    }

    // ---- networks

    pub async fn network_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        let nets = db::list(&mut &self.db, Table::Networks, None).await?;
        let subnets = db::list(&mut &self.db, Table::Subnets, None).await?;
        let mut by_net: HashMap<String, Vec<String>> = HashMap::new();
        for sn in &subnets {
            by_net
                .entry(s(sn, "network_id").to_string())
                .or_default()
                .push(s(sn, "id").to_string());
        }
        let items = nets
            .into_iter()
            .filter_map(|n| {
                let target = Self::network_target(&n);
                let subs = by_net.get(s(&n, "id")).cloned().unwrap_or_default();
                self.view(ctx, "network", Self::with_subnets(n, &subs), &target)
            })
            .collect();
        listing::respond(
            "networks",
            &self.collection_url("networks"),
            items,
            q,
            &[
                "id",
                "name",
                "status",
                "admin_state_up",
                "shared",
                "mtu",
                "project_id",
                "tenant_id",
                "created_at",
                "updated_at",
                "revision_number",
                "router:external",
                "description",
            ],
        )
    }

    pub async fn network_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        let net = self.visible_network(&mut &self.db, ctx, id).await?;
        let subs = self.network_subnet_ids(&mut &self.db, id).await?;
        let target = Self::network_target(&net);
        let doc = self
            .view(ctx, "network", Self::with_subnets(net, &subs), &target)
            .ok_or_else(|| network_not_found(id))?;
        Ok(json!({"network": listing::project(doc, &q.fields())}))
    }

    /// Picks and claims the segment of a new network inside `tx`.
    async fn allocate_segment(
        &self,
        tx: &mut Tx,
        network_id: &str,
        network_type: &str,
        physnet: Option<&str>,
        seg_id: Option<i64>,
    ) -> Result<(Option<String>, Option<i64>)> {
        let cfg = &self.config;
        match network_type {
            "flat" => {
                let Some(p) = physnet else {
                    return Err(NetError::invalid(
                        "physical_network required for flat provider network",
                    ));
                };
                if seg_id.is_some() {
                    return Err(NetError::invalid(
                        "segmentation_id specified for flat provider network",
                    ));
                }
                if !cfg.flat_networks.iter().any(|f| f == "*" || f == p) {
                    return Err(NetError::invalid(format!(
                        "physical_network '{p}' unknown for flat provider network"
                    )));
                }
                if !db::segments_taken(tx, "flat", p).await?.is_empty() {
                    return Err(NetError::conflict(
                        "FlatNetworkInUse",
                        format!(
                            "Unable to create the flat network. Physical network {p} is in use."
                        ),
                    ));
                }
                db::segment_claim(tx, "flat", p, 0, network_id).await?;
                Ok((Some(p.to_string()), None))
            }
            "vlan" => {
                let ranges: Vec<&crate::VlanRange> = cfg
                    .vlan_ranges
                    .iter()
                    .filter(|r| physnet.is_none_or(|p| p == r.physical_network))
                    .collect();
                if let Some(p) = physnet
                    && ranges.is_empty()
                {
                    return Err(NetError::invalid(format!(
                        "physical_network '{p}' unknown for VLAN provider network"
                    )));
                }
                if let Some(v) = seg_id {
                    let Some(p) = physnet else {
                        return Err(NetError::invalid(
                            "segmentation_id requires physical_network for VLAN provider network",
                        ));
                    };
                    if !(1..=4094).contains(&v) {
                        return Err(NetError::invalid(
                            "segmentation_id out of range (1 through 4094)",
                        ));
                    }
                    if db::segments_taken(tx, "vlan", p).await?.contains(&v) {
                        return Err(NetError::conflict(
                            "VlanIdInUse",
                            format!(
                                "Unable to create the network. The VLAN {v} on physical network {p} is in use."
                            ),
                        ));
                    }
                    db::segment_claim(tx, "vlan", p, v, network_id).await?;
                    return Ok((Some(p.to_string()), Some(v)));
                }
                for r in ranges {
                    let taken = db::segments_taken(tx, "vlan", &r.physical_network).await?;
                    if let Some(v) = (r.min..=r.max).find(|v| taken.binary_search(v).is_err()) {
                        db::segment_claim(tx, "vlan", &r.physical_network, v, network_id).await?;
                        return Ok((Some(r.physical_network.clone()), Some(v)));
                    }
                }
                Err(no_network_available())
            }
            "vxlan" => {
                if physnet.is_some() {
                    return Err(NetError::invalid(
                        "provider:physical_network specified for vxlan network",
                    ));
                }
                let taken = db::segments_taken(tx, "vxlan", "").await?;
                if let Some(v) = seg_id {
                    if !(1..=16_777_215).contains(&v) {
                        return Err(NetError::invalid(format!(
                            "{v} is not a valid VXLAN VNI value"
                        )));
                    }
                    if taken.contains(&v) {
                        return Err(NetError::conflict(
                            "TunnelIdInUse",
                            format!("Unable to create the network. The tunnel ID {v} is in use."),
                        ));
                    }
                    db::segment_claim(tx, "vxlan", "", v, network_id).await?;
                    return Ok((None, Some(v)));
                }
                for (lo, hi) in &cfg.vxlan_ranges {
                    if let Some(v) = (*lo..=*hi).find(|v| taken.binary_search(v).is_err()) {
                        db::segment_claim(tx, "vxlan", "", v, network_id).await?;
                        return Ok((None, Some(v)));
                    }
                }
                Err(no_network_available())
            }
            other => Err(NetError::invalid(format!(
                "network_type value '{other}' not supported"
            ))),
        }
    }

    pub async fn network_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&[
            "name",
            "description",
            "admin_state_up",
            "shared",
            "router:external",
            "is_default",
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
            "mtu",
            "port_security_enabled",
            "project_id",
            "tenant_id",
            "availability_zone_hints",
        ])?;
        let project = body.project(ctx.project_id.as_deref())?;
        let target = json!({"project_id": project, "tenant_id": project});
        self.authorize(ctx, "create_network", &target)?;
        for attr in [
            "shared",
            "router:external",
            "is_default",
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
        ] {
            if body.has(attr) {
                self.authorize(ctx, &format!("create_network:{attr}"), &target)?;
            }
        }
        let name = body.string("name", 255)?.unwrap_or_default();
        let description = body.string("description", 255)?.unwrap_or_default();
        let admin_state_up = body.boolean("admin_state_up")?.unwrap_or(true);
        let shared = body.boolean("shared")?.unwrap_or(false);
        let external = body.boolean("router:external")?.unwrap_or(false);
        let port_security = body.boolean("port_security_enabled")?.unwrap_or(true);
        let network_type = body
            .string("provider:network_type", 255)?
            .unwrap_or_else(|| "vxlan".into());
        let physnet = body.nullable_string("provider:physical_network")?.flatten();
        let seg_id = body.int("provider:segmentation_id")?;
        let hints = body.strings("availability_zone_hints")?.unwrap_or_default();
        let max_mtu = if network_type == "vxlan" {
            self.config.physnet_mtu - 50
        } else {
            self.config.physnet_mtu
        };
        let mtu = match body.int("mtu")? {
            Some(m) if m > max_mtu => {
                return Err(NetError::invalid(format!(
                    "Requested MTU is too big, maximum is {max_mtu}"
                )));
            }
            Some(m) if m < 68 => {
                return Err(NetError::invalid(format!(
                    "'{m}' is too small - must be at least '68'"
                )));
            }
            Some(m) => m,
            None => max_mtu,
        };
        let id = model::new_id();
        let mut doc = model::standard(&id, &project, &description);
        doc.insert("name".into(), json!(name));
        doc.insert("admin_state_up".into(), json!(admin_state_up));
        doc.insert("status".into(), json!("ACTIVE"));
        doc.insert("shared".into(), json!(shared));
        doc.insert("router:external".into(), json!(external));
        // `is_default` exists on external networks only (auto-allocated-topology).
        let is_default = body.boolean("is_default")?.unwrap_or(false);
        if external {
            doc.insert("is_default".into(), json!(is_default));
        }
        doc.insert("mtu".into(), json!(mtu));
        doc.insert("port_security_enabled".into(), json!(port_security));
        doc.insert("availability_zone_hints".into(), json!(hints));
        doc.insert("availability_zones".into(), json!([]));
        doc.insert("ipv4_address_scope".into(), Value::Null);
        doc.insert("ipv6_address_scope".into(), Value::Null);
        doc.insert("l2_adjacency".into(), json!(true));
        doc.insert("provider:network_type".into(), json!(network_type));
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let (p, seg) = self
                .allocate_segment(&mut tx, &id, &network_type, physnet.as_deref(), seg_id)
                .await?;
            let mut doc = doc.clone();
            Self::check_one_default(&mut tx, &doc).await?;
            doc.insert("provider:physical_network".into(), json!(p));
            doc.insert("provider:segmentation_id".into(), json!(seg));
            crate::quota::check(&mut tx, Table::Networks, s(&doc, "project_id")).await?;
            db::insert(&mut tx, Table::Networks, &doc).await?;
            tx.commit().await?;
            Ok(doc)
        })
        .await?;
        let target = Self::network_target(&doc);
        // Upstream makes the owner's default group when its first network appears, but
        // never for another project unless the caller is an admin.
        if ctx.project_id.as_deref() == Some(s(&doc, "project_id"))
            || self.allowed(ctx, "admin_only", &json!({}))
        {
            self.ensure_default_group(Some(s(&doc, "project_id")))
                .await?;
        }
        let doc = self
            .view(ctx, "network", Self::with_subnets(doc, &[]), &target)
            .unwrap_or_default();
        Ok(json!({"network": doc}))
    }

    /// Neutron's API layer hides a network that is neither shared nor the caller's when a
    /// subnet or port is made on it: 404, before any policy check (api/v2/base.py).
    fn check_network_ownership(
        &self,
        ctx: &RequestContext,
        net: &Doc,
        project: &str,
    ) -> Result<()> {
        if self.allowed(ctx, "admin_only", &json!({}))
            || self.allowed(ctx, "service_api", &json!({}))
            || b(net, "shared")
            || s(net, "project_id") == project
        {
            return Ok(());
        }
        Err(NetError::not_found(
            "HTTPNotFound",
            "The resource could not be found.",
        ))
    }

    /// At most one external network is the default (409 as upstream otherwise).
    async fn check_one_default(tx: &mut ferro_db::Tx, net: &Doc) -> Result<()> {
        if !b(net, "is_default") {
            return Ok(());
        }
        let other = db::list(tx, Table::Networks, None)
            .await?
            .into_iter()
            .find(|n| b(n, "router:external") && b(n, "is_default") && s(n, "id") != s(net, "id"));
        match other {
            Some(o) => Err(NetError::conflict(
                "DefaultExternalNetworkExists",
                format!(
                    "Unable to create or update the default external network: default external network {} already exists",
                    s(&o, "id")
                ),
            )),
            None => Ok(()),
        }
    }

    pub async fn network_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Body,
        if_match: Option<i64>,
    ) -> Result<Value> {
        body.only(&[
            "name",
            "description",
            "admin_state_up",
            "shared",
            "router:external",
            "is_default",
            "mtu",
            "port_security_enabled",
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
        ])?;
        if [
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
        ]
        .iter()
        .any(|a| body.has(a))
        {
            return Err(NetError::invalid(
                "Plugin does not support updating provider attributes",
            ));
        }
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let mut net = self.visible_network(&mut tx, ctx, id).await?;
            let target = Self::network_target(&net);
            self.authorize(ctx, "update_network", &target)?;
            for attr in ["shared", "router:external", "is_default"] {
                if body.has(attr) {
                    self.authorize(ctx, &format!("update_network:{attr}"), &target)?;
                }
            }
            let was_shared = b(&net, "shared");
            Self::check_if_match(&net, if_match)?;
            let before = net
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(v) = body.string("name", 255)? {
                net.insert("name".into(), json!(v));
            }
            if let Some(v) = body.string("description", 255)? {
                net.insert("description".into(), json!(v));
            }
            for attr in [
                "admin_state_up",
                "shared",
                "router:external",
                "port_security_enabled",
            ] {
                if let Some(v) = body.boolean(attr)? {
                    net.insert(attr.into(), json!(v));
                }
            }
            if b(&net, "router:external") {
                let v = match body.boolean("is_default")? {
                    Some(v) => v,
                    None => b(&net, "is_default"),
                };
                net.insert("is_default".into(), json!(v));
                Self::check_one_default(&mut tx, &net).await?;
            } else {
                net.remove("is_default");
            }
            if was_shared && !b(&net, "shared") {
                let owner = s(&net, "project_id").to_string();
                let others = db::list(&mut tx, Table::Ports, Some(("network_id", id)))
                    .await?
                    .iter()
                    .chain(db::list(&mut tx, Table::Subnets, Some(("network_id", id))).await?.iter())
                    .any(|x| !s(x, "project_id").is_empty() && s(x, "project_id") != owner);
                if others {
                    return Err(NetError::conflict(
                        "InvalidSharedSetting",
                        format!("Unable to reconfigure sharing settings for network {id}. Multiple projects are using it."),
                    ));
                }
            }
            if let Some(m) = body.int("mtu")? {
                let max = if s(&net, "provider:network_type") == "vxlan" {
                    self.config.physnet_mtu - 50
                } else {
                    self.config.physnet_mtu
                };
                if m > max || m < 68 {
                    return Err(NetError::invalid(format!(
                        "Requested MTU is too big, maximum is {max}"
                    )));
                }
                net.insert("mtu".into(), json!(m));
            }
            model::touch(&mut net);
            db::replace(&mut tx, Table::Networks, &net, before).await?;
            let subs = self.network_subnet_ids(&mut tx, id).await?;
            tx.commit().await?;
            Ok(Self::with_subnets(net, &subs))
        })
        .await?;
        let target = Self::network_target(&doc);
        Ok(json!({"network": self.view(ctx, "network", doc, &target).unwrap_or_default()}))
    }

    pub async fn network_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let net = self.visible_network(&mut tx, ctx, id).await?;
            self.authorize(ctx, "delete_network", &Self::network_target(&net))?;
            Self::check_if_match(&net, if_match)?;
            if net.get("router:external") == Some(&Value::Bool(true)) {
                Self::drop_free_floatingips(&mut tx, id).await?;
            }
            if !db::network_ports_in_use(&mut tx, id).await?.is_empty() {
                return Err(NetError::conflict(
                    "NetworkInUse",
                    format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."),
                ));
            }
            // Ports of network:dhcp go with the network, as upstream deletes them.
            for port in db::list(&mut tx, Table::Ports, Some(("network_id", id))).await? {
                let pid = s(&port, "id").to_string();
                db::release_port(&mut tx, &pid).await?;
                db::port_set_groups(&mut tx, &pid, &[]).await?;
                db::delete(&mut tx, Table::Ports, &pid).await?;
            }
            for sn in db::list(&mut tx, Table::Subnets, Some(("network_id", id))).await? {
                db::delete(&mut tx, Table::Subnets, s(&sn, "id")).await?;
            }
            db::segments_release(&mut tx, id).await?;
            db::delete(&mut tx, Table::Networks, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

/// A network's `subnets` changed: a new revision, as upstream bumps the parent.
async fn bump_network(tx: &mut Tx, id: &str) -> Result<()> {
    if let Some(mut net) = db::get(tx, Table::Networks, id).await? {
        let before = net
            .get("revision_number")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        model::touch(&mut net);
        db::replace(tx, Table::Networks, &net, before).await?;
    }
    Ok(())
}

fn no_network_available() -> NetError {
    NetError::new(
        503,
        "NoNetworkAvailable",
        "Unable to create the network. No project network is available for allocation.",
    )
}

// ---- subnets

/// A subnet document's address facts, parsed once.
struct SubnetFacts {
    id: String,
    cidr: Cidr,
    pools: Vec<Range>,
    gateway: Option<IpAddr>,
    /// SLAAC or DHCPv6-stateless: addresses come from the MAC (EUI-64).
    auto_address: bool,
}

impl SubnetFacts {
    fn of(doc: &Doc) -> Result<SubnetFacts> {
        let cidr = Cidr::parse(s(doc, "cidr")).map_err(NetError::internal)?;
        let pools = doc
            .get("allocation_pools")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        let a = ipam::parse_ip(p.get("start")?.as_str()?)?;
                        let z = ipam::parse_ip(p.get("end")?.as_str()?)?;
                        Some(Range {
                            first: ipam::to_u128(&a),
                            last: ipam::to_u128(&z),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mode = doc.get("ipv6_address_mode").and_then(Value::as_str);
        Ok(SubnetFacts {
            id: s(doc, "id").to_string(),
            cidr,
            pools,
            gateway: doc
                .get("gateway_ip")
                .and_then(Value::as_str)
                .and_then(ipam::parse_ip),
            auto_address: matches!(mode, Some("slaac" | "dhcpv6-stateless")),
        })
    }
}

fn pool_json(r: &Range, version: i64) -> Value {
    json!({
        "start": ipam::from_u128(r.first, version).to_string(),
        "end": ipam::from_u128(r.last, version).to_string(),
    })
}

const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

impl Networking {
    fn subnet_view(
        &self,
        ctx: &RequestContext,
        doc: Doc,
        nets: &HashMap<String, Doc>,
    ) -> Option<Doc> {
        let target = Self::child_target(&doc, nets.get(s(&doc, "network_id")));
        self.view(ctx, "subnet", doc, &target)
    }

    pub async fn subnet_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        let nets = self.networks_by_id().await?;
        let items = db::list(&mut &self.db, Table::Subnets, None)
            .await?
            .into_iter()
            .filter_map(|d| self.subnet_view(ctx, d, &nets))
            .collect();
        listing::respond(
            "subnets",
            &self.collection_url("subnets"),
            items,
            q,
            &[
                "id",
                "name",
                "network_id",
                "ip_version",
                "cidr",
                "gateway_ip",
                "enable_dhcp",
                "project_id",
                "tenant_id",
                "created_at",
                "updated_at",
                "revision_number",
                "description",
            ],
        )
    }

    pub(crate) async fn visible_subnet(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(Doc, Option<Doc>)> {
        let doc = db::get(ex, Table::Subnets, id)
            .await?
            .ok_or_else(|| subnet_not_found(id))?;
        let net = db::get(ex, Table::Networks, s(&doc, "network_id")).await?;
        let target = Self::child_target(&doc, net.as_ref());
        if !self.allowed(ctx, "get_subnet", &target) {
            return Err(subnet_not_found(id));
        }
        Ok((doc, net))
    }

    pub async fn subnet_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        let (doc, _) = self.visible_subnet(&mut &self.db, ctx, id).await?;
        Ok(json!({"subnet": listing::project(doc, &q.fields())}))
    }

    /// Validates gateway and pools of a subnet on `cidr`; returns the pools.
    fn subnet_pools(
        cidr: &Cidr,
        gateway: Option<&IpAddr>,
        pools: Option<&[Value]>,
    ) -> Result<Vec<Range>> {
        let v = cidr.version();
        if let Some(g) = gateway {
            if ipam::version(g) != v {
                return Err(NetError::invalid(format!(
                    "{g} is not a valid IPv{v} address"
                )));
            }
            let in_usable = cidr.usable().is_some_and(|r| r.contains(ipam::to_u128(g)));
            let link_local_v6 = matches!(g, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80);
            if !in_usable && !link_local_v6 {
                return Err(NetError::invalid("Gateway is not valid on subnet"));
            }
        }
        let Some(pools) = pools else {
            return Ok(cidr.default_pools(gateway));
        };
        let mut out: Vec<Range> = Vec::new();
        for p in pools {
            let parse = |k: &str| {
                p.get(k)
                    .and_then(Value::as_str)
                    .and_then(ipam::parse_ip)
                    .filter(|ip| ipam::version(ip) == v)
            };
            let (Some(a), Some(z)) = (parse("start"), parse("end")) else {
                return Err(NetError::bad_request(
                    "InvalidAllocationPool",
                    format!("The allocation pool {p} is not valid."),
                ));
            };
            let r = Range {
                first: ipam::to_u128(&a),
                last: ipam::to_u128(&z),
            };
            if r.first > r.last {
                return Err(NetError::bad_request(
                    "InvalidAllocationPool",
                    format!("The allocation pool {a}-{z} is not valid."),
                ));
            }
            let usable = cidr.usable();
            if !usable.is_some_and(|u| u.contains(r.first) && u.contains(r.last)) {
                return Err(NetError::bad_request(
                    "OutOfBoundsAllocationPool",
                    format!(
                        "The allocation pool {a}-{z} spans beyond the subnet cidr {}.",
                        cidr.net
                    ),
                ));
            }
            if let Some(o) = out.iter().find(|o| o.overlaps(&r)) {
                return Err(NetError::conflict(
                    "OverlappingAllocationPools",
                    format!(
                        "Found overlapping allocation pools: {}-{} {a}-{z} for subnet {}.",
                        ipam::from_u128(o.first, v),
                        ipam::from_u128(o.last, v),
                        cidr.net
                    ),
                ));
            }
            if let Some(g) = gateway
                && r.contains(ipam::to_u128(g))
            {
                return Err(NetError::conflict(
                    "GatewayConflictWithAllocationPools",
                    format!("Gateway ip {g} conflicts with allocation pool {a}-{z}."),
                ));
            }
            out.push(r);
        }
        Ok(out)
    }

    fn nameservers(body: &Body, v: i64) -> Result<Option<Vec<String>>> {
        let Some(list) = body.strings("dns_nameservers")? else {
            return Ok(None);
        };
        let mut out: Vec<String> = Vec::new();
        for ns in list {
            let Some(ip) = ipam::parse_ip(&ns).filter(|ip| ipam::version(ip) == v) else {
                return Err(NetError::invalid(format!(
                    "'{ns}' is not a valid nameserver"
                )));
            };
            let ip = ip.to_string();
            if out.contains(&ip) {
                return Err(NetError::invalid(format!("Duplicate nameserver '{ns}'")));
            }
            out.push(ip);
        }
        Ok(Some(out))
    }

    fn host_routes(body: &Body, v: i64) -> Result<Option<Vec<Value>>> {
        let Some(list) = body.list("host_routes")? else {
            return Ok(None);
        };
        let mut out: Vec<Value> = Vec::new();
        for r in list {
            let dest = r.get("destination").and_then(Value::as_str).unwrap_or("");
            let hop = r.get("nexthop").and_then(Value::as_str).unwrap_or("");
            let d = Cidr::parse(dest).map_err(NetError::invalid)?;
            let h = ipam::parse_ip(hop)
                .ok_or_else(|| NetError::invalid(format!("'{hop}' is not a valid IP address")))?;
            if d.version() != v || ipam::version(&h) != v {
                return Err(NetError::invalid(format!(
                    "Host route {dest} via {hop} does not match the subnet's IP version"
                )));
            }
            let route = json!({"destination": d.net.to_string(), "nexthop": h.to_string()});
            if out.contains(&route) {
                return Err(NetError::invalid(format!("Duplicate hostroute '{r}'")));
            }
            out.push(route);
        }
        Ok(Some(out))
    }

    /// Creates a subnet; one whose CIDR was carved from a pool while a concurrent subnet
    /// took it is carved again.
    pub async fn subnet_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        let mut attempt = 0;
        loop {
            match self.subnet_create_once(ctx, body).await {
                Err(e) if e.kind == "SubnetPoolRace" && attempt < crate::manager::MAX_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) if e.kind == "SubnetPoolRace" => return Err(too_many_races()),
                other => return other,
            }
        }
    }

    async fn subnet_create_once(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&[
            "prefixlen",
            "name",
            "description",
            "network_id",
            "ip_version",
            "cidr",
            "gateway_ip",
            "allocation_pools",
            "dns_nameservers",
            "host_routes",
            "enable_dhcp",
            "ipv6_ra_mode",
            "ipv6_address_mode",
            "project_id",
            "tenant_id",
            "service_types",
            "subnetpool_id",
            "segment_id",
            "use_default_subnetpool",
        ])?;
        let network_id = body
            .string("network_id", 255)?
            .ok_or_else(|| NetError::invalid("network_id is required"))?;
        for k in ["segment_id"] {
            if body.get(k).is_some_and(|v| !v.is_null()) {
                return Err(NetError::invalid(format!("{k} is not supported here")));
            }
        }
        if body.boolean("use_default_subnetpool")? == Some(true) {
            return Err(NetError::invalid("No default subnetpool found"));
        }
        if body.list("service_types")?.is_some_and(|l| !l.is_empty()) {
            return Err(NetError::invalid("service_types are not supported"));
        }
        let net = self
            .visible_network(&mut &self.db, ctx, &network_id)
            .await?;
        let project = body.project(ctx.project_id.as_deref())?;
        let target = json!({"project_id": project, "tenant_id": project,
                            "network_project_id": s(&net, "project_id"),
                            "shared": b(&net, "shared")});
        self.check_network_ownership(ctx, &net, &project)?;
        self.authorize(ctx, "create_subnet", &target)?;
        let version = body
            .int("ip_version")?
            .ok_or_else(|| NetError::invalid("ip_version is required"))?;
        if version != 4 && version != 6 {
            return Err(NetError::invalid(format!("'{version}' is not in [4, 6]")));
        }
        let pool = match body.nullable_string("subnetpool_id")?.flatten() {
            Some(pid) => Some(self.visible_pool(&mut &self.db, ctx, &pid).await?),
            None => None,
        };
        if let Some(p) = &pool
            && p.get("ip_version").and_then(Value::as_i64) != Some(version)
        {
            return Err(NetError::invalid(format!(
                "Cannot allocate IPv{version} subnet from IPv{} subnet pool",
                p.get("ip_version").and_then(Value::as_i64).unwrap_or(0)
            )));
        }
        let carved = pool.is_some() && body.get("cidr").is_none_or(Value::is_null);
        let cidr_text = match (&pool, body.string("cidr", 64)?) {
            (_, Some(c)) => c,
            (Some(p), None) => {
                // A candidate, read without holding the pool; the insert below re-checks it
                // under the pool's lock.
                let mut tx = self.begin().await?;
                let c = self.carve(&mut tx, p, None, body.int("prefixlen")?).await?;
                drop(tx);
                c.net.to_string()
            }
            (None, None) => {
                return Err(NetError::bad_request(
                    "BadRequest",
                    "Bad subnets request: a cidr must be specified in the absence of a subnet pool.",
                ));
            }
        };
        let cidr = Cidr::parse(&cidr_text).map_err(NetError::invalid)?;
        if cidr.version() != version {
            return Err(NetError::invalid(format!(
                "Cidr {cidr_text} does not support ip_version {version}"
            )));
        }
        let ra = body.nullable_string("ipv6_ra_mode")?.flatten();
        let am = body.nullable_string("ipv6_address_mode")?.flatten();
        for m in [&ra, &am].into_iter().flatten() {
            if !IPV6_MODES.contains(&m.as_str()) {
                return Err(NetError::invalid(format!("'{m}' is not in {IPV6_MODES:?}")));
            }
            if version != 4 {
                continue;
            }
            return Err(NetError::invalid(
                "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False or ip_version is 4",
            ));
        }
        if let (Some(r), Some(a)) = (&ra, &am)
            && r != a
        {
            return Err(NetError::invalid(format!(
                "ipv6_ra_mode set to '{r}' with ipv6_address_mode set to '{a}' is not valid. If both attributes are set, they must be the same value"
            )));
        }
        if matches!(am.as_deref(), Some("slaac" | "dhcpv6-stateless")) && cidr.prefix_len() != 64 {
            return Err(NetError::invalid(format!(
                "Invalid CIDR {cidr_text} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"
            )));
        }
        let gateway = match body.get("gateway_ip") {
            None => cidr.default_gateway(),
            Some(Value::Null) => None,
            Some(Value::String(g)) => Some(
                ipam::parse_ip(g)
                    .ok_or_else(|| NetError::invalid(format!("'{g}' is not a valid IP address")))?,
            ),
            Some(v) => {
                return Err(NetError::invalid(format!(
                    "'{v}' is not a valid IP address"
                )));
            }
        };
        let pools = Self::subnet_pools(
            &cidr,
            gateway.as_ref(),
            body.list("allocation_pools")?.as_deref(),
        )?;
        let dns = Self::nameservers(body, version)?.unwrap_or_default();
        let routes = Self::host_routes(body, version)?.unwrap_or_default();
        let id = model::new_id();
        let mut doc = model::standard(
            &id,
            &project,
            &body.string("description", 255)?.unwrap_or_default(),
        );
        doc.insert(
            "name".into(),
            json!(body.string("name", 255)?.unwrap_or_default()),
        );
        doc.insert("network_id".into(), json!(network_id));
        doc.insert("ip_version".into(), json!(version));
        doc.insert("cidr".into(), json!(cidr.net.to_string()));
        doc.insert("gateway_ip".into(), json!(gateway.map(|g| g.to_string())));
        doc.insert(
            "allocation_pools".into(),
            Value::Array(pools.iter().map(|p| pool_json(p, version)).collect()),
        );
        doc.insert("dns_nameservers".into(), json!(dns));
        doc.insert("host_routes".into(), json!(routes));
        doc.insert(
            "enable_dhcp".into(),
            json!(body.boolean("enable_dhcp")?.unwrap_or(true)),
        );
        doc.insert("ipv6_ra_mode".into(), json!(ra));
        doc.insert("ipv6_address_mode".into(), json!(am));
        doc.insert(
            "subnetpool_id".into(),
            json!(pool.as_ref().map(|p| s(p, "id").to_string())),
        );
        doc.insert("segment_id".into(), Value::Null);
        doc.insert("service_types".into(), json!([]));
        let doc = retrying!({
                let mut tx = self.begin().await?;
                // Serialises subnet changes on one network, so overlap checks hold.
                db::lock_network(&mut tx, &network_id).await?;
                if let Some(p) = &pool {
                    match self.carve(&mut tx, p, Some(cidr), None).await {
                        Ok(_) => {}
                        Err(e) if carved && e.kind == "SubnetAllocationError" => {
                            return Err(NetError::conflict("SubnetPoolRace", e.message));
                        }
                        Err(e) => return Err(e),
                    }
                }
                for other in db::list(&mut tx, Table::Subnets, Some(("network_id", &network_id))).await? {
                    let oc = Cidr::parse(s(&other, "cidr")).map_err(NetError::internal)?;
                    if oc.overlaps(&cidr) {
                        return Err(NetError::invalid(format!(
                            "Requested subnet with cidr: {} for network: {network_id} overlaps with another subnet",
                            cidr.net
                        )));
                    }
                }
                crate::quota::check(&mut tx, Table::Subnets, s(&doc, "project_id")).await?;
                db::insert(&mut tx, Table::Subnets, &doc).await?;
                bump_network(&mut tx, &network_id).await?;
                tx.commit().await?;
                Ok(doc.clone())
            })
            .await?;
        Ok(json!({"subnet": doc}))
    }

    pub async fn subnet_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Body,
        if_match: Option<i64>,
    ) -> Result<Value> {
        body.read_only(&[
            "cidr",
            "ip_version",
            "network_id",
            "ipv6_ra_mode",
            "ipv6_address_mode",
            "subnetpool_id",
            "project_id",
            "tenant_id",
        ])?;
        body.only(&[
            "name",
            "description",
            "gateway_ip",
            "allocation_pools",
            "dns_nameservers",
            "host_routes",
            "enable_dhcp",
        ])?;
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let (mut doc, net) = self.visible_subnet(&mut tx, ctx, id).await?;
            self.authorize(
                ctx,
                "update_subnet",
                &Self::child_target(&doc, net.as_ref()),
            )?;
            Self::check_if_match(&doc, if_match)?;
            let before = doc
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let facts = SubnetFacts::of(&doc)?;
            let v = facts.cidr.version();
            if let Some(n) = body.string("name", 255)? {
                doc.insert("name".into(), json!(n));
            }
            if let Some(d) = body.string("description", 255)? {
                doc.insert("description".into(), json!(d));
            }
            if let Some(e) = body.boolean("enable_dhcp")? {
                doc.insert("enable_dhcp".into(), json!(e));
            }
            if body.has("gateway_ip") || body.has("allocation_pools") {
                let gateway = match body.get("gateway_ip") {
                    None => facts.gateway,
                    Some(Value::Null) => None,
                    Some(Value::String(g)) => Some(ipam::parse_ip(g).ok_or_else(|| {
                        NetError::invalid(format!("'{g}' is not a valid IP address"))
                    })?),
                    Some(x) => {
                        return Err(NetError::invalid(format!(
                            "'{x}' is not a valid IP address"
                        )));
                    }
                };
                let pools: Vec<Value> = match body.list("allocation_pools")? {
                    Some(p) => p,
                    None => facts.pools.iter().map(|p| pool_json(p, v)).collect(),
                };
                let pools = Self::subnet_pools(&facts.cidr, gateway.as_ref(), Some(&pools))?;
                doc.insert("gateway_ip".into(), json!(gateway.map(|g| g.to_string())));
                doc.insert(
                    "allocation_pools".into(),
                    Value::Array(pools.iter().map(|p| pool_json(p, v)).collect()),
                );
            }
            if let Some(d) = Self::nameservers(body, v)? {
                doc.insert("dns_nameservers".into(), json!(d));
            }
            if let Some(r) = Self::host_routes(body, v)? {
                doc.insert("host_routes".into(), json!(r));
            }
            model::touch(&mut doc);
            db::replace(&mut tx, Table::Subnets, &doc, before).await?;
            tx.commit().await?;
            Ok(doc)
        })
        .await?;
        Ok(json!({"subnet": doc}))
    }

    pub async fn subnet_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let (doc, net) = self.visible_subnet(&mut tx, ctx, id).await?;
            self.authorize(ctx, "delete_subnet", &Self::child_target(&doc, net.as_ref()))?;
            Self::check_if_match(&doc, if_match)?;
            let allocations = db::subnet_allocations(&mut tx, id).await?;
            for a in &allocations {
                let owner = db::get(&mut tx, Table::Ports, &a.port_id).await?;
                if owner.is_some_and(|p| s(&p, "device_owner") != "network:dhcp") {
                    return Err(NetError::conflict(
                        "SubnetInUse",
                        format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."),
                    ));
                }
            }
            db::delete(&mut tx, Table::Subnets, id).await?;
            bump_network(&mut tx, s(&doc, "network_id")).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

// ---- ports

/// The attributes of a port's binding: a change of any of them unbinds it (ML2).
const BINDING: [&str; 3] = ["binding:host_id", "binding:profile", "binding:vnic_type"];

const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "remote-managed",
];

/// The port an allocation is for.
#[derive(Clone, Copy)]
pub(crate) struct PortAddressing<'a> {
    pub(crate) network_id: &'a str,
    pub(crate) port_id: &'a str,
    pub(crate) mac: &'a str,
    pub(crate) device_owner: &'a str,
}

/// What a port asks of IPAM: an address, a subnet, or both.
#[derive(Clone, Debug)]
pub(crate) struct FixedIpRequest {
    pub(crate) subnet_id: Option<String>,
    pub(crate) ip_address: Option<IpAddr>,
}

pub(crate) fn parse_fixed_ips(list: &[Value]) -> Result<Vec<FixedIpRequest>> {
    list.iter()
        .map(|f| {
            let Value::Object(m) = f else {
                return Err(NetError::invalid(format!(
                    "Invalid data format for fixed IP: '{f}'"
                )));
            };
            if let Some(k) = m.keys().find(|k| *k != "subnet_id" && *k != "ip_address") {
                return Err(NetError::invalid(format!(
                    "Unrecognized fixed IP attribute '{k}'"
                )));
            }
            let subnet_id = m
                .get("subnet_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            let ip_address = match m.get("ip_address") {
                None | Some(Value::Null) => None,
                Some(Value::String(ip)) => Some(ipam::parse_ip(ip).ok_or_else(|| {
                    NetError::invalid(format!("'{ip}' is not a valid IP address"))
                })?),
                Some(v) => {
                    return Err(NetError::invalid(format!(
                        "'{v}' is not a valid IP address"
                    )));
                }
            };
            if subnet_id.is_none() && ip_address.is_none() {
                return Err(NetError::invalid(format!(
                    "Invalid data format for fixed IP: '{f}'"
                )));
            }
            Ok(FixedIpRequest {
                subnet_id,
                ip_address,
            })
        })
        .collect()
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        && mac != "00:00:00:00:00:00"
        && !mac.eq_ignore_ascii_case("ff:ff:ff:ff:ff:ff")
}

impl Networking {
    /// A MAC from `base_mac`: its first three octets kept, the rest random.
    pub(crate) fn generate_mac(&self) -> String {
        let base: Vec<&str> = self.config.base_mac.split(':').collect();
        let mut rng = rand::rng();
        (0..6)
            .map(|i| match base.get(i) {
                Some(b) if i < 3 => b.to_ascii_lowercase(),
                _ => format!("{:02x}", rng.random::<u8>()),
            })
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Allocates the addresses of `port_id` inside `tx`; returns its `fixed_ips`.
    pub(crate) async fn allocate_ips(
        &self,
        tx: &mut Tx,
        port: &PortAddressing<'_>,
        requested: Option<&[FixedIpRequest]>,
        keep: &[(String, String)],
    ) -> Result<Vec<Value>> {
        let PortAddressing {
            network_id,
            port_id,
            mac,
            device_owner,
        } = *port;
        let subnets: Vec<SubnetFacts> =
            db::list(tx, Table::Subnets, Some(("network_id", network_id)))
                .await?
                .iter()
                .map(SubnetFacts::of)
                .collect::<Result<_>>()?;
        let mut out: Vec<(String, IpAddr)> = Vec::new();
        let router = device_owner.starts_with("network:router");
        match requested {
            None => {
                // One IPv4 address from the first subnet with room; IPv6 stateful alike;
                // every auto-address (SLAAC) subnet derives one from the MAC.
                let mut v4_done = false;
                let mut v6_done = false;
                let mut v4_full = false;
                for sn in &subnets {
                    if sn.auto_address {
                        if let Some(ip) = sn.cidr.eui64(mac) {
                            out.push((sn.id.clone(), ip));
                        }
                        continue;
                    }
                    let done = if sn.cidr.version() == 4 {
                        &mut v4_done
                    } else {
                        &mut v6_done
                    };
                    if *done {
                        continue;
                    }
                    match self.pick_free(tx, sn).await? {
                        Some(ip) => {
                            out.push((sn.id.clone(), ip));
                            *done = true;
                        }
                        None if sn.cidr.version() == 4 => v4_full = true,
                        None => {}
                    }
                }
                if v4_full && !v4_done {
                    return Err(ip_generation_failure(network_id));
                }
            }
            Some(list) => {
                for req in list {
                    let sn = match (&req.subnet_id, &req.ip_address) {
                        (Some(sid), _) => subnets.iter().find(|s| &s.id == sid).ok_or_else(|| {
                            NetError::invalid(format!(
                                "Failed to create port on network {network_id}, because fixed_ips included invalid subnet {sid}"
                            ))
                        })?,
                        (None, Some(ip)) => subnets.iter().find(|s| s.cidr.contains(ip)).ok_or_else(|| {
                            NetError::bad_request(
                                "InvalidIpForNetwork",
                                format!("IP address {ip} is not a valid IP for any of the subnets on the specified network."),
                            )
                        })?,
                        (None, None) => return Err(NetError::invalid("fixed_ips entry is empty")),
                    };
                    match req.ip_address {
                        Some(ip) => {
                            let valid = sn
                                .cidr
                                .usable()
                                .is_some_and(|u| u.contains(ipam::to_u128(&ip)))
                                && ipam::version(&ip) == sn.cidr.version();
                            if !valid {
                                return Err(NetError::bad_request(
                                    "InvalidIpForSubnet",
                                    format!(
                                        "IP address {ip} is not a valid IP for the specified subnet."
                                    ),
                                ));
                            }
                            if sn.auto_address && !router {
                                return Err(NetError::invalid(format!(
                                    "IPv6 address {ip} cannot be directly assigned to a port on subnet {} as the subnet is configured for automatic addresses",
                                    sn.id
                                )));
                            }
                            let taken = db::allocation_of(tx, network_id, &ip.to_string())
                                .await?
                                .is_some()
                                || (sn.gateway == Some(ip) && !router);
                            if taken || out.iter().any(|(_, o)| *o == ip) {
                                return Err(NetError::conflict(
                                    "IpAddressAlreadyAllocated",
                                    format!(
                                        "IP address {ip} already allocated in subnet {}",
                                        sn.id
                                    ),
                                ));
                            }
                            out.push((sn.id.clone(), ip));
                        }
                        None => {
                            if let Some((_, ip)) = keep.iter().find(|(s, _)| *s == sn.id) {
                                let ip: IpAddr = ipam::parse_ip(ip)
                                    .ok_or_else(|| NetError::internal("stored ip"))?;
                                if !out.iter().any(|(_, o)| *o == ip)
                                    && db::allocation_of(tx, network_id, &ip.to_string())
                                        .await?
                                        .is_none()
                                {
                                    out.push((sn.id.clone(), ip));
                                    continue;
                                }
                            }
                            let ip = if sn.auto_address {
                                sn.cidr.eui64(mac)
                            } else {
                                self.pick_free(tx, sn).await?
                            };
                            match ip {
                                Some(ip) => out.push((sn.id.clone(), ip)),
                                None => return Err(ip_generation_failure(network_id)),
                            }
                        }
                    }
                }
            }
        }
        let mut fixed = Vec::new();
        for (sid, ip) in out {
            db::allocate(tx, network_id, &sid, &ip.to_string(), port_id).await?;
            fixed.push(json!({"subnet_id": sid, "ip_address": ip.to_string()}));
        }
        Ok(fixed)
    }

    /// A free address of `sn`'s pools, chosen at random among the first few free so that
    /// concurrent requests seldom collide; the unique key settles the rest.
    async fn pick_free(&self, tx: &mut Tx, sn: &SubnetFacts) -> Result<Option<IpAddr>> {
        let v = sn.cidr.version();
        let mut taken: Vec<u128> = db::subnet_allocations(tx, &sn.id)
            .await?
            .iter()
            .filter_map(|a| ipam::parse_ip(&a.ip_address))
            .map(|ip| ipam::to_u128(&ip))
            .collect();
        if let Some(g) = &sn.gateway {
            taken.push(ipam::to_u128(g));
        }
        taken.sort_unstable();
        let free = ipam::free_candidates(&sn.pools, &taken, 8);
        if free.is_empty() {
            return Ok(None);
        }
        let i = rand::rng().random_range(0..free.len());
        Ok(Some(ipam::from_u128(free[i], v)))
    }

    async fn port_groups(
        &self,
        tx: &mut Tx,
        ctx: &RequestContext,
        project: &str,
        requested: Option<Vec<String>>,
        port_security: bool,
        device_owner: &str,
    ) -> Result<Vec<String>> {
        match requested {
            Some(ids) => {
                if !ids.is_empty() && !port_security {
                    return Err(NetError::bad_request(
                        "PortSecurityAndIPRequiredForSecurityGroups",
                        "Port security must be enabled and port must have an IP address in order to use security groups.",
                    ));
                }
                let mut out = Vec::new();
                for id in ids {
                    let g = db::get(tx, Table::SecurityGroups, &id)
                        .await?
                        .ok_or_else(|| group_not_found(&id))?;
                    let target = json!({"project_id": s(&g, "project_id")});
                    if s(&g, "project_id") != project
                        && !self.allowed(ctx, "get_security_group", &target)
                    {
                        return Err(group_not_found(&id));
                    }
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                Ok(out)
            }
            None if port_security && !device_owner.starts_with("network:") => {
                Ok(vec![self.default_group_in(tx, project).await?])
            }
            None => Ok(Vec::new()),
        }
    }

    fn port_view(
        &self,
        ctx: &RequestContext,
        doc: Doc,
        nets: &HashMap<String, Doc>,
    ) -> Option<Doc> {
        let target = Self::child_target(&doc, nets.get(s(&doc, "network_id")));
        self.view(ctx, "port", doc, &target)
    }

    pub async fn port_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        let nets = self.networks_by_id().await?;
        let items = db::list(&mut &self.db, Table::Ports, None)
            .await?
            .into_iter()
            .filter_map(|d| self.port_view(ctx, d, &nets))
            .collect();
        listing::respond(
            "ports",
            &self.collection_url("ports"),
            items,
            q,
            &[
                "id",
                "name",
                "network_id",
                "mac_address",
                "device_id",
                "device_owner",
                "status",
                "admin_state_up",
                "project_id",
                "tenant_id",
                "created_at",
                "updated_at",
                "revision_number",
                "description",
            ],
        )
    }

    pub(crate) async fn visible_port(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(Doc, Option<Doc>)> {
        let doc = db::get(ex, Table::Ports, id)
            .await?
            .ok_or_else(|| port_not_found(id))?;
        let net = db::get(ex, Table::Networks, s(&doc, "network_id")).await?;
        if !self.allowed(ctx, "get_port", &Self::child_target(&doc, net.as_ref())) {
            return Err(port_not_found(id));
        }
        Ok((doc, net))
    }

    pub async fn port_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        let (doc, net) = self.visible_port(&mut &self.db, ctx, id).await?;
        let target = Self::child_target(&doc, net.as_ref());
        let doc = self
            .view(ctx, "port", doc, &target)
            .ok_or_else(|| port_not_found(id))?;
        Ok(json!({"port": listing::project(doc, &q.fields())}))
    }

    fn address_pairs(body: &Body, mac: &str) -> Result<Option<Vec<Value>>> {
        let Some(list) = body.list("allowed_address_pairs")? else {
            return Ok(None);
        };
        let mut out: Vec<Value> = Vec::new();
        for p in list {
            let ip = p.get("ip_address").and_then(Value::as_str).ok_or_else(|| {
                NetError::bad_request(
                    "AllowedAddressPairsMissingIP",
                    "AllowedAddressPair must contain ip_address",
                )
            })?;
            let ok = ipam::parse_ip(ip).is_some() || ipam::parse_prefix(ip).is_some();
            if !ok {
                return Err(NetError::invalid(format!(
                    "'{ip}' is not a valid IP address"
                )));
            }
            let pair_mac = match p.get("mac_address").and_then(Value::as_str) {
                Some(m) if valid_mac(m) => m.to_ascii_lowercase(),
                Some(m) => {
                    return Err(NetError::invalid(format!(
                        "'{m}' is not a valid MAC address"
                    )));
                }
                None => mac.to_string(),
            };
            let pair = json!({"ip_address": ip, "mac_address": pair_mac});
            if out.contains(&pair) {
                return Err(NetError::bad_request(
                    "DuplicateAddressPairInRequest",
                    format!(
                        "Request contains duplicate address pair: mac_address {pair_mac} ip_address {ip}."
                    ),
                ));
            }
            out.push(pair);
        }
        Ok(Some(out))
    }

    fn dhcp_opts(body: &Body) -> Result<Option<Vec<Value>>> {
        let Some(list) = body.list("extra_dhcp_opts")? else {
            return Ok(None);
        };
        list.into_iter()
            .map(|o| {
                let name = o
                    .get("opt_name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty());
                let Some(name) = name else {
                    return Err(NetError::invalid(format!(
                        "Invalid data format for extra-dhcp-opt: {o}"
                    )));
                };
                let value = o.get("opt_value").cloned().unwrap_or(Value::Null);
                let version = match o.get("ip_version") {
                    None | Some(Value::Null) => 4,
                    Some(v) => match v
                        .as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    {
                        Some(v @ (4 | 6)) => v,
                        _ => return Err(NetError::invalid(format!("'{v}' is not in [4, 6]"))),
                    },
                };
                Ok(json!({"opt_name": name, "opt_value": value, "ip_version": version}))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn apply_binding(
        doc: &mut Doc,
        host: Option<String>,
        profile: Option<Value>,
        vnic: Option<String>,
    ) -> Result<()> {
        if let Some(v) = vnic {
            if !VNIC_TYPES.contains(&v.as_str()) {
                return Err(NetError::invalid(format!("'{v}' is not in {VNIC_TYPES:?}")));
            }
            doc.insert("binding:vnic_type".into(), json!(v));
        }
        if let Some(p) = profile {
            if !(p.is_object() || p.is_null()) {
                return Err(NetError::invalid(format!("'{p}' is not a dictionary")));
            }
            doc.insert(
                "binding:profile".into(),
                if p.is_null() { json!({}) } else { p },
            );
        }
        if let Some(h) = host {
            // The Linux-bridge dataplane binds any host; the agent reports the port up.
            let bound = !h.is_empty();
            doc.insert("binding:host_id".into(), json!(h));
            doc.insert(
                "binding:vif_type".into(),
                json!(if bound { "bridge" } else { "unbound" }),
            );
            doc.insert(
                "binding:vif_details".into(),
                if bound {
                    json!({"port_filter": true, "connectivity": "l2"})
                } else {
                    json!({})
                },
            );
        }
        Ok(())
    }

    pub async fn port_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&[
            "name",
            "description",
            "network_id",
            "admin_state_up",
            "mac_address",
            "fixed_ips",
            "device_id",
            "device_owner",
            "project_id",
            "tenant_id",
            "security_groups",
            "allowed_address_pairs",
            "port_security_enabled",
            "extra_dhcp_opts",
            "binding:host_id",
            "binding:profile",
            "binding:vnic_type",
        ])?;
        let network_id = body
            .string("network_id", 255)?
            .ok_or_else(|| NetError::invalid("network_id is required"))?;
        let net = self
            .visible_network(&mut &self.db, ctx, &network_id)
            .await?;
        let project = body.project(ctx.project_id.as_deref())?;
        let device_owner = body.string("device_owner", 255)?.unwrap_or_default();
        let device_id = body.string("device_id", 255)?.unwrap_or_default();
        let target = json!({"project_id": project, "tenant_id": project,
                            "network_project_id": s(&net, "project_id"),
                            "shared": b(&net, "shared"), "external": b(&net, "router:external"),
                            "network_device": device_owner.starts_with("network:")});
        self.check_network_ownership(ctx, &net, &project)?;
        self.authorize(ctx, "create_port", &target)?;
        if body.has("device_owner") {
            self.authorize(ctx, "create_port:device_owner", &target)?;
        }
        for attr in [
            "mac_address",
            "binding:host_id",
            "binding:profile",
            "port_security_enabled",
        ] {
            if body.has(attr) {
                self.authorize(ctx, &format!("create_port:{attr}"), &target)?;
            }
        }
        let fixed = body
            .list("fixed_ips")?
            .map(|l| parse_fixed_ips(&l))
            .transpose()?;
        if fixed
            .as_ref()
            .is_some_and(|f| f.iter().any(|r| r.ip_address.is_some()))
        {
            self.authorize(ctx, "create_port:fixed_ips:ip_address", &target)?;
        }
        let mac_req = match body.string("mac_address", 32)? {
            Some(m) if valid_mac(&m) => Some(m.to_ascii_lowercase()),
            Some(m) => {
                return Err(NetError::invalid(format!(
                    "'{m}' is not a valid MAC address"
                )));
            }
            None => None,
        };
        let port_security = body
            .boolean("port_security_enabled")?
            .unwrap_or_else(|| b(&net, "port_security_enabled"));
        let groups_req = body.strings("security_groups")?;
        let dhcp_opts = Self::dhcp_opts(body)?.unwrap_or_default();
        let admin_state_up = body.boolean("admin_state_up")?.unwrap_or(true);
        let name = body.string("name", 255)?.unwrap_or_default();
        let description = body.string("description", 255)?.unwrap_or_default();
        let host = body.string("binding:host_id", 255)?;
        let profile = body.get("binding:profile").cloned();
        let vnic = body.string("binding:vnic_type", 64)?;
        let id = model::new_id();
        let doc = retrying!({
                let mut tx = self.begin().await?;
                let mac = match &mac_req {
                    Some(m) => {
                        if db::mac_in_use(&mut tx, &network_id, m).await? {
                            return Err(NetError::conflict(
                                "MacAddressInUse",
                                format!("Unable to complete operation for network {network_id}. The mac address {m} is in use."),
                            ));
                        }
                        m.clone()
                    }
                    None => self.generate_mac(),
                };
                let pairs = Self::address_pairs(body, &mac)?.unwrap_or_default();
                if !pairs.is_empty() && !port_security {
                    return Err(NetError::conflict(
                        "AddressPairAndPortSecurityRequired",
                        "Port Security must be enabled in order to have allowed address pairs on a port.",
                    ));
                }
                let groups = self
                    .port_groups(&mut tx, ctx, &project, groups_req.clone(), port_security, &device_owner)
                    .await?;
                let fixed_ips = self
                    .allocate_ips(
                        &mut tx,
                        &PortAddressing {
                            network_id: &network_id,
                            port_id: &id,
                            mac: &mac,
                            device_owner: &device_owner,
                        },
                        fixed.as_deref(),
                        &[],
                    )
                    .await?;
                let mut doc = model::standard(&id, &project, &description);
                doc.insert("name".into(), json!(name));
                doc.insert("network_id".into(), json!(network_id));
                doc.insert("admin_state_up".into(), json!(admin_state_up));
                doc.insert("mac_address".into(), json!(mac));
                doc.insert("fixed_ips".into(), json!(fixed_ips));
                doc.insert("device_id".into(), json!(device_id));
                doc.insert("device_owner".into(), json!(device_owner));
                doc.insert("status".into(), json!("DOWN"));
                doc.insert("security_groups".into(), json!(groups));
                doc.insert("allowed_address_pairs".into(), json!(pairs));
                doc.insert("extra_dhcp_opts".into(), json!(dhcp_opts));
                doc.insert("port_security_enabled".into(), json!(port_security));
                doc.insert("ip_allocation".into(), json!("immediate"));
                doc.insert("binding:vnic_type".into(), json!("normal"));
                doc.insert("binding:profile".into(), json!({}));
                doc.insert("binding:host_id".into(), json!(""));
                doc.insert("binding:vif_type".into(), json!("unbound"));
                doc.insert("binding:vif_details".into(), json!({}));
                Self::apply_binding(&mut doc, host.clone(), profile.clone(), vnic.clone())?;
                crate::quota::check(&mut tx, Table::Ports, s(&doc, "project_id")).await?;
                db::insert(&mut tx, Table::Ports, &doc).await?;
                db::port_set_groups(&mut tx, &id, &groups).await?;
                tx.commit().await?;
                Ok(doc)
            })
            .await?;
        let t = Self::child_target(&doc, Some(&net));
        Ok(json!({"port": self.view(ctx, "port", doc, &t).unwrap_or_default()}))
    }

    pub async fn port_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Body,
        if_match: Option<i64>,
    ) -> Result<Value> {
        body.read_only(&["network_id", "project_id", "tenant_id"])?;
        body.only(&[
            "name",
            "description",
            "admin_state_up",
            "mac_address",
            "fixed_ips",
            "device_id",
            "device_owner",
            "security_groups",
            "allowed_address_pairs",
            "port_security_enabled",
            "extra_dhcp_opts",
            "binding:host_id",
            "binding:profile",
            "binding:vnic_type",
        ])?;
        let fixed = body
            .list("fixed_ips")?
            .map(|l| parse_fixed_ips(&l))
            .transpose()?;
        let doc = retrying!({
                let mut tx = self.begin().await?;
                let (mut doc, net) = self.visible_port(&mut tx, ctx, id).await?;
                let target = Self::child_target(&doc, net.as_ref());
                self.authorize(ctx, "update_port", &target)?;
                for attr in ["binding:host_id", "binding:profile", "mac_address", "port_security_enabled"] {
                    if body.has(attr) {
                        self.authorize(ctx, &format!("update_port:{attr}"), &target)?;
                    }
                }
                if fixed.as_ref().is_some_and(|f| f.iter().any(|r| r.ip_address.is_some())) {
                    self.authorize(ctx, "update_port:fixed_ips:ip_address", &target)?;
                }
                Self::check_if_match(&doc, if_match)?;
                let before = doc.get("revision_number").and_then(Value::as_i64).unwrap_or(0);
                let network_id = s(&doc, "network_id").to_string();
                let project = s(&doc, "project_id").to_string();
                for k in ["name", "description", "device_id", "device_owner"] {
                    if let Some(v) = body.string(k, 255)? {
                        doc.insert(k.into(), json!(v));
                    }
                }
                if let Some(v) = body.boolean("admin_state_up")? {
                    doc.insert("admin_state_up".into(), json!(v));
                }
                if let Some(m) = body.string("mac_address", 32)? {
                    if !valid_mac(&m) {
                        return Err(NetError::invalid(format!("'{m}' is not a valid MAC address")));
                    }
                    let m = m.to_ascii_lowercase();
                    if m != s(&doc, "mac_address") {
                        if !s(&doc, "binding:host_id").is_empty() {
                            return Err(NetError::conflict("PortBound", format!("Unable to complete operation on port {id}, port is already bound, port type: bridge, old_mac {}, new_mac {m}.", s(&doc, "mac_address"))));
                        }
                        if db::mac_in_use(&mut tx, &network_id, &m).await? {
                            return Err(NetError::conflict("MacAddressInUse", format!("Unable to complete operation for network {network_id}. The mac address {m} is in use.")));
                        }
                        doc.insert("mac_address".into(), json!(m));
                    }
                }
                let port_security = match body.boolean("port_security_enabled")? {
                    Some(v) => v,
                    None => b(&doc, "port_security_enabled"),
                };
                let groups: Vec<String> = match body.strings("security_groups")? {
                    Some(ids) => self.port_groups(&mut tx, ctx, &project, Some(ids), port_security, "").await?,
                    None => doc
                        .get("security_groups")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default(),
                };
                if !port_security && !groups.is_empty() {
                    return Err(NetError::conflict(
                        "PortSecurityPortHasSecurityGroup",
                        "Port has security group associated. Cannot disable port security or ip address until security group is removed",
                    ));
                }
                doc.insert("port_security_enabled".into(), json!(port_security));
                let mac = s(&doc, "mac_address").to_string();
                if let Some(pairs) = Self::address_pairs(body, &mac)? {
                    doc.insert("allowed_address_pairs".into(), json!(pairs));
                }
                if !port_security
                    && doc.get("allowed_address_pairs").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
                {
                    return Err(NetError::conflict(
                        "AddressPairAndPortSecurityRequired",
                        "Port Security must be enabled in order to have allowed address pairs on a port.",
                    ));
                }
                if let Some(opts) = Self::dhcp_opts(body)? {
                    doc.insert("extra_dhcp_opts".into(), json!(opts));
                }
                if let Some(f) = &fixed {
                    let keep: Vec<(String, String)> = doc
                        .get("fixed_ips")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|x| (x["subnet_id"].as_str().unwrap_or("").to_string(), x["ip_address"].as_str().unwrap_or("").to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    db::release_port(&mut tx, id).await?;
                    let owner = s(&doc, "device_owner").to_string();
                    let ips = self
                        .allocate_ips(
                            &mut tx,
                            &PortAddressing {
                                network_id: &network_id,
                                port_id: id,
                                mac: &mac,
                                device_owner: &owner,
                            },
                            Some(f),
                            &keep,
                        )
                        .await?;
                    doc.insert("fixed_ips".into(), json!(ips));
                }
                doc.insert("security_groups".into(), json!(groups));
                let binding = |d: &Doc| BINDING.map(|k| d.get(k).cloned());
                let was_bound = binding(&doc);
                Self::apply_binding(
                    &mut doc,
                    body.string("binding:host_id", 255)?,
                    body.get("binding:profile").cloned(),
                    body.string("binding:vnic_type", 64)?,
                )?;
                // ML2 unbinds a port whose binding changes and sets it DOWN until the
                // agent of its (new) host reports it plugged (_process_port_binding).
                let old_status = s(&doc, "status").to_string();
                if binding(&doc) != was_bound {
                    doc.insert("status".into(), json!("DOWN"));
                }
                model::touch(&mut doc);
                db::replace(&mut tx, Table::Ports, &doc, before).await?;
                db::port_set_groups(&mut tx, id, &groups).await?;
                tx.commit().await?;
                Ok((doc, net, old_status))
            })
            .await?;
        let (doc, net, old_status) = doc;
        self.port_status_changed(&doc, &old_status, s(&doc, "status"));
        let t = Self::child_target(&doc, net.as_ref());
        Ok(json!({"port": self.view(ctx, "port", doc, &t).unwrap_or_default()}))
    }

    pub async fn port_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let (doc, net) = self.visible_port(&mut tx, ctx, id).await?;
            self.authorize(ctx, "delete_port", &Self::child_target(&doc, net.as_ref()))?;
            Self::check_if_match(&doc, if_match)?;
            let owner = s(&doc, "device_owner");
            if [
                "network:router_interface",
                "network:router_gateway",
                "network:floatingip",
            ]
            .contains(&owner)
            {
                return Err(NetError::conflict(
                    "L3PortInUse",
                    format!("Port {id} has owner {owner} and therefore cannot be deleted directly via the port API."),
                ));
            }
            Self::disassociate_port(&mut tx, id).await?;
            db::release_port(&mut tx, id).await?;
            db::port_set_groups(&mut tx, id, &[]).await?;
            db::delete(&mut tx, Table::Ports, id).await?;
            tx.commit().await?;
            self.notify_nova(&doc, "network-vif-deleted");
            Ok(())
        })
        .await
    }
}

pub(crate) fn ip_generation_failure(network_id: &str) -> NetError {
    NetError::conflict(
        "IpAddressGenerationFailure",
        format!("No more IP addresses available on network {network_id}."),
    )
}

// ---- security groups

impl Networking {
    fn rule_doc(
        group_id: &str,
        project: &str,
        direction: &str,
        ethertype: &str,
        remote_group: Option<&str>,
    ) -> Doc {
        let mut r = model::standard(&model::new_id(), project, "");
        r.insert("security_group_id".into(), json!(group_id));
        r.insert("direction".into(), json!(direction));
        r.insert("ethertype".into(), json!(ethertype));
        r.insert("protocol".into(), Value::Null);
        r.insert("port_range_min".into(), Value::Null);
        r.insert("port_range_max".into(), Value::Null);
        r.insert("remote_ip_prefix".into(), Value::Null);
        r.insert("normalized_cidr".into(), Value::Null);
        r.insert("remote_group_id".into(), json!(remote_group));
        r.insert("remote_address_group_id".into(), Value::Null);
        r
    }

    /// Creates a group with its initial rules inside `tx`.
    async fn insert_group(
        &self,
        tx: &mut Tx,
        project: &str,
        name: &str,
        description: &str,
        stateful: bool,
        default: bool,
    ) -> Result<Doc> {
        let id = model::new_id();
        let mut g = model::standard(&id, project, description);
        g.insert("name".into(), json!(name));
        g.insert("stateful".into(), json!(stateful));
        g.insert("shared".into(), json!(false));
        db::insert(tx, Table::SecurityGroups, &g).await?;
        // Upstream's defaults: every group lets everything out; `default` also lets in
        // what comes from its own members.
        for ethertype in ["IPv4", "IPv6"] {
            let r = Self::rule_doc(&id, project, "egress", ethertype, None);
            db::insert(tx, Table::SecurityGroupRules, &r).await?;
            if default {
                let r = Self::rule_doc(&id, project, "ingress", ethertype, Some(&id));
                db::insert(tx, Table::SecurityGroupRules, &r).await?;
            }
        }
        Ok(g)
    }

    /// The `default` group of `project`, made inside `tx` if it does not exist yet.
    async fn default_group_in(&self, tx: &mut Tx, project: &str) -> Result<String> {
        if let Some(id) = db::default_group(tx, project).await? {
            return Ok(id);
        }
        let g = self
            .insert_group(tx, project, "default", "Default security group", true, true)
            .await?;
        let id = s(&g, "id").to_string();
        // A concurrent creator makes this a duplicate key; the retry then finds its group.
        db::default_group_claim(tx, project, &id).await?;
        Ok(id)
    }

    /// Makes sure the caller's project has its `default` group (upstream does this on
    /// every security-group call).
    async fn ensure_default_group(&self, project: Option<&str>) -> Result<()> {
        let Some(project) = project else {
            return Ok(());
        };
        if db::default_group(&mut &self.db, project).await?.is_some() {
            return Ok(());
        }
        retrying!({
            let mut tx = self.begin().await?;
            self.default_group_in(&mut tx, project).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    fn rule_target(rule: &Doc, group: Option<&Doc>) -> Value {
        json!({
            "project_id": s(rule, "project_id"),
            "tenant_id": s(rule, "project_id"),
            "group_project_id": group.map(|g| s(g, "project_id")).unwrap_or(""),
        })
    }

    fn group_with_rules(&self, ctx: &RequestContext, mut g: Doc, rules: &[Doc]) -> Doc {
        let gid = s(&g, "id").to_string();
        let list: Vec<Value> = rules
            .iter()
            .filter(|r| s(r, "security_group_id") == gid)
            .filter(|r| {
                self.allowed(
                    ctx,
                    "get_security_group_rule",
                    &Self::rule_target(r, Some(&g)),
                )
            })
            .map(|r| Value::Object(r.clone()))
            .collect();
        g.insert("security_group_rules".into(), Value::Array(list));
        g
    }

    pub async fn group_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        self.ensure_default_group(ctx.project_id.as_deref()).await?;
        let rules = db::list(&mut &self.db, Table::SecurityGroupRules, None).await?;
        let items = db::list(&mut &self.db, Table::SecurityGroups, None)
            .await?
            .into_iter()
            .filter(|g| {
                self.allowed(
                    ctx,
                    "get_security_group",
                    &json!({"project_id": s(g, "project_id")}),
                )
            })
            .map(|g| self.group_with_rules(ctx, g, &rules))
            .collect();
        listing::respond(
            "security_groups",
            &self.collection_url("security-groups"),
            items,
            q,
            &[
                "id",
                "name",
                "project_id",
                "tenant_id",
                "created_at",
                "updated_at",
                "revision_number",
                "description",
                "stateful",
            ],
        )
    }

    async fn visible_group(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Doc> {
        let g = db::get(ex, Table::SecurityGroups, id)
            .await?
            .ok_or_else(|| group_not_found(id))?;
        if !self.allowed(
            ctx,
            "get_security_group",
            &json!({"project_id": s(&g, "project_id")}),
        ) {
            return Err(group_not_found(id));
        }
        Ok(g)
    }

    pub async fn group_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        self.ensure_default_group(ctx.project_id.as_deref()).await?;
        let g = self.visible_group(&mut &self.db, ctx, id).await?;
        let rules = db::list(
            &mut &self.db,
            Table::SecurityGroupRules,
            Some(("security_group_id", id)),
        )
        .await?;
        let g = self.group_with_rules(ctx, g, &rules);
        Ok(json!({"security_group": listing::project(g, &q.fields())}))
    }

    pub async fn group_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&["name", "description", "project_id", "tenant_id", "stateful"])?;
        let project = body.project(ctx.project_id.as_deref())?;
        self.authorize(
            ctx,
            "create_security_group",
            &json!({"project_id": project}),
        )?;
        let name = body.string("name", 255)?.unwrap_or_default();
        if name == "default" {
            return Err(NetError::conflict(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            ));
        }
        let description = body.string("description", 255)?.unwrap_or_default();
        let stateful = body.boolean("stateful")?.unwrap_or(true);
        self.ensure_default_group(Some(&project)).await?;
        let g = retrying!({
            let mut tx = self.begin().await?;
            crate::quota::check(&mut tx, Table::SecurityGroups, &project).await?;
            let g = self
                .insert_group(&mut tx, &project, &name, &description, stateful, false)
                .await?;
            tx.commit().await?;
            Ok(g)
        })
        .await?;
        let id = s(&g, "id").to_string();
        let rules = db::list(
            &mut &self.db,
            Table::SecurityGroupRules,
            Some(("security_group_id", &id)),
        )
        .await?;
        Ok(json!({"security_group": self.group_with_rules(ctx, g, &rules)}))
    }

    pub async fn group_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Body,
        if_match: Option<i64>,
    ) -> Result<Value> {
        body.only(&["name", "description", "stateful"])?;
        let g = retrying!({
            let mut tx = self.begin().await?;
            let mut g = self.visible_group(&mut tx, ctx, id).await?;
            self.authorize(
                ctx,
                "update_security_group",
                &json!({"project_id": s(&g, "project_id")}),
            )?;
            Self::check_if_match(&g, if_match)?;
            let before = g
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let is_default = db::default_group(&mut tx, s(&g, "project_id"))
                .await?
                .as_deref()
                == Some(id);
            if let Some(n) = body.string("name", 255)? {
                if is_default && n != "default" {
                    return Err(NetError::conflict(
                        "SecurityGroupCannotUpdateDefault",
                        "Updating default security group not allowed.",
                    ));
                }
                if !is_default && n == "default" {
                    return Err(NetError::conflict(
                        "SecurityGroupDefaultAlreadyExists",
                        "Default security group already exists.",
                    ));
                }
                g.insert("name".into(), json!(n));
            }
            if let Some(d) = body.string("description", 255)? {
                g.insert("description".into(), json!(d));
            }
            if let Some(st) = body.boolean("stateful")? {
                g.insert("stateful".into(), json!(st));
            }
            model::touch(&mut g);
            db::replace(&mut tx, Table::SecurityGroups, &g, before).await?;
            tx.commit().await?;
            Ok(g)
        })
        .await?;
        let rules = db::list(
            &mut &self.db,
            Table::SecurityGroupRules,
            Some(("security_group_id", id)),
        )
        .await?;
        Ok(json!({"security_group": self.group_with_rules(ctx, g, &rules)}))
    }

    pub async fn group_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let g = self.visible_group(&mut tx, ctx, id).await?;
            let target = json!({"project_id": s(&g, "project_id")});
            self.authorize(ctx, "delete_security_group", &target)?;
            Self::check_if_match(&g, if_match)?;
            let is_default = db::default_group(&mut tx, s(&g, "project_id"))
                .await?
                .as_deref()
                == Some(id);
            if is_default && !self.allowed(ctx, "admin_only", &target) {
                return Err(NetError::conflict(
                    "SecurityGroupCannotRemoveDefault",
                    "Insufficient rights for removing default security group.",
                ));
            }
            if db::group_in_use(&mut tx, id).await? {
                return Err(NetError::conflict(
                    "SecurityGroupInUse",
                    format!("Security Group {id} in use."),
                ));
            }
            db::group_rules_delete(&mut tx, id).await?;
            if is_default {
                db::default_group_forget(&mut tx, id).await?;
            }
            db::delete(&mut tx, Table::SecurityGroups, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    // ---- rules

    pub async fn rule_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        self.ensure_default_group(ctx.project_id.as_deref()).await?;
        let groups: HashMap<String, Doc> = db::list(&mut &self.db, Table::SecurityGroups, None)
            .await?
            .into_iter()
            .map(|g| (s(&g, "id").to_string(), g))
            .collect();
        let items = db::list(&mut &self.db, Table::SecurityGroupRules, None)
            .await?
            .into_iter()
            .filter(|r| {
                let t = Self::rule_target(r, groups.get(s(r, "security_group_id")));
                self.allowed(ctx, "get_security_group_rule", &t)
            })
            .collect();
        listing::respond(
            "security_group_rules",
            &self.collection_url("security-group-rules"),
            items,
            q,
            &[
                "id",
                "security_group_id",
                "direction",
                "ethertype",
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_ip_prefix",
                "remote_group_id",
                "project_id",
                "tenant_id",
                "created_at",
                "updated_at",
                "revision_number",
                "description",
            ],
        )
    }

    async fn visible_rule(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(Doc, Option<Doc>)> {
        let r = db::get(ex, Table::SecurityGroupRules, id)
            .await?
            .ok_or_else(|| rule_not_found(id))?;
        let g = db::get(ex, Table::SecurityGroups, s(&r, "security_group_id")).await?;
        if !self.allowed(
            ctx,
            "get_security_group_rule",
            &Self::rule_target(&r, g.as_ref()),
        ) {
            return Err(rule_not_found(id));
        }
        Ok((r, g))
    }

    pub async fn rule_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        let (r, _) = self.visible_rule(&mut &self.db, ctx, id).await?;
        Ok(json!({"security_group_rule": listing::project(r, &q.fields())}))
    }

    pub async fn rule_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&[
            "security_group_id",
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
            "description",
            "project_id",
            "tenant_id",
            "remote_address_group_id",
        ])?;
        let gid = body
            .string("security_group_id", 255)?
            .ok_or_else(|| NetError::invalid("security_group_id is required"))?;
        let project = body.project(ctx.project_id.as_deref())?;
        self.authorize(
            ctx,
            "create_security_group_rule",
            &json!({"project_id": project}),
        )?;
        let rule = validate_rule(body, &gid, &project)?;
        let r = retrying!({
            let mut tx = self.begin().await?;
            let g = self.visible_group(&mut tx, ctx, &gid).await?;
            if s(&g, "project_id") != project && !self.allowed(ctx, "admin_only", &json!({})) {
                return Err(group_not_found(&gid));
            }
            if let Some(remote) = rule.get("remote_group_id").and_then(Value::as_str) {
                self.visible_group(&mut tx, ctx, remote).await?;
            }
            if let Some(existing) = db::rule_by_key(&mut tx, &gid, &model::rule_key(&rule)).await? {
                return Err(NetError::conflict(
                    "SecurityGroupRuleExists",
                    format!("Security group rule already exists. Rule id is {existing}."),
                ));
            }
            crate::quota::check(&mut tx, Table::SecurityGroupRules, s(&rule, "project_id")).await?;
            db::insert(&mut tx, Table::SecurityGroupRules, &rule).await?;
            // A rule changes its group: upstream bumps the group's revision.
            let mut g = g;
            let before = g
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            model::touch(&mut g);
            db::replace(&mut tx, Table::SecurityGroups, &g, before).await?;
            tx.commit().await?;
            Ok(rule.clone())
        })
        .await?;
        Ok(json!({"security_group_rule": r}))
    }

    pub async fn rule_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let (r, g) = self.visible_rule(&mut tx, ctx, id).await?;
            self.authorize(
                ctx,
                "delete_security_group_rule",
                &Self::rule_target(&r, g.as_ref()),
            )?;
            Self::check_if_match(&r, if_match)?;
            db::delete(&mut tx, Table::SecurityGroupRules, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

/// A new rule's document from a request, validated as Neutron's security-group
/// extension validates it.
fn validate_rule(body: &Body, gid: &str, project: &str) -> Result<Doc> {
    let direction = body.string("direction", 16)?.unwrap_or_default();
    if direction != "ingress" && direction != "egress" {
        return Err(NetError::invalid(format!(
            "'{direction}' is not in ['ingress', 'egress']"
        )));
    }
    let ethertype = match body.string("ethertype", 16)? {
        None => "IPv4".to_string(),
        Some(e) if e.eq_ignore_ascii_case("ipv4") => "IPv4".into(),
        Some(e) if e.eq_ignore_ascii_case("ipv6") => "IPv6".into(),
        Some(e) => {
            return Err(NetError::bad_request(
                "SecurityGroupRuleInvalidEtherType",
                format!(
                    "Security group rule for ethertype '{e}' not supported. Allowed values are ['IPv4', 'IPv6']."
                ),
            ));
        }
    };
    let protocol: Option<String> = match body.get("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(p)) if p.eq_ignore_ascii_case("any") || p.is_empty() => None,
        Some(Value::String(p)) => Some(p.to_ascii_lowercase()),
        Some(v) => Some(v.to_string()),
    };
    let number = match &protocol {
        None => None,
        Some(p) => match model::protocol_number(p) {
            Some(n) if p.parse::<i64>().map_or(true, |v| (0..=255).contains(&v)) => Some(n),
            _ => {
                let names: Vec<&str> = model::PROTOCOLS.iter().map(|(n, _)| *n).collect();
                return Err(NetError::bad_request(
                    "SecurityGroupRuleInvalidProtocol",
                    format!(
                        "Security group rule protocol {p} not supported. Only protocol values {names:?} and integer representations [0 to 255] are supported."
                    ),
                ));
            }
        },
    };
    let min = body.int("port_range_min")?;
    let max = body.int("port_range_max")?;
    if (min.is_some() || max.is_some()) && number.is_none() {
        return Err(NetError::bad_request(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        ));
    }
    match number {
        Some(n) if model::takes_ports(n) => {
            for v in [min, max].into_iter().flatten() {
                if !(1..=65535).contains(&v) {
                    return Err(NetError::bad_request(
                        "SecurityGroupInvalidPortValue",
                        format!("Invalid value for port {v}"),
                    ));
                }
            }
            if let (Some(a), Some(z)) = (min, max)
                && a > z
            {
                return Err(NetError::bad_request(
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                ));
            }
            if min.is_some() != max.is_some() {
                return Err(NetError::bad_request(
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                ));
            }
        }
        Some(1 | 58) => {
            for (v, what) in [(min, "type"), (max, "code")] {
                if let Some(v) = v
                    && !(0..=255).contains(&v)
                {
                    return Err(NetError::bad_request(
                        "SecurityGroupInvalidIcmpValue",
                        format!(
                            "Invalid value for ICMP {what} (port-range-{}): {v}",
                            if what == "type" { "min" } else { "max" }
                        ),
                    ));
                }
            }
            if min.is_none() && max.is_some() {
                return Err(NetError::bad_request(
                    "SecurityGroupMissingIcmpType",
                    format!(
                        "ICMP code (port-range-max) {} is provided but ICMP type (port-range-min) is missing.",
                        max.unwrap_or_default()
                    ),
                ));
            }
        }
        Some(_) if min.is_some() || max.is_some() => {
            return Err(NetError::invalid(format!(
                "Invalid protocol {} for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP",
                protocol.clone().unwrap_or_default()
            )));
        }
        _ => {}
    }
    let prefix = body.nullable_string("remote_ip_prefix")?.flatten();
    let remote_group = body.nullable_string("remote_group_id")?.flatten();
    if prefix.is_some() && remote_group.is_some() {
        return Err(NetError::bad_request(
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            "Only remote_ip_prefix or remote_group_id may be provided.",
        ));
    }
    if body
        .get("remote_address_group_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(NetError::invalid(
            "remote_address_group_id is not supported",
        ));
    }
    let normalized = match &prefix {
        None => None,
        Some(p) => {
            let net = ipam::parse_prefix(p)
                .ok_or_else(|| NetError::invalid(format!("'{p}' is not a valid IP prefix")))?;
            let v = if net.addr().is_ipv4() { "IPv4" } else { "IPv6" };
            if v != ethertype {
                return Err(NetError::bad_request(
                    "SecurityGroupRuleParameterConflict",
                    format!("Conflicting value ethertype {ethertype} for CIDR {p}"),
                ));
            }
            Some(net.trunc().to_string())
        }
    };
    let mut r = model::standard(
        &model::new_id(),
        project,
        &body.string("description", 255)?.unwrap_or_default(),
    );
    r.insert("security_group_id".into(), json!(gid));
    r.insert("direction".into(), json!(direction));
    r.insert("ethertype".into(), json!(ethertype));
    r.insert("protocol".into(), json!(protocol));
    r.insert("port_range_min".into(), json!(min));
    r.insert("port_range_max".into(), json!(max));
    r.insert("remote_ip_prefix".into(), json!(prefix));
    r.insert("normalized_cidr".into(), json!(normalized));
    r.insert("remote_group_id".into(), json!(remote_group));
    r.insert("remote_address_group_id".into(), Value::Null);
    Ok(r)
}
