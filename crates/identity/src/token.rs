//! Fernet tokens: the key repository and the payload inside a token.
//!
//! The key repository follows keystone-manage's semantics: files named by integers in one
//! directory; `0` is the staged key (the next primary, already accepted for validation), the
//! highest number is the primary that encrypts, the rest are secondary keys that still
//! validate. Rotation promotes the staged key, stages a new one and drops the oldest
//! secondaries beyond `max_active_keys`.
//!
//! The payload is msgpack, carrying what upstream's token formatters carry — user, methods,
//! scope, expiry, audit ids, application credential — with uuid-hex ids packed as 16 bytes,
//! so revocation can match on user, project, domain and audit ids. The issue time is the
//! Fernet timestamp, as upstream reads it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fernet::{Fernet, MultiFernet};
use ferro_common::Error;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The Fernet keys in use, read from a key repository directory.
pub struct KeyRing {
    fernet: MultiFernet,
}

/// Lists `(number, path)` of the key files in `dir`, ascending.
fn key_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        {
            keys.push((n, entry.path()));
        }
    }
    keys.sort();
    Ok(keys)
}

fn write_key(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(Fernet::generate_key().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Creates the repository with a staged key 0 and a primary key 1 unless it has keys
/// (keystone-manage fernet_setup).
pub fn setup_repository(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if key_files(dir)?.is_empty() {
        write_key(&dir.join("0"))?;
        rotate_repository(dir, 3)?;
    }
    Ok(())
}

/// Promotes the staged key to primary, stages a new key, and removes the oldest secondary
/// keys so that at most `max_active_keys` remain (keystone-manage fernet_rotate).
pub fn rotate_repository(dir: &Path, max_active_keys: usize) -> std::io::Result<()> {
    let keys = key_files(dir)?;
    let next = keys.iter().map(|(n, _)| n + 1).max().unwrap_or(1).max(1);
    let staged = dir.join("0");
    if staged.exists() {
        std::fs::rename(&staged, dir.join(next.to_string()))?;
    } else {
        write_key(&dir.join(next.to_string()))?;
    }
    write_key(&staged)?;
    let mut numbered: Vec<_> = key_files(dir)?
        .into_iter()
        .filter(|(n, _)| *n != 0)
        .collect();
    // The staged key counts as active, as upstream counts it.
    while numbered.len() + 1 > max_active_keys.max(2) {
        let (_, oldest) = numbered.remove(0);
        std::fs::remove_file(oldest)?;
    }
    Ok(())
}

impl KeyRing {
    /// Loads every key of the repository: the primary first (it encrypts), then the rest.
    pub fn load(dir: &Path) -> Result<KeyRing, Error> {
        let mut keys = key_files(dir)
            .map_err(|e| Error::internal(format!("fernet key repository {dir:?}: {e}")))?;
        keys.reverse();
        let mut fernets = Vec::new();
        for (_, path) in keys {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::internal(format!("{path:?}: {e}")))?;
            let f = Fernet::new(text.trim())
                .ok_or_else(|| Error::internal(format!("{path:?} is not a Fernet key")))?;
            fernets.push(f);
        }
        if fernets.len() < 2 {
            return Err(Error::internal(format!(
                "fernet key repository {dir:?} has no primary key"
            )));
        }
        Ok(KeyRing {
            fernet: MultiFernet::new(fernets),
        })
    }

    /// Encrypts `payload` with the primary key at `issued_at` (seconds) and strips the
    /// padding, as keystone does.
    pub fn seal(&self, payload: &Payload) -> Result<String, Error> {
        let bytes = rmp_serde::to_vec(payload).map_err(Error::internal)?;
        Ok(self
            .fernet
            .encrypt(&bytes)
            .trim_end_matches('=')
            .to_string())
    }

    /// Decrypts a token with any key; `None` when no key opens it or it is malformed.
    pub fn open(&self, token: &str) -> Option<(Payload, i64)> {
        let bytes = self.fernet.decrypt(token).ok()?;
        let payload: Payload = rmp_serde::from_slice(&bytes).ok()?;
        Some((payload, issued_at_micros(token)?))
    }
}

/// The Fernet timestamp (seconds since the epoch) of a token, in microseconds.
fn issued_at_micros(token: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    let ts: [u8; 8] = raw.get(1..9)?.try_into().ok()?;
    i64::try_from(u64::from_be_bytes(ts))
        .ok()?
        .checked_mul(1_000_000)
}

/// An id packed as upstream packs it: uuid-hex ids as 16 bytes, anything else as text.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PackedId(bool, ByteBuf);

impl PackedId {
    pub fn pack(id: &str) -> PackedId {
        if id.len() == 32
            && let Ok(u) = uuid::Uuid::parse_str(id)
        {
            return PackedId(true, ByteBuf::from(u.as_bytes().to_vec()));
        }
        PackedId(false, ByteBuf::from(id.as_bytes().to_vec()))
    }

    pub fn unpack(&self) -> Option<String> {
        if self.0 {
            Some(uuid::Uuid::from_slice(&self.1).ok()?.simple().to_string())
        } else {
            String::from_utf8(self.1.to_vec()).ok()
        }
    }
}

/// Upstream's payload versions: which scope a token carries.
pub mod version {
    pub const UNSCOPED: u8 = 0;
    pub const DOMAIN: u8 = 1;
    pub const PROJECT: u8 = 2;
    pub const SYSTEM: u8 = 8;
    pub const APPLICATION_CREDENTIAL: u8 = 9;
}

/// Authentication methods as a bit set, in upstream's default method order.
pub const METHODS: [&str; 6] = [
    "external",
    "password",
    "token",
    "oauth1",
    "mapped",
    "application_credential",
];

/// What a token says, before it is checked against the database.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Payload {
    pub version: u8,
    pub user_id: PackedId,
    pub methods: u32,
    /// Project, domain or `"all"` (system), depending on `version`.
    pub scope: Option<PackedId>,
    /// Seconds since the epoch, as a float (upstream's form).
    pub expires_at: f64,
    pub audit_ids: Vec<ByteBuf>,
    pub app_cred_id: Option<PackedId>,
}

