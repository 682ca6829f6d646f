//! The catalog stage: what the database has, read without side effects. The types here
//! are one managed table's snapshot ([`TableSnapshot`]: partitions with their bounds,
//! sizes, indexes and row-level security, the default partition, partitions left "detach
//! pending") and the journal's entries; [`read`] fills them with one query per table;
//! [`vector`] checks a vector column and watches index builds; [`privilege`] reads who
//! owns what when the server refused partwarden a statement.

pub mod citus;
pub mod privilege;
pub mod read;
pub mod vector;

pub use read::{
    parse_range_bound, parse_timestamptz, read_journal, read_rls, read_table, read_tables, Detail,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::PartitionBounds;
use crate::config::RetentionMode;
use crate::ident::quote_ident;

/// One row-level security policy as the catalog has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE` or `DELETE`.
    pub cmd: String,
    pub permissive: bool,
    /// Role names, quoted where needed; `PUBLIC` for everyone.
    pub roles: Vec<String>,
    pub qual: Option<String>,
    pub with_check: Option<String>,
}

/// What a relation has of row-level security.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlsState {
    pub enabled: bool,
    pub forced: bool,
    pub policies: Vec<Policy>,
}

/// An index of the partitioned parent (it cascades to every partition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentIndex {
    pub oid: i64,
    pub name: String,
    pub am: String,
    /// `pg_get_indexdef`.
    pub definition: String,
    /// Backs a constraint (primary key, unique): built by ATTACH, not by partwarden.
    pub is_constraint: bool,
    pub is_unique: bool,
    pub valid: bool,
}

/// An index on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionIndex {
    pub oid: i64,
    pub name: String,
    pub am: String,
    pub valid: bool,
    /// The parent index this one is attached to, if any.
    pub parent_index: Option<i64>,
    /// The index's comment (a vector index's build record); read for pgvector's only.
    pub comment: Option<String>,
    pub size_bytes: i64,
    /// A `CREATE INDEX` or `REINDEX` is under way for it (`pg_stat_progress_create_index`):
    /// an INVALID index that is building is not a failed one. When another role builds,
    /// PostgreSQL hides which index from partwarden's role; then every INVALID index of
    /// the partition that build locks counts as building.
    #[serde(default)]
    pub building: bool,
    /// `pg_get_indexdef` of pgvector's indexes (ivfflat, hnsw); empty for the others,
    /// whose definitions the planner never needs (the parent's are read in full).
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// `pg_get_expr(relpartbound)` as read.
    pub bound_expr: String,
    /// Parsed bounds; `None` for the default partition and for MINVALUE/MAXVALUE bounds.
    pub bounds: Option<PartitionBounds>,
    pub is_default: bool,
    pub detach_pending: bool,
    /// `pg_class.reltuples`: an estimate, -1 when never analyzed.
    pub rows_estimate: f64,
    /// The main fork alone (`pg_relation_size`): 0 means no rows, analyzed or not.
    #[serde(default)]
    pub heap_bytes: i64,
    pub total_bytes: i64,
    pub index_bytes: i64,
    pub size_pretty: String,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub policies: Vec<Policy>,
    pub indexes: Vec<PartitionIndex>,
    /// `null_frac` of the vector policy's column at the last ANALYZE; `None` without a
    /// policy, before the column has statistics, or when they are hidden.
    #[serde(default)]
    pub vector_null_frac: Option<f64>,
    /// PostgreSQL hides this partition's column statistics from partwarden's role:
    /// `pg_stats` leaves out tables whose row-level security applies to the reader (forced
    /// RLS applies to the owner), and the role may not read `pg_statistic`.
    #[serde(default)]
    pub column_stats_hidden: bool,
}

impl Partition {
    pub fn rls(&self) -> RlsState {
        RlsState {
            enabled: self.rls_enabled,
            forced: self.rls_forced,
            policies: self.policies.clone(),
        }
    }

    /// Rows, treating "never analyzed" as 0 (what the planner's thresholds want).
    pub fn rows(&self) -> u64 {
        self.rows_known().unwrap_or(0)
    }

    /// Rows as far as anyone knows: `None` when the partition holds data but was never
    /// analyzed (a count of 0 would be a lie); an empty heap is 0 either way.
    pub fn rows_known(&self) -> Option<u64> {
        if self.rows_estimate >= 0.0 {
            Some(self.rows_estimate.round() as u64)
        } else if self.heap_bytes == 0 {
            Some(0)
        } else {
            None
        }
    }
}

