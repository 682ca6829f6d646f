//! pgvector indexes per partition: which partitions qualify for one, and what the
//! catalog says about the ones that exist. (DESIGN.md §5: an ivfflat index is trained on
//! the rows present when it is built, so one built on an empty partition finds little.)

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{Partition, PartitionIndex, TableSnapshot};
use crate::config::{ListsSetting, TableConfig, VectorIndexPolicy, VectorMethod};
use crate::plan::{fit_identifier, Action, PlannedAction};

/// Vector-index health of one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VectorHealth {
    /// Partitions with at least `min_rows` rows and no valid vector index.
    pub missing: usize,
    /// INVALID vector indexes.
    pub invalid: usize,
    /// (partition, bytes) of each valid vector index.
    pub sizes: Vec<(String, i64)>,
}

/// True for an index of pgvector's access methods on `column`.
pub fn is_vector_index(index: &PartitionIndex, column: &str) -> bool {
    matches!(index.am.as_str(), "ivfflat" | "hnsw")
        && index.definition.contains(&format!("({column} "))
}

/// The vector indexes of a partition on the policy's column.
pub fn vector_indexes<'a>(
    p: &'a Partition,
    policy: &VectorIndexPolicy,
) -> impl Iterator<Item = &'a PartitionIndex> {
    let column = policy.column.as_str().to_string();
    p.indexes
        .iter()
        .filter(move |i| is_vector_index(i, &column))
}

/// Does the partition hold enough rows for the policy to want an index? (HNSW needs no
/// training, but `min_rows` still spares tiny partitions an index they do not need.)
pub fn qualifies(p: &Partition, policy: &VectorIndexPolicy) -> bool {
    !p.is_default && p.rows() >= policy.min_rows.max(1)
}

/// ivfflat `lists` for a row count: rows/1000 up to 1M rows, sqrt(rows) above (pgvector's
/// guidance), at least 1, at most pgvector's 32768.
pub fn auto_lists(rows: u64) -> u32 {
    let lists = if rows <= 1_000_000 {
        rows / 1000
    } else {
        (rows as f64).sqrt() as u64
    };
    lists.clamp(1, 32_768) as u32
}

pub fn lists_for(policy: &VectorIndexPolicy, rows: u64) -> u32 {
    match policy.lists {
        ListsSetting::Auto => auto_lists(rows),
        ListsSetting::Fixed(n) => n,
    }
}

pub fn health(table: &TableConfig, snap: &TableSnapshot) -> VectorHealth {
    let Some(policy) = &table.vector_index else {
        return VectorHealth::default();
    };
    let mut h = VectorHealth::default();
    for p in snap.all_partitions() {
        let mut has_valid = false;
        for i in vector_indexes(p, policy) {
            if i.valid {
                has_valid = true;
                h.sizes.push((p.name.clone(), i.size_bytes));
            } else {
                h.invalid += 1;
            }
        }
        if !has_valid && qualifies(p, policy) && !p.is_default {
            h.missing += 1;
        }
    }
    h
}

/// What partwarden records in the comment of a vector index it built, so later runs can
/// judge growth: `partwarden: method=ivfflat lists=20 rows=20000 closed=false gen=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BuildRecord {
    pub method: VectorMethod,
    pub lists: Option<u32>,
    pub rows: u64,
    /// Built after the partition's interval had ended (its data is final).
    pub closed: bool,
    pub generation: u32,
}

impl BuildRecord {
    pub fn comment(&self) -> String {
        format!(
            "partwarden: method={} lists={} rows={} closed={} gen={}",
            self.method.as_str(),
            self.lists
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into()),
            self.rows,
            self.closed,
            self.generation
        )
    }

    pub fn parse(comment: &str) -> Option<BuildRecord> {
        let rest = comment.strip_prefix("partwarden: ")?;
        let mut rec = BuildRecord {
            method: VectorMethod::Ivfflat,
            lists: None,
            rows: 0,
            closed: false,
            generation: 1,
        };
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "method" => rec.method = v.parse().ok()?,
                "lists" => rec.lists = v.parse().ok(),
                "rows" => rec.rows = v.parse().ok()?,
                "closed" => rec.closed = v == "true",
                "gen" => rec.generation = v.parse().ok()?,
                _ => {}
            }
        }
        Some(rec)
    }
}

