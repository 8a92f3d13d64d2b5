//! The documents a guest reads about itself, as Nova serves them from its metadata API
//! (nova/api/metadata/base.py) and writes them on the config drive (the same class, through
//! `metadata_for_config_drive`): the OpenStack tree (`/openstack/<version>/meta_data.json`,
//! `user_data`, `network_data.json` — nova/virt/netutils.py `get_network_metadata` —,
//! `vendor_data.json`, `vendor_data2.json`, `password`) and the EC2 tree
//! (`/<version>/meta-data/...`, `/<version>/user-data`), with `latest` aliases and the
//! text rendering of directories (`ec2_md_print`).
//!
//! One generator for both consumers, built from the agent's [`InstanceSpec`] plus the
//! [`Facts`] only the caller can know (the guest's address, security group names, floating
//! addresses, the stored password, the random seed). No I/O: the caller reads the clock,
//! the random source and the other services.
//!
//! It also holds the proxy's signature ([`instance_signature`]): the network agent's
//! metadata proxy signs the instance id with the shared secret and the metadata API checks
//! it (nova/api/metadata/handler.py `_validate_shared_secret`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};

use crate::compute::{InstanceSpec, Nic, NicSubnet};

/// The EC2 metadata versions, oldest first (base.py `VERSIONS`).
pub const EC2_VERSIONS: [&str; 9] = [
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
];

/// The OpenStack metadata versions, oldest first (base.py `OPENSTACK_VERSIONS`, named
/// after the releases that added something).
pub const OPENSTACK_VERSIONS: [&str; 10] = [
    FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY, VICTORIA, EPOXY,
];

const FOLSOM: &str = "2012-08-10";
const GRIZZLY: &str = "2013-04-04";
const HAVANA: &str = "2013-10-17";
const LIBERTY: &str = "2015-10-15";
const NEWTON_ONE: &str = "2016-06-30";
const NEWTON_TWO: &str = "2016-10-06";
const OCATA: &str = "2017-02-22";
const ROCKY: &str = "2018-08-27";
const VICTORIA: &str = "2020-10-14";
const EPOXY: &str = "2025-04-04";

/// Nova's default `[api] dhcp_domain`: the metadata hostname is `<hostname>.novalocal`.
pub const DEFAULT_DHCP_DOMAIN: &str = "novalocal";

/// The longest password a guest may post (password.py: 4 chunks of 255 characters).
pub const MAX_PASSWORD_SIZE: usize = 4 * 255;

/// The VIF types network_data.json names as the link type; others are `phy`
/// (nova/network/model.py `LEGACY_EXPOSED_VIF_TYPES`).
const EXPOSED_VIF_TYPES: [&str; 8] = [
    "bridge",
    "dvs",
    "hw_veb",
    "hyperv",
    "ovs",
    "tap",
    "vhostuser",
    "vif",
];

/// `X-Instance-ID-Signature`: hex HMAC-SHA256 of the instance id keyed with the proxy's
/// shared secret (`metadata_proxy_shared_secret`).
pub fn instance_signature(secret: &str, instance_id: &str) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(instance_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `signature` is the proxy's signature of `instance_id`, compared in constant
/// time as Nova's `hmac.compare_digest`.
pub fn signature_matches(secret: &str, instance_id: &str, signature: &str) -> bool {
    let expected = instance_signature(secret, instance_id);
    if expected.len() != signature.len() {
        return false;
    }
    expected
        .bytes()
        .zip(signature.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// What the documents hold besides the instance spec: facts the caller reads elsewhere.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// The guest's address as the proxy saw it (`X-Forwarded-For`): EC2 `local-ipv4` when
    /// the instance has no fixed IPv4 address.
    pub address: Option<String>,
    /// The names of the instance's security groups (EC2 `security-groups`).
    pub security_groups: Vec<String>,
    /// Floating addresses of the instance (EC2 `public-ipv4` is the first).
    pub floating_ips: Vec<String>,
    /// The password the guest posted (`/openstack/<v>/password`), if any.
    pub password: Option<String>,
    /// 512 random bytes for meta_data.json's `random_seed`.
    pub random_seed: Vec<u8>,
    /// The domain appended to the hostname; `None` is Nova's default `novalocal`, an empty
    /// string none.
    pub dhcp_domain: Option<String>,
}

/// A document or listing found at a metadata path, with Nova's content type.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `text/plain`: a rendered directory or value, or user data.
    Text(Vec<u8>),
    /// `application/json`.
    Json(Vec<u8>),
    /// `/openstack/<v>/password`: answered by the caller (GET shows, POST stores once).
    Password,
}

/// Why a path has nothing (Nova answers 404 `InvalidMetadataPath`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotFound(pub String);

/// Nova's instance metadata of one instance, ready to render any path.
#[derive(Clone, Debug)]
pub struct InstanceMetadata<'a> {
    pub spec: &'a InstanceSpec,
    pub facts: Facts,
    user_data: Option<Vec<u8>>,
}

