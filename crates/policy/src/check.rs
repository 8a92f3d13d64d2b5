//! Evaluation of a [`Check`] tree against a target and a creds dict, following
//! upstream `oslo_policy/_checks.py`, including the Python string conversions the
//! checks rely on (`str()` of values, `%`-formatting of the match with the target).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::parser::Check;

/// Deepest evaluation recursion (tree nesting plus `rule:` indirection) before the
/// whole enforcement is abandoned. Upstream would hit Python's recursion limit.
const MAX_EVAL_DEPTH: usize = 512;

/// Deepest JSON nesting walked when converting or looking up values.
const MAX_VALUE_DEPTH: usize = 128;

/// Evaluation could not complete. Upstream this is an exception escaping
/// `Enforcer.enforce` (e.g. a `TypeError` from formatting, a `RecursionError` from a
/// rule cycle), which fails the request; here it fails the enforcement closed, and
/// it is never turned into `false` inside a `not`.
#[derive(Debug)]
pub(crate) struct Abort;

type Eval = Result<bool, Abort>;

/// One enforcement's evaluation state: rule lookups are memoised per call, and a
/// rule that is re-entered while being evaluated (a cycle) aborts.
pub(crate) struct Evaluator<'a> {
    lookup: &'a dyn Fn(&str) -> Option<&'a Check>,
    target: &'a Value,
    creds: &'a Value,
    memo: HashMap<String, bool>,
    in_progress: HashSet<String>,
}

impl<'a> Evaluator<'a> {
    /// `lookup` resolves `rule:NAME` (including the fall back to the `default` rule).
    pub(crate) fn new(
        lookup: &'a dyn Fn(&str) -> Option<&'a Check>,
        target: &'a Value,
        creds: &'a Value,
    ) -> Self {
        Evaluator {
            lookup,
            target,
            creds,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
        }
    }

    pub(crate) fn eval(&mut self, check: &Check) -> Eval {
        self.eval_at(check, 0)
    }

