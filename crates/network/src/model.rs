//! The shapes and rules of Neutron's resources: request bodies read as Neutron's
//! attribute maps read them (neutron-lib `api/definitions`), standard attributes, the
//! security-group rule vocabulary, and the extensions this service implements.

use serde_json::{Map, Value, json};

use crate::fault::{NetError, Result};

/// A request body's resource object, read attribute by attribute.
pub struct Body {
    pub map: Map<String, Value>,
}

impl Body {
    /// The `{"network": {...}}` member of a request body.
    pub fn from_request(body: &Value, member: &str) -> Result<Body> {
        match body.get(member) {
            Some(Value::Object(m)) => Ok(Body { map: m.clone() }),
            Some(_) => Err(NetError::invalid(format!(
                "Invalid data format for {member}"
            ))),
            None => Err(NetError::bad_request(
                "HTTPBadRequest",
                format!("Resource body required: the body must contain '{member}'"),
            )),
        }
    }

    /// Refuses attributes not in `known`, as Neutron's `Unrecognized attribute(s)`.
    pub fn only(&self, known: &[&str]) -> Result<()> {
        let unknown: Vec<&str> = self
            .map
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(NetError::bad_request(
                "HTTPBadRequest",
                format!("Unrecognized attribute(s) '{}'", unknown.join(", ")),
            ))
        }
    }

    /// Refuses read-only attributes on update.
    pub fn read_only(&self, keys: &[&str]) -> Result<()> {
        for k in keys {
            if self.map.contains_key(*k) {
                return Err(NetError::bad_request(
                    "HTTPBadRequest",
                    format!("Cannot update read-only attribute {k}"),
                ));
            }
        }
        Ok(())
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// A string attribute of at most `max` characters.
    pub fn string(&self, key: &str, max: usize) -> Result<Option<String>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(s)) => Err(NetError::invalid(format!(
                "'{s}' exceeds maximum length of {max}"
            ))),
            Some(v) => Err(NetError::invalid(format!("'{v}' is not a valid string"))),
        }
    }

    /// A string attribute that may also be `null`.
    pub fn nullable_string(&self, key: &str) -> Result<Option<Option<String>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(v) => Err(NetError::invalid(format!("'{v}' is not a valid string"))),
        }
    }

    /// A boolean as Neutron's `convert_to_boolean` reads it.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => to_bool(v)
                .map(Some)
                .ok_or_else(|| NetError::invalid(format!("'{v}' cannot be converted to boolean"))),
        }
    }

    /// An integer (or its decimal string), `null` meaning unset.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| NetError::invalid(format!("'{s}' is not an integer"))),
            Some(v) => Err(NetError::invalid(format!("'{v}' is not an integer"))),
        }
    }

    /// A list attribute.
    pub fn list(&self, key: &str) -> Result<Option<Vec<Value>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(Value::Null) => Ok(Some(Vec::new())),
            Some(v) => Err(NetError::invalid(format!("'{v}' is not a list"))),
        }
    }

    /// A list of strings (ids).
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(NetError::invalid(format!(
                    "'{other}' is not a valid string"
                ))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The owning project: `project_id` or `tenant_id` (which must agree), else the caller's.
    pub fn project(&self, caller: Option<&str>) -> Result<String> {
        let p = self.string("project_id", 255)?;
        let t = self.string("tenant_id", 255)?;
        if let (Some(p), Some(t)) = (&p, &t)
            && p != t
        {
            return Err(NetError::invalid(
                "'project_id' and 'tenant_id' do not match",
            ));
        }
        p.or(t)
            .or_else(|| caller.map(str::to_string))
            .ok_or_else(|| NetError::invalid("'project_id' is required for this request"))
    }
}