impl<'a> InstanceMetadata<'a> {
    /// The metadata of `spec`; fails when its user data is not base64 (the API stores it
    /// encoded, so this is a corrupt record).
    pub fn new(spec: &'a InstanceSpec, facts: Facts) -> Result<Self, String> {
        let user_data = match &spec.user_data {
            None => None,
            Some(u) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(u.trim())
                    .map_err(|e| format!("user data is not base64: {e}"))?,
            ),
        };
        Ok(InstanceMetadata {
            spec,
            facts,
            user_data,
        })
    }

    /// The user data's bytes, if the instance has any.
    pub fn user_data(&self) -> Option<&[u8]> {
        self.user_data.as_deref()
    }

    /// The hostname the guest is told: its hostname with the DHCP domain.
    pub fn hostname(&self) -> String {
        let host = if self.spec.hostname.is_empty() {
            &self.spec.name
        } else {
            &self.spec.hostname
        };
        match self
            .facts
            .dhcp_domain
            .as_deref()
            .unwrap_or(DEFAULT_DHCP_DOMAIN)
        {
            "" => host.clone(),
            domain => format!("{host}.{domain}"),
        }
    }

    /// `meta_data.json` as OpenStack metadata version `version` (a known version or
    /// `latest`) has it.
    pub fn meta_data(&self, version: &str) -> Value {
        let s = self.spec;
        let at_least = |v: &str| os_at_least(version, v);
        let mut md = Map::new();
        md.insert("uuid".into(), json!(s.uuid));
        if !s.metadata.is_empty() {
            md.insert("meta".into(), json!(s.metadata));
        }
        if let (Some(name), Some(key)) = (&s.key_name, &s.key_data) {
            md.insert("public_keys".into(), json!({ name: key }));
            md.insert(
                "keys".into(),
                json!([{"name": name, "type": s.key_type.as_deref().unwrap_or("ssh"), "data": key}]),
            );
        }
        md.insert("hostname".into(), json!(self.hostname()));
        let name = if s.display_name.is_empty() {
            &s.name
        } else {
            &s.display_name
        };
        md.insert("name".into(), json!(name));
        md.insert("launch_index".into(), json!(s.launch_index));
        md.insert("availability_zone".into(), json!(s.availability_zone));
        if at_least(GRIZZLY) {
            md.insert(
                "random_seed".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(&self.facts.random_seed)),
            );
        }
        if at_least(LIBERTY) {
            md.insert("project_id".into(), json!(s.project_id));
        }
        if at_least(NEWTON_ONE) {
            // TODO-compat: tagged devices (Nova's device_metadata) are not recorded yet.
            md.insert("devices".into(), json!([]));
        }
        if at_least(VICTORIA) {
            md.insert("dedicated_cpus".into(), json!([]));
        }
        Value::Object(md)
    }

    /// `network_data.json`: links, networks and services of the instance's ports.
    pub fn network_data(&self) -> Value {
        network_data(&self.spec.nics)
    }

    /// `vendor_data.json`: the static JSON vendor data (Nova's `StaticJSON` provider with
    /// no file configured: `{}`).
    pub fn vendor_data(&self) -> Value {
        json!({})
    }

    /// `vendor_data2.json`: each provider's data under its name (`static` only).
    pub fn vendor_data2(&self) -> Value {
        json!({"static": self.vendor_data()})
    }

    /// The EC2 `meta-data` tree of version `version` (a known version or `latest`). A
    /// directory that lists under another name carries it as `_name` (public keys).
    pub fn ec2_meta_data(&self, version: &str) -> Value {
        let s = self.spec;
        let at_least = |v: &str| ec2_at_least(version, v);
        let hostname = self.hostname();
        let fixed_ip = s
            .nics
            .iter()
            .flat_map(|n| &n.ips)
            .find(|ip| ip.parse::<Ipv4Addr>().is_ok())
            .cloned()
            .or_else(|| self.facts.address.clone());
        let mut md = Map::new();
        md.insert("ami-id".into(), json!(ec2_id("ami", &s.image_ref)));
        md.insert("ami-launch-index".into(), json!(s.launch_index));
        md.insert("ami-manifest-path".into(), json!("FIXME"));
        md.insert("instance-id".into(), json!(ec2_instance_id(&s.name)));
        md.insert("hostname".into(), json!(hostname));
        md.insert("local-ipv4".into(), json!(fixed_ip));
        md.insert("reservation-id".into(), json!(s.reservation_id));
        md.insert("security-groups".into(), json!(self.facts.security_groups));
        if let Some(name) = &s.key_name {
            md.insert(
                "public-keys".into(),
                json!({"0": {"_name": format!("0={name}"), "openssh-key": s.key_data}}),
            );
        }
        if at_least("2007-01-19") {
            md.insert("local-hostname".into(), json!(hostname));
            md.insert("public-hostname".into(), json!(hostname));
            md.insert(
                "public-ipv4".into(),
                json!(self.facts.floating_ips.first().cloned().unwrap_or_default()),
            );
        }
        if at_least("2007-08-29") {
            md.insert("instance-type".into(), json!(s.flavor_name));
        }
        if at_least("2007-12-15") {
            md.insert("block-device-mapping".into(), self.block_device_mapping());
            if let Some(k) = &s.kernel {
                md.insert("kernel-id".into(), json!(ec2_id("aki", &k.id)));
            }
            if let Some(r) = &s.ramdisk {
                md.insert("ramdisk-id".into(), json!(ec2_id("ari", &r.id)));
            }
        }
        if at_least("2008-02-01") {
            md.insert(
                "placement".into(),
                json!({"availability-zone": s.availability_zone}),
            );
        }
        if at_least("2008-09-01") {
            md.insert("instance-action".into(), json!("none"));
        }
        Value::Object(md)
    }

    /// EC2 `block-device-mapping` (nova/block_device.py `instance_block_mapping`): the
    /// root disk, then the ephemeral disk and swap as the virtio driver attaches them.
    fn block_device_mapping(&self) -> Value {
        let mut m = Map::new();
        m.insert("ami".into(), json!("vda"));
        m.insert("root".into(), json!("/dev/vda"));
        let mut next = b'b';
        if self.spec.ephemeral_gb > 0 {
            m.insert(
                "ephemeral0".into(),
                json!(format!("/dev/vd{}", next as char)),
            );
            next += 1;
        }
        if self.spec.swap_mb > 0 {
            m.insert("swap".into(), json!(format!("/dev/vd{}", next as char)));
        }
        Value::Object(m)
    }

    /// The entries of `/openstack/<version>/` (base.py `_handle_version`).
    fn openstack_listing(&self, version: &str) -> Vec<String> {
        let mut out = vec!["meta_data.json".to_string()];
        if self.user_data.is_some() {
            out.push("user_data".into());
        }
        for (since, name) in [
            (GRIZZLY, "password"),
            (HAVANA, "vendor_data.json"),
            (LIBERTY, "network_data.json"),
            (NEWTON_TWO, "vendor_data2.json"),
        ] {
            if os_at_least(version, since) {
                out.push(name.into());
            }
        }
        out
    }

    /// What Nova's metadata API answers at `path` (normalised as `posixpath.normpath`;
    /// paths outside `/openstack` and `/ec2` are EC2 paths).
    pub fn lookup(&self, path: &str) -> Result<Item, NotFound> {
        let missing = || NotFound(path.to_string());
        let mut tokens = normalize(path);
        match tokens.first().map(String::as_str) {
            Some("ec2" | "openstack") => {}
            _ => tokens.insert(0, "ec2".into()),
        }
        if tokens.len() == 1 {
            let versions: Vec<&str> = if tokens[0] == "openstack" {
                OPENSTACK_VERSIONS.to_vec()
            } else {
                EC2_VERSIONS.to_vec()
            };
            return Ok(Item::Text(
                render_list(versions.into_iter().chain(["latest"])).into_bytes(),
            ));
        }
        if tokens[0] == "openstack" {
            let version = version_in(&OPENSTACK_VERSIONS, &tokens[1]).ok_or_else(missing)?;
            let rest = tokens[2..].join("/");
            let json = |v: Value| Ok(Item::Json(v.to_string().into_bytes()));
            return match rest.as_str() {
                "" => Ok(Item::Text(
                    render_list(self.openstack_listing(version).iter()).into_bytes(),
                )),
                "meta_data.json" => json(self.meta_data(version)),
                "user_data" => self.user_data.clone().map(Item::Text).ok_or_else(missing),
                // Nova serves network_data.json as text/plain (it never sets the type).
                "network_data.json" if os_at_least(version, LIBERTY) => {
                    Ok(Item::Text(self.network_data().to_string().into_bytes()))
                }
                "password" if os_at_least(version, GRIZZLY) => Ok(Item::Password),
                "vendor_data.json" if os_at_least(version, HAVANA) => json(self.vendor_data()),
                "vendor_data2.json" if os_at_least(version, NEWTON_TWO) => {
                    json(self.vendor_data2())
                }
                _ => Err(missing()),
            };
        }
        let version = version_in(&EC2_VERSIONS, &tokens[1]).ok_or_else(missing)?;
        match tokens.get(2).map(String::as_str) {
            None => {
                let mut entries = vec!["meta-data/"];
                if self.user_data.is_some() {
                    entries.push("user-data");
                }
                Ok(Item::Text(render_list(entries).into_bytes()))
            }
            Some("user-data") if tokens.len() == 3 => {
                self.user_data.clone().map(Item::Text).ok_or_else(missing)
            }
            Some("meta-data") => {
                let tree = self.ec2_meta_data(version);
                let mut node = &tree;
                for t in &tokens[3..] {
                    node = node
                        .as_object()
                        .and_then(|m| m.get(t.as_str()))
                        .ok_or_else(missing)?;
                }
                Ok(Item::Text(render(node).into_bytes()))
            }
            _ => Err(missing()),
        }
    }

    /// The files of the config drive, path and bytes, as Nova's
    /// `metadata_for_config_drive` yields them (the password is not on the drive).
    pub fn config_drive_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        // Nova's `config_drive_skip_versions` default skips every EC2 version but the
        // newest: the drive has `2009-04-04` and `latest`.
        for version in EC2_VERSIONS[EC2_VERSIONS.len() - 1..]
            .iter()
            .copied()
            .chain(["latest"])
        {
            if let Some(u) = &self.user_data {
                out.push((format!("ec2/{version}/user-data"), u.clone()));
            }
            let mut md = self.ec2_meta_data(version);
            if let Some(k) = md
                .get_mut("public-keys")
                .and_then(|k| k.get_mut("0"))
                .and_then(Value::as_object_mut)
            {
                k.remove("_name");
            }
            out.push((
                format!("ec2/{version}/meta-data.json"),
                md.to_string().into_bytes(),
            ));
        }
        for version in OPENSTACK_VERSIONS.iter().copied().chain(["latest"]) {
            let dir = format!("openstack/{version}");
            out.push((
                format!("{dir}/meta_data.json"),
                self.meta_data(version).to_string().into_bytes(),
            ));
            if let Some(u) = &self.user_data {
                out.push((format!("{dir}/user_data"), u.clone()));
            }
            if os_at_least(version, HAVANA) {
                out.push((
                    format!("{dir}/vendor_data.json"),
                    self.vendor_data().to_string().into_bytes(),
                ));
            }
            if os_at_least(version, LIBERTY) {
                out.push((
                    format!("{dir}/network_data.json"),
                    self.network_data().to_string().into_bytes(),
                ));
            }
            if os_at_least(version, NEWTON_TWO) {
                out.push((
                    format!("{dir}/vendor_data2.json"),
                    self.vendor_data2().to_string().into_bytes(),
                ));
            }
        }
        out
    }
}

