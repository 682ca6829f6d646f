//! `tables[].vector_index`: when and how each partition's pgvector index is built.

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::fields::{ident_at, int_at, parse_at};
use super::table::DEFAULT_VECTOR_COLUMN;
use super::values::{parse_memory_kb, ListsSetting, VectorMethod};
use crate::ident::Ident;

/// `tables[].vector_index`
#[derive(Debug, Clone, PartialEq)]
pub struct VectorIndexPolicy {
    /// Default `embedding_768`.
    pub column: Ident,
    /// Default ivfflat.
    pub method: VectorMethod,
    /// Default `vector_cosine_ops`.
    pub opclass: Ident,
    /// Vectors (rows whose vector column is not NULL) a partition must hold before its
    /// index is built. Default 10000.
    pub min_rows: u64,
    /// ivfflat `lists`. Default auto.
    pub lists: ListsSetting,
    /// HNSW `m`. Default 16.
    pub m: u32,
    /// HNSW `ef_construction`. Default 64.
    pub ef_construction: u32,
    /// Rebuild once vectors have grown by this factor since the build (> 1). Default 2.0.
    pub rebuild_growth_factor: f64,
    /// Rebuild once more when the partition's interval closes. Default true.
    pub rebuild_on_close: bool,
    /// Ceiling for the session's `maintenance_work_mem` during a build, normalised
    /// (`"2GB"`). Default `2GB`.
    pub max_maintenance_work_mem: String,
}

impl VectorIndexPolicy {
    /// [`VectorIndexPolicy::max_maintenance_work_mem`] in kB.
    pub fn max_maintenance_work_mem_kb(&self) -> u64 {
        parse_memory_kb(&self.max_maintenance_work_mem).expect("validated at load")
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawVectorIndex {
    column: Option<String>,
    method: Option<String>,
    opclass: Option<String>,
    min_rows: Option<i64>,
    /// `"auto"` or an integer; the config crate hands integers over as their text.
    lists: Option<String>,
    m: Option<i64>,
    ef_construction: Option<i64>,
    rebuild_growth_factor: Option<f64>,
    rebuild_on_close: Option<bool>,
    max_maintenance_work_mem: Option<String>,
}

impl RawVectorIndex {
    /// A section that sets only the vector column, as the default table's does.
    pub(super) fn on_column(column: &str) -> RawVectorIndex {
        RawVectorIndex {
            column: Some(column.to_owned()),
            ..Default::default()
        }
    }
}

pub(super) fn vector_policy(
    p: &str,
    raw: RawVectorIndex,
    partition_column: &Ident,
    warnings: &mut Vec<String>,
) -> Result<VectorIndexPolicy, ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let column = vector_column_at(&key("column"), raw.column, partition_column)?;
    let method = parse_at(&key("method"), raw.method, VectorMethod::Ivfflat)?;
    let opclass = ident_at(&key("opclass"), raw.opclass, "vector_cosine_ops")?;
    let min_rows = min_rows_at(&key("min_rows"), raw.min_rows, method)?;
    let lists = match raw.lists {
        None => ListsSetting::Auto,
        Some(s) => s.parse().map_err(|m: String| invalid(key("lists"), m))?,
    };
    let (m, ef_construction) = hnsw_at(p, raw.m, raw.ef_construction)?;
    let rebuild_growth_factor =
        growth_factor_at(&key("rebuild_growth_factor"), raw.rebuild_growth_factor)?;
    let rebuild_on_close = raw.rebuild_on_close.unwrap_or(true);
    let max_maintenance_work_mem = work_mem_at(
        &key("max_maintenance_work_mem"),
        raw.max_maintenance_work_mem,
    )?;
    if let (VectorMethod::Ivfflat, ListsSetting::Fixed(n)) = (method, lists) {
        if min_rows < u64::from(n) {
            warnings.push(format!(
                "{}: {min_rows} is below lists = {n}: an ivfflat index trained on fewer vectors than lists has poor recall",
                key("min_rows")
            ));
        }
    }
    Ok(VectorIndexPolicy {
        column,
        method,
        opclass,
        min_rows,
        lists,
        m,
        ef_construction,
        rebuild_growth_factor,
        rebuild_on_close,
        max_maintenance_work_mem,
    })
}

fn vector_column_at(
    key: &str,
    raw: Option<String>,
    partition_column: &Ident,
) -> Result<Ident, ConfigError> {
    let column = ident_at(key, raw, DEFAULT_VECTOR_COLUMN)?;
    if &column == partition_column {
        return Err(invalid(
            key,
            format!("{column} is the partition column, not a vector column"),
        ));
    }
    Ok(column)
}

fn min_rows_at(key: &str, raw: Option<i64>, method: VectorMethod) -> Result<u64, ConfigError> {
    // ivfflat trains its lists on the rows present; HNSW can be built on no rows.
    let min_rows_min = if method == VectorMethod::Ivfflat {
        1
    } else {
        0
    };
    int_at(key, raw, 10_000u64, min_rows_min, i64::MAX)
}

/// `m` and `ef_construction`, within pgvector's limits for HNSW.
fn hnsw_at(
    p: &str,
    m: Option<i64>,
    ef_construction: Option<i64>,
) -> Result<(u32, u32), ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let m = int_at(&key("m"), m, 16u32, 2, 100)?;
    let ef_construction = int_at(&key("ef_construction"), ef_construction, 64u32, 4, 1_000)?;
    if ef_construction < 2 * m {
        return Err(invalid(
            key("ef_construction"),
            format!(
                "must be at least 2 × m = {} (got {ef_construction}), pgvector's rule",
                2 * m
            ),
        ));
    }
    Ok((m, ef_construction))
}

