//! Request validation against Nova's JSON schemas, with Nova's words.
//!
//! Nova validates every body and query string with jsonschema (Draft 2020-12) plus a few
//! extensions of its own (nova/api/validation/validators.py): `minimum`/`maximum` also apply
//! to strings that hold numbers, and the `name` format answers with `InvalidName`'s message.
//! The schemas themselves are transcribed as data in [`crate::schemas`]; this module
//! evaluates the subset of keywords they use and words the first failure as upstream does:
//! `Invalid input for field/attribute <field>. Value: <value>. <jsonschema message>` for a
//! body, `Invalid input for query parameters <param>. ...` for a query string, and the bare
//! jsonschema message when the failure is at the top level. Values are printed the way
//! Python prints them (`'abc'`, `True`, `None`, `{'a': 1}`), since clients and Tempest read
//! these messages.
//!
//! It does not know about resources or microversions; callers pick the schema.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use fancy_regex::Regex;
use serde_json::{Map, Value};

use crate::fault::Fault;

/// One step of the path to a failing value.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Key(k) => f.write_str(k),
            Step::Index(i) => write!(f, "{i}"),
        }
    }
}

/// The first failure found.
#[derive(Debug)]
struct Failure {
    path: Vec<Step>,
    instance: Value,
    message: String,
    /// Set when a `name` format failed: upstream answers with this message alone.
    invalid_name: Option<String>,
}

/// Characters upstream's `_build_regex_range` counts as printable: no control, format,
/// unassigned, private-use or surrogate code point, no line or paragraph separator, and only
/// the Basic Multilingual Plane below U+FFFF (it iterates `range(0xFFFF)`).
const PRINTABLE: &str = r"[^\p{C}\p{Zl}\p{Zp}\x{FFFF}-\x{10FFFF}]";
/// Not printable, or a space separator (`ws=False, invert=True`).
const NOT_PRINTABLE_OR_SPACE: &str = r"[\p{C}\p{Z}\x{FFFF}-\x{10FFFF}]";

/// `valid_description_regex`: printable characters only.
pub static DESCRIPTION_PATTERN: LazyLock<String> = LazyLock::new(|| format!("^{PRINTABLE}*$"));

/// `valid_name_regex`: printable, not starting or ending with whitespace.
static NAME_PATTERN: LazyLock<String> = LazyLock::new(|| {
    format!("^(?!{NOT_PRINTABLE_OR_SPACE}){PRINTABLE}*(?<!{NOT_PRINTABLE_OR_SPACE})$")
});

const NAME_REASON: &str = "printable characters. Can not start or end with whitespace.";

/// Printable and not a space separator.
const PRINTABLE_NOT_SPACE: &str = r"[^\p{C}\p{Z}\x{FFFF}-\x{10FFFF}]";
/// [`PRINTABLE`] and [`PRINTABLE_NOT_SPACE`] without `:` (zone names).
const PRINTABLE_NO_COLON: &str = r"[^\p{C}\p{Zl}\p{Zp}\x{FFFF}-\x{10FFFF}:]";
const PRINTABLE_NOT_SPACE_NO_COLON: &str = r"[^\p{C}\p{Z}\x{FFFF}-\x{10FFFF}:]";

/// `valid_az_name_regex`: as a name, without `:`.
static AZ_NAME_PATTERN: LazyLock<String> = LazyLock::new(|| {
    format!("^(?!{NOT_PRINTABLE_OR_SPACE}){PRINTABLE_NO_COLON}*(?<!{NOT_PRINTABLE_OR_SPACE})$")
});

const AZ_NAME_REASON: &str = "printable characters except :.Can not start or end with whitespace.";

/// `valid_name_leading_trailing_spaces_regex`: printable, at least one character not a space.
static SPACED_NAME_PATTERN: LazyLock<String> =
    LazyLock::new(|| format!("^{PRINTABLE}*{PRINTABLE_NOT_SPACE}{PRINTABLE}*$"));

const SPACED_NAME_REASON: &str = "printable characters with at least one non space character";

/// `valid_az_name_leading_trailing_spaces_regex`: the same without `:`.
static SPACED_AZ_NAME_PATTERN: LazyLock<String> = LazyLock::new(|| {
    format!("^{PRINTABLE_NO_COLON}*{PRINTABLE_NOT_SPACE_NO_COLON}{PRINTABLE_NO_COLON}*$")
});

