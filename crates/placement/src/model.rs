//! Placement's domain vocabulary: microversions, the coded error every operation answers
//! with, providers, inventories, allocations, and the names placement accepts for resource
//! classes and traits (os-resource-classes and os-traits, as data).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A placement microversion, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16, pub u16);

/// The oldest microversion served (placement/microversion.py `VERSIONS[0]`).
pub const MIN_VERSION: Version = Version(1, 0);
/// The newest microversion served (1.39: any-traits `in:` in `required`, Yoga).
pub const MAX_VERSION: Version = Version(1, 39);

impl Version {
    /// Whether this version is `1.minor` or newer.
    pub fn at_least(self, minor: u16) -> bool {
        self >= Version(1, minor)
    }

    /// Parses `X.Y` as microversion_parse does: two integers, surrounding spaces allowed.
    pub fn parse(text: &str) -> Option<Version> {
        let (major, minor) = text.split_once('.')?;
        let major = major.trim().parse::<u16>().ok()?;
        let minor = minor.trim().parse::<u16>().ok()?;
        Some(Version(major, minor))
    }

    /// Whether this version is one the service offers.
    pub fn is_served(self) -> bool {
        (MIN_VERSION..=MAX_VERSION).contains(&self)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Error codes of placement's fault bodies (placement/errors.py), shown from 1.23.
pub mod codes {
    pub const DEFAULT: &str = "placement.undefined_code";
    pub const INVENTORY_INUSE: &str = "placement.inventory.inuse";
    pub const CONCURRENT_UPDATE: &str = "placement.concurrent_update";
    pub const DUPLICATE_NAME: &str = "placement.duplicate_name";
    pub const PROVIDER_IN_USE: &str = "placement.resource_provider.inuse";
    pub const PROVIDER_CANNOT_DELETE_PARENT: &str =
        "placement.resource_provider.cannot_delete_parent";
    pub const RESOURCE_PROVIDER_NOT_FOUND: &str = "placement.resource_provider.not_found";
    pub const QUERYPARAM_BAD_VALUE: &str = "placement.query.bad_value";
    pub const QUERYPARAM_MISSING_VALUE: &str = "placement.query.missing_value";
}

/// What went wrong, as placement answers it: an HTTP status, the message (the fault's
/// `detail`) and an error code. Operations of the Rust-side API return it too, so an
/// in-process caller can tell a generation conflict (`code ==
/// codes::CONCURRENT_UPDATE`) from a capacity refusal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct PlacementError {
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    /// A lost database race (deadlock, serialisation failure): the write is retried
    /// before the caller sees it.
    pub(crate) retry: bool,
}

/// Result of placement operations.
pub type Result<T, E = PlacementError> = std::result::Result<T, E>;

impl PlacementError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        PlacementError {
            status,
            detail: detail.into(),
            code: codes::DEFAULT,
            retry: false,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, detail)
    }

    /// A 409 carrying `code`.
    pub fn conflict_code(detail: impl Into<String>, code: &'static str) -> Self {
        Self::new(409, detail).with_code(code)
    }

    /// The same error with another code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// A 500; `context` is logged, never shown.
    pub fn internal(context: impl fmt::Display) -> Self {
        tracing::error!(%context, "placement internal error");
        Self::new(500, "An unexpected error occurred.")
    }

    /// Whether this is a generation or consumer conflict a caller may retry after
    /// re-reading.
    pub fn is_concurrent_update(&self) -> bool {
        self.code == codes::CONCURRENT_UPDATE
    }
}

impl From<ferro_common::Error> for PlacementError {
    fn from(e: ferro_common::Error) -> Self {
        match e {
            ferro_common::Error::Internal(context) => PlacementError::internal(context),
            other => PlacementError::new(other.status(), other.to_string()),
        }
    }
}

