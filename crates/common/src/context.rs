//! Who is calling, as established from a validated token.

/// The caller of one API request: what the token says, after validation. Handlers pass it
/// to policy checks and to the manager; it never comes from the request body.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// `x-openstack-request-id` of this request (`req-<uuid>`).
    pub request_id: String,
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    /// Project scope, if the token is project-scoped.
    pub project_id: Option<String>,
    pub project_domain_id: Option<String>,
    /// Domain scope, if the token is domain-scoped.
    pub domain_id: Option<String>,
    /// `Some("all")` for a system-scoped token.
    pub system_scope: Option<String>,
    /// Role ids and names on the scope, implied roles included.
    pub roles: Vec<(String, String)>,
    /// Audit ids of the token (its own first, then the chain it was rescoped from).
    pub audit_ids: Vec<String>,
    /// Authentication methods that made the token (`password`, `token`, ...).
    pub methods: Vec<String>,
    /// Set when the token was made from an application credential.
    pub application_credential_id: Option<String>,
    /// The raw token, for calls made on the caller's behalf.
    pub token: String,
}

impl RequestContext {
    /// Role names held on the token's scope.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|(_, name)| name.as_str())
    }

    /// Whether the token carries role `name` (case-insensitive, as oslo.policy compares).
    pub fn has_role(&self, name: &str) -> bool {
        self.role_names().any(|r| r.eq_ignore_ascii_case(name))
    }
}
