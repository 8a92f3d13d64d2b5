//! Subnet pools (the `subnet_allocation` extension): prefixes with prefix-length bounds,
//! from which a subnet takes a CIDR of its own when it names the pool instead of a `cidr`.
//! A pool's row lock serialises carving, so two subnets never get overlapping CIDRs.

use ferro_common::RequestContext;
use ferro_db::{Executor, Sql, Tx};
use serde_json::{Value, json};

use crate::db::{self, Table};
use crate::fault::{NetError, Result};
use crate::ipam::{self, Cidr};
use crate::listing::{self, Query};
use crate::manager::{Doc, Networking};
use crate::model::{self, Body, b, s};

fn pool_not_found(id: &str) -> NetError {
    NetError::not_found(
        "SubnetPoolNotFound",
        format!("Subnet pool {id} could not be found."),
    )
}

fn bounds_error(msg: String) -> NetError {
    NetError::bad_request("IllegalSubnetPoolPrefixBounds", msg)
}

fn target(doc: &Doc) -> Value {
    json!({"project_id": s(doc, "project_id"), "tenant_id": s(doc, "project_id"),
           "shared": b(doc, "shared")})
}

fn int(doc: &Doc, k: &str) -> i64 {
    doc.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// The pool's prefixes.
pub fn prefixes(doc: &Doc) -> Vec<Cidr> {
    doc.get("prefixes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|p| Cidr::parse(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Takes the pool's row lock for the rest of the transaction.
pub async fn lock(ex: &mut impl Executor, id: &str) -> Result<()> {
    ex.execute(&Sql::new("UPDATE net_subnetpools SET revision = revision WHERE id = ?").arg(id))
        .await?;
    Ok(())
}

/// CIDRs of the subnets already carved from pool `id`.
pub async fn carved(ex: &mut impl Executor, id: &str) -> Result<Vec<Cidr>> {
    Ok(db::list(ex, Table::Subnets, None)
        .await?
        .iter()
        .filter(|sn| sn.get("subnetpool_id").and_then(Value::as_str) == Some(id))
        .filter_map(|sn| Cidr::parse(s(sn, "cidr")).ok())
        .collect())
}

/// The first free `/prefixlen` of the pool, scanning its prefixes in order.
pub fn first_free(pool: &Doc, taken: &[Cidr], prefixlen: u8) -> Option<Cidr> {
    for p in prefixes(pool) {
        if p.prefix_len() > prefixlen {
            continue;
        }
        let bits: u32 = if p.version() == 4 { 32 } else { 128 };
        let size: u128 = 1u128 << (bits - u32::from(prefixlen));
        let mut start = p.first();
        while start <= p.last() {
            let candidate = format!("{}/{prefixlen}", ipam::from_u128(start, p.version()));
            if let Ok(c) = Cidr::parse(&candidate)
                && !taken.iter().any(|t| t.overlaps(&c))
            {
                return Some(c);
            }
            match start.checked_add(size) {
                Some(n) => start = n,
                None => break,
            }
        }
    }
    None
}

/// Checks the prefix-length bounds of a pool document.
fn check_bounds(doc: &Doc) -> Result<()> {
    let bits = if int(doc, "ip_version") == 4 { 32 } else { 128 };
    let (min, max, def) = (
        int(doc, "min_prefixlen"),
        int(doc, "max_prefixlen"),
        int(doc, "default_prefixlen"),
    );
    if min < 0 || min > max {
        return Err(bounds_error(format!(
            "Illegal prefix bounds: min_prefixlen={min}, max_prefixlen={max}."
        )));
    }
    if max > bits {
        return Err(bounds_error(format!(
            "Illegal prefix bounds: max_prefixlen={max}, base prefix length={bits}."
        )));
    }
    if def < min || def > max {
        return Err(bounds_error(format!(
            "Illegal prefix bounds: default_prefixlen={def}, min_prefixlen={min}, max_prefixlen={max}."
        )));
    }
    Ok(())
}

fn parse_prefixes(list: &[String]) -> Result<(Vec<String>, i64)> {
    if list.is_empty() {
        return Err(NetError::invalid("prefixes must not be empty"));
    }
    let mut out: Vec<Cidr> = Vec::new();
    for p in list {
        let net = ipam::parse_prefix(p)
            .ok_or_else(|| NetError::invalid(format!("'{p}' is not a valid IP subnet")))?;
        let c = Cidr::parse(&net.trunc().to_string()).map_err(NetError::invalid)?;
        if out.first().is_some_and(|f| f.version() != c.version()) {
            return Err(NetError::bad_request(
                "PrefixVersionMismatch",
                "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
            ));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    let version = out[0].version();
    Ok((out.iter().map(|c| c.net.to_string()).collect(), version))
}

impl Networking {
    /// A pool the caller may use, or `SubnetPoolNotFound`.
    pub(crate) async fn visible_pool(
        &self,
        ex: &mut impl Executor,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<Doc> {
        let p = db::get(ex, Table::SubnetPools, id)
            .await?
            .ok_or_else(|| pool_not_found(id))?;
        if !self.allowed(ctx, "get_subnetpool", &target(&p)) {
            return Err(pool_not_found(id));
        }
        Ok(p)
    }

    /// The CIDR a subnet gets from `pool`: the requested one if it lies inside the pool and
    /// is free, else the first free `/prefixlen`; runs under the pool's lock in `tx`.
    pub(crate) async fn carve(
        &self,
        tx: &mut Tx,
        pool: &Doc,
        requested: Option<Cidr>,
        prefixlen: Option<i64>,
    ) -> Result<Cidr> {
        let id = s(pool, "id");
        lock(tx, id).await?;
        let taken = carved(tx, id).await?;
        let (min, max) = (int(pool, "min_prefixlen"), int(pool, "max_prefixlen"));
        if let Some(c) = requested {
            let len = i64::from(c.prefix_len());
            if len < min || len > max {
                return Err(NetError::invalid(format!(
                    "Unsupported prefix length {len}: it must be between {min} and {max}"
                )));
            }
            if !prefixes(pool)
                .iter()
                .any(|p| p.first() <= c.first() && c.last() <= p.last())
            {
                return Err(NetError::bad_request(
                    "SubnetAllocationError",
                    format!(
                        "Failed to allocate subnet: Cidr {} not in the subnet pool's prefixes.",
                        c.net
                    ),
                ));
            }
            if taken.iter().any(|t| t.overlaps(&c)) {
                return Err(NetError::bad_request(
                    "SubnetAllocationError",
                    format!(
                        "Failed to allocate subnet: Cidr {} overlaps with another subnet of the pool.",
                        c.net
                    ),
                ));
            }
            return Ok(c);
        }
        let len = prefixlen.unwrap_or_else(|| int(pool, "default_prefixlen"));
        if len < min || len > max {
            return Err(NetError::invalid(format!(
                "Unsupported prefix length {len}: it must be between {min} and {max}"
            )));
        }
        first_free(pool, &taken, len as u8).ok_or_else(|| {
            NetError::conflict(
                "SubnetAllocationError",
                format!("Failed to allocate subnet: Insufficient prefix space to allocate subnet size /{len}."),
            )
        })
    }

    pub async fn pool_list(&self, ctx: &RequestContext, q: &Query) -> Result<Value> {
        let items = db::list(&mut &self.db, Table::SubnetPools, None)
            .await?
            .into_iter()
            .filter(|p| self.allowed(ctx, "get_subnetpool", &target(p)))
            .collect();
        listing::respond(
            "subnetpools",
            &self.collection_url("subnetpools"),
            items,
            q,
            &[
                "id",
                "name",
                "ip_version",
                "default_prefixlen",
                "min_prefixlen",
                "max_prefixlen",
                "shared",
                "is_default",
                "project_id",
                "tenant_id",
                "created_at",
                "updated_at",
                "revision_number",
                "description",
            ],
        )
    }

    pub async fn pool_show(&self, ctx: &RequestContext, id: &str, q: &Query) -> Result<Value> {
        let p = self.visible_pool(&mut &self.db, ctx, id).await?;
        Ok(json!({"subnetpool": listing::project(p, &q.fields())}))
    }

    pub async fn pool_create(&self, ctx: &RequestContext, body: &Body) -> Result<Value> {
        body.only(&[
            "name",
            "description",
            "prefixes",
            "default_prefixlen",
            "min_prefixlen",
            "max_prefixlen",
            "shared",
            "is_default",
            "address_scope_id",
            "default_quota",
            "project_id",
            "tenant_id",
        ])?;
        let project = body.project(ctx.project_id.as_deref())?;
        let t = json!({"project_id": project, "tenant_id": project});
        self.authorize(ctx, "create_subnetpool", &t)?;
        for k in ["shared", "is_default"] {
            if body.has(k) {
                self.authorize(ctx, &format!("create_subnetpool:{k}"), &t)?;
            }
        }
        if body.get("address_scope_id").is_some_and(|v| !v.is_null()) {
            return Err(NetError::invalid("address scopes are not supported"));
        }
        let (prefixes, version) = parse_prefixes(
            &body
                .strings("prefixes")?
                .ok_or_else(|| NetError::invalid("prefixes is required"))?,
        )?;
        let min = body
            .int("min_prefixlen")?
            .unwrap_or(if version == 4 { 8 } else { 64 });
        let max = body
            .int("max_prefixlen")?
            .unwrap_or(if version == 4 { 32 } else { 128 });
        let def = body.int("default_prefixlen")?.unwrap_or(min);
        let id = model::new_id();
        let mut doc = model::standard(
            &id,
            &project,
            &body.string("description", 255)?.unwrap_or_default(),
        );
        doc.insert(
            "name".into(),
            json!(body.string("name", 255)?.unwrap_or_default()),
        );
        doc.insert("prefixes".into(), json!(prefixes));
        doc.insert("ip_version".into(), json!(version));
        doc.insert("min_prefixlen".into(), json!(min));
        doc.insert("max_prefixlen".into(), json!(max));
        doc.insert("default_prefixlen".into(), json!(def));
        doc.insert(
            "shared".into(),
            json!(body.boolean("shared")?.unwrap_or(false)),
        );
        doc.insert(
            "is_default".into(),
            json!(body.boolean("is_default")?.unwrap_or(false)),
        );
        doc.insert(
            "default_quota".into(),
            body.get("default_quota").cloned().unwrap_or(Value::Null),
        );
        doc.insert("address_scope_id".into(), Value::Null);
        check_bounds(&doc)?;
        db::insert(&mut &self.db, Table::SubnetPools, &doc).await?;
        Ok(json!({"subnetpool": doc}))
    }

    pub async fn pool_update(
        &self,
        ctx: &RequestContext,
        id: &str,
        body: &Body,
        if_match: Option<i64>,
    ) -> Result<Value> {
        body.read_only(&["ip_version", "shared", "project_id", "tenant_id"])?;
        body.only(&[
            "name",
            "description",
            "prefixes",
            "default_prefixlen",
            "min_prefixlen",
            "max_prefixlen",
            "is_default",
            "default_quota",
        ])?;
        let doc = retrying!({
            let mut tx = self.begin().await?;
            let mut p = self.visible_pool(&mut tx, ctx, id).await?;
            self.authorize(ctx, "update_subnetpool", &target(&p))?;
            if body.has("is_default") {
                self.authorize(ctx, "update_subnetpool:is_default", &target(&p))?;
            }
            Self::check_if_match(&p, if_match)?;
            let before = int(&p, "revision_number");
            if let Some(n) = body.string("name", 255)? {
                p.insert("name".into(), json!(n));
            }
            if let Some(d) = body.string("description", 255)? {
                p.insert("description".into(), json!(d));
            }
            if let Some(list) = body.strings("prefixes")? {
                let (new, version) = parse_prefixes(&list)?;
                let new_cidrs: Vec<Cidr> = new.iter().filter_map(|x| Cidr::parse(x).ok()).collect();
                let covered = |c: &Cidr| {
                    new_cidrs
                        .iter()
                        .any(|n| n.first() <= c.first() && c.last() <= n.last())
                };
                if version != int(&p, "ip_version") || !prefixes(&p).iter().all(covered) {
                    return Err(NetError::bad_request(
                        "IllegalSubnetPoolPrefixUpdate",
                        "Illegal update to prefixes: prefixes may only grow.",
                    ));
                }
                p.insert("prefixes".into(), json!(new));
            }
            for k in ["min_prefixlen", "max_prefixlen", "default_prefixlen"] {
                if let Some(v) = body.int(k)? {
                    p.insert(k.into(), json!(v));
                }
            }
            if let Some(v) = body.boolean("is_default")? {
                p.insert("is_default".into(), json!(v));
            }
            if let Some(v) = body.get("default_quota") {
                p.insert("default_quota".into(), v.clone());
            }
            check_bounds(&p)?;
            model::touch(&mut p);
            db::replace(&mut tx, Table::SubnetPools, &p, before).await?;
            tx.commit().await?;
            Ok(p)
        })
        .await?;
        Ok(json!({"subnetpool": doc}))
    }

    pub async fn pool_delete(
        &self,
        ctx: &RequestContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        retrying!({
            let mut tx = self.begin().await?;
            let p = self.visible_pool(&mut tx, ctx, id).await?;
            self.authorize(ctx, "delete_subnetpool", &target(&p))?;
            Self::check_if_match(&p, if_match)?;
            lock(&mut tx, id).await?;
            if !carved(&mut tx, id).await?.is_empty() {
                return Err(NetError::conflict(
                    "SubnetPoolInUse",
                    format!(
                        "Subnet pool {id} cannot be deleted: it is in use by one or more subnets."
                    ),
                ));
            }
            db::delete(&mut tx, Table::SubnetPools, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