/// The listing Nova answers at `/`: the EC2 versions and `latest`.
pub fn root_listing() -> String {
    render_list(EC2_VERSIONS.iter().copied().chain(["latest"]))
}

/// EC2 `instance-id` of libvirt-style name `instance-0000000a`: `i-0000000a`.
pub fn ec2_instance_id(name: &str) -> String {
    match name.strip_prefix("instance-") {
        Some(hex) => format!("i-{hex}"),
        None => name.to_string(),
    }
}

/// An EC2-style id (`ami-`, `aki-`, `ari-` and 8 hex digits) of a Glance image id; `None`
/// for no image (a volume-backed server).
// TODO-compat: Nova numbers images through its S3 id mapping table; the first 8 hex
// digits of the image id are stable without one.
fn ec2_id(kind: &str, image_id: &str) -> Option<String> {
    let hex: String = image_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    (!image_id.is_empty()).then(|| format!("{kind}-{hex:0>8}"))
}

/// The path's components as `posixpath.normpath` leaves them (no empty, `.` or `..`).
fn normalize(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p.to_string()),
        }
    }
    out
}

/// Version `v` of `list`, `latest` being the newest.
fn version_in(list: &[&'static str], v: &str) -> Option<&'static str> {
    if v == "latest" {
        return list.last().copied();
    }
    list.iter().copied().find(|x| *x == v)
}

fn at_least(list: &[&str], requested: &str, required: &str) -> bool {
    let index = |v: &str| {
        if v == "latest" {
            Some(list.len())
        } else {
            list.iter().position(|x| *x == v)
        }
    };
    match (index(requested), index(required)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

fn os_at_least(requested: &str, required: &str) -> bool {
    at_least(&OPENSTACK_VERSIONS, requested, required)
}

fn ec2_at_least(requested: &str, required: &str) -> bool {
    at_least(&EC2_VERSIONS, requested, required)
}

fn render_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A value as Nova's `ec2_md_print` prints it: a directory lists its keys sorted, a
/// subdirectory with a trailing `/` (or its `_name`), one per line; a list one item per
/// line; a scalar as Python's `str` (`None` for null).
fn render(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let keys: BTreeMap<&String, &Value> = m.iter().collect();
            render_list(
                keys.into_iter()
                    .filter(|(k, _)| *k != "_name")
                    .map(|(k, v)| match v {
                        Value::Object(sub) => match sub.get("_name") {
                            Some(n) => render(n),
                            None => format!("{k}/"),
                        },
                        _ => k.clone(),
                    }),
            )
        }
        Value::Array(a) => render_list(a.iter().map(render)),
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
    }
}

/// The address and prefix length of `cidr`.
fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// The netmask of a prefix length in `cidr`'s family, and `cidr`'s network address.
fn mask_and_network(cidr: &str) -> Option<(String, String)> {
    match parse_cidr(cidr)? {
        (IpAddr::V4(a), len) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            Some((
                Ipv4Addr::from(mask).to_string(),
                Ipv4Addr::from(u32::from(a) & mask).to_string(),
            ))
        }
        (IpAddr::V6(a), len) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            Some((
                Ipv6Addr::from(mask).to_string(),
                Ipv6Addr::from(u128::from(a) & mask).to_string(),
            ))
        }
    }
}

