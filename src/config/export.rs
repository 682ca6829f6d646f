//! `[export]` and `[tables.export]`: the object store that `retention_mode = "export"`
//! writes expired partitions to, as Parquet.
//!
//! The store is a URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
//! `file:///absolute/path`) and non-secret options (an S3-compatible endpoint, the
//! region, plain HTTP for a loopback test server). Credentials never appear here: they
//! come from the environment and the providers' standard chains (`AWS_ACCESS_KEY_ID`, web
//! identity, instance metadata; `GOOGLE_APPLICATION_CREDENTIALS`; `AZURE_STORAGE_*`), so
//! nothing partwarden prints or logs can hold one. An option that is a credential is
//! refused by name.

use std::collections::BTreeMap;
use std::fmt;

use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;
use serde::Deserialize;
use url::Url;

use super::error::{invalid, ConfigError};
use super::fields::int_at;

/// Where and how expired partitions are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// The store and the prefix inside it. Holds no credentials (refused when it does).
    pub url: Url,
    pub scheme: StoreScheme,
    /// Non-secret store options, keys as written (validated against the scheme's keys).
    pub options: BTreeMap<String, String>,
    /// zstd level of the Parquet pages (1–22). Default 3.
    pub zstd_level: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreScheme {
    S3,
    Gcs,
    Azure,
    File,
}

impl fmt::Display for ExportConfig {
    /// The URL alone: the options may name an endpoint, never a secret, but the URL is
    /// what identifies the store.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawExport {
    url: Option<String>,
    zstd_level: Option<i64>,
    options: Option<BTreeMap<String, toml_value::Scalar>>,
}

/// Option values are strings, booleans or numbers in TOML; object_store takes text.
mod toml_value {
    use serde::Deserialize;

    #[derive(Deserialize, Clone, Debug)]
    #[serde(untagged)]
    pub enum Scalar {
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(String),
    }

    impl Scalar {
        pub fn text(&self) -> String {
            match self {
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(n) => n.to_string(),
                Scalar::Float(x) => x.to_string(),
                Scalar::Text(s) => s.clone(),
            }
        }
    }
}

/// The store of one table: its own `[tables.export]` over the top-level `[export]`, key
/// by key (a table may name its own prefix and share the endpoint). `None` when neither
/// sets a URL.
pub(super) fn export_config(
    path: &str,
    table: Option<RawExport>,
    shared: Option<&RawExport>,
) -> Result<Option<ExportConfig>, ConfigError> {
    let shared = shared.cloned().unwrap_or_default();
    let own = table.clone().unwrap_or_default();
    // Errors name the section the value came from.
    let (url_key, url) = match (own.url, shared.url) {
        (Some(u), _) => (format!("{path}.url"), u),
        (None, Some(u)) => ("export.url".to_owned(), u),
        (None, None) => {
            if table.is_some() {
                return Err(invalid(
                    format!("{path}.url"),
                    "is required (or set export.url for every table)",
                ));
            }
            return Ok(None);
        }
    };
    let (url, scheme) = store_url(&url_key, &url)?;
    let mut options = BTreeMap::new();
    for (section, raw) in [("export", shared.options), (path, own.options)] {
        for (k, v) in raw.unwrap_or_default() {
            let key = format!("{section}.options.{k}");
            check_option(&key, scheme, &k)?;
            options.insert(k, v.text());
        }
    }
    let level_key = if own.zstd_level.is_some() {
        format!("{path}.zstd_level")
    } else {
        "export.zstd_level".to_owned()
    };
    let zstd_level = int_at(&level_key, own.zstd_level.or(shared.zstd_level), 3, 1, 22)?;
    Ok(Some(ExportConfig {
        url,
        scheme,
        options,
        zstd_level,
    }))
}

/// Only `[export]` itself: validated even when no table exports, so a mistake shows at
/// `check-config`, not at the first expiry.
pub(super) fn check_shared(shared: Option<&RawExport>) -> Result<(), ConfigError> {
    match shared {
        Some(s) if s.url.is_some() => export_config("export", None, Some(s)).map(|_| ()),
        Some(s) if s.options.is_some() || s.zstd_level.is_some() => Err(invalid(
            "export.url",
            "is required when [export] sets anything",
        )),
        _ => Ok(()),
    }
}

fn store_url(key: &str, text: &str) -> Result<(Url, StoreScheme), ConfigError> {
    let url = Url::parse(text).map_err(|e| {
        invalid(
            key,
            format!("{e}: expected s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///path"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            key,
            "must not hold credentials: they come from the environment (AWS_ACCESS_KEY_ID, \
             GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT_KEY, …)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            key,
            "must not have a query or fragment (store options go in the options table)",
        ));
    }
    let scheme = match url.scheme() {
        "s3" | "s3a" => StoreScheme::S3,
        "gs" => StoreScheme::Gcs,
        "az" | "azure" | "abfs" | "abfss" => StoreScheme::Azure,
        "file" => StoreScheme::File,
        other => {
            return Err(invalid(
                key,
                format!("unknown scheme {other:?}: expected s3, gs, az or file"),
            ))
        }
    };
    match scheme {
        StoreScheme::File => {
            if url.host_str().is_some_and(|h| !h.is_empty()) || !url.path().starts_with('/') {
                return Err(invalid(
                    key,
                    "a file URL must be file:///absolute/path (no host)",
                ));
            }
        }
        _ => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid(
                    key,
                    format!(
                        "names no bucket or container: expected {}://bucket/prefix",
                        url.scheme()
                    ),
                ));
            }
        }
    }
    Ok((url, scheme))
}

