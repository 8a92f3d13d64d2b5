//! Servers on networks, through the network API as Nova's neutron glue does it: the API
//! checks a create's `networks` with the caller's token (networks they may use, ports that
//! are free), the conductor creates or binds the ports on the chosen host with the service's
//! token (`device_id` the server, `device_owner` `compute:nova`, `binding:host_id` the host)
//! and keeps what it got as the server's network info; deleting the server deletes the
//! ports it made and unbinds the ones the user brought.

use ferro_api_types::compute::{HostRoute, NicSubnet};
use ferro_client::Client;
use ferro_common::RequestContext;
use serde_json::{Value, json};

use crate::Compute;
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, RequestedNetwork, Vif};

const DEVICE_OWNER: &str = "compute:nova";

pub(crate) fn network_api(e: ferro_client::ClientError) -> Fault {
    Fault::internal(format!("network API: {e}"))
}

/// The `key` collection the network API lists at `path` (`ports`, `networks`...); any
/// answer but 200 is our failure.
pub(crate) async fn neutron_list(c: &Client, path: &str, key: &str) -> Result<Vec<Value>> {
    let r = c.get(path).await.map_err(network_api)?;
    if r.status != 200 {
        return Err(Fault::internal(format!(
            "network API answered {} listing {key}",
            r.status
        )));
    }
    Ok(r.body[key].as_array().cloned().unwrap_or_default())
}

impl Compute {
    /// The network API as the caller.
    pub(crate) fn neutron_as(&self, ctx: &RequestContext) -> Result<Client> {
        self.network_client(&ctx.token)
    }

    /// The network API as the compute service (admin).
    pub(crate) async fn neutron(&self) -> Result<Client> {
        self.network_client(&self.service_token().await?)
    }