/// Packs method names into the bit set; unknown names are dropped.
pub fn methods_to_int(methods: &[String]) -> u32 {
    METHODS
        .iter()
        .enumerate()
        .filter(|(_, m)| methods.iter().any(|x| x == *m))
        .fold(0, |acc, (i, _)| acc | (1 << i))
}

/// Unpacks the bit set into method names.
pub fn int_to_methods(bits: u32) -> Vec<String> {
    METHODS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, m)| m.to_string())
        .collect()
}

/// A new audit id: 16 random bytes, url-safe base64 without padding (22 characters).
pub fn new_audit_id() -> String {
    URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// Packs an audit id into its bytes.
pub fn pack_audit_id(audit_id: &str) -> ByteBuf {
    ByteBuf::from(
        URL_SAFE_NO_PAD
            .decode(audit_id)
            .unwrap_or_else(|_| audit_id.as_bytes().to_vec()),
    )
}

/// Unpacks audit id bytes.
pub fn unpack_audit_id(bytes: &ByteBuf) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Payload {
        Payload {
            version: version::PROJECT,
            user_id: PackedId::pack(&ferro_common::new_hex_id()),
            methods: methods_to_int(&["password".into()]),
            scope: Some(PackedId::pack("default")),
            expires_at: 1.9e9,
            audit_ids: vec![pack_audit_id(&new_audit_id())],
            app_cred_id: None,
        }
    }

    #[test]
    fn ids_pack_compactly_and_round_trip() {
        let hex = ferro_common::new_hex_id();
        let p = PackedId::pack(&hex);
        assert_eq!(p.1.len(), 16);
        assert_eq!(p.unpack().as_deref(), Some(hex.as_str()));
        assert_eq!(
            PackedId::pack("default").unpack().as_deref(),
            Some("default")
        );
        let a = new_audit_id();
        assert_eq!(a.len(), 22);
        assert_eq!(unpack_audit_id(&pack_audit_id(&a)), a);
        assert_eq!(
            int_to_methods(methods_to_int(&["token".into(), "password".into()])),
            ["password", "token"]
        );
    }

    #[test]
    fn tokens_made_with_any_non_expired_key_validate_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        setup_repository(dir.path()).unwrap();
        let names = |d: &Path| {
            key_files(d)
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(dir.path()), [0, 1]);
        let p = payload();
        let old = KeyRing::load(dir.path()).unwrap().seal(&p).unwrap();
        assert!(!old.ends_with('='));
        // A token sealed with the staged key (as another node that already rotated would)
        // validates before this node rotates.
        let staged = std::fs::read_to_string(dir.path().join("0")).unwrap();
        let ahead = Fernet::new(staged.trim())
            .unwrap()
            .encrypt(&rmp_serde::to_vec(&p).unwrap());
        assert!(KeyRing::load(dir.path()).unwrap().open(&ahead).is_some());

        rotate_repository(dir.path(), 3).unwrap();
        assert_eq!(names(dir.path()), [0, 1, 2]);
        let ring = KeyRing::load(dir.path()).unwrap();
        let (back, issued) = ring.open(&old).unwrap();
        assert_eq!(back, p);
        assert!(issued > 0);
        // Rotating twice more pushes key 1 out: its tokens stop validating.
        rotate_repository(dir.path(), 3).unwrap();
        rotate_repository(dir.path(), 3).unwrap();
        assert_eq!(names(dir.path()), [0, 3, 4]);
        assert!(KeyRing::load(dir.path()).unwrap().open(&old).is_none());
    }

    /// The Fernet specification's acceptance vector (generate.json / verify.json), with
    /// the padding stripped as keystone strips it.
    #[test]
    fn fernet_spec_vector_decrypts_and_dates() {
        let key = Fernet::new("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
        let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA";
        assert_eq!(key.decrypt(token).unwrap(), b"hello");
        // 1985-10-26T01:20:00-07:00
        assert_eq!(issued_at_micros(token), Some(499_162_800_000_000));
        let mut tampered = token.to_string();
        tampered.replace_range(40..41, if &token[40..41] == "A" { "B" } else { "A" });
        assert!(key.decrypt(&tampered).is_err());
    }

    #[test]
    fn garbage_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        setup_repository(dir.path()).unwrap();
        let ring = KeyRing::load(dir.path()).unwrap();
        for t in ["", "abc", "gAAAAA", &"x".repeat(400)] {
            assert!(ring.open(t).is_none());
        }
    }
}
