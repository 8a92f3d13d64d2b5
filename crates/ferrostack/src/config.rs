//! FerroStack's configuration: one TOML file, every key overridable by
//! `FERROSTACK_<SECTION>__<KEY>` environment variables, defaults for everything.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub state_dir: PathBuf,
    pub database: DatabaseConfig,
    pub identity: IdentitySection,
    pub image: ImageSection,
    pub compute: ComputeSection,
    pub placement: PlacementSection,
    pub network: NetworkSection,
    pub network_agent: NetworkAgentSection,
    pub object: ObjectSection,
    pub bootstrap: BootstrapSection,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `postgres://...` or `mysql://...`; empty means the SQLite file in the
    /// state directory.
    pub url: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach identity at; empty means `http://<bind>:<port>`.
    pub public_url: String,
    pub token_expiration: i64,
    pub bcrypt_cost: u32,
    pub max_active_keys: usize,
    pub policy_file: Option<PathBuf>,
}

/// The image service (Glance v2).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageSection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach the image API at; empty means `http://<bind>:<port>`.
    pub public_url: String,
    pub policy_file: Option<PathBuf>,
    /// Largest image accepted, in bytes (Glance's `image_size_cap`, 1 TiB).
    pub size_cap: i64,
    /// Ports a `web-download` import may fetch from (Glance's `allowed_ports`); empty: any.
    pub web_download_allowed_ports: Vec<u16>,
}

/// The placement service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementSection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach placement at; empty means `http://<bind>:<port>`.
    pub public_url: String,
    pub policy_file: Option<PathBuf>,
}

/// The compute service (Nova v2.1).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeSection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach compute at, without `/v2.1`; empty means `http://<bind>:<port>`.
    pub public_url: String,
    pub policy_file: Option<PathBuf>,
    /// The bus between conductor and agents: `memory://` (in-process) or `amqp://...`.
    pub bus_url: String,
    /// The hypervisor driver of the compute agents: `qemu` (real guests: one qemu-system
    /// process per server; the default, as Nova's is libvirt) or `fake` (in memory).
    pub driver: String,
    /// The host a standalone `ferrostack compute-agent` serves (Nova's `host`); empty:
    /// the machine's hostname.
    pub host: String,
    /// How many in-process compute agents to run (hosts `fake-0`, `fake-1`... or `qemu-0`,
    /// `qemu-1`...); 0 for none.
    pub fake_hosts: usize,
    /// The QEMU driver's emulator: a path, or a name looked up in `PATH`.
    pub qemu_binary: String,
    /// The QEMU driver's accelerator: `auto` (a probe boot decides once per host), `kvm`
    /// or `tcg`.
    pub qemu_accel: String,
    /// The kernel the KVM probe boots; empty: the newest `/boot/vmlinuz-*`.
    pub qemu_probe_kernel: String,
    /// Seconds a guest may take to shut down on ACPI before it is stopped hard (Nova's
    /// `shutdown_timeout`).
    pub shutdown_timeout: u64,
    /// Seconds a soft reboot waits for the guest before resetting it (Nova's
    /// `wait_soft_reboot_seconds`).
    pub soft_reboot_timeout: u64,
    /// Every server gets a config drive (Nova's `force_config_drive`).
    pub force_config_drive: bool,
    /// Seconds between passes over each host's image cache (Nova's `[image_cache]
    /// manager_interval`); 0 turns them off.
    pub image_cache_interval: u64,
    /// Seconds a cached base image no guest of the host uses is kept (Nova's
    /// `remove_unused_original_minimum_age_seconds`).
    pub image_cache_max_age: u64,
    /// Seconds between each agent's reports of the guests it runs, whose servers' deletes
    /// it missed while it was down are then destroyed (Nova's
    /// `running_deleted_instance_poll_interval`); 0: only when the agent starts.
    pub running_deleted_instance_poll_interval: u64,
    /// Seconds between each agent's reports of its guests' power states, which the
    /// conductor brings the servers' recorded states in line with (Nova's
    /// `sync_power_state_interval`); 0: only when the agent starts.
    pub sync_power_state_interval: u64,
    /// Each in-process host's inventory.
    pub host_vcpus: i64,
    pub host_memory_mb: i64,
    pub host_disk_gb: i64,
    /// Hosts a build is tried on before the server goes to ERROR (Nova's `max_attempts`).
    pub max_attempts: i64,
    /// Seconds a shelved server stays on its host before it is offloaded (Nova's
    /// `shelved_offload_time`): 0 at once, negative never.
    pub shelved_offload_time: i64,
    /// Seconds a server may stay in a transitional task state before the sweep acts.
    pub task_timeout: u64,
    /// Seconds between agent heartbeats (Nova's `report_interval`).
    pub report_interval: u64,
    /// The scheduler chooses at random among this many best weighed hosts (Nova's
    /// `[filter_scheduler] host_subset_size`).
    pub host_subset_size: usize,
    /// Milliseconds the scheduler trusts its host view before refreshing it from placement.
    pub scheduler_view_ttl_ms: u64,
    /// The service users' password; empty: generated once into `<state_dir>/service-password`.
    pub service_password: String,
    /// Where the metadata API (nova-api-metadata) listens; the metadata proxy forwards
    /// guests' requests there.
    pub metadata_bind: String,
    pub metadata_port: u16,
    /// The secret the metadata proxy signs instance ids with; empty: generated once into
    /// `<state_dir>/metadata-proxy-shared-secret`.
    pub metadata_proxy_shared_secret: String,
    /// The domain the metadata API appends to hostnames (Nova's `[api] dhcp_domain`);
    /// empty for none.
    pub dhcp_domain: String,
    /// Seconds a build waits for the network service to announce its ports plugged
    /// (`network-vif-plugged`) when the driver plugs ports (QEMU); 0: no wait (Nova's
    /// `vif_plugging_timeout`). In-process QEMU hosts wait only when the in-process
    /// network agent runs: it is what sees their taps.
    pub vif_plugging_timeout: u64,
    /// A build whose ports were not announced in time fails (Nova's
    /// `vif_plugging_is_fatal`).
    pub vif_plugging_is_fatal: bool,
}