    fn eval_at(&mut self, check: &Check, depth: usize) -> Eval {
        if depth > MAX_EVAL_DEPTH {
            return Err(Abort);
        }
        match check {
            Check::True => Ok(true),
            Check::False => Ok(false),
            // Remote (http/https) checks are not supported: fail closed.
            Check::Remote { .. } => Ok(false),
            Check::Not(inner) => Ok(!self.eval_at(inner, depth + 1)?),
            Check::And(rules) => {
                for rule in rules {
                    if !self.eval_at(rule, depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Check::Or(rules) => {
                for rule in rules {
                    if self.eval_at(rule, depth + 1)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Check::Rule(name) => self.eval_rule(name, depth),
            Check::Role(matched) => self.role_check(matched),
            Check::Generic { kind, value } => self.generic_check(kind, value),
        }
    }

    /// Upstream `RuleCheck`: a missing rule (after the `default` fall back) is false.
    fn eval_rule(&mut self, name: &str, depth: usize) -> Eval {
        if let Some(&known) = self.memo.get(name) {
            return Ok(known);
        }
        let lookup = self.lookup;
        let Some(check) = lookup(name) else {
            return Ok(false);
        };
        if !self.in_progress.insert(name.to_owned()) {
            return Err(Abort);
        }
        let result = self.eval_at(check, depth + 1);
        self.in_progress.remove(name);
        let result = result?;
        self.memo.insert(name.to_owned(), result);
        Ok(result)
    }

    /// Upstream `RoleCheck`: substitute the target into the role name, then compare it
    /// case-insensitively with every role in the creds.
    fn role_check(&self, matched: &str) -> Eval {
        let Some(wanted) = py_format(matched, self.target)? else {
            return Ok(false);
        };
        let wanted = wanted.to_lowercase();
        let Some(roles) = self.creds.get("roles") else {
            return Ok(false);
        };
        let Value::Array(roles) = roles else {
            return Err(Abort);
        };
        for role in roles {
            let Value::String(role) = role else {
                return Err(Abort);
            };
            if role.to_lowercase() == wanted {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Upstream `GenericCheck`: `%`-format the match with the target (a missing key is
    /// false); if the kind is a Python literal compare it with the result, otherwise
    /// walk the kind as a dotted path through the creds.
    fn generic_check(&self, kind: &str, value: &str) -> Eval {
        let Some(matched) = py_format(value, self.target)? else {
            return Ok(false);
        };
        if let Some(literal) = py_literal_str(kind) {
            return Ok(matched == literal);
        }
        let path: Vec<&str> = kind.split('.').collect();
        find_in_creds(self.creds, &path, &matched, 0)
    }
}

/// Upstream `GenericCheck._find_in_dict`: descend one path segment at a time; a list
/// matches if any element matches the rest of the path; at the end compare `str()`.
fn find_in_creds(value: &Value, path: &[&str], matched: &str, depth: usize) -> Eval {
    if depth > MAX_VALUE_DEPTH {
        return Err(Abort);
    }
    let Some((key, rest)) = path.split_first() else {
        return Ok(matched == py_str(value));
    };
    // Indexing a non-mapping with a string raises TypeError upstream.
    let Value::Object(map) = value else {
        return Err(Abort);
    };
    let Some(next) = map.get(*key) else {
        return Ok(false);
    };
    if let Value::Array(items) = next {
        for item in items {
            if find_in_creds(item, rest, matched, depth + 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    } else {
        find_in_creds(next, rest, matched, depth + 1)
    }
}

/// `str(ast.literal_eval(kind))` for the literals a check's left side can hold:
/// quoted strings, `True`/`False`/`None`, integers and floats (optionally signed).
/// Anything else is not a literal and is looked up in the creds instead (upstream
/// treats `ValueError` that way; the rarer `SyntaxError` cases fall there too).
fn py_literal_str(kind: &str) -> Option<String> {
    match kind {
        "True" | "False" | "None" => return Some(kind.to_owned()),
        _ => {}
    }
    if let Some(s) = py_string_literal(kind) {
        return Some(s);
    }
    py_number_literal(kind)
}

/// A single Python string literal in `'...'` or `"..."` with the common escapes.
fn py_string_literal(kind: &str) -> Option<String> {
    let quote = kind.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = kind.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                other => {
                    // Unknown escapes are kept verbatim by Python.
                    out.push('\\');
                    out.push(other);
                }
            },
            c if c == quote => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A signed Python int or float literal, rendered as `str()` of its value.
fn py_number_literal(kind: &str) -> Option<String> {
    let (negative, digits) = match kind.as_bytes().first()? {
        b'-' => (true, &kind[1..]),
        b'+' => (false, &kind[1..]),
        _ => (false, kind),
    };
    let first = digits.chars().next()?;
    if !(first.is_ascii_digit() || first == '.') {
        return None;
    }
    if !digits
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '_' | '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    // Python forbids a leading underscore, a trailing one, or two in a row.
    if digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let cleaned = digits.replace('_', "");
    let is_int = cleaned.chars().all(|c| c.is_ascii_digit());
    if is_int {
        // Python 3 rejects leading zeros on non-zero ints.
        if cleaned.len() > 1 && cleaned.starts_with('0') && cleaned.chars().any(|c| c != '0') {
            return None;
        }
        let trimmed = cleaned.trim_start_matches('0');
        let magnitude = if trimmed.is_empty() { "0" } else { trimmed };
        let sign = if negative && magnitude != "0" {
            "-"
        } else {
            ""
        };
        return Some(format!("{sign}{magnitude}"));
    }
    let value: f64 = cleaned.parse().ok()?;
    Some(py_float(if negative { -value } else { value }))
}

/// Python `repr(float)`: shortest round-trip digits, scientific notation when the
/// exponent is below -4 or at least 16, exponent written with a sign and two digits.
fn py_float(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `Debug` uses the same shortest digits and the same thresholds.
    let debug = format!("{value:?}");
    match debug.split_once('e') {
        None => debug,
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let mantissa = mantissa.strip_suffix(".0").unwrap_or(mantissa);
            format!("{mantissa}e{sign}{digits:0>2}")
        }
    }
}

fn py_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        n.as_f64().map_or_else(|| n.to_string(), py_float)
    }
}

/// Python `str()` of a JSON value as `json.loads` would have produced it.
pub(crate) fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            py_repr_into(other, &mut out, 0);
            out
        }
    }
}

/// Python `repr()` of a JSON value.
fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    py_repr_into(value, &mut out, 0);
    out
}

fn py_repr_into(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_VALUE_DEPTH {
        out.push_str("...");
        return;
    }
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => py_str_repr_into(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr_into(item, out, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str_repr_into(key, out);
                out.push_str(": ");
                py_repr_into(item, out, depth + 1);
            }
            out.push('}');
        }
    }
}

/// Python `repr(str)`: single quotes unless the text has `'` and no `"`.
fn py_str_repr_into(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
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
}

/// `fmt % target` for the forms policy rules use: `%(key)s`, `%(key)r`, `%(key)d`
/// (also `i`, `u`, `a`) and `%%`. `Ok(None)` is upstream's `KeyError` (the check is
/// false); anything Python would raise another exception for aborts.
pub(crate) fn py_format(fmt: &str, target: &Value) -> Result<Option<String>, Abort> {
    if !fmt.contains('%') {
        return Ok(Some(fmt.to_owned()));
    }
    let mut out = String::with_capacity(fmt.len());
    let mut chars = fmt.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some((start, next)) = chars.next() else {
            return Err(Abort); // "incomplete format"
        };
        if next == '%' {
            out.push('%');
            continue;
        }
        if next != '(' {
            // Positional conversions (or flags/width) with a mapping argument are
            // not used by policy rules; refuse rather than guess.
            return Err(Abort);
        }
        // Python counts nested parentheses inside the key.
        let key_start = start + 1;
        let mut level = 1usize;
        let mut key_end = None;
        for (i, kc) in chars.by_ref() {
            match kc {
                '(' => level += 1,
                ')' => {
                    level -= 1;
                    if level == 0 {
                        key_end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(key_end) = key_end else {
            return Err(Abort); // "incomplete format key"
        };
        let key = &fmt[key_start..key_end];
        let Some((_, conversion)) = chars.next() else {
            return Err(Abort);
        };
        let Some(value) = lookup_target(target, key, 0) else {
            return Ok(None);
        };
        match conversion {
            's' => out.push_str(&py_str(value)),
            'r' | 'a' => out.push_str(&py_repr(value)),
            'd' | 'i' | 'u' => match value {
                Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        out.push_str(&i.to_string());
                    } else if let Some(u) = n.as_u64() {
                        out.push_str(&u.to_string());
                    } else {
                        let f = n.as_f64().ok_or(Abort)?.trunc();
                        out.push_str(&format!("{f:.0}"));
                    }
                }
                _ => return Err(Abort),
            },
            _ => return Err(Abort),
        }
    }
    Ok(Some(out))
}

/// `target[key]` where keystone has flattened the target with dotted keys: accepts
/// the flat key itself, or the same dotted path through nested objects (or any mix).
/// Mappings are never leaves, since keystone's `flatten_dict` dissolves them.
pub(crate) fn lookup_target<'v>(target: &'v Value, key: &str, depth: usize) -> Option<&'v Value> {
    if depth > MAX_VALUE_DEPTH {
        return None;
    }
    let Value::Object(map) = target else {
        return None;
    };
    if let Some(value) = map.get(key)
        && !value.is_object()
    {
        return Some(value);
    }
    for (i, _) in key.match_indices('.') {
        if let Some(inner @ Value::Object(_)) = map.get(&key[..i])
            && let Some(found) = lookup_target(inner, &key[i + 1..], depth + 1)
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_str_of_values() {
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(false)), "False");
        assert_eq!(py_str(&json!(5)), "5");
        assert_eq!(py_str(&json!(-5)), "-5");
        assert_eq!(py_str(&json!(1.0)), "1.0");
        assert_eq!(py_str(&json!(0.1)), "0.1");
        assert_eq!(py_str(&json!(1e16)), "1e+16");
        assert_eq!(py_str(&json!(1e15)), "1000000000000000.0");
        assert_eq!(py_str(&json!(0.0001)), "0.0001");
        assert_eq!(py_str(&json!(0.00001)), "1e-05");
        assert_eq!(py_str(&json!(1.5e-7)), "1.5e-07");
        assert_eq!(py_str(&json!("a'b")), "a'b");
        assert_eq!(py_str(&json!(["a", 1, null])), "['a', 1, None]");
        assert_eq!(py_str(&json!(["it's"])), "[\"it's\"]");
        assert_eq!(py_str(&json!({"k": [true]})), "{'k': [True]}");
    }

    #[test]
    fn python_literals() {
        assert_eq!(py_literal_str("True").as_deref(), Some("True"));
        assert_eq!(py_literal_str("None").as_deref(), Some("None"));
        assert_eq!(py_literal_str("'Member'").as_deref(), Some("Member"));
        assert_eq!(py_literal_str("\"x y\"").as_deref(), Some("x y"));
        assert_eq!(py_literal_str("'a\\'b'").as_deref(), Some("a'b"));
        assert_eq!(py_literal_str("1").as_deref(), Some("1"));
        assert_eq!(py_literal_str("-0").as_deref(), Some("0"));
        assert_eq!(py_literal_str("1_000").as_deref(), Some("1000"));
        assert_eq!(py_literal_str("1.50").as_deref(), Some("1.5"));
        assert_eq!(py_literal_str("1e3").as_deref(), Some("1000.0"));
        for not_literal in [
            "user_id",
            "token.domain.id",
            "true",
            "01",
            "1__0",
            "'a",
            "'a'b'",
            "",
        ] {
            assert_eq!(py_literal_str(not_literal), None, "{not_literal:?}");
        }
    }

    #[test]
    fn python_percent_format() {
        let target = json!({
            "user_id": "u1",
            "target.user.domain_id": "d1",
            "target": {"project": {"id": "p1", "tags": ["a"]}, "n": 3, "meta": {"x": 1}},
            "a(b)": "nested-paren-key",
        });
        let fmt = |f: &str| py_format(f, &target);
        assert_eq!(fmt("plain").unwrap().as_deref(), Some("plain"));
        assert_eq!(fmt("%(user_id)s").unwrap().as_deref(), Some("u1"));
        assert_eq!(fmt("x-%(user_id)s-%%").unwrap().as_deref(), Some("x-u1-%"));
        assert_eq!(
            fmt("%(target.user.domain_id)s").unwrap().as_deref(),
            Some("d1")
        );
        assert_eq!(fmt("%(target.project.id)s").unwrap().as_deref(), Some("p1"));
        assert_eq!(
            fmt("%(target.project.tags)s").unwrap().as_deref(),
            Some("['a']")
        );
        assert_eq!(fmt("%(target.n)d").unwrap().as_deref(), Some("3"));
        assert_eq!(fmt("%(user_id)r").unwrap().as_deref(), Some("'u1'"));
        assert_eq!(
            fmt("%(a(b))s").unwrap().as_deref(),
            Some("nested-paren-key")
        );
        // Missing keys, and mappings (flattened away by keystone), are KeyError.
        assert_eq!(fmt("%(missing)s").unwrap(), None);
        assert_eq!(fmt("%(target.meta)s").unwrap(), None);
        assert_eq!(fmt("%(target.meta.x)s").unwrap().as_deref(), Some("1"));
        // Other Python exceptions abort.
        for bad in [
            "%",
            "%(user_id",
            "%(user_id)",
            "%s",
            "%(user_id)d",
            "%(user_id)x",
        ] {
            assert!(fmt(bad).is_err(), "{bad:?}");
        }
    }
}
