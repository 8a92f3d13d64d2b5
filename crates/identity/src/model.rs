//! How identity's records look on the wire (Keystone v3 bodies), and the request-body
//! field readers that turn a wrong type or missing field into a 400 naming it.

use ferro_common::{Error, Result};
use serde_json::{Map, Value, json};

use crate::db::{
    AppCredRow, CredentialRow, EndpointRow, GroupRow, PolicyRow, ProjectRow, RegionRow, RoleRow,
    ServiceRow, UserRow,
};

/// Builds `links.self` for `path` under the public base URL.
pub fn link(base: &str, path: &str) -> Value {
    json!({"self": format!("{base}/v3/{path}")})
}

/// The `links` of a collection.
pub fn collection_links(base: &str, path: &str) -> Value {
    json!({"self": format!("{base}/v3/{path}"), "previous": null, "next": null})
}

fn merge_extra(mut out: Value, extra: &str) -> Value {
    if let (Some(obj), Ok(Value::Object(extra))) =
        (out.as_object_mut(), serde_json::from_str::<Value>(extra))
    {
        for (k, v) in extra {
            obj.entry(k).or_insert(v);
        }
    }
    out
}

pub fn project_json(base: &str, p: &ProjectRow, tags: &[String]) -> Value {
    let parent = if p.parent_id.as_deref() == Some(crate::db::ROOT_DOMAIN) {
        None
    } else {
        p.parent_id.clone()
    };
    // Projects acting as domains have no domain (upstream stores a marker, shows null).
    let domain = if p.domain_id == crate::db::ROOT_DOMAIN {
        None
    } else {
        Some(&p.domain_id)
    };
    merge_extra(
        json!({"id": p.id, "name": p.name, "domain_id": domain, "description": p.description.clone().unwrap_or_default(),
            "enabled": p.enabled, "parent_id": parent, "is_domain": p.is_domain, "tags": tags, "options": {},
            "links": link(base, &format!("projects/{}", p.id))}),
        &p.extra,
    )
}

pub fn domain_json(base: &str, d: &ProjectRow, tags: &[String]) -> Value {
    merge_extra(
        json!({"id": d.id, "name": d.name, "description": d.description.clone().unwrap_or_default(), "enabled": d.enabled,
            "tags": tags, "options": {}, "links": link(base, &format!("domains/{}", d.id))}),
        &d.extra,
    )
}

pub fn user_json(base: &str, u: &UserRow) -> Value {
    let mut v = json!({"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
        "password_expires_at": null, "options": {}, "links": link(base, &format!("users/{}", u.id))});
    if let Some(p) = &u.default_project_id {
        v["default_project_id"] = json!(p);
    }
    merge_extra(v, &u.extra)
}

pub fn group_json(base: &str, g: &GroupRow) -> Value {
    merge_extra(
        json!({"id": g.id, "name": g.name, "domain_id": g.domain_id, "description": g.description.clone().unwrap_or_default(),
            "links": link(base, &format!("groups/{}", g.id))}),
        &g.extra,
    )
}

pub fn role_json(base: &str, r: &RoleRow) -> Value {
    let domain = if r.domain_id.is_empty() {
        Value::Null
    } else {
        json!(r.domain_id)
    };
    let mut v = json!({"id": r.id, "name": r.name, "domain_id": domain, "options": {},
        "links": link(base, &format!("roles/{}", r.id))});
    if let Some(d) = &r.description {
        v["description"] = json!(d);
    }
    merge_extra(v, &r.extra)
}

/// The short role form used inside implied-role and assignment bodies.
pub fn role_ref(base: &str, r: &RoleRow) -> Value {
    json!({"id": r.id, "name": r.name, "links": link(base, &format!("roles/{}", r.id))})
}

pub fn region_json(base: &str, r: &RegionRow) -> Value {
    merge_extra(
        json!({"id": r.id, "description": r.description.clone().unwrap_or_default(), "parent_region_id": r.parent_region_id,
            "links": link(base, &format!("regions/{}", r.id))}),
        &r.extra,
    )
}

