//! Nova's request schemas for the resources this crate serves, transcribed as data from
//! nova/api/openstack/compute/schemas/*.py and nova/api/validation/parameter_types.py, one
//! per microversion range exactly where upstream changes them. Each function takes the
//! request's version and returns the schema in force.
//!
//! Query schemas: before their `additionalProperties: false` microversion, upstream strips
//! unknown parameters instead of refusing them; handlers here simply ignore what they do not
//! read, which is the same thing.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::microversion::ApiVersion;
use crate::validation::DESCRIPTION_PATTERN;

/// `parameter_types.name`.
fn name() -> Value {
    json!({"type": "string", "format": "name", "minLength": 1, "maxLength": 255})
}

/// `parameter_types.boolean`.
fn boolean() -> Value {
    json!({"type": ["boolean", "string"], "enum": [
        true, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
        false, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]})
}

/// `parameter_types.flavor_param_positive` / `_non_negative` (from `volume_size`).
fn flavor_param(minimum: i64) -> Value {
    json!({"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": minimum,
        "maximum": 0x7FFF_FFFF_i64})
}

/// `parameter_types.multi_params`.
fn multi(item: Value) -> Value {
    json!({"type": "array", "items": item})
}

fn string() -> Value {
    json!({"type": "string"})
}

/// `parameter_types.non_negative_integer`.
fn non_negative_integer() -> Value {
    json!({"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0, "minLength": 1})
}

fn query(properties: Value, strict: bool) -> Value {
    json!({"type": "object", "properties": properties, "additionalProperties": !strict})
}

/// The flavor description (2.55): printable text up to 64 KiB.
fn flavor_description() -> Value {
    json!({"type": ["string", "null"], "minLength": 0, "maxLength": 65535,
        "pattern": DESCRIPTION_PATTERN.as_str()})
}

/// Flavor sort keys (`VALID_SORT_KEYS`); 2.102 drops `rxtx_factor`.
pub const FLAVOR_SORT_KEYS: &[&str] = &[
    "created_at",
    "description",
    "disabled",
    "ephemeral_gb",
    "flavorid",
    "id",
    "is_public",
    "memory_mb",
    "name",
    "root_gb",
    "rxtx_factor",
    "swap",
    "updated_at",
    "vcpu_weight",
    "vcpus",
];

/// `POST /flavors` (`create`, `create_v255`, `create_v2102`).
pub fn flavor_create(v: ApiVersion) -> Value {
    let mut props = json!({
        "name": name(),
        "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
            "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
        "ram": flavor_param(1),
        "vcpus": flavor_param(1),
        "disk": flavor_param(0),
        "OS-FLV-EXT-DATA:ephemeral": flavor_param(0),
        "swap": flavor_param(0),
        "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
            "exclusiveMinimum": 0, "maximum": 3.40282e38},
        "os-flavor-access:is_public": boolean(),
    });
    if v.at_least(2, 55) {
        props["description"] = flavor_description();
    }
    if v.at_least(2, 102)
        && let Some(p) = props.as_object_mut()
    {
        p.remove("rxtx_factor");
    }
    json!({"type": "object", "properties": {"flavor": {"type": "object", "properties": props,
        "required": ["name", "ram", "vcpus", "disk"], "additionalProperties": false}},
        "required": ["flavor"], "additionalProperties": false})
}

/// `PUT /flavors/{id}` (2.55+).
pub fn flavor_update() -> Value {
    json!({"type": "object", "properties": {"flavor": {"type": "object",
        "properties": {"description": flavor_description()},
        "required": ["description"], "additionalProperties": false}},
        "required": ["flavor"], "additionalProperties": false})
}

/// `GET /flavors` and `/flavors/detail` (`index_query`, `_v275`, `_v2102`).
pub fn flavor_list_query(v: ApiVersion) -> Value {
    let keys: Vec<&str> = FLAVOR_SORT_KEYS
        .iter()
        .copied()
        .filter(|k| !(v.at_least(2, 102) && *k == "rxtx_factor"))
        .collect();
    let mut props = json!({
        "limit": multi(non_negative_integer()),
        "marker": multi(string()),
        "is_public": multi(string()),
        "minRam": multi(string()),
        "minDisk": multi(string()),
        "sort_key": multi(json!({"type": "string", "enum": keys})),
        "sort_dir": multi(json!({"type": "string", "enum": ["asc", "desc"]})),
    });
    if v.at_least(2, 102) {
        props["name"] = multi(string());
    }
    query(props, v.at_least(2, 75))
}

/// A query schema with no parameters, strict from `strict_from` on.
pub fn empty_query(v: ApiVersion, strict_from: (u32, u32)) -> Value {
    query(json!({}), v.at_least(strict_from.0, strict_from.1))
}

/// Extra spec keys and values (`parameter_types.metadata`, numbers allowed on the way in).
fn extra_specs_map() -> Value {
    json!({"type": "object", "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$":
        {"type": ["string", "number"], "maxLength": 255}}, "additionalProperties": false})
}

