//! The OpenAPI document covers the whole API: every `/api/v1` route of the route table the router
//! is built from is documented with its method, and nothing is documented that is not routed.
//! The document is read over HTTP, as a client would.

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use slipway::auth::Role;
use support::TestApp;

/// `GET /api/v1/openapi.json` as a developer.
async fn openapi_document(app: &TestApp) -> Value {
    let token = app.token(&[Role::Developer], &[Role::Developer]).await;
    let res = app
        .api(Method::GET, "/api/v1/openapi.json", &token, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test]
async fn every_api_route_is_in_the_openapi_document_with_its_method() {
    let app = TestApp::spawn().await;
    let document = openapi_document(&app).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );

    let routed: BTreeSet<(String, String)> = slipway::app::router::route_table()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/"))
        .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(operation) = item.get(method) {
                documented.insert((method.to_owned(), path.clone()));
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents no response"
                );
            }
        }
    }
    let missing: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(missing.is_empty(), "routed but not documented: {missing:?}");
    assert!(
        unrouted.is_empty(),
        "documented but not routed (or under another method): {unrouted:?}"
    );

    // Path parameters are declared where the path has them.
    for (path, item) in document["paths"].as_object().unwrap() {
        let in_path = path.matches('{').count();
        for operation in item.as_object().unwrap().values() {
            let declared = operation["parameters"]
                .as_array()
                .map_or(0, |ps| ps.iter().filter(|p| p["in"] == "path").count());
            assert_eq!(declared, in_path, "{path}: path parameters");
        }
    }
}

#[tokio::test]
async fn the_api_reference_page_lists_the_operations_without_javascript() {
    let app = TestApp::spawn().await;
    let browser = app.signed_in(&[Role::Developer]).await;
    let res = browser.get(app.url("/docs/api")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    for operation in [
        "POST /api/v1/platforms/{slug}/environments",
        "DELETE /api/v1/platforms/{slug}/members/{user_id}",
        "GET /api/v1/openapi.json",
    ] {
        assert!(html.contains(operation), "{operation} is not listed");
    }
    assert!(
        html.contains(r#"href="/docs/api""#),
        "the sidebar links the reference"
    );
}

/// The environment and job responses are documented by named schemas, each in the document's
/// components, not as free-form objects.
#[tokio::test]
async fn environment_and_job_responses_reference_named_schemas() {
    let app = TestApp::spawn().await;
    let document = openapi_document(&app).await;
    for (method, path, status, schema) in [
        (
            "get",
            "/api/v1/environments/{id}",
            "200",
            "EnvironmentDetail",
        ),
        (
            "post",
            "/api/v1/platforms/{slug}/environments",
            "201",
            "EnvironmentDetail",
        ),
        (
            "post",
            "/api/v1/environments/{id}/approve",
            "200",
            "EnvironmentOutcome",
        ),
        ("get", "/api/v1/jobs/{id}", "200", "JobDetail"),
        ("post", "/api/v1/jobs/{id}/retry", "200", "RetriedJob"),
    ] {
        let body = &document["paths"][path][method]["responses"][status]["content"]["application/json"]
            ["schema"];
        assert_eq!(
            body["$ref"],
            format!("#/components/schemas/{schema}"),
            "{method} {path} {status}: {body}"
        );
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema} is not in the components"
        );
    }
    // The job inside an environment is named too, down to its steps.
    let detail =
        serde_json::to_string(&document["components"]["schemas"]["EnvironmentDetail"]).unwrap();
    assert!(
        detail.contains("#/components/schemas/EnvironmentJob"),
        "{detail}"
    );
    let job = serde_json::to_string(&document["components"]["schemas"]["EnvironmentJob"]).unwrap();
    assert!(job.contains("#/components/schemas/StepView"), "{job}");
}
