//! No error reaches a user raw: panics, malformed bodies, oversized bodies and slow handlers all
//! come back as the error page (browsers) or a problem document (API), with a request id.

mod support;

use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::StatusCode;
use reqwest::header;
use slipway::app::AppState;
use slipway::app::config::Config;
use support::TestApp;

fn troublesome_routes() -> Router<AppState> {
    async fn boom() -> &'static str {
        panic!("secret detail that must not leak")
    }
    async fn echo(Json(value): Json<serde_json::Value>) -> Json<serde_json::Value> {
        Json(value)
    }
    async fn slow() -> &'static str {
        // Never completes by itself: only the timeout can answer this request.
        std::future::pending::<()>().await;
        "unreachable"
    }
    Router::new()
        .route("/boom", get(boom))
        .route("/api/v1/boom", get(boom))
        .route("/api/v1/echo", post(echo))
        .route("/slow", get(slow))
}

async fn app() -> TestApp {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    TestApp::spawn_with_routes(config, Some(troublesome_routes())).await
}

#[tokio::test]
async fn a_panic_becomes_a_500_page_without_details() {
    let app = app().await;
    let res = app.get("/boom").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let html = res.text().await.unwrap();
    assert!(html.contains("Something went wrong on our side"));
    assert!(html.contains(&request_id), "the page quotes the request id");
    assert!(!html.contains("secret detail"));

    // The server is still alive afterwards.
    assert_eq!(
        app.get("/no-such-page").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_panic_in_the_api_becomes_a_problem_document() {
    let app = app().await;
    let res = app.get("/api/v1/boom").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("secret detail"));
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 500);
    assert!(problem["request_id"].is_string());
}

#[tokio::test]
async fn malformed_json_is_a_400_problem_that_says_why() {
    let app = app().await;
    let res = app
        .client
        .post(app.url("/api/v1/echo"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: serde_json::Value = res.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("json"),
        "{problem}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = app().await;
    let big = format!("\"{}\"", "x".repeat(2 * 1024 * 1024));
    let res = app
        .client
        .post(app.url("/api/v1/echo"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_request_that_never_finishes_times_out_with_504() {
    let app = app().await;
    let res = app.get("/slow").await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(res.text().await.unwrap().contains("took too long"));
}
