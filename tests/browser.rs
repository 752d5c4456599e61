//! End-to-end journeys in a real headless Chromium. Screenshots are saved under
//! `<target>/tmp/screenshots/` for people to look at.

mod support;

use std::time::Duration;

use fantoccini::Locator;
use slipway::auth::Role;
use support::browser::Browser;
use support::{PASSWORD, TestApp};

#[tokio::test]
async fn home_page_navigation_and_screenshot() {
    let app = TestApp::spawn().await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let browser = Browser::start().await;
    let c = &browser.client;

    // Not signed in: the portal sends us to the sign-in form, then back.
    c.goto(&app.url("/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");
    browser.screenshot("login").await;
    c.find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys("dev@example.com")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let home = reqwest::Url::parse(&app.url("/")).unwrap();
    // Submitting navigates; wait for the new page rather than for a fixed time.
    c.wait().for_url(&home).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Overview · Slipway");

    // The sidebar lists the pages, with the current one marked.
    let links = c
        .find_all(Locator::Css("nav[aria-label=Main] a"))
        .await
        .unwrap();
    let mut labels = Vec::new();
    for link in &links {
        labels.push(link.text().await.unwrap());
    }
    assert_eq!(
        labels,
        [
            "Overview",
            "Platforms",
            "My environments",
            "API reference",
            "System status"
        ]
    );
    let current = c
        .find(Locator::Css("nav a[aria-current=page]"))
        .await
        .unwrap();
    assert_eq!(current.text().await.unwrap(), "Overview");

    // The stylesheet loaded (content-hashed URL, allowed by the CSP): the layout is a grid.
    let display = c
        .execute(
            "return getComputedStyle(document.querySelector('.app')).display",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(display, "grid");
    // The simulated cloud is labelled on the page.
    let banner = c.find(Locator::Css(".banner-warning")).await.unwrap();
    assert!(banner.text().await.unwrap().contains("Simulated cloud"));
    let shot = browser.screenshot("home").await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "screenshot is not empty"
    );

    // Following the navigation moves the current marker.
    c.find(Locator::LinkText("System status"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_url(&reqwest::Url::parse(&app.url("/status")).unwrap())
        .await
        .unwrap();
    let heading = c.find(Locator::Css("main h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "System status");
    let current = c
        .find(Locator::Css("nav a[aria-current=page]"))
        .await
        .unwrap();
    assert_eq!(current.text().await.unwrap(), "System status");
    browser.screenshot("status").await;

    // An unknown address shows the 404 page inside the shell, with a way back.
    c.goto(&app.url("/nowhere")).await.unwrap();
    assert_eq!(
        c.find(Locator::Css("main h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Not Found"
    );
    c.find(Locator::LinkText("Back to the overview"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_url(&home).await.unwrap();

    browser.close().await;
}

/// Fills the field `id` (clearing it first).
async fn fill(c: &fantoccini::Client, id: &str, text: &str) {
    let field = c.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Clicks the element and waits until the browser shows the next page, at `path`.
///
/// A form often redirects back to the address it was posted from, so the address alone cannot
/// tell the next page from this one: it first waits until this page's document is gone.
async fn click_to(c: &fantoccini::Client, app: &TestApp, locator: Locator<'_>, path: &str) {
    let this_page = c.find(Locator::Css("html")).await.unwrap();
    c.find(locator).await.unwrap().click().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match this_page.tag_name().await {
            Err(e) if e.is_stale_element_reference() => break,
            // Chromium's word for the same, when the old document is torn down mid-call.
            Err(e) if e.to_string().contains("does not belong to the document") => break,
            Ok(_) => {}
            Err(e) => panic!("the page could not be read while waiting for the next one: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the click did not lead to a new page within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait()
        .for_url(&reqwest::Url::parse(&app.url(path)).unwrap())
        .await
        .unwrap();
}

async fn sign_in(c: &fantoccini::Client, app: &TestApp, email: &str) {
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", email).await;
    fill(c, "password", PASSWORD).await;
    click_to(c, app, Locator::Css("form[action='/login'] button"), "/").await;
}

#[tokio::test]
async fn define_journey_from_scope_to_an_approved_blueprint_and_a_ranked_backlog() {
    let app = TestApp::spawn().await;
    app.create_user("author@example.com", &[Role::PlatformEngineer], PASSWORD)
        .await;
    app.create_user("reviewer@example.com", &[Role::PlatformEngineer], PASSWORD)
        .await;
    let browser = Browser::start().await;
    let c = &browser.client;

    // The author starts a platform and adds the reviewer.
    sign_in(c, &app, "author@example.com").await;
    c.goto(&app.url("/platforms")).await.unwrap();
    fill(c, "p-name", "Payments platform").await;
    fill(c, "p-slug", "payments").await;
    fill(c, "p-team", "Platform team").await;
    click_to(
        c,
        &app,
        Locator::Css("form[action='/platforms'] button"),
        "/platforms/payments",
    )
    .await;
    fill(c, "m-email", "reviewer@example.com").await;
    click_to(
        c,
        &app,
        Locator::Css("form[action='/platforms/payments/members'] button"),
        "/platforms/payments",
    )
    .await;

    // Scope.
    c.find(Locator::LinkText("Scope"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("s-goals")).await.unwrap();
    fill(c, "s-goals", "Run payments on Kubernetes").await;
    fill(c, "s-regions", "eu-central-1").await;
    click_to(
        c,
        &app,
        Locator::Css("form[action='/platforms/payments/scope'] button"),
        "/platforms/payments/scope",
    )
    .await;
    browser.screenshot("define-scope").await;

    // Blueprint from the template, one field edited, submitted.
    c.goto(&app.url("/platforms/payments/blueprints"))
        .await
        .unwrap();
    click_to(
        c,
        &app,
        Locator::Css("input[name=from_template] ~ button"),
        "/platforms/payments/blueprints/1",
    )
    .await;
    c.find(Locator::LinkText("Edit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Sections are folded but the first; the environment type's opens from its title.
    c.wait()
        .for_element(Locator::XPath(
            "//details[.//input[@id='environment_types[2].node_group.max_size']]/summary",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let field = c
        .find(Locator::Id("environment_types[2].node_group.max_size"))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys("12").await.unwrap();
    // A connected service, added in a blank row of its folded section.
    c.find(Locator::XPath(
        "//details[.//input[@id='connected_services[0].name']]/summary",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    fill(c, "connected_services[0].name", "Ledger").await;
    fill(
        c,
        "connected_services[0].endpoint",
        "https://ledger.internal",
    )
    .await;
    browser.screenshot("define-edit").await;
    click_to(
        c,
        &app,
        Locator::Css("form.wide button[type=submit]"),
        "/platforms/payments/blueprints/2",
    )
    .await;
    c.find(Locator::Css("form[action$='/submit'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Same address before and after: wait for the new state instead.
    c.wait()
        .for_element(Locator::Css(".revision-head .badge-in_review"))
        .await
        .unwrap();
    let text = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("In review")
            && text.contains("environment_types[perf].node_group.max_size")
            && text.contains("Ledger"),
        "{text}"
    );
    click_to(
        c,
        &app,
        Locator::Css("form[action='/logout'] button"),
        "/login",
    )
    .await;

    // The reviewer approves.
    sign_in(c, &app, "reviewer@example.com").await;
    c.goto(&app.url("/platforms/payments/blueprints/2"))
        .await
        .unwrap();
    c.find(Locator::Css("input[name=verdict][value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(c, "r-comment", "Twelve nodes for perf is right.").await;
    c.find(Locator::Css("form[action$='/reviews'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = c
        .wait()
        .for_element(Locator::Css(".revision-head .badge-approved"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "Approved");
    browser.screenshot("define-approved").await;

    // The backlog is generated and one item moved up, with plain forms.
    c.goto(&app.url("/platforms/payments/backlog"))
        .await
        .unwrap();
    click_to(
        c,
        &app,
        Locator::Css("form[action$='/backlog/generate'] button"),
        "/platforms/payments/backlog",
    )
    .await;
    let said = c.find(Locator::Css("p.flash")).await.unwrap();
    assert!(
        said.text().await.unwrap().contains("added"),
        "the backlog page says what the generation did"
    );
    let rows = c
        .find_all(Locator::Css("table.backlog tbody tr"))
        .await
        .unwrap();
    assert!(rows.len() > 20, "one item per deliverable");
    let link = rows[2]
        .find(Locator::Css("td:nth-child(2) a"))
        .await
        .unwrap();
    let third = link.text().await.unwrap();
    let id = link
        .attr("href")
        .await
        .unwrap()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    click_to(
        c,
        &app,
        Locator::Css(&format!("#item-{id} td.order form:first-child button")),
        &format!("/platforms/payments/backlog#item-{id}"),
    )
    .await;
    let second = c
        .find(Locator::Css(
            "table.backlog tbody tr:nth-child(2) td:nth-child(2) a",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(second, third, "the item moved up one place");
    browser.screenshot("define-backlog").await;

    // With JavaScript, rows can be dragged: drag the fifth row onto the first.
    let fifth = c
        .find(Locator::Css(
            "table.backlog tbody tr:nth-child(5) td:nth-child(2) a",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    c.execute(
        "const rows = document.querySelectorAll('table.backlog tbody tr');
         const data = new DataTransfer();
         rows[4].dispatchEvent(new DragEvent('dragstart', { dataTransfer: data, bubbles: true }));
         rows[0].dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));",
        vec![],
    )
    .await
    .unwrap();
    // The page reloads once the move is saved.
    c.wait()
        .for_element(Locator::XPath(&format!(
            "//table[contains(@class,'backlog')]/tbody/tr[1]/td[2]/a[text()='{fifth}']"
        )))
        .await
        .unwrap();
    browser.close().await;
}

/// A developer requests an environment in the browser (choosing its type, seeing the cost and
/// the plan), and a platform engineer approves it from the dashboard; with JavaScript and
/// without it.
async fn environment_request_journey(javascript: bool) {
    let app = TestApp::spawn().await;
    let pe = |email: &'static str| {
        let app = &app;
        async move {
            let id = app
                .create_user(email, &[Role::PlatformEngineer, Role::Developer], PASSWORD)
                .await;
            let roles = [Role::PlatformEngineer, Role::Developer]
                .into_iter()
                .collect();
            let (_, token) = slipway::auth::tokens::create(&app.pool, id, "t", &roles, None)
                .await
                .unwrap();
            (id, token)
        }
    };
    let (_, author) = pe("author@example.com").await;
    let (reviewer_id, reviewer) = pe("reviewer@example.com").await;
    app.approved_platform("shop", &author, &reviewer, reviewer_id)
        .await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let browser = if javascript {
        Browser::start().await
    } else {
        Browser::without_javascript().await
    };
    let c = &browser.client;
    let label = if javascript { "js" } else { "no-js" };

    // The developer picks the type, fills the form and sees the estimate and plan.
    sign_in(c, &app, "dev@example.com").await;
    c.goto(&app.url("/platforms/shop")).await.unwrap();
    c.find(Locator::LinkText("Request an environment"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("r-type")).await.unwrap();
    c.find(Locator::Css("#r-type option[value='perf']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    if !javascript {
        c.find(Locator::Css("form[data-autosubmit] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    c.wait().for_element(Locator::Id("r-name")).await.unwrap();
    fill(c, "r-name", "checkout-load").await;
    fill(c, "r-purpose", "Load test of the checkout service").await;
    fill(c, "r-max", "12").await;
    if javascript {
        // The name is checked as it is typed; the estimate follows the fields.
        c.find(Locator::Id("r-purpose"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .for_element(Locator::XPath(
                "//p[@data-name-status][contains(., 'is available')]",
            ))
            .await
            .unwrap();
    } else {
        c.find(Locator::Css("button[value='preview']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    c.wait()
        .for_element(Locator::XPath(
            "//section[@id='preview']//td[contains(., '3–12 × m6i.xlarge')]",
        ))
        .await
        .unwrap();
    let preview = c
        .find(Locator::Id("preview"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(preview.contains("per month"), "{preview}");
    assert!(preview.contains("slipway:LeasePooledAccount"), "{preview}");
    browser
        .screenshot(&format!("environment-request-{label}"))
        .await;
    c.find(Locator::Css("button[value='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::XPath(
            "//span[@data-env-state][contains(., 'Awaiting approval')]",
        ))
        .await
        .unwrap();

    // The reviewer approves it from the dashboard.
    c.find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("email")).await.unwrap();
    sign_in(c, &app, "reviewer@example.com").await;
    c.goto(&app.url("/approvals")).await.unwrap();
    c.find(Locator::LinkText("shop/checkout-load"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("d-comment"))
        .await
        .unwrap();
    let page = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("eks:CreateCluster"),
        "the plan is on the page"
    );
    assert!(page.contains("per month"), "the cost is on the page");
    fill(c, "d-comment", "Go ahead").await;
    c.find(Locator::Css("form[action$='/approve'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::XPath(
            "//span[@data-env-state][normalize-space(.)='Approved']",
        ))
        .await
        .unwrap();
    browser
        .screenshot(&format!("environment-approved-{label}"))
        .await;
    let state: String =
        sqlx::query_scalar("SELECT state FROM environment WHERE name = 'checkout-load'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(state, "approved");
    browser.close().await;
}

#[tokio::test]
async fn environment_request_and_approval_in_the_browser() {
    environment_request_journey(true).await;
}

#[tokio::test]
async fn environment_request_and_approval_in_the_browser_without_javascript() {
    environment_request_journey(false).await;
}

/// An approved request's page follows provisioning live (no reload by the user) until the
/// environment is ready, shows how to connect, then follows the teardown to `torn_down`.
#[tokio::test]
async fn an_approved_environment_page_follows_provisioning_live_to_ready_then_teardown() {
    let app = TestApp::spawn().await;
    let (_, author_token) = app
        .user_with_token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    let (reviewer_id, reviewer) = app
        .user_with_token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    app.approved_platform("shop", &author_token, &reviewer, reviewer_id)
        .await;
    app.create_user("dev@example.com", &[Role::Developer], PASSWORD)
        .await;
    let dev: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM app_user WHERE email = 'dev@example.com'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let (_, dev_token) = slipway::auth::tokens::create(
        &app.pool,
        slipway::auth::UserId(dev),
        "t",
        &[Role::Developer].into_iter().collect(),
        None,
    )
    .await
    .unwrap();
    let res = app
        .api(
            reqwest::Method::POST,
            "/api/v1/platforms/shop/environments",
            &dev_token,
            Some(serde_json::json!({"environment_type": "dev", "name": "live", "purpose": "Watching it come up"})),
        )
        .await;
    let created: serde_json::Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let browser = Browser::start().await;
    let c = &browser.client;
    sign_in(c, &app, "dev@example.com").await;
    c.goto(&app.url(&format!("/environments/{id}")))
        .await
        .unwrap();
    let state = |label: &str| format!("//span[@data-env-state][normalize-space(.)='{label}']");
    c.wait()
        .for_element(Locator::XPath(&state("Awaiting approval")))
        .await
        .unwrap();

    // The simulated cloud takes a second or two per resource, as a real one takes minutes.
    let clock = slipway::clock::Clock::system();
    let cloud =
        slipway::provision::Cloud::Simulated(slipway::provision::simulated::SimulatedCloud::new(
            app.pool.clone(),
            Duration::from_millis(700),
        ));
    // The workers' own pool, as `slipway serve` has beside its web server's.
    let pool = app.db.pool().await;
    let workers = slipway::jobs::worker::Workers::start(
        pool.clone(),
        slipway::app::cli::job_registry(
            &pool,
            &support::worker_config(),
            cloud,
            clock.clone(),
            &app.base,
        ),
        clock,
        slipway::jobs::worker::WorkerConfig::default(),
    );
    let res = app
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/environments/{id}/approve"),
            &reviewer,
            Some(serde_json::json!({})),
        )
        .await;
    assert!(res.status().is_success());
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(&state("Provisioning")))
        .await
        .unwrap();
    browser.screenshot("environment-provisioning").await;
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(&state("Ready")))
        .await
        .unwrap();
    // Read in one go: the live page may swap its content between a find and a read.
    let page = c
        .execute("return document.querySelector('main').innerText", vec![])
        .await
        .unwrap();
    let page = page.as_str().unwrap();
    assert!(page.contains("How to connect"), "{page}");
    assert!(
        page.contains("shop-live"),
        "the cluster's name is on the page"
    );
    assert!(page.contains("kubernetes: completed"), "{page}");
    browser.screenshot("environment-ready").await;

    let res = app
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/environments/{id}/teardown"),
            &dev_token,
            Some(serde_json::json!({})),
        )
        .await;
    assert!(res.status().is_success());
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath(&state("Torn down")))
        .await
        .unwrap();
    let page = c
        .execute("return document.querySelector('main').innerText", vec![])
        .await
        .unwrap();
    assert!(
        !page.as_str().unwrap().contains("How to connect"),
        "a torn-down environment offers no way to connect to it"
    );
    browser.screenshot("environment-torn-down").await;
    workers.shutdown(Duration::from_secs(5)).await;
    browser.close().await;
}

/// A user who signs in with [`PASSWORD`], and an API token of theirs with all their roles.
async fn user_with_password_and_token(
    app: &TestApp,
    email: &str,
    roles: &[Role],
) -> (slipway::auth::UserId, String) {
    let id = app.create_user(email, roles, PASSWORD).await;
    let (_, token) = slipway::auth::tokens::create(
        &app.pool,
        id,
        "browser test",
        &roles.iter().copied().collect(),
        None,
    )
    .await
    .unwrap();
    (id, token)
}

/// axe-core's serious and critical violations on the current page, one line each.
async fn accessibility_violations(c: &fantoccini::Client, axe: &str) -> Vec<String> {
    c.execute(axe, vec![]).await.unwrap();
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(
               (r) => done(r.violations
                 .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                 .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')})`)),
               (e) => done([`axe failed: ${e}`]));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// Every page of the portal, on a phone (390 px) and a wide screen (1,440 px): nothing scrolls
/// sideways, the navigation folds behind a menu button on the phone, and axe-core finds no
/// serious or critical accessibility violation. Screenshots of each are saved for people.
#[tokio::test]
async fn every_page_fits_a_phone_and_a_wide_screen_and_passes_an_accessibility_check() {
    let app = TestApp::spawn().await;
    let (_, engineer) = user_with_password_and_token(
        &app,
        "lead@example.com",
        &[Role::Admin, Role::PlatformEngineer],
    )
    .await;
    let (reviewer_id, reviewer) = app
        .user_with_token(&[Role::PlatformEngineer], &[Role::PlatformEngineer])
        .await;
    app.approved_platform("shop", &engineer, &reviewer, reviewer_id)
        .await;
    let (_, developer) =
        user_with_password_and_token(&app, "dev@example.com", &[Role::Developer]).await;
    let post = |path: String, token: String, body: serde_json::Value| {
        let app = &app;
        async move {
            let res = app
                .api(reqwest::Method::POST, &path, &token, Some(body))
                .await;
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap();
            assert!(status.is_success(), "{path}: {body}");
            body
        }
    };
    let backlog = post(
        "/api/v1/platforms/shop/backlog/generate".into(),
        engineer.clone(),
        serde_json::json!({}),
    )
    .await;
    let item = backlog["items"][0]["id"].as_str().expect("a backlog item");
    let request = |name: &'static str| {
        post(
            "/api/v1/platforms/shop/environments".into(),
            developer.clone(),
            serde_json::json!({"environment_type": "dev", "name": name, "purpose": "A page to look at"}),
        )
    };
    let waiting = request("waiting").await["id"].as_str().unwrap().to_owned();
    let approved = request("approved").await["id"].as_str().unwrap().to_owned();
    post(
        format!("/api/v1/environments/{approved}/approve"),
        reviewer.clone(),
        serde_json::json!({}),
    )
    .await;
    let job: i64 = sqlx::query_scalar("SELECT job_id FROM environment WHERE id = $1::uuid")
        .bind(&approved)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    post(
        "/api/v1/platforms/shop/teams".into(),
        engineer.clone(),
        serde_json::json!({"name": "checkout", "aws_role_arn": "arn:aws:iam::111122223333:role/checkout"}),
    )
    .await;
    // A service as onboarding leaves it, for its page (onboarding itself needs a ready
    // environment; tests/exploit.rs goes through it).
    sqlx::query(
        "INSERT INTO service (id, platform_id, name, team_id, created_by, state, repository)
         SELECT gen_random_uuid(), t.platform_id, 'payments', t.id,
                (SELECT id FROM app_user ORDER BY created_at LIMIT 1), 'ready',
                'https://git.example.com/shop-service-payments'
         FROM team t WHERE t.name = 'checkout'",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    // A drift check's findings, for the drift page and the Maintain tab.
    sqlx::query(
        "INSERT INTO environment_drift (environment_id, checked_at, items)
         VALUES ($1::uuid, now(), '[{\"path\": \"EKS node group approved-nodes: scalingConfig.maxSize\",
                                     \"expected\": \"3\", \"actual\": \"9\"}]')",
    )
    .bind(&approved)
    .execute(&app.pool)
    .await
    .unwrap();

    // An upgrade awaiting a decision someone else asked for, for the upgrade page's forms.
    sqlx::query(
        "INSERT INTO environment_upgrade
             (id, environment_id, from_version, to_version, requested_by, approvals_required, state)
         SELECT gen_random_uuid(), $1::uuid, '1.35', '1.36', id, 1, 'awaiting_approval'
         FROM app_user WHERE email <> 'lead@example.com' ORDER BY created_at LIMIT 1",
    )
    .bind(&approved)
    .execute(&app.pool)
    .await
    .unwrap();

    // A roll-out whose first wave awaits approval, started by someone else, for its page.
    let rollout = uuid::Uuid::new_v4();
    for statement in [
        "INSERT INTO rollout (id, platform_id, revision, started_by, state, wave_count)
         SELECT $2, e.platform_id, 1, u.id, 'awaiting_approval', 1
         FROM environment e, app_user u
         WHERE e.id = $1::uuid AND u.email <> 'lead@example.com'
         ORDER BY u.created_at LIMIT 1",
        "INSERT INTO rollout_wave (rollout_id, wave, approvals_required) VALUES ($2, 0, 1)",
        "INSERT INTO rollout_environment
             (rollout_id, wave, position, environment_id, state, from_revision, changes)
         VALUES ($2, 0, 0, $1::uuid, 'pending', 1,
                 '[{\"resource\": \"PeerAuthentication istio-system/default\", \"effect\": \"update\",
                    \"fields\": [{\"path\": \"spec.mtls.mode\", \"from\": \"STRICT\", \"to\": \"PERMISSIVE\"}]}]')",
    ] {
        sqlx::query(statement)
            .bind(&approved)
            .bind(rollout)
            .execute(&app.pool)
            .await
            .unwrap();
    }

    let pages = [
        "/",
        "/status",
        "/profile",
        "/admin/users",
        "/admin/audit",
        "/admin/cloud",
        "/admin/sso",
        "/platforms",
        "/platforms/shop",
        "/platforms/shop/scope",
        "/platforms/shop/blueprints",
        "/platforms/shop/blueprints/1",
        "/platforms/shop/blueprints/1/edit",
        "/platforms/shop/backlog",
        &format!("/platforms/shop/backlog/{item}"),
        "/platforms/shop/environments/new",
        "/platforms/shop/webhook",
        "/platforms/shop/teams",
        "/platforms/shop/teams/checkout",
        "/platforms/shop/services",
        "/platforms/shop/services/payments",
        &format!("/environments/{approved}/handover"),
        &format!("/environments/{approved}/drift"),
        &format!("/environments/{approved}/upgrade"),
        "/platforms/shop/maintain",
        "/platforms/shop/rollouts",
        &format!("/platforms/shop/rollouts/{rollout}"),
        "/kubernetes-versions",
        "/environments",
        &format!("/environments/{waiting}"),
        &format!("/environments/{approved}"),
        "/approvals",
        "/notifications",
        "/jobs",
        &format!("/jobs/{job}"),
        "/docs/api",
        "/search?q=shop",
        "/nowhere",
    ];
    let axe = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/axe/node_modules/axe-core/axe.min.js"),
    )
    .expect("axe-core is installed by tests/run (npm ci --prefix tests/axe)");
    let browser = Browser::start().await;
    let c = &browser.client;
    let mut problems = Vec::new();
    for (width, height) in [(390, 844), (1440, 900)] {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.url("/login")).await.unwrap();
        for violation in accessibility_violations(c, &axe).await {
            problems.push(format!("/login at {width} px: {violation}"));
        }
        sign_in(c, &app, "lead@example.com").await;
        for path in pages {
            c.goto(&app.url(path)).await.unwrap();
            let heading = c
                .find(Locator::Css("main h1"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if path != "/nowhere" {
                assert!(
                    !["Not Found", "Forbidden", "Conflict", "Something went wrong"]
                        .contains(&heading.as_str()),
                    "{path} answered {heading}"
                );
            }
            let widths = c
                .execute(
                    "return [document.documentElement.scrollWidth, window.innerWidth]",
                    vec![],
                )
                .await
                .unwrap();
            let (page, window) = (widths[0].as_i64().unwrap(), widths[1].as_i64().unwrap());
            if page > window {
                // The innermost elements that stick out, to say where to look.
                let widest = c
                    .execute(
                        "return [...document.body.querySelectorAll('*')]
                           .filter((e) => e.getBoundingClientRect().right > window.innerWidth)
                           .slice(-3)
                           .map((e) => `${e.tagName.toLowerCase()}.${e.className}`)
                           .join(', ')",
                        vec![],
                    )
                    .await
                    .unwrap();
                problems.push(format!(
                    "{path} at {width} px scrolls sideways: {page} px wide ({})",
                    widest.as_str().unwrap_or_default()
                ));
            }
            for violation in accessibility_violations(c, &axe).await {
                problems.push(format!("{path} at {width} px: {violation}"));
            }
            // Cards side by side line up: the same top and the same height in a row.
            let ragged = c
                .execute(
                    "const out = [];
                     for (const grid of document.querySelectorAll('.grid-2')) {
                       const boxes = [...grid.children].map((e) => e.getBoundingClientRect());
                       for (const a of boxes) for (const b of boxes) {
                         const sameRow = a !== b && a.top < b.bottom && b.top < a.bottom;
                         if (sameRow && (Math.abs(a.top - b.top) > 1 || Math.abs(a.height - b.height) > 1))
                           out.push(`${Math.round(a.top)}/${Math.round(a.height)} beside ${Math.round(b.top)}/${Math.round(b.height)}`);
                       }
                     }
                     return out.slice(0, 1).join('')",
                    vec![],
                )
                .await
                .unwrap();
            if let Some(ragged) = ragged.as_str().filter(|r| !r.is_empty()) {
                problems.push(format!(
                    "{path} at {width} px: cards in a row differ: {ragged}"
                ));
            }
            let menu_button = c
                .execute(
                    "return getComputedStyle(document.querySelector('label[for=nav-toggle]')).display !== 'none'",
                    vec![],
                )
                .await
                .unwrap()
                .as_bool()
                .unwrap_or(false);
            if menu_button != (width < 760) {
                problems.push(format!(
                    "{path} at {width} px: the Menu button is {}",
                    if menu_button { "shown" } else { "hidden" }
                ));
            }
            // Named by the page, not by its ids, so a rerun replaces the same files.
            let name = path
                .trim_matches('/')
                .split('/')
                .map(|part| match part.parse::<uuid::Uuid>() {
                    Ok(_) if part == waiting => "waiting",
                    Ok(_) if part == approved => "approved",
                    Ok(_) => "item",
                    Err(_) if part == job.to_string() => "job",
                    Err(_) => part,
                })
                .collect::<Vec<_>>()
                .join("-");
            let name = if name.is_empty() { "overview" } else { &name };
            browser.screenshot(&format!("page-{width}-{name}")).await;
        }
        // On the phone the navigation waits behind the menu button, which opens it.
        let nav_shown = || async {
            c.execute(
                "return getComputedStyle(document.querySelector('nav[aria-label=Main]')).display !== 'none'",
                vec![],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap()
        };
        if width < 760 {
            assert!(!nav_shown().await, "the menu is folded on a phone");
            c.find(Locator::Css("label[for=nav-toggle]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            assert!(nav_shown().await, "the menu button opens the navigation");
        } else {
            assert!(
                nav_shown().await,
                "the navigation is always shown on a wide screen"
            );
        }
        c.delete_all_cookies().await.unwrap();
    }
    browser.close().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
