//! The web UI in a real browser: Debian's chromium, headless, driven through chromedriver with
//! fantoccini, against `gatehouse serve` on HTTPS (its generated certificate) at
//! `https://localhost:PORT`. Screenshots of the pages visited land in
//! `$CARGO_TARGET_TMPDIR/ui-screenshots/` as test artifacts.

mod apps;
mod compliance;
mod directory;
mod findings;
mod flows;
mod keep;
mod sso;

/// The password the UI tests give their local accounts.
pub const PASSWORD: &str = "correct horse battery staple";

/// Sets `who`'s password to [`PASSWORD`] with `gatehouse mfa set-password`.
pub fn set_password(data: &std::path::Path, who: &str) {
    use std::io::Write;
    let mut child = crate::harness::gatehouse(data)
        .args(["mfa", "set-password", "--identity", who])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Enrolls a TOTP for `who` with `gatehouse mfa enroll-totp`; returns its base32 secret.
pub fn enroll_totp(data: &std::path::Path, who: &str) -> String {
    let out = crate::harness::run(crate::harness::gatehouse(data).args([
        "mfa",
        "enroll-totp",
        "--identity",
        who,
    ]));
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    crate::harness::stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string()
}

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A chromedriver and one browser session; both end when dropped (call `close` to end cleanly).
/// chromedriver runs in a process group of its own, and the whole group is killed at the end:
/// killing chromedriver alone left its Chromium running after every test that did not close.
pub struct Browser {
    pub c: Client,
    driver: std::process::Child,
    /// The driver's group was killed and the driver reaped (its id may be reused after).
    ended: bool,
    pub base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where screenshots go.
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    pub async fn start(base: &str) -> Browser {
        let port = free_port();
        let driver = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg("--silent")
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        caps.insert("acceptInsecureCerts".into(), true.into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1280,900"],
            }),
        );
        let c = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        Browser {
            c,
            driver,
            ended: false,
            base: base.to_string(),
        }
    }

    pub async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// Waits (up to 10 s) for an element: after a click the next page may still be loading.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let url = self
                    .c
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                panic!("no {css} ({e}) at {url}:\n{}", self.html().await)
            }
        }
    }

    /// Fills a field; found again if the page was replaced under it (a stale element).
    pub async fn fill(&self, css: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self.element(css).await;
            match async {
                e.clear().await?;
                e.send_keys(value).await
            }
            .await
            {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    /// Clicks an element; found again if the page was replaced under it (a stale element).
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.element(css).await.click().await {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    /// Waits (up to 10 s) for an element and returns its text (found again if the page changed
    /// under it).
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.element(css).await.text().await {
                Ok(t) => return t,
                // The page was replaced between finding and reading: look again.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    /// Waits (up to 10 s) until an element's text contains `needle`; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = match self.c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if found.contains(needle) {
                return found;
            }
            if Instant::now() > deadline {
                panic!(
                    "{css} never showed {needle:?} (last: {found:?}):\n{}",
                    self.html().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_string()
    }

    pub async fn html(&self) -> String {
        self.c.source().await.unwrap()
    }

    /// Saves a screenshot as `NAME.png` among the artifacts.
    /// Runs axe-core (npm, installed by `scripts/node-tools.sh` into `NODE_TOOLS`) on the page;
    /// returns its serious and critical violations as `id (impact): help [targets]`.
    pub async fn axe_serious(&self) -> Vec<String> {
        let dir = std::env::var("NODE_TOOLS").unwrap_or_else(|_| {
            format!(
                "{}/.cache/gatehouse/node",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let source = std::fs::read_to_string(format!("{dir}/node_modules/axe-core/axe.min.js"))
            .expect("axe-core (scripts/node-tools.sh) must be installed");
        self.c
            .execute(&format!("{source}\nreturn true;"), vec![])
            .await
            .unwrap();
        let found = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, { resultTypes: ['violations'] }).then(r => done(\
                   r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                     .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' ' +\
                       JSON.stringify(v.nodes.map(n => n.target)))));",
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(found).unwrap()
    }

    /// The browser console's messages since the last call (chromedriver's log), as
    /// `LEVEL message`; CSP violations appear here as "Refused to …".
    pub async fn console(&self) -> Vec<String> {
        let v = self.c.issue_cmd(BrowserLog).await.unwrap();
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or_default(),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
    }

    /// Password sign-in; then the TOTP step when the account has one.
    pub async fn sign_in(&self, username: &str, password: &str, totp_secret: Option<&str>) {
        self.goto("/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
        if let Some(secret) = totp_secret {
            self.text("#code-form").await;
            let code = fresh_code(secret).await;
            self.fill("#code", &code).await;
            self.click("#verify").await;
        }
        assert_eq!(self.text("#signed-in-as").await, username);
    }

    pub async fn sign_out(&self) {
        self.click("header form button").await;
        self.text("#login-form").await;
    }

    /// Adds Chrome's virtual authenticator (WebDriver WebAuthn extension): a platform passkey
    /// with user verification.
    pub async fn add_virtual_authenticator(&self) -> String {
        self.c
            .issue_cmd(WebAuthn::AddAuthenticator)
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn virtual_credentials(&self, authenticator: &str) -> Vec<serde_json::Value> {
        self.c
            .issue_cmd(WebAuthn::Credentials(authenticator.into()))
            .await
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn close(mut self) {
        let _ = self.c.clone().close().await;
        self.kill_group();
    }

    /// Kills chromedriver and every Chromium process it started (they share its group).
    fn kill_group(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let group = format!("-{}", self.driver.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// A TOTP code not yet used: each time step is accepted once, so wait for the next step when
/// this one may have been used already.
pub async fn fresh_code(secret: &str) -> String {
    static LAST: std::sync::Mutex<i64> = std::sync::Mutex::new(0);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let step = now / 30_000;
        let fresh = {
            let mut last = LAST.lock().unwrap();
            let fresh = step > *last;
            if fresh {
                *last = step;
            }
            fresh
        };
        if fresh {
            return gatehouse_broker::identity::mfa::code_at(secret, now).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Debug)]
enum WebAuthn {
    AddAuthenticator,
    Credentials(String),
}

impl WebDriverCompatibleCommand for WebAuthn {
    fn endpoint(&self, base: &url::Url, sid: Option<&str>) -> Result<url::Url, url::ParseError> {
        let s = base.join(&format!("session/{}/", sid.unwrap_or_default()))?;
        match self {
            WebAuthn::AddAuthenticator => s.join("webauthn/authenticator"),
            WebAuthn::Credentials(a) => s.join(&format!("webauthn/authenticator/{a}/credentials")),
        }
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        match self {
            WebAuthn::AddAuthenticator => (
                http::Method::POST,
                Some(
                    serde_json::json!({
                        "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                        "hasUserVerification": true, "isUserVerified": true,
                    })
                    .to_string(),
                ),
            ),
            WebAuthn::Credentials(_) => (http::Method::GET, None),
        }
    }
}

/// chromedriver's `POST /session/{id}/se/log` for the browser console.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}