/// The network service (Neutron v2.0).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach the network API at, without `/v2.0`; empty means
    /// `http://<bind>:<port>`.
    pub public_url: String,
    pub policy_file: Option<PathBuf>,
    /// VXLAN VNI ranges for tenant networks, `min:max` (ML2's `vni_ranges`).
    pub vxlan_ranges: Vec<String>,
    /// VLAN ranges, `physnet:min:max` (ML2's `network_vlan_ranges`).
    pub vlan_ranges: Vec<String>,
    /// Physical networks flat networks may use; `*` for any.
    pub flat_networks: Vec<String>,
    /// The MAC prefix of ports (Neutron's `base_mac`).
    pub base_mac: String,
    /// MTU of the physical networks (Neutron's `global_physnet_mtu`).
    pub physnet_mtu: i64,
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            bind: "127.0.0.1".into(),
            port: 9696,
            public_url: String::new(),
            policy_file: None,
            vxlan_ranges: vec!["1:1000".into()],
            vlan_ranges: vec!["physnet1:1000:2999".into()],
            flat_networks: vec!["*".into()],
            base_mac: "fa:16:3e:00:00:00".into(),
            physnet_mtu: 1500,
        }
    }
}

/// The network agent of this host (bridges, DHCP, metadata proxy).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkAgentSection {
    /// `auto` (when root, with `ip` and `dnsmasq` on the host), `true` or `false`.
    #[serde(deserialize_with = "bool_or_word")]
    pub enabled: String,
    /// The host the agent serves ports of; empty: the first in-process compute host.
    pub host: String,
    /// Prefix of every device and namespace the agent and the QEMU driver make (1–4
    /// lowercase letters or digits).
    pub prefix: String,
    /// Serve DHCP and metadata for every network with a DHCP subnet.
    pub dhcp: bool,
    /// Hold routers (namespaces with NAT); each router goes to one live L3 host.
    pub l3: bool,
    /// This host's VXLAN endpoint address; empty: VXLAN networks stay on this host.
    pub tunnel_ip: String,
    /// `physnet:interface,...`: the host interface of each physical network (flat
    /// networks bridge it, VLAN networks a VLAN device on it), as Neutron's
    /// `physical_interface_mappings`; empty: provider networks stay on this host.
    pub physical_interface_mappings: String,
    /// Seconds between syncs without a change notice.
    pub sync_interval: u64,
    /// For `ferrostack network-agent` on another host: the compute metadata API its proxy
    /// forwards to (`http://controller:8775`; empty: no metadata proxy). The proxy signs
    /// with `[compute] metadata_proxy_shared_secret`.
    pub metadata_url: String,
}

