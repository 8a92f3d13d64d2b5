//! Metadef records, the request bodies that create them (checked as Glance's JSON schemas
//! and WSME types check them) and their JSON forms.

use ferro_common::Error;
use ferro_common::time::iso8601_seconds;
use serde_json::{Map, Value, json};

/// Longest name of a namespace, object, property, tag or resource type (Glance's
/// `String(80)` columns and `maxLength: 80`).
pub const NAME_MAX: usize = 80;

/// The JSON-schema types a property definition may declare (`type` and `items.type`).
pub const PROPERTY_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// Keys of Glance's property JSON schema (`get_schema_definitions()['property']`).
const PROPERTY_SCHEMA_KEYS: &[&str] = &[
    "name",
    "title",
    "description",
    "operators",
    "type",
    "required",
    "minimum",
    "maximum",
    "maxLength",
    "minLength",
    "pattern",
    "enum",
    "readonly",
    "default",
    "items",
    "maxItems",
    "minItems",
    "uniqueItems",
    "additionalItems",
];

/// Attributes of Glance's WSME `PropertyType`: anything else is refused when parsed.
const PROPERTY_TYPE_ATTRS: &[&str] = &[
    "name",
    "type",
    "title",
    "description",
    "operators",
    "default",
    "readonly",
    "minimum",
    "maximum",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "confidential",
    "items",
    "uniqueItems",
    "minItems",
    "maxItems",
    "additionalItems",
];

/// A metadata definition namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Namespace {
    /// Internal id; clients address a namespace by its name.
    pub id: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub visibility: String,
    pub owner: String,
    pub protected: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Namespace {
    /// Whether a caller of `project` sees this namespace (glance `_is_namespace_visible`).
    pub fn visible_to(&self, project: Option<&str>, is_admin: bool) -> bool {
        is_admin || self.visibility == "public" || project == Some(self.owner.as_str())
    }

    /// The policy target of rules about this namespace (`MetadefAPIPolicy._build_target`).
    pub fn target(&self) -> Value {
        json!({"project_id": self.owner, "visibility": self.visibility})
    }

    /// `/v2/metadefs/namespaces/{name}`.
    pub fn href(&self) -> String {
        format!("/v2/metadefs/namespaces/{}", self.name)
    }

    /// The namespace's own fields, without its contents.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("namespace".into(), json!(self.name));
        if let Some(d) = &self.display_name {
            m.insert("display_name".into(), json!(d));
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert("visibility".into(), json!(self.visibility));
        m.insert("protected".into(), json!(self.protected));
        m.insert("owner".into(), json!(self.owner));
        m.insert("created_at".into(), json!(iso8601_seconds(self.created_at)));
        m.insert("updated_at".into(), json!(iso8601_seconds(self.updated_at)));
        m.insert("self".into(), json!(self.href()));
        m.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
        m
    }
}

/// A resource type (`OS::Glance::Image`, ...): global, created on first association.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    pub id: String,
    pub name: String,
    /// Seeded types are protected.
    pub protected: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ResourceType {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "created_at": iso8601_seconds(self.created_at),
            "updated_at": iso8601_seconds(self.updated_at),
        })
    }
}

/// A namespace's association with a resource type.
#[derive(Clone, Debug, PartialEq)]
pub struct Association {
    /// The resource type's name.
    pub name: String,
    /// Prefix of the namespace's properties when applied to this resource type (`hw_`).
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
    /// Absent when echoing a request body (namespace create).
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl Association {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(p) = &self.prefix {
            m.insert("prefix".into(), json!(p));
        }
        if let Some(t) = &self.properties_target {
            m.insert("properties_target".into(), json!(t));
        }
        if let Some(t) = self.created_at {
            m.insert("created_at".into(), json!(iso8601_seconds(t)));
        }
        if let Some(t) = self.updated_at {
            m.insert("updated_at".into(), json!(iso8601_seconds(t)));
        }
        Value::Object(m)
    }
}

