//! pgvector indexes per partition: which partitions qualify for one, and what the
//! catalog says about the ones that exist. (DESIGN.md §5: an ivfflat index is trained on
//! the rows present when it is built, so one built on an empty partition finds little.)

use crate::catalog::{Partition, PartitionIndex, TableSnapshot};
use crate::config::{ListsSetting, TableConfig, VectorIndexPolicy, VectorMethod};

/// Vector-index health of one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VectorHealth {
    /// Partitions with at least `min_rows` rows and no valid vector index.
    pub missing: usize,
    /// INVALID vector indexes.
    pub invalid: usize,
    /// (partition, bytes) of each valid vector index.
    pub sizes: Vec<(String, i64)>,
}

/// True for an index of pgvector's access methods on `column`.
pub fn is_vector_index(index: &PartitionIndex, column: &str) -> bool {
    matches!(index.am.as_str(), "ivfflat" | "hnsw")
        && index.definition.contains(&format!("({column} "))
}

/// The vector indexes of a partition on the policy's column.
pub fn vector_indexes<'a>(
    p: &'a Partition,
    policy: &VectorIndexPolicy,
) -> impl Iterator<Item = &'a PartitionIndex> {
    let column = policy.column.as_str().to_string();
    p.indexes
        .iter()
        .filter(move |i| is_vector_index(i, &column))
}

/// Does the partition hold enough rows for the policy to want an index?
pub fn qualifies(p: &Partition, policy: &VectorIndexPolicy) -> bool {
    match policy.method {
        VectorMethod::Ivfflat => p.rows() >= policy.min_rows,
        // HNSW needs no training; still skip empty partitions.
        VectorMethod::Hnsw => p.rows() >= policy.min_rows.min(1).max(1),
    }
}

/// ivfflat `lists` for a row count: rows/1000 up to 1M rows, sqrt(rows) above (pgvector's
/// guidance), at least 1, at most pgvector's 32768.
pub fn auto_lists(rows: u64) -> u32 {
    let lists = if rows <= 1_000_000 {
        rows / 1000
    } else {
        (rows as f64).sqrt() as u64
    };
    lists.clamp(1, 32_768) as u32
}

pub fn lists_for(policy: &VectorIndexPolicy, rows: u64) -> u32 {
    match policy.lists {
        ListsSetting::Auto => auto_lists(rows),
        ListsSetting::Fixed(n) => n,
    }
}

pub fn health(table: &TableConfig, snap: &TableSnapshot) -> VectorHealth {
    let Some(policy) = &table.vector_index else {
        return VectorHealth::default();
    };
    let mut h = VectorHealth::default();
    for p in snap.all_partitions() {
        let mut has_valid = false;
        for i in vector_indexes(p, policy) {
            if i.valid {
                has_valid = true;
                h.sizes.push((p.name.clone(), i.size_bytes));
            } else {
                h.invalid += 1;
            }
        }
        if !has_valid && qualifies(p, policy) && !p.is_default {
            h.missing += 1;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_follow_pgvector_guidance() {
        assert_eq!(auto_lists(0), 1);
        assert_eq!(auto_lists(20_000), 20);
        assert_eq!(auto_lists(1_000_000), 1000);
        assert_eq!(auto_lists(4_000_000), 2000);
    }
}
