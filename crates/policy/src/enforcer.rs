//! The rule store and `enforce`, following upstream `oslo_policy.policy.Enforcer`
//! with `enforce_scope = True` and `enforce_new_defaults = True` (the defaults of the
//! oslo.policy release Keystone 2026.x uses; newer oslo.policy removes the
//! `enforce_scope` switch and always enforces scope).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::check::Evaluator;
use crate::parser::{Check, parse_list_rule, parse_or_never};
use crate::{Credentials, DefaultRule, PolicyError, Scope};

/// The rule an unknown name falls back to (`[oslo_policy] policy_default_rule`).
/// Keystone registers no rule by that name, so unless a policy file adds one an
/// unknown name fails closed.
const DEFAULT_RULE: &str = "default";

#[derive(Clone, Debug)]
struct Rule {
    text: String,
    check: Check,
}

/// Evaluates named policy rules: registered defaults, optionally overridden or
/// extended by a `policy.yaml`.
#[derive(Clone, Debug, Default)]
pub struct Enforcer {
    /// Effective rules: defaults, then file overrides on top.
    rules: HashMap<String, Rule>,
    /// Scope types of the registered defaults; overrides never change them.
    registered: HashMap<String, &'static [Scope]>,
    /// Rules whose text did not parse (stored as `!`), with the error.
    invalid: HashMap<String, PolicyError>,
}

impl Enforcer {
    /// Registers `defaults` (upstream `register_defaults`). A rule whose check string
    /// does not parse is stored as `!` and listed by [`Enforcer::invalid_rules`].
    /// Upstream refuses a duplicate name; here a later duplicate replaces the earlier.
    pub fn new(defaults: &[DefaultRule]) -> Enforcer {
        let mut enforcer = Enforcer::default();
        for default in defaults {
            enforcer
                .registered
                .insert(default.name.to_owned(), default.scope_types);
            enforcer.set_text_rule(default.name, default.check_str);
        }
        enforcer
    }