/// Name of generation `generation` of a partition's vector index.
pub fn index_name(partition: &str, policy: &VectorIndexPolicy, generation: u32) -> String {
    let short = match policy.method {
        VectorMethod::Ivfflat => "ivf",
        VectorMethod::Hnsw => "hnsw",
    };
    fit_identifier(&format!(
        "{partition}_{}_{short}_g{generation}",
        policy.column
    ))
}

/// The vector-index actions for the partitions in `partitions` (those that stay).
pub fn plan(
    policy: &VectorIndexPolicy,
    partitions: &[&Partition],
    journaled: &HashMap<String, String>,
    now: DateTime<Utc>,
    actions: &mut Vec<PlannedAction>,
    notes: &mut Vec<String>,
) {
    for p in partitions.iter().filter(|p| !p.is_default) {
        let target = Target {
            policy,
            p,
            rows: p.rows(),
            closed: p.bounds.is_some_and(|b| b.to <= now),
        };
        let indexes: Vec<&PartitionIndex> = vector_indexes(p, policy).collect();
        actions.extend(drop_invalid(p, &indexes));
        let valid = with_records(&indexes, journaled);
        target.plan(&valid, actions, notes);
    }
}

/// INVALID vector indexes are dropped; a valid one is then built in their place if the
/// partition qualifies.
fn drop_invalid(p: &Partition, indexes: &[&PartitionIndex]) -> Vec<PlannedAction> {
    indexes
        .iter()
        .filter(|i| !i.valid)
        .map(|i| PlannedAction {
            action: Action::DropIndex { partition: p.name.clone(), index: i.name.clone() },
            reason: format!(
                "vector index {} is INVALID (a failed or cancelled CREATE INDEX CONCURRENTLY): queries ignore it",
                i.name
            ),
        })
        .collect()
}

/// The valid indexes with their build records (from the comment, else from the journal),
/// newest partwarden generation first and indexes partwarden did not build last.
fn with_records<'a>(
    indexes: &[&'a PartitionIndex],
    journaled: &HashMap<String, String>,
) -> Vec<(&'a PartitionIndex, Option<BuildRecord>)> {
    let mut valid: Vec<(&PartitionIndex, Option<BuildRecord>)> = indexes
        .iter()
        .filter(|i| i.valid)
        .map(|i| {
            let comment = i
                .comment
                .as_deref()
                .or(journaled.get(&i.name).map(String::as_str));
            (*i, comment.and_then(BuildRecord::parse))
        })
        .collect();
    valid.sort_by_key(|(_, r)| std::cmp::Reverse(r.map(|r| r.generation)));
    valid
}

/// One partition as the vector rules judge it.
struct Target<'a> {
    policy: &'a VectorIndexPolicy,
    p: &'a Partition,
    rows: u64,
    /// The partition's interval has ended.
    closed: bool,
}

