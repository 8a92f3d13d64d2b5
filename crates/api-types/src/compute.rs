//! Nova's instance state vocabulary (`vm_state`, `task_state`, `power_state`, as
//! nova/compute/{vm_states,task_states,power_state}.py name them) and the bus contract
//! between the conductor (topic [`CONDUCTOR_TOPIC`]) and the compute agents (topic
//! [`compute_topic`]). A message is an envelope whose `method` is the enum variant's
//! snake_case name and whose `payload` is its body, so [`AgentRequest::method`] +
//! [`AgentRequest::payload`] and [`AgentRequest::parse`] round-trip. Bodies carry
//! [`CONTRACT_VERSION`]; a receiver refuses a major version it does not know.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The contract's version: `major.minor`; minors only add optional fields.
pub const CONTRACT_VERSION: &str = "1.0";

/// The conductor's work queue.
pub const CONDUCTOR_TOPIC: &str = "conductor";

/// The work queue of the compute agent on `host`.
pub fn compute_topic(host: &str) -> String {
    format!("compute.{host}")
}

/// Nova's `vm_state`: the stable state of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
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
}

impl VmState {
    /// Upstream's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Active => "active",
            VmState::Building => "building",
            VmState::Paused => "paused",
            VmState::Suspended => "suspended",
            VmState::Stopped => "stopped",
            VmState::Rescued => "rescued",
            VmState::Resized => "resized",
            VmState::SoftDeleted => "soft-delete",
            VmState::Deleted => "deleted",
            VmState::Error => "error",
            VmState::Shelved => "shelved",
            VmState::ShelvedOffloaded => "shelved_offloaded",
        }
    }

    /// The state spelled `s` upstream.
    pub fn parse(s: &str) -> Option<VmState> {
        [
            VmState::Active,
            VmState::Building,
            VmState::Paused,
            VmState::Suspended,
            VmState::Stopped,
            VmState::Rescued,
            VmState::Resized,
            VmState::SoftDeleted,
            VmState::Deleted,
            VmState::Error,
            VmState::Shelved,
            VmState::ShelvedOffloaded,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Nova's `power_state` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    NoState,
    Running,
    Paused,
    Shutdown,
    Crashed,
    Suspended,
}

impl PowerState {
    /// The integer Nova stores and shows in `OS-EXT-STS:power_state`.
    pub fn code(self) -> i64 {
        match self {
            PowerState::NoState => 0,
            PowerState::Running => 1,
            PowerState::Paused => 3,
            PowerState::Shutdown => 4,
            PowerState::Crashed => 6,
            PowerState::Suspended => 7,
        }
    }

    /// The state of code `c` (unknown codes are NOSTATE).
    pub fn from_code(c: i64) -> PowerState {
        match c {
            1 => PowerState::Running,
            3 => PowerState::Paused,
            4 => PowerState::Shutdown,
            6 => PowerState::Crashed,
            7 => PowerState::Suspended,
            _ => PowerState::NoState,
        }
    }
}

/// The power actions the API casts to an agent. Each names the `task_state` the API sets
/// before casting and the states the agent reports when done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    Stop,
    Start,
    RebootSoft,
    RebootHard,
    Pause,
    Unpause,
    Suspend,
    Resume,
}

impl PowerAction {
    /// The `vm_state` and `power_state` an instance has after the action succeeded.
    pub fn outcome(self) -> (VmState, PowerState) {
        match self {
            PowerAction::Stop => (VmState::Stopped, PowerState::Shutdown),
            PowerAction::Pause => (VmState::Paused, PowerState::Paused),
            PowerAction::Suspend => (VmState::Suspended, PowerState::Suspended),
            PowerAction::Start
            | PowerAction::RebootSoft
            | PowerAction::RebootHard
            | PowerAction::Unpause
            | PowerAction::Resume => (VmState::Active, PowerState::Running),
        }
    }
}