/// `POST /flavors/{id}/os-extra_specs`.
pub static EXTRA_SPECS_CREATE: LazyLock<Value> = LazyLock::new(|| {
    json!({"type": "object", "properties": {"extra_specs": extra_specs_map()},
        "required": ["extra_specs"], "additionalProperties": false})
});

/// `PUT /flavors/{id}/os-extra_specs/{key}`: exactly one key.
pub static EXTRA_SPECS_UPDATE: LazyLock<Value> = LazyLock::new(|| {
    let mut s = extra_specs_map();
    s["minProperties"] = json!(1);
    s["maxProperties"] = json!(1);
    s
});

fn tenant_action(action: &str) -> Value {
    json!({"type": "object", "properties": {action: {"type": "object",
        "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
        "required": ["tenant"], "additionalProperties": false}},
        "required": [action], "additionalProperties": false})
}

/// `addTenantAccess` / `removeTenantAccess` action bodies.
pub fn flavor_access_action(action: &str) -> Value {
    tenant_action(action)
}

/// Key pair names: `name` plus a character class that 2.92 widens with `@` and `.`.
fn keypair_name(v: ApiVersion) -> Value {
    let pattern = if v.at_least(2, 92) {
        r"^[_\-\@\. a-zA-Z0-9]+$"
    } else {
        r"^[_\- a-zA-Z0-9]+$"
    };
    json!({"allOf": [name(), {"type": "string", "pattern": pattern, "minLength": 1, "maxLength": 255}]})
}

/// `POST /os-keypairs` (`create`, `create_v22`, `create_v210`, `create_v292`).
pub fn keypair_create(v: ApiVersion) -> Value {
    let mut props = json!({"name": keypair_name(v), "public_key": {"type": "string"}});
    if v.at_least(2, 2) {
        props["type"] = json!({"type": "string", "enum": ["ssh", "x509"]});
    }
    if v.at_least(2, 10) {
        props["user_id"] = json!({"type": "string"});
    }
    let required = if v.at_least(2, 92) {
        json!(["name", "public_key"])
    } else {
        json!(["name"])
    };
    json!({"type": "object", "properties": {"keypair": {"type": "object", "properties": props,
        "required": required, "additionalProperties": false}},
        "required": ["keypair"], "additionalProperties": false})
}

/// `GET /os-keypairs` (`index_query_v20` ... `_v275`).
pub fn keypair_list_query(v: ApiVersion) -> Value {
    let mut props = json!({});
    if v.at_least(2, 10) {
        props["user_id"] = multi(string());
    }
    if v.at_least(2, 35) {
        props["limit"] = multi(non_negative_integer());
        props["marker"] = multi(string());
    }
    query(props, v.at_least(2, 75))
}

/// `GET`/`DELETE /os-keypairs/{name}` (`show_query_*`, `delete_query_*`).
pub fn keypair_item_query(v: ApiVersion) -> Value {
    let mut props = json!({});
    if v.at_least(2, 10) {
        props["user_id"] = multi(string());
    }
    query(props, v.at_least(2, 75))
}

/// `_common_quota`: -1 (unlimited) up to MAX_INT.
fn quota_value() -> Value {
    json!({"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1,
        "maximum": 0x7FFF_FFFF_i64})
}