/// A metadef object: a named group of property definitions.
#[derive(Clone, Debug, PartialEq)]
pub struct MdObject {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Names of required properties. `None` only when echoing a body that had none.
    pub required: Option<Vec<String>>,
    /// Property definitions by name. `None` only when echoing a body that had none.
    pub properties: Option<Map<String, Value>>,
    /// Absent when echoing a request body (namespace create).
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl MdObject {
    /// The object's JSON; `namespace` names the links when the object is shown on its own.
    pub fn to_json(&self, namespace: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        if let Some(r) = &self.required {
            m.insert("required".into(), json!(r));
        }
        if let Some(p) = &self.properties {
            m.insert("properties".into(), Value::Object(p.clone()));
        }
        if let Some(t) = self.created_at {
            m.insert("created_at".into(), json!(iso8601_seconds(t)));
        }
        if let Some(t) = self.updated_at {
            m.insert("updated_at".into(), json!(iso8601_seconds(t)));
        }
        if let Some(ns) = namespace {
            m.insert(
                "self".into(),
                json!(format!(
                    "/v2/metadefs/namespaces/{ns}/objects/{}",
                    self.name
                )),
            );
            m.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
        }
        Value::Object(m)
    }
}

/// A namespace-level property definition: a JSON-schema fragment under a name.
#[derive(Clone, Debug, PartialEq)]
pub struct MdProperty {
    pub id: String,
    pub name: String,
    /// The definition as accepted (only `PropertyType` attributes).
    pub schema: Map<String, Value>,
}

impl MdProperty {
    /// The definition shown on its own: its stored fields with `name` set to the row's name.
    pub fn to_json(&self) -> Value {
        let mut m = self.schema.clone();
        m.insert("name".into(), json!(self.name));
        Value::Object(m)
    }
}

/// A metadef tag.
#[derive(Clone, Debug, PartialEq)]
pub struct MdTag {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl MdTag {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "created_at": iso8601_seconds(self.created_at),
            "updated_at": iso8601_seconds(self.updated_at),
        })
    }
}

/// The key names are unique and looked up by (see the migration).
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

// ---- request bodies -------------------------------------------------------------------

/// A 400 as Glance words a JSON-schema failure (`exception.InvalidObject`).
pub fn schema_error(schema: &str, reason: impl std::fmt::Display) -> Error {
    Error::bad_request(format!(
        "Provided object does not match schema '{schema}': {reason}"
    ))
}

/// A 400 as WSME refuses a key its type does not declare.
fn unknown_attribute(kind: &str, key: &str) -> Error {
    Error::bad_request(format!("Unknown attribute for argument {kind}: {key}"))
}

/// Python's `repr` of a JSON value, as jsonschema quotes it in its messages.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// The body as an object, refusing the keys the client may not set (403, as Glance's
/// `_check_allowed`).
pub fn body_object<'a>(
    body: &'a Value,
    read_only: &[&str],
) -> Result<&'a Map<String, Value>, Error> {
    let Value::Object(m) = body else {
        return Err(Error::bad_request("Body expected in request."));
    };
    if let Some(k) = read_only.iter().find(|k| m.contains_key(**k)) {
        return Err(Error::Forbidden(format!("Attribute '{k}' is read-only.")));
    }
    Ok(m)
}

/// Refuses keys outside `allowed` (`additionalProperties: false`).
fn only_keys(m: &Map<String, Value>, allowed: &[&str], schema: &str) -> Result<(), Error> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(schema_error(
            schema,
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        )),
        None => Ok(()),
    }
}

fn opt_string(
    m: &Map<String, Value>,
    key: &str,
    max: Option<usize>,
    schema: &str,
) -> Result<Option<String>, Error> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if let Some(max) = max
                && s.chars().count() > max
            {
                return Err(schema_error(schema, format!("'{s}' is too long")));
            }
            Ok(Some(s.clone()))
        }
        Some(other) => Err(schema_error(
            schema,
            format!("{} is not of type 'string'", py_repr(other)),
        )),
    }
}

fn required_string(
    m: &Map<String, Value>,
    key: &str,
    max: Option<usize>,
    schema: &str,
) -> Result<String, Error> {
    opt_string(m, key, max, schema)?
        .ok_or_else(|| schema_error(schema, format!("'{key}' is a required property")))
}

fn opt_bool(m: &Map<String, Value>, key: &str, schema: &str) -> Result<Option<bool>, Error> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(schema_error(
            schema,
            format!("{} is not of type 'boolean'", py_repr(other)),
        )),
    }
}

fn opt_enum(
    m: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    schema: &str,
) -> Result<Option<String>, Error> {
    let v = opt_string(m, key, None, schema)?;
    if let Some(s) = &v
        && !allowed.contains(&s.as_str())
    {
        return Err(schema_error(
            schema,
            format!("'{s}' is not one of {allowed:?}").replace('"', "'"),
        ));
    }
    Ok(v)
}

