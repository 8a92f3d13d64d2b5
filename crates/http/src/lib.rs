//! The HTTP front every FerroStack API shares: request ids, body limits, panics turned into
//! faults, OpenStack fault bodies per service style, a JSON extractor whose rejections are
//! faults, and the token-validation seam ([`TokenValidator`]) behind the [`Auth`] extractor.
//!
//! It knows no service's routes or rules; a service builds its `axum::Router` and wraps it
//! with [`layers`].

pub mod auth;
pub mod fault;
pub mod json;
pub mod policy;
pub mod query;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;

pub use auth::{Auth, MaybeAuth, TokenValidator};
pub use fault::{ApiError, FaultStyle};
pub use json::Json;

// For `service_fault!` in the crates that call it.
#[doc(hidden)]
pub use {axum as __axum, ferro_common as __common};

/// The request id of the current request (`req-<uuid>`), in request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// `x-openstack-request-id`: the header every OpenStack API answers with.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-openstack-request-id");

/// Default request body limit, as oslo.middleware's `max_request_body_size` (112 KiB).
pub const DEFAULT_BODY_LIMIT: usize = 114_688;

/// Wraps a service router with the shared middleware: fault style, request id, body limit,
/// panic-to-fault, and the token validator used by [`Auth`].
pub fn layers(
    router: Router,
    style: FaultStyle,
    body_limit: usize,
    validator: Arc<dyn TokenValidator>,
) -> Router {
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |req, next| {
            request_id(style, validator.clone(), req, next)
        }))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            move |_| fault::render(style, &ferro_common::Error::internal("handler panicked")),
        ))
}

async fn request_id(
    style: FaultStyle,
    validator: Arc<dyn TokenValidator>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(id.clone()));
    req.extensions_mut().insert(style);
    req.extensions_mut().insert(validator);
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER.clone(), v);
    }
    resp
}
