//! The JSON schemas Glance publishes for metadefs (`/v2/schemas/metadefs/...`), built as
//! `glance.schema.Schema.raw()` and its collection forms build them.

use serde_json::{Map, Value, json};

use super::model::PROPERTY_TYPES;

/// A property type enum as Glance writes it: the six types and `null`.
fn type_enum() -> Value {
    let mut v: Vec<Value> = PROPERTY_TYPES.iter().map(|t| json!(t)).collect();
    v.push(Value::Null);
    Value::Array(v)
}

fn time_field(what: &str) -> Value {
    json!({"type": "string", "readOnly": true, "description": what, "format": "date-time"})
}

/// The schema of one property definition (the `property` definition's properties).
fn property_fields() -> Value {
    json!({
        "name": {"type": "string", "maxLength": 80},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "operators": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string", "enum": type_enum()},
        "required": {"$ref": "#/definitions/stringArray"},
        "minimum": {"type": "number"},
        "maximum": {"type": "number"},
        "maxLength": {"$ref": "#/definitions/positiveInteger"},
        "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "pattern": {"type": "string", "format": "regex"},
        "enum": {"type": "array"},
        "readonly": {"type": "boolean"},
        "default": {},
        "items": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": type_enum()},
                "enum": {"type": "array"},
            },
        },
        "maxItems": {"$ref": "#/definitions/positiveInteger"},
        "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "uniqueItems": {"type": "boolean", "default": false},
        "additionalItems": {"type": "boolean"},
    })
}

/// Definitions shared by the namespace and object schemas; `min_items` of `stringArray`
/// is 1 only in the property schema's own copy.
fn definitions(with_property: bool, string_array_min: Option<u64>) -> Value {
    let mut string_array =
        json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true});
    if let Some(n) = string_array_min {
        string_array["minItems"] = json!(n);
    }
    let mut d = json!({
        "positiveInteger": {"type": "integer", "minimum": 0},
        "positiveIntegerDefault0": {
            "allOf": [{"$ref": "#/definitions/positiveInteger"}, {"default": 0}]
        },
        "stringArray": string_array,
    });
    if with_property {
        d["property"] = json!({
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["title", "type"],
                "properties": property_fields(),
            },
        });
    }
    d
}

/// `Schema.raw()`: name, properties, no additional properties, then the optional parts.
fn raw(name: &str, properties: Value, required: &[&str], definitions: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("properties".into(), properties);
    m.insert("additionalProperties".into(), json!(false));
    if let Some(d) = definitions {
        m.insert("definitions".into(), d);
    }
    if !required.is_empty() {
        m.insert("required".into(), json!(required));
    }
    Value::Object(m)
}

fn links() -> Value {
    json!([
        {"rel": "first", "href": "{first}"},
        {"rel": "next", "href": "{next}"},
        {"rel": "describedby", "href": "{schema}"},
    ])
}

/// `CollectionSchema.raw()` (`dict` for `DictCollectionSchema`): the item schema without
/// its definitions, which move up to the collection.
fn collection(name: &str, mut item: Value, dict: bool) -> Value {
    let definitions = item.as_object_mut().and_then(|m| m.remove("definitions"));
    let inner = if dict {
        json!({"type": "object", "additionalProperties": item})
    } else {
        json!({"type": "array", "items": item})
    };
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert(
        "properties".into(),
        json!({
            name: inner,
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        }),
    );
    m.insert("links".into(), links());
    if let Some(d) = definitions {
        m.insert("definitions".into(), d);
    }
    Value::Object(m)
}