    /// Applies a `policy.yaml` (a mapping of rule name to check string): each entry
    /// replaces the default of that name, or adds a new rule. Scope types stay those
    /// of the registered default, as upstream.
    ///
    /// As upstream `Rules.load`, an empty document changes nothing, a rule whose text
    /// does not parse becomes `!` (see [`Enforcer::invalid_rules`]), an empty value
    /// (`name:` or `name: ""`) allows everything, and a list value is the legacy
    /// list-of-lists syntax. Invalid YAML, a document that is not a mapping, or a
    /// value that is neither a string, a list nor empty is a [`PolicyError::Parse`].
    pub fn with_overrides_yaml(mut self, yaml: &str) -> Result<Enforcer, PolicyError> {
        let doc: Value = if yaml.trim().is_empty() {
            Value::Null
        } else {
            // PyYAML's `safe_load` keeps the last of duplicate keys; saphyr would refuse.
            let options = serde_saphyr::options! {
                duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::LastWins,
            };
            serde_saphyr::from_str_with_options(yaml, options)
                .map_err(|e| PolicyError::Parse(format!("invalid policy file: {e}")))?
        };
        let entries = match doc {
            // Upstream `parse_file_contents` returns `parsed or {}`.
            Value::Null | Value::Bool(false) => return Ok(self),
            Value::String(s) if s.is_empty() => return Ok(self),
            Value::Array(a) if a.is_empty() => return Ok(self),
            Value::Object(map) => map,
            _ => {
                return Err(PolicyError::Parse(
                    "policy file must be a mapping of rule name to check string".to_owned(),
                ));
            }
        };
        // Validate every entry before changing anything.
        let mut parsed = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            let rule = match value {
                Value::String(text) => Rule::from_text(&text),
                // Upstream `parse_rule(None)` / `parse_rule([])`: an empty rule is `@`.
                Value::Null => (
                    Rule {
                        text: String::new(),
                        check: Check::True,
                    },
                    None,
                ),
                Value::Array(items) => Rule::from_list(&name, &items)?,
                _ => {
                    return Err(PolicyError::Parse(format!(
                        "policy {name}: the rule must be a string"
                    )));
                }
            };
            parsed.push((name, rule));
        }
        for (name, (rule, error)) in parsed {
            self.insert(name, rule, error);
        }
        Ok(self)
    }

    /// Checks `rule` for `creds` against `target`.
    ///
    /// `target` is the JSON object keystone builds for enforcement: view args such as
    /// `user_id` at the top level and the looked-up resource under `target`, e.g.
    /// `{"user_id": "...", "target": {"user": {"id": "...", "domain_id": "..."}}}`.
    /// `%(target.user.domain_id)s` finds that nested path, or the same flat dotted key
    /// (keystone flattens targets); JSON objects are never values themselves.
    ///
    /// In order, as upstream: an unknown name falls back to the `default` rule, else
    /// [`PolicyError::UnknownRule`]; a registered rule with scope types refuses a token
    /// of another scope ([`Credentials::token_scope`]) with
    /// [`PolicyError::InvalidScope`]; a failing check is [`PolicyError::Forbidden`].
    /// An evaluation upstream would raise on (a rule cycle, a bad format) is also
    /// `Forbidden`.
    ///
    /// The creds dict holds oslo.context's `to_policy_values()` keys (`user_id`,
    /// `user_domain_id`, `project_id`, `project_domain_id`, `domain_id`,
    /// `system_scope`, `roles`, `is_admin_project`, the `service_*` keys, unset ones
    /// as `None`), `system` when system-scoped, and keystone's `token` entry
    /// (`token.user.id`, `token.user.domain.id`, `token.project.id`,
    /// `token.project.domain.id`, `token.domain.id`, `token.system.all`,
    /// `token.roles[].name`) rebuilt from the credentials for the rules that use it.
    pub fn enforce(
        &self,
        rule: &str,
        target: &Value,
        creds: &Credentials,
    ) -> Result<(), PolicyError> {
        let forbidden = || PolicyError::Forbidden {
            rule: rule.to_owned(),
        };
        // Upstream: no rules at all fails closed.
        if self.rules.is_empty() {
            return Err(forbidden());
        }
        let Some(check) = self.lookup(rule) else {
            return Err(PolicyError::UnknownRule(rule.to_owned()));
        };
        if let Some(scope_types) = self.registered.get(rule)
            && !scope_types.is_empty()
            && !scope_types.contains(&creds.token_scope())
        {
            return Err(PolicyError::InvalidScope {
                rule: rule.to_owned(),
            });
        }
        let creds_dict = creds_to_dict(creds);
        let lookup = |name: &str| self.lookup(name);
        let mut evaluator = Evaluator::new(&lookup, target, &creds_dict);
        match evaluator.eval(check) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(forbidden()),
        }
    }

    /// Whether `rule` names a rule (a default or an override).
    pub fn has_rule(&self, rule: &str) -> bool {
        self.rules.contains_key(rule)
    }

    /// The effective check string of `rule`, if it exists.
    pub fn check_str(&self, rule: &str) -> Option<&str> {
        self.rules.get(rule).map(|r| r.text.as_str())
    }

    /// The registered scope types of `rule` (empty: any scope), if it is a default.
    pub fn scope_types(&self, rule: &str) -> Option<&'static [Scope]> {
        self.registered.get(rule).copied()
    }

    /// Rules whose check string failed to parse and are enforced as `!`, with the
    /// parse error (upstream only logs these).
    pub fn invalid_rules(&self) -> Vec<(&str, &PolicyError)> {
        let mut out: Vec<_> = self
            .invalid
            .iter()
            .map(|(name, err)| (name.as_str(), err))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Upstream `Rules.__missing__`: fall back to the `default` rule if defined.
    fn lookup(&self, name: &str) -> Option<&Check> {
        self.rules
            .get(name)
            .or_else(|| self.rules.get(DEFAULT_RULE))
            .map(|r| &r.check)
    }

    fn set_text_rule(&mut self, name: &str, text: &str) {
        let (rule, error) = Rule::from_text(text);
        self.insert(name.to_owned(), rule, error);
    }

    fn insert(&mut self, name: String, rule: Rule, error: Option<PolicyError>) {
        match error {
            Some(err) => self.invalid.insert(name.clone(), err),
            None => self.invalid.remove(&name),
        };
        self.rules.insert(name, rule);
    }
}