/// A list of distinct strings (Glance's `stringArray`).
fn string_array(
    v: &Value,
    key: &str,
    min_items: usize,
    schema: &str,
) -> Result<Vec<String>, Error> {
    let Value::Array(items) = v else {
        return Err(schema_error(
            schema,
            format!("{} is not of type 'array'", py_repr(v)),
        ));
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(schema_error(
                schema,
                format!("{} is not of type 'string'", py_repr(item)),
            ));
        };
        if out.contains(s) {
            return Err(schema_error(
                schema,
                format!("{key} has non-unique elements"),
            ));
        }
        out.push(s.clone());
    }
    if out.len() < min_items {
        return Err(schema_error(schema, "[] is too short"));
    }
    Ok(out)
}

/// How strictly a property definition is checked, as the upstream path that receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyCheck {
    /// `POST/PUT .../properties`: the property schema itself, `name` required.
    Single,
    /// Each property of `POST .../objects`: the property schema without `name`.
    InObjectCreate,
    /// Inside a namespace body or an object update: only the nested definition schema.
    Nested,
}

/// Checks one property definition and returns the fields kept for it.
pub fn property_definition(v: &Value, check: PropertyCheck) -> Result<Map<String, Value>, Error> {
    let schema = "property";
    let Value::Object(m) = v else {
        return Err(schema_error(
            schema,
            format!("{} is not of type 'object'", py_repr(v)),
        ));
    };
    if check != PropertyCheck::Nested {
        only_keys(m, PROPERTY_SCHEMA_KEYS, schema)?;
    }
    // The WSME type behind the schema refuses what it does not declare, `required` included.
    if let Some(k) = m
        .keys()
        .find(|k| !PROPERTY_TYPE_ATTRS.contains(&k.as_str()))
    {
        return Err(unknown_attribute("PropertyType", k));
    }
    let name_max = Some(NAME_MAX);
    match check {
        PropertyCheck::Single => {
            required_string(m, "name", name_max, schema)?;
        }
        _ => {
            opt_string(m, "name", name_max, schema)?;
        }
    }
    required_string(m, "title", None, schema)?;
    if m.get("type").is_none() {
        return Err(schema_error(schema, "'type' is a required property"));
    }
    opt_enum(m, "type", PROPERTY_TYPES, schema)?;
    opt_string(m, "description", None, schema)?;
    opt_string(m, "pattern", None, schema)?;
    if let Some(v) = m.get("operators") {
        let Value::Array(items) = v else {
            return Err(schema_error(
                schema,
                format!("{} is not of type 'array'", py_repr(v)),
            ));
        };
        if let Some(bad) = items.iter().find(|i| !i.is_string()) {
            return Err(schema_error(
                schema,
                format!("{} is not of type 'string'", py_repr(bad)),
            ));
        }
    }
    for key in ["minimum", "maximum"] {
        if let Some(v) = m.get(key)
            && !v.is_number()
        {
            return Err(schema_error(
                schema,
                format!("{} is not of type 'number'", py_repr(v)),
            ));
        }
    }
    for key in ["maxLength", "minLength", "maxItems", "minItems"] {
        match m.get(key) {
            None => {}
            Some(v) if v.as_u64().is_some() => {}
            Some(v) if v.as_i64().is_some() => {
                return Err(schema_error(
                    schema,
                    format!("{v} is less than the minimum of 0"),
                ));
            }
            Some(v) => {
                return Err(schema_error(
                    schema,
                    format!("{} is not of type 'integer'", py_repr(v)),
                ));
            }
        }
    }
    for key in ["readonly", "uniqueItems", "additionalItems", "confidential"] {
        opt_bool(m, key, schema)?;
    }
    if let Some(v) = m.get("enum") {
        let Value::Array(items) = v else {
            return Err(schema_error(
                schema,
                format!("{} is not of type 'array'", py_repr(v)),
            ));
        };
        // WSME declares the enum a list of text.
        if let Some(bad) = items.iter().find(|i| !i.is_string()) {
            return Err(Error::bad_request(format!(
                "Invalid input for field/attribute enum. Value: {bad}. Wrong type. Expected 'text'"
            )));
        }
    }
    if let Some(items) = m.get("items") {
        let Value::Object(im) = items else {
            return Err(schema_error(
                schema,
                format!("{} is not of type 'object'", py_repr(items)),
            ));
        };
        if let Some(k) = im.keys().find(|k| !matches!(k.as_str(), "type" | "enum")) {
            return Err(unknown_attribute("ItemType", k));
        }
        if im.get("type").is_none() {
            return Err(Error::bad_request(
                "Invalid input for field/attribute type. Value: 'None'. Mandatory field missing.",
            ));
        }
        opt_enum(im, "type", PROPERTY_TYPES, schema)?;
        if let Some(e) = im.get("enum") {
            let ok = e.as_array().is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return Err(schema_error(
                    schema,
                    format!("{} is not of type 'array'", py_repr(e)),
                ));
            }
        }
    }
    Ok(m.clone())
}

