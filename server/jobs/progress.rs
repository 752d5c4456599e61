//! Live progress: one LISTEN connection per process turns the database's job-progress
//! notifications into an in-process broadcast that Server-Sent Events streams subscribe to.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};

pub const CHANNEL: &str = "slipway_job_progress";

/// Subscribe to receive the ids of jobs that changed.
#[derive(Clone)]
pub struct ProgressHub {
    sender: broadcast::Sender<i64>,
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
                            if let Ok(id) = notification.payload().parse() {
                                // No subscriber is fine: nobody is watching.
                                let _ = publisher.send(id);
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

    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.sender.subscribe()
    }
}
