//! The work behind the servers API: create (validate against image, flavor, key pair and
//! quota, record the instance as `building`/`scheduling`, cast `build_instances` to the
//! conductor), show, list with upstream's filters, update, delete and the power and lock
//! actions with upstream's allowed-state checks (nova/compute/api.py `check_instance_state`).
//!
//! The API writes an instance only to create it and to claim a task state (compare-and-swap
//! on the state it read); every outcome is written by the conductor ([`crate::conductor`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use ferro_api_types::compute::{
    AgentRequest, CONDUCTOR_TOPIC, CONTRACT_VERSION, ConductorRequest, PowerAction, compute_topic,
};
use ferro_bus::{Bus, Envelope};
use ferro_client::{Client, TokenSource};
use ferro_common::RequestContext;
use ferro_common::time::now_micros;
use serde_json::{Value, json};

use crate::Compute;
use crate::conductor::COMPUTE_BINARY;
use crate::db;
use crate::fault::{Fault, Result};
use crate::microversion::ApiVersion;
use crate::model::{Instance, InstanceFlavor, PowerState, VmState, states_of_status, task_state};
use crate::quota::Resource;

/// How the compute service reaches the rest of the cloud: the bus to the conductor and the
/// agents, its service credentials, and the placement and image APIs.
pub struct Links {
    pub bus: Arc<dyn Bus>,
    pub auth: Arc<dyn TokenSource>,
    /// Placement's base URL (`http://host:8778`).
    pub placement_url: String,
    /// The image API's base URL (`http://host:9292`).
    pub image_url: String,
    /// The network API's base URL, unversioned (`http://host:9696`).
    pub network_url: String,
}

/// Clients of the peer APIs, each made once so that its connections are kept and reused
/// (a client per call opened a connection per call); tokens are set per call.
#[derive(Default)]
pub struct PeerClients {
    placement: std::sync::OnceLock<Client>,
    image: std::sync::OnceLock<Client>,
    network: std::sync::OnceLock<Client>,
}

/// The microversion the conductor speaks to placement (`allocation_candidates` with
/// `mappings`, consumer generations).
pub const PLACEMENT_VERSION: &str = "placement 1.36";

/// A server action of `POST /servers/{id}/action` this slice serves.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerAction {
    Power(PowerAction),
    Lock { reason: Option<String> },
    Unlock,
}

/// The filters and page of a server list, already validated.
#[derive(Clone, Debug, Default)]
pub struct ServerQuery {
    pub name: Option<String>,
    pub status: Option<String>,
    pub flavor: Option<String>,
    pub image: Option<String>,
    pub host: Option<String>,
    pub reservation_id: Option<String>,
    pub changes_since: Option<i64>,
    pub all_tenants: bool,
    pub project_id: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

/// The id at the end of an href, as `common.get_id_from_href` takes it.
pub(crate) fn id_from_href(href: &str) -> String {
    let path = href.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// Twelve characters of a fresh uuid: admin passwords and reservation ids.
pub(crate) fn random_token(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_string()
}

/// `utils.sanitize_hostname`: lower case, `[a-z0-9-]`, 63 characters at most.
pub fn sanitize_hostname(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_ascii_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' | '.' => out.push(c),
            ' ' | '_' => out.push('-'),
            _ => {}
        }
    }
    let trimmed: String = out.trim_matches(['-', '.']).chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches(['-', '.']).to_string();
    if trimmed.is_empty() {
        "server".into()
    } else {
        trimmed
    }
}

fn instance_not_found(id: &str) -> Fault {
    Fault::not_found(format!("Instance {id} could not be found."))
}

/// 409 with upstream's words for an action refused in the current state
/// (`raise_http_conflict_for_instance_invalid_state`).
pub(crate) fn invalid_state(action: &str, id: &str, attr: &str, state: &str) -> Fault {
    Fault::conflict(format!(
        "Cannot '{action}' instance {id} while it is in {attr} {state}"
    ))
}

/// Upstream's `check_instance_state(vm_state=allowed, task_state=[None])`: 409 with its
/// message unless `i` is in one of `allowed` with no task under way.
pub(crate) fn check_idle(action: &str, i: &Instance, allowed: &[VmState]) -> Result<()> {
    if !allowed.contains(&i.vm_state) {
        return Err(invalid_state(
            action,
            &i.uuid,
            "vm_state",
            i.vm_state.as_str(),
        ));
    }
    if let Some(t) = &i.task_state {
        return Err(invalid_state(action, &i.uuid, "task_state", t));
    }
    Ok(())
}

fn task_text(t: Option<&str>) -> &str {
    t.unwrap_or("None")
}

/// The allowed `vm_state`s and task states of a power action (`check_instance_state`),
/// the task state it sets, its upstream method name and its policy rule.
struct ActionRule {
    method: &'static str,
    rule: &'static str,
    vm_states: &'static [VmState],
    /// `None`: only no task; `Some(list)`: any of them.
    task_states: Option<&'static [Option<&'static str>]>,
    sets: &'static str,
}