/// Property definitions by name (`properties` of a namespace or an object).
fn property_map(
    v: &Value,
    check: PropertyCheck,
    schema: &str,
) -> Result<Map<String, Value>, Error> {
    let Value::Object(m) = v else {
        return Err(schema_error(
            schema,
            format!("{} is not of type 'object'", py_repr(v)),
        ));
    };
    let mut out = Map::new();
    for (name, def) in m {
        if name.chars().count() > NAME_MAX {
            return Err(schema_error(schema, format!("'{name}' is too long")));
        }
        out.insert(
            name.clone(),
            Value::Object(property_definition(def, check)?),
        );
    }
    Ok(out)
}

/// A namespace body (create or update), with its optional inline contents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespaceInput {
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<String>,
    pub protected: Option<bool>,
    pub owner: Option<String>,
    pub resource_type_associations: Option<Vec<Association>>,
    pub properties: Option<Map<String, Value>>,
    pub objects: Option<Vec<MdObject>>,
    pub tags: Option<Vec<String>>,
}

/// Keys a client may not send in a namespace or object body.
pub const READ_ONLY: &[&str] = &["self", "schema", "created_at", "updated_at"];
/// Keys a client may not send in a property, tag or association body.
pub const READ_ONLY_TIMES: &[&str] = &["created_at", "updated_at"];

/// Parses a namespace body as Glance's namespace schema and `Namespace` type do.
pub fn namespace_input(body: &Value) -> Result<NamespaceInput, Error> {
    let schema = "namespace";
    let m = body_object(body, READ_ONLY)?;
    only_keys(
        m,
        &[
            "namespace",
            "display_name",
            "description",
            "visibility",
            "protected",
            "owner",
            "resource_type_associations",
            "properties",
            "objects",
            "tags",
        ],
        schema,
    )?;
    let mut ns = NamespaceInput {
        namespace: required_string(m, "namespace", Some(NAME_MAX), schema)?,
        display_name: opt_string(m, "display_name", Some(NAME_MAX), schema)?,
        description: opt_string(m, "description", Some(500), schema)?,
        visibility: opt_enum(m, "visibility", &["public", "private"], schema)?,
        protected: opt_bool(m, "protected", schema)?,
        owner: opt_string(m, "owner", Some(255), schema)?,
        ..Default::default()
    };
    if let Some(v) = m.get("resource_type_associations") {
        let items = v.as_array().ok_or_else(|| {
            schema_error(schema, format!("{} is not of type 'array'", py_repr(v)))
        })?;
        let mut out = Vec::new();
        for item in items {
            out.push(association_fields(item, schema, false)?);
        }
        ns.resource_type_associations = Some(out);
    }
    if let Some(v) = m.get("properties") {
        ns.properties = Some(property_map(v, PropertyCheck::Nested, schema)?);
    }
    if let Some(v) = m.get("objects") {
        let items = v.as_array().ok_or_else(|| {
            schema_error(schema, format!("{} is not of type 'array'", py_repr(v)))
        })?;
        let mut out = Vec::new();
        for item in items {
            out.push(object_fields(item, schema, PropertyCheck::Nested, false)?);
        }
        ns.objects = Some(out);
    }
    if let Some(v) = m.get("tags") {
        let items = v.as_array().ok_or_else(|| {
            schema_error(schema, format!("{} is not of type 'array'", py_repr(v)))
        })?;
        let mut out = Vec::new();
        for item in items {
            out.push(tag_fields(item, schema, false)?);
        }
        ns.tags = Some(out);
    }
    Ok(ns)
}

/// One resource type association; `strict` for its own endpoint's schema.
fn association_fields(v: &Value, schema: &str, strict: bool) -> Result<Association, Error> {
    let Value::Object(m) = v else {
        return Err(schema_error(
            schema,
            format!("{} is not of type 'object'", py_repr(v)),
        ));
    };
    let keys = ["name", "prefix", "properties_target"];
    if strict {
        only_keys(m, &keys, schema)?;
    } else if let Some(k) = m.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(unknown_attribute("ResourceTypeAssociation", k));
    }
    Ok(Association {
        name: required_string(m, "name", Some(NAME_MAX), schema)?,
        prefix: opt_string(m, "prefix", Some(NAME_MAX), schema)?,
        properties_target: opt_string(m, "properties_target", Some(NAME_MAX), schema)?,
        created_at: None,
        updated_at: None,
    })
}

