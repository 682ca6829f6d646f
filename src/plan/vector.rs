//! pgvector indexes per partition: which partitions qualify for one, and what the
//! catalog says about the ones that exist. (DESIGN.md §5: an ivfflat index is trained on
//! the vectors present when it is built, so one built on an empty partition — or on rows
//! whose embeddings are still NULL, to be back-filled later — finds little.) Every count
//! here is of vectors (rows whose vector column is not NULL), never of rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{Partition, PartitionIndex, TableSnapshot};
use crate::config::{ListsSetting, TableConfig, VectorIndexPolicy, VectorMethod};
use crate::plan::{fit_identifier, Action, PlannedAction};

/// Vector-index health of one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VectorHealth {
    /// Partitions with at least `min_rows` vectors (or `min_rows` rows whose vectors
    /// cannot be counted) with no valid vector index and none being built.
    pub missing: usize,
    /// INVALID vector indexes no build is under way for: failed or cancelled ones.
    pub invalid: usize,
    /// Vector indexes being built (a concurrent build's index is INVALID until it ends).
    pub building: usize,
    /// (partition, bytes) of each valid vector index.
    pub sizes: Vec<(String, i64)>,
    /// (partition, what `status` shows of its vector index: `hnsw`, `ivfflat building`,
    /// `hnsw INVALID`, `missing`, or `-` when it wants none yet).
    pub per_partition: Vec<(String, String)>,
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

/// A partition's vectors (its rows whose vector column is not NULL), as the statistics
/// count them: pgvector indexes only those, and trains ivfflat lists on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vectors {
    /// `reltuples × (1 − null_frac)`, as of the partition's last ANALYZE.
    Counted(u64),
    /// Never analyzed (no row estimate either).
    NotAnalyzed,
    /// The column has no statistics: not analyzed since (VACUUM and CREATE INDEX set
    /// the row estimate, not column statistics), or its statistics target is 0.
    NoColumnStats,
    /// PostgreSQL hides the column statistics from partwarden's role.
    Hidden,
}

impl Vectors {
    pub fn counted(self) -> Option<u64> {
        match self {
            Vectors::Counted(v) => Some(v),
            _ => None,
        }
    }
}

pub fn vectors(p: &Partition) -> Vectors {
    if p.rows_estimate == 0.0 {
        return Vectors::Counted(0);
    }
    if p.rows_estimate < 0.0 {
        return Vectors::NotAnalyzed;
    }
    match p.vector_null_frac {
        Some(f) => Vectors::Counted((p.rows_estimate * (1.0 - f.clamp(0.0, 1.0))).round() as u64),
        None if p.column_stats_hidden => Vectors::Hidden,
        None => Vectors::NoColumnStats,
    }
}

/// Does the partition hold enough vectors for the policy to want an index? (HNSW needs
/// no training, but `min_rows` still spares tiny partitions an index they do not need.)
pub fn qualifies(p: &Partition, policy: &VectorIndexPolicy) -> bool {
    !p.is_default
        && vectors(p)
            .counted()
            .is_some_and(|v| v >= policy.min_rows.max(1))
}

/// Qualifies, or has `min_rows` rows whose vectors cannot be counted: the health counts
/// it as missing an index, so that a build held back for want of statistics is seen.
fn wanted(p: &Partition, policy: &VectorIndexPolicy) -> bool {
    qualifies(p, policy)
        || (!p.is_default && vectors(p).counted().is_none() && p.rows() >= policy.min_rows.max(1))
}

/// ivfflat `lists` for a vector count: vectors/1000 up to 1M, sqrt(vectors) above
/// (pgvector's guidance, for the rows it indexes), at least 1, at most pgvector's 32768.
pub fn auto_lists(vectors: u64) -> u32 {
    let lists = if vectors <= 1_000_000 {
        vectors / 1000
    } else {
        (vectors as f64).sqrt() as u64
    };
    lists.clamp(1, 32_768) as u32
}

pub fn lists_for(policy: &VectorIndexPolicy, vectors: u64) -> u32 {
    match policy.lists {
        ListsSetting::Auto => auto_lists(vectors),
        ListsSetting::Fixed(n) => n,
    }
}

