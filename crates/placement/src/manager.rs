//! The work behind the placement API, also called in-process by the scheduler: providers
//! and their trees, inventories, traits, aggregates, consumers and their allocations, and
//! the allocation-candidate search.
//!
//! Every write is one transaction ending in a generation compare-and-swap on each provider
//! (and consumer) it changed, as upstream's `increment_generation`. Allocation writes lock
//! the consumers, then the providers (each in uuid order), before reading usage, so two
//! concurrent claims against the same inventory serialise instead of both passing the
//! capacity check; a lost compare-and-swap, deadlock or serialisation failure is retried
//! (upstream's `allocation_conflict_retry_count`, 10) before answering 409
//! `placement.concurrent_update`. Policy is checked by the API layer, not here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferro_common::time::now_micros;
use ferro_db::{Db, Tx};
use ferro_policy::Enforcer;

use crate::PlacementConfig;
use crate::candidates::{self, CandidateRequest, Candidates, ProviderInfo, Snapshot};
use crate::db;
use crate::model::{
    self, ConsumerAllocations, ConsumerGeneration, ConsumerInfo, ConsumerView, Inventory,
    PlacementError, Provider, ProviderAllocation, ProviderFilter, Resources, Result, TraitFilter,
    codes,
};

/// The placement service: its database, policy and settings.
pub struct Placement {
    pub db: Db,
    pub enforcer: Enforcer,
    pub config: PlacementConfig,
}

/// Upstream's `[placement] allocation_conflict_retry_count`.
const RETRIES: usize = 10;

fn object_action(action: &str, reason: &str) -> String {
    format!("Object action {action} failed because: {reason}")
}

fn provider_not_found(uuid: &str) -> PlacementError {
    PlacementError::not_found(format!("No resource provider with uuid {uuid} found"))
        .with_code(codes::RESOURCE_PROVIDER_NOT_FOUND)
}

fn concurrent_update() -> PlacementError {
    PlacementError::conflict_code(
        "Another thread concurrently updated the resource provider data. Please retry your update",
        codes::CONCURRENT_UPDATE,
    )
}

fn generation_conflict() -> PlacementError {
    PlacementError::conflict_code(
        "resource provider generation conflict",
        codes::CONCURRENT_UPDATE,
    )
}

/// How an inventory capacity check words its refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryOp {
    Create,
    Update,
}

/// Outcome of one attempt of a retried write: `None` means a compare-and-swap lost.
type Attempt<T> = Result<Option<T>>;