/// `POST .../resource_types`: a resource type association.
pub fn association_input(body: &Value) -> Result<Association, Error> {
    body_object(body, READ_ONLY_TIMES)?;
    association_fields(body, "resource_type_association", true)
}

fn object_fields(
    v: &Value,
    schema: &str,
    check: PropertyCheck,
    strict: bool,
) -> Result<MdObject, Error> {
    let Value::Object(m) = v else {
        return Err(schema_error(
            schema,
            format!("{} is not of type 'object'", py_repr(v)),
        ));
    };
    let keys = ["name", "description", "required", "properties"];
    if strict {
        only_keys(m, &keys, schema)?;
    } else if let Some(k) = m.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(unknown_attribute("MetadefObject", k));
    }
    Ok(MdObject {
        id: String::new(),
        name: required_string(m, "name", Some(NAME_MAX), schema)?,
        description: opt_string(m, "description", None, schema)?,
        required: m
            .get("required")
            .map(|r| string_array(r, "required", 0, schema))
            .transpose()?,
        properties: m
            .get("properties")
            .map(|p| property_map(p, check, schema))
            .transpose()?,
        created_at: None,
        updated_at: None,
    })
}

/// `POST .../objects` (`create`) or `PUT .../objects/{name}`: an object body.
pub fn object_input(body: &Value, create: bool) -> Result<MdObject, Error> {
    body_object(body, READ_ONLY)?;
    let check = if create {
        PropertyCheck::InObjectCreate
    } else {
        PropertyCheck::Nested
    };
    object_fields(body, "object", check, true)
}

/// `POST/PUT .../properties`: the property's name and its definition.
pub fn property_input(body: &Value) -> Result<(String, Map<String, Value>), Error> {
    body_object(body, READ_ONLY_TIMES)?;
    let def = property_definition(body, PropertyCheck::Single)?;
    let name = def
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((name, def))
}

fn tag_fields(v: &Value, schema: &str, strict: bool) -> Result<String, Error> {
    let Value::Object(m) = v else {
        return Err(schema_error(
            schema,
            format!("{} is not of type 'object'", py_repr(v)),
        ));
    };
    if strict {
        only_keys(m, &["name"], schema)?;
    } else if let Some(k) = m.keys().find(|k| k.as_str() != "name") {
        return Err(unknown_attribute("MetadefTag", k));
    }
    required_string(m, "name", Some(NAME_MAX), schema)
}

/// A tag name from the URL (`POST .../tags/{name}`), checked as the tag schema checks it.
pub fn tag_name(name: &str) -> Result<String, Error> {
    tag_fields(&json!({"name": name}), "tag", true)
}

/// `PUT .../tags/{name}`: the tag's new name.
pub fn tag_input(body: &Value) -> Result<String, Error> {
    body_object(body, READ_ONLY_TIMES)?;
    tag_fields(body, "tag", true)
}

/// `POST .../tags`: the list of tag names (an absent list is empty).
pub fn tags_input(body: &Value) -> Result<Vec<String>, Error> {
    let schema = "tags";
    let m = body_object(body, READ_ONLY_TIMES)?;
    only_keys(m, &["tags"], schema)?;
    let Some(v) = m.get("tags") else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| schema_error(schema, format!("{} is not of type 'array'", py_repr(v))))?;
    items.iter().map(|i| tag_fields(i, schema, true)).collect()
}

/// Refuses 4-byte UTF-8 characters in any string of a body (glance `no_4byte_params`:
/// MySQL's `utf8` columns cannot store them). `what` names the operation in the message.
pub fn no_4byte(body: &Value, what: &str) -> Result<(), Error> {
    fn walk(v: &Value, key: &str) -> Option<String> {
        let wide = |s: &str| s.chars().any(|c| c.len_utf8() == 4);
        match v {
            Value::String(s) if wide(s) => Some(format!(
                "{} can't contain 4 byte unicode characters.",
                title_case(key)
            )),
            Value::Array(items) => items.iter().find_map(|i| walk(i, key)),
            Value::Object(m) => m.iter().find_map(|(k, v)| {
                if wide(k) {
                    Some("Property names can't contain 4 byte unicode.".to_string())
                } else {
                    walk(v, k)
                }
            }),
            _ => None,
        }
    }
    match walk(body, "value") {
        Some(reason) => Err(Error::bad_request(format!("Couldn't {what}: {reason}"))),
        None => Ok(()),
    }
}

