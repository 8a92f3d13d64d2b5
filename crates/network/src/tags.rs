//! Tags on standard-attribute resources (the `standard-attr-tag` extension):
//! `/v2.0/<collection>/<id>/tags[/<tag>]`. Reading needs the resource's `get_` rule,
//! changing its `update_` rule, as upstream's tag plugin checks the parent.

use ferro_common::RequestContext;
use serde_json::{Value, json};

use crate::db::{self, Table};
use crate::fault::{NetError, Result};
use crate::manager::{Doc, Networking};
use crate::model::{self, s};

/// The collections that carry tags, with their table and policy name.
pub const TAGGED: &[(&str, Table, &str)] = &[
    ("networks", Table::Networks, "network"),
    ("subnets", Table::Subnets, "subnet"),
    ("ports", Table::Ports, "port"),
    ("security-groups", Table::SecurityGroups, "security_group"),
    ("routers", Table::Routers, "router"),
    ("floatingips", Table::FloatingIps, "floatingip"),
    ("subnetpools", Table::SubnetPools, "subnetpool"),
];

fn tags_of(doc: &Doc) -> Vec<String> {
    doc.get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn valid(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.chars().count() > 255 {
        return Err(NetError::invalid(format!("'{tag}' is not a valid tag")));
    }
    Ok(())
}

impl Networking {
    /// The resource's policy target: networks by themselves, subnets and ports with their
    /// network, the rest by owner.
    async fn tag_target(
        &self,
        ex: &mut impl ferro_db::Executor,
        table: Table,
        doc: &Doc,
    ) -> Result<Value> {
        Ok(match table {
            Table::Networks => Self::network_target(doc),
            Table::Subnets | Table::Ports => {
                let net = db::get(ex, Table::Networks, s(doc, "network_id")).await?;
                Self::child_target(doc, net.as_ref())
            }
            _ => json!({"project_id": s(doc, "project_id"), "tenant_id": s(doc, "project_id")}),
        })
    }

    /// Loads a taggable resource the caller may see (404 in the resource's words otherwise).
    async fn tagged(
        &self,
        ex: &mut impl ferro_db::Executor,
        ctx: &RequestContext,
        collection: &str,
        id: &str,
        write: bool,
    ) -> Result<(Table, Doc)> {
        let Some((_, table, kind)) = TAGGED.iter().find(|(c, _, _)| *c == collection) else {
            return Err(NetError::not_found(
                "HTTPNotFound",
                "The resource could not be found.",
            ));
        };
        let missing = || {
            let (kind, message) = match *kind {
                "network" => (
                    "NetworkNotFound",
                    format!("Network {id} could not be found."),
                ),
                "subnet" => ("SubnetNotFound", format!("Subnet {id} could not be found.")),
                "port" => ("PortNotFound", format!("Port {id} could not be found.")),
                "security_group" => (
                    "SecurityGroupNotFound",
                    format!("Security group {id} does not exist"),
                ),
                "router" => ("RouterNotFound", format!("Router {id} could not be found")),
                _ => (
                    "FloatingIPNotFound",
                    format!("Floating IP {id} could not be found"),
                ),
            };
            NetError::not_found(kind, message)
        };
        let doc = db::get(ex, *table, id).await?.ok_or_else(missing)?;
        let target = self.tag_target(ex, *table, &doc).await?;
        if !self.allowed(ctx, &format!("get_{kind}"), &target) {
            return Err(missing());
        }
        if write {
            self.authorize(ctx, &format!("update_{kind}"), &target)?;
        }
        Ok((*table, doc))
    }

    pub async fn tags_list(
        &self,
        ctx: &RequestContext,
        collection: &str,
        id: &str,
    ) -> Result<Value> {
        let (_, doc) = self
            .tagged(&mut &self.db, ctx, collection, id, false)
            .await?;
        Ok(json!({"tags": tags_of(&doc)}))
    }

    /// Whether `tag` is on the resource (`TagNotFound` otherwise).
    pub async fn tag_check(
        &self,
        ctx: &RequestContext,
        collection: &str,
        id: &str,
        tag: &str,
    ) -> Result<()> {
        let (_, doc) = self
            .tagged(&mut &self.db, ctx, collection, id, false)
            .await?;
        if tags_of(&doc).iter().any(|t| t == tag) {
            Ok(())
        } else {
            Err(tag_not_found(collection, id, tag))
        }
    }

    /// Changes the tags: `f` gets the current list and returns the new one.
    pub async fn tags_change(
        &self,
        ctx: &RequestContext,
        collection: &str,
        id: &str,
        f: impl Fn(Vec<String>) -> Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        retrying!({
            let mut tx = self.begin().await?;
            let (table, mut doc) = self.tagged(&mut tx, ctx, collection, id, true).await?;
            let before = doc
                .get("revision_number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let mut tags = f(tags_of(&doc))?;
            let mut seen = Vec::new();
            tags.retain(|t| {
                let fresh = !seen.contains(t);
                seen.push(t.clone());
                fresh
            });
            for t in &tags {
                valid(t)?;
            }
            doc.insert("tags".into(), json!(tags));
            model::touch(&mut doc);
            db::replace(&mut tx, table, &doc, before).await?;
            tx.commit().await?;
            Ok(tags)
        })
        .await
    }
}

pub fn tag_not_found(collection: &str, id: &str, tag: &str) -> NetError {
    let resource = TAGGED
        .iter()
        .find(|(c, _, _)| *c == collection)
        .map_or(collection, |(_, _, k)| *k);
    NetError::not_found(
        "TagNotFound",
        format!("Tag {tag} could not be found for {resource} {id}."),
    )
}
