//! Glance's image record: its status machine, the rules on each property, and its JSON form.
//!
//! No I/O here: the manager loads and saves, the API parses and answers.

use std::collections::BTreeMap;

use ferro_common::{Error, Result};
use serde_json::{Map, Value, json};

/// Allowed `disk_format` values: glance `[image_format] disk_formats` default.
pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];

/// Allowed `container_format` values: glance `[image_format] container_formats` default.
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// The four visibilities of Glance v2.
pub const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

/// Properties a client may never write (glance `RequestDeserializer._readonly_properties`).
pub const READ_ONLY: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
];

/// Properties reserved to Glance itself (`_reserved_properties`).
pub const RESERVED: &[&str] = &["location", "deleted", "deleted_at", "stores"];

/// Glance keeps the `os_glance_` namespace for itself: users may not set such properties.
pub fn is_reserved(key: &str) -> bool {
    RESERVED.contains(&key) || key.starts_with("os_glance")
}

/// Properties refused on create although the image schema names them (`_disallowed_properties`).
pub const DISALLOWED_ON_CREATE: &[&str] = &["direct_url", "self", "file", "schema", "stores"];

/// Glance's image status (glance/domain `Image.valid_state_targets`); no delayed delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Queued,
    Saving,
    /// Data staged for interoperable import (`PUT .../stage`).
    Uploading,
    /// An import task is moving data into the store.
    Importing,
    Active,
    Killed,
    Deactivated,
    Deleted,
}

impl Status {
    /// Upstream's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Saving => "saving",
            Status::Uploading => "uploading",
            Status::Importing => "importing",
            Status::Active => "active",
            Status::Killed => "killed",
            Status::Deactivated => "deactivated",
            Status::Deleted => "deleted",
        }
    }

    /// Parses upstream's spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "saving" => Status::Saving,
            "uploading" => Status::Uploading,
            "importing" => Status::Importing,
            "active" => Status::Active,
            "killed" => Status::Killed,
            "deactivated" => Status::Deactivated,
            "deleted" => Status::Deleted,
            _ => return None,
        })
    }

    /// Whether Glance lets an image go from `self` to `to` (glance/domain `_validate_state`
    /// table; a failed upload or import goes back to `queued`).
    pub fn valid_transition(self, to: Status) -> bool {
        use Status::*;
        match self {
            Queued => matches!(to, Saving | Uploading | Importing | Active | Deleted),
            Saving => matches!(to, Active | Killed | Deleted | Queued),
            Uploading => matches!(to, Importing | Queued | Deleted),
            Importing => matches!(to, Active | Deleted | Queued),
            Active => matches!(to, Deactivated | Deleted),
            Deactivated => matches!(to, Active | Deleted),
            Killed => matches!(to, Deleted),
            Deleted => false,
        }
    }
}

