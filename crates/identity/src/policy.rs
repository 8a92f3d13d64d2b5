//! Identity's policy: Keystone's default rules (in `ferro-policy`), overridable from a
//! YAML file, checked against the caller's token.

use std::path::Path;

use ferro_common::Result;
pub use ferro_http::policy::{authorize, credentials};
use ferro_policy::Enforcer;

/// The enforcer with Keystone's defaults and the operator's overrides.
pub fn enforcer(policy_file: Option<&Path>) -> Result<Enforcer> {
    ferro_http::policy::enforcer(ferro_policy::keystone::keystone_defaults(), policy_file)
}