/// Python's `str.title()` for ASCII keys (`display_name` → `Display_Name`).
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphabetic() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_body_is_checked_as_glance_schema() {
        let ns = namespace_input(&json!({
            "namespace": "OS::X", "visibility": "public", "protected": true,
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "x_"}],
            "properties": {"p": {"title": "P", "type": "string", "enum": ["a"]}},
            "objects": [{"name": "o", "required": ["p"]}],
            "tags": [{"name": "t"}],
        }))
        .unwrap();
        assert_eq!(ns.namespace, "OS::X");
        assert_eq!(ns.tags, Some(vec!["t".to_string()]));
        assert_eq!(ns.objects.unwrap()[0].required, Some(vec!["p".to_string()]));
        let status = |b: Value| namespace_input(&b).unwrap_err().status();
        assert_eq!(status(json!({"display_name": "x"})), 400);
        assert_eq!(
            status(json!({"namespace": "a", "visibility": "shared"})),
            400
        );
        assert_eq!(status(json!({"namespace": "a", "colour": 1})), 400);
        assert_eq!(status(json!({"namespace": "a", "protected": "yes"})), 400);
        assert_eq!(status(json!({"namespace": "x".repeat(81)})), 400);
        assert_eq!(status(json!({"namespace": "a", "self": "/x"})), 403);
        assert_eq!(status(json!({"namespace": "a", "created_at": "x"})), 403);
        assert_eq!(status(json!(["namespace"])), 400);
        assert_eq!(
            status(json!({"namespace": "a", "properties": {"p": {"title": "P"}}})),
            400
        );
        assert_eq!(
            status(json!({"namespace": "a", "objects": [{"name": "o", "required": ["p", "p"]}]})),
            400
        );
    }

    #[test]
    fn property_checks_follow_the_receiving_endpoint() {
        let def = json!({"name": "p", "title": "P", "type": "string", "confidential": true});
        // `confidential` is a WSME attribute but not in the property schema.
        assert!(property_definition(&def, PropertyCheck::Nested).is_ok());
        assert_eq!(
            property_definition(&def, PropertyCheck::Single)
                .unwrap_err()
                .status(),
            400
        );
        let no_name = json!({"title": "P", "type": "integer", "minimum": 0});
        assert!(property_definition(&no_name, PropertyCheck::InObjectCreate).is_ok());
        assert!(property_definition(&no_name, PropertyCheck::Single).is_err());
        for bad in [
            json!({"name": "p", "title": "P", "type": "text"}),
            json!({"name": "p", "title": "P", "type": "string", "maxLength": -1}),
            json!({"name": "p", "title": "P", "type": "array", "items": {"enum": ["a"]}}),
            json!({"name": "p", "title": "P", "type": "string", "required": ["x"]}),
            json!({"name": "p", "title": 5, "type": "string"}),
        ] {
            assert_eq!(
                property_definition(&bad, PropertyCheck::Single)
                    .unwrap_err()
                    .status(),
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn tags_and_four_byte_characters() {
        assert_eq!(
            tags_input(&json!({"tags": [{"name": "a"}, {"name": "b"}]})).unwrap(),
            vec!["a", "b"]
        );
        assert!(tags_input(&json!({})).unwrap().is_empty());
        assert!(tags_input(&json!({"tags": [{"name": "a", "x": 1}]})).is_err());
        assert!(tag_name(&"t".repeat(81)).is_err());
        let e = no_4byte(
            &json!({"display_name": "a\u{1F600}"}),
            "create metadata namespace",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Couldn't create metadata namespace: Display_Name can't contain 4 byte unicode characters."
        );
        assert!(no_4byte(&json!({"d": "é"}), "x").is_ok());
    }

    #[test]
    fn visibility_of_a_namespace() {
        let ns = Namespace {
            id: "i".into(),
            name: "n".into(),
            display_name: None,
            description: None,
            visibility: "private".into(),
            owner: "p".into(),
            protected: false,
            created_at: 0,
            updated_at: 0,
        };
        assert!(ns.visible_to(Some("p"), false));
        assert!(!ns.visible_to(Some("q"), false));
        assert!(ns.visible_to(Some("q"), true));
        let j = ns.to_json();
        assert!(!j.contains_key("description"));
        assert_eq!(j["self"], "/v2/metadefs/namespaces/n");
    }
}
