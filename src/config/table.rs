//! `[[tables]]`: the managed tables, their partitioning and their retention.

use std::collections::HashMap;

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::export::{export_config, ExportConfig, RawExport};
use super::fields::{ident_at, int_at, parse_at};
use super::values::RetentionMode;
use super::vector_index::{vector_policy, RawVectorIndex, VectorIndexPolicy};
use crate::calendar::{Interval, RetentionPeriod};
use crate::ident::{self, Ident, MAX_IDENT_LEN};

/// The table managed when the file has no `[[tables]]`.
pub const DEFAULT_TABLE: &str = "archon_ga4_events";
/// Its pgvector column.
pub const DEFAULT_VECTOR_COLUMN: &str = "embedding_768";

/// One `[[tables]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TableConfig {
    pub name: Ident,
    /// Default `public`.
    pub schema: Ident,
    /// Partition key column (`timestamptz`). Default `event_timestamp`.
    pub column: Ident,
    /// Default month.
    pub interval: Interval,
    /// Intervals created ahead of the current one (≥ 1). Default 3.
    pub premake: u32,
    /// Default 24 months.
    pub retention: RetentionPeriod,
    /// Default drop.
    pub retention_mode: RetentionMode,
    /// Where `archive` mode moves expired partitions. Default `partwarden_archive`.
    pub archive_schema: Ident,
    /// Cap on partitions expired per run (≥ 1). Default 3.
    pub max_expire_per_run: u32,
    /// Keep a `<name>_default` partition. Default true.
    pub default_partition: bool,
    /// pgvector index policy; `None` = no vector index management.
    pub vector_index: Option<VectorIndexPolicy>,
    /// The store `export` mode writes to (`[tables.export]` over `[export]`); `None` when
    /// neither names one (then `export` mode is refused).
    pub export: Option<ExportConfig>,
}

impl TableConfig {
    /// `"schema"."name"`
    pub fn qualified_name(&self) -> String {
        ident::qualified(&self.schema, self.name.as_str())
    }

    /// `schema.name`, unquoted (logs, metric labels, `--table`).
    pub fn label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Name of the table's default partition: `<name>_default`.
    pub fn default_partition_name(&self) -> String {
        format!("{}_default", self.name)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTable {
    name: Option<String>,
    schema: Option<String>,
    column: Option<String>,
    interval: Option<String>,
    premake: Option<i64>,
    retention: Option<String>,
    retention_mode: Option<String>,
    archive_schema: Option<String>,
    max_expire_per_run: Option<i64>,
    default_partition: Option<bool>,
    vector_index: Option<RawVectorIndex>,
    export: Option<RawExport>,
}

fn default_raw_tables() -> Vec<RawTable> {
    vec![RawTable {
        name: Some(DEFAULT_TABLE.to_owned()),
        vector_index: Some(RawVectorIndex::on_column(DEFAULT_VECTOR_COLUMN)),
        ..Default::default()
    }]
}

pub(super) fn tables_config(
    raw: Option<Vec<RawTable>>,
    shared_export: Option<&RawExport>,
    warnings: &mut Vec<String>,
) -> Result<Vec<TableConfig>, ConfigError> {
    let raw = raw.unwrap_or_else(default_raw_tables);
    if raw.is_empty() {
        return Err(invalid(
            "tables",
            "is empty: configure at least one [[tables]] entry (or omit tables for the default archon_ga4_events)",
        ));
    }
    let mut seen: HashMap<(Ident, Ident), usize> = HashMap::new();
    let mut tables = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let table = table_config(&format!("tables[{i}]"), t, shared_export, warnings)?;
        if let Some(j) = seen.insert((table.schema.clone(), table.name.clone()), i) {
            return Err(invalid(
                format!("tables[{i}].name"),
                format!(
                    "table {} is configured twice (also tables[{j}])",
                    table.label()
                ),
            ));
        }
        tables.push(table);
    }
    Ok(tables)
}

fn table_config(
    p: &str,
    raw: RawTable,
    shared_export: Option<&RawExport>,
    warnings: &mut Vec<String>,
) -> Result<TableConfig, ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let Some(name) = raw.name else {
        return Err(invalid(key("name"), "is required"));
    };
    let name = Ident::new(name).map_err(|e| invalid(key("name"), e.to_string()))?;
    let schema = ident_at(&key("schema"), raw.schema, "public")?;
    let column = ident_at(&key("column"), raw.column, "event_timestamp")?;
    let interval = parse_at(&key("interval"), raw.interval, Interval::Month)?;
    check_partition_names_fit(&key("name"), &name, interval)?;
    let premake = premake_at(&key("premake"), raw.premake, interval)?;
    let retention = retention_at(&key("retention"), raw.retention, interval, premake)?;
    let (retention_mode, archive_schema) =
        expiry_at(p, raw.retention_mode, raw.archive_schema, &schema)?;
    let max_expire_per_run = int_at(
        &key("max_expire_per_run"),
        raw.max_expire_per_run,
        3u32,
        1,
        10_000,
    )?;
    let default_partition = raw.default_partition.unwrap_or(true);
    let export = export_config(&key("export"), raw.export, shared_export)?;
    if retention_mode == RetentionMode::Export && export.is_none() {
        return Err(invalid(
            key("export.url"),
            "is required when retention_mode is export (or set export.url for every table)",
        ));
    }
    let vector_index = match raw.vector_index {
        None => None,
        Some(v) => Some(vector_policy(&key("vector_index"), v, &column, warnings)?),
    };
    Ok(TableConfig {
        name,
        schema,
        column,
        interval,
        premake,
        retention,
        retention_mode,
        archive_schema,
        max_expire_per_run,
        default_partition,
        vector_index,
        export,
    })
}

