//! Nova's metadata API (nova-api-metadata, port 8775) as it answers behind Neutron's
//! metadata proxy (nova/api/metadata/handler.py with `service_metadata_proxy`): the proxy
//! names the instance in `X-Instance-ID` and its project in `X-Tenant-ID`, signs the id with
//! the shared secret in `X-Instance-ID-Signature` and passes the guest's address in
//! `X-Forwarded-For`. A missing header is a 400, a wrong signature a 403, an unknown
//! instance or a project that is not the instance's a 404, all as Nova answers them.
//!
//! The documents come from `ferro_api_types::metadata`, the generator the config drive
//! writes from; this module only gathers the facts (the instance row, its security group
//! names and floating addresses from the network API, the posted password) and speaks
//! HTTP. It holds no token: the guest cannot have one, the signature stands for it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ferro_api_types::metadata::{
    DEFAULT_DHCP_DOMAIN, Facts, InstanceMetadata, Item, MAX_PASSWORD_SIZE, root_listing,
    signature_matches,
};
use serde_json::Value;

use crate::Compute;
use crate::conductor::instance_spec;
use crate::db;
use crate::fault::{Fault, Result};
use crate::model::Instance;

/// Settings of the metadata API.
#[derive(Clone, Debug)]
pub struct MetadataConfig {
    /// The secret the metadata proxy signs instance ids with (Neutron's and Nova's
    /// `metadata_proxy_shared_secret`).
    pub shared_secret: String,
    /// The domain appended to hostnames (Nova's `[api] dhcp_domain`); empty for none.
    pub dhcp_domain: String,
}

impl MetadataConfig {
    /// Nova's defaults with `shared_secret`.
    pub fn new(shared_secret: &str) -> Self {
        MetadataConfig {
            shared_secret: shared_secret.to_string(),
            dhcp_domain: DEFAULT_DHCP_DOMAIN.to_string(),
        }
    }
}

struct Service {
    compute: Arc<Compute>,
    config: MetadataConfig,
}

/// The metadata API's router: every path goes to one handler, as Nova's is one WSGI app.
pub fn router(compute: Arc<Compute>, config: MetadataConfig) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(Service { compute, config }))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("metadata handler panicked");
            fault(StatusCode::INTERNAL_SERVER_ERROR, UNKNOWN_ERROR)
        }))
}

/// Nova's answer when gathering an instance's metadata fails.
const UNKNOWN_ERROR: &str = "An unknown error has occurred. Please try your request again.";

/// An error page as webob renders it for a client accepting HTML (curl and cloud-init
/// send `*/*`): the status as title and heading, the explanation below.
fn fault(status: StatusCode, explanation: &str) -> Response {
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = format!(
        "<html>\n <head>\n  <title>{line}</title>\n </head>\n <body>\n  <h1>{line}</h1>\n  \
         {explanation}<br /><br />\n\n\n\n </body>\n</html>"
    );
    (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=UTF-8"),
        )],
        body,
    )
        .into_response()
}

const NOT_FOUND: &str = "The resource could not be found.";

fn not_found() -> Response {
    fault(StatusCode::NOT_FOUND, NOT_FOUND)
}

/// Why a request names no instance it may read: the status and webob's explanation.
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, explanation: &str) -> Refusal {
        Refusal(status, explanation.to_string())
    }
}

fn text(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn handle(
    State(s): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path.split('/').all(|p| p.is_empty() || p == ".") {
        return text(
            StatusCode::OK,
            "text/plain; charset=UTF-8",
            root_listing().into_bytes(),
        );
    }
    let (instance, address) = match s.identify(&headers).await {
        Ok(found) => found,
        Err(Refusal(status, explanation)) => return fault(status, &explanation),
    };
    let facts = match s.facts(&instance, address).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(uuid = %instance.uuid, error = ?e, "metadata of the instance not gathered");
            return fault(StatusCode::INTERNAL_SERVER_ERROR, UNKNOWN_ERROR);
        }
    };
    let spec = instance_spec(&instance);
    let md = match InstanceMetadata::new(&spec, facts) {
        Ok(md) => md,
        Err(e) => {
            tracing::error!(uuid = %instance.uuid, error = %e, "metadata of the instance not built");
            return fault(StatusCode::INTERNAL_SERVER_ERROR, UNKNOWN_ERROR);
        }
    };
    match md.lookup(path) {
        Err(_) => not_found(),
        Ok(Item::Text(b)) => text(StatusCode::OK, "text/plain; charset=UTF-8", b),
        Ok(Item::Json(b)) => text(StatusCode::OK, "application/json", b),
        Ok(Item::Password) => s.password(&method, &instance, &md, &body).await,
    }
}

