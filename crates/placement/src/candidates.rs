//! Allocation candidates: which providers (and provider trees) can satisfy a request, and in
//! which combinations. Pure: it works on a [`Snapshot`] of providers, inventories, usages,
//! traits and aggregates read in one go, so it is tested without a database.
//!
//! The semantics follow upstream's objects/allocation_candidate.py and research_context.py:
//! a suffixed (granular) group is satisfied by one provider; the unsuffixed group may be
//! spread over the providers of one tree and the sharing providers associated with it
//! (`MISC_SHARES_VIA_AGGREGATE`); the groups' partial requests are combined per anchor
//! (root) provider, then `group_policy`, `same_subtree`, `root_required` and the combined
//! capacity filter them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::model::{AggregateFilter, Inventory, MISC_SHARES_VIA_AGGREGATE, Resources, TraitFilter};

/// One provider as the search sees it.
#[derive(Clone, Debug, Default)]
pub struct ProviderInfo {
    pub uuid: String,
    pub parent: Option<String>,
    pub root: String,
    pub inventories: BTreeMap<String, Inventory>,
    pub used: BTreeMap<String, i64>,
    pub traits: BTreeSet<String>,
    pub aggregates: BTreeSet<String>,
}

impl ProviderInfo {
    /// Whether this provider alone can take `amount` of `rc` now.
    fn can_take(&self, rc: &str, amount: i64) -> bool {
        match self.inventories.get(rc) {
            Some(inv) => {
                let used = self.used.get(rc).copied().unwrap_or(0);
                inv.fits_units(amount) && inv.capacity() - used >= amount
            }
            None => false,
        }
    }
}

/// Every provider, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub providers: Vec<ProviderInfo>,
}

/// How granular groups may share providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupPolicy {
    None,
    Isolate,
}

/// One request group (`resources[$S]`, `required[$S]`, `member_of[$S]`, `in_tree[$S]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestGroup {
    /// `""` for the unsuffixed group.
    pub suffix: String,
    pub resources: Resources,
    pub traits: TraitFilter,
    pub aggregates: AggregateFilter,
    pub in_tree: Option<String>,
}

impl RequestGroup {
    /// Granular groups must be satisfied by a single provider.
    pub fn use_same_provider(&self) -> bool {
        !self.suffix.is_empty()
    }
}

/// A whole `GET /allocation_candidates` request.
#[derive(Clone, Debug, Default)]
pub struct CandidateRequest {
    pub groups: Vec<RequestGroup>,
    pub limit: Option<usize>,
    pub group_policy: Option<GroupPolicy>,
    /// `root_required`: traits the tree's root must (not) have.
    pub root_traits: TraitFilter,
    /// `same_subtree`: each entry lists suffixes whose providers share a subtree.
    pub same_subtrees: Vec<Vec<String>>,
    /// 1.29+: allocation requests may span providers of one tree.
    pub nested_aware: bool,
}

/// One way to satisfy the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationRequest {
    /// Resources by provider uuid.
    pub allocations: BTreeMap<String, BTreeMap<String, i64>>,
    /// Providers that satisfied each group, by suffix (1.34+).
    pub mappings: BTreeMap<String, BTreeSet<String>>,
}

/// What a provider in play has and uses.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderSummary {
    pub uuid: String,
    pub parent: Option<String>,
    pub root: String,
    /// `(capacity, used)` by class.
    pub resources: BTreeMap<String, (i64, i64)>,
    pub traits: BTreeSet<String>,
}

/// The answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Candidates {
    pub allocation_requests: Vec<AllocationRequest>,
    pub provider_summaries: Vec<ProviderSummary>,
}

/// Upstream's `max_allocation_candidates` is unlimited by default; a product over wide trees
/// can explode, so the search stops after this many distinct results.
// TODO-compat: upstream makes this configurable ([placement] max_allocation_candidates).
const MAX_CANDIDATES: usize = 100_000;