/// Partition names are the table's name plus a suffix per interval; PostgreSQL would
/// truncate a longer name, and with it the suffix that tells partitions apart.
fn check_partition_names_fit(
    key: &str,
    name: &Ident,
    interval: Interval,
) -> Result<(), ConfigError> {
    let longest = name.as_str().len() + interval.max_suffix_len();
    if longest > MAX_IDENT_LEN {
        return Err(invalid(
            key,
            format!(
                "{:?} is too long for {} partitions: with the suffix (e.g. {:?}) partition names would be {} bytes; \
                 PostgreSQL identifiers are at most {MAX_IDENT_LEN}, so the name can be at most {} bytes",
                name.as_str(),
                interval,
                interval.suffix(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH),
                longest,
                MAX_IDENT_LEN - interval.max_suffix_len()
            ),
        ));
    }
    Ok(())
}

fn premake_at(key: &str, raw: Option<i64>, interval: Interval) -> Result<u32, ConfigError> {
    // At most ten years ahead: more is a typo, and every interval is a CREATE per run.
    let premake_cap = match interval {
        Interval::Month => 120,
        Interval::Week => 520,
        Interval::Day => 3660,
    };
    if let Some(n) = raw.filter(|n| *n > premake_cap) {
        return Err(invalid(
            key,
            format!("must be at most {premake_cap} (ten years of {interval}s; got {n})"),
        ));
    }
    int_at(key, raw, 3u32, 1, premake_cap)
}