/// One image, as the API sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub status: Status,
    pub visibility: String,
    pub owner: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub protected: bool,
    pub os_hidden: bool,
    pub tags: Vec<String>,
    /// Custom properties: strings, as the image schema's `additionalProperties` says.
    pub properties: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Image {
    /// A new queued image owned by `owner`, with Glance's defaults (visibility `shared`).
    pub fn new(id: String, owner: String, now: i64) -> Image {
        Image {
            id,
            name: None,
            status: Status::Queued,
            visibility: "shared".into(),
            owner,
            disk_format: None,
            container_format: None,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            protected: false,
            os_hidden: false,
            tags: Vec::new(),
            properties: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether a property of this name is one of Glance's base (schema) properties.
    pub fn is_base(key: &str) -> bool {
        matches!(
            key,
            "id" | "name"
                | "status"
                | "visibility"
                | "owner"
                | "disk_format"
                | "container_format"
                | "size"
                | "virtual_size"
                | "checksum"
                | "os_hash_algo"
                | "os_hash_value"
                | "min_disk"
                | "min_ram"
                | "protected"
                | "os_hidden"
                | "tags"
                | "created_at"
                | "updated_at"
        )
    }

    /// Sets a writable property from a client's JSON value, validating it as the image schema
    /// does (a bad value is a 400). Read-only and reserved names are the caller's to refuse.
    pub fn set(&mut self, key: &str, value: &Value) -> Result<()> {
        match key {
            "name" => self.name = opt_string(key, value, 255)?,
            "visibility" => {
                let v = string(key, value)?;
                if !VISIBILITIES.contains(&v.as_str()) {
                    return Err(bad_enum(key, &v, VISIBILITIES));
                }
                self.visibility = v;
            }
            "owner" => self.owner = opt_string(key, value, 255)?.unwrap_or_default(),
            "disk_format" => self.disk_format = format(key, value, DISK_FORMATS)?,
            "container_format" => self.container_format = format(key, value, CONTAINER_FORMATS)?,
            "min_disk" => self.min_disk = count(key, value)?,
            "min_ram" => self.min_ram = count(key, value)?,
            "protected" => self.protected = boolean(key, value)?,
            "os_hidden" => self.os_hidden = boolean(key, value)?,
            "tags" => {
                let Value::Array(items) = value else {
                    return Err(Error::bad_request(format!(
                        "Invalid value for 'tags': {value} is not of type 'array'"
                    )));
                };
                let mut tags: Vec<String> = Vec::new();
                for t in items {
                    let t = tag(&string("tags", t)?)?;
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
                self.tags = tags;
            }
            _ if Image::is_base(key) => {
                return Err(Error::Forbidden(format!("Attribute '{key}' is read-only.")));
            }
            custom => {
                if custom.chars().count() > 255 {
                    return Err(Error::bad_request(
                        "Custom property should not be greater than 255 characters.",
                    ));
                }
                let Value::String(v) = value else {
                    return Err(Error::bad_request(format!(
                        "Invalid value for '{custom}': {value} is not of type 'string'"
                    )));
                };
                self.properties.insert(custom.to_string(), v.clone());
            }
        }
        Ok(())
    }

    /// The image as Glance v2 shows it: base properties (nulls included), custom properties
    /// flattened beside them, and the `self`/`file`/`schema` links.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.properties {
            m.insert(k.clone(), Value::String(v.clone()));
        }
        let base = json!({
            "id": self.id,
            "name": self.name,
            "status": self.status.as_str(),
            "visibility": self.visibility,
            "owner": self.owner,
            "disk_format": self.disk_format,
            "container_format": self.container_format,
            "size": self.size,
            "virtual_size": self.virtual_size,
            "checksum": self.checksum,
            "os_hash_algo": self.os_hash_algo,
            "os_hash_value": self.os_hash_value,
            "min_disk": self.min_disk,
            "min_ram": self.min_ram,
            "protected": self.protected,
            "os_hidden": self.os_hidden,
            "tags": self.tags,
            "created_at": ferro_common::time::iso8601_seconds(self.created_at),
            "updated_at": ferro_common::time::iso8601_seconds(self.updated_at),
            "self": format!("/v2/images/{}", self.id),
            "file": format!("/v2/images/{}/file", self.id),
            "schema": "/v2/schemas/image",
        });
        if let Value::Object(b) = base {
            m.extend(b);
        }
        // One store, `file`, holds all data; Glance names the stores an image is in.
        if self.size.is_some() && matches!(self.status, Status::Active | Status::Deactivated) {
            m.insert(
                "stores".into(),
                Value::String(crate::store::STORE_ID.into()),
            );
        }
        Value::Object(m)
    }

    /// The oslo.policy target of this image (glance `ImageTarget`: `project_id` is the owner;
    /// `member_id` is the caller's project when it is a member of the image).
    pub fn target(&self, member_id: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "project_id": self.owner,
            "owner": self.owner,
            "visibility": self.visibility,
            "protected": self.protected,
            "member_id": member_id.unwrap_or(""),
        })
    }

    /// Whether a caller of `project` sees this image at all (glance's DB visibility rules:
    /// owner, public and community images, and shared images the project is a member of, in
    /// any member status). Admins see everything.
    pub fn visible_to(&self, project: Option<&str>, is_admin: bool, is_member: bool) -> bool {
        is_admin
            || matches!(self.visibility.as_str(), "public" | "community")
            || (self.visibility == "shared" && is_member)
            || project.is_some_and(|p| p == self.owner)
    }
}

/// The statuses of an image membership.
pub const MEMBER_STATUSES: &[&str] = &["pending", "accepted", "rejected"];

/// A project an image is shared with (Glance v2 image member).
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Member {
    /// The member as Glance v2 shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "image_id": self.image_id,
            "member_id": self.member_id,
            "status": self.status,
            "created_at": ferro_common::time::iso8601_seconds(self.created_at),
            "updated_at": ferro_common::time::iso8601_seconds(self.updated_at),
            "schema": "/v2/schemas/member",
        })
    }
}

/// A tag as Glance accepts it: at most 255 characters.
pub fn tag(t: &str) -> Result<String> {
    if t.chars().count() > 255 {
        return Err(Error::bad_request(format!(
            "Invalid tag {t:?}: longer than 255 characters"
        )));
    }
    Ok(t.to_string())
}

/// Whether `s` is a UUID as Glance's schema pattern wants for `id`.
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

fn bad_enum(key: &str, v: &str, allowed: &[&str]) -> Error {
    Error::bad_request(format!(
        "Invalid value '{v}' for {key}: it must be one of {}",
        allowed.join(", ")
    ))
}

fn string(key: &str, value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(Error::bad_request(format!(
            "Invalid value for '{key}': {other} is not of type 'string'"
        ))),
    }
}

fn opt_string(key: &str, value: &Value, max: usize) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        v => {
            let s = string(key, v)?;
            if s.chars().count() > max {
                return Err(Error::bad_request(format!(
                    "Invalid value for '{key}': longer than {max} characters"
                )));
            }
            Ok(Some(s))
        }
    }
}

fn format(key: &str, value: &Value, allowed: &[&str]) -> Result<Option<String>> {
    match opt_string(key, value, 255)? {
        None => Ok(None),
        Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v)),
        Some(v) => Err(bad_enum(key, &v, allowed)),
    }
}

