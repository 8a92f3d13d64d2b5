//! The policy enforcement hook every API shares: a service's default rules plus the
//! operator's overrides, checked against the caller's token.

use std::path::Path;

use ferro_common::{Error, RequestContext, Result};
use ferro_policy::{Credentials, DefaultRule, Enforcer, PolicyError};
use serde_json::Value;

/// An enforcer with `defaults` and the overrides of the YAML `policy_file`, if any.
pub fn enforcer(defaults: &[DefaultRule], policy_file: Option<&Path>) -> Result<Enforcer> {
    let e = Enforcer::new(defaults);
    match policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::internal(format!("policy file {path:?}: {e}")))?;
            e.with_overrides_yaml(&text)
                .map_err(|e| Error::internal(format!("policy file {path:?}: {e:?}")))
        }
        None => Ok(e),
    }
}

/// The oslo.policy credentials of a caller.
pub fn credentials(ctx: &RequestContext) -> Credentials {
    Credentials {
        user_id: Some(ctx.user_id.clone()),
        user_domain_id: Some(ctx.user_domain_id.clone()),
        project_id: ctx.project_id.clone(),
        project_domain_id: ctx.project_domain_id.clone(),
        domain_id: ctx.domain_id.clone(),
        system_scope: ctx.system_scope.clone(),
        roles: ctx.role_names().map(str::to_string).collect(),
        is_admin_project: false,
    }
}

/// Whether the caller passes `rule` for `target` (for filtering, not refusing).
pub fn allowed(enforcer: &Enforcer, ctx: &RequestContext, rule: &str, target: &Value) -> bool {
    enforcer.enforce(rule, target, &credentials(ctx)).is_ok()
}

/// Checks `rule` for the caller against `target`; a refusal is a 403 in upstream's words.
pub fn authorize(
    enforcer: &Enforcer,
    ctx: &RequestContext,
    rule: &str,
    target: &Value,
) -> Result<()> {
    match enforcer.enforce(rule, target, &credentials(ctx)) {
        Ok(()) => Ok(()),
        // An action with no rule is refused as upstream refuses it: 403, not 500.
        Err(
            PolicyError::Forbidden { .. }
            | PolicyError::InvalidScope { .. }
            | PolicyError::UnknownRule(_),
        ) => Err(Error::Forbidden(format!(
            "You are not authorized to perform the requested action: {rule}."
        ))),
        Err(e) => Err(Error::internal(format!("policy {rule}: {e:?}"))),
    }
}