pub fn service_json(base: &str, s: &ServiceRow) -> Value {
    merge_extra(
        json!({"id": s.id, "type": s.kind, "enabled": s.enabled, "links": link(base, &format!("services/{}", s.id))}),
        &s.extra,
    )
}

pub fn endpoint_json(base: &str, e: &EndpointRow) -> Value {
    merge_extra(
        json!({"id": e.id, "interface": e.interface, "region_id": e.region_id, "region": e.region_id, "url": e.url,
            "service_id": e.service_id, "enabled": e.enabled, "links": link(base, &format!("endpoints/{}", e.id))}),
        &e.extra,
    )
}

pub fn credential_json(base: &str, c: &CredentialRow) -> Value {
    merge_extra(
        json!({"id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.kind, "blob": c.blob,
            "links": link(base, &format!("credentials/{}", c.id))}),
        &c.extra,
    )
}

pub fn policy_json(base: &str, p: &PolicyRow) -> Value {
    merge_extra(
        json!({"id": p.id, "type": p.kind, "blob": p.blob, "links": link(base, &format!("policies/{}", p.id))}),
        &p.extra,
    )
}

/// An application credential; `expires_at` as upstream renders it (oslo's
/// `%Y-%m-%dT%H:%M:%S.%f`, no zone).
pub fn app_cred_json(
    base: &str,
    a: &AppCredRow,
    roles: Vec<Value>,
    access_rules: Vec<Value>,
) -> Value {
    let expires = a.expires_at.map(|e| {
        let s = ferro_common::time::keystone_format(e);
        s.trim_end_matches('Z').to_string()
    });
    json!({"id": a.id, "name": a.name, "user_id": a.user_id, "project_id": a.project_id,
        "description": a.description, "unrestricted": a.unrestricted, "access_rules": access_rules,
        "expires_at": expires, "roles": roles,
        "links": link(base, &format!("users/{}/application_credentials/{}", a.user_id, a.id))})
}

// ---- request bodies ----

/// The object under `key` of a request body (`{"project": {...}}`).
pub fn entity<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>> {
    match body.get(key) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(Error::bad_request(format!(
            "Invalid input for field '{key}': it is not of type 'object'."
        ))),
        None => Err(Error::bad_request(format!(
            "'{key}' is a required property."
        ))),
    }
}

/// A string field; `Ok(None)` when absent. `null` counts as absent where `nullable`.
pub fn str_field(obj: &Map<String, Value>, key: &str, nullable: bool) -> Result<Option<String>> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) if nullable => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::bad_request(format!(
            "Invalid input for field '{key}': {other} is not of type 'string'."
        ))),
    }
}

/// A required string field.
pub fn required_str(obj: &Map<String, Value>, key: &str) -> Result<String> {
    str_field(obj, key, false)?
        .ok_or_else(|| Error::bad_request(format!("'{key}' is a required property.")))
}

/// A name: 1 to `max` characters, not only white space (keystone's name schema).
pub fn name_field(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>> {
    let v = if required {
        Some(required_str(obj, key)?)
    } else {
        str_field(obj, key, false)?
    };
    if let Some(n) = &v
        && (n.trim().is_empty() || n.chars().count() > max)
    {
        return Err(Error::bad_request(format!(
            "Invalid input for field '{key}': {n:?} must be 1 to {max} characters and not only white space."
        )));
    }
    Ok(v)
}

/// A boolean field; `Ok(None)` when absent.
pub fn bool_field(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Error::bad_request(format!(
            "Invalid input for field '{key}': {other} is not of type 'boolean'."
        ))),
    }
}

/// The attributes of `obj` that are not in `known`, as a JSON text for the `extra` column.
pub fn extra_of(obj: &Map<String, Value>, known: &[&str], previous: Option<&str>) -> String {
    let mut extra: Map<String, Value> = previous
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    for (k, v) in obj {
        if !known.contains(&k.as_str()) && k != "links" && k != "id" {
            extra.insert(k.clone(), v.clone());
        }
    }
    Value::Object(extra).to_string()
}

/// Parses a query-string boolean the way keystone does (`true`, `1`, `yes`...).
pub fn query_bool(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | ""
    )
}
