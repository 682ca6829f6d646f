//! Rules 2 and 3: the default partition, and a partition for every interval of the
//! premake window.

use crate::calendar;
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
        plan.push(
            Action::CreatePartition {
                partition: name,
                bounds: *bounds,
            },
            premake_reason(table, snapshot, k),
        );
    }
}

/// Why the `k`th interval of the window (0: the current one) gets a partition.
fn premake_reason(table: &TableConfig, snapshot: &TableSnapshot, k: usize) -> String {
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
    format!("{which}{moving}")
}

/// Rows in the default partition are worth knowing about: premake only ever moves those
/// of the window, so the rest wait there.
pub(super) fn default_rows_note(snapshot: &TableSnapshot, notes: &mut Vec<String>) {
    if let Some(d) = &snapshot.default_partition {
        if d.rows_estimate > 0.0 {
            notes.push(format!(
                "about {} row(s) in the default partition {}: rows of a month that gets a partition move there; \
                 rows beyond the premake window stay (and are exported as partwarden_default_partition_rows)",
                d.rows(),
                d.name
            ));
        }
    }
}