fn retention_at(
    key: &str,
    raw: Option<String>,
    interval: Interval,
    premake: u32,
) -> Result<RetentionPeriod, ConfigError> {
    let retention = parse_at(key, raw, RetentionPeriod::Months(24))?;
    if let Some(cap) = retention.over_cap() {
        return Err(invalid(
            key,
            format!("\"{retention}\" is longer than 100 years; at most {cap}"),
        ));
    }
    if retention.shorter_than(interval, premake) {
        return Err(invalid(
            key,
            format!(
                "\"{retention}\" is shorter than premake = {premake} ({premake} {interval}{}): retention must \
                 cover at least as long as the partitions premake keeps ahead",
                if premake == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(retention)
}

/// `retention_mode`, and the `archive_schema` that archive mode moves partitions to.
fn expiry_at(
    p: &str,
    retention_mode: Option<String>,
    archive_schema: Option<String>,
    schema: &Ident,
) -> Result<(RetentionMode, Ident), ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let retention_mode = parse_at(&key("retention_mode"), retention_mode, RetentionMode::Drop)?;
    let archive_schema = ident_at(&key("archive_schema"), archive_schema, "partwarden_archive")?;
    if retention_mode == RetentionMode::Archive && &archive_schema == schema {
        return Err(invalid(
            key("archive_schema"),
            format!(
                "must differ from {} ({schema}) when retention_mode is archive",
                key("schema")
            ),
        ));
    }
    Ok((retention_mode, archive_schema))
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{invalid_key, load, table};

    /// Issue 10.6 and 10.9: values that would make the planner do absurd or impossible
    /// work are capped, and the caps are named.
    #[test]
    fn caps_named() {
        let msg = invalid_key(&table("premake = 10000"), "tables[0].premake");
        assert!(msg.contains("at most 120"), "{msg}");
        load(&table("premake = 120\nretention = \"121 months\"")).unwrap();
        let msg = invalid_key(
            &table("interval = \"day\"\npremake = 4000\nretention = \"5000 days\""),
            "tables[0].premake",
        );
        assert!(msg.contains("at most 3660"), "{msg}");
        let msg = invalid_key(
            &table("retention = \"4294967295 months\""),
            "tables[0].retention",
        );
        assert!(msg.contains("1200 months"), "{msg}");
        invalid_key(&table("retention = \"40000 days\""), "tables[0].retention");
        load(&table("retention = \"1200 months\"")).unwrap();
        invalid_key(
            "[database]\nmax_connections = 101\n",
            "database.max_connections",
        );
        invalid_key("[database]\nddl_attempts = 101\n", "database.ddl_attempts");
    }

    #[test]
    fn table_validation() {
        assert_eq!(
            invalid_key(&table("premake = 0"), "tables[0].premake"),
            "tables[0].premake: must be at least 1 (got 0)"
        );
        invalid_key(&table("premake = -2"), "tables[0].premake");
        invalid_key(
            &table("max_expire_per_run = 0"),
            "tables[0].max_expire_per_run",
        );
        let msg = invalid_key(
            &table("premake = 3\nretention = \"2 months\""),
            "tables[0].retention",
        );
        assert!(msg.contains("premake"), "{msg}");
        invalid_key(
            &table("interval = \"week\"\npremake = 5\nretention = \"4 weeks\""),
            "tables[0].retention",
        );
        load(&table(
            "interval = \"day\"\npremake = 3\nretention = \"3 days\"",
        ))
        .unwrap();
        invalid_key(&table("retention = \"forever\""), "tables[0].retention");
        invalid_key(&table("interval = \"year\""), "tables[0].interval");
        invalid_key(
            &table("retention_mode = \"truncate\""),
            "tables[0].retention_mode",
        );
        let msg = invalid_key(
            &table("retention_mode = \"archive\"\narchive_schema = \"public\""),
            "tables[0].archive_schema",
        );
        assert!(msg.contains("must differ"), "{msg}");
        load(&table(
            "retention_mode = \"detach\"\narchive_schema = \"public\"",
        ))
        .unwrap();
        invalid_key("[[tables]]\nschema = \"x\"\n", "tables[0].name");
        invalid_key("tables = []\n", "tables");
        let dup = format!("{}{}", table(""), table(""));
        let msg = invalid_key(&dup, "tables[1].name");
        assert!(
            msg.contains("public.events") && msg.contains("tables[0]"),
            "{msg}"
        );
        load(&format!("{}{}", table(""), table("schema = \"other\""))).unwrap();
    }

    #[test]
    fn identifier_validation() {
        let msg = invalid_key(
            &table("").replace("events", "events; drop table x"),
            "tables[0].name",
        );
        assert!(
            msg.contains("\"events; drop table x\" is not a valid identifier"),
            "{msg}"
        );
        invalid_key(&table("schema = \"Public\""), "tables[0].schema");
        invalid_key(&table("column = \"event-ts\""), "tables[0].column");
        invalid_key(&table("archive_schema = \"\""), "tables[0].archive_schema");
        invalid_key(
            &table("[tables.vector_index]\ncolumn = \"1emb\""),
            "tables[0].vector_index.column",
        );
        invalid_key(
            &table("[tables.vector_index]\nopclass = \"a b\""),
            "tables[0].vector_index.opclass",
        );
        invalid_key(
            &table("[tables.vector_index]\ncolumn = \"event_timestamp\""),
            "tables[0].vector_index.column",
        );
        // The name must leave room for the partition suffix.
        let name55 = "a".repeat(55); // + "_YYYY_MM" (8) = 63: fits monthly
        load(&format!("[[tables]]\nname = \"{name55}\"\n")).unwrap();
        let msg = invalid_key(
            &format!("[[tables]]\nname = \"{name55}\"\ninterval = \"day\"\n"),
            "tables[0].name",
        );
        assert!(
            msg.contains("66 bytes") && msg.contains("at most 52"),
            "{msg}"
        );
        let name56 = "a".repeat(56);
        invalid_key(
            &format!("[[tables]]\nname = \"{name56}\"\n"),
            "tables[0].name",
        );
        invalid_key(
            &format!("[[tables]]\nname = \"{}\"\n", "a".repeat(64)),
            "tables[0].name",
        );
    }
}
