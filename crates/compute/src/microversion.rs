//! Nova's microversions: what a request asked for, what this API honours, and the headers
//! every versioned answer carries.
//!
//! A request names its version in `OpenStack-API-Version: compute X.Y` (the standard header,
//! which may list several services: `compute 2.60, placement 1.10`) or in the legacy
//! `X-OpenStack-Nova-API-Version: X.Y`; the standard header wins when both name compute.
//! Without either, the request gets the minimum, 2.1. `latest` means the maximum. A
//! malformed version is a 400, one outside `[MIN, MAX]` a 406, both with upstream's words
//! (nova/api/openstack/wsgi.py `set_api_version_request`).
//!
//! Handlers take an [`ApiVersion`] argument (an axum extractor) and branch on
//! [`ApiVersion::at_least`]; [`version_headers`] is the layer that stamps the negotiated
//! version on every answer except the 401s of authentication, as upstream's `Resource` and
//! `Fault` do. Put the extractor after `Auth` in a handler's arguments so that, as upstream,
//! a missing token answers 401 before a bad version answers 406.
//!
//! The maximum is upstream's at the time of writing (2.104). Every microversion that changes
//! a resource this crate serves is honoured for that resource; see `VERSION_NOTES` for the
//! ones that only touch resources still to come and what a later slice must do about them.

use axum::extract::{FromRequestParts, Request};
use axum::http::header::VARY;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::fault::Fault;

/// The standard microversion header (RFC-style, several services in one header).
pub const STANDARD_HEADER: &str = "OpenStack-API-Version";
/// Nova's own header, from before the standard one existed.
pub const LEGACY_HEADER: &str = "X-OpenStack-Nova-API-Version";
/// The service type the standard header names.
pub const SERVICE_TYPE: &str = "compute";

/// A negotiated compute API version, `major.minor`, ordered as numbers (2.10 > 2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

/// The oldest version served (also the default).
pub const MIN: ApiVersion = ApiVersion::new(2, 1);
/// The newest version served: upstream's `_MAX_API_VERSION`.
pub const MAX: ApiVersion = ApiVersion::new(2, 104);

/// Microversions that change nothing this crate serves yet, and what their resource must do
/// when it arrives (a checklist for the next slices; the version history is
/// nova/api/openstack/compute/rest_api_version_history.rst).
pub const VERSION_NOTES: &[(&str, &str)] = &[
    (
        "2.86",
        "extra spec validation of known namespaces (hw:, trait:, resources:, ...) on \
         os-extra_specs create/update: not done yet, values are stored as sent \
         (TODO-compat)",
    ),
    (
        "2.3-2.100",
        "server shape changes: the servers slice branches on ApiVersion::at_least",
    ),
    (
        "2.102",
        "unknown query parameters are refused on every list/show it touches: \
         each query schema of a new resource gets its `additionalProperties: false` range",
    ),
];

