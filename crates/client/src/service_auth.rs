//! A service's own token, as OpenStack services hold one through keystoneauth: log in as the
//! service user, reuse the token until it nears expiry or an API refuses it, then log in
//! again. Agents and the conductor use it for privileged calls (placement allocations,
//! resource providers).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Client, ClientError, password_auth};

/// Something that hands out a token for service-to-service calls.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A valid token (cached or new).
    async fn token(&self) -> Result<String, ClientError>;
    /// Forgets the cached token (an API answered 401 with it).
    fn invalidate(&self);
}

/// Password login of a service user in a project, with the token cached.
pub struct ServiceAuth {
    identity_url: String,
    user: String,
    password: String,
    project: String,
    domain: String,
    cached: Mutex<Option<(String, Instant)>>,
}

/// How long a token is reused; Keystone's tokens live an hour by default.
const REUSE: Duration = Duration::from_secs(30 * 60);

impl ServiceAuth {
    /// Logs in as `user` (domain `Default`) scoped to `project`, at identity `identity_url`.
    pub fn new(identity_url: &str, user: &str, password: &str, project: &str) -> ServiceAuth {
        ServiceAuth {
            identity_url: identity_url.trim_end_matches('/').to_string(),
            user: user.to_string(),
            password: password.to_string(),
            project: project.to_string(),
            domain: "Default".to_string(),
            cached: Mutex::new(None),
        }
    }
}

#[async_trait]
impl TokenSource for ServiceAuth {
    async fn token(&self) -> Result<String, ClientError> {
        if let Some((t, at)) = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && at.elapsed() < REUSE
        {
            return Ok(t.clone());
        }
        let body = password_auth(
            &self.user,
            &self.domain,
            &self.password,
            Some(&self.project),
        );
        let (client, _) = Client::login(&self.identity_url, &body).await?;
        let token = client.token.unwrap_or_default();
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((token.clone(), Instant::now()));
        Ok(token)
    }

    fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