fn rule_of(action: PowerAction) -> ActionRule {
    use VmState::*;
    let (method, rule, vm_states, sets): (_, _, &'static [VmState], _) = match action {
        PowerAction::Stop => (
            "stop",
            "os_compute_api:servers:stop",
            &[Active, Error],
            task_state::POWERING_OFF,
        ),
        PowerAction::Start => (
            "start",
            "os_compute_api:servers:start",
            &[Stopped],
            task_state::POWERING_ON,
        ),
        PowerAction::RebootSoft => (
            "reboot",
            "os_compute_api:servers:reboot",
            &[Active],
            task_state::REBOOTING,
        ),
        PowerAction::RebootHard => (
            "reboot",
            "os_compute_api:servers:reboot",
            &[Active, Stopped, Paused, Suspended, Error],
            task_state::REBOOTING_HARD,
        ),
        PowerAction::Pause => (
            "pause",
            "os_compute_api:os-pause-server:pause",
            &[Active],
            task_state::PAUSING,
        ),
        PowerAction::Unpause => (
            "unpause",
            "os_compute_api:os-pause-server:unpause",
            &[Paused],
            task_state::UNPAUSING,
        ),
        PowerAction::Suspend => (
            "suspend",
            "os_compute_api:os-suspend-server:suspend",
            &[Active],
            task_state::SUSPENDING,
        ),
        PowerAction::Resume => (
            "resume",
            "os_compute_api:os-suspend-server:resume",
            &[Suspended],
            task_state::RESUMING,
        ),
    };
    ActionRule {
        method,
        rule,
        vm_states,
        task_states: if action == PowerAction::RebootHard {
            Some(task_state::ALLOW_REBOOT)
        } else {
            None
        },
        sets,
    }
}

impl Compute {
    /// Connects the service to the bus, its credentials and the other APIs; servers need it.
    pub fn connect(&self, links: Links) {
        if self.links.set(links).is_err() {
            tracing::warn!("compute links were already set");
        }
    }

