//! The host's resource provider in placement: found or created by name (the host), and its
//! VCPU, MEMORY_MB and DISK_GB inventory set, with the service's own token, as nova-compute's
//! report client does.

use ferro_client::{Client, Response};
use serde_json::json;

use crate::Agent;

/// The microversion the agent speaks to placement.
pub const PLACEMENT_VERSION: &str = "placement 1.36";

async fn client(agent: &Agent) -> Result<Client, String> {
    let token = agent.auth.token().await.map_err(|e| e.to_string())?;
    Ok(Client::new(&agent.config.placement_url)
        .with_token(&token)
        .with_header("OpenStack-API-Version", PLACEMENT_VERSION))
}

fn check(agent: &Agent, what: &str, r: &Response, ok: &[u16]) -> Result<(), String> {
    if ok.contains(&r.status) {
        return Ok(());
    }
    if r.status == 401 {
        agent.auth.invalidate();
    }
    Err(format!("placement {what}: {} {}", r.status, r.body))
}

/// Registers the host and its inventory; returns the provider's uuid.
pub async fn register(agent: &Agent) -> Result<String, String> {
    let c = client(agent).await?;
    let host = &agent.config.host;
    let path = format!("/resource_providers?name={}", encode(host));
    let r = c.get(&path).await.map_err(|e| e.to_string())?;
    check(agent, "list providers", &r, &[200])?;
    let existing = r.body["resource_providers"]
        .as_array()
        .and_then(|a| a.first())
        .cloned();
    let provider = match existing {
        Some(p) => p,
        None => {
            let r = c
                .post("/resource_providers", &json!({"name": host}))
                .await
                .map_err(|e| e.to_string())?;
            check(agent, "create provider", &r, &[200])?;
            r.body
        }
    };
    let uuid = provider["uuid"]
        .as_str()
        .ok_or("placement gave a provider without uuid")?
        .to_string();
    let mut generation = provider["generation"].as_i64().unwrap_or(0);
    let cfg = &agent.config;
    let inventories = json!({
        "VCPU": {"total": cfg.vcpus, "allocation_ratio": cfg.cpu_allocation_ratio,
                 "max_unit": cfg.vcpus},
        "MEMORY_MB": {"total": cfg.memory_mb, "reserved": cfg.reserved_memory_mb.min(cfg.memory_mb - 1).max(0),
                      "max_unit": cfg.memory_mb},
        "DISK_GB": {"total": cfg.disk_gb, "max_unit": cfg.disk_gb},
    });
    // A concurrent writer bumps the generation: read it again and retry, as upstream's
    // report client does on 409.
    for _ in 0..5 {
        let r = c
            .put(
                &format!("/resource_providers/{uuid}/inventories"),
                Some(&json!({"resource_provider_generation": generation,
                              "inventories": inventories})),
            )
            .await
            .map_err(|e| e.to_string())?;
        if r.status == 409 {
            let g = c
                .get(&format!("/resource_providers/{uuid}"))
                .await
                .map_err(|e| e.to_string())?;
            generation = g.body["generation"].as_i64().unwrap_or(generation);
            continue;
        }
        check(agent, "set inventory", &r, &[200])?;
        return Ok(uuid);
    }
    Err(format!("placement kept refusing the inventory of {host}"))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
