//! One partition's rows to Parquet objects in the store, then the manifest, then the
//! read-back check.
//!
//! The rows stream from `COPY … TO STDOUT (FORMAT binary)` through [`CopyDecoder`] into
//! record batches of at most [`BATCH_ROWS`] rows, handed over a channel of one to a task
//! that encodes them (zstd) into row groups of at most [`ROW_GROUP_BYTES`] and files of
//! about [`FILE_BYTES`], uploaded in parts as they fill: the memory an export needs is
//! bounded by those sizes, not by the partition's. The caller holds a lock that keeps
//! writers off the table for as long as it needs the rows to stay what was exported.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tokio::sync::mpsc;

use super::binary::{BinaryError, CopyDecoder};
use super::columns::{arrow_schema, kind_of, ExportColumn, PgKind};
use super::manifest::{object_name, partition_dir, ExportObject, Manifest, FORMAT, MANIFEST_NAME};
use super::store::{Store, StoreError};
use super::verify::{verify, VerifyError};
use crate::calendar::PartitionBounds;

/// Rows per record batch: 1,024 rows of a GA4 event with a 768-dimension embedding are
/// ~3.2 MiB.
pub const BATCH_ROWS: usize = 1024;
/// A row group is closed once its encoded size reaches this (~5,000 GA4 rows with
/// embeddings; the 128 MiB budget of the exporting process holds it twice, being encoded
/// and being uploaded).
pub const ROW_GROUP_BYTES: usize = 16 << 20;
/// A file is closed (and the next begun) once it reaches this.
pub const FILE_BYTES: usize = 512 << 20;
/// Upload parts and how many are in flight at once.
const PART_BYTES: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("reading the rows: {0}")]
    Rows(#[from] BinaryError),
    #[error("writing Parquet object {object}: {message}")]
    Parquet { object: String, message: String },
    #[error("column {column}: {message}")]
    Column { column: String, message: String },
    #[error("{0}")]
    Verify(#[from] VerifyError),
    #[error("{0}")]
    Refused(String),
}

/// What one export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub manifest: Manifest,
    /// Where the manifest is, and the SHA-256 of its bytes.
    pub manifest_path: Path,
    pub manifest_sha256: String,
}

/// The partition being exported.
pub struct ExportRequest<'a> {
    pub store: &'a Store,
    /// `schema.table` of the parent.
    pub table: &'a str,
    pub partition: &'a str,
    pub bounds: PartitionBounds,
    /// The (detached) table, quoted and qualified.
    pub relation: &'a str,
    pub zstd_level: i32,
}

/// The columns of `relation` that export writes (generated columns are left out: a
/// restore computes them again), each with its type, or why one cannot be exported.
pub async fn read_columns(
    conn: &mut PgConnection,
    relation: &str,
) -> Result<Vec<ExportColumn>, ExportError> {
    let rows: Vec<(String, String, String, i32, bool)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
                coalesce(bt.typname, t.typname)::text,
                CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
                NOT a.attnotnull
           FROM pg_attribute a
           JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
          WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            AND a.attgenerated = ''
          ORDER BY a.attnum",
    )
    .bind(relation)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(name, pg_type, typname, typmod, nullable)| {
            let kind = kind_of(&typname, typmod).map_err(|message| ExportError::Column {
                column: name.clone(),
                message,
            })?;
            Ok(ExportColumn {
                name,
                pg_type,
                kind,
                nullable,
            })
        })
        .collect()
}

/// `COPY <relation> (<columns>) TO STDOUT (FORMAT binary)`.
pub fn copy_out_sql(relation: &str, columns: &[ExportColumn]) -> String {
    format!(
        "COPY {relation} ({}) TO STDOUT (FORMAT binary)",
        column_list(columns)
    )
}

