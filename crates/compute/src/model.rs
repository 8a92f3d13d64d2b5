//! Nova's domain types for this slice: flavors, key pairs and registered services, and how
//! each one is shown at a given microversion (the newest shape is canonical; older ones are
//! derived from it, as STYLE.md asks).

use std::collections::BTreeMap;

use ferro_common::time::iso8601_seconds;
use serde_json::{Value, json};

use crate::microversion::ApiVersion;

/// A flavor: the size of a server.
#[derive(Clone, Debug, PartialEq)]
pub struct Flavor {
    /// The public id (`flavorid` upstream): any string, a uuid when the creator gave none.
    pub id: String,
    pub name: String,
    pub memory_mb: i64,
    pub vcpus: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    /// Swap in MiB (0 is none).
    pub swap: i64,
    /// Deprecated network weight (removed from the API at 2.102), stored as upstream does.
    pub rxtx_factor: f64,
    /// Always false through the API; kept because pre-2.102 responses show it.
    pub disabled: bool,
    pub is_public: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

/// Python's `repr(float)` for the values flavors hold (`1.0`, `2.5`).
fn float_json(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

impl Flavor {
    /// The flavor as `GET /flavors/{id}` shows it at `v` (nova/api/openstack/compute/views/
    /// flavors.py `show`). `links` are the self and bookmark links; `extra_specs` is whether
    /// the caller may see them (2.61+).
    pub fn show(&self, v: ApiVersion, links: Value, extra_specs: bool) -> Value {
        let mut f = json!({
            "id": self.id,
            "name": self.name,
            "ram": self.memory_mb,
            "disk": self.root_gb,
            "vcpus": self.vcpus,
            "OS-FLV-EXT-DATA:ephemeral": self.ephemeral_gb,
            "os-flavor-access:is_public": self.is_public,
            "links": links,
        });
        // Before 2.75 a flavor without swap shows "" (Python's `swap or ""`).
        f["swap"] = if self.swap == 0 && !v.at_least(2, 75) {
            json!("")
        } else {
            json!(self.swap)
        };
        if !v.at_least(2, 102) {
            f["OS-FLV-DISABLED:disabled"] = json!(self.disabled);
            f["rxtx_factor"] = if self.rxtx_factor == 0.0 {
                json!("")
            } else {
                float_json(self.rxtx_factor)
            };
        }
        if v.at_least(2, 55) {
            f["description"] = json!(self.description);
        }
        if extra_specs && v.at_least(2, 61) {
            f["extra_specs"] = json!(self.extra_specs);
        }
        f
    }

    /// The brief form of `GET /flavors`.
    pub fn basic(&self, v: ApiVersion, links: Value) -> Value {
        let mut f = json!({"id": self.id, "name": self.name, "links": links});
        if v.at_least(2, 55) {
            f["description"] = json!(self.description);
        }
        f
    }
}

/// The two kinds of key pair Nova keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Ssh,
    X509,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ssh => "ssh",
            KeyType::X509 => "x509",
        }
    }

    pub fn parse(s: &str) -> Option<KeyType> {
        match s {
            "ssh" => Some(KeyType::Ssh),
            "x509" => Some(KeyType::X509),
            _ => None,
        }
    }
}

/// A user's key pair.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPair {
    /// Nova's integer id, shown by `GET /os-keypairs/{name}`.
    pub id: i64,
    pub user_id: String,
    pub name: String,
    pub fingerprint: String,
    pub public_key: String,
    pub key_type: KeyType,
    pub created_at: i64,
}

/// oslo.serialization's datetime form, `2014-05-07T12:06:13.681238`, used where Nova
/// serialises a database datetime as it is.
pub fn python_isoformat(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let base = iso8601_seconds(secs * 1_000_000);
    format!("{}.{frac:06}", base.trim_end_matches('Z'))
}

impl KeyPair {
    /// `GET /os-keypairs` items (views/keypairs.py `_index_params`, `type` from 2.2).
    pub fn index(&self, v: ApiVersion) -> Value {
        let mut k = json!({"name": self.name, "public_key": self.public_key,
            "fingerprint": self.fingerprint});
        if v.at_least(2, 2) {
            k["type"] = json!(self.key_type.as_str());
        }
        json!({ "keypair": k })
    }

