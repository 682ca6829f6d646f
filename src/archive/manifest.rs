//! What an export wrote, where: the object names and the manifest. Pure.
//!
//! Objects of one export are under
//! `<prefix>/<schema>.<table>/<partition>_<from>_<to>/<run id>/`: `part-00000.parquet`, …,
//! and `manifest.json`, written last. A run directory without a manifest, or with one
//! that no row of `partwarden_exports` records, is what an interrupted export left: the
//! next export of the partition deletes it before it writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::columns::ExportColumn;
use crate::calendar::PartitionBounds;

pub const FORMAT: &str = "partwarden-export/1";
pub const MANIFEST_NAME: &str = "manifest.json";

/// One Parquet object of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportObject {
    /// Its name inside the run directory.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the object's bytes, hex.
    pub sha256: String,
}

/// The manifest: a JSON object beside the data, and the `manifest` of its
/// `partwarden_exports` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// `schema.table`
    pub table: String,
    pub partition: String,
    pub bounds: PartitionBounds,
    pub run_id: String,
    /// The store URL and the run directory inside it.
    pub store: String,
    pub directory: String,
    pub rows: u64,
    /// Parquet bytes, all objects.
    pub bytes: u64,
    /// `pg_total_relation_size` of the partition when it was exported.
    pub source_bytes: i64,
    /// SHA-256 of the partition's rows as `COPY (FORMAT binary)` sent them: a restore that
    /// loads them reads them back the same way and compares.
    pub copy_sha256: String,
    pub objects: Vec<ExportObject>,
    pub columns: Vec<ExportColumn>,
    pub server_version: String,
    pub partwarden_version: String,
    pub exported_at: DateTime<Utc>,
}

/// `<schema>.<table>`: the table's directory.
pub fn table_dir(table_label: &str) -> String {
    table_label.to_string()
}

/// `<partition>_<from>_<to>`: a partition's directory, its bounds in UTC.
pub fn partition_dir(partition: &str, bounds: &PartitionBounds) -> String {
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    format!("{partition}_{}_{}", stamp(bounds.from), stamp(bounds.to))
}

pub fn object_name(n: usize) -> String {
    format!("part-{n:05}.parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_table_the_bounds_and_the_run() {
        let b = PartitionBounds {
            from: "2024-01-01T00:00:00Z".parse().unwrap(),
            to: "2024-02-01T00:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            partition_dir("archon_ga4_events_2024_01", &b),
            "archon_ga4_events_2024_01_20240101T000000Z_20240201T000000Z"
        );
        assert_eq!(object_name(3), "part-00003.parquet");
    }
}
