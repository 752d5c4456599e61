//! Live progress: one LISTEN connection per process turns the database's progress notifications
//! (of jobs and of environments) into an in-process broadcast that Server-Sent Events streams
//! subscribe to.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};

pub const CHANNEL: &str = "slipway_job_progress";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A job's state or one of its steps.
    Job(i64),
    /// An environment (a new timeline entry).
    Environment(uuid::Uuid),
}

impl Change {
    fn parse(payload: &str) -> Option<Change> {
        match payload.strip_prefix("environment:") {
            Some(id) => id.parse().ok().map(Change::Environment),
            None => payload.parse().ok().map(Change::Job),
        }
    }
}

/// Subscribe to receive what changed.
#[derive(Clone)]
pub struct ProgressHub {
    sender: broadcast::Sender<Change>,
    stop: watch::Sender<bool>,
}

impl ProgressHub {
    /// Starts listening in the background (reconnecting as `PgListener` does).
    pub fn start(db: PgPool) -> Self {
        let (sender, _) = broadcast::channel(1024);
        let (stop, mut stopped) = watch::channel(false);
        let hub = ProgressHub { sender, stop };
        let publisher = hub.sender.clone();
        tokio::spawn(async move {
            let mut listener = match PgListener::connect_with(&db).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "live job progress unavailable; pages show it on reload");
                    return;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "live job progress unavailable; pages show it on reload");
                return;
            }
            loop {
                tokio::select! {
                    // Its connection must go back to the pool before the pool can close.
                    _ = stopped.changed() => return,
                    received = listener.recv() => match received {
                        Ok(notification) => {
                            if let Some(change) = Change::parse(notification.payload()) {
                                // No subscriber is fine: nobody is watching.
                                let _ = publisher.send(change);
                            }
                        }
                        Err(e) => {
                            if db.is_closed() {
                                return;
                            }
                            tracing::debug!(error = %e, "job progress listener interrupted");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        });
        hub
    }

    /// Stops listening (at shutdown, before the pool closes).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