    /// `POST /os-keypairs` answer; `private_key` only when Nova generated the pair.
    pub fn created(&self, v: ApiVersion, private_key: Option<&str>) -> Value {
        let mut k = json!({"name": self.name, "public_key": self.public_key,
            "fingerprint": self.fingerprint, "user_id": self.user_id});
        if let Some(p) = private_key {
            k["private_key"] = json!(p);
        }
        if v.at_least(2, 2) {
            k["type"] = json!(self.key_type.as_str());
        }
        json!({ "keypair": k })
    }

    /// `GET /os-keypairs/{name}`: the whole record, soft-delete columns included as Nova
    /// still shows them.
    pub fn show(&self, v: ApiVersion) -> Value {
        let mut k = json!({
            "name": self.name, "public_key": self.public_key, "fingerprint": self.fingerprint,
            "user_id": self.user_id, "created_at": python_isoformat(self.created_at),
            "deleted": false, "deleted_at": null, "id": self.id, "updated_at": null,
        });
        if v.at_least(2, 2) {
            k["type"] = json!(self.key_type.as_str());
        }
        json!({ "keypair": k })
    }
}

/// A registered Nova service (`nova-compute`, `nova-conductor`, `nova-scheduler`): agents
/// register once and heartbeat; the API derives `up`/`down` and availability zones from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub id: i64,
    pub uuid: String,
    pub host: String,
    pub binary: String,
    pub topic: String,
    pub report_count: i64,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub last_seen_up: Option<i64>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    /// The zone its host's aggregates put it in (`None`: in no zoned aggregate, or not
    /// looked up).
    pub aggregate_zone: Option<String>,
}

/// The zone of non-compute services (`internal_service_availability_zone`).
pub const INTERNAL_ZONE: &str = "internal";
/// The zone of compute hosts not in a zoned aggregate (`default_availability_zone`).
pub const DEFAULT_ZONE: &str = "nova";
/// How long after its last heartbeat a service counts as down (`service_down_time`).
pub const SERVICE_DOWN_TIME_SECS: i64 = 60;

impl Service {
    /// The service's availability zone (`set_availability_zones`): a compute host's comes
    /// from its aggregates, else it is the default zone; other services are internal.
    pub fn zone(&self) -> &str {
        if self.topic == "compute" {
            self.aggregate_zone.as_deref().unwrap_or(DEFAULT_ZONE)
        } else {
            INTERNAL_ZONE
        }
    }

    /// Whether the service heartbeat recently enough (the DB servicegroup driver).
    pub fn is_up(&self, now: i64) -> bool {
        if self.forced_down {
            return false;
        }
        let last = self
            .last_seen_up
            .or(self.updated_at)
            .unwrap_or(self.created_at);
        now - last <= SERVICE_DOWN_TIME_SECS * 1_000_000
    }

