//! PostgreSQL notices raised while a statement runs, handed to the code that ran it.
//!
//! sqlx offers no way to see a notice but its log event (target `sqlx::postgres::notice`,
//! NOTICE at INFO), and the default log filter keeps those out: most are `… does not
//! exist, skipping` of idempotent DDL. Some matter: pgvector says through a NOTICE that
//! an ivfflat index was built with too little data to train on ("little data") or that
//! an HNSW graph outgrew `maintenance_work_mem`. [`layer`], installed by the binary, sees
//! every notice whatever the log filter keeps, and gives those raised inside [`capture`]
//! to its caller, which logs them as warnings about the partition they concern.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{Filtered, LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

const TARGET: &str = "sqlx::postgres::notice";

type Sink = Arc<Mutex<Vec<String>>>;

tokio::task_local! {
    static SINK: Sink;
}

/// Runs `fut` and returns its output with the notices PostgreSQL sent while it ran (none
/// where [`layer`] is not installed). sqlx reads a connection in the task that awaits the
/// statement, so a notice's log event happens inside this scope.
pub async fn capture<F: Future>(fut: F) -> (F::Output, Vec<String>) {
    let sink: Sink = Arc::default();
    let out = SINK.scope(sink.clone(), fut).await;
    let notices = std::mem::take(&mut *sink.lock().unwrap_or_else(|e| e.into_inner()));
    (out, notices)
}

/// Collects notices for [`capture`]; see [`layer`].
pub struct NoticeLayer;

impl<S: Subscriber> Layer<S> for NoticeLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let _ = SINK.try_with(|sink| {
            let mut message = Message(None);
            event.record(&mut message);
            if let Some(m) = message.0 {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(m);
            }
        });
    }
}

/// The layer with a filter of its own, so that it sees notices of every severity however
/// the log filter is set, and nothing else.
pub fn layer<S>() -> Filtered<NoticeLayer, Targets, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    NoticeLayer.with_filter(Targets::new().with_target(TARGET, LevelFilter::TRACE))
}

struct Message(Option<String>);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && self.0.is_none() {
            self.0 = Some(format!("{value:?}"));
        }
    }
}