/// A group's contribution anchored at one root: `(provider, class, amount)` triples and
/// the providers satisfying it.
#[derive(Clone, Debug)]
struct Partial {
    anchor: usize,
    parts: Vec<(usize, String, i64)>,
    providers: BTreeSet<usize>,
}

struct Index<'a> {
    snap: &'a Snapshot,
    by_uuid: BTreeMap<&'a str, usize>,
    root_of: Vec<usize>,
    /// For each sharing provider, the roots it serves (besides its own).
    anchors: BTreeMap<usize, BTreeSet<usize>>,
    has_trees: bool,
}

impl<'a> Index<'a> {
    fn new(snap: &'a Snapshot) -> Self {
        let by_uuid: BTreeMap<&str, usize> = snap
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.uuid.as_str(), i))
            .collect();
        let root_of: Vec<usize> = snap
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| by_uuid.get(p.root.as_str()).copied().unwrap_or(i))
            .collect();
        let mut anchors = BTreeMap::new();
        for (i, p) in snap.providers.iter().enumerate() {
            if !p.traits.contains(MISC_SHARES_VIA_AGGREGATE) {
                continue;
            }
            // A sharing provider serves its own tree and the tree of every provider that
            // shares one of its aggregates (research_context.anchors_for_sharing_providers).
            let mut roots = BTreeSet::from([root_of[i]]);
            for (j, q) in snap.providers.iter().enumerate() {
                if !q.aggregates.is_disjoint(&p.aggregates) {
                    roots.insert(root_of[j]);
                }
            }
            anchors.insert(i, roots);
        }
        let has_trees = snap.providers.iter().any(|p| p.parent.is_some());
        Index {
            snap,
            by_uuid,
            root_of,
            anchors,
            has_trees,
        }
    }

    fn p(&self, i: usize) -> &'a ProviderInfo {
        &self.snap.providers[i]
    }

    /// Roots the provider may anchor: its own, and for a sharing provider the roots it serves.
    fn anchors_of(&self, i: usize) -> BTreeSet<usize> {
        self.anchors
            .get(&i)
            .cloned()
            .unwrap_or_else(|| BTreeSet::from([self.root_of[i]]))
    }

    /// Aggregates that count for `member_of` on provider `i`: its own and, as upstream
    /// does for nested providers, its root's.
    fn effective_aggregates(&self, i: usize) -> BTreeSet<String> {
        let mut aggs = self.p(i).aggregates.clone();
        aggs.extend(self.p(self.root_of[i]).aggregates.iter().cloned());
        aggs
    }

    fn in_tree_root(&self, group: &RequestGroup) -> Option<Option<usize>> {
        group
            .in_tree
            .as_ref()
            .map(|u| self.by_uuid.get(u.as_str()).map(|&i| self.root_of[i]))
    }

    /// Whether the provider passes the group's aggregate filter and `in_tree`.
    fn passes_placement_filters(&self, i: usize, group: &RequestGroup) -> bool {
        if !group.aggregates.is_empty() && !group.aggregates.matches(&self.effective_aggregates(i))
        {
            return false;
        }
        match self.in_tree_root(group) {
            None => true,
            Some(None) => false,
            Some(Some(root)) => self.root_of[i] == root,
        }
    }

    /// Partials of a group satisfied by a single provider.
    fn single_provider(&self, group: &RequestGroup) -> Vec<Partial> {
        let mut out = Vec::new();
        for i in 0..self.snap.providers.len() {
            let p = self.p(i);
            if !group.resources.iter().all(|(rc, &n)| p.can_take(rc, n)) {
                continue;
            }
            if !group.traits.matches(&p.traits) || !self.passes_placement_filters(i, group) {
                continue;
            }
            let parts: Vec<(usize, String, i64)> = group
                .resources
                .iter()
                .map(|(rc, &n)| (i, rc.clone(), n))
                .collect();
            for anchor in self.anchors_of(i) {
                out.push(Partial {
                    anchor,
                    parts: parts.clone(),
                    providers: BTreeSet::from([i]),
                });
            }
        }
        out
    }

    /// Partials of the unsuffixed group spread over one tree and its sharing providers.
    fn multiple_providers(&self, group: &RequestGroup) -> Vec<Partial> {
        let mut out = Vec::new();
        let roots: BTreeSet<usize> = self.root_of.iter().copied().collect();
        for anchor in roots {
            // Per class, the providers of this tree (or sharing with it) that can take it.
            let mut choices: Vec<Vec<usize>> = Vec::new();
            for (rc, &n) in &group.resources {
                let opts: Vec<usize> = (0..self.snap.providers.len())
                    .filter(|&i| self.anchors_of(i).contains(&anchor))
                    .filter(|&i| self.p(i).can_take(rc, n))
                    .filter(|&i| self.passes_placement_filters(i, group))
                    .filter(|&i| {
                        group
                            .traits
                            .forbidden
                            .iter()
                            .all(|t| !self.p(i).traits.contains(t))
                    })
                    .collect();
                choices.push(opts);
            }
            if choices.iter().any(Vec::is_empty) {
                continue;
            }
            let classes: Vec<(&String, &i64)> = group.resources.iter().collect();
            for combo in product(&choices) {
                // The providers of one combination must together carry the required traits.
                let mut traits = BTreeSet::new();
                for &i in &combo {
                    traits.extend(self.p(i).traits.iter().cloned());
                }
                let required = TraitFilter {
                    required: group.traits.required.clone(),
                    forbidden: BTreeSet::new(),
                };
                if !required.matches(&traits) {
                    continue;
                }
                let parts = combo
                    .iter()
                    .zip(&classes)
                    .map(|(&i, (rc, n))| (i, (*rc).clone(), **n))
                    .collect();
                out.push(Partial {
                    anchor,
                    parts,
                    providers: combo.iter().copied().collect(),
                });
            }
        }
        out
    }

    /// Partials of a resourceless granular group (1.36 `same_subtree`): any provider
    /// passing its filters.
    fn resourceless(&self, group: &RequestGroup) -> Vec<Partial> {
        (0..self.snap.providers.len())
            .filter(|&i| group.traits.matches(&self.p(i).traits))
            .filter(|&i| self.passes_placement_filters(i, group))
            .map(|i| Partial {
                anchor: self.root_of[i],
                parts: Vec::new(),
                providers: BTreeSet::from([i]),
            })
            .collect()
    }

    fn is_ancestor_or_self(&self, ancestor: usize, mut i: usize) -> bool {
        loop {
            if i == ancestor {
                return true;
            }
            match self
                .p(i)
                .parent
                .as_deref()
                .and_then(|u| self.by_uuid.get(u))
            {
                Some(&parent) => i = parent,
                None => return false,
            }
        }
    }
}