/// What an agent needs to build one instance; the conductor fills it from the instance row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub uuid: String,
    /// `instance-<hex id>`-style libvirt name, used by the driver.
    pub name: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap_mb: i64,
    pub image_ref: String,
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub key_data: Option<String>,
    /// The server's name as its owner gave it (meta_data.json's `name`).
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub project_id: String,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    /// The key pair's type (`ssh` or `x509`); `None` reads as `ssh`.
    #[serde(default)]
    pub key_type: Option<String>,
    /// The flavor's name (EC2 `instance-type`).
    #[serde(default)]
    pub flavor_name: String,
    /// The create request's reservation (`r-...`, EC2 `reservation-id`).
    #[serde(default)]
    pub reservation_id: String,
    /// The server's metadata (meta_data.json's `meta`).
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub launch_index: i64,
    /// The owner asked for a config drive (`config_drive: true`).
    #[serde(default)]
    pub config_drive: bool,
    /// Where the root disk's image comes from; the agent resolves it from `image_ref`
    /// before it spawns the guest. Drivers that need no bytes (fake) ignore it.
    #[serde(default)]
    pub image: Option<ImageSource>,
    /// The image's `kernel_id` (AKI) and `ramdisk_id` (ARI), for direct kernel boot.
    #[serde(default)]
    pub kernel: Option<ImageSource>,
    #[serde(default)]
    pub ramdisk: Option<ImageSource>,
    /// The image's `os_command_line` property: the kernel command line of direct boot.
    #[serde(default)]
    pub os_command_line: Option<String>,
    /// The instance's ports, in order.
    #[serde(default)]
    pub nics: Vec<Nic>,
}

/// Where a driver fetches one image's bytes and what they must be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageSource {
    /// The Glance image id (the host cache's key).
    pub id: String,
    /// `http(s)://<image api>/v2/images/<id>/file`, or `file:///path` for local tests.
    pub url: String,
    /// The `X-Auth-Token` to send; the agent fills it just before spawning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Glance's `disk_format` (`raw`, `qcow2`, `aki`, `ari`, `ami`...).
    #[serde(default)]
    pub disk_format: String,
    /// Glance's `os_hash_algo` and `os_hash_value` (the multihash of the bytes).
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
}

/// A port of an instance, as the agent plugs it (its tap is named after the port) and the
/// guest learns it from network_data.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    pub port_id: String,
    pub network_id: String,
    pub mac_address: String,
    #[serde(default)]
    pub ips: Vec<String>,
    /// The network's MTU.
    #[serde(default)]
    pub mtu: Option<i64>,
    /// The port's `binding:vif_type` (`bridge` on the Linux-bridge dataplane).
    #[serde(default)]
    pub vif_type: String,
    /// The subnets of the port's fixed IPs, in the network API's order.
    #[serde(default)]
    pub subnets: Vec<NicSubnet>,
    /// The port was ACTIVE when bound: no `network-vif-plugged` event will come for it.
    #[serde(default)]
    pub active: bool,
}

/// A subnet a port has an address on, with what a guest needs to configure it (Nova's
/// network model `Subnet`, filled from the network API).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NicSubnet {
    #[serde(default)]
    pub id: String,
    pub cidr: String,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    #[serde(default)]
    pub enable_dhcp: bool,
    /// `slaac`, `dhcpv6-stateful`, `dhcpv6-stateless` for IPv6 subnets that set it.
    #[serde(default)]
    pub ipv6_address_mode: Option<String>,
    /// The address of the network's DHCP port on this subnet, if one exists.
    #[serde(default)]
    pub dhcp_server: Option<String>,
    /// The port's addresses on this subnet.
    #[serde(default)]
    pub ips: Vec<String>,
}

/// A subnet's static route (`host_routes` entry).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

/// A host's capacity and identity, sent with each heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostResources {
    pub vcpus: i64,
    pub memory_mb: i64,
    pub local_gb: i64,
    /// `fake`, `QEMU`...
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    /// Placement resource provider of the host, once the agent registered it.
    #[serde(default)]
    pub provider_uuid: Option<String>,
    /// The instances the driver runs now.
    #[serde(default)]
    pub running_instances: i64,
    /// Free-form detail of the host's CPU and hypervisor, as Nova's `cpu_info` (a JSON
    /// object: `arch`, `model`, `topology`, and for QEMU the `accelerator`, kvm or tcg).
    #[serde(default)]
    pub cpu_info: serde_json::Value,
}