/// Resources a quota set or class may carry in a request at `v`: all but those removed at
/// `removed_network` (2.36 for quota sets, 2.50 for classes) and the injected-file ones at
/// 2.57.
fn quota_properties(
    v: ApiVersion,
    removed_network: (u32, u32),
    with_force: bool,
) -> serde_json::Map<String, Value> {
    let mut props = serde_json::Map::new();
    for r in crate::quota::Resource::ALL {
        if !r.visible(v, removed_network) {
            continue;
        }
        props.insert(r.name().to_string(), quota_value());
    }
    if with_force {
        props.insert("force".into(), boolean());
    }
    props
}

/// `PUT /os-quota-sets/{project}` (`update`, `update_v236`, `update_v257`).
pub fn quota_set_update(v: ApiVersion) -> Value {
    json!({"type": "object", "properties": {"quota_set": {"type": "object",
        "properties": quota_properties(v, (2, 36), true), "additionalProperties": false}},
        "required": ["quota_set"], "additionalProperties": false})
}

/// `PUT /os-quota-class-sets/{class}` (`update`, `update_v250`, `update_v257`).
pub fn quota_class_update(v: ApiVersion) -> Value {
    json!({"type": "object", "properties": {"quota_class_set": {"type": "object",
        "properties": quota_properties(v, (2, 50), false), "additionalProperties": false}},
        "required": ["quota_class_set"], "additionalProperties": false})
}

/// Quota set queries take `user_id` (strict from 2.75).
pub fn quota_set_query(v: ApiVersion) -> Value {
    query(json!({"user_id": multi(string())}), v.at_least(2, 75))
}

/// `GET /limits` takes `tenant_id` (strict from 2.75).
pub fn limits_query(v: ApiVersion) -> Value {
    query(json!({"tenant_id": multi(string())}), v.at_least(2, 75))
}

/// `GET /os-services` takes `host` and `binary` (strict from 2.75).
/// `PUT /os-services/{action}` before 2.53 (the service named in the body; 2.11 adds
/// `forced_down`) and `PUT /os-services/{uuid}` from 2.53.
pub fn service_update(v: ApiVersion) -> Value {
    let text = json!({"type": "string", "minLength": 1, "maxLength": 255});
    if v.at_least(2, 53) {
        return json!({"type": "object", "properties": {
            "status": {"type": "string", "enum": ["enabled", "disabled"]},
            "disabled_reason": text, "forced_down": boolean()},
            "additionalProperties": false});
    }
    // `parameter_types.fqdn`.
    let fqdn = json!({"type": "string", "minLength": 1, "maxLength": 255,
        "pattern": "^[a-zA-Z0-9-._]*$"});
    let mut props = json!({"host": fqdn, "binary": text, "disabled_reason": text});
    if v.at_least(2, 11) {
        props["forced_down"] = boolean();
    }
    json!({"type": "object", "properties": props, "required": ["host", "binary"],
        "additionalProperties": false})
}

pub fn services_query(v: ApiVersion) -> Value {
    query(
        json!({"host": multi(string()), "binary": multi(string())}),
        v.at_least(2, 75),
    )
}

// ---- servers --------------------------------------------------------------------------------

/// `parameter_types.metadata`.
fn metadata() -> Value {
    json!({"type": "object",
        "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
        "additionalProperties": false})
}

/// The body of a server metadata write: `{"<key>": metadata}`, exactly one item when
/// `single` (`PUT .../metadata/{key}`).
pub fn server_metadata(key: &str, single: bool) -> Value {
    let mut m = metadata();
    if single {
        m["minProperties"] = json!(1);
        m["maxProperties"] = json!(1);
    }
    json!({"type": "object", "properties": {key: m}, "required": [key],
        "additionalProperties": false})
}