/// The tap device name of port `port_id`, as Nova's neutron glue names the VIF's `devname`
/// (`tap` + the port id, cut to 14 characters).
pub fn tap_name(port_id: &str) -> String {
    format!("tap{port_id}").chars().take(14).collect()
}

fn is_v6(subnet: &NicSubnet) -> bool {
    subnet.cidr.contains(':')
}

fn dns_services(subnet: &NicSubnet) -> Vec<Value> {
    subnet
        .dns_nameservers
        .iter()
        .map(|a| json!({"type": "dns", "address": a}))
        .collect()
}

/// network_data.json of `nics` (netutils.py `get_network_metadata`): one link per port
/// with a subnet, one network per port and family (the first IPv4 and the first IPv6
/// subnet), the DNS servers as services. A subnet with DHCP is announced as
/// `ipv4_dhcp`/`ipv6_dhcp` and the guest asks DHCP for the rest; one without gets its
/// address, netmask and routes here; IPv6 address modes name the type (`ipv6_slaac`).
pub fn network_data(nics: &[Nic]) -> Value {
    let mut links = Vec::new();
    let mut networks = Vec::new();
    let mut services: Vec<Value> = Vec::new();
    let mut net_num = 0usize;
    for (ifc_num, nic) in nics.iter().filter(|n| !n.subnets.is_empty()).enumerate() {
        let v4 = nic.subnets.iter().find(|s| !is_v6(s));
        let v6 = nic.subnets.iter().find(|s| is_v6(s));
        if v4.is_none() && v6.is_none() {
            continue;
        }
        let link_id = if nic.port_id.is_empty() {
            format!("interface{ifc_num}")
        } else {
            tap_name(&nic.port_id)
        };
        // A link whose network runs a DHCP server leaves the MTU to DHCP.
        let mtu = if nic.subnets.iter().any(|s| s.dhcp_server.is_some()) {
            None
        } else {
            nic.mtu
        };
        let kind = if EXPOSED_VIF_TYPES.contains(&nic.vif_type.as_str()) {
            nic.vif_type.as_str()
        } else {
            "phy"
        };
        links.push(json!({
            "id": link_id,
            "vif_id": nic.port_id,
            "type": kind,
            "mtu": mtu,
            "ethernet_mac_address": nic.mac_address,
        }));
        for (subnet, version) in [(v4, 4), (v6, 6)] {
            let Some(subnet) = subnet else { continue };
            if subnet.ips.is_empty() {
                continue;
            }
            networks.push(network_of(nic, subnet, version, net_num, &link_id));
            net_num += 1;
            for dns in dns_services(subnet) {
                if !services.contains(&dns) {
                    services.push(dns);
                }
            }
        }
    }
    json!({"links": links, "networks": networks, "services": services})
}