/// Requests to a compute agent (topic `compute.<host>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// A build carries the whole instance spec; requests are made once and moved onto the bus,
// so the size of the largest variant costs nothing worth a Box in every constructor.
#[allow(clippy::large_enum_variant)]
pub enum AgentRequest {
    /// Build and start an instance; the agent answers `build_succeeded` or `build_failed`.
    BuildAndRunInstance {
        version: String,
        instance: InstanceSpec,
    },
    /// Destroy an instance (idempotent); the agent answers `instance_destroyed`.
    TerminateInstance { version: String, uuid: String },
    /// A call: the last `length` lines of the guest's console log (all when `None`),
    /// answered as `{"output": "..."}`.
    GetConsoleOutput {
        version: String,
        uuid: String,
        #[serde(default)]
        length: Option<i64>,
    },
    /// A call: one step of a resize (or its revert) on this host, answered as
    /// `{"power_state": <code>}` once done.
    Migrate {
        version: String,
        step: MigrateStep,
        /// The instance as this step wants it (the new flavor to finish, the old to revert).
        instance: InstanceSpec,
        /// Whether the guest should run after the step (it ran before the resize).
        power_on: bool,
    },
    /// Snapshot the guest's disk into image `image_id` (queued in the image API), with the
    /// requester's token; the agent answers `snapshot_done`.
    SnapshotInstance {
        version: String,
        uuid: String,
        image_id: String,
        token: String,
    },
    /// A power action; the agent answers `power_action_done`.
    PowerAction {
        version: String,
        uuid: String,
        action: PowerAction,
    },
    /// A call: one step of a shelve or unshelve of the guest on this host (see
    /// [`ShelveStep`]), answered as `{"power_state": <code>}` once done.
    Shelve {
        version: String,
        uuid: String,
        step: ShelveStep,
        /// The queued image a `snapshot` step uploads the guest's disk into, with the
        /// requester's token.
        #[serde(default)]
        image_id: Option<String>,
        #[serde(default)]
        token: Option<String>,
    },
    /// A call (`os-interface` attach): hot-plug port `nic` into the guest (its tap in the
    /// network's bridge, a NIC in the guest), answered `{}` once plugged. A NIC the guest
    /// has already is left as it is.
    AttachInterface {
        version: String,
        uuid: String,
        nic: Nic,
    },
    /// A call (`os-interface` detach): unplug port `port_id` from the guest and remove its
    /// tap, answered `{}`. A port the guest does not have is not an error.
    DetachInterface {
        version: String,
        uuid: String,
        port_id: String,
    },
    /// An event from another service about one of the host's instances
    /// (`os-server-external-events`: `network-vif-plugged` with the port id as `tag`...).
    ExternalEvent {
        version: String,
        uuid: String,
        name: String,
        #[serde(default)]
        tag: Option<String>,
        /// `completed`, `failed` or `in-progress`.
        status: String,
    },
}

/// The steps on one host the conductor asks of the agents. A resize: the source powers the
/// guest off, the destination finishes it with the new flavor; confirming removes what is
/// left on the source, reverting removes the destination's guest and restores the source's.
/// A rebuild: the guest is made anew from its (new) image on its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateStep {
    PowerOff,
    Finish,
    Confirm,
    DropDestination,
    FinishRevert,
    Rebuild,
}

/// The steps of a shelve on the guest's host. `Snapshot` powers the guest off and uploads
/// its disk into the shelve's image; `Offload` powers it off and destroys it (its taps
/// too); `PowerOn` starts a shelved guest that was not offloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShelveStep {
    Snapshot,
    Offload,
    PowerOn,
}

