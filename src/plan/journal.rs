//! Rule 4a: what partwarden's journal (`partwarden_journal`) says an earlier run began and
//! did not finish. It comes before this run's own expiries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::calendar::{sql_literal, PartitionBounds};
use crate::catalog::{JournalEntry, JournalRelation, Journaled, RlsState, TableSnapshot};
use crate::config::{RetentionMode, TableConfig};

use super::{rls, Action, Plan, PlannedAction};

/// What partwarden's journal still asks for: expiries an interrupted or failed run left
/// half done are finished (or reported), retired tables keep the parent's row-level
/// security, and build records of finished vector builds are written.
pub(super) fn plan_journal(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    expiring: &[&str],
    plan: &mut Plan,
) {
    let parent_rls = snapshot.rls();
    let cutoff = plan.cutoff;
    for e in &snapshot.journal {
        match (&e.what, e.state.as_str(), &e.relation) {
            (Journaled::Expire { partition, .. }, _, None) => plan.actions.push(forget(e, format!(
                "{partition} no longer exists (dropped outside partwarden?): nothing is left to finish or watch"
            ))),
            (Journaled::Expire { partition, .. }, "retired", Some(r)) if r.attached => {
                plan.actions.push(forget(e, format!(
                    "{partition} was attached again: it is a partition, maintained as one"
                )))
            }
            (Journaled::Expire { partition, .. }, "retired", Some(r)) => {
                plan.actions.extend(sync_retired_rls(&parent_rls, partition, r))
            }
            (Journaled::Expire { partition, .. }, _, Some(r)) if r.attached => {
                if !expiring.contains(&partition.as_str()) {
                    plan.actions.push(forget(e, format!(
                        "an earlier run began expiring {partition}, which is attached and not expiring now"
                    )));
                }
            }
            (Journaled::Expire { partition, oid, bounds, mode }, _, Some(r))
                if bounds.to <= cutoff =>
            {
                plan.actions.push(finish_expiry(e, r, partition, *oid, *mode))
            }
            (Journaled::Expire { bounds, .. }, _, Some(r)) => {
                plan.notes.push(kept_detached(table, cutoff, bounds, r))
            }
            (Journaled::VectorBuild { partition, index, comment }, _, _) => {
                let adopt = adopt_vector_build(snapshot, e, partition, index, comment);
                plan.actions.extend(adopt)
            }
            (Journaled::Hold { partition, until }, _, _) if *until <= plan.now => {
                plan.actions.push(forget(e, format!(
                    "the hold `partwarden restore` put on {partition} ended at {}", sql_literal(*until)
                )))
            }
            (Journaled::Hold { .. }, _, _) => {}
        }
    }
}

/// Removes an entry that needs nothing more.
fn forget(e: &JournalEntry, why: String) -> PlannedAction {
    PlannedAction {
        action: Action::ForgetJournalEntry {
            partition: partition_of(&e.what).to_string(),
            entry: e.what.kind().to_string(),
            object: e.what.object().to_string(),
        },
        reason: why,
    }
}

fn partition_of(what: &Journaled) -> &str {
    match what {
        Journaled::Expire { partition, .. }
        | Journaled::VectorBuild { partition, .. }
        | Journaled::Hold { partition, .. } => partition,
    }
}

/// A table retention left behind keeps the parent's row-level security; `None` when it
/// has it.
fn sync_retired_rls(
    parent_rls: &RlsState,
    partition: &str,
    r: &JournalRelation,
) -> Option<PlannedAction> {
    let drift = rls::drift(parent_rls, &r.rls(), "retired table");
    if drift.is_empty() {
        return None;
    }
    Some(PlannedAction {
        action: Action::SyncRetiredRls {
            partition: partition.to_string(),
            schema: r.schema.clone(),
            name: r.name.clone(),
        },
        reason: format!(
            "retention left {}.{} as a table; {}",
            r.schema,
            r.name,
            drift.join("; ")
        ),
    })
}

/// The partition is detached already: what is left is to drop, keep or archive it.
fn finish_expiry(
    e: &JournalEntry,
    r: &JournalRelation,
    partition: &str,
    oid: i64,
    mode: RetentionMode,
) -> PlannedAction {
    PlannedAction {
        action: Action::FinishExpiry {
            partition: partition.to_string(),
            oid,
            schema: r.schema.clone(),
            mode,
        },
        reason: format!(
            "a run at {} detached {partition} to expire it and did not finish \
             (partwarden_journal); the table is still in {}",
            sql_literal(e.started_at),
            r.schema
        ),
    }
}

/// A detached table that is no longer past the cutoff (the retention changed since its
/// expiry began) is not partwarden's to drop any more: it is kept and reported.
fn kept_detached(
    table: &TableConfig,
    cutoff: DateTime<Utc>,
    bounds: &PartitionBounds,
    r: &JournalRelation,
) -> String {
    format!(
        "{}.{} was detached by an expiry that did not finish, but {} is no longer past the \
         retention cutoff {} (retention {}): it is kept; attach it again or drop it",
        r.schema,
        r.name,
        bounds,
        sql_literal(cutoff),
        table.retention
    )
}

/// A vector build an interrupted run finished gets its build record; an entry whose index
/// is recorded or gone is forgotten.
fn adopt_vector_build(
    snapshot: &TableSnapshot,
    e: &JournalEntry,
    partition: &str,
    index: &str,
    comment: &str,
) -> Option<PlannedAction> {
    let found = snapshot
        .find(partition)
        .and_then(|p| p.indexes.iter().find(|i| i.name == index));
    match found {
        Some(i) if i.valid && i.comment.is_none() => Some(PlannedAction {
            action: Action::AdoptVectorIndex {
                partition: partition.to_string(),
                index: index.to_string(),
                comment: comment.to_string(),
            },
            reason: format!(
                "an interrupted run built {index} but did not record the build (partwarden_journal)"
            ),
        }),
        // INVALID: the vector rules drop it (and its entry) and build again.
        Some(i) if !i.valid => None,
        Some(_) => Some(forget(
            e,
            format!("the build of {index} is recorded on the index"),
        )),
        None => Some(forget(
            e,
            format!("{index} does not exist: its build never started or was dropped"),
        )),
    }
}

/// Build records of finished vector builds that the journal holds but the index's comment
/// does not (yet): the vector rules judge such an index by them.
pub(super) fn journaled_builds(snapshot: &TableSnapshot) -> HashMap<String, String> {
    snapshot
        .journal
        .iter()
        .filter_map(|e| match &e.what {
            Journaled::VectorBuild { index, comment, .. } => Some((index.clone(), comment.clone())),
            _ => None,
        })
        .collect()
}
