//! `/` (the status page), `/metrics`, `/healthz`, `/readyz` and `/status` over HTTP/1.1:
//! an axum router served by hyper, with the limits a sidecar's port needs.
//!
//! * keep-alive, with every connection closed after [`IDLE_TIMEOUT`] without a byte
//!   read, and after [`HEADER_TIMEOUT`] if a request's header is still incomplete;
//! * a write that cannot make progress for [`WRITE_TIMEOUT`] closes the connection (a
//!   client that stops reading cannot hold a task and a buffer forever);
//! * at most [`MAX_CONNECTIONS`] connections: beyond that new ones are closed at once, and
//!   at most [`MAX_IN_FLIGHT`] requests are handled at the same time;
//! * graceful shutdown: on shutdown the listener closes, requests under way finish, idle
//!   connections are closed.
//!
//! The endpoints only read memory: none touches the database.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::debug;

/// How long a connection may stay open without sending a byte.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request's header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write may make no progress.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most (each is a task and two small buffers).
pub const MAX_CONNECTIONS: usize = 4096;
/// Requests handled at the same time at most (the rest wait their turn).
pub const MAX_IN_FLIGHT: usize = 64;
/// Largest request header accepted.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// What the endpoints serve.
pub trait Endpoints: Send + Sync + 'static {
    /// Prometheus text exposition.
    fn metrics(&self) -> String;
    /// Database reachable and configuration valid.
    fn ready(&self) -> Result<(), String>;
    /// JSON document of the last run and the partitions.
    fn status_json(&self) -> String;
    /// The same as an HTML page (`telemetry::page`).
    fn status_page(&self) -> String;
}

type Shared = Arc<dyn Endpoints>;

fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.into(),
    )
        .into_response()
}

async fn metrics(State(e): State<Shared>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        e.metrics(),
    )
        .into_response()
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n")
}

async fn readyz(State(e): State<Shared>) -> Response {
    match e.ready() {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn only_get() -> Response {
    text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n")
}

async fn status(State(e): State<Shared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        e.status_json(),
    )
        .into_response()
}

async fn page(State(e): State<Shared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        e.status_page(),
    )
        .into_response()
}

/// The routes (GET, and HEAD through axum's GET routes); anything else is 404, other
/// methods on known paths 405.
pub fn router(endpoints: Shared) -> Router {
    Router::new()
        .route("/", get(page).fallback(only_get))
        .route("/metrics", get(metrics).fallback(only_get))
        .route("/healthz", get(healthz).fallback(only_get))
        .route("/readyz", get(readyz).fallback(only_get))
        .route("/status", get(status).fallback(only_get))
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "not found: try /, /metrics, /healthz, /readyz or /status\n",
            )
        })
        .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .with_state(endpoints)
}

/// Serves until `shutdown` turns true, then lets requests under way finish.
pub async fn serve(listener: TcpListener, endpoints: Shared, mut shutdown: watch::Receiver<bool>) {
    let app = router(endpoints);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    debug!("http accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("http: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut io = tokio_io_timeout::TimeoutStream::new(stream);
        io.set_read_timeout(Some(IDLE_TIMEOUT));
        io.set_write_timeout(Some(WRITE_TIMEOUT));
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES)
            .keep_alive(true)
            .serve_connection(TokioIo::new(Box::pin(io)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!("http connection: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Requests under way get a moment; idle keep-alive connections close at once.
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    struct Fake(bool);
    impl Endpoints for Fake {
        fn metrics(&self) -> String {
            "m 1\n".into()
        }
        fn ready(&self) -> Result<(), String> {
            if self.0 {
                Ok(())
            } else {
                Err("database unreachable".into())
            }
        }
        fn status_json(&self) -> String {
            "{}".into()
        }
        fn status_page(&self) -> String {
            "<!DOCTYPE html>".into()
        }
    }

    async fn code(up: bool, method: Method, uri: &str) -> (u16, String) {
        let (code, ct, _, _) = request(up, method, uri).await;
        (code, ct)
    }

    /// (status, content type, cache control, body).
    async fn request(up: bool, method: Method, uri: &str) -> (u16, String, String, String) {
        let r = router(Arc::new(Fake(up)))
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let cache = r
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let code = r.status().as_u16();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (code, ct, cache, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn routes() {
        assert_eq!(
            code(true, Method::GET, "/metrics").await,
            (200, "text/plain; version=0.0.4; charset=utf-8".into())
        );
        assert_eq!(code(true, Method::GET, "/metrics?x=1").await.0, 200);
        assert_eq!(code(true, Method::HEAD, "/healthz").await.0, 200);
        assert_eq!(code(true, Method::GET, "/readyz").await.0, 200);
        assert_eq!(code(false, Method::GET, "/readyz").await.0, 503);
        assert_eq!(
            code(true, Method::GET, "/status").await,
            (200, "application/json".into())
        );
        assert_eq!(code(true, Method::GET, "/nope").await.0, 404);
        assert_eq!(code(true, Method::POST, "/metrics").await.0, 405);
        // The page, whatever the database does.
        for up in [true, false] {
            let (code, ct, cache, body) = request(up, Method::GET, "/").await;
            assert_eq!((code, ct.as_str()), (200, "text/html; charset=utf-8"));
            assert_eq!(cache, "no-store");
            assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
        }
        let (code, ct, _, body) = request(true, Method::HEAD, "/").await;
        assert_eq!(
            (code, ct.as_str(), body.as_str()),
            (200, "text/html; charset=utf-8", "")
        );
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            assert_eq!(request(true, method, "/").await.0, 405);
        }
        let (_, _, _, hint) = request(true, Method::GET, "/nope").await;
        assert!(hint.contains("try /, /metrics"), "{hint}");
    }

    /// Malformed requests get 400 from the server (hyper's parser), and it keeps serving.
    #[tokio::test]
    async fn malformed_requests_are_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_tx, rx) = watch::channel(false);
        tokio::spawn(serve(listener, Arc::new(Fake(true)), rx));
        for junk in ["garbage\r\n\r\n", "GET /metrics SPDY/3\r\n\r\n", "\r\n\r\n"] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(junk.as_bytes()).await.unwrap();
            let mut out = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(6), s.read_to_string(&mut out)).await;
            assert!(
                out.is_empty() || out.starts_with("HTTP/1.1 400"),
                "{junk:?}: {out}"
            );
        }
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}