fn count(key: &str, value: &Value) -> Result<i64> {
    match value.as_i64() {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(Error::bad_request(format!(
            "Invalid value for '{key}': {value} is not a non-negative integer"
        ))),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool> {
    value.as_bool().ok_or_else(|| {
        Error::bad_request(format!(
            "Invalid value for '{key}': {value} is not of type 'boolean'"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_upload_may_return_to_queued_but_active_may_not() {
        assert!(Status::Saving.valid_transition(Status::Queued));
        assert!(Status::Queued.valid_transition(Status::Saving));
        assert!(!Status::Active.valid_transition(Status::Saving));
        assert!(!Status::Deleted.valid_transition(Status::Active));
        for s in [
            "queued",
            "saving",
            "active",
            "killed",
            "deactivated",
            "deleted",
        ] {
            assert_eq!(Status::parse(s).map(Status::as_str), Some(s));
        }
    }

    #[test]
    fn formats_are_checked_against_upstream_lists() {
        let mut i = Image::new("x".into(), "p".into(), 0);
        assert!(i.set("disk_format", &json!("qcow2")).is_ok());
        assert_eq!(
            i.set("disk_format", &json!("qcow3")).unwrap_err().status(),
            400
        );
        assert_eq!(
            i.set("container_format", &json!("box"))
                .unwrap_err()
                .status(),
            400
        );
        assert!(i.set("container_format", &Value::Null).is_ok());
        assert_eq!(i.set("min_ram", &json!(-1)).unwrap_err().status(), 400);
        assert_eq!(i.set("status", &json!("active")).unwrap_err().status(), 403);
        assert_eq!(i.set("hw_x", &json!(1)).unwrap_err().status(), 400);
    }

    #[test]
    fn json_has_nulls_links_and_flattened_properties() {
        let mut i = Image::new("abc".into(), "p".into(), 0);
        i.properties.insert("os_distro".into(), "cirros".into());
        let j = i.to_json();
        assert_eq!(j["status"], "queued");
        assert_eq!(j["visibility"], "shared");
        assert!(j["checksum"].is_null() && j.get("checksum").is_some());
        assert_eq!(j["file"], "/v2/images/abc/file");
        assert_eq!(j["os_distro"], "cirros");
    }

    #[test]
    fn shared_and_private_images_are_hidden_from_other_projects() {
        let mut i = Image::new("x".into(), "p".into(), 0);
        assert!(i.visible_to(Some("p"), false, false));
        assert!(!i.visible_to(Some("q"), false, false));
        assert!(i.visible_to(Some("q"), false, true));
        assert!(i.visible_to(Some("q"), true, false));
        i.visibility = "private".into();
        assert!(!i.visible_to(Some("q"), false, true));
        i.visibility = "public".into();
        assert!(i.visible_to(Some("q"), false, false));
    }
}

/// The statuses of a Glance task.
pub const TASK_STATUSES: &[&str] = &["pending", "processing", "success", "failure"];

/// A Glance task: an interoperable import (`api_image_import`) or a legacy tasks-API
/// `import`.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: String,
    pub task_type: String,
    /// `pending`, `processing`, `success` or `failure`.
    pub status: String,
    pub owner: String,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    pub image_id: Option<String>,
    pub input: Value,
    pub result: Option<Value>,
    pub message: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

impl Task {
    /// A new pending task.
    pub fn new(task_type: &str, owner: String, input: Value, now: i64) -> Task {
        Task {
            id: uuid::Uuid::new_v4().to_string(),
            task_type: task_type.to_string(),
            status: "pending".into(),
            owner,
            user_id: None,
            request_id: None,
            image_id: None,
            input,
            result: None,
            message: String::new(),
            created_at: now,
            updated_at: now,
            expires_at: None,
        }
    }

    /// The task as Glance shows it in full (`GET /v2/tasks/{id}`, image tasks).
    pub fn to_json(&self) -> Value {
        let mut v = self.stub_json();
        let m = v.as_object_mut().expect("stub_json is an object");
        m.insert("input".into(), self.input.clone());
        m.insert("result".into(), self.result.clone().unwrap_or(Value::Null));
        m.insert("message".into(), Value::String(self.message.clone()));
        for (k, f) in [
            ("image_id", &self.image_id),
            ("request_id", &self.request_id),
            ("user_id", &self.user_id),
        ] {
            if let Some(f) = f {
                m.insert(k.into(), Value::String(f.clone()));
            }
        }
        v
    }

    /// The task as a list shows it: without input, result and message.
    pub fn stub_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "type": self.task_type,
            "status": self.status,
            "owner": self.owner,
            "created_at": ferro_common::time::iso8601_seconds(self.created_at),
            "updated_at": ferro_common::time::iso8601_seconds(self.updated_at),
            "self": format!("/v2/tasks/{}", self.id),
            "schema": "/v2/schemas/task",
        });
        if let Some(e) = self.expires_at {
            v["expires_at"] = Value::String(ferro_common::time::iso8601_seconds(e));
        }
        v
    }
}
