//! Loading an export's rows back: its Parquet objects, batch by batch, encoded as a
//! binary COPY into a table, and the loaded rows read out again and compared with the
//! stream the export read (the manifest's `copy_sha256`): the same bytes on every column.

use futures_util::TryStreamExt;
use object_store::path::Path;
// Deprecated in parquet 60 for a reader each user writes; it still reads an object_store
// object with ranged GETs, which is all this needs.
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::binary::{CopyEncoder, RowSetDigest};
use super::columns::PgKind;
use super::export::{column_list, copy_out_sql, hex, ExportError, BATCH_ROWS};
use super::manifest::Manifest;
use super::store::Store;

/// What was loaded: the row count and the [`RowSetDigest`] of the rows sent.
pub struct Loaded {
    pub rows: u64,
    pub row_set: String,
}

/// What a table's rows read back as: the SHA-256 of the stream and its [`RowSetDigest`].
pub struct ReadBack {
    pub sha256: String,
    pub rows: u64,
    pub row_set: String,
}

/// Loads the rows of `manifest` into `relation` (which has its columns).
/// Fails, naming the object, when an object cannot be read or the rows differ from what
/// was exported.
pub async fn load(
    conn: &mut PgConnection,
    store: &Store,
    manifest: &Manifest,
    relation: &str,
) -> Result<Loaded, ExportError> {
    let kinds: Vec<PgKind> = manifest.columns.iter().map(|c| c.kind).collect();
    let ncols = kinds.len();
    let mut encoder = CopyEncoder::new(kinds);
    let mut hasher = Sha256::new();
    let mut row_set = RowSetDigest::new(ncols);
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {relation} ({}) FROM STDIN (FORMAT binary)",
            column_list(&manifest.columns)
        ))
        .await?;
    let dir = Path::from(manifest.directory.as_str());
    let mut buf = Vec::new();
    for o in &manifest.objects {
        let path = dir.clone().join(o.name.as_str());
        let parquet_err = |e: parquet::errors::ParquetError| ExportError::Parquet {
            object: path.to_string(),
            message: e.to_string(),
        };
        #[allow(deprecated)]
        let reader =
            ParquetObjectReader::new(store.inner.clone(), path.clone()).with_file_size(o.bytes);
        let mut batches = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(parquet_err)?
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(parquet_err)?;
        while let Some(batch) = batches.try_next().await.map_err(parquet_err)? {
            buf.clear();
            encoder.encode(&batch, &mut buf)?;
            hasher.update(&buf);
            row_set.push(&buf)?;
            copy.send(buf.as_slice()).await?;
        }
    }
    buf.clear();
    encoder.trailer(&mut buf);
    hasher.update(&buf);
    row_set.push(&buf)?;
    copy.send(buf.as_slice()).await?;
    let rows = copy.finish().await?;
    let sent = hex(&hasher.finalize());
    if rows != manifest.rows || sent != manifest.copy_sha256 {
        return Err(ExportError::Refused(format!(
            "the objects of {} decode to {rows} row(s) with SHA-256 {sent}; the export read {} row(s) with {}",
            manifest.directory, manifest.rows, manifest.copy_sha256
        )));
    }
    let (_, row_set) = row_set.finish()?;
    Ok(Loaded { rows, row_set })
}

/// `relation`'s rows as `COPY (FORMAT binary)` sends them: SHA-256 and row-set digest.
pub async fn read_back(
    conn: &mut PgConnection,
    relation: &str,
    manifest: &Manifest,
) -> Result<ReadBack, ExportError> {
    let mut hasher = Sha256::new();
    let mut row_set = RowSetDigest::new(manifest.columns.len());
    let mut stream = conn
        .copy_out_raw(&copy_out_sql(relation, &manifest.columns))
        .await?;
    while let Some(chunk) = stream.try_next().await? {
        hasher.update(&chunk);
        row_set.push(&chunk)?;
    }
    let (rows, row_set) = row_set.finish()?;
    Ok(ReadBack {
        sha256: hex(&hasher.finalize()),
        rows,
        row_set,
    })
}
