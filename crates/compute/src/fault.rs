//! Nova's fault bodies: `{"<name>": {"code": N, "message": "..."}}`, with upstream's names
//! per status (nova/api/openstack/wsgi.py `Fault._fault_names`).
//!
//! Nova's messages are its own ("Flavor 7 could not be found."), so a fault here carries its
//! status and words; domain errors from below (database, policy) convert into it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_http::FaultStyle;

/// An error answered as a Nova fault.
#[derive(Debug)]
pub enum Fault {
    /// A status and the message the client sees.
    Api(StatusCode, String),
    /// A domain error from a lower layer: its status and message, internal ones logged.
    Domain(ferro_common::Error),
}

impl Fault {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Fault {
        Fault::Api(status, message.into())
    }

    /// 400 `badRequest`.
    pub fn bad_request(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 `itemNotFound`.
    pub fn not_found(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::NOT_FOUND, message)
    }

    /// 409 `conflictingRequest`.
    pub fn conflict(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::CONFLICT, message)
    }

    /// 500, logged with `context`; the client sees a generic message.
    pub fn internal(context: impl std::fmt::Display) -> Fault {
        Fault::Domain(ferro_common::Error::internal(context))
    }

    /// The HTTP status of this fault.
    pub fn status(&self) -> StatusCode {
        match self {
            Fault::Api(s, _) => *s,
            Fault::Domain(e) => {
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The message with an internal error's context: for logs, instance faults and action
    /// events, which operators read.
    pub fn detail(&self) -> String {
        match self {
            Fault::Domain(ferro_common::Error::Internal(context)) => context.to_string(),
            _ => self.message(),
        }
    }

    /// The client-visible message (internal errors' context is not shown).
    pub fn message(&self) -> String {
        match self {
            Fault::Api(_, m) => m.clone(),
            Fault::Domain(ferro_common::Error::Internal(_)) => {
                "An unexpected error prevented the server from fulfilling your request.".into()
            }
            Fault::Domain(e) => e.to_string(),
        }
    }
}

impl From<ferro_common::Error> for Fault {
    fn from(e: ferro_common::Error) -> Fault {
        Fault::Domain(e)
    }
}

impl From<ferro_db::DbError> for Fault {
    fn from(e: ferro_db::DbError) -> Fault {
        Fault::Domain(e.into())
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Fault::Api(status, message) => {
                ferro_http::fault::render_status(FaultStyle::Nova, status, &message)
            }
            Fault::Domain(e) => ferro_http::fault::render(FaultStyle::Nova, &e),
        }
    }
}

/// Result of the compute crate's operations.
pub type Result<T, E = Fault> = std::result::Result<T, E>;