pub fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A new resource's standard attributes (neutron-lib `standard_attr`).
pub fn standard(id: &str, project_id: &str, description: &str) -> Map<String, Value> {
    let now = ferro_common::time::iso8601_seconds(ferro_common::time::now_micros());
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("project_id".into(), json!(project_id));
    m.insert("tenant_id".into(), json!(project_id));
    m.insert("description".into(), json!(description));
    m.insert("tags".into(), json!([]));
    m.insert("created_at".into(), json!(now));
    m.insert("updated_at".into(), json!(now));
    m.insert("revision_number".into(), json!(0));
    m
}

/// Marks a document changed: a new revision and `updated_at`.
pub fn touch(doc: &mut Map<String, Value>) {
    let rev = doc
        .get("revision_number")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    doc.insert("revision_number".into(), json!(rev + 1));
    doc.insert(
        "updated_at".into(),
        json!(ferro_common::time::iso8601_seconds(
            ferro_common::time::now_micros()
        )),
    );
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn s<'a>(doc: &'a Map<String, Value>, key: &str) -> &'a str {
    doc.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn b(doc: &Map<String, Value>, key: &str) -> bool {
    doc.get(key).and_then(Value::as_bool).unwrap_or(false)
}

// ---- security group rules

/// IP protocol names Neutron accepts, with their numbers (neutron-lib `IP_PROTOCOL_MAP`).
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// The protocol number a rule's protocol means (`None` for any protocol).
pub fn protocol_number(p: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| *n == p)
        .map(|(_, v)| *v)
        .or_else(|| p.parse().ok())
}

/// Protocols whose rules take a port range.
pub fn takes_ports(number: u8) -> bool {
    matches!(number, 6 | 17 | 33 | 132 | 136)
}

/// What makes two rules the same rule, whatever their ids and descriptions: upstream's
/// duplicate check compares these attributes, protocol names and numbers alike.
pub fn rule_key(doc: &Map<String, Value>) -> String {
    let field = |k: &str| match doc.get(k) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let protocol = match doc.get("protocol").and_then(Value::as_str) {
        Some(p) => protocol_number(p).map_or(p.to_string(), |n| n.to_string()),
        None => String::new(),
    };
    let prefix = doc
        .get("normalized_cidr")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        field("direction"),
        field("ethertype"),
        protocol,
        field("port_range_min"),
        field("port_range_max"),
        prefix,
        field("remote_group_id"),
    )
}

// ---- discovery

/// The extensions implemented here: (alias, name, description), as neutron-lib names them.
pub const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
    ),
    (
        "auto-allocated-topology",
        "Auto Allocated Topology Services",
        "Auto Allocated Topology Services.",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
    ),
    (
        "extra_dhcp_opt",
        "Neutron Extra DHCP options",
        "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
    ("port-security", "Port Security", "Provides port security"),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks",
    ),
    (
        "revision-if-match",
        "If-Match constraints based on revision_number",
        "Extension indicating that If-Match based on revision_number is supported.",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    ),
    ("agent", "agent", "The agent management extension."),
    (
        "subnet_allocation",
        "Subnet Allocation",
        "Enables allocation of subnets from a subnet pool",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "quotas",
        "Quota management support",
        "Expose functions for quotas management per project",
    ),
    (
        "quota_details",
        "Quota details management support",
        "Expose functions for quotas usage statistics per project",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway",
    ),
    (
        "extraroute",
        "Neutron Extra Route",
        "Extra routes configuration for L3 router",
    ),
    (
        "network-ip-availability",
        "Network IP Availability",
        "Provides IP availability data for each network and subnet.",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.",
    ),
];

pub fn extension(alias: &str, name: &str, description: &str) -> Value {
    json!({
        "alias": alias,
        "name": name,
        "description": description,
        "updated": "2013-02-03T10:00:00-00:00",
        "links": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_and_numbers_make_one_key() {
        let a = json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                       "port_range_min": 22, "port_range_max": 22});
        let b = json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "6",
                       "port_range_min": 22, "port_range_max": 22});
        assert_eq!(
            rule_key(a.as_object().unwrap()),
            rule_key(b.as_object().unwrap())
        );
    }
}