impl From<ferro_db::DbError> for PlacementError {
    fn from(e: ferro_db::DbError) -> Self {
        if is_retryable(&e) {
            let mut out = PlacementError::conflict_code(
                "Another thread concurrently updated the data. Please retry your update",
                codes::CONCURRENT_UPDATE,
            );
            out.retry = true;
            return out;
        }
        PlacementError::from(ferro_common::Error::from(e))
    }
}

/// Whether a database error is a lost race worth retrying: deadlock, serialisation
/// failure, lock timeout, or SQLite's busy lock.
pub(crate) fn is_retryable(e: &ferro_db::DbError) -> bool {
    match e {
        ferro_db::DbError::Sqlx(sqlx::Error::Database(d)) => {
            let code = d.code().unwrap_or_default();
            matches!(
                code.as_ref(),
                "40001" | "40P01" | "1213" | "1205" | "5" | "6" | "517" | "261"
            ) || d.message().contains("Deadlock")
                || d.message().contains("database is locked")
        }
        _ => false,
    }
}

/// Upstream's `MAX_INT` (placement/db/constants.py): the largest inventory value.
pub const MAX_INT: i64 = 2_147_483_647;
/// Upstream's `SQL_SP_FLOAT_MAX`: the largest allocation ratio.
pub const SQL_SP_FLOAT_MAX: f64 = 3.40282e38;

/// The standard resource classes, in os-resource-classes order.
pub const STANDARD_RESOURCE_CLASSES: &[&str] = &[
    "VCPU",
    "MEMORY_MB",
    "DISK_GB",
    "PCI_DEVICE",
    "SRIOV_NET_VF",
    "NUMA_SOCKET",
    "NUMA_CORE",
    "NUMA_THREAD",
    "NUMA_MEMORY_MB",
    "IPV4_ADDRESS",
    "VGPU",
    "VGPU_DISPLAY_HEAD",
    "NET_BW_EGR_KILOBIT_PER_SEC",
    "NET_BW_IGR_KILOBIT_PER_SEC",
    "PCPU",
    "MEM_ENCRYPTION_CONTEXT",
    "FPGA",
    "PGPU",
    "NET_PACKET_RATE_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
];

/// The trait that marks a provider whose inventory is shared with the providers of its
/// aggregates (os-traits `MISC_SHARES_VIA_AGGREGATE`).
pub const MISC_SHARES_VIA_AGGREGATE: &str = "MISC_SHARES_VIA_AGGREGATE";

