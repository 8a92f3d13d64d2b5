//! The list behaviour every Neutron collection shares (neutron/api/v2/base.py): filters on
//! any attribute (a repeated key ORs its values), `fields`, `sort_key`/`sort_dir`, and
//! `limit`/`marker`/`page_reverse` with `<collection>_links`.
//!
//! It works on the resources as the caller may see them (policy already applied), so a
//! filter can never reveal a hidden attribute.
// TODO-correctness: filters and paging run in memory over the visible rows; push the
// common ones (project_id, network_id, device_id) down into SQL when collections grow.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::fault::{NetError, Result};

/// A request's query string as ordered `(key, value)` pairs.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Query { pairs }
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `fields=` values, empty when the caller asked for everything.
    pub fn fields(&self) -> Vec<String> {
        self.all("fields")
            .into_iter()
            .flat_map(|f| f.split(','))
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Percent-decoding of a query component (`+` is a space, as in forms).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keys that steer the listing rather than filter it.
const CONTROL: &[&str] = &[
    "fields",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "page_reverse",
];

/// Whether one attribute value matches one filter value as Neutron's converters read it.
fn matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::Null => wanted.is_empty() || wanted.eq_ignore_ascii_case("none"),
        Value::Bool(b) => match wanted.to_ascii_lowercase().as_str() {
            "true" | "1" => *b,
            "false" | "0" => !*b,
            _ => false,
        },
        Value::Number(n) => n.to_string() == wanted,
        Value::String(s) => s == wanted,
        // A list attribute matches when any element does; `fixed_ips=ip_address=...`
        // and `fixed_ips=subnet_id=...` match a member of the dicts.
        Value::Array(items) => items
            .iter()
            .any(|item| match (item, wanted.split_once('=')) {
                (Value::Object(m), Some((k, v))) => m.get(k).is_some_and(|x| matches(x, v)),
                (Value::Object(_), None) => false,
                (other, _) => matches(other, wanted),
            }),
        Value::Object(_) => false,
    }
}

