//! The metadata proxy of one DHCP namespace: listens on 169.254.169.254:80 inside it, names
//! the instance behind each request by its source address on that network, and forwards
//! to the compute metadata API with the instance id signed by the shared secret (Neutron's
//! metadata proxy + agent, in-process).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ferro_api_types::metadata::instance_signature;
use tokio::task::JoinHandle;

use crate::dhcp::METADATA_IP;
use crate::{MetadataTarget, NetworkAgent, Result};

/// Instance id and project of each address on the network.
type Instances = Arc<RwLock<BTreeMap<String, (String, String)>>>;

/// A running proxy; stops when dropped.
pub struct Proxy {
    task: JoinHandle<()>,
    instances: Instances,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Forward {
    target: MetadataTarget,
    instances: Instances,
    client: reqwest::Client,
}

async fn forward(
    State(f): State<Forward>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let found = f
        .instances
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&ip)
        .cloned();
    let Some((instance, project)) = found else {
        return (StatusCode::NOT_FOUND, "Instance not found\n").into_response();
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = f
        .client
        .request(method, format!("{}{path}", f.target.url))
        .header("X-Forwarded-For", &ip)
        .header("X-Instance-ID", &instance)
        .header("X-Tenant-ID", &project)
        .header(
            "X-Instance-ID-Signature",
            instance_signature(&f.target.shared_secret, &instance),
        )
        .body(body);
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        req = req.header(axum::http::header::CONTENT_TYPE, ct);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let ct = r.headers().get(reqwest::header::CONTENT_TYPE).cloned();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut resp = (status, bytes).into_response();
            if let Some(ct) = ct {
                resp.headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, ct);
            }
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "metadata API unreachable");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metadata service unavailable\n",
            )
                .into_response()
        }
    }
}

impl NetworkAgent {
    /// The proxy of `network_id` runs in `ns` and knows `instances` (address, instance id,
    /// project): started when missing or dead, else given the new addresses.
    pub(crate) fn ensure_proxy(
        &self,
        network_id: &str,
        ns: &str,
        target: &MetadataTarget,
        instances: Vec<(String, String, String)>,
    ) -> Result<()> {
        let map: BTreeMap<String, (String, String)> = instances
            .into_iter()
            .map(|(ip, id, project)| (ip, (id, project)))
            .collect();
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = proxies.get(network_id)
            && !p.task.is_finished()
        {
            *p.instances.write().unwrap_or_else(|e| e.into_inner()) = map;
            return Ok(());
        }
        let addr: SocketAddr = format!("{METADATA_IP}:80")
            .parse()
            .map_err(|_| ferro_host::HostError::new("metadata address"))?;
        let std_listener = ferro_host::netns::listen_tcp(ns, addr)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| ferro_host::HostError::new(format!("metadata listener: {e}")))?;
        let instances: Instances = Arc::new(RwLock::new(map));
        let app = axum::Router::new().fallback(forward).with_state(Forward {
            target: target.clone(),
            instances: instances.clone(),
            client: reqwest::Client::new(),
        });
        let net = network_id.to_string();
        let task = tokio::spawn(async move {
            let svc = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, svc).await {
                tracing::warn!(network = %net, error = %e, "metadata proxy stopped");
            }
        });
        tracing::info!(network = %network_id, namespace = %ns, "metadata proxy started");
        proxies.insert(network_id.to_string(), Proxy { task, instances });
        Ok(())
    }

    pub(crate) fn stop_proxy(&self, network_id: &str) {
        self.proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(network_id);
    }
}