pub fn column_list(columns: &[ExportColumn]) -> String {
    columns
        .iter()
        .map(|c| crate::ident::quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Exports the rows of `req.relation` under a new run directory, writes the manifest,
/// and reads everything back. On error the run directory may hold objects but never a
/// manifest that claims more than it holds (the manifest is written after every object
/// it names has been completed, and is what makes a run count).
pub async fn export_partition(
    conn: &mut PgConnection,
    req: &ExportRequest<'_>,
) -> Result<Exported, ExportError> {
    let encoding: String = sqlx::query_scalar("SELECT current_setting('server_encoding')")
        .fetch_one(&mut *conn)
        .await?;
    if encoding != "UTF8" {
        return Err(ExportError::Refused(format!(
            "the database's encoding is {encoding}: export writes text as UTF-8 and supports UTF8 databases only"
        )));
    }
    let columns = read_columns(conn, req.relation).await?;
    let (server_version, source_bytes): (String, i64) = sqlx::query_as(
        "SELECT current_setting('server_version'), pg_total_relation_size(to_regclass($1))",
    )
    .bind(req.relation)
    .fetch_one(&mut *conn)
    .await?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let directory = req.store.path(&[
        req.table,
        &partition_dir(req.partition, &req.bounds),
        &run_id,
    ]);
    let meta = HashMap::from([
        ("partwarden.table".to_string(), req.table.to_string()),
        (
            "partwarden.partition".to_string(),
            req.partition.to_string(),
        ),
        ("partwarden.run_id".to_string(), run_id.clone()),
    ]);
    let schema = arrow_schema(&columns, meta);
    let kinds: Vec<PgKind> = columns.iter().map(|c| c.kind).collect();

    let (tx, rx) = mpsc::channel::<RecordBatch>(1);
    let writer = tokio::spawn(write_objects(
        req.store.inner.clone(),
        directory.clone(),
        schema.clone(),
        writer_properties(req.zstd_level),
        rx,
    ));
    let read = read_rows(
        conn,
        &copy_out_sql(req.relation, &columns),
        schema,
        kinds,
        tx,
    )
    .await;
    // The writer's error explains a closed channel; otherwise the reader's comes first.
    let written = writer.await.map_err(|e| ExportError::Parquet {
        object: directory.to_string(),
        message: format!("the writer stopped: {e}"),
    })?;
    let (rows, copy_sha256) = read?;
    let objects = written?;
    crate::fault::point("export_before_manifest").await;

    let written_rows: u64 = objects.iter().map(|o| o.rows).sum();
    if written_rows != rows {
        return Err(ExportError::Parquet {
            object: directory.to_string(),
            message: format!("{written_rows} row(s) written where {rows} were read"),
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        table: req.table.into(),
        partition: req.partition.into(),
        bounds: req.bounds,
        run_id,
        store: req.store.url.to_string(),
        directory: directory.to_string(),
        rows,
        bytes: objects.iter().map(|o| o.bytes).sum(),
        source_bytes,
        copy_sha256,
        objects,
        columns,
        server_version,
        partwarden_version: env!("CARGO_PKG_VERSION").into(),
        exported_at: chrono::Utc::now(),
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::Parquet {
        object: MANIFEST_NAME.into(),
        message: e.to_string(),
    })?;
    let manifest_sha256 = hex(&Sha256::digest(&body));
    let manifest_path = directory.clone().join(MANIFEST_NAME);
    req.store
        .inner
        .put(&manifest_path, PutPayload::from(body))
        .await
        .map_err(|e| req.store.object_error(&manifest_path, e))?;
    crate::fault::point("export_after_manifest").await;
    verify(req.store, &manifest_path, &manifest_sha256).await?;
    Ok(Exported {
        manifest,
        manifest_path,
        manifest_sha256,
    })
}

/// Streams the COPY into batches sent to the writer; the row count and the SHA-256 of
/// the stream.
async fn read_rows(
    conn: &mut PgConnection,
    sql: &str,
    schema: SchemaRef,
    kinds: Vec<PgKind>,
    tx: mpsc::Sender<RecordBatch>,
) -> Result<(u64, String), ExportError> {
    let mut decoder = CopyDecoder::new(schema, kinds);
    let mut hasher = Sha256::new();
    let mut rows = 0u64;
    let mut stream = conn.copy_out_raw(sql).await?;
    while let Some(chunk) = stream.try_next().await? {
        hasher.update(&chunk);
        decoder.push(&chunk)?;
        if decoder.buffered_rows() >= BATCH_ROWS {
            rows += send(&mut decoder, &tx).await?;
            crate::fault::point("export_batch").await;
        }
    }
    decoder.finish()?;
    rows += send(&mut decoder, &tx).await?;
    Ok((rows, hex(&hasher.finalize())))
}

async fn send(
    decoder: &mut CopyDecoder,
    tx: &mpsc::Sender<RecordBatch>,
) -> Result<u64, ExportError> {
    if decoder.buffered_rows() == 0 {
        return Ok(0);
    }
    let batch = decoder.take_batch()?;
    let n = batch.num_rows() as u64;
    tx.send(batch).await.map_err(|_| ExportError::Parquet {
        object: "(writer)".into(),
        message: "the writer stopped".into(),
    })?;
    Ok(n)
}

fn writer_properties(level: i32) -> WriterProperties {
    let level = ZstdLevel::try_new(level).unwrap_or_default();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("partwarden {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Writes the batches of `rx` as Parquet objects under `directory`; the objects.
async fn write_objects(
    store: Arc<dyn ObjectStore>,
    directory: Path,
    schema: SchemaRef,
    props: WriterProperties,
    mut rx: mpsc::Receiver<RecordBatch>,
) -> Result<Vec<ExportObject>, ExportError> {
    let mut objects = Vec::new();
    let mut current: Option<OpenObject> = None;
    while let Some(batch) = rx.recv().await {
        let open = match &mut current {
            Some(o) => o,
            None => current.insert(OpenObject::new(
                &store,
                &directory,
                objects.len(),
                &schema,
                &props,
            )?),
        };
        open.write(&batch).await?;
        if open.writer.bytes_written() >= FILE_BYTES {
            if let Some(o) = current.take() {
                objects.push(o.close().await?);
            }
        }
    }
    // A partition with no rows still gets a file: readers see its schema.
    if current.is_none() && objects.is_empty() {
        current = Some(OpenObject::new(&store, &directory, 0, &schema, &props)?);
    }
    if let Some(o) = current.take() {
        objects.push(o.close().await?);
    }
    Ok(objects)
}

struct OpenObject {
    name: String,
    path: Path,
    rows: u64,
    writer: AsyncArrowWriter<HashingWriter>,
}

impl OpenObject {
    fn new(
        store: &Arc<dyn ObjectStore>,
        directory: &Path,
        n: usize,
        schema: &SchemaRef,
        props: &WriterProperties,
    ) -> Result<OpenObject, ExportError> {
        let name = object_name(n);
        let path = directory.clone().join(name.as_str());
        let buf = BufWriter::with_capacity(store.clone(), path.clone(), PART_BYTES)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let inner = HashingWriter {
            inner: buf,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let writer = AsyncArrowWriter::try_new(inner, schema.clone(), Some(props.clone()))
            .map_err(|e| parquet_error(&path, e))?;
        Ok(OpenObject {
            name,
            path,
            rows: 0,
            writer,
        })
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<(), ExportError> {
        self.writer
            .write(batch)
            .await
            .map_err(|e| parquet_error(&self.path, e))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn close(mut self) -> Result<ExportObject, ExportError> {
        self.writer
            .finish()
            .await
            .map_err(|e| parquet_error(&self.path, e))?;
        let inner = self.writer.into_inner();
        Ok(ExportObject {
            name: self.name,
            rows: self.rows,
            bytes: inner.bytes,
            sha256: hex(&inner.hasher.finalize()),
        })
    }
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> ExportError {
    ExportError::Parquet {
        object: path.to_string(),
        message: e.to_string(),
    }
}

/// Counts and hashes the bytes on their way to the store.
struct HashingWriter {
    inner: BufWriter,
    hasher: Sha256,
    bytes: u64,
}

impl AsyncFileWriter for HashingWriter {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        self.hasher.update(&bs);
        self.bytes += bs.len() as u64;
        AsyncFileWriter::write(&mut self.inner, bs)
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        AsyncFileWriter::complete(&mut self.inner)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Deletes what interrupted exports of this partition left: run directories that no
/// `partwarden_exports` row records (`keep`). How many objects were deleted.
pub async fn delete_unrecorded_runs(
    store: &Store,
    table: &str,
    partition: &str,
    bounds: &PartitionBounds,
    keep: &[String],
) -> Result<usize, StoreError> {
    let dir = store.path(&[table, &partition_dir(partition, bounds)]);
    let listed: Vec<_> = store
        .inner
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| store.object_error(&dir, e))?;
    let mut deleted = 0;
    for meta in listed {
        let run = meta
            .location
            .prefix_match(&dir)
            .and_then(|mut parts| parts.next())
            .map(|p| p.as_ref().to_string());
        if run.is_some_and(|r| keep.contains(&r)) {
            continue;
        }
        store
            .inner
            .delete(&meta.location)
            .await
            .map_err(|e| store.object_error(&meta.location, e))?;
        deleted += 1;
    }
    Ok(deleted)
}
