//! Glance's metadata definitions catalog ("metadefs"): namespaces and the objects,
//! properties, tags and resource type associations inside them, plus their JSON schemas.
//!
//! It owns the `gl_md_` tables and the metadef policy rules. It shares the image service's
//! database and settings but no image state: nothing here reads or changes images.
//! Behaviour follows glance/api/v2/metadef_*.py and glance/db/sqlalchemy/metadef_api.

mod api;
pub mod db;
pub mod model;
pub mod policy;
pub mod schemas;
mod service;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferro_common::Error;
use ferro_http::FaultStyle;
use ferro_policy::{DefaultRule, Enforcer};

use crate::Images;

/// The metadef API's routes (`/v2/metadefs/...`, `/v2/schemas/metadefs/...`), ready to be
/// merged into the image router whatever its state type.
pub fn router<S>(state: Arc<Images>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    api::routes().with_state(Arc::new(Metadefs::new(state)))
}

/// The metadef service: the image service's database and settings, and an enforcer that
/// knows Glance's image and metadef rules with the operator's overrides.
pub struct Metadefs {
    images: Arc<Images>,
    /// `None` when the rules could not be built: every request then fails closed (500).
    enforcer: Option<Enforcer>,
    /// Set once the seeded resource types exist.
    seeded: tokio::sync::OnceCell<()>,
}

impl Metadefs {
    /// The service over `images`' database, its policy file applied to both rule sets.
    pub fn new(images: Arc<Images>) -> Metadefs {
        let rules: Vec<DefaultRule> = crate::policy::GLANCE_DEFAULTS
            .iter()
            .chain(policy::METADEF_DEFAULTS)
            .copied()
            .collect();
        let enforcer =
            match ferro_http::policy::enforcer(&rules, images.config.policy_file.as_deref()) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!(error = %e, "metadef policy rules could not be built");
                    None
                }
            };
        Metadefs {
            images,
            enforcer,
            seeded: tokio::sync::OnceCell::new(),
        }
    }
}

/// webob's explanation of a bare `HTTPNotFound()`.
const DEFAULT_NOT_FOUND: &str = "The resource could not be found.";

/// An error answered as a Glance fault. Glance words its metadef 404s itself, so a
/// not-found carries its whole message.
#[derive(Debug)]
pub enum Fault {
    Domain(Error),
    NotFound(String),
}

impl<E: Into<Error>> From<E> for Fault {
    fn from(e: E) -> Self {
        Fault::Domain(e.into())
    }
}

impl Fault {
    /// The HTTP status this fault answers with.
    pub fn status(&self) -> u16 {
        match self {
            Fault::Domain(e) => e.status(),
            Fault::NotFound(_) => 404,
        }
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Fault::Domain(e) => ferro_http::fault::render(FaultStyle::Glance, &e),
            Fault::NotFound(m) => {
                ferro_http::fault::render_status(FaultStyle::Glance, StatusCode::NOT_FOUND, &m)
            }
        }
    }
}

/// Result of a metadef operation.
pub type MdResult<T> = Result<T, Fault>;
