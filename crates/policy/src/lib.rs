//! The oslo.policy rule language and Keystone's default policy rules, as data.
//!
//! This crate owns three things: the parser for oslo.policy check strings
//! (`rule:`, `role:`, generic `KEY:VALUE` checks, `@`, `!`, `and`/`or`/`not` and
//! parentheses — see [`parse`]), an [`Enforcer`] that evaluates a named rule against
//! a target and the caller's [`Credentials`] the way oslo.policy does with
//! `enforce_scope = True` and `enforce_new_defaults = True`, and Keystone's default
//! rules ([`keystone_defaults`]) transcribed from `keystone/common/policies/*.py`.
//!
//! It must not do I/O, know about HTTP, tokens or the database, or build targets:
//! the caller hands in a ready JSON target and the already-validated token's
//! credentials, and maps [`PolicyError`] to its own fault (Keystone answers 403 for
//! both a failed check and an invalid scope). It must never panic on any rule text,
//! policy file or target: malformed rules fail closed, as upstream does.

mod check;
mod enforcer;
pub mod keystone;
mod parser;

pub use enforcer::Enforcer;
pub use keystone::keystone_defaults;
pub use parser::{Check, parse};

/// A token scope, as named in a rule's `scope_types` (oslo.policy `RuleDefault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// System-scoped token (`system_scope == "all"`).
    System,
    /// Domain-scoped token.
    Domain,
    /// Project-scoped token (and, as upstream, any token that is neither of the above).
    Project,
}

impl Scope {
    /// The upstream spelling: `"system"`, `"domain"` or `"project"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::Domain => "domain",
            Scope::Project => "project",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered default policy rule (oslo.policy `RuleDefault`/`DocumentedRuleDefault`).
///
/// An empty `scope_types` means "any scope" (upstream `scope_types=None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRule {
    /// Policy name, e.g. `identity:get_user`.
    pub name: &'static str,
    /// The check string in the oslo.policy language.
    pub check_str: &'static str,
    /// Token scopes the operation accepts; empty means unrestricted.
    pub scope_types: &'static [Scope],
    /// Human-readable description of the operation.
    pub description: &'static str,
}

/// What the caller's token says. Mirrors the creds dict keystone builds for oslo.policy.
///
/// Converted into the oslo.context `to_policy_values()` dict (plus keystone's `token`
/// entry, see [`Enforcer::enforce`]) before any check runs.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The authenticated user's id.
    pub user_id: Option<String>,
    /// The authenticated user's domain id.
    pub user_domain_id: Option<String>,
    /// The project the token is scoped to.
    pub project_id: Option<String>,
    /// The domain of the project the token is scoped to.
    pub project_domain_id: Option<String>,
    /// The domain the token is scoped to (domain-scoped tokens only).
    pub domain_id: Option<String>,
    /// `"all"` when system-scoped.
    pub system_scope: Option<String>,
    /// Role names, already expanded by implied roles.
    pub roles: Vec<String>,
    /// Whether the token is scoped to the admin project (`is_admin_project:True`).
    pub is_admin_project: bool,
}

impl Credentials {
    /// The token's scope as oslo.policy's `_enforce_scope` decides it: system if
    /// `system_scope` is set (non-empty), else domain if `domain_id` is set, else
    /// project — upstream treats every other token, even an unscoped one, as project.
    pub fn token_scope(&self) -> Scope {
        if self.system_scope.as_deref().is_some_and(|s| !s.is_empty()) {
            Scope::System
        } else if self.domain_id.as_deref().is_some_and(|s| !s.is_empty()) {
            Scope::Domain
        } else {
            Scope::Project
        }
    }
}

/// Why a policy enforcement or a policy text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The rule's check string did not pass for these credentials and target.
    #[error("policy does not allow {rule} to be performed")]
    Forbidden {
        /// The rule that was enforced.
        rule: String,
    },
    /// The token's scope is not among the rule's `scope_types` (oslo.policy `InvalidScope`).
    #[error("{rule} cannot be performed with a token of this scope")]
    InvalidScope {
        /// The rule that was enforced.
        rule: String,
    },
    /// The rule name is not known and no `default` rule exists to fall back to.
    #[error("unknown policy rule {0}")]
    UnknownRule(String),
    /// A check string or a policy file could not be parsed.
    #[error("policy parse error: {0}")]
    Parse(String),
}

#[cfg(test)]
mod tests;
