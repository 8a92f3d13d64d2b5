//! Large objects: static (SLO, a stored JSON manifest of segments, `?multipart-manifest=put`)
//! and dynamic (DLO, `X-Object-Manifest: <container>/<prefix>`), as Swift's `slo` and `dlo`
//! middlewares define them. A large object reads as its segments' bytes in order.

use md5::Digest as _;
use serde::{Deserialize, Serialize};

use crate::model::{SwiftError, SwiftResult, percent_decode};

/// Swift's `max_manifest_segments` and `max_manifest_size` defaults.
pub const MAX_SEGMENTS: usize = 1000;
pub const MAX_MANIFEST_SIZE: usize = 8 * 1024 * 1024;

/// One segment as a client lists it in `PUT ?multipart-manifest=put`.
#[derive(Debug, Deserialize)]
pub struct PutSegment {
    pub path: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
}

/// One segment as the manifest stores it (and `?multipart-manifest=get` shows it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// `/container/object`.
    pub name: String,
    pub hash: String,
    pub bytes: u64,
    pub content_type: String,
    pub last_modified: String,
}

/// Parses a manifest PUT body; 400 as Swift's `slo` answers for a bad one.
pub fn parse_put_manifest(body: &[u8]) -> SwiftResult<Vec<PutSegment>> {
    if body.len() > MAX_MANIFEST_SIZE {
        return Err(SwiftError::with_body(
            413,
            format!("Manifest File > {MAX_MANIFEST_SIZE} bytes"),
        ));
    }
    let segs: Vec<PutSegment> = serde_json::from_slice(body)
        .map_err(|_| SwiftError::bad_request("Manifest must be valid JSON.\n"))?;
    if segs.is_empty() {
        return Err(SwiftError::bad_request(
            "Manifest must have at least one segment.\n",
        ));
    }
    if segs.len() > MAX_SEGMENTS {
        return Err(SwiftError::with_body(
            413,
            format!("Too many segments; max {MAX_SEGMENTS}"),
        ));
    }
    Ok(segs)
}

/// `/container/object` (percent-encoded or not) → (container, object).
pub fn split_segment_path(path: &str) -> Option<(String, String)> {
    let decoded = percent_decode(path.trim_start_matches('/'), false)?;
    let (c, o) = decoded.split_once('/')?;
    (!c.is_empty() && !o.is_empty()).then(|| (c.to_string(), o.to_string()))
}

/// A large object's etag: md5 of its segments' etags concatenated (hex).
pub fn combined_etag<'a>(etags: impl Iterator<Item = &'a str>) -> String {
    let mut h = md5::Md5::new();
    for e in etags {
        h.update(e.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_and_etags_combine() {
        let m =
            parse_put_manifest(br#"[{"path": "/c/s1", "etag": null, "size_bytes": 3}]"#).unwrap();
        assert_eq!(m[0].path, "/c/s1");
        assert_eq!(parse_put_manifest(b"[]").unwrap_err().status, 400);
        assert_eq!(parse_put_manifest(b"{").unwrap_err().status, 400);
        assert_eq!(
            split_segment_path("/c/a%20b/c"),
            Some(("c".into(), "a b/c".into()))
        );
        assert_eq!(split_segment_path("/c"), None);
        // md5("") of an empty list; md5 of "ab" for two etags "a" and "b".
        assert_eq!(
            combined_etag(["a", "b"].into_iter()),
            "187ef4436122d1cc2f40dc2b92f0eba0"
        );
    }
}