/// Every os-traits standard trait, sorted.
pub fn standard_traits() -> impl Iterator<Item = &'static str> {
    include_str!("os_traits.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// Whether `name` is an os-traits standard trait.
pub fn is_standard_trait(name: &str) -> bool {
    standard_traits().any(|t| t == name)
}

/// Whether `name` is a standard resource class.
pub fn is_standard_class(name: &str) -> bool {
    STANDARD_RESOURCE_CLASSES.contains(&name)
}

/// `^[A-Z0-9_]+$` (schemas/common.py `RC_PATTERN`).
pub fn is_rc_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `^CUSTOM_[A-Z0-9_]+$`, at most 255 characters.
pub fn is_custom_name(name: &str) -> bool {
    name.len() <= 255 && name.strip_prefix("CUSTOM_").is_some_and(is_rc_name)
}

/// oslo.utils `is_uuid_like`: any form `uuid.UUID()` accepts (dashes optional, braces and
/// `urn:uuid:` allowed) whose canonical form, with dashes removed, equals the input with
/// dashes removed, case-insensitively.
pub fn is_uuid_like(text: &str) -> bool {
    match uuid::Uuid::try_parse(text) {
        Ok(u) => u.simple().to_string() == text.replace('-', "").to_ascii_lowercase(),
        Err(_) => false,
    }
}

/// The canonical dashed lowercase form of a UUID-like text, if it is one.
pub fn canonical_uuid(text: &str) -> Option<String> {
    uuid::Uuid::try_parse(text)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// A resource provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Provider {
    pub uuid: String,
    pub name: String,
    pub generation: i64,
    pub parent_uuid: Option<String>,
    pub root_uuid: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One provider's inventory of one resource class.
#[derive(Clone, Debug, PartialEq)]
pub struct Inventory {
    pub resource_class: String,
    pub total: i64,
    pub reserved: i64,
    pub min_unit: i64,
    pub max_unit: i64,
    pub step_size: i64,
    pub allocation_ratio: f64,
    pub updated_at: i64,
}

impl Inventory {
    /// An inventory of `total` with upstream's defaults for the rest
    /// (handlers/inventory.py `INVENTORY_DEFAULTS`).
    pub fn new(resource_class: &str, total: i64) -> Self {
        Inventory {
            resource_class: resource_class.to_string(),
            total,
            reserved: 0,
            min_unit: 1,
            max_unit: MAX_INT,
            step_size: 1,
            allocation_ratio: 1.0,
            updated_at: 0,
        }
    }

    /// `int((total - reserved) * allocation_ratio)`, as upstream's `Inventory.capacity`.
    pub fn capacity(&self) -> i64 {
        ((self.total - self.reserved) as f64 * self.allocation_ratio).trunc() as i64
    }

    /// Whether one allocation of `amount` respects min_unit, max_unit and step_size.
    pub fn fits_units(&self, amount: i64) -> bool {
        amount >= self.min_unit
            && amount <= self.max_unit
            && self.step_size > 0
            && amount % self.step_size == 0
    }

    /// Whether `amount` more fits next to `used` (float comparison as upstream's
    /// `_check_capacity_exceeded`).
    pub fn has_room(&self, used: i64, amount: i64) -> bool {
        let cap = (self.total - self.reserved) as f64 * self.allocation_ratio;
        cap >= (used + amount) as f64
    }
}

/// Resources by class.
pub type Resources = BTreeMap<String, i64>;

/// Whose allocations a consumer's are, and what kind of consumer it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub project_id: String,
    pub user_id: String,
    pub consumer_type: Option<String>,
}

/// How a write checks the consumer generation (1.28+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGeneration {
    /// Before 1.28: no check.
    Unchecked,
    /// `None`: the caller expects no allocations yet; `Some(g)`: the consumer is at `g`.
    Expect(Option<i64>),
}

/// The complete allocations one consumer should hold after a write (empty: none).
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerAllocations {
    pub consumer_uuid: String,
    /// Resources by provider uuid.
    pub allocations: BTreeMap<String, Resources>,
    pub info: ConsumerInfo,
    pub generation: ConsumerGeneration,
}

/// A consumer's allocations as read back.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConsumerView {
    /// `(provider generation, resources)` by provider uuid.
    pub allocations: BTreeMap<String, (i64, Resources)>,
    pub info: Option<ConsumerInfo>,
    pub generation: Option<i64>,
    pub last_modified: i64,
}

/// One consumer's allocations on a provider, as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderAllocation {
    pub consumer_uuid: String,
    pub consumer_generation: i64,
    pub resources: Resources,
}

/// Required traits as upstream parses them: each set is an OR of traits, the sets are
/// ANDed; plus traits that must be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraitFilter {
    pub required: Vec<BTreeSet<String>>,
    pub forbidden: BTreeSet<String>,
}

impl TraitFilter {
    /// Whether a provider with `traits` satisfies the filter on its own.
    pub fn matches(&self, traits: &BTreeSet<String>) -> bool {
        self.required
            .iter()
            .all(|any| any.iter().any(|t| traits.contains(t)))
            && self.forbidden.iter().all(|t| !traits.contains(t))
    }

    /// Every trait named, required or forbidden.
    pub fn names(&self) -> BTreeSet<String> {
        self.required
            .iter()
            .flatten()
            .chain(self.forbidden.iter())
            .cloned()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.required.is_empty() && self.forbidden.is_empty()
    }
}

/// Aggregate membership: each set is an OR of aggregates, the sets are ANDed; plus
/// aggregates the provider must not be in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AggregateFilter {
    pub member_of: Vec<BTreeSet<String>>,
    pub forbidden: BTreeSet<String>,
}

