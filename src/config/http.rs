//! `[http]`: where `/metrics` and the health endpoints listen.

use std::net::SocketAddr;

use serde::Deserialize;

use super::error::{invalid, ConfigError};

/// Default HTTP address. Not 9187: that is postgres_exporter, often the sidecar next door.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9464";

/// `[http]`
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`, `/status`. Default 0.0.0.0:9464.
    pub listen: SocketAddr,
    /// Series per partition on `/metrics` (size, rows, vector index size). Default true;
    /// false keeps only per-table series, for those who watch cardinality (30,000
    /// partitions are 60,000+ series).
    pub per_partition_metrics: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHttp {
    listen: Option<String>,
    per_partition_metrics: Option<bool>,
}

pub(super) fn http_config(
    raw: RawHttp,
    warnings: &mut Vec<String>,
) -> Result<HttpConfig, ConfigError> {
    let text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = text.trim().parse().map_err(|_| {
        invalid(
            "http.listen",
            format!("{text:?} is not a socket address: expected IP:port, such as \"0.0.0.0:9464\" or \"[::]:9464\""),
        )
    })?;
    if listen.port() == 0 {
        return Err(invalid(
            "http.listen",
            format!("port must not be 0 (got {text:?}): Prometheus needs a fixed port"),
        ));
    }
    if listen.port() == 9187 {
        warnings.push(
            "http.listen uses port 9187, postgres_exporter's default: it will clash with an exporter sidecar".to_owned(),
        );
    }
    Ok(HttpConfig {
        listen,
        per_partition_metrics: raw.per_partition_metrics.unwrap_or(true),
    })
}
