//! FerroStack's configuration: one TOML file, every key overridable by
//! `FERROSTACK_<SECTION>__<KEY>` environment variables, defaults for everything.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub state_dir: PathBuf,
    pub database: DatabaseConfig,
    pub identity: IdentitySection,
    pub image: ImageSection,
    pub bootstrap: BootstrapSection,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `postgres://...` or `mysql://...`; empty means the SQLite file in the
    /// state directory.
    pub url: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach identity at; empty means `http://<bind>:<port>`.
    pub public_url: String,
    pub token_expiration: i64,
    pub bcrypt_cost: u32,
    pub max_active_keys: usize,
    pub policy_file: Option<PathBuf>,
}

/// The image service (Glance v2).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageSection {
    pub bind: String,
    pub port: u16,
    /// The URL clients reach the image API at; empty means `http://<bind>:<port>`.
    pub public_url: String,
    pub policy_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapSection {
    pub admin_user: String,
    /// Empty means: generate one on first start.
    pub admin_password: String,
    pub admin_project: String,
    pub region: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/ferrostack"),
            database: DatabaseConfig::default(),
            identity: IdentitySection::default(),
            image: ImageSection::default(),
            bootstrap: BootstrapSection::default(),
        }
    }
}

impl Default for IdentitySection {
    fn default() -> Self {
        IdentitySection {
            bind: "127.0.0.1".into(),
            port: 5000,
            public_url: String::new(),
            token_expiration: 3600,
            bcrypt_cost: 12,
            max_active_keys: 3,
            policy_file: None,
        }
    }
}

impl Default for ImageSection {
    fn default() -> Self {
        ImageSection {
            bind: "127.0.0.1".into(),
            port: 9292,
            public_url: String::new(),
            policy_file: None,
        }
    }
}

impl Default for BootstrapSection {
    fn default() -> Self {
        BootstrapSection {
            admin_user: "admin".into(),
            admin_password: String::new(),
            admin_project: "admin".into(),
            region: "RegionOne".into(),
        }
    }
}

impl Config {
    /// Reads `file` (if given, or `/etc/ferrostack/ferrostack.toml` if it exists), then
    /// applies `FERROSTACK_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let default_file = Path::new("/etc/ferrostack/ferrostack.toml");
        let text = match file {
            Some(f) => {
                std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("config {f:?}: {e}"))?
            }
            None if default_file.exists() => std::fs::read_to_string(default_file)?,
            None => String::new(),
        };
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config: {e}"))?;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("FERROSTACK_") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let value = parse_env_value(&v);
            match path.as_slice() {
                [key] if key == "state_dir" => {
                    doc.insert(key.clone(), value);
                }
                [section, key] => {
                    let t = doc
                        .entry(section.clone())
                        .or_insert_with(|| toml::Value::Table(Default::default()));
                    if let toml::Value::Table(t) = t {
                        t.insert(key.clone(), value);
                    }
                }
                _ => {}
            }
        }
        Ok(toml::Value::Table(doc).try_into()?)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.state_dir.join("ferrostack.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// Identity's public URL in effect.
    pub fn identity_url(&self, port: u16) -> String {
        if self.identity.public_url.is_empty() {
            format!("http://{}:{port}", self.identity.bind)
        } else {
            self.identity.public_url.trim_end_matches('/').to_string()
        }
    }
}

impl Config {
    /// The image API's public URL in effect (no version suffix, as Glance's catalog entry).
    pub fn image_url(&self, port: u16) -> String {
        if self.image.public_url.is_empty() {
            format!("http://{}:{port}", self.image.bind)
        } else {
            self.image.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// Environment values are typed as TOML would type them: numbers and booleans stay so.
fn parse_env_value(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = v.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[identity]\nport = 5001\nbcrypt_cost = 10\n").unwrap();
        let env = [("FERROSTACK_IDENTITY__PORT".to_string(), "6000".to_string())];
        let c = Config::load(Some(&f), env.into_iter()).unwrap();
        assert_eq!(c.identity.port, 6000);
        assert_eq!(c.identity.bcrypt_cost, 10);
        assert_eq!(c.image.port, 9292);
        assert_eq!(c.image_url(9292), "http://127.0.0.1:9292");
        std::fs::write(&f, "[identity]\nprot = 1\n").unwrap();
        assert!(Config::load(Some(&f), std::iter::empty()).is_err());
    }
}
