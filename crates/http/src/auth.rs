//! Token validation: the seam between every API and identity.
//!
//! When identity runs in the same process its validator is called directly (no HTTP);
//! otherwise a remote validator with a short cache stands behind the same trait.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ferro_common::{Error, RequestContext};

use crate::RequestId;
use crate::fault::{ApiError, FaultStyle};

/// Turns an `X-Auth-Token` into the caller's context, or refuses it.
#[async_trait::async_trait]
pub trait TokenValidator: Send + Sync {
    /// Validates `token`; an invalid, expired or revoked token is `Error::Unauthenticated`.
    async fn validate(&self, token: &str) -> Result<RequestContext, Error>;
}

/// The authenticated caller of a request that requires a token.
pub struct Auth(pub RequestContext);

/// The caller, when the request carried a token (routes open to anonymous callers).
pub struct MaybeAuth(pub Option<RequestContext>);

fn style(parts: &Parts) -> FaultStyle {
    parts
        .extensions
        .get::<FaultStyle>()
        .copied()
        .unwrap_or(FaultStyle::Keystone)
}

async fn authenticate(parts: &Parts) -> Result<Option<RequestContext>, Error> {
    let Some(token) = parts.headers.get("x-auth-token") else {
        return Ok(None);
    };
    let token = token.to_str().map_err(|_| {
        Error::Unauthenticated("The request you have made requires authentication.".into())
    })?;
    let validator = parts
        .extensions
        .get::<Arc<dyn TokenValidator>>()
        .ok_or_else(|| Error::internal("no token validator installed"))?;
    let mut ctx = validator.validate(token).await?;
    if let Some(RequestId(id)) = parts.extensions.get::<RequestId>() {
        ctx.request_id = id.clone();
    }
    Ok(Some(ctx))
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match authenticate(parts).await {
            Ok(Some(ctx)) => Ok(Auth(ctx)),
            Ok(None) => Err(ApiError {
                style: style(parts),
                error: Error::Unauthenticated(
                    "The request you have made requires authentication.".into(),
                ),
            }),
            Err(error) => Err(ApiError {
                style: style(parts),
                error,
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts)
            .await
            .map(MaybeAuth)
            .map_err(|error| ApiError {
                style: style(parts),
                error,
            })
    }
}
