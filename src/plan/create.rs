//! Rules 2 and 3: the default partition, and a partition for every interval of the
//! premake window.

use chrono::{DateTime, Utc};

use crate::calendar::{self, PartitionBounds};
use crate::catalog::{Partition, TableSnapshot};
use crate::config::TableConfig;

use super::{Action, Plan};

/// The default partition, when the table should have one and has none.
pub(super) fn default_partition(table: &TableConfig, snapshot: &TableSnapshot, plan: &mut Plan) {
    if table.default_partition && snapshot.default_partition.is_none() {
        plan.push(
            Action::CreateDefaultPartition { partition: table.default_partition_name() },
            "default_partition = true: rows outside every partition must land somewhere instead of failing".into(),
        );
    }
}

/// Every interval from the current one through +`premake` that no attached partition
/// covers. One that an existing partition covers in part is reported, never overlapped.
pub(super) fn premake(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    attached: &[&Partition],
    plan: &mut Plan,
) {
    let window = calendar::premake_window(table.interval, plan.now, table.premake);
    for (k, bounds) in window.iter().enumerate() {
        let reason = premake_reason(table, snapshot, bounds, k);
        create_unless_covered(table, attached, bounds, reason, plan);
    }
}

/// Plans the partition of `bounds` unless an attached partition has it already; one that
/// covers part of it is reported, never overlapped.
fn create_unless_covered(
    table: &TableConfig,
    attached: &[&Partition],
    bounds: &PartitionBounds,
    reason: String,
    plan: &mut Plan,
) {
    if attached.iter().any(|p| p.bounds == Some(*bounds)) {
        return;
    }
    if let Some(other) = attached
        .iter()
        .find(|p| p.bounds.is_some_and(|b| b.overlaps(bounds)))
    {
        plan.notes.push(format!(
            "{bounds} is not created: it overlaps existing partition {} {}",
            other.name, other.bound_expr
        ));
        return;
    }
    let name = calendar::partition_name(table.name.as_str(), table.interval, bounds.from);
    plan.push(
        Action::CreatePartition {
            partition: name,
            bounds: *bounds,
        },
        reason,
    );
}

/// Why the `k`th interval of the window (0: the current one) gets a partition. Rows that
/// move with it are named only when a census counted them: a claim made from an estimate
/// would be wrong as often as not.
fn premake_reason(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    bounds: &PartitionBounds,
    k: usize,
) -> String {
    let which = if k == 0 {
        format!("the current {} has no partition", table.interval)
    } else {
        format!(
            "premake = {}: {} {k} of {} ahead has no partition",
            table.premake, table.interval, table.premake
        )
    };
    match snapshot.default_census.as_ref().map(|c| c.rows_in(bounds)) {
        Some(n) if n > 0 => {
            format!("{which}; its {n} row(s) waiting in the default partition move into it")
        }
        _ => which,
    }
}

/// `maintain --backfill` (the snapshot carries a census of the default partition): a
/// partition for every past interval whose rows wait in the default partition, and for
/// every interval of a gap between partitions, from the retention cutoff up to the
/// premake window (which rule 3 covers). Rows older than the cutoff, and rows beyond the
/// window, stay where they are: a partition would expire at once, or be a far-future
/// partition made from what may be one bad timestamp.
pub(super) fn backfill(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    attached: &[&Partition],
    plan: &mut Plan,
) {
    let Some(census) = &snapshot.default_census else {
        return;
    };
    let window_start = table.interval.floor(plan.now);
    let mut ranges: Vec<(PartitionBounds, u64)> = census
        .ranges
        .iter()
        .filter(|r| r.bounds.to > plan.cutoff && r.bounds.from < window_start)
        .map(|r| (r.bounds, r.rows))
        .collect();
    // Gaps among the partitions there will be, those this backfill creates included.
    let mut will_have = bounds_of(attached);
    will_have.extend(ranges.iter().map(|(b, _)| *b));
    for gap in gaps(will_have, window_start) {
        for bounds in intervals_of(table, &gap) {
            if bounds.to > plan.cutoff && !ranges.iter().any(|(b, _)| *b == bounds) {
                ranges.push((bounds, 0));
            }
        }
    }
    ranges.sort_by_key(|(b, _)| b.from);
    for (bounds, rows) in ranges {
        let reason = if rows > 0 {
            format!(
                "--backfill: {rows} row(s) of this past {} wait in the default partition; they move into it",
                table.interval
            )
        } else {
            format!(
                "--backfill: this {} is a gap between partitions",
                table.interval
            )
        };
        create_unless_covered(table, attached, &bounds, reason, plan);
    }
}

fn bounds_of(attached: &[&Partition]) -> Vec<PartitionBounds> {
    attached.iter().filter_map(|p| p.bounds).collect()
}