/// The cartesian product of `choices`, in order.
fn product(choices: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new()];
    for opts in choices {
        let mut next = Vec::with_capacity(out.len() * opts.len());
        for prefix in &out {
            for &o in opts {
                let mut v = prefix.clone();
                v.push(o);
                next.push(v);
            }
            if next.len() > MAX_CANDIDATES {
                break;
            }
        }
        out = next;
    }
    out
}

/// Finds the allocation candidates of `req` in `snap`.
pub fn find(snap: &Snapshot, req: &CandidateRequest) -> Candidates {
    let idx = Index::new(snap);
    let exists_sharing = !idx.anchors.is_empty();
    let mut per_group: Vec<(&RequestGroup, BTreeMap<usize, Vec<Partial>>)> = Vec::new();
    for group in &req.groups {
        let partials = if group.resources.is_empty() {
            idx.resourceless(group)
        } else if !group.use_same_provider()
            && (exists_sharing || (idx.has_trees && req.nested_aware))
        {
            idx.multiple_providers(group)
        } else {
            idx.single_provider(group)
        };
        let mut by_anchor: BTreeMap<usize, Vec<Partial>> = BTreeMap::new();
        for p in partials {
            by_anchor.entry(p.anchor).or_default().push(p);
        }
        per_group.push((group, by_anchor));
    }
    let granular = req.groups.iter().filter(|g| g.use_same_provider()).count();

    let mut seen: HashSet<AllocationRequest> = HashSet::new();
    let mut results: Vec<AllocationRequest> = Vec::new();
    let want = req.limit.unwrap_or(MAX_CANDIDATES).min(MAX_CANDIDATES);
    // Anchors in provider order: every group must have a partial at the anchor.
    'anchors: for anchor in 0..snap.providers.len() {
        if idx.root_of[anchor] != anchor {
            continue;
        }
        let mut lists: Vec<&Vec<Partial>> = Vec::new();
        for (_, by_anchor) in &per_group {
            match by_anchor.get(&anchor) {
                Some(l) => lists.push(l),
                None => continue 'anchors,
            }
        }
        if lists.is_empty() {
            continue;
        }
        if !req.root_traits.is_empty() && !req.root_traits.matches(&idx.p(anchor).traits) {
            continue;
        }
        let sizes: Vec<Vec<usize>> = lists.iter().map(|l| (0..l.len()).collect()).collect();
        for combo in product(&sizes) {
            let chosen: Vec<&Partial> = combo.iter().zip(&lists).map(|(&k, l)| &l[k]).collect();
            if req.group_policy == Some(GroupPolicy::Isolate) {
                let distinct: BTreeSet<usize> = chosen
                    .iter()
                    .zip(&per_group)
                    .filter(|(_, (g, _))| g.use_same_provider())
                    .flat_map(|(p, _)| p.providers.iter().copied())
                    .collect();
                if distinct.len() != granular {
                    continue;
                }
            }
            // same_subtree: one of the named groups' providers is an ancestor of the rest.
            let mut subtree_ok = true;
            for names in &req.same_subtrees {
                let rps: BTreeSet<usize> = chosen
                    .iter()
                    .zip(&per_group)
                    .filter(|(_, (g, _))| names.contains(&g.suffix))
                    .flat_map(|(p, _)| p.providers.iter().copied())
                    .collect();
                let ok = rps
                    .iter()
                    .any(|&a| rps.iter().all(|&r| idx.is_ancestor_or_self(a, r)));
                if !ok {
                    subtree_ok = false;
                    break;
                }
            }
            if !subtree_ok {
                continue;
            }
            // Consolidate and check the combined amounts against capacity and max_unit.
            let mut amounts: BTreeMap<(usize, String), i64> = BTreeMap::new();
            for p in &chosen {
                for (i, rc, n) in &p.parts {
                    *amounts.entry((*i, rc.clone())).or_default() += n;
                }
            }
            let fits = amounts.iter().all(|((i, rc), &n)| {
                let p = idx.p(*i);
                match p.inventories.get(rc) {
                    Some(inv) => {
                        let used = p.used.get(rc).copied().unwrap_or(0);
                        used + n <= inv.capacity() && n <= inv.max_unit
                    }
                    None => false,
                }
            });
            if !fits {
                continue;
            }
            let mut areq = AllocationRequest {
                allocations: BTreeMap::new(),
                mappings: BTreeMap::new(),
            };
            for ((i, rc), n) in amounts {
                areq.allocations
                    .entry(idx.p(i).uuid.clone())
                    .or_default()
                    .insert(rc, n);
            }
            for (p, (g, _)) in chosen.iter().zip(&per_group) {
                areq.mappings
                    .entry(g.suffix.clone())
                    .or_default()
                    .extend(p.providers.iter().map(|&i| idx.p(i).uuid.clone()));
            }
            // Before 1.29 a request may not use two providers of one tree.
            if !req.nested_aware && idx.has_trees {
                let mut roots = BTreeSet::new();
                let all_distinct = areq
                    .allocations
                    .keys()
                    .all(|u| roots.insert(idx.root_of[idx.by_uuid[u.as_str()]]));
                if !all_distinct {
                    continue;
                }
            }
            if seen.insert(areq.clone()) {
                results.push(areq);
                if results.len() >= want {
                    break 'anchors;
                }
            }
        }
    }

    // Summaries: every provider of every tree the requests touch (before 1.29, only the
    // providers the requests use).
    let mut roots = BTreeSet::new();
    let mut used_rps = BTreeSet::new();
    for r in &results {
        for u in r.allocations.keys() {
            let i = idx.by_uuid[u.as_str()];
            roots.insert(idx.root_of[i]);
            used_rps.insert(i);
        }
        for us in r.mappings.values() {
            for u in us {
                let i = idx.by_uuid[u.as_str()];
                roots.insert(idx.root_of[i]);
            }
        }
    }
    let provider_summaries = (0..snap.providers.len())
        .filter(|&i| roots.contains(&idx.root_of[i]))
        .filter(|&i| req.nested_aware || !idx.has_trees || used_rps.contains(&i))
        .map(|i| {
            let p = idx.p(i);
            ProviderSummary {
                uuid: p.uuid.clone(),
                parent: p.parent.clone(),
                root: p.root.clone(),
                resources: p
                    .inventories
                    .iter()
                    .map(|(rc, inv)| {
                        (
                            rc.clone(),
                            (inv.capacity(), p.used.get(rc).copied().unwrap_or(0)),
                        )
                    })
                    .collect(),
                traits: p.traits.clone(),
            }
        })
        .collect();
    Candidates {
        allocation_requests: results,
        provider_summaries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(rc: &str, total: i64) -> (String, Inventory) {
        (rc.to_string(), Inventory::new(rc, total))
    }

    fn rp(uuid: &str, invs: &[(&str, i64)]) -> ProviderInfo {
        ProviderInfo {
            uuid: uuid.into(),
            root: uuid.into(),
            inventories: invs.iter().map(|(rc, t)| inv(rc, *t)).collect(),
            ..Default::default()
        }
    }

    fn group(suffix: &str, res: &[(&str, i64)]) -> RequestGroup {
        RequestGroup {
            suffix: suffix.into(),
            resources: res.iter().map(|(rc, n)| (rc.to_string(), *n)).collect(),
            ..Default::default()
        }
    }

    fn req(groups: Vec<RequestGroup>) -> CandidateRequest {
        CandidateRequest {
            groups,
            nested_aware: true,
            ..Default::default()
        }
    }

    #[test]
    fn single_providers_with_room_are_candidates() {
        let mut full = rp("b", &[("VCPU", 4), ("MEMORY_MB", 1024)]);
        full.used.insert("VCPU".into(), 4);
        let snap = Snapshot {
            providers: vec![rp("a", &[("VCPU", 8), ("MEMORY_MB", 2048)]), full],
        };
        let c = find(
            &snap,
            &req(vec![group("", &[("VCPU", 2), ("MEMORY_MB", 512)])]),
        );
        assert_eq!(c.allocation_requests.len(), 1);
        assert_eq!(c.allocation_requests[0].allocations["a"]["VCPU"], 2);
        assert_eq!(c.provider_summaries.len(), 1);
        assert_eq!(c.provider_summaries[0].resources["VCPU"], (8, 0));
    }

    #[test]
    fn required_and_forbidden_traits_filter_providers() {
        let mut a = rp("a", &[("VCPU", 8)]);
        a.traits.insert("HW_CPU_X86_AVX2".into());
        let b = rp("b", &[("VCPU", 8)]);
        let snap = Snapshot {
            providers: vec![a, b],
        };
        let mut g = group("", &[("VCPU", 1)]);
        g.traits
            .required
            .push(["HW_CPU_X86_AVX2".to_string()].into());
        let c = find(&snap, &req(vec![g.clone()]));
        assert_eq!(c.allocation_requests.len(), 1);
        assert!(c.allocation_requests[0].allocations.contains_key("a"));
        g.traits.required.clear();
        g.traits.forbidden.insert("HW_CPU_X86_AVX2".into());
        let c = find(&snap, &req(vec![g]));
        assert_eq!(c.allocation_requests.len(), 1);
        assert!(c.allocation_requests[0].allocations.contains_key("b"));
    }

    #[test]
    fn nested_children_combine_with_the_root_from_1_29_only() {
        let root = rp("root", &[("VCPU", 8)]);
        let mut child = rp("child", &[("SRIOV_NET_VF", 4)]);
        child.parent = Some("root".into());
        child.root = "root".into();
        let snap = Snapshot {
            providers: vec![root, child],
        };
        let r = req(vec![group("", &[("VCPU", 1), ("SRIOV_NET_VF", 1)])]);
        let c = find(&snap, &r);
        assert_eq!(c.allocation_requests.len(), 1);
        assert_eq!(c.allocation_requests[0].allocations.len(), 2);
        assert_eq!(c.provider_summaries.len(), 2);
        let old = CandidateRequest {
            nested_aware: false,
            ..r
        };
        assert!(find(&snap, &old).allocation_requests.is_empty());
    }

    #[test]
    fn sharing_providers_serve_their_aggregate() {
        let mut cn = rp("cn", &[("VCPU", 8)]);
        cn.aggregates.insert("agg".into());
        let mut ss = rp("ss", &[("DISK_GB", 100)]);
        ss.aggregates.insert("agg".into());
        ss.traits.insert(MISC_SHARES_VIA_AGGREGATE.into());
        let snap = Snapshot {
            providers: vec![cn, ss],
        };
        let c = find(
            &snap,
            &req(vec![group("", &[("VCPU", 1), ("DISK_GB", 10)])]),
        );
        assert_eq!(c.allocation_requests.len(), 1);
        let a = &c.allocation_requests[0].allocations;
        assert_eq!(a["cn"]["VCPU"], 1);
        assert_eq!(a["ss"]["DISK_GB"], 10);
    }

    #[test]
    fn isolate_keeps_granular_groups_apart() {
        let snap = Snapshot {
            providers: vec![
                rp("a", &[("SRIOV_NET_VF", 4)]),
                rp("b", &[("SRIOV_NET_VF", 4)]),
            ],
        };
        let mut r = req(vec![
            group("1", &[("SRIOV_NET_VF", 1)]),
            group("2", &[("SRIOV_NET_VF", 1)]),
        ]);
        r.group_policy = Some(GroupPolicy::None);
        // Without trees every provider is its own root: each request uses one provider.
        let c = find(&snap, &r);
        assert_eq!(c.allocation_requests.len(), 2);
        assert_eq!(c.allocation_requests[0].allocations["a"]["SRIOV_NET_VF"], 2);
        r.group_policy = Some(GroupPolicy::Isolate);
        assert!(find(&snap, &r).allocation_requests.is_empty());
    }

    #[test]
    fn combined_amounts_respect_capacity() {
        let snap = Snapshot {
            providers: vec![rp("a", &[("VCPU", 3)])],
        };
        let mut r = req(vec![group("1", &[("VCPU", 2)]), group("2", &[("VCPU", 2)])]);
        r.group_policy = Some(GroupPolicy::None);
        assert!(find(&snap, &r).allocation_requests.is_empty());
    }

    #[test]
    fn limit_cuts_results_and_summaries() {
        let snap = Snapshot {
            providers: vec![rp("a", &[("VCPU", 3)]), rp("b", &[("VCPU", 3)])],
        };
        let mut r = req(vec![group("", &[("VCPU", 1)])]);
        r.limit = Some(1);
        let c = find(&snap, &r);
        assert_eq!(c.allocation_requests.len(), 1);
        assert_eq!(c.provider_summaries.len(), 1);
        assert_eq!(c.provider_summaries[0].uuid, "a");
    }
}
