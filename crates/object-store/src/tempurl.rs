//! Temporary URLs (Swift's `tempurl` middleware): a URL signed with an account's or
//! container's `Temp-URL-Key` grants one method on one object (or every object under a
//! prefix) until it expires, without a token.
//!
//! The signature is an HMAC of `"<METHOD>\n<expires>\n<path>"` (path `/v1/<account>/<c>/<o>`,
//! or `prefix:/v1/<account>/<c>/<prefix>`), as hex (SHA-1: 40 digits, SHA-256: 64, SHA-512:
//! 128) or as `sha256:<base64>` / `sha512:<base64>`.

use base64::Engine as _;

/// A hash function for HMAC: its output for `data`, and its block size.
type HashFn = fn(&[u8]) -> Vec<u8>;

fn sha1(data: &[u8]) -> Vec<u8> {
    <sha1::Sha1 as sha1::Digest>::digest(data).to_vec()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    <sha2::Sha256 as sha2::Digest>::digest(data).to_vec()
}

fn sha512(data: &[u8]) -> Vec<u8> {
    <sha2::Sha512 as sha2::Digest>::digest(data).to_vec()
}

/// HMAC (RFC 2104) over `hash` with `block` bytes per block.
pub fn hmac(hash: HashFn, block: usize, key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > block {
        hash(key)
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&hash(&inner));
    hash(&outer)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature's digest and raw bytes, from its text form; `None` when malformed.
fn decode_signature(sig: &str) -> Option<(HashFn, usize, Vec<u8>)> {
    let engine = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('=').replace('+', "-").replace('/', "_"))
            .ok()
    };
    if let Some(b64) = sig.strip_prefix("sha256:") {
        return engine(b64).map(|b| (sha256 as HashFn, 64, b));
    }
    if let Some(b64) = sig.strip_prefix("sha512:") {
        return engine(b64).map(|b| (sha512 as HashFn, 128, b));
    }
    let bytes: Option<Vec<u8>> = (0..sig.len())
        .step_by(2)
        .map(|i| {
            sig.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let bytes = bytes?;
    match sig.len() {
        40 => Some((sha1 as HashFn, 64, bytes)),
        64 => Some((sha256 as HashFn, 64, bytes)),
        128 => Some((sha512 as HashFn, 128, bytes)),
        _ => None,
    }
}

/// `temp_url_expires`: unix seconds or ISO 8601 UTC (`2024-01-02T03:04:05Z`).
pub fn parse_expires(v: &str) -> Option<i64> {
    if let Ok(n) = v.parse::<i64>() {
        return (n >= 0).then_some(n);
    }
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|d| d.and_utc().timestamp())
}

/// Whether `sig` signs `method` on `path` until `expires` with one of `keys`. `path` is the
/// object's `/v1/...` path, or `prefix:/v1/.../<prefix>` for a prefix URL.
pub fn valid(sig: &str, method: &str, expires: &str, path: &str, keys: &[String]) -> bool {
    let Some((hash, block, want)) = decode_signature(sig) else {
        return false;
    };
    let message = format!("{method}\n{expires}\n{path}");
    keys.iter().any(|k| {
        let got = hmac(hash, block, k.as_bytes(), message.as_bytes());
        // Constant-time comparison: a signature check must not leak how much matched.
        got.len() == want.len() && got.iter().zip(&want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    })
}

/// The hex signature a client computes with SHA-256 (tests and docs).
pub fn sign_sha256(key: &str, method: &str, expires: i64, path: &str) -> String {
    let message = format!("{method}\n{expires}\n{path}");
    hex(&hmac(sha256, 64, key.as_bytes(), message.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_and_signatures_check() {
        // RFC 4231 test case 2.
        let mac = hmac(sha256, 64, b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 2202 test case 2 (HMAC-SHA1).
        let mac = hmac(sha1, 64, b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        let keys = vec!["k1".to_string(), "k2".to_string()];
        let sig = sign_sha256("k2", "GET", 2000000000, "/v1/AUTH_a/c/o");
        assert!(valid(&sig, "GET", "2000000000", "/v1/AUTH_a/c/o", &keys));
        assert!(!valid(&sig, "PUT", "2000000000", "/v1/AUTH_a/c/o", &keys));
        assert!(!valid(&sig, "GET", "2000000001", "/v1/AUTH_a/c/o", &keys));
        assert!(!valid("zz", "GET", "2000000000", "/v1/AUTH_a/c/o", &keys));
        let raw = hmac(sha512, 128, b"k1", b"GET\n2000000000\n/v1/AUTH_a/c/o");
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(valid(
            &format!("sha512:{b64}"),
            "GET",
            "2000000000",
            "/v1/AUTH_a/c/o",
            &keys
        ));
        assert_eq!(parse_expires("2033-05-18T03:33:20Z"), Some(2000000000));
        assert_eq!(parse_expires("x"), None);
    }
}
