//! Swift's vocabulary: timestamps, names and their limits, metadata headers, listings'
//! parameters, and the error every layer answers with.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Swift's constraints (`swift/common/constraints.py` defaults), published by `GET /info`.
pub const MAX_FILE_SIZE: u64 = 5_368_709_122;
pub const MAX_META_NAME_LENGTH: usize = 128;
pub const MAX_META_VALUE_LENGTH: usize = 256;
pub const MAX_META_COUNT: usize = 90;
pub const MAX_META_OVERALL_SIZE: usize = 4096;
pub const MAX_OBJECT_NAME_LENGTH: usize = 1024;
pub const MAX_CONTAINER_NAME_LENGTH: usize = 256;
pub const MAX_ACCOUNT_NAME_LENGTH: usize = 256;
pub const LISTING_LIMIT: usize = 10_000;

/// An error as Swift answers it: a status and, when upstream has one, its body text.
#[derive(Debug, Clone, PartialEq)]
pub struct SwiftError {
    pub status: u16,
    /// `None`: swob's default `<html><h1>Title</h1><p>Explanation</p></html>` page.
    pub body: Option<String>,
}

impl SwiftError {
    pub fn status(status: u16) -> Self {
        SwiftError { status, body: None }
    }

    pub fn with_body(status: u16, body: impl Into<String>) -> Self {
        SwiftError {
            status,
            body: Some(body.into()),
        }
    }

    pub fn bad_request(body: impl Into<String>) -> Self {
        Self::with_body(400, body)
    }

    pub fn not_found() -> Self {
        Self::status(404)
    }

    /// A storage-side failure: logged, answered as 503 as the proxy does when too few
    /// backends succeed.
    pub fn unavailable(context: impl std::fmt::Display) -> Self {
        tracing::error!(%context, "object storage backend failure");
        Self::status(503)
    }
}

pub type SwiftResult<T> = Result<T, SwiftError>;

/// A Swift timestamp: seconds since the epoch with five decimals (`1700000000.12345`),
/// kept as hundred-thousandths of a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

static LAST_TIMESTAMP: AtomicU64 = AtomicU64::new(0);

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.normal())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom("not a timestamp"))
    }
}

impl Timestamp {
    /// Now, strictly after every timestamp this process handed out before, so two writes in
    /// the same 10 µs still order.
    pub fn now() -> Timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64 / 10)
            .unwrap_or(0);
        let mut last = LAST_TIMESTAMP.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match LAST_TIMESTAMP.compare_exchange(last, next, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return Timestamp(next),
                Err(seen) => last = seen,
            }
        }
    }

    /// `1700000000.12345`, Swift's normal form (also the file name stem).
    pub fn normal(&self) -> String {
        format!("{:010}.{:05}", self.0 / 100_000, self.0 % 100_000)
    }

    /// Parses Swift's normal form or any `seconds[.fraction]` value (`X-Timestamp`).
    pub fn parse(s: &str) -> Option<Timestamp> {
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs: u64 = secs.parse().ok()?;
        // The first five digits of the fraction, padded with zeros.
        let frac = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(5)
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        secs.checked_mul(100_000)?.checked_add(frac).map(Timestamp)
    }

    pub fn seconds(&self) -> i64 {
        (self.0 / 100_000) as i64
    }

    /// `Last-Modified`: the timestamp rounded up to whole seconds, as an HTTP date (Swift
    /// rounds up so `If-Modified-Since` with the value it returned matches).
    pub fn http_date(&self) -> String {
        let secs = self.0.div_ceil(100_000) as i64;
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    /// Listings' `last_modified`: `2024-01-02T03:04:05.123450` (UTC, microseconds).
    pub fn iso(&self) -> String {
        let mut out = Vec::with_capacity(26);
        self.write_iso(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends [`Timestamp::iso`] to `out`, digit by digit: a listing writes one per row,
    /// and formatting machinery and a string each were a tenth of a 10,000-row listing.
    pub fn write_iso(&self, out: &mut Vec<u8>) {
        use chrono::{Datelike as _, Timelike as _};
        let secs = (self.0 / 100_000) as i64;
        let micros = (self.0 % 100_000) * 10;
        let dt = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
        let digits = |out: &mut Vec<u8>, n: u64, width: u32| {
            for i in (0..width).rev() {
                out.push(b'0' + (n / 10u64.pow(i) % 10) as u8);
            }
        };
        digits(out, dt.year().max(0) as u64, 4);
        out.push(b'-');
        digits(out, u64::from(dt.month()), 2);
        out.push(b'-');
        digits(out, u64::from(dt.day()), 2);
        out.push(b'T');
        digits(out, u64::from(dt.hour()), 2);
        out.push(b':');
        digits(out, u64::from(dt.minute()), 2);
        out.push(b':');
        digits(out, u64::from(dt.second()), 2);
        out.push(b'.');
        digits(out, micros, 6);
    }
}

/// Parses an HTTP date (`If-Modified-Since`) into unix seconds.
pub fn parse_http_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(s.trim())
        .ok()
        .map(|d| d.timestamp())
}

/// Percent-decodes a path or query component; `plus` turns `+` into a space (queries).
/// `None` when the bytes are not UTF-8.
pub fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes for a URL path or header (`X-Copied-From`), keeping `/`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Swift's name checks (`constraints.check_utf8` and the length limits): NUL is refused
/// with 412, over-long names with 400.
pub fn check_name(name: &str, max: usize, what: &str) -> SwiftResult<()> {
    if name.contains('\0') {
        return Err(SwiftError::with_body(412, "Invalid UTF8 or contains NULL"));
    }
    if name.len() > max {
        return Err(SwiftError::bad_request(format!(
            "{what} name length of {} longer than {max}",
            name.len()
        )));
    }
    Ok(())
}

/// Object names Swift refuses outright: `.` and `..` path segments (`check_object_creation`
/// refuses `.`/`..` only as whole names, but a name with such segments cannot round-trip
/// through clients that normalise paths, so it is refused as `400` too).
pub fn check_object_name(name: &str) -> SwiftResult<()> {
    check_name(name, MAX_OBJECT_NAME_LENGTH, "Object")?;
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(SwiftError::bad_request(
            "Object name cannot contain '.' or '..' path segments",
        ));
    }
    Ok(())
}

