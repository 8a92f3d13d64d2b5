//! Enforcement tests: the generic checks, the enforcer's upstream behaviours, and
//! Keystone's defaults for typical personas.

use serde_json::{Value, json};

use crate::{Credentials, DefaultRule, Enforcer, PolicyError, Scope, keystone_defaults, parse};

fn enforcer(rules: &[(&'static str, &'static str)]) -> Enforcer {
    let defaults: Vec<DefaultRule> = rules
        .iter()
        .map(|(name, check_str)| DefaultRule {
            name,
            check_str,
            scope_types: &[],
            description: "",
        })
        .collect();
    Enforcer::new(&defaults)
}

fn project_user(roles: &[&str]) -> Credentials {
    Credentials {
        user_id: Some("u1".into()),
        user_domain_id: Some("d1".into()),
        project_id: Some("p1".into()),
        project_domain_id: Some("d1".into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Credentials::default()
    }
}

fn system_user(roles: &[&str]) -> Credentials {
    Credentials {
        user_id: Some("sys".into()),
        user_domain_id: Some("default".into()),
        system_scope: Some("all".into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Credentials::default()
    }
}

fn domain_user(domain: &str, roles: &[&str]) -> Credentials {
    Credentials {
        user_id: Some("du".into()),
        user_domain_id: Some(domain.into()),
        domain_id: Some(domain.into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Credentials::default()
    }
}

fn allowed(e: &Enforcer, rule: &str, target: &Value, creds: &Credentials) -> bool {
    match e.enforce(rule, target, creds) {
        Ok(()) => true,
        Err(PolicyError::Forbidden { rule: r }) => {
            assert_eq!(r, rule);
            false
        }
        Err(other) => panic!("{rule}: unexpected {other:?}"),
    }
}

fn keystone() -> Enforcer {
    Enforcer::new(keystone_defaults())
}

// ---- generic checks -------------------------------------------------------

#[test]
fn generic_check_substitutes_nested_and_flat_targets() {
    let e = enforcer(&[("r", "domain_id:%(target.user.domain_id)s")]);
    let creds = domain_user("d1", &[]);
    let nested = json!({"target": {"user": {"domain_id": "d1"}}});
    let flat = json!({"target.user.domain_id": "d1"});
    let other = json!({"target": {"user": {"domain_id": "d2"}}});
    assert!(allowed(&e, "r", &nested, &creds));
    assert!(allowed(&e, "r", &flat, &creds));
    assert!(!allowed(&e, "r", &other, &creds));
    // A missing target key is upstream's KeyError: the check is false.
    assert!(!allowed(&e, "r", &json!({}), &creds));
}

#[test]
fn generic_check_literals_on_the_left() {
    let e = enforcer(&[
        ("enabled", "True:%(user.enabled)s"),
        ("member", "'Member':%(role.name)s"),
        ("unset", "None:%(target.role.domain_id)s"),
        ("number", "3:%(n)s"),
    ]);
    let creds = Credentials::default();
    assert!(allowed(
        &e,
        "enabled",
        &json!({"user": {"enabled": true}}),
        &creds
    ));
    assert!(!allowed(
        &e,
        "enabled",
        &json!({"user": {"enabled": false}}),
        &creds
    ));
    assert!(allowed(
        &e,
        "member",
        &json!({"role.name": "Member"}),
        &creds
    ));
    assert!(!allowed(
        &e,
        "member",
        &json!({"role.name": "member"}),
        &creds
    ));
    assert!(allowed(
        &e,
        "unset",
        &json!({"target": {"role": {"domain_id": null}}}),
        &creds
    ));
    assert!(!allowed(
        &e,
        "unset",
        &json!({"target": {"role": {"domain_id": "d"}}}),
        &creds
    ));
    assert!(!allowed(&e, "unset", &json!({}), &creds));
    assert!(allowed(&e, "number", &json!({"n": 3}), &creds));
    assert!(allowed(&e, "number", &json!({"n": "3"}), &creds));
}

#[test]
fn generic_check_against_creds_values() {
    let e = enforcer(&[
        ("admin_project", "is_admin_project:True"),
        ("system", "system_scope:all"),
        ("unscoped_domain", "domain_id:None"),
        (
            "token_domain",
            "token.project.domain.id:%(target.domain.id)s",
        ),
        ("roles_list", "roles:reader"),
        ("token_roles", "token.roles.name:reader"),
        ("bad_path", "not user_id.x:y"),
    ]);
    let mut creds = project_user(&["reader"]);
    assert!(!allowed(&e, "admin_project", &json!({}), &creds));
    creds.is_admin_project = true;
    assert!(allowed(&e, "admin_project", &json!({}), &creds));
    assert!(!allowed(&e, "system", &json!({}), &creds));
    assert!(allowed(&e, "system", &json!({}), &system_user(&[])));
    // Unset creds values are present as None, as in oslo.context.
    assert!(allowed(&e, "unscoped_domain", &json!({}), &creds));
    assert!(allowed(
        &e,
        "token_domain",
        &json!({"target": {"domain": {"id": "d1"}}}),
        &creds
    ));
    assert!(!allowed(
        &e,
        "token_domain",
        &json!({"target": {"domain": {"id": "d2"}}}),
        &creds
    ));
    // Lists in the creds match if any element matches.
    assert!(allowed(&e, "roles_list", &json!({}), &creds));
    assert!(allowed(&e, "token_roles", &json!({}), &creds));
    // Indexing a string raises upstream; that must not become `true` under `not`.
    assert!(!allowed(&e, "bad_path", &json!({}), &creds));
}

#[test]
fn role_check_is_case_insensitive_and_substitutes() {
    let e = enforcer(&[("admin", "role:Admin"), ("dyn", "role:%(role)s")]);
    assert!(allowed(&e, "admin", &json!({}), &project_user(&["ADMIN"])));
    assert!(allowed(&e, "admin", &json!({}), &project_user(&["admin"])));
    assert!(!allowed(
        &e,
        "admin",
        &json!({}),
        &project_user(&["member"])
    ));
    assert!(allowed(
        &e,
        "dyn",
        &json!({"role": "MeMbEr"}),
        &project_user(&["member"])
    ));
    assert!(!allowed(&e, "dyn", &json!({}), &project_user(&["member"])));
}

#[test]
fn boolean_operators_evaluate() {
    let e = enforcer(&[
        ("r", "role:a or role:b and role:c"),
        ("n", "not role:a"),
        ("always", "@"),
        ("never", "!"),
        ("empty", ""),
    ]);
    let t = json!({});
    assert!(allowed(&e, "r", &t, &project_user(&["a"])));
    assert!(!allowed(&e, "r", &t, &project_user(&["b"])));
    assert!(allowed(&e, "r", &t, &project_user(&["b", "c"])));
    assert!(allowed(&e, "n", &t, &project_user(&["b"])));
    assert!(!allowed(&e, "n", &t, &project_user(&["a"])));
    assert!(allowed(&e, "always", &t, &Credentials::default()));
    assert!(!allowed(&e, "never", &t, &project_user(&["admin"])));
    assert!(allowed(&e, "empty", &t, &Credentials::default()));
}

// ---- enforcer behaviour ---------------------------------------------------

#[test]
fn rule_reference_to_unknown_name_fails_closed() {
    let e = enforcer(&[("r", "rule:nope"), ("n", "not rule:nope"), ("ok", "@")]);
    assert!(!allowed(&e, "r", &json!({}), &project_user(&["admin"])));
    // Upstream RuleCheck returns False for a missing rule, so `not` of it passes.
    assert!(allowed(&e, "n", &json!({}), &project_user(&[])));
}

#[test]
fn unknown_rule_name_without_default_is_an_error() {
    let e = keystone();
    assert_eq!(
        e.enforce("identity:nope", &json!({}), &system_user(&["admin"])),
        Err(PolicyError::UnknownRule("identity:nope".into()))
    );
}

#[test]
fn unknown_names_fall_back_to_a_default_rule() {
    let e = enforcer(&[("r", "rule:missing"), ("default", "role:admin")]);
    let admin = project_user(&["admin"]);
    assert!(allowed(&e, "r", &json!({}), &admin));
    assert!(allowed(&e, "anything", &json!({}), &admin));
    assert!(!allowed(
        &e,
        "anything",
        &json!({}),
        &project_user(&["member"])
    ));
}

#[test]
fn cyclic_rules_fail_closed_without_overflow() {
    let e = enforcer(&[
        ("a", "rule:b"),
        ("b", "rule:a"),
        ("na", "not rule:a"),
        ("self", "role:x or rule:self"),
    ]);
    let creds = project_user(&[]);
    assert!(!allowed(&e, "a", &json!({}), &creds));
    assert!(!allowed(&e, "na", &json!({}), &creds));
    assert!(!allowed(&e, "self", &json!({}), &creds));
    assert!(allowed(&e, "self", &json!({}), &project_user(&["x"])));
}

#[test]
fn unparsable_rule_is_never_and_reported() {
    let e = enforcer(&[("bad", "role:a role:b"), ("ok", "@")]);
    assert!(!allowed(&e, "bad", &json!({}), &project_user(&["a", "b"])));
    let invalid = e.invalid_rules();
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].0, "bad");
    assert!(matches!(invalid[0].1, PolicyError::Parse(_)));
    assert!(parse("role:a role:b").is_err());
}

#[test]
fn token_scope_follows_upstream_order() {
    assert_eq!(system_user(&[]).token_scope(), Scope::System);
    assert_eq!(domain_user("d", &[]).token_scope(), Scope::Domain);
    assert_eq!(project_user(&[]).token_scope(), Scope::Project);
    // Upstream treats an unscoped token as project-scoped.
    assert_eq!(Credentials::default().token_scope(), Scope::Project);
    let both = Credentials {
        system_scope: Some("all".into()),
        domain_id: Some("d".into()),
        ..Credentials::default()
    };
    assert_eq!(both.token_scope(), Scope::System);
}

#[test]
fn invalid_scope_is_reported_before_the_check() {
    let e = keystone();
    // identity:create_trust is project-only.
    let target = json!({"target": {"trust": {"trustor_user_id": "sys"}}});
    assert_eq!(
        e.enforce("identity:create_trust", &target, &system_user(&["admin"])),
        Err(PolicyError::InvalidScope {
            rule: "identity:create_trust".into()
        })
    );
    // identity:create_domain accepts system and project, not domain.
    assert_eq!(
        e.enforce(
            "identity:create_domain",
            &json!({}),
            &domain_user("d1", &["admin"])
        ),
        Err(PolicyError::InvalidScope {
            rule: "identity:create_domain".into()
        })
    );
    // Rules without scope_types accept any scope.
    assert!(allowed(
        &e,
        "identity:get_auth_catalog",
        &json!({}),
        &domain_user("d1", &[])
    ));
}

#[test]
fn overrides_replace_defaults_and_keep_scope_types() {
    let e = keystone()
        .with_overrides_yaml(
            "# operator policy\n\
             \"identity:create_user\": \"role:member\"\n\
             \"identity:custom\": \"role:custom and project_id:%(target.project.id)s\"\n\
             \"identity:broken\": \"role:a role:b\"\n",
        )
        .unwrap();
    assert_eq!(e.check_str("identity:create_user"), Some("role:member"));
    let target = json!({"target": {"user": {"domain_id": "d1"}}});
    assert!(allowed(
        &e,
        "identity:create_user",
        &target,
        &project_user(&["member"])
    ));
    assert!(!allowed(
        &e,
        "identity:create_user",
        &target,
        &project_user(&["admin"])
    ));
    // Scope types of the registered default still apply to the override.
    assert_eq!(
        e.enforce("identity:create_trust", &json!({}), &system_user(&[])),
        Err(PolicyError::InvalidScope {
            rule: "identity:create_trust".into()
        })
    );
    let project = json!({"target": {"project": {"id": "p1"}}});
    assert!(allowed(
        &e,
        "identity:custom",
        &project,
        &project_user(&["custom"])
    ));
    assert!(!allowed(
        &e,
        "identity:broken",
        &json!({}),
        &project_user(&["a", "b"])
    ));
    assert_eq!(e.invalid_rules().len(), 1);
}

#[test]
fn override_file_shapes() {
    let base = || enforcer(&[("r", "!")]);
    assert!(base().with_overrides_yaml("").is_ok());
    assert!(base().with_overrides_yaml("# nothing\n").is_ok());
    assert!(base().with_overrides_yaml("{}").is_ok());
    // Upstream: an empty value is the empty rule, which always passes.
    let e = base().with_overrides_yaml("r:\n").unwrap();
    assert!(allowed(&e, "r", &json!({}), &Credentials::default()));
    let e = base().with_overrides_yaml("r: ''\n").unwrap();
    assert!(allowed(&e, "r", &json!({}), &Credentials::default()));
    // A legacy policy.json is valid YAML too.
    let e = base().with_overrides_yaml("{\"r\": \"@\"}").unwrap();
    assert!(allowed(&e, "r", &json!({}), &Credentials::default()));
    // Duplicate keys: the last one wins, as with PyYAML.
    let e = base().with_overrides_yaml("r: '!'\nr: '@'\n").unwrap();
    assert!(allowed(&e, "r", &json!({}), &Credentials::default()));
    // Legacy list-of-lists syntax.
    let e = base()
        .with_overrides_yaml("r: [[\"role:a\", \"role:b\"], [\"role:c\"]]\n")
        .unwrap();
    assert!(allowed(&e, "r", &json!({}), &project_user(&["c"])));
    assert!(allowed(&e, "r", &json!({}), &project_user(&["a", "b"])));
    assert!(!allowed(&e, "r", &json!({}), &project_user(&["a"])));
    // Errors.
    for bad in ["- a\n- b\n", "r: [\n", "r: 5\n", "r: {a: b}\n", "just text"] {
        assert!(
            matches!(base().with_overrides_yaml(bad), Err(PolicyError::Parse(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn empty_enforcer_fails_closed() {
    let e = Enforcer::new(&[]);
    assert_eq!(
        e.enforce("x", &json!({}), &Credentials::default()),
        Err(PolicyError::Forbidden { rule: "x".into() })
    );
}

#[test]
fn odd_targets_and_formats_never_panic() {
    let e = enforcer(&[
        ("a", "x:%(k)s"),
        ("b", "x:%(k)d"),
        ("c", "not x:%(k"),
        ("d", "not x:%s"),
    ]);
    for target in [
        json!(null),
        json!([1, 2]),
        json!("s"),
        json!({"k": {"x": 1}}),
        json!({"k": "v"}),
    ] {
        for rule in ["a", "b", "c", "d"] {
            let _ = e.enforce(rule, &target, &Credentials::default());
        }
    }
    // Format errors abort the enforcement instead of flipping under `not`.
    assert!(!allowed(
        &e,
        "c",
        &json!({"k": "v"}),
        &Credentials::default()
    ));
    assert!(!allowed(
        &e,
        "d",
        &json!({"k": "v"}),
        &Credentials::default()
    ));
}

// ---- keystone defaults ----------------------------------------------------

#[test]
fn keystone_defaults_are_well_formed() {
    let defaults = keystone_defaults();
    assert_eq!(defaults.len(), 203);
    let mut names: Vec<&str> = defaults.iter().map(|d| d.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), defaults.len(), "duplicate rule names");
    for d in defaults {
        assert!(parse(d.check_str).is_ok(), "{} does not parse", d.name);
        assert!(!d.description.is_empty(), "{} has no description", d.name);
    }
    assert!(keystone().invalid_rules().is_empty());
    // Every `rule:` reference points at a defined rule.
    for d in defaults {
        for part in d
            .check_str
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        {
            if let Some(name) = part.strip_prefix("rule:") {
                assert!(names.contains(&name), "{} references {name}", d.name);
            }
        }
    }
    let e = keystone();
    for name in [
        "admin_required",
        "service_role",
        "service_or_admin",
        "owner",
        "admin_or_owner",
        "token_subject",
        "identity:list_user_projects",
        "identity:list_projects_for_user",
        "identity:create_project_tag",
        "identity:list_users_in_group",
        "identity:add_user_to_group",
        "identity:check_implied_role",
        "identity:list_role_inference_rules",
        "identity:create_system_grant_for_group",
        "identity:list_role_assignments_for_tree",
        "identity:get_auth_system",
        "identity:revocation_list",
        "identity:create_application_credential",
        "identity:create_registered_limits",
        "identity:update_limit",
        "identity:delete_trust",
        "identity:list_policies",
    ] {
        assert!(e.has_rule(name), "{name}");
    }
    assert_eq!(
        e.scope_types("identity:get_user"),
        Some(&[Scope::System, Scope::Domain, Scope::Project][..])
    );
}

#[test]
fn reader_can_list_but_not_create_projects() {
    let e = keystone();
    let list_target = json!({"target": {"domain_id": "d1"}});
    let create_target = json!({"target": {"project": {"domain_id": "d1"}}});
    for reader in [system_user(&["reader"]), domain_user("d1", &["reader"])] {
        assert!(allowed(&e, "identity:list_projects", &list_target, &reader));
        assert!(!allowed(
            &e,
            "identity:create_project",
            &create_target,
            &reader
        ));
    }
    // A domain reader only lists its own domain's projects.
    let other = json!({"target": {"domain_id": "d2"}});
    assert!(!allowed(
        &e,
        "identity:list_projects",
        &other,
        &domain_user("d1", &["reader"])
    ));
    // Upstream gives project-scoped readers no list_projects (they use /v3/auth/projects).
    assert!(!allowed(
        &e,
        "identity:list_projects",
        &list_target,
        &project_user(&["reader"])
    ));
    // A domain manager can create projects in its domain.
    assert!(allowed(
        &e,
        "identity:create_project",
        &create_target,
        &domain_user("d1", &["manager", "member", "reader"])
    ));
}

#[test]
fn project_admin_creates_users_member_does_not() {
    let e = keystone();
    let target = json!({"target": {"user": {"domain_id": "d1", "name": "new"}}});
    assert!(allowed(
        &e,
        "identity:create_user",
        &target,
        &project_user(&["admin", "member", "reader"])
    ));
    assert!(!allowed(
        &e,
        "identity:create_user",
        &target,
        &project_user(&["member", "reader"])
    ));
    // A domain manager may create users only in its own domain.
    let manager = domain_user("d1", &["manager"]);
    assert!(allowed(&e, "identity:create_user", &target, &manager));
    let elsewhere = json!({"target": {"user": {"domain_id": "d2"}}});
    assert!(!allowed(&e, "identity:create_user", &elsewhere, &manager));
}

#[test]
fn user_can_get_own_user_record() {
    let e = keystone();
    let creds = project_user(&["member"]);
    let me = json!({"user_id": "u1", "target": {"user": {"id": "u1", "domain_id": "d1"}}});
    let someone = json!({"user_id": "u2", "target": {"user": {"id": "u2", "domain_id": "d1"}}});
    assert!(allowed(&e, "identity:get_user", &me, &creds));
    assert!(!allowed(&e, "identity:get_user", &someone, &creds));
    // Flattened the way keystone passes it.
    let flat = json!({"user_id": "u1", "target.user.id": "u1", "target.user.domain_id": "d1"});
    assert!(allowed(&e, "identity:get_user", &flat, &creds));
}

#[test]
fn keystone_persona_spot_checks() {
    let e = keystone();
    let empty = json!({});
    // Catalog reads: system reader yes, project member no.
    assert!(allowed(
        &e,
        "identity:list_services",
        &empty,
        &system_user(&["reader"])
    ));
    assert!(!allowed(
        &e,
        "identity:list_services",
        &empty,
        &project_user(&["member"])
    ));
    assert!(!allowed(
        &e,
        "identity:create_service",
        &empty,
        &system_user(&["reader"])
    ));
    assert!(allowed(
        &e,
        "identity:create_service",
        &empty,
        &system_user(&["admin"])
    ));
    // Regions and limits models are open to any scoped token.
    assert!(allowed(
        &e,
        "identity:list_regions",
        &empty,
        &project_user(&[])
    ));
    // Token subject may validate its own token.
    let subject = json!({"target": {"token": {"user_id": "u1"}}});
    assert!(allowed(
        &e,
        "identity:validate_token",
        &subject,
        &project_user(&[])
    ));
    assert!(!allowed(
        &e,
        "identity:validate_token",
        &json!({"target": {"token": {"user_id": "x"}}}),
        &project_user(&[])
    ));
    assert!(allowed(
        &e,
        "identity:validate_token",
        &empty,
        &project_user(&["service"])
    ));
    // Application credentials: only the owner creates, project-scoped.
    let own = json!({"user_id": "u1"});
    assert!(allowed(
        &e,
        "identity:create_application_credential",
        &own,
        &project_user(&[])
    ));
    assert!(!allowed(
        &e,
        "identity:create_application_credential",
        &json!({"user_id": "u2"}),
        &project_user(&["admin"])
    ));
    // Domain manager grants only manager/member/reader within its domain.
    let grant = |role: &str| {
        json!({"target": {
            "user": {"domain_id": "d1"},
            "project": {"domain_id": "d1"},
            "role": {"name": role, "domain_id": null},
        }})
    };
    let manager = domain_user("d1", &["manager"]);
    assert!(allowed(
        &e,
        "identity:create_grant",
        &grant("member"),
        &manager
    ));
    assert!(!allowed(
        &e,
        "identity:create_grant",
        &grant("admin"),
        &manager
    ));
    // Domain reader sees its own domain.
    let domain = json!({"target": {"domain": {"id": "d1"}}});
    assert!(allowed(
        &e,
        "identity:get_domain",
        &domain,
        &domain_user("d1", &["reader"])
    ));
    assert!(allowed(
        &e,
        "identity:get_domain",
        &domain,
        &project_user(&["reader"])
    ));
    assert!(!allowed(
        &e,
        "identity:get_domain",
        &json!({"target": {"domain": {"id": "d2"}}}),
        &project_user(&["reader"])
    ));
    // get_project: own project via project_id.
    let project = json!({"target": {"project": {"id": "p1", "domain_id": "d1"}}});
    assert!(allowed(
        &e,
        "identity:get_project",
        &project,
        &project_user(&["reader"])
    ));
    // Trusts: trustor creates.
    let trust = json!({"target": {"trust": {"trustor_user_id": "u1"}}});
    assert!(allowed(
        &e,
        "identity:create_trust",
        &trust,
        &project_user(&[])
    ));
    // list_roles for a domain manager requires a domain-scoped token.
    assert!(allowed(
        &e,
        "identity:list_roles",
        &empty,
        &domain_user("d1", &["manager"])
    ));
    assert!(!allowed(
        &e,
        "identity:list_roles",
        &empty,
        &project_user(&["manager"])
    ));
}