/// `parameter_types.tag`.
fn tag() -> Value {
    json!({"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60})
}

/// `PUT /servers/{id}/tags`.
pub fn server_tags() -> Value {
    json!({"type": "object",
        "properties": {"tags": {"type": "array", "items": tag(),
            "maxItems": crate::server_meta::MAX_TAGS}},
        "required": ["tags"], "additionalProperties": false})
}

/// `POST /os-server-groups`: `policies` (one of a list) before 2.64, `policy` and
/// `rules` from it; the soft policies from 2.15.
pub fn server_group_create(v: ApiVersion) -> Value {
    let mut policies = vec!["anti-affinity", "affinity"];
    if v.at_least(2, 15) {
        policies.extend(["soft-anti-affinity", "soft-affinity"]);
    }
    let group = if v.at_least(2, 64) {
        json!({"type": "object",
            "properties": {"name": name(), "policy": {"type": "string", "enum": policies},
                "rules": {"type": "object",
                    "properties": {"max_server_per_host": positive_integer()},
                    "additionalProperties": false}},
            "required": ["name", "policy"], "additionalProperties": false})
    } else {
        json!({"type": "object",
            "properties": {"name": name(), "policies": {"type": "array",
                "items": {"type": "string", "enum": policies},
                "minItems": 1, "maxItems": 1}},
            "required": ["name", "policies"], "additionalProperties": false})
    };
    json!({"type": "object", "properties": {"server_group": group},
        "required": ["server_group"], "additionalProperties": false})
}

/// `GET /os-server-groups` (strict from 2.75).
pub fn server_group_list_query(v: ApiVersion) -> Value {
    query(
        json!({"all_projects": multi(string()), "limit": multi(non_negative_integer()),
            "offset": multi(non_negative_integer())}),
        v.at_least(2, 75),
    )
}

/// `rebuild`, per microversion (servers.py `rebuild`, `_v219` ... `_v290`).
pub fn rebuild_action(v: ApiVersion) -> Value {
    let mut props = json!({
        "name": name(),
        "imageRef": {"type": "string", "format": "uuid"},
        "adminPass": {"type": "string"},
        "metadata": metadata(),
        "preserve_ephemeral": boolean(),
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
    });
    if !v.at_least(2, 57) {
        props["personality"] = json!({"type": "array"});
    }
    if v.at_least(2, 19) {
        props["description"] = server_description();
    }
    if v.at_least(2, 54) {
        props["key_name"] = json!({"type": ["string", "null"], "minLength": 1, "maxLength": 255});
    }
    if v.at_least(2, 57) {
        props["user_data"] = json!({"type": ["string", "null"], "maxLength": 65535});
    }
    if v.at_least(2, 63) {
        props["trusted_image_certificates"] = json!({"type": ["array", "null"]});
    }
    if v.at_least(2, 90) {
        props["hostname"] = hostname();
    }
    json!({"type": "object",
        "properties": {"rebuild": {"type": "object", "properties": props,
            "required": ["imageRef"], "additionalProperties": false}},
        "required": ["rebuild"], "additionalProperties": false})
}

/// `createImage`: a name and string metadata.
pub fn create_image_action() -> Value {
    json!({"type": "object",
        "properties": {"createImage": {"type": "object",
            "properties": {"name": name(), "metadata": metadata()},
            "required": ["name"], "additionalProperties": false}},
        "required": ["createImage"], "additionalProperties": false})
}

/// `resize` (servers.py `resize`): a flavor reference, the disk config optional.
pub fn resize_action() -> Value {
    json!({"type": "object",
        "properties": {"resize": {"type": "object",
            "properties": {"flavorRef": {"type": ["string", "integer"], "minLength": 1},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]}},
            "required": ["flavorRef"], "additionalProperties": false}},
        "required": ["resize"], "additionalProperties": false})
}

/// `os-getConsoleOutput`: `length` a whole number from -1 (everything).
pub fn console_output_action() -> Value {
    json!({"type": "object",
        "properties": {"os-getConsoleOutput": {"type": "object",
            "properties": {"length": {"type": ["integer", "string", "null"],
                "pattern": "^-?[0-9]+$", "minimum": -1}},
            "additionalProperties": false}},
        "required": ["os-getConsoleOutput"], "additionalProperties": false})
}

