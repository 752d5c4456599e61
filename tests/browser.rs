//! End-to-end journeys in a real headless Chromium. Screenshots are saved under
//! `<target>/tmp/screenshots/` for people to look at.

mod support;

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
    assert_eq!(labels, ["Overview", "System status"]);
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
