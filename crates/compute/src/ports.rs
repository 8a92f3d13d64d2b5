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

fn network_api(e: ferro_client::ClientError) -> Fault {
    Fault::internal(format!("network API: {e}"))
}

impl Compute {
    /// The network API as the caller.
    fn neutron_as(&self, ctx: &RequestContext) -> Result<Client> {
        self.network_client(&ctx.token)
    }

    /// The network API as the compute service (admin).
    pub(crate) async fn neutron(&self) -> Result<Client> {
        let token = self
            .links()?
            .auth
            .token()
            .await
            .map_err(|e| Fault::internal(format!("service token: {e}")))?;
        self.network_client(&token)
    }

    /// The one network `auto` (or an absent `networks` before 2.37) may use: the caller's
    /// and shared networks that are not external. None, or 409 when several qualify.
    async fn only_network(&self, ctx: &RequestContext) -> Result<Option<String>> {
        let r = self
            .neutron_as(ctx)?
            .get("/v2.0/networks?router:external=False&fields=id")
            .await
            .map_err(network_api)?;
        if r.status != 200 {
            return Err(Fault::internal(format!(
                "network API answered {} listing networks",
                r.status
            )));
        }
        let ids: Vec<&str> = r.body["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["id"].as_str())
            .collect();
        match ids.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.to_string())),
            _ => Err(Fault::conflict(
                "Multiple possible networks found, use a Network ID to be more specific.",
            )),
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
                // TODO-compat: Neutron's auto-allocated topology (a network, subnet and
                // router made for the project) is not built; only an existing network
                // is chosen.
                let id = self.only_network(ctx).await?.ok_or_else(|| {
                    Fault::bad_request(format!(
                        "Unable to automatically allocate a network for project {project}"
                    ))
                })?;
                return Ok(vec![RequestedNetwork {
                    network_id: Some(id),
                    ..RequestedNetwork::default()
                }]);
            }
            Value::Null if !v.at_least(2, 37) => {
                return Ok(self
                    .only_network(ctx)
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

    async fn bind_one(
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
            return Err(Fault::internal(format!(
                "Binding a port for instance {} failed: {why}",
                i.uuid
            )));
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

    async fn unbind(&self, c: &Client, vifs: &[Vif]) {
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
