//! Key material for key pairs, as nova/crypto.py handles it: checking and fingerprinting an
//! imported OpenSSH public key (MD5 of the key blob, `aa:bb:...`) or X.509 certificate
//! (SHA-1 of its DER), and generating the RSA-2048 pair Nova makes for requests older than
//! 2.92 (public key `ssh-rsa <blob> Generated-by-Nova`, private key in PKCS#1 PEM as paramiko
//! writes it).
//!
//! Checks follow what pyca/cryptography's `load_ssh_public_key` refuses: an unknown or
//! mismatched key type, a blob that does not parse, and trailing bytes after the key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::Digest as _;

/// Why key material was refused (the `reason` of upstream's `InvalidKeypair`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// Reads an SSH wire-format `string` (u32 length + bytes).
fn take_string<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    if data.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    if rest.len() < len {
        return None;
    }
    let (s, tail) = rest.split_at(len);
    *data = tail;
    Some(s)
}

/// Reads an SSH `mpint` as its magnitude bytes; refuses negatives.
fn take_positive_mpint<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let m = take_string(data)?;
    if m.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let start = m.iter().position(|b| *b != 0).unwrap_or(m.len());
    Some(&m[start..])
}

/// Compares magnitudes (big-endian, no leading zeros).
fn less_than(a: &[u8], b: &[u8]) -> bool {
    a.len() < b.len() || (a.len() == b.len() && a < b)
}

/// Parses the key blob of `key_type`; `Err` if it is not a well-formed key of that type.
fn check_blob(key_type: &str, blob: &[u8]) -> Result<(), &'static str> {
    let mut data = blob;
    let inner = take_string(&mut data).ok_or("Key is not in the proper format")?;
    if inner != key_type.as_bytes() {
        return Err("Key header and key body contain different key type values.");
    }
    let malformed = "Key is not in the proper format";
    match key_type {
        "ssh-rsa" => {
            let e = take_positive_mpint(&mut data).ok_or(malformed)?;
            let n = take_positive_mpint(&mut data).ok_or(malformed)?;
            // cryptography's `_check_public_key_components`.
            if less_than(n, &[3]) {
                return Err("n must be >= 3.");
            }
            if less_than(e, &[3]) || !less_than(e, n) {
                return Err("e must be >= 3 and < n.");
            }
            if e.last().is_some_and(|b| b & 1 == 0) {
                return Err("e must be odd.");
            }
        }
        "ssh-dss" => {
            for _ in 0..4 {
                take_positive_mpint(&mut data).ok_or(malformed)?;
            }
        }
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            let k = take_string(&mut data).ok_or(malformed)?;
            if k.len() != 32 {
                return Err("Invalid key format");
            }
            if key_type.starts_with("sk-") {
                take_string(&mut data).ok_or(malformed)?;
            }
        }
        "ecdsa-sha2-nistp256"
        | "ecdsa-sha2-nistp384"
        | "ecdsa-sha2-nistp521"
        | "sk-ecdsa-sha2-nistp256@openssh.com" => {
            let (curve, coord) = match key_type {
                "ecdsa-sha2-nistp384" => ("nistp384", 48),
                "ecdsa-sha2-nistp521" => ("nistp521", 66),
                _ => ("nistp256", 32),
            };
            let named = take_string(&mut data).ok_or(malformed)?;
            if named != curve.as_bytes() {
                return Err("Curve name mismatch");
            }
            // An uncompressed point: 0x04 || X || Y.
            // TODO-compat: cryptography also checks that the point lies on the curve.
            let point = take_string(&mut data).ok_or(malformed)?;
            if point.len() != 1 + 2 * coord || point[0] != 4 {
                return Err("Invalid EC key.");
            }
            if key_type.starts_with("sk-") {
                take_string(&mut data).ok_or(malformed)?;
            }
        }
        _ => return Err("Key type is not supported."),
    }
    if !data.is_empty() {
        return Err("Unexpected extra data after key");
    }
    Ok(())
}

fn colon_hex(digest: &[u8]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `generate_fingerprint`: checks an OpenSSH public key line (`type base64 [comment]`) and
/// returns the MD5 fingerprint of its blob.
pub fn ssh_fingerprint(public_key: &str) -> Result<String, Invalid> {
    let fail = || Invalid("failed to generate fingerprint".into());
    let mut parts = public_key.split(' ');
    let key_type = parts.next().ok_or_else(fail)?;
    // Nova fingerprints `public_key.split(' ')[1]`; cryptography reads up to whitespace.
    let body = parts.next().ok_or_else(fail)?.trim_end();
    if key_type.is_empty() || body.is_empty() || body.contains(char::is_whitespace) {
        return Err(fail());
    }
    let blob = STANDARD.decode(body).map_err(|_| fail())?;
    check_blob(key_type, &blob).map_err(|_| fail())?;
    Ok(colon_hex(&md5::Md5::digest(&blob)))
}

/// Reads one DER TLV header at `data[pos..]`: `(tag, content start, content end)`.
fn der_header(data: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let tag = *data.get(pos)?;
    let first = *data.get(pos + 1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(pos + 2 + i)? as usize;
        }
        (len, pos + 2 + n)
    };
    let end = start.checked_add(len)?;
    (end <= data.len()).then_some((tag, start, end))
}