const SPACED_AZ_NAME_REASON: &str =
    "printable characters except :, with at least one non space character";

static REGEXES: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Python's `re.search(pattern, text)`; a pattern that does not compile matches nothing.
pub fn search(pattern: &str, text: &str) -> bool {
    let mut cache = match REGEXES.lock() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref()
        .is_some_and(|re| re.is_match(text).unwrap_or(false))
}

/// Python's `repr()` of a JSON value.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `str()` of a JSON value: strings bare, everything else as `repr`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        // jsonschema counts 1.0 as an integer.
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        _ => false,
    }
}

/// Nova's `_number_from_str`: the number a value holds (a number, or a string that Python's
/// `int()` or `float()` accepts), for `minimum`/`maximum`.
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => {
            // int(1.7) == 1 upstream: a float compared against a minimum is truncated.
            let f = n.as_f64()?;
            Some(if n.is_f64() { f.trunc() } else { f })
        }
        Value::String(s) => {
            let t = s.trim();
            let t = t.strip_prefix('+').unwrap_or(t);
            if let Ok(i) = t.replace('_', "").parse::<i64>() {
                return Some(i as f64);
            }
            t.parse::<f64>().ok().filter(|f| f.is_finite())
        }
        _ => None,
    }
}

/// JSON equality as jsonschema's `equal`: booleans never equal numbers; 1 equals 1.0.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn number_repr(v: &Value) -> String {
    py_repr(v)
}

struct Validator<'a> {
    path: Vec<Step>,
    _schema: &'a Value,
}

