//! What partwarden shows the world while it runs: Prometheus metrics (`metrics.rs`, through
//! the `metrics` and `metrics-exporter-prometheus` crates) and the HTTP endpoints that serve
//! them with health and status (`http.rs`, axum on hyper). Used by the daemon only.

pub(crate) mod http;
pub(crate) mod metrics;