impl Service {
    /// The instance the proxy's headers name, checked as Nova checks them, and the
    /// guest's address.
    async fn identify(
        &self,
        headers: &HeaderMap,
    ) -> std::result::Result<(Instance, Option<String>), Refusal> {
        let bad = |m: &str| Refusal::new(StatusCode::BAD_REQUEST, m);
        let count = |name: &str| headers.get_all(name).iter().count();
        let value = |name: &str| -> std::result::Result<Option<&str>, Refusal> {
            match headers.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(Some)
                    .map_err(|_| bad(&format!("{name} header is not valid text."))),
            }
        };
        let instance_id = value("X-Instance-ID")?;
        let tenant_id = value("X-Tenant-ID")?;
        let signature = value("X-Instance-ID-Signature")?;
        let (Some(instance_id), Some(signature), Some(tenant_id)) =
            (instance_id, signature, tenant_id)
        else {
            let m = if instance_id.is_none() {
                "X-Instance-ID header is missing from request."
            } else if signature.is_none() {
                "X-Instance-ID-Signature header is missing from request."
            } else {
                "X-Tenant-ID header is missing from request."
            };
            return Err(bad(m));
        };
        if count("X-Instance-ID") > 1 {
            return Err(bad("Multiple X-Instance-ID headers found within request."));
        }
        if count("X-Tenant-ID") > 1 {
            return Err(bad("Multiple X-Tenant-ID headers found within request."));
        }
        let address = value("X-Forwarded-For")?
            .and_then(|a| a.split(',').next())
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty());
        if !signature_matches(&self.config.shared_secret, instance_id, signature) {
            tracing::warn!(
                %instance_id,
                %signature,
                address = address.as_deref().unwrap_or(""),
                "X-Instance-ID-Signature does not match the expected signature"
            );
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "Invalid proxy request signature.",
            ));
        }
        let instance = match db::instance_get(&mut &self.compute.db, instance_id).await {
            Ok(Some(i)) => i,
            Ok(None) => {
                tracing::error!(%instance_id, "metadata requested for an unknown instance");
                return Err(Refusal::new(StatusCode::NOT_FOUND, NOT_FOUND));
            }
            Err(e) => {
                tracing::error!(%instance_id, error = %e, "instance not read for metadata");
                return Err(Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    UNKNOWN_ERROR,
                ));
            }
        };
        if instance.project_id != tenant_id {
            tracing::warn!(%instance_id, %tenant_id, "X-Tenant-ID is not the instance's project");
            return Err(Refusal::new(StatusCode::NOT_FOUND, NOT_FOUND));
        }
        Ok((instance, address))
    }

    /// What the documents need besides the instance row.
    async fn facts(&self, i: &Instance, address: Option<String>) -> Result<Facts> {
        let mut random_seed = vec![0u8; 512];
        getrandom::fill(&mut random_seed)
            .map_err(|e| Fault::internal(format!("random seed: {e}")))?;
        let (security_groups, floating_ips) = self.network_facts(i).await?;
        Ok(Facts {
            address,
            security_groups,
            floating_ips,
            password: db::instance_password(&mut &self.compute.db, &i.uuid).await?,
            random_seed,
            dhcp_domain: Some(self.config.dhcp_domain.clone()),
        })
    }

    /// The names of the security groups on the instance's ports and the floating
    /// addresses on them, from the network API (Nova reads both from Neutron as well).
    async fn network_facts(&self, i: &Instance) -> Result<(Vec<String>, Vec<String>)> {
        if i.network_info.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let c = self.compute.neutron().await?;
        let get = |path: String| {
            let c = c.clone();
            async move {
                let r = c
                    .get(&path)
                    .await
                    .map_err(|e| Fault::internal(format!("network API: {e}")))?;
                if r.status != 200 {
                    return Err(Fault::internal(format!(
                        "network API answered {} to {path}",
                        r.status
                    )));
                }
                Ok::<Value, Fault>(r.body)
            }
        };
        let ports = get(format!(
            "/v2.0/ports?device_id={}&fields=id&fields=security_groups",
            i.uuid
        ))
        .await?;
        let mut group_ids: Vec<String> = Vec::new();
        for p in ports["ports"].as_array().into_iter().flatten() {
            for g in p["security_groups"].as_array().into_iter().flatten() {
                if let Some(g) = g.as_str()
                    && !group_ids.iter().any(|x| x == g)
                {
                    group_ids.push(g.to_string());
                }
            }
        }
        let mut names = Vec::new();
        if !group_ids.is_empty() {
            let q: Vec<String> = group_ids.iter().map(|g| format!("id={g}")).collect();
            let groups = get(format!(
                "/v2.0/security-groups?{}&fields=id&fields=name",
                q.join("&")
            ))
            .await?;
            let groups = groups["security_groups"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for id in &group_ids {
                if let Some(n) = groups
                    .iter()
                    .find(|g| g["id"] == id.as_str())
                    .and_then(|g| g["name"].as_str())
                {
                    names.push(n.to_string());
                }
            }
        }
        let q: Vec<String> = i
            .network_info
            .iter()
            .map(|v| format!("port_id={}", v.port_id))
            .collect();
        let fips = get(format!("/v2.0/floatingips?{}", q.join("&"))).await?;
        let mut floating = Vec::new();
        // In the order of the instance's ports, as Nova's info cache lists them.
        for v in &i.network_info {
            for f in fips["floatingips"].as_array().into_iter().flatten() {
                if f["port_id"] == v.port_id.as_str()
                    && let Some(a) = f["floating_ip_address"].as_str()
                {
                    floating.push(a.to_string());
                }
            }
        }
        Ok((names, floating))
    }

    /// `/openstack/<v>/password` (nova/api/metadata/password.py): GET shows what the guest
    /// posted; POST stores it once (409 after), at most 1020 bytes.
    async fn password(
        &self,
        method: &Method,
        i: &Instance,
        md: &InstanceMetadata<'_>,
        body: &Bytes,
    ) -> Response {
        let html = "text/html; charset=UTF-8";
        if method == Method::GET {
            let p = md.facts.password.clone().unwrap_or_default();
            return text(StatusCode::OK, html, p.into_bytes());
        }
        if method != Method::POST {
            return fault(StatusCode::BAD_REQUEST, "GET and POST only are supported.");
        }
        let conflict = || {
            fault(
                StatusCode::CONFLICT,
                "There was a conflict when trying to complete your request.",
            )
        };
        if md.facts.password.is_some() {
            return conflict();
        }
        if body.len() > MAX_PASSWORD_SIZE {
            return fault(StatusCode::BAD_REQUEST, "Request is too large.");
        }
        let Ok(password) = std::str::from_utf8(body) else {
            return fault(StatusCode::BAD_REQUEST, "The password is not valid text.");
        };
        if password.is_empty() {
            // Nova stores empty chunks: nothing changes.
            return text(StatusCode::OK, html, Vec::new());
        }
        match db::instance_set_password(&mut &self.compute.db, &i.uuid, password).await {
            Ok(true) => text(StatusCode::OK, html, Vec::new()),
            // Another post won meanwhile.
            Ok(false) => conflict(),
            Err(e) => {
                tracing::error!(uuid = %i.uuid, error = %e, "password not stored");
                fault(StatusCode::INTERNAL_SERVER_ERROR, UNKNOWN_ERROR)
            }
        }
    }
}
