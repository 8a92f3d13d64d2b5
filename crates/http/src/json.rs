//! A JSON body extractor whose rejections are OpenStack faults (400, 413), never axum's text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use ferro_common::Error;
use serde::de::DeserializeOwned;

use crate::fault::{ApiError, FaultStyle};

/// The request body parsed as `T`. Malformed JSON, a wrong type or a missing field is a 400
/// naming the field; a body over the limit is a 413.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let style = req
            .extensions()
            .get::<FaultStyle>()
            .copied()
            .unwrap_or(FaultStyle::Keystone);
        let reject = |error| ApiError { style, error };
        if let Some(ct) = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            && !ct.starts_with("application/json")
            && !ct.contains("+json")
        {
            return Err(reject(Error::BadRequest(format!(
                "Unsupported Content-Type: {ct}"
            ))));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                reject(Error::PayloadTooLarge("Request is too large.".into()))
            } else {
                reject(Error::BadRequest(format!(
                    "Could not read the request body: {e}"
                )))
            }
        })?;
        parse(&bytes).map(Json).map_err(reject)
    }
}

/// Parses a JSON body into `T`, describing what is wrong in a client-readable 400.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.is_empty() {
        return Err(Error::BadRequest(
            "Expecting to find a JSON body in the request.".into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "Malformed JSON body"
            }
            _ => "Invalid input",
        };
        Error::BadRequest(format!("{what}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    #[test]
    fn missing_field_is_named() {
        let e = parse::<Body>(br#"{"nom": 1}"#).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("`name`"), "{e}");
    }

    #[test]
    fn malformed_json_is_a_400() {
        let e = parse::<Body>(b"{not json").unwrap_err();
        assert!(e.to_string().starts_with("Malformed JSON body"), "{e}");
    }
}