pub fn health(table: &TableConfig, snap: &TableSnapshot) -> VectorHealth {
    let Some(policy) = &table.vector_index else {
        return VectorHealth::default();
    };
    let mut h = VectorHealth::default();
    for p in snap.all_partitions() {
        let (mut has_valid, mut building) = (false, false);
        let mut shown = Vec::new();
        for i in vector_indexes(p, policy) {
            if i.valid {
                has_valid = true;
                h.sizes.push((p.name.clone(), i.size_bytes));
                shown.push(i.am.clone());
            } else if i.building {
                building = true;
                h.building += 1;
                shown.push(format!("{} building", i.am));
            } else {
                h.invalid += 1;
                shown.push(format!("{} INVALID", i.am));
            }
        }
        if !has_valid && !building && wanted(p, policy) {
            h.missing += 1;
            shown.push("missing".into());
        }
        let shown = if shown.is_empty() {
            "-".into()
        } else {
            shown.join(", ")
        };
        h.per_partition.push((p.name.clone(), shown));
    }
    h
}

/// What partwarden records in the comment of a vector index it built, so later runs can
/// judge growth:
/// `partwarden: method=ivfflat lists=20 rows=20500 vectors=20000 closed=false gen=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BuildRecord {
    pub method: VectorMethod,
    pub lists: Option<u32>,
    pub rows: u64,
    /// The vectors it was built on (trained on, for ivfflat); `None` in the records of
    /// partwarden versions that counted rows.
    pub vectors: Option<u64>,
    /// Built after the partition's interval had ended (its data is final).
    pub closed: bool,
    pub generation: u32,
}

impl BuildRecord {
    pub fn comment(&self) -> String {
        format!(
            "partwarden: method={} lists={} rows={}{} closed={} gen={}",
            self.method.as_str(),
            self.lists
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into()),
            self.rows,
            self.vectors
                .map(|v| format!(" vectors={v}"))
                .unwrap_or_default(),
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
            vectors: None,
            closed: false,
            generation: 1,
        };
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "method" => rec.method = v.parse().ok()?,
                "lists" => rec.lists = v.parse().ok(),
                "rows" => rec.rows = v.parse().ok()?,
                "vectors" => rec.vectors = Some(v.parse().ok()?),
                "closed" => rec.closed = v == "true",
                "gen" => rec.generation = v.parse().ok()?,
                _ => {}
            }
        }
        Some(rec)
    }

    /// The vectors the index was built on. A record of a version that counted rows says
    /// only the rows: that version took them for vectors.
    pub fn trained_on(&self) -> u64 {
        self.vectors.unwrap_or(self.rows)
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

/// The vector-index actions for the partitions in `partitions` (those that stay), each
/// partition's index being built as `shards` indexes (Citus: one per shard) over a share
/// of its vectors each.
pub fn plan(
    policy: &VectorIndexPolicy,
    partitions: &[&Partition],
    shards: u64,
    journaled: &HashMap<String, String>,
    now: DateTime<Utc>,
    actions: &mut Vec<PlannedAction>,
    notes: &mut Vec<String>,
) {
    let mut hidden = Vec::new();
    for p in partitions.iter().filter(|p| !p.is_default) {
        let indexes: Vec<&PartitionIndex> = vector_indexes(p, policy).collect();
        if let Some(b) = indexes.iter().find(|i| i.building) {
            notes.push(building_note(p, b));
            continue;
        }
        let target = Target {
            policy,
            p,
            vectors: vectors(p),
            closed: p.bounds.is_some_and(|b| b.to <= now),
            shards: shards.max(1),
        };
        if target.vectors == Vectors::Hidden
            && p.rows() >= policy.min_rows.max(1)
            && !indexes.iter().any(|i| i.valid)
        {
            hidden.push(p.name.as_str());
        }
        actions.extend(drop_invalid(p, &indexes));
        let valid = with_records(&indexes, journaled);
        target.plan(&valid, actions, notes);
    }
    if !hidden.is_empty() {
        notes.push(hidden_stats_note(policy, &hidden));
    }
}

fn building_note(p: &Partition, index: &PartitionIndex) -> String {
    format!(
        "{}: an index build is under way on it (pg_stat_progress_create_index) and vector index {} \
         is not valid yet: its vector indexes are left alone until the build ends",
        p.name, index.name
    )
}

/// One note for all the partitions whose vectors cannot be counted because PostgreSQL
/// hides their column statistics, with what lifts it.
fn hidden_stats_note(policy: &VectorIndexPolicy, partitions: &[&str]) -> String {
    format!(
        "{} partition(s) ({}) have min_rows rows and no vector index, but their {} vectors cannot be counted: pg_stats \
         hides the column statistics of a table under forced row-level security from its owner. \
         No vector index is built on them until a superuser runs, once in this database, \
         GRANT SELECT ON pg_catalog.pg_statistic TO <partwarden's role> (docs/operations.md)",
        partitions.len(),
        partitions.join(", "),
        policy.column
    )
}

/// INVALID vector indexes are dropped; a valid one is then built in their place if the
/// partition qualifies. (No build is under way on the partition: `plan` checked.)
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
    vectors: Vectors,
    /// The partition's interval has ended.
    closed: bool,
    /// Indexes one build makes (Citus: one per shard, each trained on its shard's vectors).
    shards: u64,
}

