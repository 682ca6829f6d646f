//! The planner: configuration + catalog snapshot + clock ⇒ a [`Plan`] of actions, each
//! with the reason it is planned. Pure: no I/O, so every rule is testable without a
//! server (see the property tests in `tests/plan_properties.rs`).
//!
//! Rules, in the order the actions run:
//! 1. a partition left "detach pending" by an interrupted `DETACH … CONCURRENTLY` is
//!    finalized;
//! 2. the default partition is created when the table should have one;
//! 3. premake: every interval from the current one through +`premake` gets a partition,
//!    unless an existing partition already covers part of it (reported, never overlapped).
//!    Nothing further ahead is ever created, whatever rows wait in the default partition;
//! 4. expiry: first what `partwarden_journal` says an earlier run began and did not
//!    finish (a detached partition to drop or archive, a build record to write, a retired
//!    table whose row-level security drifted); then partitions whose upper bound is at or
//!    before the retention cutoff, oldest first, at most `max_expire_per_run`, each
//!    leaving with the parent's row-level security;
//! 5. row-level security: a partition whose RLS is off, not forced, or whose policies
//!    differ from the parent's is brought in line;
//! 6. indexes: every partition has every index of the parent, and none is INVALID;
//! 7. vector indexes: a partition with `min_rows` rows gets its own pgvector index, built
//!    after the data is there; INVALID ones are dropped and rebuilt; an ivfflat index is
//!    rebuilt when its partition has grown by `rebuild_growth_factor`, and once when the
//!    partition's interval has ended (see `vector.rs`).