impl Rule {
    fn from_text(text: &str) -> (Rule, Option<PolicyError>) {
        let (check, error) = parse_or_never(text);
        (
            Rule {
                text: text.to_owned(),
                check,
            },
            error,
        )
    }

    /// The legacy list-of-lists form: `[["role:a", "role:b"], "role:c"]`.
    fn from_list(name: &str, items: &[Value]) -> Result<(Rule, Option<PolicyError>), PolicyError> {
        let bad = || PolicyError::Parse(format!("policy {name}: malformed list rule"));
        let mut lists = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) if s.is_empty() => lists.push(Vec::new()),
                Value::String(s) => lists.push(vec![s.clone()]),
                Value::Array(inner) => {
                    let mut and_list = Vec::with_capacity(inner.len());
                    for atom in inner {
                        let Value::String(atom) = atom else {
                            return Err(bad());
                        };
                        and_list.push(atom.clone());
                    }
                    lists.push(and_list);
                }
                _ => return Err(bad()),
            }
        }
        let check = parse_list_rule(&lists);
        let text = check.to_string();
        Ok((Rule { text, check }, None))
    }
}

fn opt(value: &Option<String>) -> Value {
    value.clone().map_or(Value::Null, Value::String)
}

/// The creds dict: oslo.context `to_policy_values()` plus keystone's additions.
fn creds_to_dict(creds: &Credentials) -> Value {
    let mut dict = Map::new();
    dict.insert("user_id".into(), opt(&creds.user_id));
    dict.insert("user_domain_id".into(), opt(&creds.user_domain_id));
    dict.insert("system_scope".into(), opt(&creds.system_scope));
    // Keystone's `to_policy_values` maps a falsy domain_id to None.
    let domain_id = creds.domain_id.clone().filter(|d| !d.is_empty());
    dict.insert("domain_id".into(), opt(&domain_id));
    dict.insert("project_id".into(), opt(&creds.project_id));
    dict.insert("project_domain_id".into(), opt(&creds.project_domain_id));
    dict.insert("roles".into(), json!(creds.roles));
    dict.insert(
        "is_admin_project".into(),
        Value::Bool(creds.is_admin_project),
    );
    for key in [
        "service_user_id",
        "service_user_domain_id",
        "service_project_id",
        "service_project_domain_id",
    ] {
        dict.insert(key.into(), Value::Null);
    }
    dict.insert("service_roles".into(), json!([]));
    // oslo.policy copies a truthy system_scope into `system` for older rules.
    if let Some(system) = creds.system_scope.as_deref().filter(|s| !s.is_empty()) {
        dict.insert("system".into(), json!(system));
    }
    dict.insert("token".into(), token_body(creds));
    Value::Object(dict)
}

/// The parts of keystone's rendered token body (`token_reference['token']`) that
/// policies reference; keys a token of this scope would not carry are left out.
fn token_body(creds: &Credentials) -> Value {
    let mut token = Map::new();
    let mut user = Map::new();
    if let Some(id) = &creds.user_id {
        user.insert("id".into(), json!(id));
    }
    if let Some(domain) = &creds.user_domain_id {
        user.insert("domain".into(), json!({ "id": domain }));
    }
    token.insert("user".into(), Value::Object(user));
    match creds.token_scope() {
        Scope::System => {
            if let Some(system) = &creds.system_scope {
                let mut scope = Map::new();
                scope.insert(system.clone(), Value::Bool(true));
                token.insert("system".into(), Value::Object(scope));
            }
        }
        Scope::Domain => {
            if let Some(domain) = &creds.domain_id {
                token.insert("domain".into(), json!({ "id": domain }));
            }
        }
        Scope::Project => {
            if let Some(project) = &creds.project_id {
                let mut p = Map::new();
                p.insert("id".into(), json!(project));
                if let Some(domain) = &creds.project_domain_id {
                    p.insert("domain".into(), json!({ "id": domain }));
                }
                token.insert("project".into(), Value::Object(p));
            }
        }
    }
    let roles: Vec<Value> = creds.roles.iter().map(|r| json!({ "name": r })).collect();
    token.insert("roles".into(), Value::Array(roles));
    token.insert("is_admin_project".into(), json!(creds.is_admin_project));
    Value::Object(token)
}
