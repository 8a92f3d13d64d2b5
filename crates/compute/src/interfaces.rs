//! Port interfaces of a server (`/servers/{id}/os-interface`, attach_interfaces.py):
//! list and show read the network API's ports of the server; attach binds a port (the
//! user's, or one made on a network) to the server's host, has its agent hot-plug it and
//! keeps it in the server's network info; detach does the reverse and deletes a port Nova
//! made. Attach and detach answer once done, as upstream's RPC `call` does, and undo what
//! they did when a later step fails.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use ferro_api_types::compute::{AgentRequest, CONTRACT_VERSION};
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use ferro_http::Auth;
use serde_json::{Value, json};

use crate::Compute;
use crate::api::{Body, S, empty, ok};
use crate::db;
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, RequestedNetwork, Vif, VmState};
use crate::ports::{network_api, neutron_list};
use crate::servers::{check_idle, invalid_state};
use crate::validation::validate_body;

pub fn routes() -> Router<Arc<Compute>> {
    Router::new()
        .route(
            "/servers/{id}/os-interface",
            get(interface_list).post(interface_create),
        )
        .route(
            "/servers/{id}/os-interface/{port_id}",
            get(interface_show).delete(interface_delete),
        )
}

/// The `interfaceAttachment` create body (schemas/attach_interfaces.py): `tag` from 2.49.
fn create_schema(v: ApiVersion) -> Value {
    let mut props = json!({
        "net_id": {"type": "string", "format": "uuid"},
        "port_id": {"type": "string", "format": "uuid"},
        "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1,
            "items": {"type": "object",
                "properties": {"ip_address": {"type": "string",
                    "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}},
                "required": ["ip_address"], "additionalProperties": false}},
    });
    if v.at_least(2, 49) {
        props["tag"] =
            json!({"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60});
    }
    json!({"type": "object",
        "properties": {"interfaceAttachment": {"type": "object", "properties": props,
            "additionalProperties": false}},
        "additionalProperties": false})
}

/// What an attach asks for.
#[derive(Debug, Default)]
pub struct AttachRequest {
    pub net_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
    pub tag: Option<String>,
}

/// A port as an `interfaceAttachment` (`_translate_interface_attachment_view`); `tag` at
/// 2.70+, from the server's network info.
fn attachment_view(port: &Value, v: ApiVersion, i: &Instance) -> Value {
    let mut a = json!({
        "net_id": port["network_id"],
        "port_id": port["id"],
        "mac_addr": port["mac_address"],
        "port_state": port["status"],
        "fixed_ips": port.get("fixed_ips").cloned().unwrap_or(Value::Null),
    });
    if v.at_least(2, 70) {
        a["tag"] = json!(
            i.network_info
                .iter()
                .find(|vif| port["id"] == vif.port_id.as_str())
                .and_then(|vif| vif.tag.clone())
        );
    }
    a
}

/// The vm_states attach and detach accept (compute/api.py `check_instance_state`); the
/// task state must be none.
const PLUGGABLE: &[VmState] = &[VmState::Active, VmState::Paused, VmState::Stopped];

fn check_pluggable(i: &Instance, action: &str) -> Result<String> {
    check_idle(action, i, PLUGGABLE)?;
    i.host
        .clone()
        .ok_or_else(|| invalid_state(action, &i.uuid, "vm_state", i.vm_state.as_str()))
}

impl Compute {
    /// `GET /servers/{id}/os-interface`: the ports whose device is the server, as the
    /// caller sees them.
    pub async fn interface_list(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<(Instance, Vec<Value>)> {
        let i = self
            .instance_for(ctx, id, "os_compute_api:os-attach-interfaces:list")
            .await?;
        let path = format!("/v2.0/ports?device_id={}", i.uuid);
        let ports = neutron_list(&self.neutron_as(ctx)?, &path, "ports").await?;
        Ok((i, ports))
    }

    /// `GET /servers/{id}/os-interface/{port_id}`: 404 unless the port's device is the
    /// server.
    pub async fn interface_show(
        &self,
        ctx: &RequestContext,
        id: &str,
        port_id: &str,
    ) -> Result<(Instance, Value)> {
        let i = self
            .instance_for(ctx, id, "os_compute_api:os-attach-interfaces:show")
            .await?;
        let port = self.port_as_caller(ctx, port_id).await?;
        if port["device_id"] != i.uuid.as_str() {
            return Err(Fault::not_found(format!(
                "Instance {} does not have a port with id {port_id}",
                i.uuid
            )));
        }
        Ok((i, port))
    }

    /// Port `port_id` as the caller sees it: upstream's PortNotFound (404) otherwise.
    async fn port_as_caller(&self, ctx: &RequestContext, port_id: &str) -> Result<Value> {
        let r = self
            .neutron_as(ctx)?
            .get(&format!(
                "/v2.0/ports/{}",
                crate::manager::percent_encode(port_id)
            ))
            .await
            .map_err(network_api)?;
        match r.status {
            200 => Ok(r.body["port"].clone()),
            404 | 403 | 400 => Err(Fault::not_found(format!(
                "Port id {port_id} could not be found."
            ))),
            s => Err(Fault::internal(format!(
                "network API answered {s} reading port {port_id}"
            ))),
        }
    }

    /// `POST /servers/{id}/os-interface`: binds the port asked for (or one made on the
    /// network asked for, or on the only network the caller may use) to the server's host,
    /// has the agent plug it, and records it. The bound port, as the caller sees it.
    pub async fn interface_attach(
        &self,
        ctx: &RequestContext,
        id: &str,
        req: AttachRequest,
    ) -> Result<(Instance, Value)> {
        let i = self
            .instance_for(ctx, id, "os_compute_api:os-attach-interfaces:create")
            .await?;
        self.check_lock(ctx, &i)?;
        let host = check_pluggable(&i, "attach_interface")?;
        self.record_action(ctx, &i, "attach_interface").await;
        let result = self.attach_on(ctx, &i, &host, req).await;
        self.record_event(
            &i.uuid,
            &ctx.request_id,
            "compute_attach_interface",
            Some(&host),
            result.as_ref().err().map(|e| e.detail()).as_deref(),
        )
        .await;
        let vif = result?;
        let i = self.instance_visible(ctx, id).await?;
        let port = self.port_as_caller(ctx, &vif.port_id).await?;
        Ok((i, port))
    }

    /// The attach's steps, each undone when a later one fails: check what the caller asked
    /// for with their token, bind (service token), plug (agent), record (CAS).
    async fn attach_on(
        &self,
        ctx: &RequestContext,
        i: &Instance,
        host: &str,
        req: AttachRequest,
    ) -> Result<Vif> {
        let mut wanted = RequestedNetwork {
            fixed_ip: req.fixed_ip.clone(),
            ..RequestedNetwork::default()
        };
        if let Some(port) = &req.port_id {
            let p = self.port_as_caller(ctx, port).await?;
            if p["device_id"].as_str().is_some_and(|d| !d.is_empty()) {
                return Err(Fault::conflict(format!("Port {port} is still in use.")));
            }
            // Nova's PortNotUsable: a port of another project, even one an admin sees.
            if p["project_id"]
                .as_str()
                .is_some_and(|p| !p.is_empty() && p != i.project_id)
            {
                return Err(Fault::bad_request(format!(
                    "Port {port} not usable for instance {}.",
                    i.uuid
                )));
            }
            wanted.port_id = Some(port.clone());
            wanted.network_id = p["network_id"].as_str().map(str::to_string);
        } else if let Some(net) = &req.net_id {
            let r = self
                .neutron_as(ctx)?
                .get(&format!(
                    "/v2.0/networks/{}",
                    crate::manager::percent_encode(net)
                ))
                .await
                .map_err(network_api)?;
            if r.status != 200 {
                return Err(Fault::not_found(format!(
                    "Network {net} could not be found."
                )));
            }
            wanted.network_id = Some(net.clone());
        } else {
            // Neither: the only network the caller may use (allocate_for_instance's
            // available networks), 400 for none or several.
            let project = i.project_id.clone();
            let only = self.only_network(ctx, &project).await.map_err(|e| {
                if e.status() == StatusCode::CONFLICT {
                    Fault::bad_request(e.message())
                } else {
                    e
                }
            })?;
            let net = only.ok_or_else(|| {
                Fault::bad_request(format!(
                    "No specific network was requested and none are available for project \
                     '{project}'."
                ))
            })?;
            wanted.network_id = Some(net);
        }

        let c = self.neutron().await?;
        let mut vif = self.bind_one(&c, i, &wanted, host).await?;
        vif.tag = req.tag;
        let plugged = self
            .call_agent(
                host,
                AgentRequest::AttachInterface {
                    version: CONTRACT_VERSION.into(),
                    uuid: i.uuid.clone(),
                    nic: vif.nic(),
                },
                &ctx.request_id,
                &i.uuid,
            )
            .await;
        if let Err(e) = plugged {
            self.unbind(&c, std::slice::from_ref(&vif)).await;
            return Err(agent_fault(e, "attach", &i.uuid));
        }
        let saved = self
            .edit_network_info(&i.uuid, |vifs| vifs.push(vif.clone()))
            .await;
        if let Err(e) = saved {
            self.unplug(host, ctx, &i.uuid, &vif.port_id).await;
            self.unbind(&c, std::slice::from_ref(&vif)).await;
            return Err(e);
        }
        Ok(vif)
    }

    /// `DELETE /servers/{id}/os-interface/{port_id}`: the agent unplugs the port, the server
    /// forgets it, and the port is deleted (Nova made it) or unbound (the user did).
    pub async fn interface_detach(
        &self,
        ctx: &RequestContext,
        id: &str,
        port_id: &str,
    ) -> Result<()> {
        let i = self
            .instance_for(ctx, id, "os_compute_api:os-attach-interfaces:delete")
            .await?;
        self.check_lock(ctx, &i)?;
        let host = check_pluggable(&i, "detach_interface")?;
        let Some(vif) = i
            .network_info
            .iter()
            .find(|v| v.port_id == port_id)
            .cloned()
        else {
            return Err(Fault::not_found(format!(
                "Port id {port_id} could not be found."
            )));
        };
        self.record_action(ctx, &i, "detach_interface").await;
        let result = async {
            self.call_agent(
                &host,
                AgentRequest::DetachInterface {
                    version: CONTRACT_VERSION.into(),
                    uuid: i.uuid.clone(),
                    port_id: port_id.to_string(),
                },
                &ctx.request_id,
                &i.uuid,
            )
            .await
            .map_err(|e| agent_fault(e, "detach", &i.uuid))?;
            self.edit_network_info(&i.uuid, |vifs| vifs.retain(|v| v.port_id != port_id))
                .await?;
            let c = self.neutron().await?;
            self.unbind(&c, std::slice::from_ref(&vif)).await;
            Ok(())
        }
        .await;
        self.record_event(
            &i.uuid,
            &ctx.request_id,
            "compute_detach_interface",
            Some(&host),
            result.as_ref().err().map(|e: &Fault| e.detail()).as_deref(),
        )
        .await;
        result
    }

    /// Undoes a plug whose record failed; a failure is logged (the guest keeps a NIC whose
    /// port is gone, which the next rebuild or resize drops).
    async fn unplug(&self, host: &str, ctx: &RequestContext, uuid: &str, port_id: &str) {
        let req = AgentRequest::DetachInterface {
            version: CONTRACT_VERSION.into(),
            uuid: uuid.to_string(),
            port_id: port_id.to_string(),
        };
        if let Err(e) = self.call_agent(host, req, &ctx.request_id, uuid).await {
            tracing::error!(%uuid, %port_id, error = %e.detail(), "interface left plugged");
        }
    }

    /// Applies `edit` to the server's network info and saves it with compare-and-swap,
    /// reading the row again when another write won: 409 once the server is busy (a
    /// task started) or gone.
    // Other writes cannot undo this one: `db::instance_save` keeps the ports when it
    // read the server with no task under way.
    async fn edit_network_info(&self, uuid: &str, edit: impl Fn(&mut Vec<Vif>)) -> Result<()> {
        for _ in 0..8 {
            let Some(mut i) = db::instance_get(&mut &self.db, uuid).await? else {
                return Err(Fault::not_found(format!(
                    "Instance {uuid} could not be found."
                )));
            };
            if let Some(t) = &i.task_state {
                return Err(Fault::conflict(format!(
                    "Instance {uuid} is in task_state {t}; its interfaces were not changed."
                )));
            }
            edit(&mut i.network_info);
            if db::instance_save_network_info(&mut &self.db, &i, now_micros()).await? {
                return Ok(());
            }
        }
        Err(Fault::conflict(format!(
            "Conflict updating instance {uuid}: it kept changing."
        )))
    }
}

/// The agent's refusal of a plug or unplug as upstream's: a driver that cannot do it is the
/// caller's 400 (AttachInterfaceNotSupported), an agent that does not answer 409, any other
/// hypervisor failure 500 (InterfaceAttachFailed / InterfaceDetachFailed).
fn agent_fault(e: Fault, verb: &str, uuid: &str) -> Fault {
    match e.status() {
        StatusCode::NOT_FOUND if e.message().starts_with("not supported:") => {
            let what = if verb == "attach" {
                "Attaching"
            } else {
                "Detaching"
            };
            Fault::bad_request(format!(
                "{what} interfaces is not supported for instance {uuid}."
            ))
        }
        StatusCode::NOT_FOUND => Fault::internal(format!(
            "Failed to {verb} network adapter device to {uuid}: {}",
            e.message()
        )),
        _ => e,
    }
}

async fn interface_list(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response> {
    let (i, ports) = s.interface_list(&ctx, &id).await?;
    let list: Vec<Value> = ports.iter().map(|p| attachment_view(p, v, &i)).collect();
    ok(StatusCode::OK, json!({ "interfaceAttachments": list }))
}

async fn interface_show(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path((id, port_id)): Path<(String, String)>,
) -> Result<Response> {
    let (i, port) = s.interface_show(&ctx, &id, &port_id).await?;
    ok(
        StatusCode::OK,
        json!({ "interfaceAttachment": attachment_view(&port, v, &i) }),
    )
}

async fn interface_create(
    State(s): S,
    Auth(ctx): Auth,
    v: ApiVersion,
    Path(id): Path<String>,
    Body(b): Body,
) -> Result<Response> {
    validate_body(&create_schema(v), &b)?;
    let a = &b["interfaceAttachment"];
    let text = |k: &str| a[k].as_str().map(str::to_string);
    let req = AttachRequest {
        net_id: text("net_id"),
        port_id: text("port_id"),
        fixed_ip: a["fixed_ips"][0]["ip_address"].as_str().map(str::to_string),
        tag: text("tag"),
    };
    if req.net_id.is_some() && req.port_id.is_some() {
        return Err(Fault::bad_request(
            "Must not input both network_id and port_id",
        ));
    }
    if req.fixed_ip.is_some() && req.net_id.is_none() {
        return Err(Fault::bad_request(
            "Must input network_id when request IP address",
        ));
    }
    let (i, port) = s.interface_attach(&ctx, &id, req).await?;
    ok(
        StatusCode::OK,
        json!({ "interfaceAttachment": attachment_view(&port, v, &i) }),
    )
}

async fn interface_delete(
    State(s): S,
    Auth(ctx): Auth,
    Path((id, port_id)): Path<(String, String)>,
) -> Result<Response> {
    s.interface_detach(&ctx, &id, &port_id).await?;
    empty(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_accepted_from_2_49() {
        let body = json!({"interfaceAttachment": {"net_id":
            "3b1a7a9e-6f3c-4a51-9f6b-0d1d2b7e8a11", "tag": "nic1"}});
        assert!(validate_body(&create_schema(ApiVersion::new(2, 48)), &body).is_err());
        assert!(validate_body(&create_schema(ApiVersion::new(2, 49)), &body).is_ok());
        let bad_ip = json!({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.0.0"}]}});
        assert!(validate_body(&create_schema(ApiVersion::new(2, 1)), &bad_ip).is_err());
        let two = json!({"interfaceAttachment": {"fixed_ips":
            [{"ip_address": "10.0.0.1"}, {"ip_address": "10.0.0.2"}]}});
        assert!(validate_body(&create_schema(ApiVersion::new(2, 1)), &two).is_err());
    }
}
