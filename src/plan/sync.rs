//! Rules 5 and 6: the partitions that stay are brought in line with their parent — its
//! row-level security, and every one of its indexes, valid.

use crate::catalog::{ParentIndex, Partition, RlsState};

use super::{child_index_name, rls, Action, Plan};

/// A partition whose RLS is off, not forced, or whose policies differ from the parent's
/// is given the parent's.
pub(super) fn sync_rls(parent_rls: &RlsState, staying: &[&Partition], plan: &mut Plan) {
    for p in staying {
        let drift = rls::drift(parent_rls, &p.rls(), "partition");
        if !drift.is_empty() {
            plan.push(
                Action::SyncRls {
                    partition: p.name.clone(),
                },
                drift.join("; "),
            );
        }
    }
}

/// Every partition has every index of the parent, none INVALID, and no leftovers of an
/// interrupted rebuild.
pub(super) fn sync_indexes(
    parent_indexes: &[ParentIndex],
    staying: &[&Partition],
    plan: &mut Plan,
) {
    for p in staying {
        for pi in parent_indexes {
            parent_index(p, pi, plan);
        }
        reindex_leftovers(p, plan);
    }
}

/// The partition's counterpart of one parent index: built when missing, rebuilt when
/// INVALID — unless a build is under way, whose index is INVALID until it ends. A
/// constraint's index is ATTACH's to build, so it is only reported.
fn parent_index(p: &Partition, pi: &ParentIndex, plan: &mut Plan) {
    match p.indexes.iter().find(|i| i.parent_index == Some(pi.oid)) {
        Some(i) if !i.valid && i.building => plan.notes.push(building_note(p, &i.name)),
        Some(i) if !i.valid => plan.push(
            Action::RepairIndex {
                partition: p.name.clone(),
                index: i.name.clone(),
            },
            format!(
                "index {} is INVALID (a failed or cancelled concurrent build); queries ignore it",
                i.name
            ),
        ),
        Some(_) => {}
        None if pi.is_constraint => plan.notes.push(format!(
            "{} has no index for constraint index {}: re-attach the partition to rebuild it",
            p.name, pi.name
        )),
        None => plan.push(
            Action::BuildIndex {
                partition: p.name.clone(),
                parent_index: pi.name.clone(),
                index: child_index_name(&p.name, &pi.name),
            },
            format!("parent index {} has no counterpart on {}", pi.name, p.name),
        ),
    }
}

fn building_note(p: &Partition, index: &str) -> String {
    format!(
        "{}: index {index} is being built (pg_stat_progress_create_index): INVALID until the build \
         ends, left alone",
        p.name
    )
}

/// An interrupted REINDEX CONCURRENTLY (a repair above) leaves its new or old copy
/// behind, INVALID: dropped, or it would stay forever. A copy a REINDEX under way is
/// making is not a leftover.
fn reindex_leftovers(p: &Partition, plan: &mut Plan) {
    for i in p
        .indexes
        .iter()
        .filter(|i| !i.valid && !i.building && i.parent_index.is_none())
    {
        if reindex_leftover(&i.name, p) {
            plan.push(
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