impl Target<'_> {
    /// The newest valid index decides: none yet (build one), one partwarden did not build
    /// (left alone), or one whose build record calls for a rebuild. Older generations
    /// partwarden built are dropped.
    fn plan(
        &self,
        valid: &[(&PartitionIndex, Option<BuildRecord>)],
        actions: &mut Vec<PlannedAction>,
        notes: &mut Vec<String>,
    ) {
        let max_gen = valid
            .iter()
            .filter_map(|(_, r)| r.map(|r| r.generation))
            .max()
            .unwrap_or(0);
        match valid.first() {
            None if qualifies(self.p, self.policy) => {
                actions.push(self.build(max_gen + 1, None, self.first_build_reason()));
            }
            None => {}
            Some((current, None)) => notes.push(format!(
                "{}: vector index {} was not built by partwarden; it is left alone",
                self.p.name, current.name
            )),
            Some((current, Some(rec))) => {
                if let Some(why) = self.rebuild_reason(rec) {
                    actions.push(self.build(
                        rec.generation.max(max_gen) + 1,
                        Some(current.name.clone()),
                        why,
                    ));
                }
                for (old, _) in valid.iter().skip(1).filter(|(_, r)| r.is_some()) {
                    actions.push(PlannedAction {
                        action: Action::DropIndex {
                            partition: self.p.name.clone(),
                            index: old.name.clone(),
                        },
                        reason: format!("superseded by {}", current.name),
                    });
                }
            }
        }
    }

    fn build(&self, generation: u32, replaces: Option<String>, reason: String) -> PlannedAction {
        let policy = self.policy;
        PlannedAction {
            action: Action::BuildVectorIndex {
                partition: self.p.name.clone(),
                index: index_name(&self.p.name, policy, generation),
                method: policy.method,
                lists: (policy.method == VectorMethod::Ivfflat)
                    .then(|| lists_for(policy, self.rows)),
                rows: self.rows,
                closed: self.closed,
                generation,
                replaces,
            },
            reason,
        }
    }

    fn first_build_reason(&self) -> String {
        let (policy, rows) = (self.policy, self.rows);
        let how = match policy.method {
            VectorMethod::Ivfflat => {
                format!(
                    "ivfflat lists = {} from {rows} rows",
                    lists_for(policy, rows)
                )
            }
            VectorMethod::Hnsw => format!(
                "hnsw m = {}, ef_construction = {}",
                policy.m, policy.ef_construction
            ),
        };
        format!(
            "{rows} rows ≥ min_rows {} and no valid vector index; {how}",
            policy.min_rows
        )
    }

    /// Why the index `rec` describes is rebuilt, if it is: the policy's method changed, an
    /// ivfflat index's partition grew by `rebuild_growth_factor`, or its interval ended
    /// since the build (once, with `rebuild_on_close`).
    fn rebuild_reason(&self, rec: &BuildRecord) -> Option<String> {
        let (policy, rows) = (self.policy, self.rows);
        if rec.method != policy.method {
            Some(format!(
                "the policy's method is now {}, the index is {}",
                policy.method.as_str(),
                rec.method.as_str()
            ))
        } else if policy.method == VectorMethod::Ivfflat
            && rec.rows > 0
            && rows as f64 >= rec.rows as f64 * policy.rebuild_growth_factor
        {
            Some(format!(
                "grew from {} to {rows} rows since its ivfflat index was built (≥ {}×): its lists and centroids no longer fit",
                rec.rows, policy.rebuild_growth_factor
            ))
        } else if policy.method == VectorMethod::Ivfflat
            && policy.rebuild_on_close
            && self.closed
            && !rec.closed
        {
            Some("its interval has ended: one last rebuild trains the ivfflat index on the final data".to_string())
        } else {
            None
        }
    }
}

/// A parent-level ivfflat index is worth a warning: every new partition inherits it
/// empty, so it is trained on nothing.
pub(super) fn parent_index_warnings(snapshot: &TableSnapshot, notes: &mut Vec<String>) {
    for pi in snapshot.parent_indexes.iter().filter(|i| i.am == "ivfflat") {
        notes.push(format!(
            "WARNING: parent-level ivfflat index {}: it cascades untrained to every new, empty partition \
             (low recall); drop it and let partwarden build one per partition",
            pi.name
        ));
    }
}

/// `maintenance_work_mem` (kB) for a build: pgvector ≥ 0.8.4 fails an ivfflat build that
/// has less than about lists × 50 × 3.1 kB (DESIGN.md §5); HNSW builds fastest when the
/// graph fits (about rows × (dimensions × 4 + m × 16) bytes). At least 64 MB, at most the
/// policy's ceiling.
pub fn maintenance_work_mem_kb(
    policy: &VectorIndexPolicy,
    rows: u64,
    lists: Option<u32>,
    dims: u32,
) -> u64 {
    let needed = match policy.method {
        VectorMethod::Ivfflat => (f64::from(lists.unwrap_or(1)) * 50.0 * 3.1 * 1.25) as u64,
        VectorMethod::Hnsw => {
            rows.saturating_mul(u64::from(dims) * 4 + u64::from(policy.m) * 16) / 1024 * 5 / 4
        }
    };
    needed
        .max(64 * 1024)
        .min(policy.max_maintenance_work_mem_kb())
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_records_round_trip() {
        use super::*;
        let r = BuildRecord {
            method: VectorMethod::Ivfflat,
            lists: Some(20),
            rows: 20_000,
            closed: true,
            generation: 3,
        };
        assert_eq!(BuildRecord::parse(&r.comment()), Some(r));
        assert_eq!(BuildRecord::parse("made by hand"), None);
    }

    use super::*;

    #[test]
    fn lists_follow_pgvector_guidance() {
        assert_eq!(auto_lists(0), 1);
        assert_eq!(auto_lists(20_000), 20);
        assert_eq!(auto_lists(1_000_000), 1000);
        assert_eq!(auto_lists(4_000_000), 2000);
    }
}