impl Validator<'_> {
    fn fail(&self, instance: &Value, message: String) -> Failure {
        Failure {
            path: self.path.clone(),
            instance: instance.clone(),
            message,
            invalid_name: None,
        }
    }

    fn check(&mut self, schema: &Value, v: &Value) -> Result<(), Failure> {
        let Value::Object(s) = schema else {
            // `true` accepts everything, `false` nothing.
            return match schema {
                Value::Bool(false) => {
                    Err(self.fail(v, format!("False schema does not allow {}", py_repr(v))))
                }
                _ => Ok(()),
            };
        };
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.iter().any(|t| type_matches(t, v)) {
                let names: Vec<String> = types.iter().map(|t| format!("'{t}'")).collect();
                return Err(self.fail(
                    v,
                    format!("{} is not of type {}", py_repr(v), names.join(", ")),
                ));
            }
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.iter().any(|o| json_equal(o, v))
        {
            return Err(self.fail(
                v,
                format!(
                    "{} is not one of {}",
                    py_repr(v),
                    py_repr(&Value::Array(options.clone()))
                ),
            ));
        }
        if let Some(c) = s.get("const")
            && !json_equal(c, v)
        {
            return Err(self.fail(v, format!("{} was expected", py_repr(c))));
        }
        if let Some(Value::String(format)) = s.get("format") {
            self.check_format(format, v)?;
        }
        if let Value::String(text) = v {
            if let Some(Value::String(p)) = s.get("pattern")
                && !search(p, text)
            {
                return Err(self.fail(
                    v,
                    format!("{} does not match {}", py_repr(v), py_str_repr(p)),
                ));
            }
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                let what = if min == 1 {
                    "should be non-empty"
                } else {
                    "is too short"
                };
                return Err(self.fail(v, format!("{} {what}", py_repr(v))));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                let what = if max == 0 {
                    "is expected to be empty"
                } else {
                    "is too long"
                };
                return Err(self.fail(v, format!("{} {what}", py_repr(v))));
            }
        }
        if let Some(min) = s.get("minimum")
            && let (Some(n), Some(m)) = (as_number(v), min.as_f64())
            && n < m
        {
            return Err(self.fail(
                v,
                format!(
                    "{} is less than the minimum of {}",
                    shown_number(v, n),
                    number_repr(min)
                ),
            ));
        }
        if let Some(min) = s.get("exclusiveMinimum")
            && let (Value::Number(n), Some(m)) = (v, min.as_f64())
            && n.as_f64().is_some_and(|n| n <= m)
        {
            return Err(self.fail(
                v,
                format!(
                    "{} is less than or equal to the minimum of {}",
                    py_repr(v),
                    number_repr(min)
                ),
            ));
        }
        if let Some(max) = s.get("maximum")
            && let (Some(n), Some(m)) = (as_number(v), max.as_f64())
            && n > m
        {
            return Err(self.fail(
                v,
                format!(
                    "{} is greater than the maximum of {}",
                    shown_number(v, n),
                    number_repr(max)
                ),
            ));
        }
        if let Value::Object(obj) = v {
            self.check_object(s, obj, v)?;
        }
        if let Value::Array(items) = v {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Step::Index(i));
                    self.check(item_schema, item)?;
                    self.path.pop();
                }
            }
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                let what = if min == 1 {
                    "should be non-empty"
                } else {
                    "is too short"
                };
                return Err(self.fail(v, format!("{} {what}", py_repr(v))));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                let what = if max == 0 {
                    "is expected to be empty"
                } else {
                    "is too long"
                };
                return Err(self.fail(v, format!("{} {what}", py_repr(v))));
            }
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for sub in all {
                self.check(sub, v)?;
            }
        }
        if let Some(Value::Array(any)) = s.get("anyOf")
            && !any.iter().any(|sub| self.passes(sub, v))
        {
            return Err(self.fail(
                v,
                format!("{} is not valid under any of the given schemas", py_repr(v)),
            ));
        }
        if let Some(Value::Array(one)) = s.get("oneOf") {
            let n = one.iter().filter(|sub| self.passes(sub, v)).count();
            if n == 0 {
                return Err(self.fail(
                    v,
                    format!("{} is not valid under any of the given schemas", py_repr(v)),
                ));
            }
            if n > 1 {
                return Err(self.fail(
                    v,
                    format!("{} is valid under each of the given schemas", py_repr(v)),
                ));
            }
        }
        Ok(())
    }

    fn passes(&self, schema: &Value, v: &Value) -> bool {
        let mut sub = Validator {
            path: self.path.clone(),
            _schema: schema,
        };
        sub.check(schema, v).is_ok()
    }

    fn check_format(&self, format: &str, v: &Value) -> Result<(), Failure> {
        let names: Option<(&str, &str)> = match format {
            "name" => Some((NAME_PATTERN.as_str(), NAME_REASON)),
            "az_name" => Some((AZ_NAME_PATTERN.as_str(), AZ_NAME_REASON)),
            "name_with_leading_trailing_spaces" => {
                Some((SPACED_NAME_PATTERN.as_str(), SPACED_NAME_REASON))
            }
            "az_name_with_leading_trailing_spaces" => {
                Some((SPACED_AZ_NAME_PATTERN.as_str(), SPACED_AZ_NAME_REASON))
            }
            _ => None,
        };
        if let Some((pattern, reason)) = names {
            if !v.as_str().is_some_and(|s| search(pattern, s)) {
                let mut f = self.fail(v, String::new());
                f.invalid_name = Some(format!(
                    "An invalid 'name' value was provided. The name must be: {reason}"
                ));
                return Err(f);
            }
            return Ok(());
        }
        match format {
            "uuid" => match v {
                Value::String(s) if uuid::Uuid::parse_str(s).is_err() => {
                    Err(self.fail(v, format!("{} is not a 'uuid'", py_repr(v))))
                }
                _ => Ok(()),
            },
            // jsonschema's draft-4 checkers, which parse with Python's `ipaddress`.
            "ipv4" => match v {
                Value::String(s) if s.parse::<std::net::Ipv4Addr>().is_err() => {
                    Err(self.fail(v, format!("{} is not a 'ipv4'", py_repr(v))))
                }
                _ => Ok(()),
            },
            "ipv6" => match v {
                Value::String(s) if s.parse::<std::net::Ipv6Addr>().is_err() => {
                    Err(self.fail(v, format!("{} is not a 'ipv6'", py_repr(v))))
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn check_object(
        &mut self,
        s: &Map<String, Value>,
        obj: &Map<String, Value>,
        v: &Value,
    ) -> Result<(), Failure> {
        let properties = s.get("properties").and_then(Value::as_object);
        let patterns = s.get("patternProperties").and_then(Value::as_object);
        if let Some(props) = properties {
            for (name, sub) in props {
                if let Some(value) = obj.get(name) {
                    self.path.push(Step::Key(name.clone()));
                    self.check(sub, value)?;
                    self.path.pop();
                }
            }
        }
        if let Some(pats) = patterns {
            for (pattern, sub) in pats {
                for (name, value) in obj {
                    if search(pattern, name) {
                        self.path.push(Step::Key(name.clone()));
                        self.check(sub, value)?;
                        self.path.pop();
                    }
                }
            }
        }
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(self.fail(v, format!("'{r}' is a required property")));
                }
            }
        }
        if let Some(additional) = s.get("additionalProperties") {
            let extras: Vec<&String> = obj
                .keys()
                .filter(|k| !properties.is_some_and(|p| p.contains_key(*k)))
                .filter(|k| !patterns.is_some_and(|p| p.keys().any(|pat| search(pat, k))))
                .collect();
            match additional {
                Value::Bool(false) if !extras.is_empty() => {
                    if let Some(pats) = patterns {
                        let mut names: Vec<String> =
                            extras.iter().map(|e| py_str_repr(e)).collect();
                        names.sort();
                        let mut regexes: Vec<String> =
                            pats.keys().map(|p| py_str_repr(p)).collect();
                        regexes.sort();
                        let verb = if names.len() == 1 { "does" } else { "do" };
                        return Err(self.fail(
                            v,
                            format!(
                                "{} {verb} not match any of the regexes: {}",
                                names.join(", "),
                                regexes.join(", ")
                            ),
                        ));
                    }
                    let verb = if extras.len() == 1 { "was" } else { "were" };
                    let names: Vec<String> = extras.iter().map(|e| py_str_repr(e)).collect();
                    return Err(self.fail(
                        v,
                        format!(
                            "Additional properties are not allowed ({} {verb} unexpected)",
                            names.join(", ")
                        ),
                    ));
                }
                Value::Object(_) => {
                    for name in extras {
                        self.path.push(Step::Key(name.clone()));
                        self.check(additional, &obj[name])?;
                        self.path.pop();
                    }
                }
                _ => {}
            }
        }
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
            && (obj.len() as u64) < min
        {
            let what = if min == 1 {
                "should be non-empty".to_string()
            } else {
                "does not have enough properties".to_string()
            };
            return Err(self.fail(v, format!("{} {what}", py_repr(v))));
        }
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
            && (obj.len() as u64) > max
        {
            let what = if max == 0 {
                "is expected to be empty"
            } else {
                "has too many properties"
            };
            return Err(self.fail(v, format!("{} {what}", py_repr(v))));
        }
        Ok(())
    }
}

