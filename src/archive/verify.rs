//! Reading an export back: the manifest (its SHA-256 as recorded), then every object it
//! names — its size, its SHA-256, and the row count of its Parquet footer. Only a run
//! that passes is dropped from the database, or restored from.

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
// Deprecated in parquet 60 for a reader each user writes; it still reads an object_store
// object with ranged GETs, which is all this needs.
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use sha2::{Digest, Sha256};

use super::export::hex;
use super::manifest::{Manifest, FORMAT};
use super::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("export store {url}, object {object}: {message}")]
    Mismatch {
        url: String,
        object: String,
        message: String,
    },
}

/// Reads the manifest at `manifest_path` and checks it and every object it names; the
/// manifest.
pub async fn verify(
    store: &Store,
    manifest_path: &Path,
    manifest_sha256: &str,
) -> Result<Manifest, VerifyError> {
    let mismatch = |object: &Path, message: String| VerifyError::Mismatch {
        url: store.url.to_string(),
        object: object.to_string(),
        message,
    };
    let body = read_all(store, manifest_path).await?;
    let sha = hex(&Sha256::digest(&body));
    if sha != manifest_sha256 {
        return Err(mismatch(
            manifest_path,
            format!("SHA-256 {sha}, but {manifest_sha256} was recorded"),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| mismatch(manifest_path, format!("not a partwarden manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(mismatch(
            manifest_path,
            format!("format {:?}, expected {FORMAT:?}", manifest.format),
        ));
    }
    let dir = Path::from(manifest.directory.as_str());
    let mut rows = 0;
    for o in &manifest.objects {
        let path = dir.clone().join(o.name.as_str());
        let (bytes, sha) = hash_object(store, &path).await?;
        if bytes != o.bytes || sha != o.sha256 {
            return Err(mismatch(
                &path,
                format!(
                    "{bytes} bytes with SHA-256 {sha}; the manifest says {} bytes with {}",
                    o.bytes, o.sha256
                ),
            ));
        }
        #[allow(deprecated)]
        let reader =
            ParquetObjectReader::new(store.inner.clone(), path.clone()).with_file_size(bytes);
        let footer_rows = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| mismatch(&path, format!("unreadable Parquet footer: {e}")))?
            .metadata()
            .file_metadata()
            .num_rows();
        if u64::try_from(footer_rows).ok() != Some(o.rows) {
            return Err(mismatch(
                &path,
                format!(
                    "its footer says {footer_rows} row(s); the manifest {}",
                    o.rows
                ),
            ));
        }
        rows += o.rows;
    }
    if rows != manifest.rows {
        return Err(mismatch(
            manifest_path,
            format!("its objects hold {rows} row(s); it says {}", manifest.rows),
        ));
    }
    Ok(manifest)
}

async fn read_all(store: &Store, path: &Path) -> Result<Vec<u8>, StoreError> {
    let got = store
        .inner
        .get(path)
        .await
        .map_err(|e| store.object_error(path, e))?;
    Ok(got
        .bytes()
        .await
        .map_err(|e| store.object_error(path, e))?
        .to_vec())
}

/// Size and SHA-256 of one object, streamed.
async fn hash_object(store: &Store, path: &Path) -> Result<(u64, String), StoreError> {
    let got = store
        .inner
        .get(path)
        .await
        .map_err(|e| store.object_error(path, e))?;
    let mut stream = got.into_stream();
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| store.object_error(path, e))?
    {
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
    }
    Ok((bytes, hex(&hasher.finalize())))
}
