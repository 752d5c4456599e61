//! Headless Debian Chromium driven over WebDriver (chromium-driver) with fantoccini, for the
//! end-to-end journeys. Screenshots land in `<target>/tmp/screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::require_program;

const INSTALL_HINT: &str = "apt-get install chromium chromium-driver";

/// A browser session and the chromedriver process behind it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// A browser with JavaScript turned off: every journey must work without it.
    pub async fn without_javascript() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(javascript: bool) -> Self {
        let chromium = require_program("chromium", INSTALL_HINT);
        let chromedriver = require_program("chromedriver", INSTALL_HINT);

        // Port 0: chromedriver picks a free port and says which on its first lines.
        let mut driver = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let stdout = driver.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.split("started successfully on port ").nth(1) {
                        break rest.trim_end_matches('.').trim().to_owned();
                    }
                }
                _ => panic!("chromedriver exited before it was ready"),
            }
        };
        std::thread::spawn(move || for _ in lines {});

        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": { "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 } },
            }
        });
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("opening a Chromium session through chromedriver");
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Saves a screenshot of the current page and returns where.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never reaches `close`: do not leave chromedriver behind.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