/// One entry of network_data.json's `networks` (netutils.py `_get_nets`).
fn network_of(nic: &Nic, subnet: &NicSubnet, version: u8, net_num: usize, link: &str) -> Value {
    let id = format!("network{net_num}");
    let suffix = match &subnet.ipv6_address_mode {
        Some(mode) if !mode.is_empty() => format!("_{mode}"),
        _ if subnet.dhcp_server.is_some() || subnet.enable_dhcp => {
            return json!({
                "id": id,
                "type": format!("ipv{version}_dhcp"),
                "link": link,
                "network_id": nic.network_id,
            });
        }
        _ => String::new(),
    };
    let (netmask, _) = mask_and_network(&subnet.cidr).unwrap_or_default();
    let mut routes = Vec::new();
    if let Some(gw) = subnet.gateway_ip.as_deref().filter(|g| !g.is_empty()) {
        let any = if version == 4 { "0.0.0.0" } else { "::" };
        routes.push(json!({"network": any, "netmask": any, "gateway": gw}));
    }
    for r in &subnet.host_routes {
        let (mask, network) = mask_and_network(&r.destination).unwrap_or_default();
        routes.push(json!({"network": network, "netmask": mask, "gateway": r.nexthop}));
    }
    json!({
        "id": id,
        "type": format!("ipv{version}{suffix}"),
        "link": link,
        "ip_address": subnet.ips[0],
        "netmask": netmask,
        "routes": routes,
        "network_id": nic.network_id,
        "services": dns_services(subnet),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::HostRoute;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            uuid: "6f5d1c1e-0000-4000-8000-000000000001".into(),
            name: "instance-0000000a".into(),
            display_name: "vm".into(),
            hostname: "vm".into(),
            project_id: "p1".into(),
            availability_zone: Some("nova".into()),
            image_ref: "1c2b3a4d-5e6f-4000-8000-000000000000".into(),
            flavor_name: "m1.tiny".into(),
            reservation_id: "r-abcdefgh".into(),
            key_name: Some("k".into()),
            key_data: Some("ssh-ed25519 AAAA".into()),
            user_data: Some(base64::engine::general_purpose::STANDARD.encode("hello")),
            nics: vec![Nic {
                port_id: "0b5c4a6e-1111-4222-8333-444455556666".into(),
                network_id: "net-1".into(),
                mac_address: "fa:16:3e:00:00:01".into(),
                ips: vec!["10.0.0.5".into(), "fd00::5".into()],
                mtu: Some(1450),
                vif_type: "bridge".into(),
                subnets: vec![
                    NicSubnet {
                        cidr: "10.0.0.0/24".into(),
                        gateway_ip: Some("10.0.0.1".into()),
                        dns_nameservers: vec!["10.0.0.2".into()],
                        host_routes: vec![HostRoute {
                            destination: "192.168.0.0/16".into(),
                            nexthop: "10.0.0.254".into(),
                        }],
                        ips: vec!["10.0.0.5".into()],
                        ..NicSubnet::default()
                    },
                    NicSubnet {
                        cidr: "fd00::/64".into(),
                        gateway_ip: Some("fd00::1".into()),
                        enable_dhcp: true,
                        ips: vec!["fd00::5".into()],
                        ..NicSubnet::default()
                    },
                ],
                active: false,
            }],
            ..InstanceSpec::default()
        }
    }

    fn text(md: &InstanceMetadata, path: &str) -> String {
        match md.lookup(path) {
            Ok(Item::Text(b) | Item::Json(b)) => String::from_utf8(b).unwrap(),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_the_instance_id() {
        // RFC 4231 test case 2.
        assert_eq!(
            instance_signature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = instance_signature("s3cret", "uuid-1");
        assert!(signature_matches("s3cret", "uuid-1", &sig));
        assert!(!signature_matches("s3cret", "uuid-2", &sig));
        assert!(!signature_matches("other", "uuid-1", &sig));
        assert!(!signature_matches("s3cret", "uuid-1", ""));
    }

    #[test]
    fn listings_are_newline_joined_with_trailing_slashes_on_directories() {
        let s = spec();
        let md = InstanceMetadata::new(&s, Facts::default()).unwrap();
        assert!(root_listing().starts_with("1.0\n2007-01-19\n"));
        assert!(root_listing().ends_with("2009-04-04\nlatest"));
        assert!(text(&md, "/openstack").ends_with("2025-04-04\nlatest"));
        assert_eq!(
            text(&md, "/openstack/latest"),
            "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"
        );
        assert_eq!(
            text(&md, "/openstack/2012-08-10/"),
            "meta_data.json\nuser_data"
        );
        assert_eq!(text(&md, "/latest"), "meta-data/\nuser-data");
        let listing = text(&md, "/latest/meta-data/");
        assert!(listing.contains("\npublic-keys/\n"), "{listing}");
        assert!(listing.contains("\nplacement/\n"), "{listing}");
        assert!(listing.contains("\ninstance-id\n"), "{listing}");
        assert_eq!(text(&md, "/latest/meta-data/public-keys"), "0=k");
        assert_eq!(text(&md, "/latest/meta-data/public-keys/0/"), "openssh-key");
        assert_eq!(
            text(&md, "/2009-04-04/meta-data/public-keys/0/openssh-key"),
            "ssh-ed25519 AAAA"
        );
        // EC2 paths may come under /ec2 as well.
        for (path, want) in [
            ("/ec2/latest/meta-data/instance-id", "i-0000000a"),
            ("/latest/meta-data/hostname", "vm.novalocal"),
            ("/latest/meta-data/local-ipv4", "10.0.0.5"),
            ("/latest/meta-data/ami-id", "ami-1c2b3a4d"),
            ("/latest/meta-data/ami-launch-index", "0"),
            ("/latest/meta-data/placement/availability-zone", "nova"),
            ("/latest/user-data", "hello"),
            ("/openstack/latest/user_data", "hello"),
        ] {
            assert_eq!(text(&md, path), want, "{path}");
        }
        // Versions gate what exists.
        assert!(md.lookup("/1.0/meta-data/local-hostname").is_err());
        assert!(md.lookup("/openstack/2012-08-10/password").is_err());
        assert_eq!(md.lookup("/openstack/latest/password"), Ok(Item::Password));
        for bad in [
            "/2001-01-01/meta-data",
            "/latest/meta-data/nope",
            "/latest/meta-data/hostname/x",
            "/openstack/latest/nope",
            "/openstack/1999-01-01/meta_data.json",
            "/latest/user-data/x",
        ] {
            assert!(md.lookup(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn meta_data_json_follows_the_requested_version() {
        let s = spec();
        let facts = Facts {
            random_seed: vec![7; 512],
            ..Facts::default()
        };
        let md = InstanceMetadata::new(&s, facts).unwrap();
        let latest: Value =
            serde_json::from_str(&text(&md, "/openstack/latest/meta_data.json")).unwrap();
        assert_eq!(latest["uuid"], s.uuid);
        assert_eq!(latest["name"], "vm");
        assert_eq!(latest["hostname"], "vm.novalocal");
        assert_eq!(latest["public_keys"]["k"], "ssh-ed25519 AAAA");
        assert_eq!(latest["keys"][0]["type"], "ssh");
        assert_eq!(latest["project_id"], "p1");
        assert_eq!(latest["devices"], json!([]));
        assert_eq!(latest["random_seed"].as_str().unwrap().len(), 684);
        let folsom = md.meta_data("2012-08-10");
        assert!(folsom.get("random_seed").is_none());
        assert!(folsom.get("project_id").is_none());
        assert!(folsom.get("meta").is_none());
        assert!(matches!(
            md.lookup("/openstack/latest/meta_data.json"),
            Ok(Item::Json(_))
        ));
        assert_eq!(md.vendor_data2(), json!({"static": {}}));
    }

    #[test]
    fn network_data_has_links_networks_and_services_as_nova_writes_them() {
        let s = spec();
        let nd = network_data(&s.nics);
        assert_eq!(
            nd["links"],
            json!([{"id": "tap0b5c4a6e-11", "vif_id": "0b5c4a6e-1111-4222-8333-444455556666",
                "type": "bridge", "mtu": 1450, "ethernet_mac_address": "fa:16:3e:00:00:01"}])
        );
        assert_eq!(
            nd["networks"][0],
            json!({"id": "network0", "type": "ipv4", "link": "tap0b5c4a6e-11",
                "ip_address": "10.0.0.5", "netmask": "255.255.255.0",
                "routes": [
                    {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                    {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.254"}
                ],
                "network_id": "net-1",
                "services": [{"type": "dns", "address": "10.0.0.2"}]})
        );
        assert_eq!(
            nd["networks"][1],
            json!({"id": "network1", "type": "ipv6_dhcp", "link": "tap0b5c4a6e-11",
                "network_id": "net-1"})
        );
        assert_eq!(
            nd["services"],
            json!([{"type": "dns", "address": "10.0.0.2"}])
        );

        // A DHCP server on the network leaves the MTU out; SLAAC names the type; a port
        // without subnets is not listed.
        let mut nics = s.nics.clone();
        nics[0].subnets[0].dhcp_server = Some("10.0.0.2".into());
        nics[0].subnets[1].ipv6_address_mode = Some("slaac".into());
        nics[0].vif_type = "unbound".into();
        nics.insert(0, Nic::default());
        let nd = network_data(&nics);
        assert_eq!(nd["links"].as_array().unwrap().len(), 1);
        assert_eq!(nd["links"][0]["mtu"], Value::Null);
        assert_eq!(nd["links"][0]["type"], "phy");
        assert_eq!(nd["networks"][0]["type"], "ipv4_dhcp");
        assert_eq!(nd["networks"][1]["type"], "ipv6_slaac");
        assert_eq!(nd["networks"][1]["netmask"], "ffff:ffff:ffff:ffff::");
        assert_eq!(
            nd["networks"][1]["routes"][0],
            json!({"network": "::", "netmask": "::", "gateway": "fd00::1"})
        );
        assert_eq!(
            network_data(&[]),
            json!({"links": [], "networks": [], "services": []})
        );
    }

    #[test]
    fn the_config_drive_holds_the_versions_nova_writes() {
        let s = spec();
        let md = InstanceMetadata::new(&s, Facts::default()).unwrap();
        let files = md.config_drive_files();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        for want in [
            "ec2/2009-04-04/meta-data.json",
            "ec2/latest/user-data",
            "openstack/latest/meta_data.json",
            "openstack/latest/network_data.json",
            "openstack/latest/vendor_data2.json",
            "openstack/2012-08-10/user_data",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        assert!(!names.contains(&"ec2/1.0/meta-data.json"));
        assert!(!names.contains(&"openstack/2012-08-10/vendor_data.json"));
        let ec2: Value = serde_json::from_slice(
            &files
                .iter()
                .find(|(p, _)| p == "ec2/latest/meta-data.json")
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(
            ec2["public-keys"]["0"],
            json!({"openssh-key": "ssh-ed25519 AAAA"})
        );
        assert!(
            InstanceMetadata::new(
                &InstanceSpec {
                    user_data: Some("%%".into()),
                    ..s
                },
                Facts::default()
            )
            .is_err()
        );
    }
}
