//! Routers and floating IPs (Neutron's `router` and `extraroute` extensions): the
//! external gateway with SNAT, interfaces by subnet or port, static routes, floating
//! addresses from external networks associated to fixed addresses of ports.
//!
//! A router's ports and a floating IP's address are ordinary ports, so IPAM and the
//! unique keys of `manager` guard them too. The dataplane (namespaces, NAT) is the network
//! agent's: here only the intent is recorded.

use std::net::IpAddr;

use ferro_common::RequestContext;
use ferro_db::Tx;
use serde_json::{Value, json};

use crate::db::{self, Table};
use crate::fault::{NetError, Result};
use crate::ipam::{self, Cidr};
use crate::listing::{self, Query};
use crate::manager::{
    Doc, FixedIpRequest, Networking, PortAddressing, network_not_found, parse_fixed_ips,
    port_not_found, subnet_not_found,
};
use crate::model::{self, Body, b, s};

pub(crate) const ROUTER_INTERFACE: &str = "network:router_interface";
pub(crate) const ROUTER_GATEWAY: &str = "network:router_gateway";
const FLOATINGIP: &str = "network:floatingip";

fn router_not_found(id: &str) -> NetError {
    NetError::not_found("RouterNotFound", format!("Router {id} could not be found"))
}

fn fip_not_found(id: &str) -> NetError {
    NetError::not_found(
        "FloatingIPNotFound",
        format!("Floating IP {id} could not be found"),
    )
}

fn bad_router(msg: impl std::fmt::Display) -> NetError {
    NetError::bad_request("BadRequest", format!("Bad router request: {msg}."))
}

fn owner_target(doc: &Doc) -> Value {
    json!({"project_id": s(doc, "project_id"), "tenant_id": s(doc, "project_id")})
}

