//! The domain error every service speaks internally.

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in words a client may see. Each service maps a variant to its
/// upstream status code and fault body; internal context is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed or violates a rule.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials that did not authenticate.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: `kind` with `id` does not exist (or is not visible to the caller).
    #[error("Could not find {kind}: {id}.")]
    NotFound { kind: &'static str, id: String },
    /// 409: the request conflicts with the current state (duplicate name, in use ...).
    #[error("{0}")]
    Conflict(String),
    /// 413: the request body is larger than the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 503: a dependency is not reachable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure below us. The message is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A 404 for `kind` (`"project"`, `"user"`, ...) with `id`.
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest(message.into())
    }

    /// A 409 with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict(message.into())
    }

    /// A 500 carrying internal context (logged, not shown to the client).
    pub fn internal(context: impl std::fmt::Display) -> Self {
        Error::Internal(context.to_string())
    }

    /// The HTTP status code OpenStack services use for this kind of error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthenticated(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound { .. } => 404,
            Error::Conflict(_) => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }
}