    /// `GET /os-services` item at `v` (2.11 adds `forced_down`, 2.53 uses the uuid as id).
    pub fn show(&self, v: ApiVersion, now: i64) -> Value {
        let mut s = json!({
            "binary": self.binary,
            "host": self.host,
            "zone": self.zone(),
            "status": if self.disabled { "disabled" } else { "enabled" },
            "state": if self.is_up(now) { "up" } else { "down" },
            "updated_at": self.updated_at.map(python_isoformat),
            "disabled_reason": self.disabled_reason,
        });
        s["id"] = if v.at_least(2, 53) {
            json!(self.uuid)
        } else {
            json!(self.id)
        };
        if v.at_least(2, 11) {
            s["forced_down"] = json!(self.forced_down);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor() -> Flavor {
        Flavor {
            id: "1".into(),
            name: "m1.tiny".into(),
            memory_mb: 512,
            vcpus: 1,
            root_gb: 1,
            ephemeral_gb: 0,
            swap: 0,
            rxtx_factor: 1.0,
            disabled: false,
            is_public: true,
            description: None,
            extra_specs: BTreeMap::from([("hw:cpu_policy".into(), "dedicated".into())]),
            created_at: 0,
            updated_at: None,
        }
    }

    #[test]
    fn flavor_shape_per_microversion() {
        let f = flavor();
        let old = f.show(ApiVersion::new(2, 1), json!([]), true);
        assert_eq!(old["swap"], "");
        assert_eq!(old["rxtx_factor"], 1.0);
        assert_eq!(old["OS-FLV-DISABLED:disabled"], false);
        assert!(old.get("description").is_none() && old.get("extra_specs").is_none());
        let v261 = f.show(ApiVersion::new(2, 61), json!([]), true);
        assert_eq!(v261["extra_specs"]["hw:cpu_policy"], "dedicated");
        assert!(v261["description"].is_null() && v261.get("description").is_some());
        assert!(
            f.show(ApiVersion::new(2, 61), json!([]), false)
                .get("extra_specs")
                .is_none()
        );
        let v275 = f.show(ApiVersion::new(2, 75), json!([]), false);
        assert_eq!(v275["swap"], 0);
        let v2102 = f.show(ApiVersion::new(2, 102), json!([]), false);
        assert!(v2102.get("rxtx_factor").is_none());
        assert!(v2102.get("OS-FLV-DISABLED:disabled").is_none());
    }

    #[test]
    fn services_go_down_without_heartbeats() {
        let s = Service {
            id: 1,
            uuid: "u".into(),
            host: "h".into(),
            binary: "nova-compute".into(),
            topic: "compute".into(),
            report_count: 1,
            disabled: false,
            disabled_reason: None,
            forced_down: false,
            last_seen_up: Some(1_000_000),
            created_at: 0,
            updated_at: Some(1_000_000),
            aggregate_zone: None,
        };
        assert!(s.is_up(30_000_000));
        assert!(!s.is_up(62_000_000));
        assert_eq!(s.zone(), "nova");
        let zoned = Service {
            aggregate_zone: Some("az1".into()),
            ..s.clone()
        };
        assert_eq!(zoned.zone(), "az1");
        let shown = s.show(ApiVersion::new(2, 53), 2_000_000);
        assert_eq!(shown["id"], "u");
        assert_eq!(shown["state"], "up");
        assert_eq!(shown["updated_at"], "1970-01-01T00:00:01.000000");
    }
}

// ---- servers --------------------------------------------------------------------------------

pub use ferro_api_types::compute::{PowerState, VmState};

/// Nova's `task_state` values this slice sets (nova/compute/task_states.py).
pub mod task_state {
    pub const SCHEDULING: &str = "scheduling";
    pub const SPAWNING: &str = "spawning";
    pub const DELETING: &str = "deleting";
    pub const POWERING_OFF: &str = "powering-off";
    pub const POWERING_ON: &str = "powering-on";
    pub const REBOOTING: &str = "rebooting";
    pub const REBOOTING_HARD: &str = "rebooting_hard";
    pub const PAUSING: &str = "pausing";
    pub const UNPAUSING: &str = "unpausing";
    pub const SUSPENDING: &str = "suspending";
    pub const RESUMING: &str = "resuming";
    pub const REBUILDING: &str = "rebuilding";
    pub const IMAGE_SNAPSHOT: &str = "image_snapshot";
    pub const RESIZE_PREP: &str = "resize_prep";
    pub const RESIZE_MIGRATING: &str = "resize_migrating";
    pub const RESIZE_REVERTING: &str = "resize_reverting";
    pub const SHELVING: &str = "shelving";
    pub const SHELVING_IMAGE_UPLOADING: &str = "shelving_image_uploading";
    pub const SHELVING_OFFLOADING: &str = "shelving_offloading";
    pub const UNSHELVING: &str = "unshelving";

    /// Task states from which a hard reboot may start (`task_states.ALLOW_REBOOT`).
    pub const ALLOW_REBOOT: &[Option<&str>] = &[
        None,
        Some(REBOOTING),
        Some("reboot_pending"),
        Some("reboot_started"),
        Some(SUSPENDING),
        Some(REBOOTING_HARD),
        Some(RESUMING),
        Some(UNPAUSING),
        Some(PAUSING),
        Some(POWERING_OFF),
        Some(POWERING_ON),
        Some("reboot_pending_hard"),
        Some("reboot_started_hard"),
    ];
}

/// The flavor an instance was built with, as it stood then (upstream's `instance.flavor`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceFlavor {
    pub flavorid: String,
    pub name: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap: i64,
    #[serde(default)]
    pub extra_specs: BTreeMap<String, String>,
}

impl InstanceFlavor {
    pub fn of(f: &Flavor) -> InstanceFlavor {
        InstanceFlavor {
            flavorid: f.id.clone(),
            name: f.name.clone(),
            vcpus: f.vcpus,
            memory_mb: f.memory_mb,
            root_gb: f.root_gb,
            ephemeral_gb: f.ephemeral_gb,
            swap: f.swap,
            extra_specs: f.extra_specs.clone(),
        }
    }
}

/// An instance fault (`instance_faults`): the last error of a server.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceFault {
    pub code: i64,
    pub message: String,
    pub details: String,
    pub created_at: i64,
}