/// An option must be one the scheme's store knows, and never a credential.
fn check_option(key: &str, scheme: StoreScheme, name: &str) -> Result<(), ConfigError> {
    let lower = name.to_ascii_lowercase();
    let secret = match scheme {
        StoreScheme::S3 => match lower.parse::<AmazonS3ConfigKey>() {
            Ok(
                AmazonS3ConfigKey::AccessKeyId
                | AmazonS3ConfigKey::SecretAccessKey
                | AmazonS3ConfigKey::Token,
            ) => true,
            Ok(AmazonS3ConfigKey::Encryption(_)) if lower.contains("customer_key") => true,
            Ok(_) => false,
            Err(_) => return Err(unknown_option(key, "S3")),
        },
        StoreScheme::Gcs => match lower.parse::<GoogleConfigKey>() {
            Ok(GoogleConfigKey::ServiceAccountKey) => true,
            Ok(_) => false,
            Err(_) => return Err(unknown_option(key, "Google Cloud Storage")),
        },
        StoreScheme::Azure => match lower.parse::<AzureConfigKey>() {
            Ok(
                AzureConfigKey::AccessKey
                | AzureConfigKey::ClientSecret
                | AzureConfigKey::SasKey
                | AzureConfigKey::Token
                | AzureConfigKey::FabricSessionToken,
            ) => true,
            Ok(_) => false,
            Err(_) => return Err(unknown_option(key, "Azure")),
        },
        StoreScheme::File => {
            return Err(invalid(key, "a file:// store takes no options"));
        }
    };
    if secret {
        return Err(invalid(
            key,
            "is a credential: partwarden takes credentials from the environment and the \
             provider's standard chain only, so they are never in its configuration or output",
        ));
    }
    Ok(())
}

fn unknown_option(key: &str, store: &str) -> ConfigError {
    invalid(
        key,
        format!("is not an option of object_store's {store} store (see the object_store crate's config keys, e.g. endpoint, region, allow_http)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawExport {
        RawExport {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    fn err(r: Result<Option<ExportConfig>, ConfigError>) -> (String, String) {
        match r {
            Err(ConfigError::Invalid { key, message }) => (key, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn each_scheme_is_known_and_others_are_named() {
        for (u, s) in [
            ("s3://b/p", StoreScheme::S3),
            ("gs://b/p", StoreScheme::Gcs),
            ("az://c/p", StoreScheme::Azure),
            ("file:///var/lib/x", StoreScheme::File),
        ] {
            let c = export_config("tables[0].export", Some(raw(u)), None)
                .unwrap()
                .unwrap();
            assert_eq!(c.scheme, s, "{u}");
            assert_eq!(c.zstd_level, 3);
        }
        let (key, msg) = err(export_config(
            "tables[0].export",
            Some(raw("ftp://h/p")),
            None,
        ));
        assert_eq!(key, "tables[0].export.url");
        assert!(msg.contains("unknown scheme \"ftp\""), "{msg}");
        let (_, msg) = err(export_config(
            "tables[0].export",
            Some(raw("s3:///p")),
            None,
        ));
        assert!(msg.contains("no bucket"), "{msg}");
        let (_, msg) = err(export_config("t", Some(raw("file://host/p")), None));
        assert!(msg.contains("file:///absolute/path"), "{msg}");
    }

    #[test]
    fn credentials_are_refused_in_the_url_and_the_options() {
        let (key, msg) = err(export_config("t", Some(raw("s3://AKIA:secret@b/p")), None));
        assert_eq!(key, "t.url");
        assert!(
            msg.contains("must not hold credentials") && !msg.contains("secret@"),
            "{msg}"
        );
        let mut r = raw("s3://b/p");
        r.options = Some(BTreeMap::from([(
            "aws_secret_access_key".to_owned(),
            toml_value::Scalar::Text("x".into()),
        )]));
        let (key, msg) = err(export_config("t", Some(r), None));
        assert_eq!(key, "t.options.aws_secret_access_key");
        assert!(msg.contains("is a credential"), "{msg}");
    }

    #[test]
    fn options_are_the_stores_own_and_a_table_overrides_the_shared_store() {
        let mut shared = raw("s3://shared/p");
        shared.options = Some(BTreeMap::from([
            (
                "endpoint".to_owned(),
                toml_value::Scalar::Text("http://127.0.0.1:9".into()),
            ),
            ("allow_http".to_owned(), toml_value::Scalar::Bool(true)),
        ]));
        let own = raw("s3://own/q");
        let c = export_config("t", Some(own), Some(&shared))
            .unwrap()
            .unwrap();
        assert_eq!(c.url.as_str(), "s3://own/q");
        assert_eq!(c.options["allow_http"], "true");
        assert_eq!(export_config("t", None, None).unwrap(), None);
        let (key, msg) = err(export_config("t", Some(RawExport::default()), None));
        assert_eq!(key, "t.url");
        assert!(msg.contains("required"));
        let mut bad = raw("s3://b/p");
        bad.options = Some(BTreeMap::from([(
            "endpiont".to_owned(),
            toml_value::Scalar::Text("x".into()),
        )]));
        let (key, _) = err(export_config("t", Some(bad), None));
        assert_eq!(key, "t.options.endpiont");
    }
}
