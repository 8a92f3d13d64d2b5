//! Get-me-a-network (Neutron's `auto-allocated-topology` extension): for a project, a
//! network with a subnet from each default subnet pool and a router from it to the default
//! external network (`is_default`), made once and answered on every later request; Nova
//! asks for it when a server's `networks` is `auto` and the project has none.
//!
//! Made with the service's own calls, so every rule of networks, subnets and routers holds;
//! a step that fails removes what the earlier steps made.

use ferro_common::RequestContext;
use ferro_db::Sql;
use serde_json::{Value, json};

use crate::agents::service_context;
use crate::db::{self, Table};
use crate::fault::{NetError, Result};
use crate::manager::{Doc, Networking};
use crate::model::{Body, b, s};

#[derive(sqlx::FromRow)]
struct Topology {
    network_id: String,
    router_id: String,
}

fn failure(reason: &str) -> NetError {
    NetError::conflict(
        "AutoAllocationFailure",
        format!("Deployment error: {reason}."),
    )
}

fn id_of(answer: &Value, member: &str) -> String {
    answer[member]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Networking {
    /// The project a request is about: `None` (as the client may send) is the caller's;
    /// another project's only for admins.
    fn topology_project(&self, ctx: &RequestContext, project: &str) -> Result<String> {
        let project = if project == "None" {
            ctx.project_id.clone().unwrap_or_default()
        } else {
            project.to_string()
        };
        if ctx.project_id.as_deref() != Some(&project)
            && !self.allowed(ctx, "admin_only", &json!({}))
        {
            return Err(NetError::new(403, "NotAuthorized", "Not authorized."));
        }
        Ok(project)
    }

    async fn topology(&self, project: &str) -> Result<Option<Topology>> {
        Ok(self
            .db
            .fetch_optional::<Topology>(
                &Sql::new(
                    "SELECT network_id, router_id FROM net_auto_allocated WHERE project_id = ?",
                )
                .arg(project),
            )
            .await?)
    }

    async fn default_external_network(&self) -> Result<String> {
        db::list(&mut &self.db, Table::Networks, None)
            .await?
            .iter()
            .find(|n| b(n, "router:external") && b(n, "is_default"))
            .map(|n| s(n, "id").to_string())
            .ok_or_else(|| failure("No default router:external network"))
    }

    async fn default_subnetpools(&self) -> Result<Vec<Doc>> {
        let pools: Vec<Doc> = db::list(&mut &self.db, Table::SubnetPools, None)
            .await?
            .into_iter()
            .filter(|p| b(p, "is_default"))
            .collect();
        let mut out = Vec::new();
        for v in [4, 6] {
            if let Some(p) = pools
                .iter()
                .find(|p| p.get("ip_version").and_then(Value::as_i64) == Some(v))
            {
                out.push(p.clone());
            }
        }
        if out.is_empty() {
            return Err(failure("No default subnetpools defined"));
        }
        Ok(out)
    }

    /// `GET /v2.0/auto-allocated-topology/{project_id}`: the project's topology, made when
    /// missing; `fields=dry-run` only checks that it could be made.
    pub async fn auto_allocated_topology(
        &self,
        ctx: &RequestContext,
        project: &str,
        fields: &[String],
    ) -> Result<Value> {
        let project = self.topology_project(ctx, project)?;
        if fields.iter().any(|f| f == "dry-run") {
            self.default_external_network().await?;
            self.default_subnetpools().await?;
            return Ok(json!({"auto_allocated_topology":
                {"id": "dry-run=pass", "tenant_id": project, "project_id": project}}));
        }
        if !fields.is_empty() {
            return Err(NetError::bad_request(
                "BadRequest",
                "Bad auto_allocate request: Unrecognized field.",
            ));
        }
        let network = match self.topology(&project).await? {
            Some(t) => t.network_id,
            None => self.build_topology(&project).await?,
        };
        Ok(json!({"auto_allocated_topology":
            {"id": network, "tenant_id": project, "project_id": project}}))
    }

    async fn build_topology(&self, project: &str) -> Result<String> {
        let external = self.default_external_network().await?;
        let pools = self.default_subnetpools().await?;
        let ctx = service_context(project);
        let body = |member: &str, v: Value| Body::from_request(&json!({ member: v }), member);
        let net = self
            .network_create(
                &ctx,
                &body(
                    "network",
                    json!({"name": "auto_allocated_network", "admin_state_up": false,
                        "project_id": project, "shared": false}),
                )?,
            )
            .await?;
        let net = id_of(&net, "network");
        let mut router = None;
        let built: Result<String> = async {
            let mut subnets = Vec::new();
            for p in &pools {
                let v = p.get("ip_version").and_then(Value::as_i64).unwrap_or(4);
                let sn = self
                    .subnet_create(
                        &ctx,
                        &body(
                            "subnet",
                            json!({"name": format!("auto_allocated_subnet_v{v}"),
                                "network_id": net, "project_id": project, "ip_version": v,
                                "subnetpool_id": s(p, "id")}),
                        )?,
                    )
                    .await
                    .map_err(|e| {
                        tracing::warn!(%project, error = %e.message, "auto-allocation: no subnet");
                        failure("Unable to provide tenant private network")
                    })?;
                subnets.push(id_of(&sn, "subnet"));
            }
            let r = self
                .router_create(
                    &ctx,
                    &body(
                        "router",
                        json!({"name": "auto_allocated_router", "project_id": project,
                            "admin_state_up": true,
                            "external_gateway_info": {"network_id": external}}),
                    )?,
                )
                .await
                .map_err(|e| {
                    tracing::warn!(%project, error = %e.message, "auto-allocation: no router");
                    failure("Unable to provide external connectivity")
                })?;
            let rid = id_of(&r, "router");
            router = Some(rid.clone());
            for sn in &subnets {
                self.router_add_interface(&ctx, &rid, &json!({"subnet_id": sn}))
                    .await
                    .map_err(|_| failure("Unable to provide external connectivity"))?;
            }
            self.db
                .execute(
                    &Sql::new(
                        "INSERT INTO net_auto_allocated (project_id, network_id, router_id) VALUES (?, ?, ?)",
                    )
                    .arg(project)
                    .arg(&net)
                    .arg(&rid),
                )
                .await?;
            self.network_update(
                &ctx,
                &net,
                &body("network", json!({"admin_state_up": true}))?,
                None,
            )
            .await?;
            Ok(net.clone())
        }
        .await;
        match built {
            Ok(id) => Ok(id),
            Err(e) => {
                self.remove_topology(project, &net, router.as_deref()).await;
                // Another request for the project won the race: its topology is the one.
                match self.topology(project).await? {
                    Some(t) => Ok(t.network_id),
                    None => Err(e),
                }
            }
        }
    }

    /// Removes a topology's router (its interfaces and gateway) and network (with its
    /// subnets); what is gone already is skipped.
    async fn remove_topology(&self, project: &str, network: &str, router: Option<&str>) {
        let ctx = service_context(project);
        if let Some(rid) = router {
            let ifaces = db::list(&mut &self.db, Table::Ports, Some(("network_id", network)))
                .await
                .unwrap_or_default();
            for p in ifaces.iter().filter(|p| s(p, "device_id") == rid) {
                let _ = self
                    .router_remove_interface(&ctx, rid, &json!({"port_id": s(p, "id")}))
                    .await;
            }
            let _ = self.router_delete(&ctx, rid, None).await;
        }
        let _ = self.network_delete(&ctx, network, None).await;
    }

    /// `DELETE /v2.0/auto-allocated-topology/{project_id}`: removes the project's topology.
    pub async fn delete_auto_allocated_topology(
        &self,
        ctx: &RequestContext,
        project: &str,
    ) -> Result<()> {
        let project = self.topology_project(ctx, project)?;
        let Some(t) = self.topology(&project).await? else {
            return Ok(());
        };
        self.remove_topology(&project, &t.network_id, Some(&t.router_id))
            .await;
        self.db
            .execute(&Sql::new("DELETE FROM net_auto_allocated WHERE project_id = ?").arg(&project))
            .await?;
        Ok(())
    }
}