/// A server.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub uuid: String,
    /// Upstream's integer id, for `instance-%08x` names.
    pub internal_id: i64,
    pub project_id: String,
    pub user_id: String,
    pub display_name: String,
    pub display_description: Option<String>,
    pub hostname: String,
    pub host: Option<String>,
    pub node: Option<String>,
    /// The zone asked for at create (or the host's once scheduled).
    pub availability_zone: Option<String>,
    pub flavor: InstanceFlavor,
    pub image_ref: String,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub vm_state: VmState,
    pub task_state: Option<String>,
    pub power_state: PowerState,
    pub locked_by: Option<String>,
    pub locked_reason: Option<String>,
    pub launch_index: i64,
    pub reservation_id: String,
    pub config_drive: String,
    pub access_ip_v4: Option<String>,
    pub access_ip_v6: Option<String>,
    pub auto_disk_config: bool,
    /// Scheduling attempts so far, and the hosts that failed a build.
    pub attempts: i64,
    pub tried_hosts: Vec<String>,
    pub fault: Option<InstanceFault>,
    pub created_at: i64,
    pub updated_at: i64,
    pub launched_at: Option<i64>,
    pub terminated_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub deleted: bool,
    /// The networks asked for at create (`networks`), in order.
    pub requested_networks: Vec<RequestedNetwork>,
    /// The ports the server has, once the conductor bound them (`addresses` come from it).
    pub network_info: Vec<Vif>,
    /// The host an admin asked for at create (`availability_zone` `zone:host[:node]`,
    /// upstream's forced host): the scheduler considers no other host and a failed build
    /// is not rescheduled.
    pub requested_host: Option<String>,
    /// The zone the create asked for (upstream's request spec zone, 2.96's
    /// `pinned_availability_zone`): every placement of the server keeps to it. Without one
    /// the server may move between zones.
    pub requested_zone: Option<String>,
    /// A shelved server's snapshot image (upstream's system metadata `shelved_image_id`),
    /// and when it was shelved.
    pub shelved_image_id: Option<String>,
    pub shelved_at: Option<i64>,
}

/// One entry of a create's `networks`: a network (maybe with a fixed IP) or a port.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestedNetwork {
    #[serde(default)]
    pub network_id: Option<String>,
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub fixed_ip: Option<String>,
    /// Security group ids for a port made on the network (the create's
    /// `security_groups`; empty: the project's default group).
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// A port of a server, as the network API described it when the conductor bound it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Vif {
    pub port_id: String,
    pub network_id: String,
    pub network_name: String,
    pub mac_address: String,
    /// Its fixed IP addresses.
    pub ips: Vec<String>,
    /// The user made the port (`networks: [{"port": ...}]`): deleting the server unbinds it
    /// instead of deleting it.
    #[serde(default)]
    pub preexisting: bool,
    /// The network's MTU, the port's `binding:vif_type` and the subnets of its addresses,
    /// for the guest's network_data.json (Nova's info cache holds them as well).
    #[serde(default)]
    pub mtu: Option<i64>,
    #[serde(default)]
    pub vif_type: String,
    #[serde(default)]
    pub subnets: Vec<ferro_api_types::compute::NicSubnet>,
    /// The device tag an `os-interface` attach gave it (2.49+), shown from 2.70.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The port was ACTIVE when bound (Nova's VIF `active`).
    #[serde(default)]
    pub active: bool,
}