/// How a number Nova compared is printed: the original value for numbers, the converted one
/// for numeric strings (upstream compares `int('-5')`, and jsonschema prints that).
fn shown_number(v: &Value, n: f64) -> String {
    match v {
        Value::String(_) if n.fract() == 0.0 && n.abs() < 9.0e15 => format!("{}", n as i64),
        Value::String(_) => format!("{n}"),
        other => py_repr(other),
    }
}

fn run(schema: &Value, instance: &Value) -> Result<(), Failure> {
    let mut v = Validator {
        path: Vec::new(),
        _schema: schema,
    };
    v.check(schema, instance)
}

/// Validates a request body; the fault is upstream's 400.
pub fn validate_body(schema: &Value, body: &Value) -> Result<(), Fault> {
    run(schema, body).map_err(|f| {
        if let Some(m) = f.invalid_name {
            return Fault::bad_request(m);
        }
        match f.path.last() {
            Some(last) => Fault::bad_request(format!(
                "Invalid input for field/attribute {last}. Value: {}. {}",
                py_str(&f.instance),
                f.message
            )),
            None => Fault::bad_request(f.message),
        }
    })
}

/// Query parameters as Nova's query schemas see them: every key with the list of its values.
pub fn query_document(params: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (k, v) in params {
        let entry = map
            .entry(k.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.push(Value::String(v.clone()));
        }
    }
    Value::Object(map)
}