    /// The one network `auto` (or an absent `networks` before 2.37, or an attach without
    /// a network) may use: `project`'s own networks and the shared ones, not external, as
    /// the caller sees them (neutron glue `_get_available_networks`, which asks by project
    /// so an admin does not pick another project's network). None, or 409 when several
    /// qualify.
    pub(crate) async fn only_network(
        &self,
        ctx: &RequestContext,
        project: &str,
    ) -> Result<Option<String>> {
        let c = self.neutron_as(ctx)?;
        let mut ids = Vec::new();
        for filter in [
            format!(
                "project_id={}&shared=False",
                crate::manager::percent_encode(project)
            ),
            "shared=True".to_string(),
        ] {
            let path = format!("/v2.0/networks?router:external=False&fields=id&{filter}");
            for n in neutron_list(&c, &path, "networks").await? {
                if let Some(id) = n["id"].as_str()
                    && !ids.iter().any(|x| x == id)
                {
                    ids.push(id.to_string());
                }
            }
        }
        match ids.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            _ => Err(Fault::conflict(
                "Multiple possible networks found, use a Network ID to be more specific.",
            )),
        }
    }

    /// The network of `project`'s auto-allocated topology (made by the network API when
    /// missing); 400 as upstream when it cannot be made.
    async fn auto_allocated_network(&self, ctx: &RequestContext, project: &str) -> Result<String> {
        let r = self
            .neutron_as(ctx)?
            .get(&format!("/v2.0/auto-allocated-topology/{project}"))
            .await
            .map_err(network_api)?;
        match r.body["auto_allocated_topology"]["id"].as_str() {
            Some(id) if r.status == 200 => Ok(id.to_string()),
            _ => {
                tracing::info!(%project, status = r.status, body = %r.body, "no auto-allocated network");
                Err(Fault::bad_request(format!(
                    "Unable to automatically allocate a network for project {project}"
                )))
            }
        }
    }

    /// A create's `networks` checked against the network API: what the conductor will
    /// allocate, in order.
    pub(crate) async fn requested_networks(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        networks: &Value,
    ) -> Result<Vec<RequestedNetwork>> {
        let list = match networks {
            Value::String(s) if s == "none" => return Ok(Vec::new()),
            Value::String(s) if s == "auto" => {
                let project = ctx.project_id.clone().unwrap_or_default();
                // The project's only network, else Neutron's auto-allocated topology
                // (made for it on first use), as Nova's `_auto_allocate_network`.
                let id = match self.only_network(ctx, &project).await? {
                    Some(id) => id,
                    None => self.auto_allocated_network(ctx, &project).await?,
                };
                return Ok(vec![RequestedNetwork {
                    network_id: Some(id),
                    ..RequestedNetwork::default()
                }]);
            }
            Value::Null if !v.at_least(2, 37) => {
                return Ok(self
                    .only_network(ctx, ctx.project_id.as_deref().unwrap_or_default())
                    .await?
                    .map(|id| RequestedNetwork {
                        network_id: Some(id),
                        ..RequestedNetwork::default()
                    })
                    .into_iter()
                    .collect());
            }
            Value::Array(a) => a,
            _ => return Err(Fault::bad_request("Bad networks format")),
        };
        let neutron = self.neutron_as(ctx)?;
        let mut out = Vec::new();
        for n in list {
            if let Some(port) = n["port"].as_str() {
                let r = neutron
                    .get(&format!("/v2.0/ports/{port}"))
                    .await
                    .map_err(network_api)?;
                if r.status != 200 {
                    return Err(Fault::bad_request(format!(
                        "Port id {port} could not be found."
                    )));
                }
                if r.body["port"]["device_id"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
                {
                    return Err(Fault::conflict(format!("Port {port} is still in use.")));
                }
                if out
                    .iter()
                    .any(|x: &RequestedNetwork| x.port_id.as_deref() == Some(port))
                {
                    return Err(Fault::bad_request(format!(
                        "Port {port} is requested more than once."
                    )));
                }
                out.push(RequestedNetwork {
                    port_id: Some(port.to_string()),
                    network_id: r.body["port"]["network_id"].as_str().map(str::to_string),
                    ..RequestedNetwork::default()
                });
                continue;
            }
            let Some(id) = n["uuid"].as_str() else {
                return Err(Fault::bad_request(
                    "Bad network format: missing 'uuid' or 'port'",
                ));
            };
            let r = neutron
                .get(&format!("/v2.0/networks/{id}"))
                .await
                .map_err(network_api)?;
            if r.status != 200 {
                return Err(Fault::bad_request(format!(
                    "Network {id} could not be found."
                )));
            }
            let fixed_ip = n["fixed_ip"].as_str().map(str::to_string);
            if let Some(ip) = &fixed_ip
                && ip.parse::<std::net::IpAddr>().is_err()
            {
                return Err(Fault::bad_request(format!(
                    "Invalid fixed IP address ({ip})"
                )));
            }
            out.push(RequestedNetwork {
                network_id: Some(id.to_string()),
                fixed_ip,
                ..RequestedNetwork::default()
            });
        }
        Ok(out)
    }

    /// The ids of security groups named (or given by id) in `names`, as the caller sees
    /// them: 400 for one that does not exist.
    pub(crate) async fn security_group_ids(
        &self,
        ctx: &RequestContext,
        names: &[String],
    ) -> Result<Vec<String>> {
        let project = ctx.project_id.clone().unwrap_or_default();
        let r = self
            .neutron_as(ctx)?
            .get(&format!(
                "/v2.0/security-groups?project_id={project}&fields=id&fields=name"
            ))
            .await
            .map_err(network_api)?;
        let groups = r.body["security_groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut ids = Vec::new();
        for name in names {
            let found = groups
                .iter()
                .find(|g| g["name"] == name.as_str() || g["id"] == name.as_str())
                .and_then(|g| g["id"].as_str())
                .ok_or_else(|| {
                    Fault::bad_request(format!(
                        "Security group {name} not found for project {project}."
                    ))
                })?;
            if !ids.iter().any(|i| i == found) {
                ids.push(found.to_string());
            }
        }
        Ok(ids)
    }

    /// `addSecurityGroup` / `removeSecurityGroup`: the group on every port of the server.
    pub async fn server_security_group(
        &self,
        ctx: &RequestContext,
        id: &str,
        name: &str,
        add: bool,
    ) -> Result<()> {
        let i = self.instance_visible(ctx, id).await?;
        let rule = if add {
            "os_compute_api:os-security-groups:add"
        } else {
            "os_compute_api:os-security-groups:remove"
        };
        self.authorize(ctx, rule, json!({"project_id": i.project_id}))?;
        let project = ctx.project_id.clone().unwrap_or_default();
        let group = self
            .security_group_ids(ctx, &[name.to_string()])
            .await
            .map_err(|_| {
                Fault::not_found(format!(
                    "Security group {name} not found for project {project}."
                ))
            })?
            .remove(0);
        if i.network_info.is_empty() {
            return Err(Fault::bad_request(format!(
                "Instance {id} has no ports to apply security group {name} to."
            )));
        }
        let c = self.neutron().await?;
        let mut changed = false;
        for v in &i.network_info {
            let path = format!("/v2.0/ports/{}", v.port_id);
            let port = c.get(&path).await.map_err(network_api)?;
            let mut groups: Vec<String> = port.body["port"]["security_groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect();
            let has = groups.contains(&group);
            if add == has {
                continue;
            }
            if add {
                groups.push(group.clone());
            } else {
                groups.retain(|g| g != &group);
            }
            let r = c
                .put(&path, Some(&json!({"port": {"security_groups": groups}})))
                .await
                .map_err(network_api)?;
            if r.status != 200 {
                return Err(Fault::bad_request(
                    r.body["NeutronError"]["message"]
                        .as_str()
                        .unwrap_or("The network API refused the security group change.")
                        .to_string(),
                ));
            }
            changed = true;
        }
        if !add && !changed {
            return Err(Fault::bad_request(format!(
                "Security group {name} not associated with the instance"
            )));
        }
        Ok(())
    }

    /// Reads port `id` as a [`Vif`] (with its network's name and MTU and the subnets of
    /// its addresses).
    async fn vif_of(&self, c: &Client, port: &Value, preexisting: bool) -> Result<Vif> {
        let network_id = port["network_id"].as_str().unwrap_or_default().to_string();
        let n = c
            .get(&format!("/v2.0/networks/{network_id}"))
            .await
            .map_err(network_api)?;
        let subnets = self.port_subnets(c, port).await?;
        Ok(Vif {
            mtu: n.body["network"]["mtu"].as_i64(),
            vif_type: port["binding:vif_type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            subnets,
            active: port["status"] == "ACTIVE",
            port_id: port["id"].as_str().unwrap_or_default().to_string(),
            network_name: n.body["network"]["name"]
                .as_str()
                .unwrap_or(&network_id)
                .to_string(),
            network_id,
            mac_address: port["mac_address"].as_str().unwrap_or_default().to_string(),
            ips: port["fixed_ips"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["ip_address"].as_str().map(str::to_string))
                .collect(),
            preexisting,
            tag: None,
        })
    }

    /// The subnets of `port`'s fixed IPs as Nova's neutron glue reads them
    /// (`_get_subnets_from_port`): CIDR, gateway, DNS servers, host routes, DHCP, and the
    /// address of the network's DHCP port on each, if it has one.
    async fn port_subnets(&self, c: &Client, port: &Value) -> Result<Vec<NicSubnet>> {
        let fixed: Vec<(&str, &str)> = port["fixed_ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| Some((f["subnet_id"].as_str()?, f["ip_address"].as_str()?)))
            .collect();
        if fixed.is_empty() {
            // No filter at all would list every subnet the caller sees.
            return Ok(Vec::new());
        }
        let mut ids: Vec<&str> = fixed.iter().map(|(s, _)| *s).collect();
        ids.dedup();
        let query: Vec<String> = ids.iter().map(|id| format!("id={id}")).collect();
        let r = c
            .get(&format!("/v2.0/subnets?{}", query.join("&")))
            .await
            .map_err(network_api)?;
        if r.status != 200 {
            return Err(Fault::internal(format!(
                "network API answered {} listing subnets",
                r.status
            )));
        }
        let network_id = port["network_id"].as_str().unwrap_or_default();
        let dhcp = c
            .get(&format!(
                "/v2.0/ports?network_id={network_id}&device_owner=network:dhcp"
            ))
            .await
            .map_err(network_api)?;
        let dhcp_ports = dhcp.body["ports"].as_array().cloned().unwrap_or_default();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        let mut out = Vec::new();
        for s in r.body["subnets"].as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap_or_default();
            let dhcp_server = dhcp_ports
                .iter()
                .flat_map(|p| p["fixed_ips"].as_array().cloned().unwrap_or_default())
                .find(|f| f["subnet_id"] == id)
                .and_then(|f| f["ip_address"].as_str().map(str::to_string));
            out.push(NicSubnet {
                id: id.to_string(),
                cidr: s["cidr"].as_str().unwrap_or_default().to_string(),
                gateway_ip: s["gateway_ip"].as_str().map(str::to_string),
                dns_nameservers: strings(&s["dns_nameservers"]),
                host_routes: s["host_routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| {
                        Some(HostRoute {
                            destination: h["destination"].as_str()?.to_string(),
                            nexthop: h["nexthop"].as_str()?.to_string(),
                        })
                    })
                    .collect(),
                enable_dhcp: s["enable_dhcp"].as_bool().unwrap_or(false),
                ipv6_address_mode: s["ipv6_address_mode"].as_str().map(str::to_string),
                dhcp_server,
                ips: fixed
                    .iter()
                    .filter(|(sid, _)| *sid == id)
                    .map(|(_, ip)| ip.to_string())
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Creates or binds the ports `i` asked for, on `host`: its network info. A server that
    /// has ports already (a reschedule) has them bound to `host` instead. On failure nothing
    /// this call made or bound is left, and the error says why.
    pub(crate) async fn bind_ports(
        &self,
        i: &Instance,
        host: &str,
    ) -> std::result::Result<Vec<Vif>, String> {
        if !i.network_info.is_empty() {
            self.rebind_ports(i, host).await.map_err(|e| e.detail())?;
            return Ok(i.network_info.clone());
        }
        let c = self.neutron().await.map_err(|e| e.detail())?;
        let mut made: Vec<Vif> = Vec::new();
        for req in &i.requested_networks {
            let bound = self.bind_one(&c, i, req, host).await;
            match bound {
                Ok(v) => made.push(v),
                Err(e) => {
                    self.unbind(&c, &made).await;
                    return Err(e.detail());
                }
            }
        }
        Ok(made)
    }

    /// Creates or binds the port `req` names for `i` on `host`. A refusal of the network
    /// API keeps its class: 409 (an address in use) and 400 (an address outside the
    /// network) are the caller's, anything else is ours.
    pub(crate) async fn bind_one(
        &self,
        c: &Client,
        i: &Instance,
        req: &RequestedNetwork,
        host: &str,
    ) -> Result<Vif> {
        let binding = json!({"device_id": i.uuid, "device_owner": DEVICE_OWNER,
            "binding:host_id": host});
        let (r, preexisting) = match &req.port_id {
            Some(port) => (
                c.put(
                    &format!("/v2.0/ports/{port}"),
                    Some(&json!({ "port": binding })),
                )
                .await
                .map_err(network_api)?,
                true,
            ),
            None => {
                let mut port = binding;
                port["network_id"] = json!(req.network_id);
                port["project_id"] = json!(i.project_id);
                port["name"] = json!("");
                if let Some(ip) = &req.fixed_ip {
                    port["fixed_ips"] = json!([{ "ip_address": ip }]);
                }
                if !req.security_groups.is_empty() {
                    port["security_groups"] = json!(req.security_groups);
                }
                (
                    c.post("/v2.0/ports", &json!({ "port": port }))
                        .await
                        .map_err(network_api)?,
                    false,
                )
            }
        };
        if !(200..300).contains(&r.status) {
            let why = r.body["NeutronError"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| r.body.to_string());
            let why = format!("Binding a port for instance {} failed: {why}", i.uuid);
            return Err(match r.status {
                409 => Fault::conflict(why),
                400 => Fault::bad_request(why),
                _ => Fault::internal(why),
            });
        }
        self.vif_of(c, &r.body["port"], preexisting).await
    }

    /// Binds the server's ports to `host` (after a reschedule, resize or revert).
    pub(crate) async fn rebind_ports(&self, i: &Instance, host: &str) -> Result<()> {
        if i.network_info.is_empty() {
            return Ok(());
        }
        let c = self.neutron().await?;
        for v in &i.network_info {
            let r = c
                .put(
                    &format!("/v2.0/ports/{}", v.port_id),
                    Some(&json!({"port": {"binding:host_id": host}})),
                )
                .await
                .map_err(network_api)?;
            if r.status != 200 {
                return Err(Fault::internal(format!(
                    "network API answered {} binding port {} to {host}",
                    r.status, v.port_id
                )));
            }
        }
        Ok(())
    }

    /// Deletes the ports the server got and unbinds those its user brought; failures are
    /// logged (a port left behind shows in the network API with the server's id).
    pub(crate) async fn unbind_ports(&self, i: &Instance) {
        if i.network_info.is_empty() {
            return;
        }
        match self.neutron().await {
            Ok(c) => self.unbind(&c, &i.network_info).await,
            Err(e) => tracing::error!(uuid = %i.uuid, error = ?e, "ports not released"),
        }
    }

    /// Deletes the ports of `vifs` Nova made and unbinds those its user brought.
    pub(crate) async fn unbind(&self, c: &Client, vifs: &[Vif]) {
        for v in vifs {
            let path = format!("/v2.0/ports/{}", v.port_id);
            let done = if v.preexisting {
                let free = json!({"port": {"device_id": "", "device_owner": "",
                    "binding:host_id": ""}});
                c.put(&path, Some(&free)).await.map(|r| r.status)
            } else {
                c.delete(&path).await.map(|r| r.status)
            };
            match done {
                Ok(200 | 204 | 404) => {}
                Ok(s) => tracing::error!(port = %v.port_id, status = s, "port not released"),
                Err(e) => tracing::error!(port = %v.port_id, error = %e, "port not released"),
            }
        }
    }
}

impl Compute {
    /// The security groups of the ports of `servers`, per server id, as the caller sees
    /// them (security_group_api `get_instances_security_groups_bindings`): each port's
    /// groups in turn, a group the caller cannot see left out. `detailed` gives Nova's
    /// whole group (with its ingress rules) instead of `{"name": ...}`. Servers without
    /// ports ask the network API nothing.
    pub(crate) async fn servers_security_groups(
        &self,
        ctx: &RequestContext,
        servers: &[&Instance],
        detailed: bool,
    ) -> Result<std::collections::HashMap<String, Vec<Value>>> {
        let mut out = std::collections::HashMap::new();
        let ids: Vec<&str> = servers
            .iter()
            .filter(|i| !i.network_info.is_empty())
            .map(|i| i.uuid.as_str())
            .collect();
        if ids.is_empty() {
            return Ok(out);
        }
        let c = self.neutron_as(ctx)?;
        let mut ports = Vec::new();
        // The filters go in the URL; chunks keep it short (upstream's MAX_SEARCH_IDS).
        for chunk in ids.chunks(100) {
            let query: Vec<String> = chunk.iter().map(|id| format!("device_id={id}")).collect();
            let path = format!(
                "/v2.0/ports?{}&fields=device_id&fields=security_groups",
                query.join("&")
            );
            ports.extend(neutron_list(&c, &path, "ports").await?);
        }
        let mut group_ids: Vec<String> = ports
            .iter()
            .flat_map(|p| p["security_groups"].as_array().cloned().unwrap_or_default())
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect();
        group_ids.sort();
        group_ids.dedup();
        let mut groups: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
        for chunk in group_ids.chunks(100) {
            let mut query: Vec<String> = chunk.iter().map(|id| format!("id={id}")).collect();
            if !detailed {
                query.push("fields=id&fields=name".into());
            }
            let r = c
                .get(&format!("/v2.0/security-groups?{}", query.join("&")))
                .await
                .map_err(network_api)?;
            for g in r.body["security_groups"].as_array().into_iter().flatten() {
                if let Some(id) = g["id"].as_str() {
                    groups.insert(id.to_string(), g.clone());
                }
            }
        }
        for p in &ports {
            let Some(device) = p["device_id"].as_str() else {
                continue;
            };
            for gid in p["security_groups"].as_array().into_iter().flatten() {
                let Some(g) = gid.as_str().and_then(|id| groups.get(id)) else {
                    continue;
                };
                let entry = if detailed {
                    g.clone()
                } else {
                    // A group without a name shows its id.
                    let name = g["name"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .or(g["id"].as_str())
                        .unwrap_or_default();
                    json!({ "name": name })
                };
                out.entry(device.to_string())
                    .or_insert_with(Vec::new)
                    .push(entry);
            }
        }
        Ok(out)
    }

    /// `GET /servers/{id}/os-security-groups`: the groups of the server's ports in Nova's
    /// format (ingress rules only), sorted by project and name.
    pub async fn server_security_groups(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Vec<Value>> {
        let i = self
            .instance_for(ctx, id, "os_compute_api:os-security-groups:list")
            .await?;
        let groups = self
            .servers_security_groups(ctx, &[&i], true)
            .await?
            .remove(&i.uuid)
            .unwrap_or_default();
        let c = self.neutron_as(ctx)?;
        nova_groups(&c, &groups).await
    }
}

/// Neutron security groups as Nova's API shows them (`_format_security_group`): ingress
/// rules only, a rule's remote group by name and project (asked of the network API as `c`
/// when not among `groups`; a rule whose remote group is gone is left out), sorted by
/// project and name.
pub(crate) async fn nova_groups(c: &Client, groups: &[Value]) -> Result<Vec<Value>> {
    // Who a rule's remote group is: the groups at hand, else asked for once.
    let mut remote: std::collections::HashMap<String, Option<Value>> = groups
        .iter()
        .filter_map(|g| {
            Some((
                g["id"].as_str()?.to_string(),
                Some(json!({"name": g["name"], "tenant_id": g["project_id"]})),
            ))
        })
        .collect();
    let mut out = Vec::new();
    for g in groups {
        let mut rules = Vec::new();
        for r in g["security_group_rules"].as_array().into_iter().flatten() {
            if r["direction"] != "ingress" {
                continue;
            }
            let group = match r["remote_group_id"].as_str() {
                Some(rg) => {
                    if !remote.contains_key(rg) {
                        let found = c
                            .get(&format!("/v2.0/security-groups/{rg}"))
                            .await
                            .map_err(network_api)?;
                        let data = (found.status == 200).then(|| {
                            let sg = &found.body["security_group"];
                            json!({"name": sg["name"], "tenant_id": sg["project_id"]})
                        });
                        remote.insert(rg.to_string(), data);
                    }
                    match remote.get(rg).cloned().flatten() {
                        Some(d) => Some(d),
                        // A rule whose remote group is gone is left out, as upstream.
                        None => continue,
                    }
                }
                None => None,
            };
            rules.push(nova_rule(r, group));
        }
        out.push(json!({
            "id": g["id"], "description": g["description"], "name": g["name"],
            "tenant_id": g["project_id"], "rules": rules,
        }));
    }
    out.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["tenant_id"].as_str().unwrap_or_default().to_string(),
                v["name"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(out)
}

/// A Neutron ingress rule as Nova's API shows it (`_convert_to_nova_security_group_rule_
/// format` + `_format_security_group_rule`): a protocol without ports spans every TCP/UDP
/// port (1-65535) or none (-1); the remote is a group or an address range.
pub(crate) fn nova_rule(r: &Value, group: Option<Value>) -> Value {
    let protocol = &r["protocol"];
    let (from, to) = match (
        protocol.as_str(),
        &r["port_range_min"],
        &r["port_range_max"],
    ) {
        (Some(p), Value::Null, Value::Null) => {
            if matches!(p.to_ascii_uppercase().as_str(), "TCP" | "UDP") {
                (json!(1), json!(65535))
            } else {
                (json!(-1), json!(-1))
            }
        }
        (_, min, max) => (min.clone(), max.clone()),
    };
    let (group, ip_range) = match group {
        Some(g) => (g, json!({})),
        None => {
            let cidr = r["remote_ip_prefix"]
                .as_str()
                .filter(|c| !c.is_empty())
                .unwrap_or("0.0.0.0/0");
            (json!({}), json!({ "cidr": cidr }))
        }
    };
    json!({
        "id": r["id"], "parent_group_id": r["security_group_id"], "ip_protocol": protocol,
        "from_port": from, "to_port": to, "group": group, "ip_range": ip_range,
    })
}
