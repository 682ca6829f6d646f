use std::path::PathBuf;

use super::url::redact_urls;

/// A configuration problem. Every variant means exit code 2 at the binary's edge.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The given config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML (or the sources could not be merged).
    #[error("cannot parse configuration: {0}")]
    Parse(String),
    /// A key has an unknown name or an impossible value.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// A command that needs the database found no URL anywhere.
    #[error(
        "no database URL: set DATABASE_URL, database.url (PARTWARDEN__DATABASE__URL) or \
         database.url_file (PARTWARDEN__DATABASE__URL_FILE)"
    )]
    MissingDatabaseUrl,
}

impl ConfigError {
    /// The process exit code this error maps to (bad usage or bad config).
    pub fn exit_code(&self) -> i32 {
        2
    }

    /// The key this error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Messages may quote the offending value, which can be a URL with a password in it.
pub(super) fn invalid(key: impl Into<String>, message: impl AsRef<str>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: redact_urls(message.as_ref()),
    }
}