/// `parameter_types.positive_integer`.
fn positive_integer() -> Value {
    json!({"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1})
}

/// `parameter_types.description` (servers, 2.19).
fn server_description() -> Value {
    json!({"type": ["string", "null"], "minLength": 0, "maxLength": 255,
        "pattern": DESCRIPTION_PATTERN.as_str()})
}

/// `parameter_types.fqdn` (2.90 `hostname`).
fn hostname() -> Value {
    json!({"type": "string", "minLength": 2, "maxLength": 255,
        "pattern": "^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$"})
}

/// `POST /servers` (schemas/servers.py `create` and its microversion variants).
pub fn server_create(v: ApiVersion) -> Value {
    let network = json!({"type": "object", "properties": {
        "fixed_ip": {"type": "string"}, "port": {"type": ["string", "null"], "format": "uuid"},
        "uuid": {"type": "string"}, "tag": {"type": "string"}}, "additionalProperties": false});
    let networks = if v.at_least(2, 37) {
        json!({"oneOf": [{"type": "array", "items": network},
            {"type": "string", "enum": ["none", "auto"]}]})
    } else {
        json!({"type": "array", "items": network})
    };
    let mut props = json!({
        "name": name(),
        "imageRef": {"oneOf": [{"type": "string", "format": "uuid"},
            {"type": "string", "maxLength": 0}]},
        "flavorRef": {"type": ["string", "integer"], "minLength": 1},
        "adminPass": {"type": "string"},
        "metadata": metadata(),
        "networks": networks,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
        "availability_zone": {"type": "string", "minLength": 1, "maxLength": 255},
        "block_device_mapping": {"type": "array"},
        "block_device_mapping_v2": {"type": "array"},
        "config_drive": {"anyOf": [boolean(), {"type": "string", "enum": [""]}]},
        "key_name": {"type": "string", "minLength": 1, "maxLength": 255},
        "min_count": positive_integer(),
        "max_count": positive_integer(),
        "return_reservation_id": boolean(),
        "security_groups": {"type": "array", "items": {"type": "object",
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255}},
            "additionalProperties": false}},
        "user_data": {"type": "string", "format": "base64", "maxLength": 65535},
    });
    if !v.at_least(2, 57) {
        props["personality"] = json!({"type": "array", "items": {"type": "object",
            "properties": {"path": {"type": "string"}, "contents": {"type": "string"}},
            "additionalProperties": false}});
    }
    if v.at_least(2, 19) {
        props["description"] = server_description();
    }
    if v.at_least(2, 52) {
        props["tags"] = json!({"type": "array", "items": {"type": "string", "minLength": 1,
            "maxLength": 60, "pattern": "^[^,/]*$"}, "maxItems": 50});
    }
    if v.at_least(2, 63) {
        props["trusted_image_certificates"] = json!({"type": ["array", "null"]});
    }
    if v.at_least(2, 74) {
        props["host"] = json!({"type": "string"});
        props["hypervisor_hostname"] = json!({"type": "string"});
    }
    if v.at_least(2, 90) {
        props["hostname"] = hostname();
    }
    let mut required = vec!["name", "flavorRef"];
    if v.at_least(2, 37) {
        required.push("networks");
    }
    json!({"type": "object", "properties": {
        "server": {"type": "object", "properties": props, "required": required,
            "additionalProperties": false},
        "os:scheduler_hints": {"type": "object"},
        "OS-SCH-HNT:scheduler_hints": {"type": "object"}},
        "required": ["server"], "additionalProperties": false})
}

/// `PUT /servers/{id}`.
pub fn server_update(v: ApiVersion) -> Value {
    let mut props = json!({
        "name": name(),
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
    });
    if v.at_least(2, 19) {
        props["description"] = server_description();
    }
    if v.at_least(2, 90) {
        props["hostname"] = hostname();
    }
    json!({"type": "object", "properties": {"server": {"type": "object", "properties": props,
        "additionalProperties": false}}, "required": ["server"], "additionalProperties": false})
}

/// `GET /servers[/detail]` query parameters this slice reads; others are stripped, as
/// upstream strips them for non-admins.
pub fn server_list_query() -> Value {
    query(
        json!({
            "limit": multi(non_negative_integer()),
            "marker": multi(string()),
            "name": multi(string()),
            "status": multi(string()),
            "flavor": multi(string()),
            "image": multi(string()),
            "host": multi(string()),
            "reservation_id": multi(string()),
            "changes-since": multi(json!({"type": "string", "format": "date-time"})),
            "all_tenants": multi(string()),
            "project_id": multi(string()),
            "tenant_id": multi(string()),
        }),
        false,
    )
}

