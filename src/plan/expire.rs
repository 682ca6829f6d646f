//! Rules 1 and 4: detaches an interrupted run left pending, and the expiry of partitions
//! past the retention cutoff (what the journal says is unfinished is in `journal.rs`).

use crate::calendar::sql_literal;
use crate::catalog::{Partition, RlsState, TableSnapshot};
use crate::config::TableConfig;

use super::{rls, Action, Plan};

/// Partitions left "detach pending" are finalized.
pub(super) fn finalize_detaches(snapshot: &TableSnapshot, plan: &mut Plan) {
    for p in snapshot.partitions.iter().filter(|p| p.detach_pending) {
        plan.push(
            Action::FinalizeDetach {
                partition: p.name.clone(),
            },
            "left \"detach pending\" by an interrupted DETACH PARTITION … CONCURRENTLY".into(),
        );
    }
}

/// The partitions this run expires: those whose upper bound is at or before the cutoff,
/// oldest first, at most `max_expire_per_run`; the rest wait (noted).
///
/// One that an interrupted expiry left "detach pending" comes first, and is expired again
/// (the executor finalizes the detach, or finds it finalized by rule 1, then drops or
/// archives): finalizing alone would leave a standalone table that no later run sees, so
/// it would never be dropped or archived.
pub(super) fn expiring<'a>(
    table: &TableConfig,
    snapshot: &'a TableSnapshot,
    plan: &mut Plan,
) -> Vec<&'a Partition> {
    let cutoff = plan.cutoff;
    let held = held_partitions(snapshot, plan.now);
    let mut expired: Vec<&Partition> = snapshot
        .partitions
        .iter()
        .filter(|p| p.bounds.is_some_and(|b| b.to <= cutoff))
        .filter(|p| !held.iter().any(|(name, _)| *name == p.name))
        .collect();
    for (name, until) in held {
        if snapshot
            .find(name)
            .is_some_and(|p| p.bounds.is_some_and(|b| b.to <= cutoff))
        {
            plan.notes.push(format!(
                "{name} is past retention but was restored by `partwarden restore`: it is not expired before {}",
                sql_literal(until)
            ));
        }
    }
    expired.sort_by_key(|p| (!p.detach_pending, p.bounds.map(|b| b.from)));
    let cap = table.max_expire_per_run as usize;
    if expired.len() > cap {
        plan.notes.push(format!(
            "{} more partition(s) past retention wait for later runs (max_expire_per_run = {cap})",
            expired.len() - cap
        ));
    }
    expired.truncate(cap);
    expired
}

/// Partitions `partwarden restore` put on hold (journal), and until when.
fn held_partitions(
    snapshot: &TableSnapshot,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(&str, chrono::DateTime<chrono::Utc>)> {
    snapshot
        .journal
        .iter()
        .filter_map(|e| match &e.what {
            crate::catalog::Journaled::Hold { partition, until } if *until > now => {
                Some((partition.as_str(), *until))
            }
            _ => None,
        })
        .collect()
}

/// One expiry per partition of `expiring`, in that order.
pub(super) fn expire(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    expiring: &[&Partition],
    plan: &mut Plan,
) {
    let parent_rls = snapshot.rls();
    let cutoff = plan.cutoff;
    for p in expiring {
        let Some(bounds) = p.bounds else { continue };
        plan.push(
            Action::ExpirePartition {
                partition: p.name.clone(),
                bounds,
                mode: table.retention_mode,
                rows: p.rows_known(),
                bytes: p.total_bytes,
            },
            format!(
                "upper bound {} is at or before the retention cutoff {} (retention {}){}",
                sql_literal(bounds.to),
                sql_literal(cutoff),
                table.retention,
                rls_repair(&parent_rls, p)
            ),
        );
    }
}

/// A partition leaves the table with the parent's row-level security: the expiry repairs
/// any drift first (a detached or archived table keeps what it leaves with). Empty when
/// there is none.
fn rls_repair(parent_rls: &RlsState, p: &Partition) -> String {
    let drift = rls::drift(parent_rls, &p.rls(), "partition");
    if drift.is_empty() {
        String::new()
    } else {
        format!(
            "; its row-level security is repaired first ({})",
            drift.join("; ")
        )
    }
}