/// The ranges between partitions (`bounds`) that none covers, from the first one's lower
/// bound up to `until`.
fn gaps(mut bounds: Vec<PartitionBounds>, until: DateTime<Utc>) -> Vec<PartitionBounds> {
    bounds.sort_by_key(|b| b.from);
    let mut gaps = Vec::new();
    let Some(first) = bounds.first() else {
        return gaps;
    };
    let mut covered_to = first.to;
    for b in &bounds[1..] {
        if b.from > covered_to {
            gaps.push(PartitionBounds {
                from: covered_to,
                to: b.from.min(until),
            });
        }
        covered_to = covered_to.max(b.to);
    }
    if covered_to < until {
        gaps.push(PartitionBounds {
            from: covered_to,
            to: until,
        });
    }
    gaps.retain(|g| g.from < g.to);
    gaps
}

/// The whole intervals inside `range` (a gap's edges may be unaligned when partitions are).
fn intervals_of(table: &TableConfig, range: &PartitionBounds) -> Vec<PartitionBounds> {
    let mut out = Vec::new();
    let mut from = table.interval.floor(range.from);
    if from < range.from {
        from = table.interval.shift(from, 1);
    }
    // A gap in the far past of a daily table is bounded by what the caller keeps (the
    // retention cutoff); this cap only stops a loop over chrono's whole range.
    while out.len() < 100_000 {
        let b = table.interval.bounds_from(from);
        if b.to > range.to || b.from >= b.to {
            break;
        }
        out.push(b);
        from = b.to;
    }
    out
}

/// Gaps between partitions inside the retention period are reported: inserts there land in
/// the default partition (or fail), and nothing creates their partitions on its own.
pub(super) fn gap_notes(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    attached: &[&Partition],
    plan: &Plan,
    notes: &mut Vec<String>,
) {
    let planned: Vec<PartitionBounds> = plan
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::CreatePartition { bounds, .. } => Some(*bounds),
            _ => None,
        })
        .collect();
    let window_start = table.interval.floor(plan.now);
    for gap in gaps(bounds_of(attached), window_start) {
        if gap.to <= plan.cutoff || planned.iter().any(|b| gap.from <= b.from && b.to <= gap.to) {
            continue;
        }
        let lands = if snapshot.default_partition.is_some() {
            "inserts there go to the default partition"
        } else {
            "inserts there fail (there is no default partition)"
        };
        notes.push(format!(
            "gap: no partition covers {} .. {}: {lands}; `partwarden maintain --backfill` creates its partitions",
            calendar::sql_literal(gap.from),
            calendar::sql_literal(gap.to)
        ));
    }
}

/// What the default partition holds, told as exactly as it is known: counted by a census
/// (`--backfill`), or the estimate of its last ANALYZE, or unknown (never analyzed).
pub(super) fn default_rows_note(
    table: &TableConfig,
    snapshot: &TableSnapshot,
    plan: &Plan,
    notes: &mut Vec<String>,
) {
    let Some(d) = &snapshot.default_partition else {
        return;
    };
    let Some(census) = &snapshot.default_census else {
        match d.rows_known() {
            Some(0) => {}
            Some(n) => notes.push(format!(
                "about {n} row(s) in the default partition {} (estimate of its last ANALYZE): rows of a range \
                 that gets a partition move into it. `partwarden maintain --backfill --dry-run` counts them \
                 by {} and shows the partitions it would create for past ones",
                d.name, table.interval
            )),
            None => notes.push(format!(
                "the default partition {} holds rows but was never analyzed: how many is unknown. \
                 `partwarden maintain --backfill --dry-run` counts them",
                d.name
            )),
        }
        return;
    };
    let total = census.total();
    if total == 0 {
        notes.push(format!(
            "the default partition {} is empty (counted)",
            d.name
        ));
        return;
    }
    let moving: u64 = plan
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::CreatePartition { bounds, .. } => Some(census.rows_in(bounds)),
            _ => None,
        })
        .sum();
    let window_end = calendar::premake_window(table.interval, plan.now, table.premake)
        .last()
        .map(|b| b.to)
        .unwrap_or(plan.now);
    let older: u64 = census
        .ranges
        .iter()
        .filter(|r| r.bounds.to <= plan.cutoff)
        .map(|r| r.rows)
        .sum();
    let beyond: u64 = census
        .ranges
        .iter()
        .filter(|r| r.bounds.from >= window_end)
        .map(|r| r.rows)
        .sum();
    let mut parts = vec![format!(
        "{moving} move into the partitions this run creates"
    )];
    if older > 0 {
        parts.push(format!(
            "{older} are older than the retention cutoff {} and stay (a partition would expire at once)",
            calendar::sql_literal(plan.cutoff)
        ));
    }
    if beyond > 0 {
        parts.push(format!(
            "{beyond} are beyond the premake window (from {}) and stay",
            calendar::sql_literal(window_end)
        ));
    }
    if census.unplaceable > 0 {
        parts.push(format!(
            "{} have a NULL or infinite {} and can never move",
            census.unplaceable, table.column
        ));
    }
    let other = total.saturating_sub(moving + older + beyond + census.unplaceable);
    if other > 0 {
        parts.push(format!(
            "{other} stay for another reason (see the notes above)"
        ));
    }
    notes.push(format!(
        "{total} row(s) in the default partition {} (counted): {}",
        d.name,
        parts.join("; ")
    ));
}
