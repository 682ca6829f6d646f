//! Names partwarden gives the indexes it builds. They must fit PostgreSQL's 63-byte
//! identifiers and stay the same from run to run, so later runs recognise them.

/// Name for a partition's copy of a parent index: `<partition>_<parent index>`, shortened
/// with a stable hash when longer than PostgreSQL's 63 bytes.
pub fn child_index_name(partition: &str, parent_index: &str) -> String {
    fit_identifier(&format!("{partition}_{parent_index}"))
}

/// `full` if it fits PostgreSQL's 63 bytes, else its head and a stable hash of it.
pub fn fit_identifier(full: &str) -> String {
    if full.len() <= 63 {
        return full.to_string();
    }
    // FNV-1a: stable across runs and builds (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in full.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let suffix = format!("_{h:08x}");
    // Cut on a character boundary: identifiers may hold multi-byte characters.
    let mut cut = 63 - suffix.len();
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &full[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_index_names_fit() {
        assert_eq!(child_index_name("t_2026_05", "idx"), "t_2026_05_idx");
        let long = child_index_name(&"a".repeat(50), &"b".repeat(30));
        assert_eq!(long.len(), 63);
        assert_eq!(long, child_index_name(&"a".repeat(50), &"b".repeat(30)));
        assert_ne!(long, child_index_name(&"a".repeat(50), &"c".repeat(30)));
    }

    /// Issue 10.6: a long name with multi-byte characters is cut on a character boundary
    /// (byte slicing used to panic), and stays within 63 bytes.
    #[test]
    fn child_index_names_fit_multibyte() {
        for pad in 0..4 {
            let parent_index = format!("{}índice_événements_ünïcødé_ß", "x".repeat(pad));
            let name = child_index_name("archon_ga4_events_2026_05", &parent_index);
            assert!(name.len() <= 63, "{name}");
            assert_eq!(
                name,
                child_index_name("archon_ga4_events_2026_05", &parent_index)
            );
        }
    }
}