fn fixed_ips(port: &Doc) -> Vec<(String, String)> {
    port.get("fixed_ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["subnet_id"].as_str().unwrap_or("").to_string(),
                        f["ip_address"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Networking {
    /// Makes a port owned by the network itself (router and floating-IP ports) in `tx`.
    async fn insert_owned_port(
        &self,
        tx: &mut Tx,
        network_id: &str,
        project: &str,
        device_owner: &str,
        device_id: &str,
        fixed: Option<&[FixedIpRequest]>,
    ) -> Result<Doc> {
        let id = model::new_id();
        let mac = self.generate_mac();
        let ips = self
            .allocate_ips(
                tx,
                &PortAddressing {
                    network_id,
                    port_id: &id,
                    mac: &mac,
                    device_owner,
                },
                fixed,
                &[],
            )
            .await?;
        let mut doc = model::standard(&id, project, "");
        for (k, v) in [
            ("name", json!("")),
            ("network_id", json!(network_id)),
            ("admin_state_up", json!(true)),
            ("mac_address", json!(mac)),
            ("fixed_ips", json!(ips)),
            ("device_id", json!(device_id)),
            ("device_owner", json!(device_owner)),
            ("status", json!("DOWN")),
            ("security_groups", json!([])),
            ("allowed_address_pairs", json!([])),
            ("extra_dhcp_opts", json!([])),
            ("port_security_enabled", json!(false)),
            ("ip_allocation", json!("immediate")),
            ("binding:vnic_type", json!("normal")),
            ("binding:profile", json!({})),
            ("binding:host_id", json!("")),
            ("binding:vif_type", json!("unbound")),
            ("binding:vif_details", json!({})),
        ] {
            doc.insert(k.into(), v);
        }
        db::insert(tx, Table::Ports, &doc).await?;
        Ok(doc)
    }

    async fn drop_port(tx: &mut Tx, id: &str) -> Result<()> {
        db::release_port(tx, id).await?;
        db::port_set_groups(tx, id, &[]).await?;
        db::delete(tx, Table::Ports, id).await?;
        Ok(())
    }

    /// An external network the caller may use for a gateway or a floating IP.
    async fn external_network(&self, tx: &mut Tx, ctx: &RequestContext, id: &str) -> Result<Doc> {
        let net = self.visible_network(tx, ctx, id).await?;
        if !b(&net, "router:external") {
            return Err(NetError::bad_request(
                "BadRequest",
                format!("Bad request: Network {id} is not a valid external network."),
            ));
        }
        Ok(net)
    }

    // ---- routers

    async fn visible_router(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Doc> {
        let r = db::get(ex, Table::Routers, id)
            .await?
            .ok_or_else(|| router_not_found(id))?;
        if !self.allowed(ctx, "get_router", &owner_target(&r)) {
            return Err(router_not_found(id));
        }
        Ok(r)
    }

    /// Applies a requested `external_gateway_info` to router `r` inside `tx`.
    async fn set_gateway(
        &self,
        tx: &mut Tx,
        ctx: &RequestContext,
        r: &mut Doc,
        info: &Value,
        creating: bool,
    ) -> Result<()> {
        let rid = s(r, "id").to_string();
        let target = owner_target(r);
        let verb = if creating { "create" } else { "update" };
        let old = db::device_ports(tx, &rid, ROUTER_GATEWAY).await?;
        let info = match info {
            Value::Null => None,
            Value::Object(m) if m.is_empty() => None,
            Value::Object(m) => Some(m.clone()),
            other => {
                return Err(NetError::invalid(format!(
                    "Invalid data format for external_gateway_info: '{other}'"
                )));
            }
        };
        let Some(info) = info else {
            for p in old {
                Self::drop_port(tx, s(&p, "id")).await?;
            }
            r.insert("external_gateway_info".into(), Value::Null);
            return Ok(());
        };
        if let Some(k) = info
            .keys()
            .find(|k| !["network_id", "enable_snat", "external_fixed_ips"].contains(&k.as_str()))
        {
            return Err(NetError::invalid(format!(
                "Unrecognized attribute '{k}' in external_gateway_info"
            )));
        }
        let net_id = info
            .get("network_id")
            .and_then(Value::as_str)
            .ok_or_else(|| NetError::invalid("external_gateway_info requires network_id"))?
            .to_string();
        let snat = match info.get("enable_snat") {
            None => true,
            Some(v) => {
                self.authorize_or(
                    ctx,
                    &format!("{verb}_router:external_gateway_info:enable_snat"),
                    &target,
                )?;
                model::to_bool(v).ok_or_else(|| {
                    NetError::invalid(format!("'{v}' cannot be converted to boolean"))
                })?
            }
        };
        let fixed = match info.get("external_fixed_ips") {
            None => None,
            Some(Value::Array(l)) => {
                self.authorize_or(
                    ctx,
                    &format!("{verb}_router:external_gateway_info:external_fixed_ips"),
                    &target,
                )?;
                Some(parse_fixed_ips(l)?)
            }
            Some(v) => return Err(NetError::invalid(format!("'{v}' is not a list"))),
        };
        self.external_network(tx, ctx, &net_id).await?;
        // The same network again keeps its port (and address) unless new ones are asked.
        let same = old.iter().any(|p| s(p, "network_id") == net_id);
        let port = if same && fixed.is_none() {
            old.into_iter().next().unwrap_or_default()
        } else {
            for p in &old {
                Self::drop_port(tx, s(p, "id")).await?;
            }
            self.insert_owned_port(tx, &net_id, "", ROUTER_GATEWAY, &rid, fixed.as_deref())
                .await?
        };
        let ext_ips: Vec<Value> = fixed_ips(&port)
            .into_iter()
            .map(|(sid, ip)| json!({"subnet_id": sid, "ip_address": ip}))
            .collect();
        r.insert(
            "external_gateway_info".into(),
            json!({"network_id": net_id, "enable_snat": snat, "external_fixed_ips": ext_ips}),
        );
        Ok(())
    }

    fn authorize_or(&self, ctx: &RequestContext, rule: &str, target: &Value) -> Result<()> {
        if self.allowed(ctx, rule, target) {
            Ok(())
        } else {
            Err(NetError::forbidden(rule))
        }
    }

    /// Subnets the router is connected to (interfaces and gateway), as CIDRs.
    async fn router_cidrs(&self, tx: &mut Tx, rid: &str) -> Result<Vec<(String, Cidr)>> {
        let mut out = Vec::new();
        for owner in [ROUTER_INTERFACE, ROUTER_GATEWAY] {
            for p in db::device_ports(tx, rid, owner).await? {
                for (sid, _) in fixed_ips(&p) {
                    if let Some(sn) = db::get(tx, Table::Subnets, &sid).await?
                        && let Ok(c) = Cidr::parse(s(&sn, "cidr"))
                    {
                        out.push((sid, c));
                    }
                }
            }
        }
        Ok(out)
    }

    fn parse_routes(list: &[Value]) -> Result<Vec<(Value, IpAddr)>> {
        let mut out: Vec<(Value, IpAddr)> = Vec::new();
        for r in list {
            let dest = r.get("destination").and_then(Value::as_str).unwrap_or("");
            let hop = r.get("nexthop").and_then(Value::as_str).unwrap_or("");
            let d = Cidr::parse(dest).map_err(|e| {
                NetError::bad_request(
                    "InvalidRoutes",
                    format!("Invalid format for routes: {r}, {e}"),
                )
            })?;
            let h = ipam::parse_ip(hop).ok_or_else(|| {
                NetError::bad_request(
                    "InvalidRoutes",
                    format!(
                        "Invalid format for routes: {r}, the nexthop is not a valid IP address"
                    ),
                )
            })?;
            let route = json!({"destination": d.net.to_string(), "nexthop": h.to_string()});
            if out.iter().any(|(x, _)| *x == route) {
                return Err(NetError::bad_request(
                    "InvalidRoutes",
                    format!("Invalid format for routes: {r}, duplicate route"),
                ));
            }
            out.push((route, h));
        }
        Ok(out)
    }

    pub async fn router_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        let items = db::list(&mut &self.db, Table::Routers, None)
            .await?
            .into_iter()
            .filter(|r| self.allowed(ctx, "get_router", &owner_target(r)))
            .collect();
        listing::respond(
            "routers",
            &self.collection_url("routers"),
            items,
            q,
            &[
                "id",
                "name",
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

    pub async fn router_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        let r = self.visible_router(&mut &self.db, ctx, id).await?;
        Ok(json!({"router": listing::project(r, &q.fields())}))
    }

    pub async fn router_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&[
            "name",
            "description",
            "admin_state_up",
            "external_gateway_info",
            "project_id",
            "tenant_id",
            "distributed",
            "ha",
            "availability_zone_hints",
            "flavor_id",
        ])?;
        let project = body.project(ctx.project_id.as_deref())?;
        let target = json!({"project_id": project, "tenant_id": project});
        self.authorize(ctx, "create_router", &target)?;
        for k in ["distributed", "ha"] {
            if body.boolean(k)? == Some(true) {
                return Err(NetError::invalid(format!("{k} routers are not supported")));
            }
        }
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
        doc.insert(
            "admin_state_up".into(),
            json!(body.boolean("admin_state_up")?.unwrap_or(true)),
        );
        doc.insert("status".into(), json!("ACTIVE"));
        doc.insert("external_gateway_info".into(), Value::Null);
        doc.insert("routes".into(), json!([]));
        doc.insert("distributed".into(), json!(false));
        doc.insert("ha".into(), json!(false));
        doc.insert("flavor_id".into(), Value::Null);
        doc.insert(
            "availability_zone_hints".into(),
            json!(body.strings("availability_zone_hints")?.unwrap_or_default()),
        );
        doc.insert("availability_zones".into(), json!([]));
        let gw = body.get("external_gateway_info").cloned();
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let mut doc = doc.clone();
            if let Some(info) = &gw {
                self.set_gateway(&mut tx, ctx, &mut doc, info, true).await?;
            }
            crate::quota::check(&mut tx, Table::Routers, s(&doc, "project_id")).await?;
            db::insert(&mut tx, Table::Routers, &doc).await?;
            tx.commit().await?;
            Ok(doc)
        })
        .await?;
        Ok(json!({"router": doc}))
    }

    pub async fn router_update(
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
            "external_gateway_info",
            "routes",
        ])?;
        let routes = body
            .list("routes")?
            .map(|l| Self::parse_routes(&l))
            .transpose()?;
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let mut r = self.visible_router(&mut tx, ctx, id).await?;
            self.authorize(ctx, "update_router", &owner_target(&r))?;
            Self::check_if_match(&r, if_match)?;
            let before = r.get("revision_number").and_then(Value::as_i64).unwrap_or(0);
            if let Some(n) = body.string("name", 255)? {
                r.insert("name".into(), json!(n));
            }
            if let Some(d) = body.string("description", 255)? {
                r.insert("description".into(), json!(d));
            }
            if let Some(a) = body.boolean("admin_state_up")? {
                r.insert("admin_state_up".into(), json!(a));
            }
            if let Some(info) = body.get("external_gateway_info") {
                self.set_gateway(&mut tx, ctx, &mut r, info, false).await?;
            }
            if let Some(routes) = &routes {
                let cidrs = self.router_cidrs(&mut tx, id).await?;
                for (route, hop) in routes {
                    if !cidrs.iter().any(|(_, c)| c.contains(hop)) {
                        return Err(NetError::bad_request(
                            "InvalidRoutes",
                            format!("Invalid format for routes: {route}, the nexthop is not connected with router"),
                        ));
                    }
                }
                r.insert(
                    "routes".into(),
                    Value::Array(routes.iter().map(|(x, _)| x.clone()).collect()),
                );
            }
            model::touch(&mut r);
            db::replace(&mut tx, Table::Routers, &r, before).await?;
            tx.commit().await?;
            Ok(r)
        })
        .await?;
        Ok(json!({"router": doc}))
    }

    pub async fn router_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let r = self.visible_router(&mut tx, ctx, id).await?;
            self.authorize(ctx, "delete_router", &owner_target(&r))?;
            Self::check_if_match(&r, if_match)?;
            if !db::device_ports(&mut tx, id, ROUTER_INTERFACE)
                .await?
                .is_empty()
            {
                return Err(NetError::conflict(
                    "RouterInUse",
                    format!("Router {id} still has ports"),
                ));
            }
            for p in db::device_ports(&mut tx, id, ROUTER_GATEWAY).await? {
                Self::drop_port(&mut tx, s(&p, "id")).await?;
            }
            db::delete(&mut tx, Table::Routers, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    fn interface_info(r: &Doc, port: &Doc) -> Value {
        let ips = fixed_ips(port);
        json!({
            "id": s(r, "id"),
            "tenant_id": s(r, "project_id"),
            "project_id": s(r, "project_id"),
            "port_id": s(port, "id"),
            "network_id": s(port, "network_id"),
            "subnet_id": ips.first().map(|(sid, _)| sid.clone()).unwrap_or_default(),
            "subnet_ids": ips.iter().map(|(sid, _)| sid.clone()).collect::<Vec<_>>(),
        })
    }

    fn interface_target(body: &Value) -> Result<(Option<String>, Option<String>)> {
        let subnet = body
            .get("subnet_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let port = body
            .get("port_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        match (&subnet, &port) {
            (Some(_), Some(_)) => Err(bad_router("Cannot specify both subnet-id and port-id")),
            (None, None) => Err(bad_router("Either subnet_id or port_id must be specified")),
            _ => Ok((subnet, port)),
        }
    }

    pub async fn router_add_interface(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Value,
    ) -> Result<Value> {
        let (subnet_id, port_id) = Self::interface_target(body)?;
        retrying!({
            let mut tx = self.begin().await?;
            let r = self.visible_router(&mut tx, ctx, id).await?;
            self.authorize(ctx, "add_router_interface", &owner_target(&r))?;
            let connected = self.router_cidrs(&mut tx, id).await?;
            let port = match (&subnet_id, &port_id) {
                (Some(sid), _) => {
                    let sn = db::get(&mut tx, Table::Subnets, sid)
                        .await?
                        .ok_or_else(|| subnet_not_found(sid))?;
                    let net = db::get(&mut tx, Table::Networks, s(&sn, "network_id")).await?;
                    if !self.allowed(ctx, "get_subnet", &Self::child_target(&sn, net.as_ref())) {
                        return Err(subnet_not_found(sid));
                    }
                    let Some(gw) = sn.get("gateway_ip").and_then(Value::as_str) else {
                        return Err(bad_router("Subnet for router interface must have a gateway IP"));
                    };
                    let cidr = Cidr::parse(s(&sn, "cidr")).map_err(NetError::internal)?;
                    if let Some((other, c)) = connected.iter().find(|(_, c)| c.overlaps(&cidr)) {
                        return Err(bad_router(format!(
                            "Cidr {} of subnet {sid} overlaps with cidr {} of subnet {other}",
                            cidr.net, c.net
                        )));
                    }
                    let gw = ipam::parse_ip(gw).ok_or_else(|| NetError::internal("stored gateway"))?;
                    let req = [FixedIpRequest {
                        subnet_id: Some(sid.clone()),
                        ip_address: Some(gw),
                    }];
                    self.insert_owned_port(&mut tx, s(&sn, "network_id"), s(&r, "project_id"), ROUTER_INTERFACE, id, Some(&req))
                        .await?
                }
                (None, Some(pid)) => {
                    let (mut p, _) = self.visible_port(&mut tx, ctx, pid).await?;
                    if !s(&p, "device_id").is_empty() || !s(&p, "device_owner").is_empty() {
                        return Err(NetError::conflict(
                            "PortInUse",
                            format!(
                                "Unable to complete operation on port {pid} for network {}. Port already has an attached device {}.",
                                s(&p, "network_id"),
                                s(&p, "device_id")
                            ),
                        ));
                    }
                    let ips = fixed_ips(&p);
                    if ips.is_empty() {
                        return Err(bad_router("Router port must have at least one fixed IP"));
                    }
                    for (sid, _) in &ips {
                        if let Some(sn) = db::get(&mut tx, Table::Subnets, sid).await?
                            && let Ok(cidr) = Cidr::parse(s(&sn, "cidr"))
                            && let Some((other, c)) = connected.iter().find(|(_, c)| c.overlaps(&cidr))
                        {
                            return Err(bad_router(format!(
                                "Cidr {} of subnet {sid} overlaps with cidr {} of subnet {other}",
                                cidr.net, c.net
                            )));
                        }
                    }
                    let before = p.get("revision_number").and_then(Value::as_i64).unwrap_or(0);
                    p.insert("device_owner".into(), json!(ROUTER_INTERFACE));
                    p.insert("device_id".into(), json!(id));
                    p.insert("security_groups".into(), json!([]));
                    model::touch(&mut p);
                    db::replace(&mut tx, Table::Ports, &p, before).await?;
                    db::port_set_groups(&mut tx, pid, &[]).await?;
                    p
                }
                (None, None) => return Err(bad_router("Either subnet_id or port_id must be specified")),
            };
            let mut r = r;
            let before = r.get("revision_number").and_then(Value::as_i64).unwrap_or(0);
            model::touch(&mut r);
            db::replace(&mut tx, Table::Routers, &r, before).await?;
            tx.commit().await?;
            Ok(Self::interface_info(&r, &port))
        })
        .await
    }

    pub async fn router_remove_interface(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Value,
    ) -> Result<Value> {
        let (subnet_id, port_id) = Self::interface_target(body)?;
        retrying!({
            let mut tx = self.begin().await?;
            let r = self.visible_router(&mut tx, ctx, id).await?;
            self.authorize(ctx, "remove_router_interface", &owner_target(&r))?;
            let ports = db::device_ports(&mut tx, id, ROUTER_INTERFACE).await?;
            let port = match (&subnet_id, &port_id) {
                (_, Some(pid)) => {
                    let p = ports
                        .iter()
                        .find(|p| s(p, "id") == pid)
                        .cloned()
                        .ok_or_else(|| {
                            NetError::not_found(
                                "RouterInterfaceNotFound",
                                format!("Router {id} does not have an interface with id {pid}"),
                            )
                        })?;
                    if let Some(sid) = &subnet_id
                        && !fixed_ips(&p).iter().any(|(x, _)| x == sid)
                    {
                        return Err(NetError::bad_request(
                            "SubnetMismatchForPort",
                            format!(
                                "Subnet on port {pid} does not match the requested subnet {sid}."
                            ),
                        ));
                    }
                    p
                }
                (Some(sid), None) => ports
                    .iter()
                    .find(|p| fixed_ips(p).iter().any(|(x, _)| x == sid))
                    .cloned()
                    .ok_or_else(|| {
                        NetError::not_found(
                            "RouterInterfaceNotFoundForSubnet",
                            format!("Router {id} has no interface on subnet {sid}"),
                        )
                    })?,
                (None, None) => {
                    return Err(bad_router("Either subnet_id or port_id must be specified"));
                }
            };
            let info = Self::interface_info(&r, &port);
            Self::drop_port(&mut tx, s(&port, "id")).await?;
            let mut r = r;
            let before = r
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            model::touch(&mut r);
            db::replace(&mut tx, Table::Routers, &r, before).await?;
            tx.commit().await?;
            Ok(info)
        })
        .await
    }

    // ---- floating IPs

    async fn visible_fip(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Doc> {
        let f = db::get(ex, Table::FloatingIps, id)
            .await?
            .ok_or_else(|| fip_not_found(id))?;
        if !self.allowed(ctx, "get_floatingip", &owner_target(&f)) {
            return Err(fip_not_found(id));
        }
        Ok(f)
    }

    /// Points floating IP `f` at `port_id` (and one of its fixed addresses), or clears it.
    async fn associate(
        &self,
        tx: &mut Tx,
        ctx: &RequestContext,
        f: &mut Doc,
        port_id: Option<&str>,
        fixed_ip: Option<&str>,
    ) -> Result<()> {
        let Some(pid) = port_id else {
            f.insert("port_id".into(), Value::Null);
            f.insert("fixed_ip_address".into(), Value::Null);
            f.insert("router_id".into(), Value::Null);
            f.insert("status".into(), json!("DOWN"));
            return Ok(());
        };
        let (port, _) = self
            .visible_port(tx, ctx, pid)
            .await
            .map_err(|_| port_not_found(pid))?;
        if s(&port, "project_id") != s(f, "project_id")
            && !self.allowed(ctx, "admin_only", &json!({}))
        {
            return Err(port_not_found(pid));
        }
        let v4: Vec<(String, String)> = fixed_ips(&port)
            .into_iter()
            .filter(|(_, ip)| ipam::parse_ip(ip).is_some_and(|a| a.is_ipv4()))
            .collect();
        let (sid, ip) = match fixed_ip {
            Some(want) => v4
                .iter()
                .find(|(_, ip)| ip == want)
                .cloned()
                .ok_or_else(|| {
                    NetError::bad_request(
                        "BadRequest",
                        format!(
                            "Bad floatingip request: Port {pid} does not have fixed ip {want}."
                        ),
                    )
                })?,
            None => match v4.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(NetError::bad_request(
                        "BadRequest",
                        format!(
                            "Bad floatingip request: Port {pid} does not have any IPv4 address. Cannot associate with a floating IP."
                        ),
                    ));
                }
                _ => {
                    return Err(NetError::bad_request(
                        "BadRequest",
                        format!(
                            "Bad floatingip request: Port {pid} has multiple fixed IPv4 addresses. Must provide a specific IPv4 address when assigning a floating IP."
                        ),
                    ));
                }
            },
        };
        // A router with its gateway on the floating network and an interface on the subnet.
        let ext = s(f, "floating_network_id").to_string();
        let mut router_id = None;
        for gw in db::list(tx, Table::Ports, Some(("network_id", &ext))).await? {
            if s(&gw, "device_owner") != ROUTER_GATEWAY {
                continue;
            }
            let rid = s(&gw, "device_id").to_string();
            let ifaces = db::device_ports(tx, &rid, ROUTER_INTERFACE).await?;
            if ifaces
                .iter()
                .any(|p| fixed_ips(p).iter().any(|(x, _)| *x == sid))
            {
                router_id = Some(rid);
                break;
            }
        }
        let Some(router_id) = router_id else {
            return Err(NetError::not_found(
                "ExternalGatewayForFloatingIPNotFound",
                format!(
                    "External network {ext} is not reachable from subnet {sid}. Therefore, cannot associate Port {pid} with a Floating IP."
                ),
            ));
        };
        if let Some(other) = db::floatingip_for(tx, pid, &ip).await?
            && other != s(f, "id")
        {
            return Err(NetError::conflict(
                "FloatingIPPortAlreadyAssociated",
                format!(
                    "Cannot associate floating IP {} ({}) with port {pid} using fixed IP {ip}, as that fixed IP already has a floating IP on external network {ext}.",
                    s(f, "floating_ip_address"),
                    s(f, "id")
                ),
            ));
        }
        let unchanged = s(f, "port_id") == pid
            && s(f, "fixed_ip_address") == ip
            && s(f, "router_id") == router_id;
        f.insert("port_id".into(), json!(pid));
        f.insert("fixed_ip_address".into(), json!(ip));
        f.insert("router_id".into(), json!(router_id));
        // The L3 agent holding the router makes it ACTIVE once it translates it (upstream:
        // a new association is DOWN until then; no agent, no ACTIVE).
        if !unchanged {
            f.insert("status".into(), json!("DOWN"));
        }
        Ok(())
    }

    pub async fn fip_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        let items = db::list(&mut &self.db, Table::FloatingIps, None)
            .await?
            .into_iter()
            .filter(|f| self.allowed(ctx, "get_floatingip", &owner_target(f)))
            .collect();
        listing::respond(
            "floatingips",
            &self.collection_url("floatingips"),
            items,
            q,
            &[
                "id",
                "floating_ip_address",
                "floating_network_id",
                "fixed_ip_address",
                "port_id",
                "router_id",
                "status",
                "project_id",
                "tenant_id",
                "created_at",
                "updated_at",
                "revision_number",
                "description",
            ],
        )
    }

    pub async fn fip_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        let f = self.visible_fip(&mut &self.db, ctx, id).await?;
        Ok(json!({"floatingip": listing::project(f, &q.fields())}))
    }

    pub async fn fip_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&[
            "floating_network_id",
            "port_id",
            "fixed_ip_address",
            "floating_ip_address",
            "subnet_id",
            "description",
            "project_id",
            "tenant_id",
        ])?;
        let net_id = body
            .string("floating_network_id", 255)?
            .ok_or_else(|| NetError::invalid("floating_network_id is required"))?;
        let project = body.project(ctx.project_id.as_deref())?;
        let target = json!({"project_id": project, "tenant_id": project});
        self.authorize(ctx, "create_floatingip", &target)?;
        let want_ip = match body.string("floating_ip_address", 64)? {
            Some(ip) => {
                self.authorize(ctx, "create_floatingip:floating_ip_address", &target)?;
                Some(ipam::parse_ip(&ip).ok_or_else(|| {
                    NetError::invalid(format!("'{ip}' is not a valid IP address"))
                })?)
            }
            None => None,
        };
        let subnet = body.nullable_string("subnet_id")?.flatten();
        let port_id = body.nullable_string("port_id")?.flatten();
        let fixed_ip = body.nullable_string("fixed_ip_address")?.flatten();
        let id = model::new_id();
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let net = self
                .external_network(&mut tx, ctx, &net_id)
                .await
                .map_err(|e| {
                    if e.status == 404 {
                        network_not_found(&net_id)
                    } else {
                        e
                    }
                })?;
            let req = if want_ip.is_some() || subnet.is_some() {
                Some(vec![FixedIpRequest {
                    subnet_id: subnet.clone(),
                    ip_address: want_ip,
                }])
            } else {
                None
            };
            let port = self
                .insert_owned_port(
                    &mut tx,
                    s(&net, "id"),
                    &project,
                    FLOATINGIP,
                    &id,
                    req.as_deref(),
                )
                .await?;
            let Some((_, address)) = fixed_ips(&port).into_iter().next() else {
                return Err(NetError::conflict(
                    "IpAddressGenerationFailure",
                    format!("No more IP addresses available on network {net_id}."),
                ));
            };
            let mut f = model::standard(
                &id,
                &project,
                &body.string("description", 255)?.unwrap_or_default(),
            );
            f.insert("floating_ip_address".into(), json!(address));
            f.insert("floating_network_id".into(), json!(net_id));
            f.insert("qos_policy_id".into(), Value::Null);
            f.insert("port_details".into(), Value::Null);
            f.insert("port_forwardings".into(), json!([]));
            self.associate(
                &mut tx,
                ctx,
                &mut f,
                port_id.as_deref(),
                fixed_ip.as_deref(),
            )
            .await?;
            crate::quota::check(&mut tx, Table::FloatingIps, s(&f, "project_id")).await?;
            db::insert(&mut tx, Table::FloatingIps, &f).await?;
            tx.commit().await?;
            Ok(f)
        })
        .await?;
        Ok(json!({"floatingip": doc}))
    }

    pub async fn fip_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Body,
        if_match: Option<i64>,
    ) -> Result<Value> {
        body.only(&["port_id", "fixed_ip_address", "description"])?;
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let mut f = self.visible_fip(&mut tx, ctx, id).await?;
            self.authorize(ctx, "update_floatingip", &owner_target(&f))?;
            Self::check_if_match(&f, if_match)?;
            let before = f
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(d) = body.string("description", 255)? {
                f.insert("description".into(), json!(d));
            }
            if body.has("port_id") {
                let pid = body.nullable_string("port_id")?.flatten();
                let fixed = body.nullable_string("fixed_ip_address")?.flatten();
                self.associate(&mut tx, ctx, &mut f, pid.as_deref(), fixed.as_deref())
                    .await?;
            }
            model::touch(&mut f);
            db::replace(&mut tx, Table::FloatingIps, &f, before).await?;
            tx.commit().await?;
            Ok(f)
        })
        .await?;
        Ok(json!({"floatingip": doc}))
    }

    pub async fn fip_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let f = self.visible_fip(&mut tx, ctx, id).await?;
            self.authorize(ctx, "delete_floatingip", &owner_target(&f))?;
            Self::check_if_match(&f, if_match)?;
            for p in db::device_ports(&mut tx, id, FLOATINGIP).await? {
                Self::drop_port(&mut tx, s(&p, "id")).await?;
            }
            db::delete(&mut tx, Table::FloatingIps, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Deletes the floating IPs of external network `network_id` that no port uses, with
    /// their ports: a network about to be deleted takes them along (upstream's
    /// `delete_disassociated_floatingips`); associated ones keep it in use.
    pub(crate) async fn drop_free_floatingips(tx: &mut Tx, network_id: &str) -> Result<()> {
        let fips = db::list(
            tx,
            Table::FloatingIps,
            Some(("floating_network_id", network_id)),
        );
        for f in fips.await? {
            if f.get("port_id").is_some_and(|p| !p.is_null()) {
                continue;
            }
            let id = s(&f, "id").to_string();
            for p in db::device_ports(tx, &id, FLOATINGIP).await? {
                Self::drop_port(tx, s(&p, "id")).await?;
            }
            db::delete(tx, Table::FloatingIps, &id).await?;
        }
        Ok(())
    }

    /// Clears the floating IPs of a port being deleted (upstream disassociates them).
    pub(crate) async fn disassociate_port(tx: &mut Tx, port_id: &str) -> Result<()> {
        for mut f in db::floatingips_of_port(tx, port_id).await? {
            let before = f
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            f.insert("port_id".into(), Value::Null);
            f.insert("fixed_ip_address".into(), Value::Null);
            f.insert("router_id".into(), Value::Null);
            f.insert("status".into(), json!("DOWN"));
            model::touch(&mut f);
            db::replace(tx, Table::FloatingIps, &f, before).await?;
        }
        Ok(())
    }

    // ---- network IP availability and agents

    pub async fn ip_availability_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        self.authorize(ctx, "get_network_ip_availability", &json!({}))?;
        let mut items = Vec::new();
        for net in db::list(&mut &self.db, Table::Networks, None).await? {
            items.push(self.availability(&net).await?);
        }
        listing::respond(
            "network_ip_availabilities",
            &self.collection_url("network-ip-availabilities"),
            items,
            q,
            &["network_id", "network_name", "project_id", "tenant_id"],
        )
    }

    pub async fn ip_availability_show(&self, ctx: &RequestContext, id: &str) -> Result<Value> {
        self.authorize(ctx, "get_network_ip_availability", &json!({}))?;
        let net = db::get(&mut &self.db, Table::Networks, id)
            .await?
            .ok_or_else(|| network_not_found(id))?;
        Ok(json!({"network_ip_availability": self.availability(&net).await?}))
    }

    async fn availability(&self, net: &Doc) -> Result<Doc> {
        let nid = s(net, "id");
        let mut subnets = Vec::new();
        let (mut total, mut used) = (0u128, 0u128);
        for sn in db::list(&mut &self.db, Table::Subnets, Some(("network_id", nid))).await? {
            let pools: u128 = sn
                .get("allocation_pools")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| {
                            let a = ipam::parse_ip(p["start"].as_str()?)?;
                            let z = ipam::parse_ip(p["end"].as_str()?)?;
                            Some(ipam::to_u128(&z) - ipam::to_u128(&a) + 1)
                        })
                        .sum()
                })
                .unwrap_or(0);
            let n = db::subnet_allocations(&mut &self.db, s(&sn, "id"))
                .await?
                .len() as u128;
            total += pools;
            used += n;
            subnets.push(json!({
                "subnet_id": s(&sn, "id"),
                "subnet_name": s(&sn, "name"),
                "cidr": s(&sn, "cidr"),
                "ip_version": sn.get("ip_version").cloned().unwrap_or(Value::Null),
                "total_ips": pools.min(i64::MAX as u128) as i64,
                "used_ips": n as i64,
            }));
        }
        let mut out = Doc::new();
        out.insert("network_id".into(), json!(nid));
        out.insert("network_name".into(), json!(s(net, "name")));
        out.insert("project_id".into(), json!(s(net, "project_id")));
        out.insert("tenant_id".into(), json!(s(net, "project_id")));
        out.insert("subnet_ip_availability".into(), Value::Array(subnets));
        out.insert(
            "total_ips".into(),
            json!(total.min(i64::MAX as u128) as i64),
        );
        out.insert("used_ips".into(), json!(used as i64));
        Ok(out)
    }
}