impl Target<'_> {
    /// ivfflat `lists` for `vectors` in the partition: from the vectors one index holds.
    fn lists(&self, vectors: u64) -> u32 {
        lists_for(self.policy, vectors / self.shards)
    }

    /// The newest valid index decides: none yet (build one once the vectors are there),
    /// one partwarden did not build (left alone), or one whose build record calls for a
    /// rebuild. Older generations partwarden built are dropped.
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
            None => match self.vectors.counted() {
                Some(v) if qualifies(self.p, self.policy) => {
                    actions.push(self.build(v, max_gen + 1, None, self.first_build_reason(v)));
                }
                _ => notes.extend(self.not_built_note()),
            },
            Some((current, None)) => notes.push(format!(
                "{}: vector index {} was not built by partwarden; it is left alone",
                self.p.name, current.name
            )),
            Some((current, Some(rec))) => {
                notes.extend(self.legacy_note(current, rec));
                if let Some((v, why)) = self.rebuild_reason(rec) {
                    actions.push(self.build(
                        v,
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

    fn build(
        &self,
        vectors: u64,
        generation: u32,
        replaces: Option<String>,
        reason: String,
    ) -> PlannedAction {
        let policy = self.policy;
        PlannedAction {
            action: Action::BuildVectorIndex {
                partition: self.p.name.clone(),
                index: index_name(&self.p.name, policy, generation),
                method: policy.method,
                lists: (policy.method == VectorMethod::Ivfflat).then(|| self.lists(vectors)),
                rows: self.p.rows(),
                vectors,
                closed: self.closed,
                generation,
                replaces,
            },
            reason,
        }
    }

    fn first_build_reason(&self, vectors: u64) -> String {
        let policy = self.policy;
        let how = match policy.method {
            VectorMethod::Ivfflat => {
                if self.shards > 1 {
                    format!(
                        "ivfflat lists = {} from {vectors} vectors ({} per shard on {} shards)",
                        self.lists(vectors),
                        vectors / self.shards,
                        self.shards
                    )
                } else {
                    format!(
                        "ivfflat lists = {} from {vectors} vectors",
                        self.lists(vectors)
                    )
                }
            }
            VectorMethod::Hnsw => format!(
                "hnsw m = {}, ef_construction = {}",
                policy.m, policy.ef_construction
            ),
        };
        format!(
            "{vectors} of {} rows have a vector ({} not NULL), ≥ min_rows {}, and no valid vector index; {how}",
            self.p.rows(),
            policy.column,
            policy.min_rows
        )
    }

    /// Why a partition with `min_rows` rows gets no index: too few of them have a vector,
    /// or the vectors are not counted yet. (Hidden statistics get one note per table.)
    fn not_built_note(&self) -> Option<String> {
        let (p, policy) = (self.p, self.policy);
        let rows = p.rows();
        if rows < policy.min_rows.max(1) {
            return None;
        }
        let why = match self.vectors {
            Vectors::Counted(v) => format!(
                "only {v} of them have a vector ({} not NULL), below min_rows {} (it counts vectors: \
                 an index is trained on those)",
                policy.column, policy.min_rows
            ),
            Vectors::NoColumnStats => format!(
                "its {} vectors are not counted: the column has no statistics yet (ANALYZE {}, \
                 or let autovacuum analyze it)",
                policy.column, p.name
            ),
            Vectors::NotAnalyzed | Vectors::Hidden => return None,
        };
        Some(format!(
            "{}: {rows} rows but no vector index: {why}",
            p.name
        ))
    }

    /// An index an earlier partwarden built from the row count, on a partition where far
    /// fewer rows have a vector now: it was most likely trained on NULL embeddings, and no
    /// record says how many vectors it saw.
    fn legacy_note(&self, index: &PartitionIndex, rec: &BuildRecord) -> Option<String> {
        let v = self.vectors.counted()?;
        let factor = self.policy.rebuild_growth_factor;
        (rec.vectors.is_none() && rec.method == VectorMethod::Ivfflat && (v as f64) * factor <= rec.rows as f64)
            .then(|| {
                format!(
                    "{}: vector index {} was built from {} rows by an earlier partwarden, and only {v} \
                     rows have a vector ({} not NULL) now: it was probably trained on NULL embeddings (low recall); \
                     drop it and partwarden builds one from the vectors once there are min_rows",
                    self.p.name, index.name, rec.rows, self.policy.column
                )
            })
    }

    /// Why the index `rec` describes is rebuilt, if it is, with the vectors the new one is
    /// built from: the policy's method changed, an ivfflat index's vectors grew by
    /// `rebuild_growth_factor` since it was trained, or its interval ended since the build
    /// (once, with `rebuild_on_close`). Nothing is decided while the vectors are not
    /// counted.
    fn rebuild_reason(&self, rec: &BuildRecord) -> Option<(u64, String)> {
        let policy = self.policy;
        let v = self.vectors.counted()?;
        let trained = rec.trained_on();
        let ivfflat = policy.method == VectorMethod::Ivfflat;
        let why = if rec.method != policy.method {
            format!(
                "the policy's method is now {}, the index is {}",
                policy.method.as_str(),
                rec.method.as_str()
            )
        } else if ivfflat
            && v >= policy.min_rows.max(1)
            && v > trained
            && v as f64 >= trained as f64 * policy.rebuild_growth_factor
        {
            format!(
                "its vectors grew from {trained} to {v} since its ivfflat index was trained on them (≥ {}×): \
                 its lists and centroids no longer fit",
                policy.rebuild_growth_factor
            )
        } else if ivfflat && policy.rebuild_on_close && self.closed && !rec.closed {
            "its interval has ended: one last rebuild trains the ivfflat index on the final data"
                .to_string()
        } else {
            return None;
        };
        Some((v, why))
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
/// graph fits (about vectors × (dimensions × 4 + m × 16) bytes). At least 64 MB, at most
/// the policy's ceiling.
pub fn maintenance_work_mem_kb(
    policy: &VectorIndexPolicy,
    vectors: u64,
    lists: Option<u32>,
    dims: u32,
) -> u64 {
    let needed = match policy.method {
        VectorMethod::Ivfflat => (f64::from(lists.unwrap_or(1)) * 50.0 * 3.1 * 1.25) as u64,
        VectorMethod::Hnsw => {
            vectors.saturating_mul(u64::from(dims) * 4 + u64::from(policy.m) * 16) / 1024 * 5 / 4
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
            rows: 20_500,
            vectors: Some(20_000),
            closed: true,
            generation: 3,
        };
        assert_eq!(BuildRecord::parse(&r.comment()), Some(r));
        assert_eq!(BuildRecord::parse("made by hand"), None);
    }

    #[test]
    fn a_record_without_vectors_was_trained_on_its_rows() {
        use super::*;
        let r = BuildRecord::parse(
            "partwarden: method=ivfflat lists=210 rows=210000 closed=false gen=1",
        )
        .unwrap();
        assert_eq!((r.vectors, r.trained_on()), (None, 210_000));
    }

    use super::*;

    fn partition(rows: f64, null_frac: Option<f64>, hidden: bool) -> Partition {
        Partition {
            oid: 1,
            schema: "public".into(),
            name: "p".into(),
            bound_expr: String::new(),
            bounds: None,
            is_default: false,
            detach_pending: false,
            rows_estimate: rows,
            heap_bytes: 8192,
            total_bytes: 0,
            index_bytes: 0,
            size_pretty: String::new(),
            rls_enabled: true,
            rls_forced: true,
            policies: vec![],
            indexes: vec![],
            vector_null_frac: null_frac,
            column_stats_hidden: hidden,
        }
    }

    #[test]
    fn vectors_are_rows_whose_vector_is_not_null() {
        assert_eq!(
            vectors(&partition(3500.0, Some(2.0 / 7.0), false)),
            Vectors::Counted(2500)
        );
        assert_eq!(
            vectors(&partition(210_000.0, Some(1.0), false)),
            Vectors::Counted(0)
        );
        assert_eq!(vectors(&partition(0.0, None, true)), Vectors::Counted(0));
        assert_eq!(vectors(&partition(-1.0, None, false)), Vectors::NotAnalyzed);
        assert_eq!(
            vectors(&partition(5000.0, None, false)),
            Vectors::NoColumnStats
        );
        assert_eq!(vectors(&partition(5000.0, None, true)), Vectors::Hidden);
    }

    #[test]
    fn lists_follow_pgvector_guidance() {
        assert_eq!(auto_lists(0), 1);
        assert_eq!(auto_lists(20_000), 20);
        assert_eq!(auto_lists(1_000_000), 1000);
        assert_eq!(auto_lists(4_000_000), 2000);
    }
}
