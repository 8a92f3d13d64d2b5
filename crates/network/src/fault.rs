//! Neutron's fault body, `{"NeutronError": {"type", "message", "detail"}}`, with the
//! exception class names of neutron-lib as `type`, so clients that match on them work.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_db::DbError;
use serde_json::json;

/// A refusal in Neutron's words, or a transient database conflict to retry.
#[derive(Debug)]
pub struct NetError {
    pub status: u16,
    /// neutron-lib's exception name (`NetworkNotFound`, `InvalidInput`, ...).
    pub kind: &'static str,
    pub message: String,
    /// A unique-key race or a deadlock: the whole transaction is worth running again.
    pub retry: bool,
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

impl NetError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        NetError {
            status,
            kind,
            message: message.into(),
            retry: false,
        }
    }

    /// `InvalidInput`: 400 "Invalid input for operation: ...".
    pub fn invalid(message: impl std::fmt::Display) -> Self {
        NetError::new(
            400,
            "InvalidInput",
            format!("Invalid input for operation: {message}."),
        )
    }

    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        NetError::new(400, kind, message)
    }

    pub fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        NetError::new(409, kind, message)
    }

    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        NetError::new(404, kind, message)
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        tracing::error!(%context, "internal error");
        NetError::new(
            500,
            "HTTPInternalServerError",
            "Request Failed: internal server error while processing your request.",
        )
    }

    /// A policy refusal (403), in oslo.policy's words.
    pub fn forbidden(rule: &str) -> Self {
        NetError::new(
            403,
            "PolicyNotAuthorized",
            format!("({rule}) is disallowed by policy"),
        )
    }

    fn retry() -> Self {
        NetError {
            retry: true,
            ..NetError::new(
                409,
                "Conflict",
                "The request conflicted with a concurrent one; retry it.",
            )
        }
    }
}

impl From<DbError> for NetError {
    fn from(e: DbError) -> Self {
        match &e {
            DbError::Duplicate(_) => NetError::retry(),
            DbError::Sqlx(sqlx::Error::Database(d))
                if matches!(
                    d.code().as_deref(),
                    Some("40001" | "40P01" | "1213" | "5" | "517")
                ) || d.message().contains("Deadlock")
                    || d.message().contains("database is locked") =>
            {
                NetError::retry()
            }
            _ => NetError::internal(e),
        }
    }
}

impl From<ferro_common::Error> for NetError {
    fn from(e: ferro_common::Error) -> Self {
        use ferro_common::Error as E;
        match e {
            E::BadRequest(m) => NetError::new(400, "HTTPBadRequest", m),
            E::Unauthenticated(m) => NetError::new(401, "HTTPUnauthorized", m),
            E::Forbidden(m) => NetError::new(403, "HTTPForbidden", m),
            E::NotFound { kind, id } => NetError::new(
                404,
                "HTTPNotFound",
                format!("{kind} {id} could not be found."),
            ),
            E::Conflict(m) => NetError::new(409, "HTTPConflict", m),
            E::PayloadTooLarge(m) => NetError::new(413, "HTTPRequestEntityTooLarge", m),
            E::Unavailable(m) => NetError::new(503, "HTTPServiceUnavailable", m),
            E::Internal(c) => NetError::internal(c),
        }
    }
}

impl From<ferro_http::ApiError> for NetError {
    fn from(e: ferro_http::ApiError) -> Self {
        e.error.into()
    }
}

impl IntoResponse for NetError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::UNAUTHORIZED {
            // keystonemiddleware, not neutron, refuses a missing or bad token.
            return ferro_http::fault::render_status(
                ferro_http::FaultStyle::Keystone,
                status,
                &self.message,
            );
        }
        let body = json!({"NeutronError": {
            "type": self.kind,
            "message": self.message,
            "detail": "",
        }});
        (status, axum::Json(body)).into_response()
    }
}
