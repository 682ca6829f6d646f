//! Which of the five database URL sources wins, and reading a URL file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::{invalid, ConfigError};
use super::url::DatabaseUrl;

/// The conventional variable that overrides every other database URL source.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// Which source supplied the database URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSource {
    /// `DATABASE_URL`
    DatabaseUrlEnv,
    /// `PARTWARDEN__DATABASE__URL`
    EnvUrl,
    /// `PARTWARDEN__DATABASE__URL_FILE`
    EnvUrlFile,
    /// `database.url` in the config file
    FileUrl,
    /// `database.url_file` in the config file
    FileUrlFile,
}

impl UrlSource {
    /// The variable or key name, as used in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            UrlSource::DatabaseUrlEnv => "DATABASE_URL",
            UrlSource::EnvUrl => "PARTWARDEN__DATABASE__URL",
            UrlSource::EnvUrlFile => "PARTWARDEN__DATABASE__URL_FILE",
            UrlSource::FileUrl => "database.url",
            UrlSource::FileUrlFile => "database.url_file",
        }
    }

    /// The key that errors about this source's URL name.
    fn key(self) -> &'static str {
        match self {
            UrlSource::DatabaseUrlEnv => self.as_str(),
            UrlSource::EnvUrl | UrlSource::FileUrl => "database.url",
            UrlSource::EnvUrlFile | UrlSource::FileUrlFile => "database.url_file",
        }
    }
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A URL file that was chosen but cannot be used, as (key, message). Kept rather than
/// raised: only commands that talk to the database must fail over it.
pub(super) type UrlProblem = Option<(String, String)>;

/// What URL resolution decided, for [`DatabaseConfig`](super::DatabaseConfig).
pub(super) struct ResolvedUrl {
    pub(super) url: Option<DatabaseUrl>,
    pub(super) source: Option<UrlSource>,
    pub(super) url_file: Option<PathBuf>,
    pub(super) problem: UrlProblem,
}

/// Every URL source's value. The config crate merges the file and the environment into
/// one `database.url` (and `url_file`), so the variables seen tell which level set it.
struct UrlSources {
    database_url_env: Option<String>,
    url: Option<String>,
    url_file: Option<PathBuf>,
    url_from_env: bool,
    url_file_from_env: bool,
}

impl UrlSources {
    fn new(
        url: Option<String>,
        url_file: Option<String>,
        env: &[(String, String)],
        env_keys: &BTreeMap<String, String>,
    ) -> UrlSources {
        UrlSources {
            database_url_env: env
                .iter()
                .rev()
                .find(|(k, v)| k == DATABASE_URL_ENV && !v.is_empty())
                .map(|(_, v)| v.clone()),
            url: url.filter(|s| !s.trim().is_empty()),
            url_file: url_file.filter(|s| !s.trim().is_empty()).map(PathBuf::from),
            url_from_env: env_keys.contains_key("database.url"),
            url_file_from_env: env_keys.contains_key("database.url_file"),
        }
    }

    /// The sources that are set, in precedence order: the first wins (see the module docs).
    fn candidates(&self) -> Vec<UrlSource> {
        [
            (UrlSource::DatabaseUrlEnv, self.database_url_env.is_some()),
            (UrlSource::EnvUrl, self.url.is_some() && self.url_from_env),
            (
                UrlSource::EnvUrlFile,
                self.url_file.is_some() && self.url_file_from_env,
            ),
            (UrlSource::FileUrl, self.url.is_some() && !self.url_from_env),
            (
                UrlSource::FileUrlFile,
                self.url_file.is_some() && !self.url_file_from_env,
            ),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(source, _)| source)
        .collect()
    }

    /// The URL text `source` holds; for a URL file, its trimmed contents or the problem.
    fn text(&self, source: UrlSource) -> Result<String, (String, String)> {
        const SET: &str = "candidate implies a value";
        match source {
            UrlSource::DatabaseUrlEnv => Ok(self.database_url_env.clone().expect(SET)),
            UrlSource::EnvUrl | UrlSource::FileUrl => Ok(self.url.clone().expect(SET)),
            UrlSource::EnvUrlFile | UrlSource::FileUrlFile => {
                read_url_file(self.url_file.as_ref().expect("candidate implies a path"))
            }
        }
    }
}

