//! Typed HTTP access to FerroStack's (and OpenStack's) public APIs: authentication against
//! Keystone v3, requests with `X-Auth-Token`, and responses with their status, headers and
//! JSON body, faults included. Services call each other through this crate, as OpenStack's
//! services do; tests and the dashboard use it too. It holds no service logic.

use reqwest::Method;
use serde_json::{Value, json};

pub mod service_auth;

pub use service_auth::{ServiceAuth, TokenSource};

/// Errors reaching an API (not API faults: those come back as a [`Response`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("authentication failed with status {status}: {body}")]
    Auth { status: u16, body: Value },
}

/// One answer: status, headers and the body parsed as JSON (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client of one API base URL, optionally holding a token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    /// Headers sent with every request (microversions, `X-Service-Token`).
    pub headers: Vec<(String, String)>,
}

/// The `auth` body of a password login, by names in the `Default`-style domain name given.
pub fn password_auth(user: &str, domain: &str, password: &str, project: Option<&str>) -> Value {
    let mut auth = json!({"identity": {"methods": ["password"],
        "password": {"user": {"name": user, "domain": {"name": domain}, "password": password}}}});
    if let Some(p) = project {
        auth["scope"] = json!({"project": {"name": p, "domain": {"name": domain}}});
    }
    json!({"auth": auth})
}

impl Client {
    /// A client without a token for `base` (`http://host:port`).
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            token: None,
            headers: Vec::new(),
        }
    }

    /// The same client (and token) aimed at another base URL.
    pub fn clone_with_base(&self, base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            ..self.clone()
        }
    }

    /// The same client with `token`.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// The same client also sending header `name: value` (replacing an earlier value).
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut c = self.clone();
        c.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        c.headers.push((name.to_string(), value.to_string()));
        c
    }

    /// Authenticates with a `POST /v3/auth/tokens` body and returns a client holding the
    /// token, plus the token body.
    pub async fn login(base: &str, body: &Value) -> Result<(Client, Value), ClientError> {
        let c = Client::new(base);
        let r = c
            .request(Method::POST, "/v3/auth/tokens", Some(body))
            .await?;
        if r.status != 201 {
            return Err(ClientError::Auth {
                status: r.status,
                body: r.body,
            });
        }
        let token = r.header("x-subject-token").unwrap_or_default().to_string();
        Ok((c.with_token(&token), r.body))
    }

    /// Sends a request; any HTTP status is a successful [`Response`].
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, ClientError> {
        self.send(method, path, |req| match body {
            Some(b) => req.json(b),
            None => req,
        })
        .await
    }

    /// `PUT` of raw bytes as `application/octet-stream` (image data).
    pub async fn put_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<Response, ClientError> {
        self.send(Method::PUT, path, |req| {
            req.header("Content-Type", "application/octet-stream")
                .body(bytes)
        })
        .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        for (n, v) in &self.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        req = body(req);
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Response, ClientError> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Option<&Value>) -> Result<Response, ClientError> {
        self.request(Method::PUT, path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Response, ClientError> {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::DELETE, path, None).await
    }

    pub async fn head(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::HEAD, path, None).await
    }
}