/// `reboot`'s body.
pub fn reboot_action() -> Value {
    json!({"type": "object", "properties": {"reboot": {"type": "object", "properties": {
        "type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
        "required": ["type"], "additionalProperties": false}},
        "required": ["reboot"], "additionalProperties": false})
}

/// `lock`'s body: `locked_reason` from 2.73.
pub fn lock_action(v: ApiVersion) -> Value {
    if v.at_least(2, 73) {
        json!({"type": "object", "properties": {"lock": {"type": ["object", "null"],
            "properties": {"locked_reason": {"type": "string", "minLength": 1,
                "maxLength": 255}}, "additionalProperties": false}},
            "required": ["lock"], "additionalProperties": false})
    } else {
        json!({"type": "object"})
    }
}

/// `os-resetState`'s body (admin_actions.py `reset_state`).
pub fn reset_state_action() -> Value {
    json!({"type": "object", "properties": {"os-resetState": {"type": "object",
        "properties": {"state": {"type": "string", "enum": ["active", "error"]}},
        "required": ["state"], "additionalProperties": false}},
        "required": ["os-resetState"], "additionalProperties": false})
}

/// The `migrate` action from 2.56 (`migrate_server.py`): null, or an object with an
/// optional `host` (`parameter_types.fqdn`, or null).
pub fn migrate_action() -> Value {
    let host = json!({"type": ["string", "null"], "minLength": 1, "maxLength": 255,
        "pattern": "^[a-zA-Z0-9-._]*$"});
    json!({"type": "object", "properties": {"migrate": {"type": ["object", "null"],
        "properties": {"host": host}, "additionalProperties": false}},
        "required": ["migrate"], "additionalProperties": false})
}

/// `unshelve`'s body (shelve.py): anything before 2.77; from 2.77 null or a zone name;
/// from 2.91 null or a zone (a name, or null to unpin) and/or a host.
pub fn unshelve_action(v: ApiVersion) -> Value {
    let entity = if v.at_least(2, 91) {
        json!({"type": ["object", "null"], "properties": {
            "availability_zone": {"type": ["string", "null"]},
            "host": {"type": "string"}}, "additionalProperties": false})
    } else if v.at_least(2, 77) {
        json!({"type": ["object", "null"], "properties": {"availability_zone": name()},
            "required": ["availability_zone"], "additionalProperties": false})
    } else {
        json!({})
    };
    json!({"type": "object", "properties": {"unshelve": entity}, "required": ["unshelve"],
        "additionalProperties": false})
}

/// `PUT /os-hosts/{id}`'s body (hosts.py `update`): a status or a maintenance mode.
pub fn host_update() -> Value {
    let mode = json!({"type": "string", "enum": ["enable", "disable", "Enable", "Disable",
        "ENABLE", "DISABLE"]});
    json!({"type": "object", "properties": {"status": mode, "maintenance_mode": mode},
        "anyOf": [{"required": ["status"]}, {"required": ["maintenance_mode"]}],
        "additionalProperties": false})
}

// ---- aggregates -----------------------------------------------------------------------------

/// An aggregate's `availability_zone` (`_availability_zone`): a zone name or null.
fn aggregate_zone() -> Value {
    json!({"oneOf": [
        {"type": "string", "format": "az_name", "minLength": 1, "maxLength": 255},
        {"type": "null"},
    ]})
}

/// `POST /os-aggregates` (schemas/aggregates.py `create`).
pub fn aggregate_create() -> Value {
    json!({"type": "object",
        "properties": {"aggregate": {"type": "object",
            "properties": {"name": name(), "availability_zone": aggregate_zone()},
            "required": ["name"], "additionalProperties": false}},
        "required": ["aggregate"], "additionalProperties": false})
}

/// `PUT /os-aggregates/{id}` (`update`): a name (spaces around it allowed, then stripped),
/// a zone, or both.
pub fn aggregate_update() -> Value {
    json!({"type": "object",
        "properties": {"aggregate": {"type": "object",
            "properties": {
                "name": {"type": "string", "format": "name_with_leading_trailing_spaces",
                    "minLength": 1, "maxLength": 255},
                "availability_zone": aggregate_zone()},
            "additionalProperties": false,
            "anyOf": [{"required": ["name"]}, {"required": ["availability_zone"]}]}},
        "required": ["aggregate"], "additionalProperties": false})
}

/// `add_host` / `remove_host` actions: a host name (`parameter_types.fqdn`).
pub fn aggregate_host_action(action: &str) -> Value {
    json!({"type": "object",
        "properties": {action: {"type": "object",
            "properties": {"host": {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$",
                "minLength": 1, "maxLength": 255}},
            "required": ["host"], "additionalProperties": false}},
        "required": [action], "additionalProperties": false})
}

/// The `set_metadata` action: `parameter_types.metadata_with_null`.
pub fn aggregate_set_metadata() -> Value {
    let mut meta = metadata();
    meta["patternProperties"]["^[a-zA-Z0-9-_:. ]{1,255}$"]["type"] = json!(["string", "null"]);
    json!({"type": "object",
        "properties": {"set_metadata": {"type": "object",
            "properties": {"metadata": meta},
            "required": ["metadata"], "additionalProperties": false}},
        "required": ["set_metadata"], "additionalProperties": false})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::validate_body;

    #[test]
    fn flavor_ids_and_names() {
        let s = flavor_create(ApiVersion::new(2, 1));
        let ok =
            json!({"flavor": {"name": "m1", "ram": 64, "vcpus": 1, "disk": 0, "id": "a.b_c-1"}});
        assert!(validate_body(&s, &ok).is_ok());
        for bad_id in [
            json!(" x"),
            json!("x "),
            json!("a/b"),
            json!(""),
            json!(true),
        ] {
            let body =
                json!({"flavor": {"name": "m1", "ram": 64, "vcpus": 1, "disk": 0, "id": bad_id}});
            assert!(validate_body(&s, &body).is_err(), "{bad_id}");
        }
        let with_desc =
            json!({"flavor": {"name": "m1", "ram": 64, "vcpus": 1, "disk": 0, "description": "d"}});
        assert!(validate_body(&s, &with_desc).is_err());
        assert!(validate_body(&flavor_create(ApiVersion::new(2, 55)), &with_desc).is_ok());
        let rxtx =
            json!({"flavor": {"name": "m1", "ram": 64, "vcpus": 1, "disk": 0, "rxtx_factor": 2.0}});
        assert!(validate_body(&flavor_create(ApiVersion::new(2, 101)), &rxtx).is_ok());
        assert!(validate_body(&flavor_create(ApiVersion::new(2, 102)), &rxtx).is_err());
    }

    #[test]
    fn server_create_requires_networks_from_2_37() {
        let body = json!({"server": {"name": "s", "flavorRef": "1",
            "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b"}});
        assert!(validate_body(&server_create(ApiVersion::new(2, 36)), &body).is_ok());
        assert!(validate_body(&server_create(ApiVersion::new(2, 37)), &body).is_err());
        let mut none = body.clone();
        none["server"]["networks"] = json!("none");
        assert!(validate_body(&server_create(ApiVersion::new(2, 37)), &none).is_ok());
        none["server"]["networks"] = json!("some");
        assert!(validate_body(&server_create(ApiVersion::new(2, 37)), &none).is_err());
        let mut extra = body;
        extra["server"]["bogus"] = json!(1);
        assert!(validate_body(&server_create(ApiVersion::new(2, 36)), &extra).is_err());
    }

    #[test]
    fn keypair_names_widen_at_2_92() {
        let body = json!({"keypair": {"name": "a@b.c", "public_key": "k"}});
        assert!(validate_body(&keypair_create(ApiVersion::new(2, 91)), &body).is_err());
        assert!(validate_body(&keypair_create(ApiVersion::new(2, 92)), &body).is_ok());
        let no_key = json!({"keypair": {"name": "k"}});
        assert!(validate_body(&keypair_create(ApiVersion::new(2, 91)), &no_key).is_ok());
        assert!(validate_body(&keypair_create(ApiVersion::new(2, 92)), &no_key).is_err());
    }
}
