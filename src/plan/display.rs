//! How plans read in logs and in `partwarden plan`: one line per action, then its reason.

use std::fmt;

use crate::calendar::sql_literal;
use crate::config::{RetentionMode, VectorMethod};

use super::{Action, Plan};

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
                rows,
                bytes,
            } => write!(
                f,
                "{} {partition} {bounds} ({} rows, {})",
                expire_verb(*mode),
                rows.map(|n| n.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                pretty_bytes(*bytes)
            ),
            Action::SyncRls { partition } => write!(f, "sync row-level security of {partition}"),
            Action::RestorePartition {
                partition,
                bounds,
                run_id,
                rows,
                hold_until,
            } => write!(
                f,
                "restore {partition} {bounds} from export {run_id} ({rows} rows), held from expiry until {}",
                sql_literal(*hold_until)
            ),
            Action::BuildIndex {
                partition,
                parent_index,
                index,
            } => write!(f, "build index {index} on {partition} (for {parent_index})"),
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
            } => write_vector_build(f, partition, index, *method, *lists, replaces.as_deref()),
            Action::DropIndex { partition, index } => {
                write!(f, "drop index {index} on {partition}")
            }
            Action::FinishExpiry {
                partition,
                schema,
                mode,
                ..
            } => write!(
                f,
                "finish expiring {schema}.{partition}: {} the detached table",
                finish_verb(*mode)
            ),
            Action::SyncRetiredRls { schema, name, .. } => write!(
                f,
                "sync row-level security of retired table {schema}.{name}"
            ),
            Action::AdoptVectorIndex {
                partition, index, ..
            } => write!(f, "record the build of vector index {index} on {partition}"),
            Action::ForgetJournalEntry { entry, object, .. } => {
                write!(f, "forget journal entry {entry} {object}")
            }
        }
    }
}

/// What an expiry does to the partition, as a verb.
/// Bytes as `pg_size_pretty` prints them (base 1024, rounded, "bytes" below 10 kB).
pub(crate) fn pretty_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    if value.abs() < 10.0 * 1024.0 {
        return format!("{bytes} bytes");
    }
    let mut unit = 0;
    value /= 1024.0;
    while value.abs() >= 10.0 * 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", value.round() as i64, UNITS[unit])
}

fn expire_verb(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Drop => "drop",
        RetentionMode::Detach => "detach",
        RetentionMode::Archive => "archive",
        RetentionMode::Export => "export (then verify and drop)",
    }
}

/// What finishing an expiry does to the table it already detached: detach mode has
/// nothing left to do but keep it.
fn finish_verb(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Drop => "drop",
        RetentionMode::Detach => "keep",
        RetentionMode::Archive => "archive",
        RetentionMode::Export => "export, verify and drop",
    }
}

fn write_vector_build(
    f: &mut fmt::Formatter<'_>,
    partition: &str,
    index: &str,
    method: VectorMethod,
    lists: Option<u32>,
    replaces: Option<&str>,
) -> fmt::Result {
    write!(f, "build {} index {index} on {partition}", method.as_str())?;
    if let Some(l) = lists {
        write!(f, " (lists = {l})")?;
    }
    if let Some(old) = replaces {
        write!(f, ", then drop {old}")?;
    }
    Ok(())
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
