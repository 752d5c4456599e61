//! `slipway env watch ID`: follows the environment's Server-Sent Events until it settles, and
//! reconnects when the stream drops (each connection starts with a snapshot, so nothing is
//! missed).

use std::time::{Duration, Instant};

use reqwest::Method;

use super::ClientError;
use super::api::{Api, checked};
use super::output::EnvironmentDetail;

/// How a watch ends: states it waits for, and states that end it in failure.
fn settled(state: &str, tearing_down: bool) -> Option<Result<(), String>> {
    match state {
        "ready" if !tearing_down => Some(Ok(())),
        "torn_down" if tearing_down => Some(Ok(())),
        "failed" | "rejected" | "cancelled" | "expired" | "torn_down" | "ready" => {
            Some(Err(state.to_owned()))
        }
        _ => None,
    }
}

/// Consecutive failed connections before giving up.
const RECONNECTS: u32 = 5;

pub async fn watch(
    api: &Api,
    id: &str,
    json: bool,
    timeout: Option<u64>,
) -> Result<(), ClientError> {
    let deadline = timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let follow = async {
        let mut failures = 0;
        let mut last_line = String::new();
        let mut tearing_down: Option<bool> = None;
        loop {
            let response = api
                .request(Method::GET, &format!("/environments/{id}/events"))
                .header("Accept", "text/event-stream")
                .send()
                .await;
            let mut response = match response {
                Ok(response) => checked(response).await?,
                Err(e) if failures < RECONNECTS => {
                    failures += 1;
                    eprintln!("(reconnecting: {})", api.unreachable(&e));
                    tokio::time::sleep(Duration::from_secs(1 << failures)).await;
                    continue;
                }
                Err(e) => return Err(api.unreachable(&e)),
            };
            let mut buffer = String::new();
            loop {
                let chunk = match response.chunk().await {
                    Ok(Some(chunk)) => chunk,
                    // The server ended the stream (the environment is finished) or it dropped.
                    Ok(None) | Err(_) => break,
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let Some(data) = event_data(&event) else {
                        continue;
                    };
                    failures = 0;
                    if data == "null" {
                        return Err(ClientError::Ended(format!(
                            "environment {id} is gone, or no longer visible to you"
                        )));
                    }
                    if json {
                        println!("{data}");
                    }
                    let detail: EnvironmentDetail = serde_json::from_str(&data).map_err(|e| {
                        ClientError::Local(format!("an event this client does not understand: {e}"))
                    })?;
                    let tearing = *tearing_down.get_or_insert(matches!(
                        detail.state.as_str(),
                        "tearing_down" | "torn_down"
                    ));
                    if !json {
                        // Steps while the job works; a settled state says it all (the last
                        // step may still be finishing its bookkeeping).
                        let working = settled(&detail.state, tearing).is_none();
                        let line = match detail.progress().filter(|_| working) {
                            Some(progress) => format!("{}: {progress}", detail.state),
                            None => detail.state.clone(),
                        };
                        if line != last_line {
                            println!("{} {line}", chrono::Utc::now().format("%H:%M:%S"));
                            last_line = line;
                        }
                    }
                    match settled(&detail.state, tearing) {
                        Some(Ok(())) => return Ok(()),
                        Some(Err(state)) => {
                            let failed_step =
                                detail.job.iter().flat_map(|j| &j.steps).find_map(|s| {
                                    s.error
                                        .as_ref()
                                        .map(|e| format!(" at step {}: {e}", s.name))
                                });
                            return Err(ClientError::Ended(format!(
                                "{} ended {state}{}",
                                detail.name,
                                failed_step.unwrap_or_default()
                            )));
                        }
                        None => {}
                    }
                }
            }
            failures += 1;
            if failures > RECONNECTS {
                return Err(ClientError::Unreachable {
                    url: api.base().to_owned(),
                    reason: "the event stream keeps dropping".into(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    match deadline {
        None => follow.await,
        Some(deadline) => tokio::time::timeout_at(deadline.into(), follow)
            .await
            .unwrap_or(Err(ClientError::TimedOut(timeout.unwrap_or(0)))),
    }
}

/// The `data:` of a `progress` event (keep-alive comments have none).
fn event_data(event: &str) -> Option<String> {
    let mut data = Vec::new();
    let mut kind = "message";
    for line in event.lines() {
        if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        } else if let Some(value) = line.strip_prefix("event:") {
            kind = value.trim();
        }
    }
    (kind == "progress" && !data.is_empty()).then(|| data.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_events_are_read_and_comments_skipped() {
        assert_eq!(
            event_data("event: progress\ndata: {\"a\":1}\n\n").as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(event_data(":\n\n"), None);
    }

    #[test]
    fn a_watch_waits_for_ready_or_for_torn_down_when_tearing_down() {
        assert_eq!(settled("provisioning", false), None);
        assert_eq!(settled("ready", false), Some(Ok(())));
        assert_eq!(settled("failed", false), Some(Err("failed".into())));
        assert_eq!(settled("tearing_down", true), None);
        assert_eq!(settled("torn_down", true), Some(Ok(())));
    }
}