impl AggregateFilter {
    /// Whether a provider in `aggs` satisfies the filter.
    pub fn matches(&self, aggs: &BTreeSet<String>) -> bool {
        self.member_of
            .iter()
            .all(|any| any.iter().any(|a| aggs.contains(a)))
            && self.forbidden.iter().all(|a| !aggs.contains(a))
    }

    pub fn is_empty(&self) -> bool {
        self.member_of.is_empty() && self.forbidden.is_empty()
    }
}

/// Filters of `GET /resource_providers`.
#[derive(Clone, Debug, Default)]
pub struct ProviderFilter {
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub in_tree: Option<String>,
    pub aggregates: AggregateFilter,
    pub traits: TraitFilter,
    pub resources: Resources,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order_as_microversion_parse() {
        assert_eq!(Version::parse("1.10"), Some(Version(1, 10)));
        assert_eq!(Version::parse(" 1 . 2 "), Some(Version(1, 2)));
        assert_eq!(Version::parse("1.01"), Some(Version(1, 1)));
        assert_eq!(Version::parse("1"), None);
        assert_eq!(Version::parse("1.a"), None);
        assert!(Version(1, 9) < Version(1, 10));
        assert!(Version(1, 39).is_served());
        assert!(!Version(1, 40).is_served());
        assert!(!Version(2, 0).is_served());
    }

    #[test]
    fn capacity_applies_reserved_and_ratio() {
        let mut inv = Inventory::new("VCPU", 10);
        inv.reserved = 2;
        inv.allocation_ratio = 1.5;
        assert_eq!(inv.capacity(), 12);
        assert!(inv.has_room(10, 2));
        assert!(!inv.has_room(10, 3));
        inv.step_size = 2;
        inv.max_unit = 4;
        assert!(inv.fits_units(2));
        assert!(!inv.fits_units(3));
        assert!(!inv.fits_units(6));
    }

    #[test]
    fn names_follow_upstream_patterns() {
        assert!(is_rc_name("VCPU"));
        assert!(!is_rc_name("vcpu"));
        assert!(is_custom_name("CUSTOM_GOLD"));
        assert!(!is_custom_name("CUSTOM_"));
        assert!(!is_custom_name("GOLD"));
        assert!(is_standard_trait("HW_CPU_X86_AVX2"));
        assert!(is_standard_trait("COMPUTE_STATUS_DISABLED"));
        assert!(is_standard_trait("STORAGE_DISK_SSD"));
        assert!(is_standard_trait(MISC_SHARES_VIA_AGGREGATE));
        assert!(!is_standard_trait("CUSTOM_X"));
    }

    #[test]
    fn uuid_like_accepts_undashed_but_not_garbage() {
        assert!(is_uuid_like("5e0f2e9c-0c43-4e4c-9d3e-8e3f1a2b3c4d"));
        assert!(is_uuid_like("5e0f2e9c0c434e4c9d3e8e3f1a2b3c4d"));
        assert!(!is_uuid_like("not-a-uuid"));
        assert_eq!(
            canonical_uuid("5E0F2E9C0C434E4C9D3E8E3F1A2B3C4D").as_deref(),
            Some("5e0f2e9c-0c43-4e4c-9d3e-8e3f1a2b3c4d")
        );
    }

    #[test]
    fn trait_filter_ors_within_and_ands_between() {
        let have: BTreeSet<String> = ["A", "C"].iter().map(|s| s.to_string()).collect();
        let f = TraitFilter {
            required: vec![
                ["A", "B"].iter().map(|s| s.to_string()).collect(),
                ["C"].iter().map(|s| s.to_string()).collect(),
            ],
            forbidden: BTreeSet::new(),
        };
        assert!(f.matches(&have));
        let f2 = TraitFilter {
            forbidden: ["C".to_string()].into(),
            ..f.clone()
        };
        assert!(!f2.matches(&have));
    }
}