impl ApiVersion {
    pub const fn new(major: u32, minor: u32) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// Whether this request's version is `major.minor` or newer (upstream `is_supported`).
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion::new(major, minor)
    }

    /// Whether this version lies in `[lo, hi]` (inclusive, as upstream's ranges are).
    pub fn within(self, lo: (u32, u32), hi: (u32, u32)) -> bool {
        self >= ApiVersion::new(lo.0, lo.1) && self <= ApiVersion::new(hi.0, hi.1)
    }

    /// Parses `X.Y` as upstream's `APIVersionRequest` does: no leading zeros, no sign, minor
    /// `0` allowed.
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let (major, minor) = text.split_once('.')?;
        let number = |s: &str, zero_ok: bool| -> Option<u32> {
            let digits_ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let leading_ok = !s.starts_with('0') || (zero_ok && s == "0");
            if digits_ok && leading_ok {
                s.parse().ok()
            } else {
                None
            }
        };
        Some(ApiVersion::new(number(major, false)?, number(minor, true)?))
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version string the request asked for, if any (microversion-parse's `get_version`).
fn requested(headers: &HeaderMap) -> Option<String> {
    let standard: Vec<&str> = headers
        .get_all(STANDARD_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for item in standard.iter().flat_map(|h| h.split(',')) {
        let mut words = item.split_whitespace();
        if let (Some(service), Some(version)) = (words.next(), words.next())
            && service.eq_ignore_ascii_case(SERVICE_TYPE)
        {
            return Some(version.to_string());
        }
    }
    headers
        .get(LEGACY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The version a request negotiates, or the fault upstream answers.
pub fn negotiate(headers: &HeaderMap) -> Result<ApiVersion, Fault> {
    let Some(text) = requested(headers) else {
        return Ok(MIN);
    };
    if text == "latest" {
        return Ok(MAX);
    }
    let Some(v) = ApiVersion::parse(&text) else {
        return Err(Fault::bad_request(format!(
            "API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum."
        )));
    };
    if v < MIN || v > MAX {
        return Err(Fault::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Version {v} is not supported by the API. Minimum is {MIN} and maximum is {MAX}."
            ),
        ));
    }
    Ok(v)
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = Fault;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(v) = parts.extensions.get::<ApiVersion>() {
            return Ok(*v);
        }
        let v = negotiate(&parts.headers)?;
        parts.extensions.insert(v);
        Ok(v)
    }
}

/// Adds the three version headers of `version` to `headers`.
pub fn stamp(headers: &mut HeaderMap, version: ApiVersion) {
    if let Ok(v) = HeaderValue::from_str(&format!("{SERVICE_TYPE} {version}")) {
        headers.insert(STANDARD_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
        headers.insert(LEGACY_HEADER, v);
    }
    headers.append(VARY, HeaderValue::from_static(STANDARD_HEADER));
    headers.append(VARY, HeaderValue::from_static(LEGACY_HEADER));
}

/// Middleware for the versioned API: every answer to a request with a valid version names
/// that version, faults included; the 401 of a missing or bad token does not (it comes from
/// keystonemiddleware upstream, before Nova sees the request), nor does the fault of an
/// invalid version.
pub async fn version_headers(req: Request, next: Next) -> Response {
    let version = negotiate(req.headers()).ok();
    let request_id = req
        .extensions()
        .get::<ferro_http::RequestId>()
        .map(|r| r.0.clone());
    let mut resp = next.run(req).await;
    // Nova's compute_req_id middleware: the request id under its legacy name as well.
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        resp.headers_mut().insert("x-compute-request-id", id);
    }
    if let Some(v) = version
        && resp.status() != StatusCode::UNAUTHORIZED
    {
        stamp(resp.headers_mut(), v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn parse_follows_upstream_grammar() {
        assert_eq!(ApiVersion::parse("2.1"), Some(ApiVersion::new(2, 1)));
        assert_eq!(ApiVersion::parse("2.0"), Some(ApiVersion::new(2, 0)));
        assert_eq!(ApiVersion::parse("2.104"), Some(ApiVersion::new(2, 104)));
        for bad in [
            "2", "2.01", "02.1", "2.1.1", "", "2.", ".1", "a.b", "-2.1", "2.+1",
        ] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad}");
        }
        assert!(ApiVersion::new(2, 10) > ApiVersion::new(2, 9));
    }

    #[test]
    fn negotiation_of_headers() {
        assert_eq!(negotiate(&headers(&[])).unwrap(), MIN);
        let h = headers(&[("OpenStack-API-Version", "compute 2.55")]);
        assert_eq!(negotiate(&h).unwrap(), ApiVersion::new(2, 55));
        let h = headers(&[("OpenStack-API-Version", "placement 1.2, Compute 2.61")]);
        assert_eq!(negotiate(&h).unwrap(), ApiVersion::new(2, 61));
        let h = headers(&[("X-OpenStack-Nova-API-Version", "2.10")]);
        assert_eq!(negotiate(&h).unwrap(), ApiVersion::new(2, 10));
        // The standard header wins; one naming another service falls back to the legacy one.
        let h = headers(&[
            ("OpenStack-API-Version", "compute 2.20"),
            ("X-OpenStack-Nova-API-Version", "2.10"),
        ]);
        assert_eq!(negotiate(&h).unwrap(), ApiVersion::new(2, 20));
        let h = headers(&[
            ("OpenStack-API-Version", "volume 3.0"),
            ("X-OpenStack-Nova-API-Version", "2.10"),
        ]);
        assert_eq!(negotiate(&h).unwrap(), ApiVersion::new(2, 10));
        let h = headers(&[("OpenStack-API-Version", "compute latest")]);
        assert_eq!(negotiate(&h).unwrap(), MAX);
    }

    #[test]
    fn bad_versions_are_400_and_406_with_upstream_words() {
        let e = negotiate(&headers(&[("OpenStack-API-Version", "compute 2.x")])).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message(),
            "API Version String 2.x is of invalid format. Must be of format MajorNum.MinorNum."
        );
        let e = negotiate(&headers(&[("OpenStack-API-Version", "compute 2.105")])).unwrap_err();
        assert_eq!(e.status(), StatusCode::NOT_ACCEPTABLE);
        assert_eq!(
            e.message(),
            "Version 2.105 is not supported by the API. Minimum is 2.1 and maximum is 2.104."
        );
        let e = negotiate(&headers(&[("X-OpenStack-Nova-API-Version", "3.0")])).unwrap_err();
        assert_eq!(e.status(), StatusCode::NOT_ACCEPTABLE);
        let e = negotiate(&headers(&[("X-OpenStack-Nova-API-Version", "2.0")])).unwrap_err();
        assert_eq!(e.status(), StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn stamped_headers() {
        let mut h = HeaderMap::new();
        stamp(&mut h, ApiVersion::new(2, 61));
        assert_eq!(h.get(STANDARD_HEADER).unwrap(), "compute 2.61");
        assert_eq!(h.get(LEGACY_HEADER).unwrap(), "2.61");
        assert_eq!(h.get_all(VARY).iter().count(), 2);
    }
}
