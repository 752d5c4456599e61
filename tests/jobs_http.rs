//! The jobs page, the jobs API and the metrics, with real workers running a real job.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use slipway::auth::Role;
use slipway::clock::Clock;
use slipway::jobs::builtin;
use slipway::jobs::worker::{WorkerConfig, Workers};
use support::{TestApp, csrf_token};

async fn until_state(app: &TestApp, id: i64, state: &str) {
    let start = Instant::now();
    loop {
        let now: String = sqlx::query_scalar("SELECT state FROM job WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if now == state {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "job {id} is {now}, not {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn engineers_follow_retry_and_cancel_jobs() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let done = builtin::enqueue_selftest(&app.pool, 2, 0).await.unwrap();
    let workers = Workers::start(
        app.pool.clone(),
        builtin::registry(Duration::from_secs(3600)),
        Clock::system(),
        WorkerConfig::default(),
    );
    until_state(&app, done, "completed").await;
    workers.shutdown(Duration::from_secs(5)).await;

    // The API: list and detail with steps and logs.
    let list: serde_json::Value = app
        .api(Method::GET, "/api/v1/jobs?state=completed", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == done && j["kind"] == "slipway.selftest")
    );
    let job: serde_json::Value = app
        .api(Method::GET, &format!("/api/v1/jobs/{done}"), &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "completed");
    assert_eq!(job["steps"][1]["name"], "step-2");
    assert!(
        job["steps"][1]["log"][0]
            .as_str()
            .unwrap()
            .contains("step-2 done by worker process")
    );

    // Cancel a queued job, then retry it.
    let queued = builtin::enqueue_selftest(&app.pool, 1, 0).await.unwrap();
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/jobs/{queued}/cancel"),
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["state"],
        "cancelled"
    );
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/jobs/{queued}/cancel"),
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "already cancelled");
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/jobs/{queued}/retry"),
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/jobs/{done}/retry"),
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "a completed job is not retried"
    );

    // The page shows the steps and their logs, and offers cancel on the waiting job.
    let browser = app.signed_in(&[Role::PlatformEngineer]).await;
    let page = browser
        .get(app.url(&format!("/jobs/{done}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("step-1") && page.contains("done by worker process"),
        "{page}"
    );
    let page = browser
        .get(app.url(&format!("/jobs/{queued}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = browser
        .post(app.url(&format!("/jobs/{queued}/cancel")))
        .form(&[("_csrf", csrf_token(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let list = browser
        .get(app.url("/jobs?state=cancelled"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains(&format!("#{queued}")));
    // Filters combine, and a state that does not exist is named, not an empty list.
    let page: serde_json::Value = app
        .api(
            Method::GET,
            "/api/v1/jobs?state=cancelled&kind=slipway.selftest&limit=1",
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], queued);
    let res = app
        .api(Method::GET, "/api/v1/jobs?state=finished", &token, None)
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "state");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_event WHERE subject = $1 ORDER BY id")
            .bind(format!("job:{queued}"))
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actions, ["job.cancelled", "job.retried", "job.cancelled"]);

    // Metrics: queue depth per state and this process's counters. Completed jobs are history,
    // counted by `slipway_jobs_completed_total`, not a gauge.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("state=\"completed\""), "{metrics}");
    assert!(
        metrics.contains("slipway_jobs{state=\"available\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("slipway_jobs{state=\"cancelled\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE slipway_job_claim_latency_seconds histogram"));
    assert!(metrics.contains("slipway_job_run_seconds_bucket{le=\"+Inf\"} "));
    assert!(metrics.contains("slipway_jobs_completed_total "));
}

#[tokio::test]
async fn a_job_page_streams_its_progress_until_the_job_is_done() {
    let app = TestApp::spawn().await;
    let browser = app.signed_in(&[Role::PlatformEngineer]).await;
    let id = builtin::enqueue_selftest(&app.pool, 3, 100).await.unwrap();
    let page = browser
        .get(app.url(&format!("/jobs/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(r#"data-job-events="/jobs/{id}/events""#)),
        "the page subscribes while the job runs"
    );

    let mut stream = browser
        .get(app.url(&format!("/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The first event is the job as it is now, read before any worker runs.
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = stream.chunk().await.unwrap().expect("the first snapshot");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let workers = Workers::start(
        app.pool.clone(),
        builtin::registry(Duration::from_secs(3600)),
        Clock::system(),
        WorkerConfig::default(),
    );
    // Then changes as they come; the stream ends by itself when the job is finished.
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert!(read.is_ok(), "the stream ended with the job:\n{text}");
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        events.len() >= 4,
        "a snapshot, then changes: {}",
        events.len()
    );
    assert_eq!(events[0]["job"]["state"], "available");
    let last = events.last().unwrap();
    assert_eq!(last["job"]["state"], "completed");
    assert_eq!(last["steps"][2]["state"], "completed");
    assert!(
        events.iter().any(|e| e["steps"][1]["state"] == "running"),
        "steps are seen running"
    );
}
