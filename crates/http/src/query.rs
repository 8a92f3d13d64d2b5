//! Query strings as OpenStack's Python services write them into `next`/`first` links.

/// `application/x-www-form-urlencoded`, exactly as Python's `urllib.parse.urlencode` writes
/// it (space as `+`, unreserved characters kept, everything else `%XX`).
pub fn urlencode(pairs: &[(String, String)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        out
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencode_matches_python() {
        let q = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            urlencode(&q(&[("name", "a b/c"), ("limit", "2")])),
            "name=a+b%2Fc&limit=2"
        );
        assert_eq!(urlencode(&q(&[("k", "é~")])), "k=%C3%A9~");
        assert_eq!(urlencode(&[]), "");
    }
}
