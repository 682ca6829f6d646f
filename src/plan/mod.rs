//! The planner: configuration + catalog snapshot + clock ⇒ a [`Plan`] of actions, each
//! with the reason it is planned. Pure: no I/O, so every rule is testable without a
//! server (see the property tests in `tests/plan_properties.rs`).
//!
//! Rules, in the order the actions run (the file that plans each in brackets):
//! 1. a partition left "detach pending" by an interrupted `DETACH … CONCURRENTLY` is
//!    finalized (`expire.rs`);
//! 2. the default partition is created when the table should have one (`create.rs`);
//! 3. premake: every interval from the current one through +`premake` gets a partition,
//!    unless an existing partition already covers part of it (reported, never overlapped).
//!    Nothing further ahead is ever created, whatever rows wait in the default partition.
//!    With `--backfill` (a census of the default partition in the snapshot), also every
//!    past interval whose rows wait there and every gap between partitions, back to the
//!    retention cutoff. Gaps are reported either way (`create.rs`);
//! 4. expiry: first what `partwarden_journal` says an earlier run began and did not
//!    finish (a detached partition to drop or archive, a build record to write, a retired
//!    table whose row-level security drifted; `journal.rs`); then partitions whose upper
//!    bound is at or before the retention cutoff, oldest first, at most
//!    `max_expire_per_run`, each leaving with the parent's row-level security
//!    (`expire.rs`);
//! 5. row-level security: a partition whose RLS is off, not forced, or whose policies
//!    differ from the parent's is brought in line (`sync.rs`);
//! 6. indexes: every partition has every index of the parent, and none is INVALID
//!    (an index being built is left to its build; `sync.rs`);
//! 7. vector indexes: a partition with `min_rows` vectors (rows whose vector is not NULL,
//!    counted from the column's statistics) gets its own pgvector index, built after the
//!    data is there; INVALID ones are dropped and rebuilt, unless a build is under way; an
//!    ivfflat index is rebuilt when its vectors have grown by `rebuild_growth_factor`
//!    since it was trained, and once when the partition's interval has ended
//!    (`vector.rs`).
//!
//! Index names are in `names.rs`, how a plan reads in `display.rs`.

mod create;
mod display;
mod expire;
pub mod health;
mod journal;
mod names;
pub(crate) mod rls;
mod sync;
pub mod vector;

pub use names::{child_index_name, fit_identifier};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::calendar::PartitionBounds;
use crate::catalog::{Partition, TableSnapshot};
use crate::config::{RetentionMode, TableConfig};

/// One thing to do to one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    FinalizeDetach {
        partition: String,
    },
    CreateDefaultPartition {
        partition: String,
    },
    CreatePartition {
        partition: String,
        bounds: PartitionBounds,
    },
    ExpirePartition {
        partition: String,
        bounds: PartitionBounds,
        mode: RetentionMode,
        /// What it holds (shown with the action; a drop removes it): rows per its last
        /// ANALYZE (`None`: never analyzed), and bytes with its indexes.
        rows: Option<u64>,
        bytes: i64,
    },
    SyncRls {
        partition: String,
    },
    BuildIndex {
        partition: String,
        parent_index: String,
        index: String,
    },
    RepairIndex {
        partition: String,
        index: String,
    },
    /// A pgvector index on one partition, built concurrently; `replaces` is dropped after.
    BuildVectorIndex {
        partition: String,
        index: String,
        method: crate::config::VectorMethod,
        lists: Option<u32>,
        rows: u64,
        /// The vectors (rows whose vector is not NULL) it is built and trained on.
        vectors: u64,
        closed: bool,
        generation: u32,
        replaces: Option<String>,
    },
    DropIndex {
        partition: String,
        index: String,
    },
    /// Finishes an expiry an earlier run began (recorded in `partwarden_journal`): the
    /// partition is detached already; drop, keep or archive it as `mode` says.
    FinishExpiry {
        partition: String,
        oid: i64,
        /// Where the detached table is now.
        schema: String,
        mode: RetentionMode,
    },
    /// Row-level security of a table retention detached or archived (journal: retired).
    SyncRetiredRls {
        partition: String,
        schema: String,
        name: String,
    },
    /// Writes the build record of a vector index whose build an interrupted run finished
    /// but did not record (from the journal).
    AdoptVectorIndex {
        partition: String,
        index: String,
        comment: String,
    },
    /// Removes a journal entry that needs nothing more.
    ForgetJournalEntry {
        partition: String,
        entry: String,
        object: String,
    },
    /// Loads an export (`partwarden_exports`) back into a new partition, attached online;
    /// the journal then holds it from expiry until `hold_until`. Planned by `partwarden
    /// restore`, never by the maintenance rules.
    RestorePartition {
        partition: String,
        bounds: PartitionBounds,
        run_id: String,
        rows: u64,
        hold_until: DateTime<Utc>,
    },
}

