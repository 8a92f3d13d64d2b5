//! Networking: Neutron's v2.0 API — networks with their provider segments, subnets and the
//! IPAM that hands out their addresses, ports, security groups and their rules.
//!
//! Owns the `net_` tables and Neutron's default policy. It decides what the network should
//! look like; it must not touch the host (bridges, namespaces and nftables belong to the
//! network agent) and must not depend on any other service crate.

/// Runs `$body` (one whole transaction, an async block's body) again while it loses
/// races — a unique key taken by a concurrent writer, a deadlock; evaluates to a future of
/// its result.
macro_rules! retrying {
    ($body:block) => {
        async {
            let mut attempt = 0usize;
            loop {
                let r: $crate::fault::Result<_> = async $body.await;
                match r {
                    Err(e) if e.retry && attempt < $crate::manager::MAX_ATTEMPTS => {
                        attempt += 1;
                        let jitter = rand::Rng::random_range(
                            &mut rand::rng(),
                            0..2 + attempt as u64 * 2,
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                    }
                    Err(e) if e.retry => break Err($crate::manager::too_many_races()),
                    other => break other,
                }
            }
        }
    };
}

pub mod agents;
pub mod api;
pub mod auto_allocate;
pub mod db;
pub mod fault;
pub mod ipam;
pub mod l3;
pub mod listing;
pub mod manager;
pub mod model;
pub mod nova;
pub mod policy;
pub mod quota;
pub mod subnetpool;
pub mod tags;

use std::path::PathBuf;

pub use fault::NetError;
pub use manager::Networking;

/// The network service's schema migrations, in order.
pub fn migrations() -> &'static [ferro_db::Migration] {
    static M: [ferro_db::Migration; 5] = [
        ferro_db::Migration {
            version: 1,
            name: "init",
            sql: include_str!("../migrations/0001_init.sql"),
        },
        ferro_db::Migration {
            version: 2,
            name: "l3",
            sql: include_str!("../migrations/0002_l3.sql"),
        },
        ferro_db::Migration {
            version: 3,
            name: "quotas",
            sql: include_str!("../migrations/0003_quotas.sql"),
        },
        ferro_db::Migration {
            version: 4,
            name: "subnetpools",
            sql: include_str!("../migrations/0004_subnetpools.sql"),
        },
        ferro_db::Migration {
            version: 5,
            name: "auto_allocate",
            sql: include_str!("../migrations/0005_auto_allocate.sql"),
        },
    ];
    &M
}

/// A VLAN range on one physical network (ML2's `network_vlan_ranges` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanRange {
    pub physical_network: String,
    pub min: i64,
    pub max: i64,
}

/// Settings of the network service.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The URL clients reach the API at, without the version (`http://host:9696`).
    pub url: String,
    /// An oslo.policy YAML file overriding default rules.
    pub policy_file: Option<PathBuf>,
    /// VXLAN VNIs handed to tenant networks (ML2's `vni_ranges`).
    pub vxlan_ranges: Vec<(i64, i64)>,
    /// VLAN ids per physical network (ML2's `network_vlan_ranges`).
    pub vlan_ranges: Vec<VlanRange>,
    /// Physical networks flat networks may use; `*` allows any (ML2's `flat_networks`).
    pub flat_networks: Vec<String>,
    /// The first three octets are kept, the rest are random (Neutron's `base_mac`).
    pub base_mac: String,
    /// MTU of the physical networks (Neutron's `global_physnet_mtu`).
    pub physnet_mtu: i64,
}

impl NetworkConfig {
    /// DevStack's defaults at `url`.
    pub fn new(url: &str) -> Self {
        NetworkConfig {
            url: url.trim_end_matches('/').to_string(),
            policy_file: None,
            vxlan_ranges: vec![(1, 1000)],
            vlan_ranges: vec![VlanRange {
                physical_network: "physnet1".into(),
                min: 1000,
                max: 2999,
            }],
            flat_networks: vec!["*".into()],
            base_mac: "fa:16:3e:00:00:00".into(),
            physnet_mtu: 1500,
        }
    }

    /// Parses `min:max` VNI ranges.
    pub fn parse_vxlan_ranges(ranges: &[String]) -> Result<Vec<(i64, i64)>, String> {
        ranges
            .iter()
            .map(|r| {
                let (a, b) = r
                    .split_once(':')
                    .ok_or_else(|| format!("VNI range {r:?}: expected min:max"))?;
                let (a, b) = (parse_int(a, r)?, parse_int(b, r)?);
                if !(1..=16_777_215).contains(&a) || b < a || b > 16_777_215 {
                    return Err(format!("VNI range {r:?} is out of 1..16777215"));
                }
                Ok((a, b))
            })
            .collect()
    }

    /// Parses `physnet:min:max` VLAN ranges.
    pub fn parse_vlan_ranges(ranges: &[String]) -> Result<Vec<VlanRange>, String> {
        ranges
            .iter()
            .map(|r| {
                let parts: Vec<&str> = r.split(':').collect();
                let [p, a, b] = parts.as_slice() else {
                    return Err(format!("VLAN range {r:?}: expected physnet:min:max"));
                };
                let (a, b) = (parse_int(a, r)?, parse_int(b, r)?);
                if p.is_empty() || !(1..=4094).contains(&a) || b < a || b > 4094 {
                    return Err(format!("VLAN range {r:?} is out of 1..4094"));
                }
                Ok(VlanRange {
                    physical_network: p.to_string(),
                    min: a,
                    max: b,
                })
            })
            .collect()
    }
}

fn parse_int(s: &str, range: &str) -> Result<i64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("range {range:?}: {s:?} is not a number"))
}