/// Validates a query string; the fault is upstream's 400.
pub fn validate_query(schema: &Value, params: &[(String, String)]) -> Result<(), Fault> {
    run(schema, &query_document(params)).map_err(|f| {
        if let Some(m) = f.invalid_name {
            return Fault::bad_request(m);
        }
        match f.path.first() {
            Some(first) => Fault::bad_request(format!(
                "Invalid input for query parameters {first}. Value: {}. {}",
                py_str(&f.instance),
                f.message
            )),
            None => Fault::bad_request(f.message),
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body_err(schema: Value, body: Value) -> String {
        validate_body(&schema, &body).unwrap_err().message()
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_repr(&json!("a'b")), "\"a'b\"");
        assert_eq!(
            py_repr(&json!({"a": [1, true, null]})),
            "{'a': [1, True, None]}"
        );
        assert_eq!(py_repr(&json!(1.5)), "1.5");
    }

    #[test]
    fn messages_as_upstream() {
        let s = json!({"type": "object", "properties": {"flavor": {
            "type": "object",
            "properties": {"ram": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1}},
            "required": ["ram"], "additionalProperties": false}},
            "required": ["flavor"], "additionalProperties": false});
        assert_eq!(
            body_err(s.clone(), json!({"flavor": {"ram": 0}})),
            "Invalid input for field/attribute ram. Value: 0. 0 is less than the minimum of 1"
        );
        assert_eq!(
            body_err(s.clone(), json!({"flavor": {"ram": "x"}})),
            "Invalid input for field/attribute ram. Value: x. 'x' does not match '^[0-9]+$'"
        );
        assert_eq!(
            body_err(s.clone(), json!({"flavor": {}})),
            "Invalid input for field/attribute flavor. Value: {}. 'ram' is a required property"
        );
        assert_eq!(
            body_err(s.clone(), json!({"flavor": {"ram": 1, "x": 1}})),
            "Invalid input for field/attribute flavor. Value: {'ram': 1, 'x': 1}. Additional properties are not allowed ('x' was unexpected)"
        );
        assert_eq!(
            body_err(s.clone(), Value::Null),
            "None is not of type 'object'"
        );
        assert_eq!(
            body_err(s, json!({"flavor": {"ram": true}})),
            "Invalid input for field/attribute ram. Value: True. True is not of type 'integer', 'string'"
        );
    }

    #[test]
    fn string_numbers_meet_minimum_and_maximum() {
        let s = json!({"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1, "maximum": 10});
        assert!(validate_body(&s, &json!("5")).is_ok());
        assert!(validate_body(&s, &json!("-2")).is_err());
        assert!(validate_body(&s, &json!("11")).is_err());
        assert!(validate_body(&s, &json!(1.0)).is_ok());
    }

    #[test]
    fn names_must_be_printable_without_outer_spaces() {
        let s = json!({"type": "string", "format": "name", "minLength": 1, "maxLength": 255});
        assert!(validate_body(&s, &json!("m1.tiny flavor")).is_ok());
        assert!(validate_body(&s, &json!("Ünïcode ok")).is_ok());
        for bad in [" lead", "trail ", "tab\there", "\u{2028}", "nul\u{0}"] {
            let e = validate_body(&s, &json!(bad)).unwrap_err();
            assert!(
                e.message()
                    .starts_with("An invalid 'name' value was provided."),
                "{bad:?}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn query_messages_name_the_parameter() {
        let s = json!({"type": "object", "properties": {
            "limit": {"type": "array", "items": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0, "minLength": 1}}},
            "additionalProperties": false});
        let q = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(
            validate_query(&s, &q("limit", "-1")).unwrap_err().message(),
            "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'"
        );
        assert_eq!(
            validate_query(&s, &q("colour", "red"))
                .unwrap_err()
                .message(),
            "Additional properties are not allowed ('colour' was unexpected)"
        );
        assert!(validate_query(&s, &q("limit", "3")).is_ok());
    }

    #[test]
    fn pattern_properties_and_their_extras() {
        let s = json!({"type": "object",
            "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": ["string", "number"], "maxLength": 255}},
            "additionalProperties": false});
        assert!(validate_body(&s, &json!({"hw:cpu_policy": "dedicated", "n": 1})).is_ok());
        assert_eq!(
            body_err(s.clone(), json!({"bad/key": "x"})),
            "'bad/key' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'"
        );
        assert!(body_err(s, json!({"k": true})).contains("True is not of type"));
    }
}
