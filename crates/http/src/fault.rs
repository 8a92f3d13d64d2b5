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
    /// Glance: webob's JSON error page, `{"code": "404 Not Found", "title": "Not Found",
    /// "message": "<explanation><br /><br />\n<detail>\n\n"}` (webob `WSGIHTTPException`
    /// with glance's `explanation=` and no detail, as answered to `Accept: application/json`).
    Glance,
    /// Placement (API-WG errors guideline): `{"errors": [{"status": 404, "title": "Not Found",
    /// "detail": "..."}]}`. The placement crate adds `code` (1.23+) and `request_id` to the
    /// faults it renders itself; this form serves the shared layers' faults.
    Placement,
    /// Neutron: `{"NeutronError": {"type": "HTTPNotFound", "message": "...", "detail": ""}}`,
    /// `type` named after webob's exception for the status (the network crate renders its
    /// own faults with neutron-lib's exception names; this form serves the shared layers').
    Neutron,
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
    render_status(style, status, &message)
}

/// Renders a fault of `style` with any `status` (also those no domain error maps to, such as
/// Glance's 415) and a client-visible `message`.
pub fn render_status(style: FaultStyle, status: StatusCode, message: &str) -> Response {
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
                405 => "badMethod",
                409 => "conflictingRequest",
                413 | 429 => "overLimit",
                415 => "badMediaType",
                501 => "notImplemented",
                503 => "serviceUnavailable",
                _ => "computeFault",
            };
            json!({key: {"code": status.as_u16(), "message": message}})
        }
        // keystonemiddleware, not glance, refuses a missing or bad token: its body is Keystone's.
        FaultStyle::Glance if status == StatusCode::UNAUTHORIZED => json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }}),
        // As for Glance, keystonemiddleware answers a missing or bad token.
        FaultStyle::Placement if status == StatusCode::UNAUTHORIZED => json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }}),
        // As for Glance, keystonemiddleware answers a missing or bad token.
        FaultStyle::Neutron if status == StatusCode::UNAUTHORIZED => json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }}),
        FaultStyle::Neutron => {
            let kind = match status.as_u16() {
                400 => "HTTPBadRequest",
                403 => "HTTPForbidden",
                404 => "HTTPNotFound",
                405 => "HTTPMethodNotAllowed",
                409 => "HTTPConflict",
                412 => "HTTPPreconditionFailed",
                413 => "HTTPRequestEntityTooLarge",
                415 => "HTTPUnsupportedMediaType",
                503 => "HTTPServiceUnavailable",
                _ => "HTTPInternalServerError",
            };
            json!({"NeutronError": {"type": kind, "message": message, "detail": ""}})
        }
        FaultStyle::Placement => json!({"errors": [{
            "status": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "detail": message,
        }]}),
        FaultStyle::Glance => {
            let title = status.canonical_reason().unwrap_or("Error");
            json!({
                "code": format!("{} {title}", status.as_u16()),
                "title": title,
                "message": format!("{message}<br /><br />\n\n\n"),
            })
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

/// Declares a service's error type: any domain error converts into it, and it answers as
/// `style`'s fault. Handlers return `Result<Response, ThatType>` and use `?` freely.
#[macro_export]
macro_rules! service_fault {
    ($(#[$meta:meta])* $name:ident, $style:expr) => {
        $(#[$meta])*
        pub struct $name(pub $crate::__common::Error);

        impl<E: Into<$crate::__common::Error>> From<E> for $name {
            fn from(e: E) -> Self {
                $name(e.into())
            }
        }

        impl $crate::__axum::response::IntoResponse for $name {
            fn into_response(self) -> $crate::__axum::response::Response {
                $crate::fault::render($style, &self.0)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn glance_faults_are_webob_json_pages() {
        let r = render(FaultStyle::Glance, &Error::conflict("busy"));
        assert_eq!(r.status(), 409);
        let b = body(r).await;
        assert_eq!(b["code"], "409 Conflict");
        assert_eq!(b["title"], "Conflict");
        assert_eq!(b["message"], "busy<br /><br />\n\n\n");
        let r = render(FaultStyle::Glance, &Error::Unauthenticated("no".into()));
        assert_eq!(body(r).await["error"]["code"], 401);
    }
}
