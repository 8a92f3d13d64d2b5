//! OpenStack fault bodies, one style per service family.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_common::Error;
use serde_json::json;

/// Which upstream service's fault body to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStyle {
    /// Keystone: `{"error": {"code": 404, "title": "Not Found", "message": "..."}}`.
    Keystone,
    /// Nova: `{"itemNotFound": {"code": 404, "message": "..."}}`.
    Nova,
}

/// A domain error on its way out as a fault of the request's style.
#[derive(Debug)]
pub struct ApiError {
    pub style: FaultStyle,
    pub error: Error,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        render(self.style, &self.error)
    }
}

/// Renders `error` as `style`'s fault. Internal errors are logged with their context and
/// answered with a generic message.
pub fn render(style: FaultStyle, error: &Error) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match error {
        Error::Internal(context) => {
            tracing::error!(%context, "internal error");
            "An unexpected error prevented the server from fulfilling your request.".to_string()
        }
        other => other.to_string(),
    };
    let body = match style {
        FaultStyle::Keystone => json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }}),
        FaultStyle::Nova => {
            let key = match status.as_u16() {
                400 => "badRequest",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "itemNotFound",
                409 => "conflictingRequest",
                413 => "overLimit",
                503 => "serviceUnavailable",
                _ => "computeFault",
            };
            json!({key: {"code": status.as_u16(), "message": message}})
        }
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED && style == FaultStyle::Keystone {
        // keystonemiddleware and keystone both point clients at the identity endpoint.
        resp.headers_mut().insert(
            "www-authenticate",
            axum::http::HeaderValue::from_static("Keystone uri=\"/v3\""),
        );
    }
    resp
}