fn tags_of(item: &Map<String, Value>) -> Vec<&str> {
    item.get("tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Applies the attribute filters of `q` (unknown attributes are ignored, as Neutron does
/// without `filter-validation`).
fn keep(item: &Map<String, Value>, q: &Query) -> bool {
    let mut keys: Vec<&str> = q.pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    for key in keys {
        if CONTROL.contains(&key) {
            continue;
        }
        let wanted = q.all(key);
        let split = |w: &[&str]| -> Vec<String> {
            w.iter()
                .flat_map(|v| v.split(','))
                .map(str::to_string)
                .collect()
        };
        let ok = match key {
            "tags" => {
                let have = tags_of(item);
                split(&wanted).iter().all(|t| have.contains(&t.as_str()))
            }
            "tags-any" => {
                let have = tags_of(item);
                split(&wanted).iter().any(|t| have.contains(&t.as_str()))
            }
            "not-tags" => {
                let have = tags_of(item);
                !split(&wanted).iter().all(|t| have.contains(&t.as_str()))
            }
            "not-tags-any" => {
                let have = tags_of(item);
                !split(&wanted).iter().any(|t| have.contains(&t.as_str()))
            }
            _ => match item.get(key) {
                Some(v) => wanted.iter().any(|w| matches(v, w)),
                None => true,
            },
        };
        if !ok {
            return false;
        }
    }
    true
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The `(key, ascending)` sort of `q`; `id` ends every sort so pages are stable.
fn sort_keys(q: &Query, sortable: &[&str]) -> Result<Vec<(String, bool)>> {
    let keys = q.all("sort_key");
    let dirs = q.all("sort_dir");
    if !dirs.is_empty() && dirs.len() != keys.len() {
        return Err(NetError::bad_request(
            "HTTPBadRequest",
            "The number of sort_keys and sort_dirs must be same",
        ));
    }
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if !sortable.contains(k) {
            return Err(NetError::bad_request(
                "HTTPBadRequest",
                format!("{k} is an invalid attribute for sort_keys"),
            ));
        }
        let asc = match dirs.get(i).copied().unwrap_or("asc") {
            "asc" => true,
            "desc" => false,
            other => {
                return Err(NetError::bad_request(
                    "HTTPBadRequest",
                    format!(
                        "{other} is an invalid value for sort_dirs, valid values are 'asc' and 'desc'"
                    ),
                ));
            }
        };
        out.push((k.to_string(), asc));
    }
    if !out.iter().any(|(k, _)| k == "id") {
        let asc = out.first().map(|(_, a)| *a).unwrap_or(true);
        out.push(("id".into(), asc));
    }
    Ok(out)
}

fn order(a: &Map<String, Value>, b: &Map<String, Value>, keys: &[(String, bool)]) -> Ordering {
    for (k, asc) in keys {
        let o = compare(
            a.get(k).unwrap_or(&Value::Null),
            b.get(k).unwrap_or(&Value::Null),
        );
        let o = if *asc { o } else { o.reverse() };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Keeps only `fields` of `item` (all of them when `fields` is empty).
pub fn project(item: Map<String, Value>, fields: &[String]) -> Value {
    if fields.is_empty() {
        return Value::Object(item);
    }
    Value::Object(
        item.into_iter()
            .filter(|(k, _)| fields.iter().any(|f| f == k))
            .collect(),
    )
}

/// The list response `{collection: [...], collection_links: [...]}` for `items` under `q`.
/// `sortable` names the attributes `sort_key` accepts; `url` is the collection's URL.
pub fn respond(
    collection: &str,
    url: &str,
    mut items: Vec<Map<String, Value>>,
    q: &Query,
    sortable: &[&str],
) -> Result<Value> {
    items.retain(|i| keep(i, q));
    let keys = sort_keys(q, sortable)?;
    let limit = match q.first("limit") {
        None | Some("") => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(0) => None,
            _ => {
                return Err(NetError::bad_request(
                    "HTTPBadRequest",
                    format!("Limit must be an integer 0 or greater and not '{l}'"),
                ));
            }
        },
    };
    let reverse = q
        .first("page_reverse")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let marker = q.first("marker").filter(|m| !m.is_empty());
    let effective: Vec<(String, bool)> = if reverse {
        keys.iter().map(|(k, a)| (k.clone(), !a)).collect()
    } else {
        keys.clone()
    };
    items.sort_by(|a, b| order(a, b, &effective));
    if let Some(m) = marker {
        let Some(pos) = items
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(m))
        else {
            return Err(NetError::bad_request(
                "HTTPBadRequest",
                format!("Marker {m} could not be found."),
            ));
        };
        items.drain(..=pos);
    }
    let mut more = false;
    if let Some(l) = limit
        && items.len() > l
    {
        items.truncate(l);
        more = true;
    }
    if reverse {
        items.reverse();
    }
    let mut links = Vec::new();
    if let Some(l) = limit {
        let base: Vec<String> = q
            .pairs
            .iter()
            .filter(|(k, _)| !["limit", "marker", "page_reverse"].contains(&k.as_str()))
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let href = |marker: &str, reverse: bool| {
            let mut parts = base.clone();
            parts.push(format!("limit={l}"));
            parts.push(format!("marker={}", encode(marker)));
            if reverse {
                parts.push("page_reverse=True".into());
            }
            format!("{url}?{}", parts.join("&"))
        };
        let first_id = items
            .first()
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str);
        let last_id = items
            .last()
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str);
        // Going forward, a full page means there may be more; backwards, the marker
        // proves there is a page after this one.
        let (has_next, has_prev) = if reverse {
            (marker.is_some(), more)
        } else {
            (more, marker.is_some())
        };
        if has_next && let Some(id) = last_id {
            links.push(serde_json::json!({"rel": "next", "href": href(id, false)}));
        }
        if has_prev && let Some(id) = first_id {
            links.push(serde_json::json!({"rel": "previous", "href": href(id, true)}));
        }
    }
    let fields = q.fields();
    let list: Vec<Value> = items.into_iter().map(|i| project(i, &fields)).collect();
    let mut out = Map::new();
    out.insert(collection.to_string(), Value::Array(list));
    if !links.is_empty() {
        out.insert(format!("{collection}_links"), Value::Array(links));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn items() -> Vec<Map<String, Value>> {
        (0..5)
            .map(|i| {
                json!({"id": format!("id{i}"), "name": format!("n{}", i % 2), "shared": i == 3,
                       "fixed_ips": [{"ip_address": format!("10.0.0.{i}"), "subnet_id": "s"}]})
                .as_object()
                .cloned()
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn repeated_filters_or_and_booleans_ignore_case() {
        let q = Query::parse(Some("name=n0&name=n1&shared=TRUE"));
        let r = respond("networks", "u", items(), &q, &["id", "name"]).unwrap();
        assert_eq!(r["networks"].as_array().unwrap().len(), 1);
        let q = Query::parse(Some("fixed_ips=ip_address%3D10.0.0.2"));
        let r = respond("ports", "u", items(), &q, &["id"]).unwrap();
        assert_eq!(r["ports"][0]["id"], "id2");
    }

    #[test]
    fn pages_link_forward_and_back() {
        let q = Query::parse(Some("limit=2&sort_key=name&sort_dir=desc&fields=id"));
        let r = respond("networks", "u", items(), &q, &["id", "name"]).unwrap();
        let ids: Vec<&str> = r["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["id3", "id1"]);
        assert!(r["networks"][0].get("name").is_none());
        let next = r["networks_links"][0]["href"].as_str().unwrap();
        assert!(next.contains("marker=id1"), "{next}");
        let q = Query::parse(next.split_once('?').map(|x| x.1));
        let r = respond("networks", "u", items(), &q, &["id", "name"]).unwrap();
        assert_eq!(r["networks"][0]["id"], "id4");
        assert_eq!(r["networks_links"][1]["rel"], "previous");
        assert!(
            respond(
                "networks",
                "u",
                items(),
                &Query::parse(Some("sort_key=x")),
                &["id"]
            )
            .is_err()
        );
        assert!(
            respond(
                "networks",
                "u",
                items(),
                &Query::parse(Some("limit=-1")),
                &["id"]
            )
            .is_err()
        );
    }
}