/// Requests to the conductor (topic [`CONDUCTOR_TOPIC`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConductorRequest {
    /// Schedule and build an instance the API recorded (`building`/`scheduling`).
    BuildInstances { version: String, uuid: String },
    /// An agent built the instance: it runs on `host` with `power_state`.
    BuildSucceeded {
        version: String,
        uuid: String,
        host: String,
        power_state: PowerState,
    },
    /// An agent failed to build the instance (its undo ran); reschedule or fail.
    BuildFailed {
        version: String,
        uuid: String,
        host: String,
        reason: String,
    },
    /// An agent destroyed the instance on its host.
    InstanceDestroyed {
        version: String,
        uuid: String,
        host: String,
    },
    /// The agent's report on a power action: the states it observed after it.
    PowerActionDone {
        version: String,
        uuid: String,
        host: String,
        action: PowerAction,
        /// `None` when the action succeeded, else why it failed.
        error: Option<String>,
        power_state: PowerState,
    },
    /// Move a server the API marked `resize_prep` to its migration's new flavor.
    ResizeInstance { version: String, uuid: String },
    /// Finish a confirmed resize: drop the source's leftovers and the old allocation.
    ConfirmResize { version: String, uuid: String },
    /// Rebuild a server the API marked `rebuilding` from its (new) image.
    RebuildInstance { version: String, uuid: String },
    /// Undo a resize the API marked `resize_reverting`.
    RevertResize { version: String, uuid: String },
    /// Shelve a server the API marked `shelving`: its disk goes into image `image_id`
    /// (queued in the image API by the API, uploaded with `token`), then the server is
    /// SHELVED — and offloaded at once when `shelved_offload_time` is 0.
    ShelveInstance {
        version: String,
        uuid: String,
        image_id: String,
        token: String,
    },
    /// Offload a SHELVED server the API marked `shelving_offloading`: its guest destroyed,
    /// its allocation removed, its ports unbound; SHELVED_OFFLOADED on no host.
    ShelveOffloadInstance { version: String, uuid: String },
    /// Unshelve a server the API marked `unshelving`: a SHELVED one is powered on where it
    /// is; a SHELVED_OFFLOADED one is scheduled (to `host` when an admin named one) and
    /// built from its shelve image.
    UnshelveInstance {
        version: String,
        uuid: String,
        #[serde(default)]
        host: Option<String>,
    },
    /// An agent finished (or failed) a snapshot; on failure it deleted the image.
    SnapshotDone {
        version: String,
        uuid: String,
        host: String,
        image_id: String,
        error: Option<String>,
    },
    /// The guests `host`'s hypervisor runs, by instance uuid with the power state it
    /// reports, sent by its agent when it starts and periodically: the conductor asks the
    /// agent to destroy those whose server is deleted (upstream's "reap" of running deleted
    /// instances — a server deleted while its host was down is deleted in the database
    /// only) and brings the others' recorded state in line (upstream's power state sync).
    GuestsOnHost {
        version: String,
        host: String,
        guests: Vec<(String, PowerState)>,
        /// When the agent began reading the states (µs since the epoch): a server changed
        /// since is left to the next report.
        #[serde(default)]
        taken_at: i64,
    },
    /// An agent is alive, with its host's resources.
    ServiceHeartbeat {
        version: String,
        host: String,
        resources: HostResources,
    },
}

/// A message that is not a valid contract body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError(pub String);

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad bus message: {}", self.0)
    }
}

impl std::error::Error for ContractError {}

pub(crate) fn split<T: Serialize>(v: &T) -> (String, Value) {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m.into_iter().next().unwrap_or_default(),
        _ => (String::new(), Value::Null),
    }
}

pub(crate) fn join<T: for<'de> Deserialize<'de>>(
    method: &str,
    payload: &Value,
) -> Result<T, ContractError> {
    if let Some(v) = payload.get("version").and_then(Value::as_str)
        && v.split('.').next() != CONTRACT_VERSION.split('.').next()
    {
        return Err(ContractError(format!("unsupported contract version {v}")));
    }
    let mut m = serde_json::Map::new();
    m.insert(method.to_string(), payload.clone());
    serde_json::from_value(Value::Object(m)).map_err(|e| ContractError(format!("{method}: {e}")))
}

/// `to_parts`/`parse` of a contract enum (shared by every bus contract of this crate).
macro_rules! envelope_parts {
    ($t:ty) => {
        impl $t {
            /// The envelope's `method` and `payload` of this request.
            pub fn to_parts(&self) -> (String, Value) {
                split(self)
            }

            /// The request an envelope's `method` and `payload` carry.
            pub fn parse(method: &str, payload: &Value) -> Result<Self, ContractError> {
                join(method, payload)
            }
        }
    };
}

envelope_parts!(AgentRequest);
envelope_parts!(ConductorRequest);
pub(crate) use envelope_parts;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_envelope_parts() {
        let r = AgentRequest::PowerAction {
            version: CONTRACT_VERSION.into(),
            uuid: "u".into(),
            action: PowerAction::RebootHard,
        };
        let (method, payload) = r.to_parts();
        assert_eq!(method, "power_action");
        assert_eq!(payload["action"], "reboot_hard");
        assert_eq!(AgentRequest::parse(&method, &payload).unwrap(), r);
    }

    #[test]
    fn unknown_major_versions_are_refused() {
        let payload = serde_json::json!({"version": "2.0", "uuid": "u"});
        assert!(AgentRequest::parse("terminate_instance", &payload).is_err());
        assert!(AgentRequest::parse("no_such_method", &serde_json::json!({})).is_err());
    }

    #[test]
    fn states_use_upstream_spellings() {
        assert_eq!(VmState::SoftDeleted.as_str(), "soft-delete");
        assert_eq!(VmState::parse("stopped"), Some(VmState::Stopped));
        assert_eq!(PowerState::Shutdown.code(), 4);
        assert_eq!(PowerState::from_code(7), PowerState::Suspended);
    }
}
