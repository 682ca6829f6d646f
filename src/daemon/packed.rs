//! A JSON document kept deflate-compressed in memory. `/status` holds one per table, for
//! every partition: at 30,000 partitions the documents as `serde_json::Value`s were most of
//! the idle daemon's RSS (~2.7 KiB a partition, ~80 MiB), their text ~16 MiB; repetitive
//! JSON deflates ~15:1. Unpacked only when `/status` or the page is requested.

use std::io::{BufWriter, Write};

use flate2::write::{DeflateDecoder, DeflateEncoder};
use flate2::Compression;
use serde::Serialize;

/// Deflated JSON text.
pub(super) struct PackedJson(Box<[u8]>);

impl PackedJson {
    /// `value` serialized straight into the compressor: no text or `Value` of the whole
    /// document is ever held. The error is serde_json's (the writer is memory).
    pub(super) fn pack<T: Serialize>(value: &T) -> std::io::Result<PackedJson> {
        // Level 1: a refresh packs every table's document; the size gained by higher levels
        // is small next to the CPU they cost.
        let encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
        // serde_json writes token by token; each write would be a call into the compressor.
        let mut buffered = BufWriter::with_capacity(64 * 1024, encoder);
        serde_json::to_writer(&mut buffered, value)?;
        let bytes = buffered
            .into_inner()
            .map_err(|e| e.into_error())?
            .finish()?;
        Ok(PackedJson(bytes.into_boxed_slice()))
    }

    /// The document, parsed.
    pub(super) fn unpack(&self) -> std::io::Result<serde_json::Value> {
        let mut decoder = DeflateDecoder::new(Vec::new());
        decoder.write_all(&self.0)?;
        let text = decoder.finish()?;
        Ok(serde_json::from_slice(&text)?)
    }

    /// Bytes held.
    #[cfg(test)]
    pub(super) fn packed_len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_comes_back_as_it_was_packed_and_smaller() {
        let parts: Vec<_> = (0..300)
            .map(|i| {
                serde_json::json!({
                    "partition_name": format!("t001_p2026_{i:03}"), "row_count": i * 1000,
                    "size_bytes": 8192 * i, "size_pretty": format!("{i} kB"), "is_default": false,
                    "range_start": "2026-01-01T00:00:00Z", "rls_ok": true, "schema": "pw"
                })
            })
            .collect();
        let doc = serde_json::json!({ "table": "pw.t001", "partitions": parts, "premake": 7 });
        let packed = PackedJson::pack(&doc).unwrap();
        assert_eq!(packed.unpack().unwrap(), doc);
        let text = serde_json::to_vec(&doc).unwrap().len();
        assert!(
            packed.packed_len() * 5 < text,
            "{} of {text}",
            packed.packed_len()
        );
    }
}
