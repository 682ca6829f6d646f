//! What partwarden shows the world while it runs: Prometheus metrics ([`metrics`], through
//! the `metrics` crate) and the HTTP endpoints that serve them with health and status
//! ([`http`], axum on hyper).

pub(crate) mod http;
pub(crate) mod metrics;