pub fn namespace() -> Value {
    let properties = json!({
        "namespace": {"type": "string", "maxLength": 80,
            "description": "The namespace's unique name."},
        "display_name": {"type": "string", "maxLength": 80,
            "description": "A friendlier name for user interfaces."},
        "description": {"type": "string", "maxLength": 500,
            "description": "What the namespace is for."},
        "visibility": {"type": "string", "enum": ["public", "private"],
            "description": "Who may see the namespace."},
        "protected": {"type": "boolean",
            "description": "Whether deleting the namespace is refused."},
        "owner": {"type": "string", "maxLength": 255,
            "description": "The project owning the namespace."},
        "created_at": time_field("When the namespace was created"),
        "updated_at": time_field("When the namespace last changed"),
        "schema": {"readOnly": true, "type": "string"},
        "self": {"readOnly": true, "type": "string"},
        "resource_type_associations": {
            "type": "array",
            "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "prefix": {"type": "string"},
                "properties_target": {"type": "string"},
            }},
        },
        "properties": {"$ref": "#/definitions/property"},
        "objects": {
            "type": "array",
            "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "required": {"$ref": "#/definitions/stringArray"},
                "properties": {"$ref": "#/definitions/property"},
            }},
        },
        "tags": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    });
    raw(
        "namespace",
        properties,
        &["namespace"],
        Some(definitions(true, None)),
    )
}

pub fn namespaces() -> Value {
    collection("namespaces", namespace(), false)
}

pub fn resource_type() -> Value {
    let properties = json!({
        "name": {"type": "string", "maxLength": 80,
            "description": "The resource type, named as Heat names resource types where it can."},
        "prefix": {"type": "string", "maxLength": 80,
            "description": "Prefix of the namespace's properties when applied to this resource type, separator included (e.g. a colon)."},
        "properties_target": {"type": "string", "maxLength": 80,
            "description": "Which of the resource's key/value sets the properties apply to, where it has several."},
        "created_at": time_field("When the association was created"),
        "updated_at": time_field("When the association last changed"),
    });
    raw("resource_type_association", properties, &["name"], None)
}

pub fn resource_types() -> Value {
    collection("resource_type_associations", resource_type(), false)
}

pub fn property() -> Value {
    raw(
        "property",
        property_fields(),
        &["title", "type", "name"],
        Some(definitions(false, Some(1))),
    )
}

pub fn properties() -> Value {
    let item = raw(
        "property",
        property_fields(),
        &["title", "type"],
        Some(definitions(false, Some(1))),
    );
    collection("properties", item, true)
}

pub fn object() -> Value {
    let properties = json!({
        "name": {"type": "string", "maxLength": 80},
        "description": {"type": "string"},
        "required": {"$ref": "#/definitions/stringArray"},
        "properties": {"$ref": "#/definitions/property"},
        "schema": {"readOnly": true, "type": "string"},
        "self": {"readOnly": true, "type": "string"},
        "created_at": time_field("When the object was created"),
        "updated_at": time_field("When the object last changed"),
    });
    raw(
        "object",
        properties,
        &["name"],
        Some(definitions(true, None)),
    )
}

pub fn objects() -> Value {
    collection("objects", object(), false)
}

pub fn tag() -> Value {
    let properties = json!({
        "name": {"type": "string", "maxLength": 80},
        "created_at": time_field("When the tag was created"),
        "updated_at": time_field("When the tag last changed"),
    });
    raw("tag", properties, &["name"], None)
}

pub fn tags() -> Value {
    collection("tags", tag(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_tempest_expects_and_definitions_move_up() {
        for (schema, name) in [
            (namespace(), "namespace"),
            (namespaces(), "namespaces"),
            (resource_type(), "resource_type_association"),
            (resource_types(), "resource_type_associations"),
            (property(), "property"),
            (properties(), "properties"),
            (object(), "object"),
            (objects(), "objects"),
            (tag(), "tag"),
            (tags(), "tags"),
        ] {
            assert_eq!(schema["name"], name);
        }
        let c = namespaces();
        assert!(c["definitions"]["property"].is_object());
        assert!(c["properties"]["namespaces"]["items"]["definitions"].is_null());
        assert_eq!(properties()["properties"]["properties"]["type"], "object");
        assert_eq!(property()["required"], json!(["title", "type", "name"]));
    }
}