/// The default partition's rows, counted per interval (`maintain --backfill` reads it:
/// a scan of the default partition, so never on a routine run).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DefaultCensus {
    /// The intervals that hold rows, in order.
    pub ranges: Vec<CountedRange>,
    /// Rows no partition can take: the partition key is NULL, infinite, or outside the
    /// dates partwarden handles.
    pub unplaceable: u64,
}

impl DefaultCensus {
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.rows).sum::<u64>() + self.unplaceable
    }

    /// Rows of `bounds` (0 when none are there).
    pub fn rows_in(&self, bounds: &PartitionBounds) -> u64 {
        self.ranges
            .iter()
            .filter(|r| bounds.from <= r.bounds.from && r.bounds.to <= bounds.to)
            .map(|r| r.rows)
            .sum()
    }
}

/// One interval's rows in the default partition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountedRange {
    pub bounds: PartitionBounds,
    pub rows: u64,
}

/// An unfinished or watched action of partwarden's, from table `partwarden_journal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    #[serde(flatten)]
    pub what: Journaled,
    /// `detaching` (an expiry under way) or `retired` (a detached or archived table kept
    /// under watch) for expiries; `building` for vector index builds.
    pub state: String,
    pub started_at: DateTime<Utc>,
    /// For expiries: the table the entry is about, found by oid and name wherever it is
    /// now; `None` when it no longer exists.
    #[serde(default)]
    pub relation: Option<JournalRelation>,
}

/// What a journal entry is about (`kind` and `details` of its row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Journaled {
    /// A partition's expiry: detached (or being detached), then dropped, kept or archived.
    Expire {
        partition: String,
        oid: i64,
        bounds: PartitionBounds,
        mode: RetentionMode,
    },
    /// A vector index built concurrently, whose build record (`comment`) is written when
    /// the build has finished.
    VectorBuild {
        partition: String,
        index: String,
        comment: String,
    },
    /// A partition `partwarden restore` brought back: not expired again before `until`.
    Hold {
        partition: String,
        until: DateTime<Utc>,
    },
}

impl Journaled {
    pub fn kind(&self) -> &'static str {
        match self {
            Journaled::Expire { .. } => "expire",
            Journaled::VectorBuild { .. } => "vector_build",
            Journaled::Hold { .. } => "hold",
        }
    }

    /// The journal row's `object`: the partition or the index.
    pub fn object(&self) -> &str {
        match self {
            Journaled::Expire { partition, .. } => partition,
            Journaled::VectorBuild { index, .. } => index,
            Journaled::Hold { partition, .. } => partition,
        }
    }
}

/// Where the table of a journal entry is now, and its row-level security.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRelation {
    pub schema: String,
    pub name: String,
    pub attached: bool,
    pub detach_pending: bool,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub policies: Option<Vec<Policy>>,
}

impl JournalRelation {
    pub fn rls(&self) -> RlsState {
        RlsState {
            enabled: self.rls_enabled,
            forced: self.rls_forced,
            policies: self.policies.clone().unwrap_or_default(),
        }
    }

    /// `"schema"."name"`
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Everything about one managed table at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableSnapshot {
    pub schema: String,
    pub name: String,
    pub oid: i64,
    pub key_column: String,
    pub key_type: String,
    /// The parent's columns in order (the column list used to move rows).
    pub columns: Vec<String>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub policies: Vec<Policy>,
    pub parent_indexes: Vec<ParentIndex>,
    /// Range partitions (not the default), ordered by lower bound.
    pub partitions: Vec<Partition>,
    pub default_partition: Option<Partition>,
    pub in_recovery: bool,
    /// partwarden's unfinished actions and watched tables of this table.
    pub journal: Vec<JournalEntry>,
    /// What the default partition holds, when a backfill counted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_census: Option<DefaultCensus>,
    /// How Citus distributes the table; `None` for a table Citus does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citus: Option<citus::Distribution>,
}

impl TableSnapshot {
    pub fn label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// All partitions including the default one.
    pub fn all_partitions(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.iter().chain(self.default_partition.iter())
    }

    pub fn find(&self, name: &str) -> Option<&Partition> {
        self.all_partitions().find(|p| p.name == name)
    }

    /// The parent's row-level security.
    pub fn rls(&self) -> RlsState {
        RlsState {
            enabled: self.rls_enabled,
            forced: self.rls_forced,
            policies: self.policies.clone(),
        }
    }

    /// Sum of the row estimates of every partition.
    pub fn rows_estimate(&self) -> u64 {
        self.all_partitions().map(Partition::rows).sum()
    }
}
