//! Helpers shared by the tests of every part of the configuration.

use super::{Config, ConfigError};

pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn load(toml: &str) -> Result<Config, ConfigError> {
    Config::from_sources(Some(toml), &[])
}

/// The error for `toml`, which must be `Invalid` for `key`.
pub(super) fn invalid_key(toml: &str, key: &str) -> String {
    match load(toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e @ ConfigError::Invalid { .. }) => {
            assert_eq!(e.key(), Some(key), "wrong key in {e}");
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{key}: ")), "{msg}");
            assert_eq!(e.exit_code(), 2);
            msg
        }
        Err(e) => panic!("expected Invalid for {key}, got {e:?}"),
    }
}

pub(super) fn table(extra: &str) -> String {
    format!("[[tables]]\nname = \"events\"\n{extra}\n")
}