fn growth_factor_at(key: &str, raw: Option<f64>) -> Result<f64, ConfigError> {
    let rebuild_growth_factor = raw.unwrap_or(2.0);
    if !(rebuild_growth_factor.is_finite() && rebuild_growth_factor > 1.0) {
        return Err(invalid(
            key,
            format!("must be greater than 1.0 (got {rebuild_growth_factor})"),
        ));
    }
    Ok(rebuild_growth_factor)
}

/// The size, normalised without spaces (`"64 MB"` becomes `"64MB"`).
fn work_mem_at(key: &str, raw: Option<String>) -> Result<String, ConfigError> {
    let mem = raw.unwrap_or_else(|| "2GB".to_owned());
    parse_memory_kb(&mem).map_err(|m| invalid(key, m))?;
    Ok(mem.split_whitespace().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{invalid_key, load, table};
    use crate::config::Config;

    #[test]
    fn vector_index_validation() {
        let vi = |s: &str| table(&format!("[tables.vector_index]\n{s}"));
        let k = |s: &str| format!("tables[0].vector_index.{s}");
        invalid_key(&vi("method = \"flat\""), &k("method"));
        invalid_key(&vi("lists = 0"), &k("lists"));
        invalid_key(&vi("lists = \"many\""), &k("lists"));
        invalid_key(&vi("lists = 40000"), &k("lists"));
        invalid_key(&vi("lists = 1.5"), &k("lists"));
        assert_eq!(
            load(&vi("lists = \"AUTO\"")).unwrap().tables[0]
                .vector_index
                .as_ref()
                .unwrap()
                .lists,
            ListsSetting::Auto
        );
        assert_eq!(
            load(&vi("lists = \"50\"")).unwrap().tables[0]
                .vector_index
                .as_ref()
                .unwrap()
                .lists,
            ListsSetting::Fixed(50)
        );
        let msg = invalid_key(
            &vi("rebuild_growth_factor = 1.0"),
            &k("rebuild_growth_factor"),
        );
        assert!(msg.contains("greater than 1"), "{msg}");
        invalid_key(
            &vi("rebuild_growth_factor = 0.5"),
            &k("rebuild_growth_factor"),
        );
        invalid_key(
            &vi("rebuild_growth_factor = nan"),
            &k("rebuild_growth_factor"),
        );
        invalid_key(
            &vi("rebuild_growth_factor = inf"),
            &k("rebuild_growth_factor"),
        );
        invalid_key(&vi("min_rows = -1"), &k("min_rows"));
        invalid_key(&vi("min_rows = 0"), &k("min_rows")); // ivfflat needs data
        invalid_key(&vi("m = 1"), &k("m"));
        invalid_key(&vi("ef_construction = 20"), &k("ef_construction")); // < 2 × 16
        for bad in ["2G", "2gb", "lots", "512kB", "0MB", "3TB", "GB"] {
            invalid_key(
                &vi(&format!("max_maintenance_work_mem = \"{bad}\"")),
                &k("max_maintenance_work_mem"),
            );
        }
        let c = load(&vi("max_maintenance_work_mem = \"64 MB\"")).unwrap();
        assert_eq!(
            c.tables[0]
                .vector_index
                .as_ref()
                .unwrap()
                .max_maintenance_work_mem,
            "64MB"
        );
        let c = load(&vi("lists = 500\nmin_rows = 100")).unwrap();
        assert!(
            c.warnings().iter().any(|w| w.contains("min_rows")),
            "{:?}",
            c.warnings()
        );
        // Defaults inside an explicitly given section.
        let c = load(&vi("")).unwrap();
        let v = c.tables[0].vector_index.as_ref().unwrap();
        assert_eq!(
            v,
            Config::default().tables[0].vector_index.as_ref().unwrap()
        );
    }
}