    pub(crate) fn links(&self) -> Result<&Links> {
        self.links.get().ok_or_else(|| {
            Fault::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "The compute service is not connected to its conductor.",
            )
        })
    }

    /// The compute service's own token (its service user, an admin of `service`).
    pub(crate) async fn service_token(&self) -> Result<String> {
        self.links()?
            .auth
            .token()
            .await
            .map_err(|e| Fault::internal(format!("service token: {e}")))
    }

    /// A placement client with the service's token.
    pub(crate) async fn placement(&self) -> Result<Client> {
        let token = self.service_token().await?;
        let l = self.links()?;
        let c = self.peers.placement.get_or_init(|| {
            Client::new(&l.placement_url).with_header("OpenStack-API-Version", PLACEMENT_VERSION)
        });
        Ok(c.with_token(&token))
    }

    /// An image API client with `token`.
    pub(crate) fn image_client(&self, token: &str) -> Result<Client> {
        let l = self.links()?;
        let c = self.peers.image.get_or_init(|| Client::new(&l.image_url));
        Ok(c.with_token(token))
    }

    /// A network API client with `token`.
    pub(crate) fn network_client(&self, token: &str) -> Result<Client> {
        let l = self.links()?;
        let c = self
            .peers
            .network
            .get_or_init(|| Client::new(&l.network_url));
        Ok(c.with_token(token))
    }

    pub(crate) async fn cast_conductor(
        &self,
        req: ConductorRequest,
        request_id: &str,
    ) -> Result<()> {
        let (method, payload) = req.to_parts();
        let env = Envelope::new(CONDUCTOR_TOPIC, method, payload).with_request_id(request_id);
        self.links()?
            .bus
            .cast(CONDUCTOR_TOPIC, env)
            .await
            .map_err(|e| Fault::internal(format!("cast to the conductor: {e}")))
    }

    pub(crate) async fn cast_agent(
        &self,
        host: &str,
        req: AgentRequest,
        request_id: &str,
    ) -> Result<()> {
        let topic = compute_topic(host);
        let (method, payload) = req.to_parts();
        let env = Envelope::new(&topic, method, payload).with_request_id(request_id);
        self.links()?
            .bus
            .cast(&topic, env)
            .await
            .map_err(|e| Fault::internal(format!("cast to {topic}: {e}")))
    }

    /// Sends `req` to `host`'s agent and waits for its answer: 409 when the agent does not
    /// answer in time (upstream's InstanceNotReady), 404 with the agent's reason when it
    /// failed.
    pub(crate) async fn call_agent(
        &self,
        host: &str,
        req: AgentRequest,
        request_id: &str,
        uuid: &str,
    ) -> Result<Value> {
        let topic = compute_topic(host);
        let (method, payload) = req.to_parts();
        let env = Envelope::new(&topic, method, payload).with_request_id(request_id);
        match self
            .links()?
            .bus
            .call(&topic, env, std::time::Duration::from_secs(30))
            .await
        {
            Ok(v) => Ok(v),
            Err(ferro_bus::BusError::Timeout { .. }) => {
                Err(Fault::conflict(format!("Instance {uuid} is not ready")))
            }
            Err(ferro_bus::BusError::Remote { message }) => {
                tracing::warn!(%uuid, %host, error = %message, "agent call failed");
                Err(Fault::not_found(message))
            }
            Err(e) => Err(Fault::internal(format!("call to {topic}: {e}"))),
        }
    }

    /// `os-getConsoleOutput`: the last `length` lines of the server's console log.
    pub async fn console_output(
        &self,
        ctx: &RequestContext,
        id: &str,
        length: Option<i64>,
    ) -> Result<String> {
        let i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:os-console-output",
            json!({"project_id": i.project_id}),
        )?;
        let Some(host) = i.host.clone() else {
            return Err(Fault::conflict(format!("Instance {id} is not ready")));
        };
        if let Some(t @ (task_state::DELETING | "migrating")) = i.task_state.as_deref() {
            return Err(invalid_state("get_console_output", id, "task_state", t));
        }
        let answer = self
            .call_agent(
                &host,
                AgentRequest::GetConsoleOutput {
                    version: CONTRACT_VERSION.into(),
                    uuid: i.uuid.clone(),
                    length,
                },
                &ctx.request_id,
                &i.uuid,
            )
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::NOT_FOUND {
                    Fault::not_found("Guest does not have a console available.")
                } else {
                    e
                }
            })?;
        // As upstream: control characters other than tab and newline are dropped.
        Ok(answer["output"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .filter(|c| !matches!(*c, '\0'..='\x08' | '\x0b'..='\x1f'))
            .collect())
    }

    fn server_target(i: &Instance) -> Value {
        json!({"project_id": i.project_id, "user_id": i.user_id})
    }

    /// Instance `id` if the caller's project owns it or the caller is an admin (404 else,
    /// as upstream's project-only lookup).
    pub async fn instance_visible(&self, ctx: &RequestContext, id: &str) -> Result<Instance> {
        let i = db::instance_get(&mut &self.db, id)
            .await?
            .ok_or_else(|| instance_not_found(id))?;
        if self.is_admin(ctx) || ctx.project_id.as_deref() == Some(i.project_id.as_str()) {
            Ok(i)
        } else {
            Err(instance_not_found(id))
        }
    }

    /// Instance `id` as [`Compute::instance_visible`] finds it, once the caller passes
    /// `rule` on the server's project.
    pub(crate) async fn instance_for(
        &self,
        ctx: &RequestContext,
        id: &str,
        rule: &str,
    ) -> Result<Instance> {
        let i = self.instance_visible(ctx, id).await?;
        self.authorize(ctx, rule, json!({"project_id": i.project_id}))?;
        Ok(i)
    }

    /// `GET /servers/{id}`.
    pub async fn server_get(&self, ctx: &RequestContext, id: &str) -> Result<Instance> {
        let i = self.instance_visible(ctx, id).await?;
        self.authorize(ctx, "os_compute_api:servers:show", Self::server_target(&i))?;
        Ok(i)
    }

    /// Whether the caller sees the admin-only server attributes.
    pub fn may_see_extended_attributes(&self, ctx: &RequestContext, i: &Instance) -> bool {
        crate::policy::allowed(
            &self.enforcer,
            ctx,
            "os_compute_api:os-extended-server-attributes",
            &Self::server_target(i),
        )
    }

    /// Whether the caller sees the flavor's extra specs in server bodies (2.47+).
    pub fn may_see_server_extra_specs(&self, ctx: &RequestContext) -> bool {
        crate::policy::allowed(
            &self.enforcer,
            ctx,
            "os_compute_api:servers:show:flavor-extra-specs",
            &Self::default_target(ctx),
        )
    }

    /// Looks image `id` up in the image API with the caller's token: its metadata, or the
    /// 400 upstream answers for an unknown or unusable image.
    pub(crate) async fn image_get(&self, ctx: &RequestContext, id: &str) -> Result<Value> {
        let c = self.image_client(&ctx.token)?;
        let path = format!("/v2/images/{}", crate::manager::percent_encode(id));
        let r = c
            .get(&path)
            .await
            .map_err(|e| Fault::internal(format!("image API: {e}")))?;
        match r.status {
            200 => {}
            404 | 400 => return Err(Fault::bad_request("Can not find requested image")),
            401 | 403 => return Err(Fault::bad_request("Can not find requested image")),
            s => return Err(Fault::internal(format!("image API answered {s}"))),
        }
        if r.body["status"] != "active" {
            return Err(Fault::bad_request(format!("Image {id} is not active.")));
        }
        Ok(r.body)
    }

    /// `POST /servers`: records `min_count..=max_count` instances and casts their builds.
    /// The body was validated against the schema in force.
    pub async fn server_create(
        &self,
        ctx: &RequestContext,
        v: ApiVersion,
        body: &Value,
    ) -> Result<(Vec<Instance>, String)> {
        let srv = &body["server"];
        let project = ctx.project_id.clone().unwrap_or_default();
        self.authorize(
            ctx,
            "os_compute_api:servers:create",
            json!({"project_id": project, "user_id": ctx.user_id}),
        )?;
        self.links()?;
        let int = |k: &str| -> Result<Option<i64>> {
            match &srv[k] {
                Value::Null => Ok(None),
                Value::Number(n) => Ok(n.as_i64()),
                Value::String(s) => s
                    .parse()
                    .map(Some)
                    .map_err(|_| Fault::bad_request(format!("Invalid {k}"))),
                _ => Err(Fault::bad_request(format!("Invalid {k}"))),
            }
        };
        let min_count = int("min_count")?.unwrap_or(1);
        let max_count = int("max_count")?.unwrap_or(min_count);
        if min_count > max_count {
            return Err(Fault::bad_request("min_count must be <= max_count"));
        }
        let mut requested_networks = self.requested_networks(ctx, v, &srv["networks"]).await?;
        let group_names: Vec<String> = srv["security_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["name"].as_str().map(str::to_string))
            .collect();
        // Every group named must exist, ports or not (upstream's
        // `_check_requested_secgroups`: SecurityGroupNotFound is a 400 at create).
        if !group_names.is_empty() {
            let ids = self.security_group_ids(ctx, &group_names).await?;
            for r in requested_networks
                .iter_mut()
                .filter(|r| r.port_id.is_none())
            {
                r.security_groups = ids.clone();
            }
        }
        if requested_networks.iter().any(|r| r.port_id.is_some()) && max_count > 1 {
            return Err(Fault::bad_request(
                "Unable to launch multiple instances with a single configured port ID. \
                 Please launch your instance one by one with different ports.",
            ));
        }
        // The image as the local boot disk is what clients (openstacksdk, the CLI) send as
        // `block_device_mapping_v2`; any volume mapping needs the block storage slice.
        let mut bdm_image = None;
        if let Some(bdms) = srv["block_device_mapping_v2"].as_array() {
            for b in bdms {
                let local_image = b["source_type"] == "image"
                    && (b["destination_type"].is_null() || b["destination_type"] == "local");
                if !local_image {
                    // TODO-compat: volumes arrive with the block storage slice.
                    return Err(Fault::bad_request(
                        "Block device mappings other than the local image are not supported \
                         yet.",
                    ));
                }
                bdm_image = b["uuid"].as_str().map(str::to_string);
            }
        }
        if !srv["block_device_mapping"].is_null() {
            return Err(Fault::bad_request(
                "Legacy block device mappings are not supported yet.",
            ));
        }
        let flavor_ref = match &srv["flavorRef"] {
            Value::String(s) => id_from_href(s),
            Value::Number(n) => n.to_string(),
            _ => return Err(Fault::bad_request("Invalid flavorRef provided.")),
        };
        let flavor = match self.flavor_get(ctx, &flavor_ref).await {
            Ok(f) => f,
            Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => {
                return Err(Fault::bad_request("Invalid flavorRef provided."));
            }
            Err(e) => return Err(e),
        };
        let image_ref = match (&srv["imageRef"], bdm_image) {
            (Value::String(s), _) if !s.is_empty() => id_from_href(s),
            (_, Some(b)) => b,
            _ => return Err(Fault::bad_request("Can not find requested image")),
        };
        let image = self.image_get(ctx, &image_ref).await?;
        let min_ram = image["min_ram"].as_i64().unwrap_or(0);
        let min_disk = image["min_disk"].as_i64().unwrap_or(0);
        if flavor.memory_mb < min_ram {
            return Err(Fault::bad_request(
                "Flavor's memory is too small for requested image.",
            ));
        }
        if flavor.root_gb > 0 {
            let size_gb = (image["size"].as_i64().unwrap_or(0) + (1 << 30) - 1) >> 30;
            if flavor.root_gb < min_disk || flavor.root_gb < size_gb {
                return Err(Fault::bad_request(
                    "Flavor's disk is too small for requested image.",
                ));
            }
        }
        let key = match srv["key_name"].as_str() {
            Some(name) => Some(
                db::keypair_get(&mut &self.db, &ctx.user_id, name)
                    .await?
                    .ok_or_else(|| Fault::bad_request("Invalid key_name provided."))?,
            ),
            None => None,
        };
        // `zone`, `zone:host`, `zone:host:node` or `zone::node` (upstream's
        // `parse_availability_zone`); a host or node forces the server there (admin).
        let (zone, requested_host) = match srv["availability_zone"].as_str() {
            None | Some("") => (None, None),
            Some(z) => {
                let parts: Vec<&str> = z.split(':').collect();
                let (name, host, node) = match parts[..] {
                    [name] => (name, "", ""),
                    [name, host] => (name, host, ""),
                    [name, host, node] => (name, host, node),
                    _ => {
                        return Err(Fault::bad_request(
                            "Invalid input received: Unable to parse availability_zone",
                        ));
                    }
                };
                if !host.is_empty() || !node.is_empty() {
                    self.authorize(
                        ctx,
                        "os_compute_api:servers:create:forced_host",
                        json!({"project_id": project}),
                    )?;
                }
                // Every host here has one node of its own name.
                let forced = [host, node].into_iter().find(|h| !h.is_empty());
                // A zone must be one an enabled service is in, unless a host is forced
                // (upstream's `_validate_and_build_base_options`).
                if !name.is_empty() && forced.is_none() && !self.zone_available(name).await? {
                    return Err(Fault::bad_request(
                        "The requested availability zone is not available",
                    ));
                }
                (
                    (!name.is_empty()).then(|| name.to_string()),
                    forced.map(str::to_string),
                )
            }
        };
        // 2.74: `host` / `hypervisor_hostname` name the destination (admin); the scheduler
        // considers that host only. Every host here has one node of its own name.
        let destination = srv["host"]
            .as_str()
            .or_else(|| srv["hypervisor_hostname"].as_str());
        let requested_host = match destination {
            None => requested_host,
            Some(host) => {
                self.authorize(
                    ctx,
                    "compute:servers:create:requested_destination",
                    json!({"project_id": project}),
                )?;
                let node = srv["hypervisor_hostname"].as_str().unwrap_or(host);
                let known = db::service_get(&mut &self.db, host, "nova-compute")
                    .await?
                    .is_some();
                if !known || node != host {
                    return Err(Fault::bad_request(format!(
                        "Compute host {host} could not be found."
                    )));
                }
                Some(host.to_string())
            }
        };
        let user_data = srv["user_data"].as_str().map(str::to_string);
        if let Some(u) = &user_data {
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(u.trim())
                .is_err()
            {
                return Err(Fault::bad_request("User data needs to be valid base 64."));
            }
        }
        let metadata: BTreeMap<String, String> = srv["metadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        self.check_metadata_quota(&project, metadata.len()).await?;
        let tags: Vec<String> = srv["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let name = srv["name"].as_str().unwrap_or_default().to_string();
        let description = if v.at_least(2, 19) {
            srv["description"].as_str().map(str::to_string)
        } else {
            None
        };
        let config_drive = match &srv["config_drive"] {
            Value::Bool(true) => "True".to_string(),
            Value::String(s) if crate::manager::parse_bool_strict(&json!(s)) == Some(true) => {
                "True".to_string()
            }
            _ => String::new(),
        };
        let auto_disk = srv["OS-DCF:diskConfig"].as_str() == Some("AUTO");
        let hostname_base = srv["hostname"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| sanitize_hostname(&name));

        let hints = body
            .get("os:scheduler_hints")
            .or_else(|| body.get("OS-SCH-HNT:scheduler_hints"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let group = self.group_for_create(ctx, &hints, min_count).await?;

        // Quota: as many as fit between min_count and max_count (upstream
        // `_check_num_instances_quota`), checked under the quota locks in the insert's
        // transaction.
        self.quotas
            .prepare(&self.db, &project, &ctx.user_id)
            .await?;
        let mut tx = self.db.begin().await?;
        let mut count = max_count;
        let over = loop {
            let deltas = [
                (Resource::Instances, count),
                (Resource::Cores, count * flavor.vcpus),
                (Resource::Ram, count * flavor.memory_mb),
            ];
            match self
                .quotas
                .check_deltas(&mut tx, &project, &ctx.user_id, &deltas)
                .await?
            {
                Ok(()) => break None,
                Err(o) if count <= min_count => break Some((o, deltas)),
                Err(_) => count -= 1,
            }
        };
        if let Some((o, deltas)) = over {
            let message = self
                .quotas
                .over_message(&mut tx, &project, &ctx.user_id, &o, &deltas)
                .await?;
            return Err(Fault::forbidden(message));
        }
        let now = now_micros();
        let reservation_id = format!("r-{}", random_token(8));
        let mut created = Vec::new();
        for index in 0..count {
            let (display_name, hostname) = if count > 1 {
                (
                    format!("{name}-{}", index + 1),
                    format!("{hostname_base}-{}", index + 1),
                )
            } else {
                (name.clone(), hostname_base.clone())
            };
            let i = Instance {
                uuid: uuid::Uuid::new_v4().to_string(),
                internal_id: db::next_id(&mut tx, "instances").await?,
                project_id: project.clone(),
                user_id: ctx.user_id.clone(),
                display_name,
                display_description: description.clone(),
                hostname,
                host: None,
                node: None,
                availability_zone: zone.clone(),
                flavor: InstanceFlavor::of(&flavor),
                image_ref: image_ref.clone(),
                key_name: key.as_ref().map(|k| k.name.clone()),
                key_data: key.as_ref().map(|k| k.public_key.clone()),
                user_data: user_data.clone(),
                metadata: metadata.clone(),
                tags: tags.clone(),
                vm_state: VmState::Building,
                task_state: Some(task_state::SCHEDULING.into()),
                power_state: PowerState::NoState,
                locked_by: None,
                locked_reason: None,
                launch_index: index,
                reservation_id: reservation_id.clone(),
                config_drive: config_drive.clone(),
                access_ip_v4: srv["accessIPv4"].as_str().map(str::to_string),
                access_ip_v6: srv["accessIPv6"].as_str().map(str::to_string),
                auto_disk_config: auto_disk,
                attempts: 0,
                tried_hosts: Vec::new(),
                fault: None,
                created_at: now,
                updated_at: now,
                launched_at: None,
                terminated_at: None,
                deleted_at: None,
                deleted: false,
                requested_networks: requested_networks.clone(),
                network_info: Vec::new(),
                requested_host: requested_host.clone(),
                requested_zone: zone.clone(),
                shelved_image_id: None,
                shelved_at: None,
            };
            db::instance_insert(&mut tx, &i).await?;
            if let Some(g) = &group {
                db::group_member_add(&mut tx, &g.uuid, &i.uuid).await?;
            }
            // In the insert's transaction: one commit less on the way to ACTIVE.
            db::action_insert(
                &mut tx,
                &crate::instance_actions::action_of(ctx, &i, "create"),
            )
            .await?;
            created.push(i);
        }
        tx.commit().await?;
        for i in &created {
            // A lost cast leaves the instance in `scheduling`; the conductor's sweep fails it.
            if let Err(e) = self
                .cast_conductor(
                    ConductorRequest::BuildInstances {
                        version: CONTRACT_VERSION.into(),
                        uuid: i.uuid.clone(),
                    },
                    &ctx.request_id,
                )
                .await
            {
                tracing::error!(uuid = %i.uuid, error = ?e, "build cast failed");
            }
        }
        let admin_pass = srv["adminPass"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| random_token(12));
        Ok((created, admin_pass))
    }

    /// `GET /servers[/detail]`: the page of servers the query selects, newest first.
    pub async fn server_list(
        &self,
        ctx: &RequestContext,
        detail: bool,
        q: &ServerQuery,
    ) -> Result<Vec<Instance>> {
        let (rule, all_rule) = if detail {
            (
                "os_compute_api:servers:detail",
                "os_compute_api:servers:detail:get_all_tenants",
            )
        } else {
            (
                "os_compute_api:servers:index",
                "os_compute_api:servers:index:get_all_tenants",
            )
        };
        self.authorize(ctx, rule, Self::default_target(ctx))?;
        let admin_filters = crate::policy::allowed(
            &self.enforcer,
            ctx,
            "os_compute_api:servers:allow_all_filters",
            &Self::default_target(ctx),
        );
        let project = if q.all_tenants {
            self.authorize(ctx, all_rule, Self::default_target(ctx))?;
            q.project_id.clone()
        } else if admin_filters && q.project_id.is_some() {
            q.project_id.clone()
        } else {
            Some(ctx.project_id.clone().unwrap_or_default())
        };
        let mut list = db::instance_list(&mut &self.db, project.as_deref()).await?;
        if let Some(n) = &q.name {
            list.retain(|i| crate::validation::search(n, &i.display_name));
        }
        if let Some(st) = &q.status {
            let states = states_of_status(st);
            list.retain(|i| {
                states.iter().any(|(vm, t)| {
                    *vm == i.vm_state && t.is_none_or(|t| i.task_state.as_deref() == Some(t))
                })
            });
        }
        if let Some(f) = &q.flavor {
            list.retain(|i| &i.flavor.flavorid == f);
        }
        if let Some(img) = &q.image {
            let img = id_from_href(img);
            list.retain(|i| i.image_ref == img);
        }
        if let Some(r) = &q.reservation_id {
            list.retain(|i| &i.reservation_id == r);
        }
        if admin_filters && let Some(h) = &q.host {
            list.retain(|i| i.host.as_deref() == Some(h.as_str()));
        }
        if let Some(since) = q.changes_since {
            list.retain(|i| i.updated_at >= since);
        }
        // Newest first (`created_at desc, id desc`).
        list.reverse();
        if let Some(m) = &q.marker {
            let pos = list
                .iter()
                .position(|i| &i.uuid == m)
                .ok_or_else(|| Fault::bad_request(format!("marker [{m}] not found")))?;
            list.drain(..=pos);
        }
        let limit = q
            .limit
            .unwrap_or(crate::manager::MAX_LIMIT)
            .min(crate::manager::MAX_LIMIT);
        list.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(list)
    }

    /// `PUT /servers/{id}`: name and description.
    pub async fn server_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        name: Option<&str>,
        description: Option<Option<&str>>,
        hostname: Option<&str>,
    ) -> Result<Instance> {
        // Upstream saves a rename without an expected task state: a build or action moving
        // the server on meanwhile is no conflict, so a lost compare-and-swap reads the row
        // again and reapplies the change.
        let mut last = None;
        for _ in 0..8 {
            let mut i = self.instance_visible(ctx, id).await?;
            self.authorize(
                ctx,
                "os_compute_api:servers:update",
                Self::server_target(&i),
            )?;
            let expected = (i.vm_state, i.task_state.clone());
            if let Some(n) = name {
                i.display_name = n.to_string();
            }
            if let Some(d) = description {
                i.display_description = d.map(str::to_string);
            }
            if let Some(h) = hostname {
                i.hostname = h.to_string();
            }
            i.updated_at = now_micros();
            if db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await? {
                return Ok(i);
            }
            last = expected.1;
        }
        Err(Fault::conflict(format!(
            "Conflict updating instance {id}. Expected: {{'task_state': [{}]}}. Actual: \
             {{'task_state': changed}}",
            task_text(last.as_deref())
        )))
    }

    pub(crate) fn check_lock(&self, ctx: &RequestContext, i: &Instance) -> Result<()> {
        if i.locked_by.is_some() && !self.is_admin(ctx) {
            return Err(Fault::conflict(format!("Instance {} is locked", i.uuid)));
        }
        Ok(())
    }

    /// `DELETE /servers/{id}`: deletes at once a server never placed on a host or whose
    /// host's compute service is down, else marks it `deleting` and asks its agent to
    /// destroy it (the conductor finishes the delete).
    pub async fn server_delete(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        // Upstream deletes in any task state: a delete that lost a race with the conductor
        // (which moved the server on meanwhile) reads it again and retries.
        for _ in 0..20 {
            match self.server_delete_once(ctx, id).await {
                Err(e)
                    if e.status() == StatusCode::CONFLICT
                        && e.message().ends_with("while it is changing state") =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                done => return done,
            }
        }
        self.server_delete_once(ctx, id).await
    }

    async fn server_delete_once(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let mut i = self.instance_visible(ctx, id).await?;
        self.authorize(
            ctx,
            "os_compute_api:servers:delete",
            Self::server_target(&i),
        )?;
        self.check_lock(ctx, &i)?;
        self.links()?;
        let expected = (i.vm_state, i.task_state.clone());
        let now = now_micros();
        // Upstream's local delete: a server on no host, or on a host whose compute service
        // is down, is deleted here and now; a down host's agent destroys the guest when it
        // is back (`guests_on_host`).
        let agent_host = match i.host.clone() {
            Some(host) if self.compute_service_up(&host, now).await? => Some(host),
            _ => None,
        };
        let Some(host) = agent_host else {
            i.mark_deleted(now);
            i.updated_at = now;
            if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await? {
                return Err(Fault::conflict(format!(
                    "Cannot 'delete' instance {id} while it is changing state"
                )));
            }
            if i.host.is_some() {
                tracing::warn!(uuid = %i.uuid, host = ?i.host, "the server's host is down: deleted here");
            }
            self.unbind_ports(&i).await;
            // The conductor may have claimed resources just before: let it find none.
            self.allocation_delete(&i.uuid).await;
            self.record_action(ctx, &i, "delete").await;
            if let Some(image) = &i.shelved_image_id {
                self.image_delete_as_service(image).await;
            }
            return Ok(());
        };
        i.task_state = Some(task_state::DELETING.into());
        i.updated_at = now;
        if !db::instance_save(&mut &self.db, &i, (expected.0, expected.1.as_deref())).await? {
            return Err(Fault::conflict(format!(
                "Cannot 'delete' instance {id} while it is changing state"
            )));
        }
        self.record_action(ctx, &i, "delete").await;
        if let Some(image) = &i.shelved_image_id {
            self.image_delete_as_service(image).await;
        }
        self.cast_agent(
            &host,
            AgentRequest::TerminateInstance {
                version: CONTRACT_VERSION.into(),
                uuid: i.uuid.clone(),
            },
            &ctx.request_id,
        )
        .await?;
        Ok(())
    }

    /// Whether the compute service of `host` is up at `now` (heartbeat within
    /// `service_down_time` and not forced down); a host with no service is not.
    async fn compute_service_up(&self, host: &str, now: i64) -> Result<bool> {
        Ok(db::service_get(&mut &self.db, host, COMPUTE_BINARY)
            .await?
            .is_some_and(|s| s.is_up(now)))
    }

    /// Removes an instance's allocation in placement; failures are logged (the instance is
    /// gone either way, and upstream's heal_allocations cleans such leftovers).
    pub(crate) async fn allocation_delete(&self, uuid: &str) {
        let result = async {
            let c = self.placement().await?;
            let r = c
                .delete(&format!("/allocations/{uuid}"))
                .await
                .map_err(|e| Fault::internal(format!("placement: {e}")))?;
            if r.status == 401
                && let Ok(l) = self.links()
            {
                l.auth.invalidate();
            }
            if r.status != 204 && r.status != 404 {
                return Err(Fault::internal(format!(
                    "placement answered {} deleting allocations of {uuid}",
                    r.status
                )));
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => self.hosts.released(uuid),
            Err(e) => tracing::error!(%uuid, error = ?e, "allocation delete failed"),
        }
    }

    /// `POST /servers/{id}/action` for the actions this slice serves.
    pub async fn server_action(
        &self,
        ctx: &RequestContext,
        id: &str,
        action: ServerAction,
    ) -> Result<()> {
        let mut i = self.instance_visible(ctx, id).await?;
        let target = Self::server_target(&i);
        match action {
            ServerAction::Lock { reason } => {
                self.authorize(ctx, "os_compute_api:os-lock-server:lock", target)?;
                if i.locked_by.is_some() {
                    return Ok(());
                }
                let owner = ctx.project_id.as_deref() == Some(i.project_id.as_str());
                i.locked_by = Some(if owner { "owner" } else { "admin" }.into());
                i.locked_reason = reason;
                self.save_claimed(&mut i, None, "lock").await?;
                self.record_action(ctx, &i, "lock").await;
                Ok(())
            }
            ServerAction::Unlock => {
                self.authorize(ctx, "os_compute_api:os-lock-server:unlock", target.clone())?;
                let owner = ctx.project_id.as_deref() == Some(i.project_id.as_str());
                if i.locked_by.as_deref() == Some("admin") || !owner {
                    self.authorize(
                        ctx,
                        "os_compute_api:os-lock-server:unlock:unlock_override",
                        target,
                    )?;
                }
                i.locked_by = None;
                i.locked_reason = None;
                self.save_claimed(&mut i, None, "unlock").await?;
                self.record_action(ctx, &i, "unlock").await;
                Ok(())
            }
            ServerAction::Power(p) => {
                let rule = rule_of(p);
                self.authorize(ctx, rule.rule, target)?;
                self.check_lock(ctx, &i)?;
                if !rule.vm_states.contains(&i.vm_state) {
                    return Err(invalid_state(
                        rule.method,
                        id,
                        "vm_state",
                        i.vm_state.as_str(),
                    ));
                }
                let task_ok = match rule.task_states {
                    None => i.task_state.is_none(),
                    Some(allowed) => allowed.contains(&i.task_state.as_deref()),
                };
                if !task_ok {
                    return Err(invalid_state(
                        rule.method,
                        id,
                        "task_state",
                        task_text(i.task_state.as_deref()),
                    ));
                }
                if i.launched_at.is_none() {
                    return Err(invalid_state(rule.method, id, "launched_at", "None"));
                }
                let host = i
                    .host
                    .clone()
                    .ok_or_else(|| Fault::conflict(format!("Instance {id} has no host")))?;
                self.links()?;
                self.save_claimed(&mut i, Some(rule.sets), rule.method)
                    .await?;
                self.record_action(ctx, &i, rule.method).await;
                self.cast_agent(
                    &host,
                    AgentRequest::PowerAction {
                        version: CONTRACT_VERSION.into(),
                        uuid: i.uuid.clone(),
                        action: p,
                    },
                    &ctx.request_id,
                )
                .await
            }
        }
    }

    /// Saves `i` with a new task state (or its own), compare-and-swap on what was read:
    /// 409 when something changed it meanwhile (upstream's UnexpectedTaskStateError).
    async fn save_claimed(&self, i: &mut Instance, task: Option<&str>, method: &str) -> Result<()> {
        let expected = (i.vm_state, i.task_state.clone());
        if let Some(t) = task {
            i.task_state = Some(t.to_string());
        }
        i.updated_at = now_micros();
        if db::instance_save(&mut &self.db, i, (expected.0, expected.1.as_deref())).await? {
            Ok(())
        } else {
            Err(Fault::conflict(format!(
                "Cannot '{method}' instance {} while it is changing state",
                i.uuid
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_and_hostnames() {
        assert_eq!(id_from_href("http://h/v2.1/flavors/42"), "42");
        assert_eq!(id_from_href("abc"), "abc");
        assert_eq!(sanitize_hostname("My Server_1!"), "my-server-1");
        assert_eq!(sanitize_hostname("!!!"), "server");
    }

    #[test]
    fn action_rules_follow_check_instance_state() {
        let r = rule_of(PowerAction::Stop);
        assert_eq!(r.vm_states, &[VmState::Active, VmState::Error]);
        assert!(r.task_states.is_none());
        let h = rule_of(PowerAction::RebootHard);
        assert!(h.vm_states.contains(&VmState::Stopped));
        assert!(
            h.task_states
                .is_some_and(|t| t.contains(&Some(task_state::POWERING_OFF)))
        );
    }
}