impl Action {
    /// The partition the action is about.
    pub fn partition(&self) -> &str {
        match self {
            Action::FinalizeDetach { partition }
            | Action::CreateDefaultPartition { partition }
            | Action::CreatePartition { partition, .. }
            | Action::ExpirePartition { partition, .. }
            | Action::SyncRls { partition }
            | Action::BuildIndex { partition, .. }
            | Action::RepairIndex { partition, .. }
            | Action::BuildVectorIndex { partition, .. }
            | Action::DropIndex { partition, .. }
            | Action::FinishExpiry { partition, .. }
            | Action::SyncRetiredRls { partition, .. }
            | Action::AdoptVectorIndex { partition, .. }
            | Action::ForgetJournalEntry { partition, .. }
            | Action::RestorePartition { partition, .. } => partition,
        }
    }

    /// A short verb for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::FinalizeDetach { .. } => "finalize_detach",
            Action::CreateDefaultPartition { .. } => "create_default_partition",
            Action::CreatePartition { .. } => "create_partition",
            Action::ExpirePartition { .. } => "expire_partition",
            Action::SyncRls { .. } => "sync_rls",
            Action::BuildIndex { .. } => "build_index",
            Action::RepairIndex { .. } => "repair_index",
            Action::BuildVectorIndex { .. } => "build_vector_index",
            Action::DropIndex { .. } => "drop_index",
            Action::FinishExpiry { .. } => "finish_expiry",
            Action::SyncRetiredRls { .. } => "sync_retired_rls",
            Action::AdoptVectorIndex { .. } => "adopt_vector_index",
            Action::ForgetJournalEntry { .. } => "forget_journal_entry",
            Action::RestorePartition { .. } => "restore_partition",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedAction {
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
}

/// What one maintenance run will do to one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub table: String,
    pub now: DateTime<Utc>,
    pub cutoff: DateTime<Utc>,
    pub actions: Vec<PlannedAction>,
    /// Things worth knowing that need no action (or that partwarden will not do).
    pub notes: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    fn push(&mut self, action: Action, reason: String) {
        self.actions.push(PlannedAction { action, reason });
    }
}

/// Plans one table. `snapshot` must be of the table `table` describes.
pub fn plan_table(table: &TableConfig, snapshot: &TableSnapshot, now: DateTime<Utc>) -> Plan {
    let mut plan = Plan {
        table: table.label(),
        now,
        cutoff: table.retention.cutoff(now),
        actions: Vec::new(),
        notes: Vec::new(),
    };
    // The actions run in the order they are planned: keep these calls in the order of the
    // rules above.
    expire::finalize_detaches(snapshot, &mut plan);
    create::default_partition(table, snapshot, &mut plan);
    let attached: Vec<&Partition> = snapshot
        .partitions
        .iter()
        .filter(|p| !p.detach_pending)
        .collect();
    create::premake(table, snapshot, &attached, &mut plan);
    create::backfill(table, snapshot, &attached, &mut plan);
    let expiring = expire::expiring(table, snapshot, &mut plan);
    let expiring_names: Vec<&str> = expiring.iter().map(|p| p.name.as_str()).collect();
    journal::plan_journal(table, snapshot, &expiring_names, &mut plan);
    expire::expire(table, snapshot, &expiring, &mut plan);

    let staying = staying(snapshot, &attached, &expiring_names);
    sync::sync_rls(&snapshot.rls(), &staying, &mut plan);
    sync::sync_indexes(&snapshot.parent_indexes, &staying, &mut plan);
    if let Some(policy) = &table.vector_index {
        let journaled = journal::journaled_builds(snapshot);
        // On Citus each shard of a partition trains its own index on its own vectors.
        let shards = snapshot
            .citus
            .as_ref()
            .map_or(1, |c| c.shard_count.max(1) as u64);
        vector::plan(
            policy,
            &staying,
            shards,
            &journaled,
            now,
            &mut plan.actions,
            &mut plan.notes,
        );
    }

    let state = state_notes(table, snapshot, &plan);
    plan.notes.extend(state);
    vector::parent_index_warnings(snapshot, &mut plan.notes);
    plan
}

/// The notes that describe the table as `snapshot` has it, given what `plan` does to it:
/// gaps between partitions, and the default partition's rows. A run's report recomputes
/// them from the state the run left (the others are about the plan, and stay).
pub fn state_notes(table: &TableConfig, snapshot: &TableSnapshot, plan: &Plan) -> Vec<String> {
    let attached: Vec<&Partition> = snapshot
        .partitions
        .iter()
        .filter(|p| !p.detach_pending)
        .collect();
    let mut notes = Vec::new();
    create::gap_notes(table, snapshot, &attached, plan, &mut notes);
    create::default_rows_note(table, snapshot, plan, &mut notes);
    notes
}

/// The partitions rules 5 to 7 look after: the attached ones and the default partition,
/// but not those this run expires.
fn staying<'a>(
    snapshot: &'a TableSnapshot,
    attached: &[&'a Partition],
    expiring: &[&str],
) -> Vec<&'a Partition> {
    attached
        .iter()
        .copied()
        .chain(snapshot.default_partition.iter())
        .filter(|p| !expiring.contains(&p.name.as_str()))
        .collect()
}
