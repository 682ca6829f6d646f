//! What a snapshot says about a table's health, for `status`, `/status` and the metrics.
//! Pure: computed from a [`TableSnapshot`] and an instant.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::catalog::{Partition, TableSnapshot};

/// One partition as `status` and `get_partition_stats` show it. The first six fields are
/// the seed's (and `get_ga4_partition_stats()`'s) columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionStats {
    pub partition_name: String,
    /// `reltuples` estimate; `None` (JSON null, "unknown") when the partition holds data
    /// but was never analyzed.
    pub row_count: Option<i64>,
    pub size_bytes: i64,
    pub size_pretty: String,
    /// UTC date of the lower bound; `None` for the default partition.
    pub date_range_start: Option<NaiveDate>,
    pub date_range_end: Option<NaiveDate>,
    pub schema: String,
    pub range_start: Option<DateTime<Utc>>,
    pub range_end: Option<DateTime<Utc>>,
    pub is_default: bool,
    pub detach_pending: bool,
    pub index_bytes: i64,
    /// Indexes of the parent this partition should have.
    pub indexes_expected: usize,
    /// Of those, present and valid.
    pub indexes_valid: usize,
    /// Of those, present but INVALID, no build under way: failed or cancelled builds.
    pub indexes_invalid: usize,
    /// Indexes of the partition being built (INVALID until a concurrent build ends),
    /// vector indexes included.
    pub indexes_building: usize,
    /// Row-level security matches the parent's.
    pub rls_ok: bool,
}

pub fn partition_stats(snap: &TableSnapshot, p: &Partition) -> PartitionStats {
    let (mut valid, mut invalid) = (0, 0);
    for pi in &snap.parent_indexes {
        match p.indexes.iter().find(|i| i.parent_index == Some(pi.oid)) {
            Some(i) if i.valid => valid += 1,
            Some(i) if !i.building => invalid += 1,
            Some(_) | None => {}
        }
    }
    let building = p.indexes.iter().filter(|i| !i.valid && i.building).count();
    PartitionStats {
        partition_name: p.name.clone(),
        row_count: p.rows_known().map(|n| n as i64),
        size_bytes: p.total_bytes,
        size_pretty: p.size_pretty.clone(),
        date_range_start: p.bounds.map(|b| b.from.date_naive()),
        date_range_end: p.bounds.map(|b| b.to.date_naive()),
        schema: p.schema.clone(),
        range_start: p.bounds.map(|b| b.from),
        range_end: p.bounds.map(|b| b.to),
        is_default: p.is_default,
        detach_pending: p.detach_pending,
        index_bytes: p.index_bytes,
        indexes_expected: snap.parent_indexes.len(),
        indexes_valid: valid,
        indexes_invalid: invalid,
        indexes_building: building,
        rls_ok: crate::plan::rls::changes(&snap.rls(), &p.rls()).is_empty(),
    }
}

/// Every partition, range partitions by lower bound, the default one last.
pub fn all_stats(snap: &TableSnapshot) -> Vec<PartitionStats> {
    snap.all_partitions()
        .map(|p| partition_stats(snap, p))
        .collect()
}

/// How far ahead of `now` inserts land in a real partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// End of the run of contiguous partitions that contains `now`; `None` when no
    /// partition contains `now`.
    pub covered_until: Option<DateTime<Utc>>,
    /// `covered_until - now` in seconds (0 when `now` is not covered).
    pub seconds_ahead: i64,
    /// Partitions whose lower bound is after `now`.
    pub future_partitions: usize,
}

pub fn coverage(snap: &TableSnapshot, now: DateTime<Utc>) -> Coverage {
    let mut ranges: Vec<_> = snap
        .partitions
        .iter()
        .filter(|p| !p.detach_pending)
        .filter_map(|p| p.bounds)
        .collect();
    ranges.sort();
    let future_partitions = ranges.iter().filter(|b| b.from > now).count();
    let mut covered_until = None;
    for b in &ranges {
        match covered_until {
            None if b.contains(now) => covered_until = Some(b.to),
            Some(end) if b.from == end => covered_until = Some(b.to),
            _ => {}
        }
    }
    let seconds_ahead = covered_until
        .map(|end| (end - now).num_seconds())
        .unwrap_or(0);
    Coverage {
        covered_until,
        seconds_ahead,
        future_partitions,
    }
}

/// Counts over every partition of a table: missing and INVALID parent indexes. One
/// being built is neither.
pub fn index_health(snap: &TableSnapshot) -> (usize, usize) {
    let stats = all_stats(snap);
    let missing = snap
        .all_partitions()
        .map(|p| {
            snap.parent_indexes
                .iter()
                .filter(|pi| !p.indexes.iter().any(|i| i.parent_index == Some(pi.oid)))
                .count()
        })
        .sum();
    let invalid = stats.iter().map(|s| s.indexes_invalid).sum();
    (missing, invalid)
}