/// Resolve the database URL from `[database]` (file and environment merged) and
/// `DATABASE_URL`. Lower-ranked sources that are also set are reported as a warning.
pub(super) fn resolve_url(
    url: Option<String>,
    url_file: Option<String>,
    env: &[(String, String)],
    env_keys: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<ResolvedUrl, ConfigError> {
    let sources = UrlSources::new(url, url_file, env, env_keys);
    let candidates = sources.candidates();
    if candidates.len() > 1 {
        let ignored: Vec<&str> = candidates[1..].iter().map(|s| s.as_str()).collect();
        warnings.push(format!(
            "database URL taken from {}; also set but ignored: {}",
            candidates[0],
            ignored.join(", ")
        ));
    }
    let mut resolved = ResolvedUrl {
        url: None,
        source: None,
        url_file: None,
        problem: None,
    };
    if let Some(&source) = candidates.first() {
        match sources.text(source) {
            Ok(text) => {
                resolved.url = Some(parse_url(source, &text, warnings)?);
                resolved.source = Some(source);
            }
            Err(problem) => resolved.problem = Some(problem),
        }
    }
    resolved.url_file = sources.url_file;
    Ok(resolved)
}

fn read_url_file(path: &Path) -> Result<String, (String, String)> {
    let problem = |message| ("database.url_file".to_owned(), message);
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Ok(_) => Err(problem(format!("{} is empty", path.display()))),
        Err(e) => Err(problem(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Parse the chosen URL. Unlike an unreadable URL file, a bad URL fails the load.
fn parse_url(
    source: UrlSource,
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<DatabaseUrl, ConfigError> {
    let parsed = DatabaseUrl::new(text.trim()).map_err(|m| {
        // The key alone would not tell an operator which variable to fix.
        let origin = match source {
            UrlSource::EnvUrl => " (from PARTWARDEN__DATABASE__URL)",
            UrlSource::EnvUrlFile => " (file named by PARTWARDEN__DATABASE__URL_FILE)",
            _ => "",
        };
        invalid(source.key(), format!("{m}{origin}"))
    })?;
    if source == UrlSource::FileUrl && parsed.has_password() {
        warnings.push(
            "database.url in the config file contains a password; prefer DATABASE_URL or \
             database.url_file (a mounted secret)"
                .to_owned(),
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{env, load};
    use crate::config::Config;

    #[test]
    fn database_url_precedence() {
        let file = "[database]\nurl = \"postgres://file@h/db\"\n";
        let dir =
            std::env::temp_dir().join(format!("partwarden-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("url");
        std::fs::write(&secret, "  postgres://secret:pw@h/db\n").unwrap();
        let secret_s = secret.display().to_string();
        let file_with_url_file = format!("[database]\nurl_file = \"{secret_s}\"\n");
        let both_in_file =
            format!("[database]\nurl = \"postgres://file@h/db\"\nurl_file = \"{secret_s}\"\n");

        let url = |toml: Option<&str>, e: &[(&str, &str)]| {
            let c = Config::from_sources(toml, &env(e)).unwrap();
            let u = c.database_url().unwrap().expose().to_owned();
            (u, c.database.url_source.unwrap(), c.warnings())
        };

        let (u, s, _) = url(Some(file), &[]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://file@h/db", UrlSource::FileUrl)
        );
        let (u, s, w) = url(Some(file), &[("DATABASE_URL", "postgres://env@h/db")]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://env@h/db", UrlSource::DatabaseUrlEnv)
        );
        assert!(
            w.iter().any(|w| w.contains("ignored: database.url")),
            "{w:?}"
        );
        let (u, s, _) = url(
            Some(file),
            &[
                ("DATABASE_URL", "postgres://env@h/db"),
                ("PARTWARDEN__DATABASE__URL", "postgres://pw@h/db"),
            ],
        );
        assert_eq!(
            (u.as_str(), s),
            ("postgres://env@h/db", UrlSource::DatabaseUrlEnv)
        );
        let (u, s, _) = url(
            Some(file),
            &[("PARTWARDEN__DATABASE__URL", "postgres://pw@h/db")],
        );
        assert_eq!((u.as_str(), s), ("postgres://pw@h/db", UrlSource::EnvUrl));
        // The environment's url_file beats the file's url.
        let (u, s, _) = url(Some(file), &[("PARTWARDEN__DATABASE__URL_FILE", &secret_s)]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://secret:pw@h/db", UrlSource::EnvUrlFile)
        );
        // ...but not the environment's url.
        let (u, s, _) = url(
            None,
            &[
                ("PARTWARDEN__DATABASE__URL_FILE", &secret_s),
                ("PARTWARDEN__DATABASE__URL", "postgres://pw@h/db"),
            ],
        );
        assert_eq!((u.as_str(), s), ("postgres://pw@h/db", UrlSource::EnvUrl));
        let (u, s, _) = url(Some(&file_with_url_file), &[]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://secret:pw@h/db", UrlSource::FileUrlFile)
        );
        // In the file, url beats url_file.
        let (u, s, w) = url(Some(&both_in_file), &[]);
        assert_eq!(
            (u.as_str(), s),
            ("postgres://file@h/db", UrlSource::FileUrl)
        );
        assert!(
            w.iter().any(|w| w.contains("ignored: database.url_file")),
            "{w:?}"
        );
        // Empty DATABASE_URL counts as unset.
        let (u, _, _) = url(Some(file), &[("DATABASE_URL", "")]);
        assert_eq!(u, "postgres://file@h/db");

        // An unusable url_file is not fatal at load, only when the URL is needed.
        let missing = format!(
            "[database]\nurl_file = \"{}\"\n",
            dir.join("missing").display()
        );
        let c = load(&missing).unwrap();
        let err = c.database_url().unwrap_err();
        assert_eq!(err.key(), Some("database.url_file"));
        assert!(
            c.warnings()
                .iter()
                .any(|w| w.starts_with("database.url_file: cannot read")),
            "{:?}",
            c.warnings()
        );
        // ...and not consulted at all when DATABASE_URL is set.
        let c = Config::from_sources(Some(&missing), &env(&[("DATABASE_URL", "postgres://h/db")]))
            .unwrap();
        assert_eq!(c.database_url().unwrap().expose(), "postgres://h/db");
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let c = load(&format!("[database]\nurl_file = \"{}\"\n", empty.display())).unwrap();
        assert!(c
            .database_url()
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