pub mod health;
pub(crate) mod rls;
pub mod vector;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::calendar::{self, sql_literal, PartitionBounds};
use crate::catalog::{Journaled, Partition, TableSnapshot};
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
            | Action::ForgetJournalEntry { partition, .. } => partition,
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
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::FinalizeDetach { partition } => write!(f, "finalize detach of {partition}"),
            Action::CreateDefaultPartition { partition } => {
                write!(f, "create default partition {partition}")
            }
            Action::CreatePartition { partition, bounds } => {
                write!(f, "create {partition} {bounds}")
            }
            Action::ExpirePartition {
                partition,
                bounds,
                mode,
            } => {
                let verb = match mode {
                    RetentionMode::Drop => "drop",
                    RetentionMode::Detach => "detach",
                    RetentionMode::Archive => "archive",
                };
                write!(f, "{verb} {partition} {bounds}")
            }
            Action::SyncRls { partition } => write!(f, "sync row-level security of {partition}"),
            Action::BuildIndex {
                partition,
                parent_index,
                index,
            } => {
                write!(f, "build index {index} on {partition} (for {parent_index})")
            }
            Action::RepairIndex { partition, index } => {
                write!(f, "rebuild invalid index {index} on {partition}")
            }
            Action::BuildVectorIndex {
                partition,
                index,
                method,
                lists,
                replaces,
                ..
            } => {
                write!(f, "build {} index {index} on {partition}", method.as_str())?;
                if let Some(l) = lists {
                    write!(f, " (lists = {l})")?;
                }
                if let Some(old) = replaces {
                    write!(f, ", then drop {old}")?;
                }
                Ok(())
            }
            Action::DropIndex { partition, index } => {
                write!(f, "drop index {index} on {partition}")
            }
            Action::FinishExpiry {
                partition,
                schema,
                mode,
                ..
            } => {
                let verb = match mode {
                    RetentionMode::Drop => "drop",
                    RetentionMode::Detach => "keep",
                    RetentionMode::Archive => "archive",
                };
                write!(
                    f,
                    "finish expiring {schema}.{partition}: {verb} the detached table"
                )
            }
            Action::SyncRetiredRls { schema, name, .. } => {
                write!(
                    f,
                    "sync row-level security of retired table {schema}.{name}"
                )
            }
            Action::AdoptVectorIndex {
                partition, index, ..
            } => {
                write!(f, "record the build of vector index {index} on {partition}")
            }
            Action::ForgetJournalEntry { entry, object, .. } => {
                write!(f, "forget journal entry {entry} {object}")
            }
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
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} action(s) at {}",
            self.table,
            self.actions.len(),
            sql_literal(self.now)
        )?;
        for (i, a) in self.actions.iter().enumerate() {
            writeln!(f, "  {}. {}\n     why: {}", i + 1, a.action, a.reason)?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// Plans one table. `snapshot` must be of the table `table` describes.
pub fn plan_table(table: &TableConfig, snapshot: &TableSnapshot, now: DateTime<Utc>) -> Plan {
    let cutoff = table.retention.cutoff(now);
    let mut plan = Plan {
        table: table.label(),
        now,
        cutoff,
        actions: Vec::new(),
        notes: Vec::new(),
    };
    let mut push =
        |action: Action, reason: String| plan.actions.push(PlannedAction { action, reason });

    // 1. Interrupted concurrent detaches.
    for p in snapshot.partitions.iter().filter(|p| p.detach_pending) {
        push(
            Action::FinalizeDetach {
                partition: p.name.clone(),
            },
            "left \"detach pending\" by an interrupted DETACH PARTITION … CONCURRENTLY".into(),
        );
    }

    // 2. Default partition.
    if table.default_partition && snapshot.default_partition.is_none() {
        push(
            Action::CreateDefaultPartition { partition: table.default_partition_name() },
            "default_partition = true: rows outside every partition must land somewhere instead of failing".into(),
        );
    }

    // 3. Premake window.
    let attached: Vec<&Partition> = snapshot
        .partitions
        .iter()
        .filter(|p| !p.detach_pending)
        .collect();
    let window = calendar::premake_window(table.interval, now, table.premake);
    for (k, bounds) in window.iter().enumerate() {
        if attached.iter().any(|p| p.bounds == Some(*bounds)) {
            continue;
        }
        if let Some(other) = attached
            .iter()
            .find(|p| p.bounds.is_some_and(|b| b.overlaps(bounds)))
        {
            plan.notes.push(format!(
                "{bounds} is not created: it overlaps existing partition {} {}",
                other.name, other.bound_expr
            ));
            continue;
        }
        let name = calendar::partition_name(table.name.as_str(), table.interval, bounds.from);
        let which = if k == 0 {
            format!("the current {} has no partition", table.interval)
        } else {
            format!(
                "premake = {}: {} {k} of {} ahead has no partition",
                table.premake, table.interval, table.premake
            )
        };
        let moving = match &snapshot.default_partition {
            Some(d) if d.rows_estimate > 0.0 => {
                "; its rows waiting in the default partition move with it"
            }
            _ => "",
        };
        push(
            Action::CreatePartition {
                partition: name,
                bounds: *bounds,
            },
            format!("{which}{moving}"),
        );
    }

    // 4. Expiry. A partition past the cutoff that an interrupted expiry left "detach
    // pending" is expired again, first (the executor finalizes the detach, or finds it
    // finalized by step 1, then drops or archives): finalizing alone would leave a
    // standalone table that no later run sees, so it would never be dropped or archived.
    let mut expired: Vec<&Partition> = snapshot
        .partitions
        .iter()
        .filter(|p| p.bounds.is_some_and(|b| b.to <= cutoff))
        .collect();
    expired.sort_by_key(|p| (!p.detach_pending, p.bounds.map(|b| b.from)));
    let cap = table.max_expire_per_run as usize;
    if expired.len() > cap {
        plan.notes.push(format!(
            "{} more partition(s) past retention wait for later runs (max_expire_per_run = {cap})",
            expired.len() - cap
        ));
    }
    let expiring: Vec<&str> = expired.iter().take(cap).map(|p| p.name.as_str()).collect();
    // 4a. What earlier runs began and did not finish comes first.
    let mut journal_actions = Vec::new();
    plan_journal(
        table,
        snapshot,
        cutoff,
        &expiring,
        &mut journal_actions,
        &mut plan.notes,
    );
    for a in journal_actions {
        push(a.action, a.reason);
    }
    let parent_rls = snapshot.rls();
    for p in expired.iter().take(cap) {
        let Some(bounds) = p.bounds else { continue };
        // A partition leaves the table with the parent's row-level security: the expiry
        // repairs any drift first (a detached or archived table keeps what it leaves with).
        let drift = rls::drift(&parent_rls, &p.rls(), "partition");
        let repair = if drift.is_empty() {
            String::new()
        } else {
            format!(
                "; its row-level security is repaired first ({})",
                drift.join("; ")
            )
        };
        push(
            Action::ExpirePartition {
                partition: p.name.clone(),
                bounds,
                mode: table.retention_mode,
            },
            format!(
                "upper bound {} is at or before the retention cutoff {} (retention {}){repair}",
                sql_literal(bounds.to),
                sql_literal(cutoff),
                table.retention
            ),
        );
    }

    // 5 and 6 look at the partitions that stay.
    let staying: Vec<&Partition> = attached
        .iter()
        .copied()
        .chain(snapshot.default_partition.iter())
        .filter(|p| !expiring.contains(&p.name.as_str()))
        .collect();

    // 5. Row-level security drift.
    for p in &staying {
        let drift = rls::drift(&parent_rls, &p.rls(), "partition");
        if !drift.is_empty() {
            push(
                Action::SyncRls {
                    partition: p.name.clone(),
                },
                drift.join("; "),
            );
        }
    }

    // 6. Indexes of the parent on every partition.
    for p in &staying {
        for pi in &snapshot.parent_indexes {
            match p.indexes.iter().find(|i| i.parent_index == Some(pi.oid)) {
                Some(i) if !i.valid => push(
                    Action::RepairIndex { partition: p.name.clone(), index: i.name.clone() },
                    format!("index {} is INVALID (a failed or cancelled concurrent build); queries ignore it", i.name),
                ),
                Some(_) => {}
                None if pi.is_constraint => plan.notes.push(format!(
                    "{} has no index for constraint index {}: re-attach the partition to rebuild it",
                    p.name, pi.name
                )),
                None => push(
                    Action::BuildIndex {
                        partition: p.name.clone(),
                        parent_index: pi.name.clone(),
                        index: child_index_name(&p.name, &pi.name),
                    },
                    format!("parent index {} has no counterpart on {}", pi.name, p.name),
                ),
            }
        }
        // An interrupted REINDEX CONCURRENTLY (a repair above) leaves its new or old copy
        // behind, INVALID: dropped, or it would stay forever.
        for i in p
            .indexes
            .iter()
            .filter(|i| !i.valid && i.parent_index.is_none())
        {
            if reindex_leftover(&i.name, p) {
                push(
                    Action::DropIndex {
                        partition: p.name.clone(),
                        index: i.name.clone(),
                    },
                    format!(
                        "{} is what an interrupted REINDEX CONCURRENTLY left behind (INVALID)",
                        i.name
                    ),
                );
            }
        }
    }

    // 7. Vector indexes per partition.
    if let Some(policy) = &table.vector_index {
        let journaled = journaled_builds(snapshot);
        crate::plan::vector::plan(
            policy,
            &staying,
            &journaled,
            now,
            &mut plan.actions,
            &mut plan.notes,
        );
    }

    if let Some(d) = &snapshot.default_partition {
        if d.rows_estimate > 0.0 {
            plan.notes.push(format!(
                "about {} row(s) in the default partition {}: rows of a month that gets a partition move there; \
                 rows beyond the premake window stay (and are exported as partwarden_default_partition_rows)",
                d.rows(),
                d.name
            ));
        }
    }
    for pi in snapshot.parent_indexes.iter().filter(|i| i.am == "ivfflat") {
        plan.notes.push(format!(
            "WARNING: parent-level ivfflat index {}: it cascades untrained to every new, empty partition \
             (low recall); drop it and let partwarden build one per partition",
            pi.name
        ));
    }
    plan
}

/// What partwarden's journal still asks for: expiries an interrupted or failed run left
/// half done are finished (or reported), retired tables keep the parent's row-level
/// security, and build records of finished vector builds are written.
fn plan_journal(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    cutoff: DateTime<Utc>,
    expiring: &[&str],
    actions: &mut Vec<PlannedAction>,
    notes: &mut Vec<String>,
) {
    let parent_rls = snapshot.rls();
    for e in &snapshot.journal {
        let forget = |why: String| PlannedAction {
            action: Action::ForgetJournalEntry {
                partition: partition_of(&e.what).to_string(),
                entry: e.what.kind().to_string(),
                object: e.what.object().to_string(),
            },
            reason: why,
        };
        match (&e.what, e.state.as_str(), &e.relation) {
            (Journaled::Expire { partition, .. }, _, None) => actions.push(forget(format!(
                "{partition} no longer exists (dropped outside partwarden?): nothing is left to finish or watch"
            ))),
            (Journaled::Expire { partition, .. }, "retired", Some(r)) if r.attached => {
                actions.push(forget(format!(
                    "{partition} was attached again: it is a partition, maintained as one"
                )))
            }
            (Journaled::Expire { partition, .. }, "retired", Some(r)) => {
                let drift = rls::drift(&parent_rls, &r.rls(), "retired table");
                if !drift.is_empty() {
                    actions.push(PlannedAction {
                        action: Action::SyncRetiredRls {
                            partition: partition.clone(),
                            schema: r.schema.clone(),
                            name: r.name.clone(),
                        },
                        reason: format!(
                            "retention left {}.{} as a table; {}",
                            r.schema,
                            r.name,
                            drift.join("; ")
                        ),
                    });
                }
            }
            (Journaled::Expire { partition, .. }, _, Some(r)) if r.attached => {
                if !expiring.contains(&partition.as_str()) {
                    actions.push(forget(format!(
                        "an earlier run began expiring {partition}, which is attached and not expiring now"
                    )));
                }
            }
            (Journaled::Expire { partition, oid, bounds, mode }, _, Some(r)) => {
                if bounds.to <= cutoff {
                    actions.push(PlannedAction {
                        action: Action::FinishExpiry {
                            partition: partition.clone(),
                            oid: *oid,
                            schema: r.schema.clone(),
                            mode: *mode,
                        },
                        reason: format!(
                            "a run at {} detached {partition} to expire it and did not finish \
                             (partwarden_journal); the table is still in {}",
                            sql_literal(e.started_at),
                            r.schema
                        ),
                    });
                } else {
                    notes.push(format!(
                        "{}.{} was detached by an expiry that did not finish, but {} is no longer past the \
                         retention cutoff {} (retention {}): it is kept; attach it again or drop it",
                        r.schema,
                        r.name,
                        bounds,
                        sql_literal(cutoff),
                        table.retention
                    ));
                }
            }
            (Journaled::VectorBuild { partition, index, comment }, _, _) => {
                let found = snapshot
                    .find(partition)
                    .and_then(|p| p.indexes.iter().find(|i| &i.name == index));
                match found {
                    Some(i) if i.valid && i.comment.is_none() => actions.push(PlannedAction {
                        action: Action::AdoptVectorIndex {
                            partition: partition.clone(),
                            index: index.clone(),
                            comment: comment.clone(),
                        },
                        reason: format!(
                            "an interrupted run built {index} but did not record the build (partwarden_journal)"
                        ),
                    }),
                    // INVALID: the vector rules drop it (and its entry) and build again.
                    Some(i) if !i.valid => {}
                    Some(_) => actions.push(forget(format!("the build of {index} is recorded on the index"))),
                    None => actions.push(forget(format!(
                        "{index} does not exist: its build never started or was dropped"
                    ))),
                }
            }
        }
    }
}

/// `<index>_ccnew`, `<index>_ccold` (or with a digit, PostgreSQL's names for the copies
/// REINDEX CONCURRENTLY makes; the base may be shortened to fit 63 bytes) of another index
/// of `p`.
fn reindex_leftover(name: &str, p: &Partition) -> bool {
    let Some((base, suffix)) = name.rsplit_once('_') else {
        return false;
    };
    let kind = suffix.trim_end_matches(|c: char| c.is_ascii_digit());
    (kind == "ccnew" || kind == "ccold")
        && !base.is_empty()
        && p.indexes
            .iter()
            .any(|o| o.name != name && o.name.starts_with(base))
}

fn partition_of(what: &Journaled) -> &str {
    match what {
        Journaled::Expire { partition, .. } | Journaled::VectorBuild { partition, .. } => partition,
    }
}

/// Build records of finished vector builds that the journal holds but the index's comment
/// does not (yet): the vector rules judge such an index by them.
fn journaled_builds(snapshot: &TableSnapshot) -> std::collections::HashMap<String, String> {
    snapshot
        .journal
        .iter()
        .filter_map(|e| match &e.what {
            Journaled::VectorBuild { index, comment, .. } => Some((index.clone(), comment.clone())),
            _ => None,
        })
        .collect()
}

/// Name for a partition's copy of a parent index: `<partition>_<parent index>`, shortened
/// with a stable hash when longer than PostgreSQL's 63 bytes.
pub fn child_index_name(partition: &str, parent_index: &str) -> String {
    fit_identifier(&format!("{partition}_{parent_index}"))
}

/// `full` if it fits PostgreSQL's 63 bytes, else its head and a stable hash of it.
pub fn fit_identifier(full: &str) -> String {
    if full.len() <= 63 {
        return full.to_string();
    }
    // FNV-1a: stable across runs and builds (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in full.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let suffix = format!("_{h:08x}");
    // Cut on a character boundary: identifiers may hold multi-byte characters.
    let mut cut = 63 - suffix.len();
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &full[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_index_names_fit() {
        assert_eq!(child_index_name("t_2026_05", "idx"), "t_2026_05_idx");
        let long = child_index_name(&"a".repeat(50), &"b".repeat(30));
        assert_eq!(long.len(), 63);
        assert_eq!(long, child_index_name(&"a".repeat(50), &"b".repeat(30)));
        assert_ne!(long, child_index_name(&"a".repeat(50), &"c".repeat(30)));
    }

    /// Issue 10.6: a long name with multi-byte characters is cut on a character boundary
    /// (byte slicing used to panic), and stays within 63 bytes.
    #[test]
    fn child_index_names_fit_multibyte() {
        for pad in 0..4 {
            let parent_index = format!("{}índice_événements_ünïcødé_ß", "x".repeat(pad));
            let name = child_index_name("archon_ga4_events_2026_05", &parent_index);
            assert!(name.len() <= 63, "{name}");
            assert_eq!(
                name,
                child_index_name("archon_ga4_events_2026_05", &parent_index)
            );
        }
    }
}