/// Runs `$body` (with `$tx: &mut Tx`, evaluating to an [`Attempt`]) in a transaction
/// until it commits, retrying lost races; then upstream's 409 `concurrent_update`.
macro_rules! retrying {
    ($self:expr, |$tx:ident| $body:block) => {{
        let mut outcome = Err(concurrent_update());
        for _ in 0..RETRIES {
            let mut owned = $self.db.begin().await?;
            let attempt: Attempt<_> = {
                let $tx: &mut Tx = &mut owned;
                async { $body }.await
            };
            match attempt {
                Ok(Some(v)) => match owned.commit().await {
                    Ok(()) => {
                        outcome = Ok(v);
                        break;
                    }
                    Err(e) if model::is_retryable(&e) => continue,
                    Err(e) => {
                        outcome = Err(e.into());
                        break;
                    }
                },
                Ok(None) => continue,
                Err(e) if e.retry => continue,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if outcome
            .as_ref()
            .is_err_and(|e: &PlacementError| e.retry || e.detail.starts_with("Another thread"))
        {
            tracing::warn!("placement: a write lost {RETRIES} races in a row");
        }
        outcome
    }};
}

impl Placement {
    /// The placement service on `db` (already migrated).
    pub fn open(db: Db, config: PlacementConfig) -> ferro_common::Result<Arc<Placement>> {
        let enforcer = crate::policy::enforcer(config.policy_file.as_deref())?;
        Ok(Arc::new(Placement {
            db,
            enforcer,
            config,
        }))
    }

    // ---- resource classes -------------------------------------------------------------

    /// Every resource class, standard first, with its last change (0 for standard ones).
    pub async fn resource_classes(&self) -> Result<Vec<(String, i64)>> {
        let mut out: Vec<(String, i64)> = model::STANDARD_RESOURCE_CLASSES
            .iter()
            .map(|n| (n.to_string(), 0))
            .collect();
        out.extend(db::custom_classes(&mut &self.db).await?);
        Ok(out)
    }

    /// Whether resource class `name` exists.
    pub async fn resource_class_exists(&self, name: &str) -> Result<bool> {
        Ok(model::is_standard_class(name)
            || db::custom_class_get(&mut &self.db, name).await?.is_some())
    }

    /// Refuses any class in `names` that does not exist, with upstream's
    /// `ResourceClassNotFound` text.
    async fn check_classes<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Result<()> {
        let names: Vec<&String> = names.into_iter().collect();
        // Standard classes always exist: a scheduler's claim reads nothing here.
        if names.iter().all(|n| model::is_standard_class(n)) {
            return Ok(());
        }
        let custom: BTreeSet<String> = db::custom_classes(&mut &self.db)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for n in names {
            if !model::is_standard_class(n) && !custom.contains(n) {
                return Err(PlacementError::bad_request(format!(
                    "No such resource class {n}."
                )));
            }
        }
        Ok(())
    }

    /// `POST /resource_classes`: creates custom class `name`.
    pub async fn resource_class_create(&self, name: &str) -> Result<()> {
        if self.resource_class_exists(name).await? {
            return Err(PlacementError::conflict(format!(
                "Conflicting resource class already exists: {name}"
            )));
        }
        db::custom_class_insert(&mut &self.db, name, now_micros())
            .await
            .map_err(|e| match e.status {
                409 => PlacementError::conflict(format!(
                    "Conflicting resource class already exists: {name}"
                )),
                _ => e,
            })
    }

    /// `PUT /resource_classes/{name}` (1.7+): creates it unless it exists; true if created.
    pub async fn resource_class_ensure(&self, name: &str) -> Result<bool> {
        if self.resource_class_exists(name).await? {
            return Ok(false);
        }
        match db::custom_class_insert(&mut &self.db, name, now_micros()).await {
            Ok(()) => Ok(true),
            // Created concurrently: it exists, which is what was asked.
            Err(e) if e.status == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PUT /resource_classes/{name}` before 1.7: renames a custom class.
    pub async fn resource_class_rename(&self, from: &str, to: &str) -> Result<()> {
        if model::is_standard_class(from) {
            return Err(PlacementError::bad_request(format!(
                "Cannot update standard resource class {from}"
            )));
        }
        if db::custom_class_get(&mut &self.db, from).await?.is_none() {
            return Err(PlacementError::not_found(format!(
                "No such resource class {from}."
            )));
        }
        if self.resource_class_exists(to).await? {
            return Err(PlacementError::conflict(format!(
                "Resource class already exists: {to}"
            )));
        }
        let mut tx = self.db.begin().await?;
        db::custom_class_rename(&mut tx, from, to, now_micros()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `DELETE /resource_classes/{name}`.
    pub async fn resource_class_delete(&self, name: &str) -> Result<()> {
        if model::is_standard_class(name) {
            return Err(PlacementError::bad_request(format!(
                "Error in delete resource class: Cannot delete standard resource class {name}."
            )));
        }
        let mut tx = self.db.begin().await?;
        if db::class_in_inventory(&mut tx, name).await? {
            return Err(PlacementError::conflict(format!(
                "Error in delete resource class: Cannot delete resource class {name}. \
                 Class is in use in inventory."
            )));
        }
        if !db::custom_class_delete(&mut tx, name).await? {
            return Err(PlacementError::not_found(format!(
                "No such resource class {name}."
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- traits -------------------------------------------------------------------------

    /// Every trait (standard and custom), sorted; filtered by name and, when `associated`
    /// is given, by whether some provider carries it.
    pub async fn traits(
        &self,
        name_in: Option<&BTreeSet<String>>,
        prefix: Option<&str>,
        associated: Option<bool>,
    ) -> Result<Vec<String>> {
        let mut all: BTreeSet<String> = model::standard_traits().map(str::to_string).collect();
        all.extend(
            db::custom_traits(&mut &self.db)
                .await?
                .into_iter()
                .map(|(n, _)| n),
        );
        let used: Option<BTreeSet<String>> = match associated {
            Some(_) => Some(
                db::provider_traits(&mut &self.db, None)
                    .await?
                    .into_values()
                    .flatten()
                    .collect(),
            ),
            None => None,
        };
        Ok(all
            .into_iter()
            .filter(|t| name_in.is_none_or(|s| s.contains(t)))
            .filter(|t| prefix.is_none_or(|p| t.starts_with(p)))
            .filter(|t| match (associated, &used) {
                (Some(want), Some(used)) => used.contains(t) == want,
                _ => true,
            })
            .collect())
    }

    /// Whether trait `name` exists.
    pub async fn trait_exists(&self, name: &str) -> Result<bool> {
        Ok(model::is_standard_trait(name)
            || db::custom_trait_get(&mut &self.db, name).await?.is_some())
    }

    /// Traits in `names` that do not exist.
    async fn missing_traits(&self, names: &BTreeSet<String>) -> Result<Vec<String>> {
        let custom: BTreeSet<String> = db::custom_traits(&mut &self.db)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        Ok(names
            .iter()
            .filter(|n| !model::is_standard_trait(n) && !custom.contains(*n))
            .cloned()
            .collect())
    }

    /// `PUT /traits/{name}`: creates custom trait `name` unless it exists; true if created.
    pub async fn trait_ensure(&self, name: &str) -> Result<bool> {
        if self.trait_exists(name).await? {
            return Ok(false);
        }
        match db::custom_trait_insert(&mut &self.db, name, now_micros()).await {
            Ok(()) => Ok(true),
            Err(e) if e.status == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /traits/{name}`.
    pub async fn trait_delete(&self, name: &str) -> Result<()> {
        if model::is_standard_trait(name) {
            return Err(PlacementError::bad_request(format!(
                "Cannot delete standard trait {name}."
            )));
        }
        let mut tx = self.db.begin().await?;
        if db::custom_trait_get(&mut tx, name).await?.is_none() {
            return Err(PlacementError::not_found(format!(
                "No such trait(s): {name}."
            )));
        }
        if db::trait_in_use(&mut tx, name).await? {
            return Err(PlacementError::conflict(format!(
                "The trait {name} is in use by a resource provider."
            )));
        }
        db::custom_trait_delete(&mut tx, name).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The provider and its traits.
    pub async fn provider_traits(&self, uuid: &str) -> Result<(Provider, BTreeSet<String>)> {
        let p = self.provider(uuid).await?;
        let mut traits =
            db::provider_traits(&mut &self.db, Some(&BTreeSet::from([uuid.to_string()]))).await?;
        Ok((p, traits.remove(uuid).unwrap_or_default()))
    }

    /// `PUT /resource_providers/{uuid}/traits`: replaces the traits if the provider is still
    /// at `generation`; returns the provider at its new generation.
    pub async fn provider_traits_set(
        &self,
        uuid: &str,
        generation: Option<i64>,
        traits: &BTreeSet<String>,
    ) -> Result<Provider> {
        let missing = self.missing_traits(traits).await?;
        if !missing.is_empty() {
            return Err(PlacementError::bad_request(format!(
                "No such trait {}",
                missing.join(", ")
            )));
        }
        retrying!(self, |tx| {
            let mut p = lock_provider(tx, uuid).await?;
            if generation.is_some_and(|g| g != p.generation) {
                return Err(PlacementError::conflict_code(
                    "Resource provider's generation already changed. Please update the \
                     generation and try again.",
                    codes::CONCURRENT_UPDATE,
                ));
            }
            db::provider_traits_replace(tx, uuid, traits).await?;
            Ok(bump(tx, &mut p).await?.then_some(p))
        })
    }

    // ---- aggregates ---------------------------------------------------------------------

    /// The provider and its aggregates.
    pub async fn provider_aggregates(&self, uuid: &str) -> Result<(Provider, BTreeSet<String>)> {
        let p = self.provider(uuid).await?;
        let mut aggs =
            db::provider_aggregates(&mut &self.db, Some(&BTreeSet::from([uuid.to_string()])))
                .await?;
        Ok((p, aggs.remove(uuid).unwrap_or_default()))
    }

    /// `PUT /resource_providers/{uuid}/aggregates`. With a `generation` (1.19+) the write
    /// is refused when it is stale and bumps the generation; without, as 1.1-1.18, it does
    /// neither.
    pub async fn provider_aggregates_set(
        &self,
        uuid: &str,
        generation: Option<i64>,
        aggregates: &BTreeSet<String>,
    ) -> Result<Provider> {
        retrying!(self, |tx| {
            let mut p = lock_provider(tx, uuid).await?;
            if generation.is_some_and(|g| g != p.generation) {
                return Err(PlacementError::conflict_code(
                    "Resource provider's generation already changed. Please update the \
                     generation and try again.",
                    codes::CONCURRENT_UPDATE,
                ));
            }
            db::provider_aggregates_replace(tx, uuid, aggregates).await?;
            if generation.is_some() {
                Ok(bump(tx, &mut p).await?.then_some(p))
            } else {
                Ok(Some(p))
            }
        })
    }

    // ---- providers ----------------------------------------------------------------------

    /// Provider `uuid`, or upstream's 404.
    pub async fn provider(&self, uuid: &str) -> Result<Provider> {
        db::provider_get(&mut &self.db, uuid)
            .await?
            .ok_or_else(|| provider_not_found(uuid))
    }

    /// `POST /resource_providers`.
    pub async fn provider_create(
        &self,
        name: &str,
        uuid: Option<&str>,
        parent: Option<&str>,
    ) -> Result<Provider> {
        let uuid = match uuid {
            Some(u) => u.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let refuse = |reason: &str| {
            PlacementError::bad_request(format!(
                "Unable to create resource provider \"{name}\", {uuid}: {}",
                object_action("create", reason)
            ))
        };
        if parent == Some(uuid.as_str()) {
            return Err(refuse(
                "parent provider UUID cannot be same as UUID. Please set parent provider \
                 UUID to None if there is no parent.",
            ));
        }
        let mut tx = self.db.begin().await?;
        let root = match parent {
            Some(pu) => match lock_provider(&mut tx, pu).await {
                Ok(pp) => pp.root_uuid,
                Err(e) if e.status == 404 => {
                    return Err(refuse("parent provider UUID does not exist."));
                }
                Err(e) => return Err(e),
            },
            None => uuid.clone(),
        };
        let mut dups = Vec::new();
        if db::provider_get(&mut tx, &uuid).await?.is_some() {
            dups.push(format!("uuid: {uuid}"));
        }
        if db::provider_get_by_name(&mut tx, name).await?.is_some() {
            dups.push(format!("name: {name}"));
        }
        if !dups.is_empty() {
            return Err(duplicate_provider(&dups));
        }
        let now = now_micros();
        let p = Provider {
            uuid: uuid.clone(),
            name: name.to_string(),
            generation: 0,
            parent_uuid: parent.map(str::to_string),
            root_uuid: root,
            created_at: now,
            updated_at: now,
        };
        db::provider_insert(&mut tx, &p)
            .await
            .map_err(|e| match e.status {
                409 => duplicate_provider(&[format!("name: {name}")]),
                _ => e,
            })?;
        tx.commit()
            .await
            .map_err(|e| match PlacementError::from(e) {
                e if e.status == 409 => duplicate_provider(&[format!("name: {name}")]),
                e => e,
            })?;
        Ok(p)
    }

    /// `PUT /resource_providers/{uuid}`: a new name and, when `parent` is given (1.14+),
    /// a new parent. Re-parenting and un-parenting need `allow_reparenting` (1.37+).
    pub async fn provider_update(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<Option<&str>>,
        allow_reparenting: bool,
    ) -> Result<Provider> {
        let refuse = |reason: &str, action: &str| {
            PlacementError::bad_request(format!(
                "Unable to save resource provider {uuid}: {}",
                object_action(action, reason)
            ))
        };
        let mut tx = self.db.begin().await?;
        let mut p = lock_provider(&mut tx, uuid).await?;
        let mut subtree_move: Option<(Vec<String>, String)> = None;
        if let Some(new_parent) = parent {
            match new_parent {
                Some(np) if Some(np) == p.parent_uuid.as_deref() => {}
                Some(np) => {
                    if np == uuid {
                        return Err(refuse(
                            "parent provider UUID cannot be same as UUID. Please set parent \
                             provider UUID to None if there is no parent.",
                            "update",
                        ));
                    }
                    let Some(pp) = db::provider_get(&mut tx, np).await? else {
                        return Err(refuse("parent provider UUID does not exist.", "create"));
                    };
                    if p.parent_uuid.is_some() && !allow_reparenting {
                        return Err(refuse(
                            "re-parenting a provider is not currently allowed.",
                            "update",
                        ));
                    }
                    let subtree = self.subtree(&mut tx, &p).await?;
                    if subtree.contains(&pp.uuid) {
                        return Err(refuse(
                            "creating loop in the provider tree is not allowed.",
                            "update",
                        ));
                    }
                    p.parent_uuid = Some(pp.uuid.clone());
                    p.root_uuid = pp.root_uuid.clone();
                    subtree_move = Some((subtree, pp.root_uuid));
                }
                None => {
                    if p.parent_uuid.is_some() {
                        if !allow_reparenting {
                            return Err(refuse(
                                "un-parenting a provider is not currently allowed.",
                                "update",
                            ));
                        }
                        let subtree = self.subtree(&mut tx, &p).await?;
                        p.parent_uuid = None;
                        p.root_uuid = p.uuid.clone();
                        subtree_move = Some((subtree, p.uuid.clone()));
                    }
                }
            }
        }
        if p.name != name {
            if db::provider_get_by_name(&mut tx, name).await?.is_some() {
                return Err(PlacementError::conflict_code(
                    format!("Conflicting resource provider {name} already exists."),
                    codes::DUPLICATE_NAME,
                ));
            }
            p.name = name.to_string();
        }
        p.updated_at = now_micros();
        db::provider_update(&mut tx, &p).await?;
        if let Some((subtree, root)) = subtree_move {
            db::providers_set_root(&mut tx, &subtree, &root).await?;
        }
        tx.commit()
            .await
            .map_err(|e| match PlacementError::from(e) {
                e if e.status == 409 => PlacementError::conflict_code(
                    format!("Conflicting resource provider {name} already exists."),
                    codes::DUPLICATE_NAME,
                ),
                e => e,
            })?;
        Ok(p)
    }

    /// The uuids of `p` and every provider below it.
    async fn subtree(&self, tx: &mut Tx, p: &Provider) -> Result<Vec<String>> {
        let tree = db::providers_in_tree(tx, &p.root_uuid).await?;
        let mut out = vec![p.uuid.clone()];
        let mut i = 0;
        while i < out.len() {
            let cur = out[i].clone();
            out.extend(
                tree.iter()
                    .filter(|q| q.parent_uuid.as_deref() == Some(cur.as_str()))
                    .map(|q| q.uuid.clone()),
            );
            i += 1;
        }
        Ok(out)
    }

    /// `DELETE /resource_providers/{uuid}`.
    pub async fn provider_delete(&self, uuid: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        lock_provider(&mut tx, uuid)
            .await
            .map_err(|e| match e.status {
                404 => PlacementError::not_found(format!(
                    "No resource provider with uuid {uuid} found for delete"
                )),
                _ => e,
            })?;
        if db::provider_has_children(&mut tx, uuid).await? {
            return Err(PlacementError::conflict_code(
                format!(
                    "Unable to delete parent resource provider {uuid}: It has child resource \
                     providers."
                ),
                codes::PROVIDER_CANNOT_DELETE_PARENT,
            ));
        }
        if !db::allocations_exist(&mut tx, Some(uuid), None)
            .await?
            .is_empty()
        {
            return Err(PlacementError::conflict_code(
                format!(
                    "Unable to delete resource provider {uuid}: Resource provider has \
                     allocations."
                ),
                codes::PROVIDER_IN_USE,
            ));
        }
        db::provider_delete(&mut tx, uuid).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `GET /resource_providers`: the providers passing `filter`, oldest first.
    pub async fn providers(&self, filter: &ProviderFilter) -> Result<Vec<Provider>> {
        if !filter.resources.is_empty() {
            self.check_classes(filter.resources.keys())
                .await
                .map_err(|e| {
                    PlacementError::bad_request(format!(
                        "Invalid resource class in resources parameter: {}",
                        e.detail
                    ))
                })?;
        }
        let names = filter.traits.names();
        if !names.is_empty() {
            let missing = self.missing_traits(&names).await?;
            if !missing.is_empty() {
                return Err(PlacementError::bad_request(format!(
                    "Invalid trait(s) in \"required\" parameter: No such trait(s): {}.",
                    missing.join(", ")
                )));
            }
        }
        let all = db::providers_all(&mut &self.db).await?;
        let root_of_tree = match &filter.in_tree {
            Some(t) => match all.iter().find(|p| &p.uuid == t) {
                Some(p) => Some(p.root_uuid.clone()),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let aggs = if filter.aggregates.is_empty() {
            BTreeMap::new()
        } else {
            db::provider_aggregates(&mut &self.db, None).await?
        };
        let traits = if filter.traits.is_empty() {
            BTreeMap::new()
        } else {
            db::provider_traits(&mut &self.db, None).await?
        };
        let (invs, used) = if filter.resources.is_empty() {
            (BTreeMap::new(), BTreeMap::new())
        } else {
            (
                db::inventories(&mut &self.db, None).await?,
                usage_by_provider(&db::allocations_on(&mut &self.db, None).await?),
            )
        };
        let root_by_uuid: BTreeMap<&str, &str> = all
            .iter()
            .map(|p| (p.uuid.as_str(), p.root_uuid.as_str()))
            .collect();
        let empty = BTreeSet::new();
        let empty_inv = BTreeMap::new();
        let empty_used = BTreeMap::new();
        Ok(all
            .iter()
            .filter(|p| filter.name.as_ref().is_none_or(|n| &p.name == n))
            .filter(|p| filter.uuid.as_ref().is_none_or(|u| &p.uuid == u))
            .filter(|p| root_of_tree.as_ref().is_none_or(|r| &p.root_uuid == r))
            .filter(|p| {
                if filter.aggregates.is_empty() {
                    return true;
                }
                // A provider is in its own aggregates and, as upstream, its root's.
                let mut a = aggs.get(&p.uuid).cloned().unwrap_or_default();
                if let Some(root) = root_by_uuid.get(p.uuid.as_str())
                    && let Some(ra) = aggs.get(*root)
                {
                    a.extend(ra.iter().cloned());
                }
                filter.aggregates.matches(&a)
            })
            .filter(|p| filter.traits.matches(traits.get(&p.uuid).unwrap_or(&empty)))
            .filter(|p| {
                let inv = invs.get(&p.uuid).unwrap_or(&empty_inv);
                let used = used.get(&p.uuid).unwrap_or(&empty_used);
                filter.resources.iter().all(|(rc, &n)| match inv.get(rc) {
                    Some(i) => i.fits_units(n) && i.has_room(used.get(rc).copied().unwrap_or(0), n),
                    None => false,
                })
            })
            .cloned()
            .collect())
    }

    // ---- inventories --------------------------------------------------------------------

    /// The provider and its inventories by class.
    pub async fn inventories(&self, uuid: &str) -> Result<(Provider, BTreeMap<String, Inventory>)> {
        let p = self.provider(uuid).await?;
        let mut invs =
            db::inventories(&mut &self.db, Some(&BTreeSet::from([uuid.to_string()]))).await?;
        Ok((p, invs.remove(uuid).unwrap_or_default()))
    }

    /// `PUT /resource_providers/{uuid}/inventories`: replaces every inventory of the
    /// provider if it is still at `generation`. Classes left out are deleted, which is
    /// refused while allocations use them (`placement.inventory.inuse`).
    /// `reserved_can_be_total` is 1.26's relaxation.
    pub async fn inventories_set(
        &self,
        uuid: &str,
        generation: i64,
        inventories: Vec<Inventory>,
        reserved_can_be_total: bool,
    ) -> Result<(Provider, BTreeMap<String, Inventory>)> {
        for inv in &inventories {
            check_inventory_capacity(uuid, inv, reserved_can_be_total, InventoryOp::Update)?;
        }
        self.check_classes(inventories.iter().map(|i| &i.resource_class))
            .await
            .map_err(|e| {
                PlacementError::bad_request(format!(
                    "Unknown resource class in inventory for resource provider {uuid}: {}",
                    e.detail
                ))
            })?;
        let wanted: BTreeMap<String, Inventory> = inventories
            .into_iter()
            .map(|i| (i.resource_class.clone(), i))
            .collect();
        retrying!(self, |tx| {
            let mut p = lock_provider(tx, uuid).await?;
            if p.generation != generation {
                return Err(generation_conflict());
            }
            let key = BTreeSet::from([uuid.to_string()]);
            let current = db::inventories_locked(tx, &key)
                .await?
                .remove(uuid)
                .unwrap_or_default();
            let removed: BTreeSet<String> = current
                .keys()
                .filter(|rc| !wanted.contains_key(*rc))
                .cloned()
                .collect();
            if !removed.is_empty() {
                let in_use = in_use_classes(tx, uuid, &removed).await?;
                if !in_use.is_empty() {
                    return Err(PlacementError::conflict_code(
                        format!(
                            "update conflict: Inventory for '{}' on resource provider '{uuid}' \
                             in use.",
                            in_use.join(", ")
                        ),
                        codes::INVENTORY_INUSE,
                    ));
                }
            }
            let now = now_micros();
            for rc in &removed {
                db::inventory_delete(tx, uuid, rc).await?;
            }
            for (rc, inv) in &wanted {
                db::inventory_write(tx, uuid, inv, current.contains_key(rc), now).await?;
            }
            if !bump(tx, &mut p).await? {
                return Ok(None);
            }
            let mut out = wanted.clone();
            for inv in out.values_mut() {
                inv.updated_at = now;
            }
            Ok(Some((p, out)))
        })
    }

    /// `POST /resource_providers/{uuid}/inventories`: adds one inventory (no generation in
    /// the request; the provider's is still bumped).
    pub async fn inventory_create(
        &self,
        uuid: &str,
        inv: Inventory,
        reserved_can_be_total: bool,
    ) -> Result<(Provider, Inventory)> {
        let prefix = format!("Unable to create inventory for resource provider {uuid}");
        self.provider(uuid).await?;
        check_inventory_capacity(uuid, &inv, reserved_can_be_total, InventoryOp::Create)?;
        self.check_classes([&inv.resource_class])
            .await
            .map_err(|e| PlacementError::bad_request(format!("{prefix}: {}", e.detail)))?;
        retrying!(self, |tx| {
            let mut p = lock_provider(tx, uuid).await?;
            let key = BTreeSet::from([uuid.to_string()]);
            let current = db::inventories_locked(tx, &key)
                .await?
                .remove(uuid)
                .unwrap_or_default();
            if current.contains_key(&inv.resource_class) {
                return Err(PlacementError::conflict_code(
                    format!(
                        "Update conflict: Inventory for '{}' on resource provider '{uuid}' \
                         already exists.",
                        inv.resource_class
                    ),
                    codes::CONCURRENT_UPDATE,
                ));
            }
            let now = now_micros();
            db::inventory_write(tx, uuid, &inv, false, now).await?;
            if !bump(tx, &mut p).await? {
                return Ok(None);
            }
            let mut out = inv.clone();
            out.updated_at = now;
            Ok(Some((p, out)))
        })
    }

    /// `PUT /resource_providers/{uuid}/inventories/{rc}`: changes an existing inventory.
    pub async fn inventory_update(
        &self,
        uuid: &str,
        generation: i64,
        inv: Inventory,
        reserved_can_be_total: bool,
    ) -> Result<(Provider, Inventory)> {
        check_inventory_capacity(uuid, &inv, reserved_can_be_total, InventoryOp::Update)?;
        if !self.resource_class_exists(&inv.resource_class).await? {
            return Err(PlacementError::not_found(format!(
                "No such resource class {}.",
                inv.resource_class
            )));
        }
        retrying!(self, |tx| {
            let mut p = lock_provider(tx, uuid).await?;
            if p.generation != generation {
                return Err(generation_conflict());
            }
            let key = BTreeSet::from([uuid.to_string()]);
            let current = db::inventories_locked(tx, &key)
                .await?
                .remove(uuid)
                .unwrap_or_default();
            if !current.contains_key(&inv.resource_class) {
                return Err(PlacementError::bad_request(format!(
                    "No inventory record with resource class for resource provider {uuid}: \
                     No inventory of class {} found.",
                    inv.resource_class
                )));
            }
            let now = now_micros();
            db::inventory_write(tx, uuid, &inv, true, now).await?;
            if !bump(tx, &mut p).await? {
                return Ok(None);
            }
            let mut out = inv.clone();
            out.updated_at = now;
            Ok(Some((p, out)))
        })
    }

    /// `DELETE /resource_providers/{uuid}/inventories/{rc}`.
    pub async fn inventory_delete(&self, uuid: &str, rc: &str) -> Result<()> {
        retrying!(self, |tx| {
            let mut p = lock_provider(tx, uuid).await?;
            let key = BTreeSet::from([uuid.to_string()]);
            let current = db::inventories_locked(tx, &key)
                .await?
                .remove(uuid)
                .unwrap_or_default();
            if !current.contains_key(rc) {
                return Err(PlacementError::not_found(format!(
                    "No inventory of class {rc} found for delete: No inventory of class {rc} \
                     found for delete."
                )));
            }
            let in_use = in_use_classes(tx, uuid, &BTreeSet::from([rc.to_string()])).await?;
            if !in_use.is_empty() {
                // Upstream answers this one with the concurrent-update code.
                return Err(PlacementError::conflict_code(
                    format!(
                        "Unable to delete inventory of class {rc}: Inventory for '{rc}' on \
                         resource provider '{uuid}' in use."
                    ),
                    codes::CONCURRENT_UPDATE,
                ));
            }
            db::inventory_delete(tx, uuid, rc).await?;
            Ok(bump(tx, &mut p).await?.then_some(()))
        })
    }

    /// `DELETE /resource_providers/{uuid}/inventories` (1.5+).
    pub async fn inventories_delete(&self, uuid: &str) -> Result<()> {
        retrying!(self, |tx| {
            let mut p = lock_provider(tx, uuid).await?;
            let key = BTreeSet::from([uuid.to_string()]);
            let current = db::inventories_locked(tx, &key)
                .await?
                .remove(uuid)
                .unwrap_or_default();
            let classes: BTreeSet<String> = current.keys().cloned().collect();
            let in_use = in_use_classes(tx, uuid, &classes).await?;
            if !in_use.is_empty() {
                return Err(PlacementError::conflict_code(
                    format!(
                        "Inventory for '{}' on resource provider '{uuid}' in use.",
                        in_use.join(", ")
                    ),
                    codes::INVENTORY_INUSE,
                ));
            }
            for rc in &classes {
                db::inventory_delete(tx, uuid, rc).await?;
            }
            Ok(bump(tx, &mut p).await?.then_some(()))
        })
    }

    // ---- usages -------------------------------------------------------------------------

    /// The provider and its usage of every class it has inventory of (0 when unused).
    pub async fn provider_usages(&self, uuid: &str) -> Result<(Provider, Resources)> {
        let (p, invs) = self.inventories(uuid).await?;
        let key = BTreeSet::from([uuid.to_string()]);
        let allocs = db::allocations_on(&mut &self.db, Some(&key)).await?;
        let mut used: Resources = invs.keys().map(|rc| (rc.clone(), 0)).collect();
        for a in allocs {
            *used.entry(a.resource_class).or_default() += a.used;
        }
        Ok((p, used))
    }

    /// `GET /usages`: usage of a project (and user), by consumer type and class, with the
    /// number of consumers per type. `consumer_type` filters as 1.38 describes (`all`
    /// groups everything under `all`, `unknown` selects consumers without a type).
    pub async fn project_usages(
        &self,
        project_id: &str,
        user_id: Option<&str>,
        consumer_type: Option<&str>,
    ) -> Result<BTreeMap<String, (Resources, usize)>> {
        let rows = db::project_allocations(&mut &self.db, project_id, user_id).await?;
        let mut out: BTreeMap<String, (Resources, BTreeSet<String>)> = BTreeMap::new();
        for (a, ct) in rows {
            let ct = ct.unwrap_or_else(|| "unknown".to_string());
            let key = match consumer_type {
                None => ct,
                Some("all") => "all".to_string(),
                Some(want) if want == ct => ct,
                Some(_) => continue,
            };
            let e = out.entry(key).or_default();
            *e.0.entry(a.resource_class).or_default() += a.used;
            e.1.insert(a.consumer_uuid);
        }
        Ok(out
            .into_iter()
            .map(|(k, (r, c))| (k, (r, c.len())))
            .collect())
    }

    // ---- allocations --------------------------------------------------------------------

    /// `GET /allocations/{consumer_uuid}`: empty when the consumer has none.
    pub async fn consumer_allocations(&self, consumer: &str) -> Result<ConsumerView> {
        let rows = db::allocations_of(&mut &self.db, consumer).await?;
        if rows.is_empty() {
            return Ok(ConsumerView::default());
        }
        let c = db::consumer_get(&mut &self.db, consumer).await?;
        let rps: BTreeSet<String> = rows
            .iter()
            .map(|r| r.resource_provider_uuid.clone())
            .collect();
        let mut gens = BTreeMap::new();
        for rp in &rps {
            if let Some(p) = db::provider_get(&mut &self.db, rp).await? {
                gens.insert(rp.clone(), p.generation);
            }
        }
        let mut view = ConsumerView {
            info: c.as_ref().map(db::ConsumerRow::info),
            generation: c.as_ref().map(|c| c.generation),
            ..Default::default()
        };
        for r in rows {
            view.last_modified = view.last_modified.max(r.created_at);
            let e = view
                .allocations
                .entry(r.resource_provider_uuid.clone())
                .or_insert_with(|| {
                    (
                        gens.get(&r.resource_provider_uuid).copied().unwrap_or(0),
                        Resources::new(),
                    )
                });
            e.1.insert(r.resource_class, r.used);
        }
        Ok(view)
    }

    /// `GET /resource_providers/{uuid}/allocations`: the provider, its allocations by
    /// consumer, and when the newest was made.
    pub async fn provider_allocations(
        &self,
        uuid: &str,
    ) -> Result<(Provider, Vec<ProviderAllocation>, i64)> {
        let p = self.provider(uuid).await.map_err(|e| match e.status {
            404 => PlacementError::not_found(format!(
                "Resource provider '{uuid}' not found: No resource provider with uuid {uuid} \
                 found"
            )),
            _ => e,
        })?;
        let key = BTreeSet::from([uuid.to_string()]);
        let rows = db::allocations_on(&mut &self.db, Some(&key)).await?;
        let consumers: BTreeSet<String> = rows.iter().map(|r| r.consumer_uuid.clone()).collect();
        let crow = db::consumers_get(&mut &self.db, &consumers).await?;
        let mut by: BTreeMap<String, ProviderAllocation> = BTreeMap::new();
        let mut last = 0;
        for r in rows {
            last = last.max(r.created_at);
            let e = by
                .entry(r.consumer_uuid.clone())
                .or_insert_with(|| ProviderAllocation {
                    consumer_uuid: r.consumer_uuid.clone(),
                    consumer_generation: crow.get(&r.consumer_uuid).map_or(0, |c| c.generation),
                    resources: Resources::new(),
                });
            e.resources.insert(r.resource_class, r.used);
        }
        Ok((p, by.into_values().collect(), last))
    }

    /// Replaces the allocations of every consumer in `writes` in one transaction: the
    /// API's `PUT /allocations/{uuid}` and `POST /allocations`, and the scheduler's claim.
    /// A consumer with no allocations left is deleted.
    pub async fn allocations_set(&self, writes: &[ConsumerAllocations]) -> Result<()> {
        let classes: BTreeSet<String> = writes
            .iter()
            .flat_map(|w| w.allocations.values())
            .flat_map(|r| r.keys().cloned())
            .collect();
        self.check_classes(classes.iter()).await?;
        let mut writes: Vec<&ConsumerAllocations> = writes.iter().collect();
        writes.sort_by(|a, b| a.consumer_uuid.cmp(&b.consumer_uuid));
        retrying!(self, |tx| { allocations_set_once(tx, &writes).await })
    }

    /// The scheduler's claim: `allocations` for `consumer`, expecting the consumer to be
    /// at `generation` (`None`: a new consumer).
    pub async fn claim(
        &self,
        consumer: &str,
        allocations: BTreeMap<String, Resources>,
        info: ConsumerInfo,
        generation: Option<i64>,
    ) -> Result<()> {
        self.allocations_set(&[ConsumerAllocations {
            consumer_uuid: consumer.to_string(),
            allocations,
            info,
            generation: ConsumerGeneration::Expect(generation),
        }])
        .await
    }

    /// `DELETE /allocations/{consumer_uuid}`: removes every allocation of the consumer and
    /// the consumer. As upstream, provider generations are left alone.
    pub async fn allocations_delete(&self, consumer: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        db::consumer_lock(&mut tx, consumer).await?;
        let n = db::allocations_delete_of(&mut tx, consumer).await?;
        if n == 0 {
            return Err(PlacementError::not_found(format!(
                "No allocations for consumer '{consumer}'"
            )));
        }
        db::consumer_delete(&mut tx, consumer).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- allocation candidates ----------------------------------------------------------

    /// `GET /allocation_candidates`, after checking every class and trait named exists.
    pub async fn allocation_candidates(&self, req: &CandidateRequest) -> Result<Candidates> {
        let classes: BTreeSet<String> = req
            .groups
            .iter()
            .flat_map(|g| g.resources.keys().cloned())
            .collect();
        self.check_classes(classes.iter()).await.map_err(|e| {
            PlacementError::bad_request(format!(
                "Invalid resource class in resources parameter: {}",
                e.detail
            ))
        })?;
        let mut names: BTreeSet<String> = req.root_traits.names();
        for g in &req.groups {
            names.extend(g.traits.names());
        }
        let missing = self.missing_traits(&names).await?;
        if !missing.is_empty() {
            return Err(PlacementError::bad_request(format!(
                "No such trait(s): {}.",
                missing.join(", ")
            )));
        }
        let snap = self.snapshot().await?;
        Ok(candidates::find(&snap, req))
    }

    /// Everything the candidate search looks at, read without a transaction: a claim
    /// re-checks capacity under locks anyway.
    async fn snapshot(&self) -> Result<Snapshot> {
        let providers = db::providers_all(&mut &self.db).await?;
        let mut invs = db::inventories(&mut &self.db, None).await?;
        let mut used = usage_by_provider(&db::allocations_on(&mut &self.db, None).await?);
        let mut traits = db::provider_traits(&mut &self.db, None).await?;
        let mut aggs = db::provider_aggregates(&mut &self.db, None).await?;
        Ok(Snapshot {
            providers: providers
                .into_iter()
                .map(|p| ProviderInfo {
                    inventories: invs.remove(&p.uuid).unwrap_or_default(),
                    used: used.remove(&p.uuid).unwrap_or_default(),
                    traits: traits.remove(&p.uuid).unwrap_or_default(),
                    aggregates: aggs.remove(&p.uuid).unwrap_or_default(),
                    uuid: p.uuid,
                    parent: p.parent_uuid,
                    root: p.root_uuid,
                })
                .collect(),
        })
    }
}

fn duplicate_provider(dups: &[String]) -> PlacementError {
    PlacementError::conflict_code(
        format!(
            "Conflicting resource provider {} already exists.",
            dups.join(", ")
        ),
        codes::DUPLICATE_NAME,
    )
}

/// Refuses reserved above total (1.26+) or at/above total (before), as upstream's
/// `_validate_inventory_capacity`.
fn check_inventory_capacity(
    uuid: &str,
    inv: &Inventory,
    reserved_can_be_total: bool,
    op: InventoryOp,
) -> Result<()> {
    let capacity = inv.total - inv.reserved;
    let bad = if reserved_can_be_total {
        capacity < 0
    } else {
        capacity <= 0
    };
    if !bad {
        return Ok(());
    }
    let what = if reserved_can_be_total {
        "The reserved value is greater than total."
    } else {
        "The reserved value is greater than or equal to total."
    };
    let verb = match op {
        InventoryOp::Create => "create",
        InventoryOp::Update => "update",
    };
    Err(PlacementError::bad_request(format!(
        "Unable to {verb} inventory for resource provider {uuid}: Invalid inventory for '{}' \
         on resource provider '{uuid}'. {what}",
        inv.resource_class
    )))
}

/// Locks provider `uuid`, or answers upstream's 404.
async fn lock_provider(tx: &mut Tx, uuid: &str) -> Result<Provider> {
    db::providers_lock(tx, &BTreeSet::from([uuid.to_string()]))
        .await?
        .pop()
        .ok_or_else(|| provider_not_found(uuid))
}

/// Bumps `p`'s generation if still at `p.generation`; updates `p` on success.
async fn bump(tx: &mut Tx, p: &mut Provider) -> Result<bool> {
    let now = now_micros();
    if db::provider_bump_generation(tx, &p.uuid, p.generation, now).await? {
        p.generation += 1;
        p.updated_at = now;
        Ok(true)
    } else {
        Ok(false)
    }
}

/// Classes among `classes` with allocations on provider `rp`.
async fn in_use_classes(tx: &mut Tx, rp: &str, classes: &BTreeSet<String>) -> Result<Vec<String>> {
    let rows = db::allocations_on_locked(tx, &BTreeSet::from([rp.to_string()])).await?;
    let used: BTreeSet<String> = rows
        .into_iter()
        .filter(|r| classes.contains(&r.resource_class))
        .map(|r| r.resource_class)
        .collect();
    Ok(used.into_iter().collect())
}

/// Usage by provider and class.
fn usage_by_provider(rows: &[db::AllocationRow]) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for r in rows {
        *out.entry(r.resource_provider_uuid.clone())
            .or_default()
            .entry(r.resource_class.clone())
            .or_default() += r.used;
    }
    out
}

/// One attempt at replacing the allocations of `writes` (sorted by consumer).
async fn allocations_set_once(tx: &mut Tx, writes: &[&ConsumerAllocations]) -> Attempt<()> {
    let now = now_micros();
    // 1. Consumers, in uuid order: create or lock, then check their generation.
    let mut consumer_rows: BTreeMap<String, db::ConsumerRow> = BTreeMap::new();
    let mut losing: BTreeSet<String> = BTreeSet::new();
    for w in writes {
        let c = &w.consumer_uuid;
        let row = if w.allocations.is_empty() {
            let row = db::consumer_lock(tx, c).await?;
            if row.is_none()
                && let ConsumerGeneration::Expect(Some(g)) = w.generation
            {
                return Err(consumer_conflict(None, Some(g)));
            }
            row
        } else {
            let (row, created) = db::consumer_ensure_locked(tx, c, &w.info, now).await?;
            match (created, w.generation) {
                (true, ConsumerGeneration::Expect(Some(g))) => {
                    return Err(consumer_conflict(None, Some(g)));
                }
                (false, ConsumerGeneration::Expect(g)) if g != Some(row.generation) => {
                    return Err(consumer_conflict(Some(row.generation), g));
                }
                _ => {}
            }
            Some(row)
        };
        if let Some(row) = row {
            if let ConsumerGeneration::Expect(g) = w.generation
                && w.allocations.is_empty()
                && g != Some(row.generation)
            {
                return Err(consumer_conflict(Some(row.generation), g));
            }
            // Upstream moves an existing consumer to the project/user (and type) given.
            let mut info = w.info.clone();
            if info.consumer_type.is_none() {
                info.consumer_type = row.consumer_type.clone();
            }
            if row.info() != info && !w.allocations.is_empty() {
                db::consumer_update_info(tx, c, &info, now).await?;
            }
            // Emptying a consumer bumps the providers it leaves, as upstream (the old
            // allocations are rewritten with used=0).
            if w.allocations.is_empty() {
                for a in db::allocations_of(tx, c).await? {
                    losing.insert(a.resource_provider_uuid);
                }
            }
            consumer_rows.insert(c.clone(), row);
        }
    }

    // 2. Providers, in uuid order.
    let wanted: BTreeSet<String> = writes
        .iter()
        .flat_map(|w| w.allocations.keys().cloned())
        .collect();
    let mut to_lock = wanted.clone();
    to_lock.extend(losing.iter().cloned());
    let locked = db::providers_lock(tx, &to_lock).await?;
    let mut providers: BTreeMap<String, Provider> =
        locked.into_iter().map(|p| (p.uuid.clone(), p)).collect();
    for w in writes {
        for rp in w.allocations.keys() {
            if !providers.contains_key(rp) {
                return Err(PlacementError::bad_request(format!(
                    "Allocation for resource provider '{rp}' that does not exist."
                )));
            }
        }
    }

    // 3. Usage now, and usage once these consumers' allocations are gone.
    let ours: BTreeSet<&str> = writes.iter().map(|w| w.consumer_uuid.as_str()).collect();
    let rows = db::allocations_on_locked(tx, &wanted).await?;
    let mut prev: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut after: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in &rows {
        let key = (r.resource_provider_uuid.clone(), r.resource_class.clone());
        *prev.entry(key.clone()).or_default() += r.used;
        if !ours.contains(r.consumer_uuid.as_str()) {
            *after.entry(key).or_default() += r.used;
        }
    }
    let invs = db::inventories_locked(tx, &wanted).await?;

    // 4. Capacity and unit constraints (objects/allocation.py `_check_capacity_exceeded`).
    let mut needed_all: BTreeMap<(String, String), i64> = BTreeMap::new();
    for w in writes {
        for (rp, resources) in &w.allocations {
            for (rc, &amount) in resources {
                let key = (rp.clone(), rc.clone());
                let sum = needed_all.entry(key.clone()).or_default();
                *sum += amount;
                let sum = *sum;
                let Some(inv) = invs.get(rp).and_then(|m| m.get(rc)) else {
                    return Err(PlacementError::conflict(format!(
                        "Unable to allocate inventory: Inventory for '{rc}' on resource \
                         provider '{rp}' invalid."
                    )));
                };
                if !inv.fits_units(amount) {
                    return Err(PlacementError::conflict(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' \
                         on resource provider '{rp}'. The requested amount would violate \
                         inventory constraints."
                    )));
                }
                let used = after.get(&key).copied().unwrap_or(0);
                if !inv.has_room(used, amount) || !inv.has_room(used, sum) {
                    // Allowed only when it makes an existing overage no worse.
                    let better = prev.get(&key).is_some_and(|&p| used + sum <= p);
                    if !better {
                        return Err(PlacementError::conflict(format!(
                            "Unable to allocate inventory: Unable to create allocation for \
                             '{rc}' on resource provider '{rp}'. The requested amount would \
                             exceed the capacity."
                        )));
                    }
                }
            }
        }
    }

    // 5. Write, then compare-and-swap every generation touched.
    for w in writes {
        db::allocations_delete_of(tx, &w.consumer_uuid).await?;
        for (rp, resources) in &w.allocations {
            for (rc, &amount) in resources {
                db::allocation_insert(tx, &w.consumer_uuid, rp, rc, amount, now).await?;
            }
        }
    }
    for p in providers.values_mut() {
        if !bump(tx, p).await? {
            return Ok(None);
        }
    }
    for w in writes {
        let Some(row) = consumer_rows.get(&w.consumer_uuid) else {
            continue;
        };
        if w.allocations.is_empty() {
            db::consumer_delete(tx, &w.consumer_uuid).await?;
        } else if !db::consumer_bump_generation(tx, &w.consumer_uuid, row.generation, now).await? {
            return Ok(None);
        }
    }
    Ok(Some(()))
}

fn consumer_conflict(have: Option<i64>, got: Option<i64>) -> PlacementError {
    let show = |g: Option<i64>| g.map_or_else(|| "None".to_string(), |g| g.to_string());
    let detail = match have {
        Some(h) => format!(
            "consumer generation conflict - expected {h} but got {}",
            show(got)
        ),
        None => format!(
            "consumer generation conflict - expected null but got {}",
            show(got)
        ),
    };
    PlacementError::conflict_code(detail, codes::CONCURRENT_UPDATE)
}

/// The traits filter of a provider list or candidate group, for callers building one.
pub fn traits_required(names: &[&str]) -> TraitFilter {
    TraitFilter {
        required: names
            .iter()
            .map(|n| BTreeSet::from([n.to_string()]))
            .collect(),
        forbidden: BTreeSet::new(),
    }
}
