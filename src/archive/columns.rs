//! Which PostgreSQL column types export supports, and the Arrow (Parquet) type each
//! becomes. Pure: the catalog read is in `export.rs`.
//!
//! The mapping keeps every value exactly, so a restore writes back the bytes it read:
//! uuid as 16 bytes with the `arrow.uuid` extension (Parquet's UUID type), timestamptz as
//! UTC microseconds, json/jsonb as JSON text with the `arrow.json` extension (Parquet's
//! JSON type), `vector(n)` as a fixed-size list of n float32.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::extension::{Json, Uuid};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

/// A column's PostgreSQL type, as export reads and restore writes it (the COPY binary
/// "send" format of each is in `binary.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// text, varchar, bpchar, name, citext: UTF-8 text.
    Text,
    Bytea,
    Uuid,
    Date,
    Timestamp,
    Timestamptz,
    Json,
    Jsonb,
    /// pgvector's `vector(dim)`.
    Vector {
        dim: u16,
    },
}

/// One exported column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportColumn {
    pub name: String,
    /// `format_type()`: how PostgreSQL spells it (recorded in the manifest).
    pub pg_type: String,
    pub kind: PgKind,
    pub nullable: bool,
}

/// The kind of a column of base type `typname` (a domain is read as its base type) with
/// type modifier `typmod`; an error naming why export cannot keep it exactly.
pub fn kind_of(typname: &str, typmod: i32) -> Result<PgKind, String> {
    Ok(match typname {
        "bool" => PgKind::Bool,
        "int2" => PgKind::Int2,
        "int4" => PgKind::Int4,
        "int8" => PgKind::Int8,
        "float4" => PgKind::Float4,
        "float8" => PgKind::Float8,
        "text" | "varchar" | "bpchar" | "name" | "citext" => PgKind::Text,
        "bytea" => PgKind::Bytea,
        "uuid" => PgKind::Uuid,
        "date" => PgKind::Date,
        "timestamp" => PgKind::Timestamp,
        "timestamptz" => PgKind::Timestamptz,
        "json" => PgKind::Json,
        "jsonb" => PgKind::Jsonb,
        "vector" => match u16::try_from(typmod) {
            Ok(dim) if dim > 0 => PgKind::Vector { dim },
            _ => {
                return Err(
                    "vector without a dimension (declare it as vector(n) to export it as a fixed-size list)"
                        .into(),
                )
            }
        },
        other => {
            return Err(format!(
                "type {other} is not supported by export (supported: boolean, smallint, integer, \
                 bigint, real, double precision, text/varchar/char, bytea, uuid, date, timestamp, \
                 timestamptz, json, jsonb, vector(n))"
            ))
        }
    })
}

/// The Arrow schema of the exported columns; `metadata` is kept on the schema (and so in
/// the Parquet footer).
pub fn arrow_schema(columns: &[ExportColumn], metadata: HashMap<String, String>) -> Arc<Schema> {
    let fields: Vec<Field> = columns.iter().map(arrow_field).collect();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

fn arrow_field(c: &ExportColumn) -> Field {
    let field = Field::new(&c.name, arrow_type(c.kind), c.nullable);
    match c.kind {
        PgKind::Uuid => field.with_extension_type(Uuid),
        PgKind::Json | PgKind::Jsonb => field.with_extension_type(Json::default()),
        _ => field,
    }
}

pub fn arrow_type(kind: PgKind) -> DataType {
    match kind {
        PgKind::Bool => DataType::Boolean,
        PgKind::Int2 => DataType::Int16,
        PgKind::Int4 => DataType::Int32,
        PgKind::Int8 => DataType::Int64,
        PgKind::Float4 => DataType::Float32,
        PgKind::Float8 => DataType::Float64,
        PgKind::Text | PgKind::Json | PgKind::Jsonb => DataType::Utf8,
        PgKind::Bytea => DataType::Binary,
        PgKind::Uuid => DataType::FixedSizeBinary(16),
        PgKind::Date => DataType::Date32,
        PgKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        PgKind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        PgKind::Vector { dim } => DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, false)),
            i32::from(dim),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ga4_type_has_an_exact_arrow_type_and_others_are_named() {
        assert_eq!(kind_of("vector", 768).unwrap(), PgKind::Vector { dim: 768 });
        assert!(kind_of("vector", -1).unwrap_err().contains("vector(n)"));
        let e = kind_of("numeric", -1).unwrap_err();
        assert!(e.contains("type numeric is not supported"), "{e}");
        let cols = vec![
            ExportColumn {
                name: "tenant_id".into(),
                pg_type: "uuid".into(),
                kind: PgKind::Uuid,
                nullable: false,
            },
            ExportColumn {
                name: "metrics".into(),
                pg_type: "jsonb".into(),
                kind: PgKind::Jsonb,
                nullable: false,
            },
        ];
        let s = arrow_schema(&cols, HashMap::new());
        assert_eq!(s.field(0).data_type(), &DataType::FixedSizeBinary(16));
        assert_eq!(
            s.field(0)
                .metadata()
                .get("ARROW:extension:name")
                .map(String::as_str),
            Some("arrow.uuid")
        );
        assert_eq!(
            s.field(1)
                .metadata()
                .get("ARROW:extension:name")
                .map(String::as_str),
            Some("arrow.json")
        );
    }
}