/// A setting that is `true`, `false` or a word (`auto`): TOML and the environment may
/// give either a boolean or a string.
fn bool_or_word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Bool(bool),
        Word(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::Bool(b) => b.to_string(),
        Either::Word(w) => w,
    })
}

impl Default for NetworkAgentSection {
    fn default() -> Self {
        NetworkAgentSection {
            enabled: "auto".into(),
            host: String::new(),
            prefix: "fs".into(),
            dhcp: true,
            l3: true,
            tunnel_ip: String::new(),
            physical_interface_mappings: String::new(),
            sync_interval: 10,
            metadata_url: String::new(),
        }
    }
}

impl Config {
    /// The network API's public URL in effect (no version suffix, as Neutron's catalog
    /// entry).
    pub fn network_url(&self, port: u16) -> String {
        if self.network.public_url.is_empty() {
            format!("http://{}:{port}", self.network.bind)
        } else {
            self.network.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// Object storage (Swift): the proxy and, in all-in-one, the storage of its local devices.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectSection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach the proxy at, without `/v1/...`; empty means
    /// `http://<bind>:<port>`.
    pub public_url: String,
    /// Where the ring files live; empty means `<state_dir>/rings`.
    pub rings_dir: String,
    /// The directory of the devices; empty means `<state_dir>/object-devices`.
    pub devices_root: String,
    /// Devices of the rings built on first start (when no ring file exists).
    pub devices: Vec<String>,
    pub replicas: usize,
    pub part_power: u8,
    /// The cluster's hash path salt (`swift_hash_path_prefix` / `_suffix`): the same on
    /// every node, never changed once objects are stored.
    pub hash_path_prefix: String,
    pub hash_path_suffix: String,
    /// keystoneauth's `operator_roles`.
    pub operator_roles: Vec<String>,
    /// keystoneauth's `reseller_admin_role`.
    pub reseller_admin_role: String,
    /// Seconds between the expirer's passes over objects with an `X-Delete-At`.
    pub expirer_interval: u64,
    /// Seconds between the object replicator's passes (upstream's `run_pause`, 30).
    pub replicator_interval: u64,
    /// Seconds between the end of one object auditor pass and the next.
    pub auditor_interval: u64,
    /// The bytes per second the auditor reads (upstream's `bytes_per_second`, 10 MB/s).
    pub auditor_bytes_per_second: u64,
    /// The `ip:port`s of ring devices this process serves from `devices_root`; devices at
    /// other addresses are reached through their node's storage server.
    pub node_addresses: Vec<String>,
    /// Where this node's storage server (the account, container and object servers'
    /// backend protocol) listens: `ferrostack storage-node` always (port 0 means 6200), the
    /// all-in-one only when `storage_port` is set.
    pub storage_bind: String,
    pub storage_port: u16,
}

impl Default for ObjectSection {
    fn default() -> Self {
        ObjectSection {
            bind: "127.0.0.1".into(),
            port: 8080,
            public_url: String::new(),
            rings_dir: String::new(),
            devices_root: String::new(),
            devices: vec!["d1".into(), "d2".into(), "d3".into()],
            replicas: 3,
            part_power: 10,
            hash_path_prefix: String::new(),
            hash_path_suffix: "ferrostack".into(),
            operator_roles: vec!["admin".into(), "member".into(), "swiftoperator".into()],
            reseller_admin_role: "ResellerAdmin".into(),
            expirer_interval: 30,
            replicator_interval: 30,
            auditor_interval: 30,
            auditor_bytes_per_second: 10_000_000,
            node_addresses: vec!["127.0.0.1:6200".into()],
            storage_bind: "127.0.0.1".into(),
            storage_port: 0,
        }
    }
}

impl Config {
    /// The object proxy's public URL in effect (the catalog adds `/v1/AUTH_%(project_id)s`).
    pub fn object_url(&self, port: u16) -> String {
        if self.object.public_url.is_empty() {
            format!("http://{}:{port}", self.object.bind)
        } else {
            self.object.public_url.trim_end_matches('/').to_string()
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapSection {
    pub admin_user: String,
    /// Empty means: generate one on first start.
    pub admin_password: String,
    pub admin_project: String,
    pub region: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/ferrostack"),
            database: DatabaseConfig::default(),
            identity: IdentitySection::default(),
            image: ImageSection::default(),
            compute: ComputeSection::default(),
            placement: PlacementSection::default(),
            network: NetworkSection::default(),
            network_agent: NetworkAgentSection::default(),
            object: ObjectSection::default(),
            bootstrap: BootstrapSection::default(),
        }
    }
}

impl Default for IdentitySection {
    fn default() -> Self {
        IdentitySection {
            bind: "127.0.0.1".into(),
            port: 5000,
            public_url: String::new(),
            token_expiration: 3600,
            bcrypt_cost: 12,
            max_active_keys: 3,
            policy_file: None,
        }
    }
}

impl Default for ImageSection {
    fn default() -> Self {
        ImageSection {
            bind: "127.0.0.1".into(),
            port: 9292,
            public_url: String::new(),
            policy_file: None,
            size_cap: ferro_image::DEFAULT_SIZE_CAP,
            web_download_allowed_ports: vec![80, 443],
        }
    }
}

impl Default for PlacementSection {
    fn default() -> Self {
        PlacementSection {
            bind: "127.0.0.1".into(),
            port: 8778,
            public_url: String::new(),
            policy_file: None,
        }
    }
}

impl Default for ComputeSection {
    fn default() -> Self {
        ComputeSection {
            bind: "127.0.0.1".into(),
            port: 8774,
            public_url: String::new(),
            policy_file: None,
            bus_url: "memory://".into(),
            driver: "qemu".into(),
            host: String::new(),
            fake_hosts: 1,
            qemu_binary: "qemu-system-x86_64".into(),
            qemu_accel: "auto".into(),
            qemu_probe_kernel: String::new(),
            shutdown_timeout: 60,
            soft_reboot_timeout: 120,
            force_config_drive: false,
            image_cache_interval: 2400,
            image_cache_max_age: 86_400,
            running_deleted_instance_poll_interval: 1800,
            sync_power_state_interval: 600,
            host_vcpus: 8,
            host_memory_mb: 16384,
            host_disk_gb: 200,
            max_attempts: 3,
            shelved_offload_time: 0,
            task_timeout: 600,
            report_interval: 10,
            host_subset_size: ferro_compute::scheduler::HOST_SUBSET_SIZE,
            scheduler_view_ttl_ms: ferro_compute::scheduler::VIEW_TTL.as_millis() as u64,
            service_password: String::new(),
            metadata_bind: "127.0.0.1".into(),
            metadata_port: 8775,
            metadata_proxy_shared_secret: String::new(),
            dhcp_domain: "novalocal".into(),
            vif_plugging_timeout: 300,
            vif_plugging_is_fatal: true,
        }
    }
}

impl Default for BootstrapSection {
    fn default() -> Self {
        BootstrapSection {
            admin_user: "admin".into(),
            admin_password: String::new(),
            admin_project: "admin".into(),
            region: "RegionOne".into(),
        }
    }
}

impl Config {
    /// Reads `file` (if given, or `/etc/ferrostack/ferrostack.toml` if it exists), then
    /// applies `FERROSTACK_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let default_file = Path::new("/etc/ferrostack/ferrostack.toml");
        let text = match file {
            Some(f) => {
                std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("config {f:?}: {e}"))?
            }
            None if default_file.exists() => std::fs::read_to_string(default_file)?,
            None => String::new(),
        };
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config: {e}"))?;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("FERROSTACK_") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let value = parse_env_value(&v);
            match path.as_slice() {
                [key] if key == "state_dir" => {
                    doc.insert(key.clone(), value);
                }
                [section, key] => {
                    let t = doc
                        .entry(section.clone())
                        .or_insert_with(|| toml::Value::Table(Default::default()));
                    if let toml::Value::Table(t) = t {
                        t.insert(key.clone(), value);
                    }
                }
                _ => {}
            }
        }
        Ok(toml::Value::Table(doc).try_into()?)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.state_dir.join("ferrostack.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// Identity's public URL in effect.
    pub fn identity_url(&self, port: u16) -> String {
        if self.identity.public_url.is_empty() {
            format!("http://{}:{port}", self.identity.bind)
        } else {
            self.identity.public_url.trim_end_matches('/').to_string()
        }
    }
}

impl Config {
    /// The image API's public URL in effect (no version suffix, as Glance's catalog entry).
    pub fn image_url(&self, port: u16) -> String {
        if self.image.public_url.is_empty() {
            format!("http://{}:{port}", self.image.bind)
        } else {
            self.image.public_url.trim_end_matches('/').to_string()
        }
    }
}

impl Config {
    /// Placement's public URL in effect (no version suffix, as upstream's catalog entry).
    pub fn placement_url(&self, port: u16) -> String {
        if self.placement.public_url.is_empty() {
            format!("http://{}:{port}", self.placement.bind)
        } else {
            self.placement.public_url.trim_end_matches('/').to_string()
        }
    }
}

impl Config {
    /// The compute API's public URL in effect, without the version (the catalog adds
    /// `/v2.1`).
    pub fn compute_url(&self, port: u16) -> String {
        if self.compute.public_url.is_empty() {
            format!("http://{}:{port}", self.compute.bind)
        } else {
            self.compute.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// Environment values are typed as TOML would type them: numbers and booleans stay so, and
/// `[...]` is a TOML array (`FERROSTACK_IMAGE__WEB_DOWNLOAD_ALLOWED_PORTS=[80, 8080]`).
fn parse_env_value(v: &str) -> toml::Value {
    let array = v
        .starts_with('[')
        .then(|| toml::from_str::<toml::Table>(&format!("v = {v}")).ok())
        .flatten()
        .and_then(|mut t| t.remove("v"));
    if let Some(a) = array {
        a
    } else if let Ok(i) = v.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = v.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[identity]\nport = 5001\nbcrypt_cost = 10\n").unwrap();
        let env = [("FERROSTACK_IDENTITY__PORT".to_string(), "6000".to_string())];
        let c = Config::load(Some(&f), env.into_iter()).unwrap();
        assert_eq!(c.identity.port, 6000);
        assert_eq!(c.identity.bcrypt_cost, 10);
        assert_eq!(c.image.port, 9292);
        assert_eq!(c.image_url(9292), "http://127.0.0.1:9292");
        assert_eq!(c.placement.port, 8778);
        assert_eq!(c.placement_url(8778), "http://127.0.0.1:8778");
        std::fs::write(&f, "[identity]\nprot = 1\n").unwrap();
        assert!(Config::load(Some(&f), std::iter::empty()).is_err());
    }

    #[test]
    fn the_network_agent_toggle_takes_booleans_and_words() {
        for (v, want) in [("true", "true"), ("false", "false"), ("auto", "auto")] {
            let env = [(
                "FERROSTACK_NETWORK_AGENT__ENABLED".to_string(),
                v.to_string(),
            )];
            let c = Config::load(None, env.into_iter()).unwrap();
            assert_eq!(c.network_agent.enabled, want);
        }
        assert_eq!(Config::default().network_agent.enabled, "auto");
    }
}
