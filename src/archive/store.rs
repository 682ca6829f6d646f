//! The object store of an `[export]` configuration, through the `object_store` crate.
//!
//! Credentials come from the environment and each provider's standard chain
//! (`from_env()`); the configuration adds only its non-secret options (refused otherwise
//! at load, see `config/export.rs`).

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::config::{ExportConfig, StoreScheme};

/// An opened store and the prefix partwarden writes under.
#[derive(Clone)]
pub struct Store {
    pub inner: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The URL (no credentials: the configuration cannot hold any).
    pub url: Url,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("export store {url}: {message}")]
    Open { url: String, message: String },
    #[error("export store {url}, object {object}: {source}")]
    Object {
        url: String,
        object: String,
        #[source]
        source: object_store::Error,
    },
}

/// A cloud store's builder from the environment (credentials), the URL, then the
/// configuration's options; the store and the prefix inside it.
macro_rules! with_options {
    ($builder:ty, $config:expr, $url:expr, $err:expr) => {{
        let mut b = <$builder>::from_env().with_url($url.as_str());
        for (k, v) in &$config.options {
            let key = k
                .to_ascii_lowercase()
                .parse()
                .map_err(|e: object_store::Error| $err(e.to_string()))?;
            b = b.with_config(key, v);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(b.build().map_err(|e| $err(e.to_string()))?);
        let prefix = Path::from_url_path($url.path()).map_err(|e| $err(e.to_string()))?;
        (store, prefix)
    }};
}

impl Store {
    /// The store `config` names, at `url` (the configured one, or one a manifest
    /// recorded).
    pub fn open(config: &ExportConfig, url: &Url) -> Result<Store, StoreError> {
        let open_err = |message: String| StoreError::Open {
            url: url.to_string(),
            message,
        };
        let (inner, prefix): (Arc<dyn ObjectStore>, Path) = match config.scheme {
            StoreScheme::File => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| open_err("not a local path".into()))?;
                if !dir.is_dir() {
                    return Err(open_err(format!(
                        "directory {} does not exist (create it, writable by partwarden)",
                        dir.display()
                    )));
                }
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| open_err(e.to_string()))?
                    .with_automatic_cleanup(true);
                (Arc::new(fs), Path::default())
            }
            StoreScheme::S3 => with_options!(AmazonS3Builder, config, url, open_err),
            StoreScheme::Gcs => with_options!(GoogleCloudStorageBuilder, config, url, open_err),
            StoreScheme::Azure => with_options!(MicrosoftAzureBuilder, config, url, open_err),
        };
        Ok(Store {
            inner,
            prefix,
            url: url.clone(),
        })
    }

    /// `parts` under the prefix.
    pub fn path(&self, parts: &[&str]) -> Path {
        parts
            .iter()
            .fold(self.prefix.clone(), |p, part| p.join(*part))
    }

    /// The URL of `path` (a path of this store, prefix included).
    pub fn url_of(&self, path: &Path) -> String {
        if self.prefix.as_ref().is_empty() {
            format!("{}/{path}", self.url.as_str().trim_end_matches('/'))
        } else {
            format!(
                "{}://{}/{path}",
                self.url.scheme(),
                self.url.host_str().unwrap_or_default()
            )
        }
    }

    pub fn object_error(&self, object: &Path, source: object_store::Error) -> StoreError {
        StoreError::Object {
            url: self.url.to_string(),
            object: object.to_string(),
            source,
        }
    }

    /// Writes and deletes a small object under the prefix: a store that is unreachable,
    /// missing, read-only or refuses the credentials fails here, before anything is
    /// detached.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let probe = self.path(&[&format!(".partwarden-probe-{}", uuid::Uuid::new_v4())]);
        self.inner
            .put(&probe, PutPayload::from_static(b"partwarden write check"))
            .await
            .map_err(|e| self.object_error(&probe, e))?;
        self.inner
            .delete(&probe)
            .await
            .map_err(|e| self.object_error(&probe, e))?;
        Ok(())
    }
}