impl Vif {
    /// The port as an agent plugs it.
    pub fn nic(&self) -> ferro_api_types::compute::Nic {
        ferro_api_types::compute::Nic {
            port_id: self.port_id.clone(),
            network_id: self.network_id.clone(),
            mac_address: self.mac_address.clone(),
            ips: self.ips.clone(),
            mtu: self.mtu,
            vif_type: self.vif_type.clone(),
            subnets: self.subnets.clone(),
            active: self.active,
        }
    }
}

/// `addresses` of a server body: per network name, its fixed IPs.
pub fn addresses(vifs: &[Vif]) -> Value {
    let mut out = serde_json::Map::new();
    for v in vifs {
        let list = out
            .entry(v.network_name.clone())
            .or_insert_with(|| json!([]));
        for ip in &v.ips {
            let version = if ip.contains(':') { 6 } else { 4 };
            if let Some(a) = list.as_array_mut() {
                a.push(
                    json!({"version": version, "addr": ip, "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": v.mac_address}),
                );
            }
        }
    }
    Value::Object(out)
}

/// The API status of `vm_state` and `task_state` (nova/api/openstack/common.py `_STATE_MAP`).
pub fn status_of(vm: VmState, task: Option<&str>) -> &'static str {
    const RESIZE: &[&str] = &[
        "resize_prep",
        "resize_migrating",
        "resize_migrated",
        "resize_finish",
    ];
    const REBUILD: &[&str] = &[
        "rebuilding",
        "rebuild_block_device_mapping",
        "rebuild_spawning",
    ];
    let t = task.unwrap_or("");
    match vm {
        VmState::Active => match t {
            "rebooting" | "reboot_pending" | "reboot_started" => "REBOOT",
            "rebooting_hard" | "reboot_pending_hard" | "reboot_started_hard" => "HARD_REBOOT",
            "updating_password" => "PASSWORD",
            "migrating" => "MIGRATING",
            t if REBUILD.contains(&t) => "REBUILD",
            t if RESIZE.contains(&t) => "RESIZE",
            _ => "ACTIVE",
        },
        VmState::Building => "BUILD",
        VmState::Stopped => match t {
            t if REBUILD.contains(&t) => "REBUILD",
            t if RESIZE.contains(&t) => "RESIZE",
            _ => "SHUTOFF",
        },
        VmState::Resized => match t {
            "resize_reverting" => "REVERT_RESIZE",
            _ => "VERIFY_RESIZE",
        },
        VmState::Paused => match t {
            "migrating" => "MIGRATING",
            _ => "PAUSED",
        },
        VmState::Suspended => "SUSPENDED",
        VmState::Rescued => "RESCUE",
        VmState::Error => match t {
            t if REBUILD.contains(&t) => "REBUILD",
            _ => "ERROR",
        },
        VmState::Deleted => "DELETED",
        VmState::SoftDeleted => "SOFT_DELETED",
        VmState::Shelved => "SHELVED",
        VmState::ShelvedOffloaded => "SHELVED_OFFLOADED",
    }
}

