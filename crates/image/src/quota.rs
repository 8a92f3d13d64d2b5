//! Per-project image quotas: Glance's unified limits `image_count_total`,
//! `image_size_total` and `image_stage_total` (MiB) and `image_count_uploading`, read from
//! Keystone through [`Limits`]. A project over one gets 413, as Glance answers; an upload is
//! also cut off (413, nothing kept) once it would take the project past `image_size_total`.

use ferro_common::{Error, Result};

use crate::db::{self, Usage};
use crate::manager::Images;

/// Where limits come from: Keystone's registered and project limits for the `image`
/// service. `None` is unlimited.
#[async_trait::async_trait]
pub trait Limits: Send + Sync {
    /// The limit of `resource` for `project_id`.
    async fn limit(&self, project_id: &str, resource: &str) -> Result<Option<i64>>;
}

/// No limits at all (no identity service to ask).
pub struct Unlimited;

#[async_trait::async_trait]
impl Limits for Unlimited {
    async fn limit(&self, _project_id: &str, _resource: &str) -> Result<Option<i64>> {
        Ok(None)
    }
}

const MIB: i64 = 1 << 20;

/// The resources Glance limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Images owned.
    Count,
    /// MiB of image data.
    Size,
    /// MiB of staged data.
    Stage,
    /// Images taking data at once.
    Uploading,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Count => "image_count_total",
            Resource::Size => "image_size_total",
            Resource::Stage => "image_stage_total",
            Resource::Uploading => "image_count_uploading",
        }
    }

    /// The current usage in the resource's unit.
    fn of(self, u: &Usage) -> i64 {
        match self {
            Resource::Count => u.images,
            Resource::Size => u.bytes / MIB,
            Resource::Stage => u.staged_bytes / MIB,
            Resource::Uploading => u.uploading,
        }
    }
}

/// oslo.limit's over-limit message, which Glance returns as the 413's explanation.
fn over_limit(owner: &str, r: Resource, limit: i64, usage: i64, delta: i64) -> Error {
    Error::PayloadTooLarge(format!(
        "Project {owner} is over a limit for [Resource {} is over limit of {limit} due to \
         current usage {usage} and delta {delta}]",
        r.name()
    ))
}

impl Images {
    /// Refuses (413) when `owner`'s usage of `r` plus `delta` exceeds its limit.
    pub(crate) async fn enforce(&self, owner: &str, r: Resource, delta: i64) -> Result<()> {
        let Some(limit) = self.limits.limit(owner, r.name()).await? else {
            return Ok(());
        };
        let usage = r.of(&db::usage(&mut &self.db, owner).await?);
        if usage + delta > limit {
            return Err(over_limit(owner, r, limit, usage, delta));
        }
        Ok(())
    }

    /// How many more bytes of image data `owner` may store under `image_size_total`
    /// (`None`: unlimited).
    pub(crate) async fn bytes_left(&self, owner: &str) -> Result<Option<i64>> {
        let Some(limit) = self.limits.limit(owner, Resource::Size.name()).await? else {
            return Ok(None);
        };
        let used = db::usage(&mut &self.db, owner).await?.bytes;
        Ok(Some((limit * MIB - used).max(0)))
    }
}

/// The 413 of an upload cut off at the storage quota.
pub(crate) fn storage_quota_full(left: i64) -> Error {
    Error::PayloadTooLarge(format!(
        "Image exceeds the storage quota: The size of the data exceeds the {left} bytes remaining"
    ))
}