/// The DER of the single certificate in a PEM text, checked for X.509's outer shape
/// (`SEQUENCE { SEQUENCE tbs, SEQUENCE algorithm, BIT STRING signature }`).
fn pem_certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let unable = "Unable to load PEM file. See https://cryptography.io/en/latest/faq/#why-can-t-i-import-my-pem-file for more details.";
    let start = pem
        .find(BEGIN)
        .ok_or(format!("{unable} MalformedFraming"))?
        + BEGIN.len();
    let end = pem[start..]
        .find(END)
        .ok_or(format!("{unable} MalformedFraming"))?
        + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| format!("{unable} Base64Decode"))?;
    let asn1 = "error parsing asn1 value: ParseError { kind: InvalidValue }".to_string();
    let (tag, body, end) = der_header(&der, 0).ok_or(asn1.clone())?;
    if tag != 0x30 || end != der.len() {
        return Err(asn1);
    }
    let mut pos = body;
    for want in [0x30u8, 0x30, 0x03] {
        let (t, _, e) = der_header(&der, pos).ok_or(asn1.clone())?;
        if t != want {
            return Err(asn1);
        }
        pos = e;
    }
    if pos != end {
        return Err(asn1);
    }
    Ok(der)
}

/// `generate_x509_fingerprint`: the SHA-1 fingerprint of a PEM certificate.
pub fn x509_fingerprint(pem: &str) -> Result<String, Invalid> {
    let der = pem_certificate_der(pem).map_err(|e| {
        Invalid(format!(
            "failed to generate X509 fingerprint. Error message: {e}"
        ))
    })?;
    Ok(colon_hex(&sha1::Sha1::digest(&der)))
}

/// An SSH `mpint` of a positive big-endian magnitude.
fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let start = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let m = &magnitude[start..];
    let pad = m.first().is_some_and(|b| b & 0x80 != 0);
    let len = m.len() + usize::from(pad);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    if pad {
        out.push(0);
    }
    out.extend_from_slice(m);
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// A generated key pair: `(private key PEM, public key line, fingerprint)`.
pub struct Generated {
    pub private_key: String,
    pub public_key: String,
    pub fingerprint: String,
}

/// `generate_key_pair`: a fresh RSA key of `bits` bits.
pub fn generate_rsa(bits: usize) -> Result<Generated, String> {
    use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
    use rsa::traits::PublicKeyParts;

    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|e| e.to_string())?;
    let private_key = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-rsa");
    put_mpint(&mut blob, &key.e().to_be_bytes());
    put_mpint(&mut blob, &key.n().as_ref().to_be_bytes());
    let public_key = format!("ssh-rsa {} Generated-by-Nova", STANDARD.encode(&blob));
    let fingerprint = ssh_fingerprint(&public_key).map_err(|e| e.0)?;
    Ok(Generated {
        private_key,
        public_key,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ed25519 key (from OpenSSH's test data shape), and its MD5 fingerprint computed
    /// independently with `ssh-keygen -l -E md5` semantics.
    fn ed25519_line() -> (String, String) {
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, &[7u8; 32]);
        let fp = colon_hex(&md5::Md5::digest(&blob));
        (
            format!("ssh-ed25519 {} me@host", STANDARD.encode(&blob)),
            fp,
        )
    }

    #[test]
    fn ssh_keys_are_checked_and_fingerprinted() {
        let (line, fp) = ed25519_line();
        assert_eq!(ssh_fingerprint(&line).unwrap(), fp);
        assert_eq!(fp.len(), 47);
        // Without a comment, and with a trailing newline.
        let bare = line.rsplit_once(' ').unwrap().0.to_string();
        assert_eq!(ssh_fingerprint(&bare).unwrap(), fp);
        assert_eq!(ssh_fingerprint(&format!("{bare}\n")).unwrap(), fp);
        for bad in [
            "",
            "ssh-ed25519",
            "not a key",
            "ssh-rsa AAAA",
            &line.replacen("ssh-ed25519", "ssh-rsa", 1),
        ] {
            assert!(ssh_fingerprint(bad).is_err(), "{bad}");
        }
        // Extra bytes after the key are refused.
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, &[7u8; 32]);
        blob.push(0);
        let extra = format!("ssh-ed25519 {}", STANDARD.encode(&blob));
        assert!(ssh_fingerprint(&extra).is_err());
    }

    #[test]
    fn generated_rsa_keys_import_again() {
        let g = generate_rsa(1024).unwrap();
        assert!(g.private_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(g.public_key.starts_with("ssh-rsa AAAAB3NzaC1yc2E"));
        assert!(g.public_key.ends_with(" Generated-by-Nova"));
        assert_eq!(ssh_fingerprint(&g.public_key).unwrap(), g.fingerprint);
    }

    #[test]
    fn x509_certificates_are_fingerprinted_by_sha1_of_der() {
        // A minimal DER with X.509's outer shape.
        let der = [
            0x30, 0x0a, 0x30, 0x02, 0x02, 0x00, 0x30, 0x00, 0x03, 0x02, 0x00, 0x00,
        ];
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(der)
        );
        assert_eq!(
            x509_fingerprint(&pem).unwrap(),
            colon_hex(&sha1::Sha1::digest(der))
        );
        assert!(x509_fingerprint("ssh-rsa AAAA").is_err());
        let broken = pem.replace("MAow", "MAsw");
        assert!(x509_fingerprint(&broken).is_err());
    }
}