/// User metadata (`X-<Kind>-Meta-*`): lower-cased names without the prefix → values.
pub type Metadata = BTreeMap<String, String>;

/// Reads `X-<kind>-Meta-*` headers (kind: `account`, `container`, `object`). For accounts and
/// containers an empty value (or `X-Remove-<kind>-Meta-*`) deletes the key; the value is then
/// `""`, which the caller treats as a removal. An object keeps an empty value as it is (Swift's
/// object server stores every `X-Object-Meta-*` header a PUT or POST sends, empty or not, and
/// its proxy translates `X-Remove-*` only for accounts and containers).
pub fn metadata_from_headers(headers: &axum::http::HeaderMap, kind: &str) -> SwiftResult<Metadata> {
    let prefix = format!("x-{kind}-meta-");
    let remove = format!("x-remove-{kind}-meta-");
    let mut meta = Metadata::new();
    for (name, value) in headers {
        let name = name.as_str();
        let value = value
            .to_str()
            .map_err(|_| SwiftError::bad_request("Metadata values must be valid text"))?;
        if let Some(key) = name.strip_prefix(&prefix) {
            if key.is_empty() {
                return Err(SwiftError::bad_request("Metadata name cannot be empty"));
            }
            meta.insert(key.to_string(), value.trim().to_string());
        } else if kind != "object"
            && let Some(key) = name.strip_prefix(&remove)
        {
            meta.insert(key.to_string(), String::new());
        }
    }
    check_metadata(&meta, kind)?;
    Ok(meta)
}

/// `constraints.check_metadata`: name and value lengths, count and overall size.
pub fn check_metadata(meta: &Metadata, kind: &str) -> SwiftResult<()> {
    let mut size = 0;
    for (k, v) in meta {
        if k.len() > MAX_META_NAME_LENGTH {
            return Err(SwiftError::bad_request(format!(
                "Metadata name too long: X-{}-Meta-{k}",
                capitalise(kind)
            )));
        }
        if v.len() > MAX_META_VALUE_LENGTH {
            return Err(SwiftError::bad_request(format!(
                "Metadata value longer than {MAX_META_VALUE_LENGTH}: X-{}-Meta-{k}",
                capitalise(kind)
            )));
        }
        size += k.len() + v.len();
    }
    if meta.len() > MAX_META_COUNT {
        return Err(SwiftError::bad_request(format!(
            "Too many metadata items; max {MAX_META_COUNT}"
        )));
    }
    if size > MAX_META_OVERALL_SIZE {
        return Err(SwiftError::bad_request(format!(
            "Total metadata too large; max {MAX_META_OVERALL_SIZE}"
        )));
    }
    Ok(())
}

/// `object` → `Object` (header names as Swift prints them).
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Listing parameters (`?prefix=&delimiter=&marker=&end_marker=&limit=&reverse=`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub marker: String,
    pub end_marker: Option<String>,
    pub limit: usize,
    pub reverse: bool,
}

/// A listing's output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Plain,
    Json,
    Xml,
}

/// One listing entry: a name with its row, or a `subdir` rolled up at the delimiter.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Entry<T> {
    Item(String, T),
    Subdir(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_swift() {
        let t = Timestamp::parse("1700000000.12345").unwrap();
        assert_eq!(t.normal(), "1700000000.12345");
        assert_eq!(
            Timestamp::parse("1700000000").unwrap().normal(),
            "1700000000.00000"
        );
        assert_eq!(
            Timestamp::parse("1700000000.5").unwrap().normal(),
            "1700000000.50000"
        );
        assert!(Timestamp::parse("abc").is_none());
        assert!(Timestamp::parse("-1").is_none());
        assert_eq!(t.iso(), "2023-11-14T22:13:20.123450");
        assert_eq!(t.http_date(), "Tue, 14 Nov 2023 22:13:21 GMT");
        let a = Timestamp::now();
        let b = Timestamp::now();
        assert!(b > a);
    }

    #[test]
    fn names_and_metadata_are_checked() {
        assert_eq!(check_object_name("a\0b").unwrap_err().status, 412);
        assert_eq!(
            check_object_name(&"x".repeat(1025)).unwrap_err().status,
            400
        );
        assert_eq!(check_object_name("a/../b").unwrap_err().status, 400);
        assert!(check_object_name("a/b.c/d").is_ok());
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a%2Fb%", false).unwrap(), "a/b%");
        assert!(percent_decode("%ff", false).is_none());
        assert_eq!(percent_encode("a b/ü"), "a%20b/%C3%BC");
        let mut m = Metadata::new();
        m.insert("k".repeat(129), "v".into());
        assert_eq!(check_metadata(&m, "object").unwrap_err().status, 400);
    }
}