/// The `(vm_state, task_state)` pairs a status filter selects (`task_and_vm_state_from_status`):
/// `None` for the task means any task state.
pub fn states_of_status(status: &str) -> Vec<(VmState, Option<&'static str>)> {
    use VmState::*;
    let s = status.to_ascii_uppercase();
    let all = [
        Active,
        Building,
        Paused,
        Suspended,
        Stopped,
        Rescued,
        Resized,
        SoftDeleted,
        Deleted,
        Error,
        Shelved,
        ShelvedOffloaded,
    ];
    // Every vm_state whose default maps to the status; task-specific statuses (REBOOT...)
    // are matched per task below.
    let mut out: Vec<(VmState, Option<&'static str>)> = all
        .into_iter()
        .filter(|v| status_of(*v, None) == s)
        .map(|v| (v, None))
        .collect();
    const TASKS: &[&str] = &[
        "rebooting",
        "reboot_pending",
        "reboot_started",
        "rebooting_hard",
        "reboot_pending_hard",
        "reboot_started_hard",
        "updating_password",
        "migrating",
        "rebuilding",
        "rebuild_block_device_mapping",
        "rebuild_spawning",
        "resize_prep",
        "resize_migrating",
        "resize_migrated",
        "resize_finish",
        "resize_reverting",
    ];
    for v in all {
        for t in TASKS {
            if status_of(v, Some(t)) == s && status_of(v, None) != s {
                out.push((v, Some(t)));
            }
        }
    }
    out
}

/// `utils.generate_hostid`: sha224 of project and host, empty without a host.
pub fn host_id(host: Option<&str>, project: &str) -> String {
    use sha2::Digest;
    match host {
        Some(h) if !h.is_empty() => {
            let d = sha2::Sha224::digest(format!("{project}{h}").as_bytes());
            d.iter().map(|b| format!("{b:02x}")).collect()
        }
        _ => String::new(),
    }
}

/// What the viewer may see of a server body.
#[derive(Clone, Copy, Debug)]
pub struct ServerView {
    pub version: ApiVersion,
    /// `os_compute_api:os-extended-server-attributes` (admins).
    pub extended_attributes: bool,
    /// Admins see a 500 fault's details.
    pub is_admin: bool,
    /// Extra specs in the 2.47+ flavor body.
    pub extra_specs: bool,
    /// The show view (server groups at 2.71+), rather than a list's detail.
    pub show: bool,
}

impl Instance {
    /// Marks the instance deleted at `now` (vm_state `deleted`, no task, no power).
    pub fn mark_deleted(&mut self, now: i64) {
        self.vm_state = VmState::Deleted;
        self.task_state = None;
        self.power_state = PowerState::NoState;
        self.deleted = true;
        self.deleted_at = Some(now);
        self.terminated_at = Some(now);
    }

    /// The API status.
    pub fn status(&self) -> &'static str {
        status_of(self.vm_state, self.task_state.as_deref())
    }

    /// The hypervisor's name for the guest (`instance_name_template`).
    pub fn instance_name(&self) -> String {
        format!("instance-{:08x}", self.internal_id)
    }

    /// `GET /servers` items: id, name, links.
    pub fn basic(&self, links: Value) -> Value {
        json!({"id": self.uuid, "name": self.display_name, "links": links})
    }

    /// The full body of `GET /servers/{id}` and `/servers/detail` items at `view.version`
    /// (views/servers.py `show`). `server_links` are the server's self/bookmark links,
    /// `flavor_link` and `image_link` the bookmarks of its flavor and image.
    pub fn detail(
        &self,
        view: ServerView,
        server_links: Value,
        flavor_link: Value,
        image_link: Value,
    ) -> Value {
        let v = view.version;
        let status = self.status();
        let flavor = if v.at_least(2, 47) {
            let mut f = json!({
                "vcpus": self.flavor.vcpus, "ram": self.flavor.memory_mb,
                "disk": self.flavor.root_gb, "ephemeral": self.flavor.ephemeral_gb,
                "swap": self.flavor.swap, "original_name": self.flavor.name,
            });
            if view.extra_specs {
                f["extra_specs"] = json!(self.flavor.extra_specs);
            }
            f
        } else {
            json!({"id": self.flavor.flavorid, "links": flavor_link})
        };
        let image = if self.image_ref.is_empty() {
            json!("")
        } else {
            json!({"id": self.image_ref, "links": image_link})
        };
        let iso = |t: i64| iso8601_seconds(t);
        let mut s = json!({
            "accessIPv4": self.access_ip_v4.clone().unwrap_or_default(),
            "accessIPv6": self.access_ip_v6.clone().unwrap_or_default(),
            "addresses": addresses(&self.network_info),
            "created": iso(self.created_at),
            "flavor": flavor,
            "hostId": host_id(self.host.as_deref(), &self.project_id),
            "id": self.uuid,
            "image": image,
            "links": server_links,
            "metadata": self.metadata,
            "name": self.display_name,
            "status": status,
            "tenant_id": self.project_id,
            "user_id": self.user_id,
            "updated": iso(self.updated_at),
            "OS-DCF:diskConfig": if self.auto_disk_config { "AUTO" } else { "MANUAL" },
            "OS-EXT-AZ:availability_zone": self.availability_zone.clone().unwrap_or_default(),
            "config_drive": self.config_drive,
            "key_name": self.key_name,
            "OS-SRV-USG:launched_at": self.launched_at.map(python_isoformat),
            "OS-SRV-USG:terminated_at": self.terminated_at.map(python_isoformat),
            "OS-EXT-STS:task_state": self.task_state,
            "OS-EXT-STS:vm_state": self.vm_state.as_str(),
            "OS-EXT-STS:power_state": self.power_state.code(),
            "os-extended-volumes:volumes_attached": [],
        });
        if matches!(status, "ERROR" | "DELETED")
            && let Some(f) = &self.fault
        {
            let mut fb = json!({"code": f.code, "created": iso(f.created_at),
                "message": f.message});
            if !f.details.is_empty() && (view.is_admin || f.code != 500) {
                fb["details"] = json!(f.details);
            }
            s["fault"] = fb;
        }
        if matches!(
            status,
            "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
        ) {
            s["progress"] = json!(0);
        }
        if view.extended_attributes {
            s["OS-EXT-SRV-ATTR:host"] = json!(self.host);
            s["OS-EXT-SRV-ATTR:instance_name"] = json!(self.instance_name());
            s["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(self.node);
            if v.at_least(2, 3) {
                s["OS-EXT-SRV-ATTR:hostname"] = json!(self.hostname);
                s["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
                s["OS-EXT-SRV-ATTR:launch_index"] = json!(self.launch_index);
                s["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
                s["OS-EXT-SRV-ATTR:reservation_id"] = json!(self.reservation_id);
                s["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
                s["OS-EXT-SRV-ATTR:user_data"] = json!(self.user_data);
            }
        } else if v.at_least(2, 90) {
            s["OS-EXT-SRV-ATTR:hostname"] = json!(self.hostname);
        }
        if v.at_least(2, 9) {
            s["locked"] = json!(self.locked_by.is_some());
        }
        if v.at_least(2, 19) {
            s["description"] = json!(self.display_description);
        }
        if v.at_least(2, 26) {
            s["tags"] = json!(self.tags);
        }
        if v.at_least(2, 63) {
            s["trusted_image_certificates"] = Value::Null;
        }
        if view.show && v.at_least(2, 71) {
            s["server_groups"] = json!([]);
        }
        if v.at_least(2, 73) {
            s["locked_reason"] = json!(self.locked_reason);
        }
        if v.at_least(2, 96) {
            s["pinned_availability_zone"] = json!(self.requested_zone);
        }
        if v.at_least(2, 100) {
            s["scheduler_hints"] = json!({});
        }
        s
    }
}

#[cfg(test)]
mod server_tests {
    use super::*;

    #[test]
    fn statuses_follow_nova_state_map() {
        assert_eq!(status_of(VmState::Building, Some("scheduling")), "BUILD");
        assert_eq!(status_of(VmState::Active, None), "ACTIVE");
        assert_eq!(status_of(VmState::Active, Some("rebooting")), "REBOOT");
        assert_eq!(
            status_of(VmState::Active, Some("rebooting_hard")),
            "HARD_REBOOT"
        );
        assert_eq!(status_of(VmState::Active, Some("powering-off")), "ACTIVE");
        assert_eq!(status_of(VmState::Stopped, None), "SHUTOFF");
        assert_eq!(status_of(VmState::Error, Some("rebuilding")), "REBUILD");
        assert_eq!(status_of(VmState::SoftDeleted, None), "SOFT_DELETED");
    }

    #[test]
    fn status_filters_invert_the_map() {
        assert_eq!(states_of_status("shutoff"), vec![(VmState::Stopped, None)]);
        let reboot = states_of_status("REBOOT");
        assert!(reboot.contains(&(VmState::Active, Some("rebooting"))));
        assert!(!reboot.iter().any(|(_, t)| t.is_none()));
    }

    #[test]
    fn host_ids_hash_project_and_host() {
        assert_eq!(host_id(None, "p"), "");
        let a = host_id(Some("h"), "p");
        assert_eq!(a.len(), 56);
        assert_ne!(a, host_id(Some("h"), "q"));
    }
}
