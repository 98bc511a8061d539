//! The app gateway in chromium with a real third-party web application that uses websockets:
//! Jupyter Notebook from Debian's packages (`jupyter-notebook`; Debian 12 has no ttyd, and the
//! notebook's own terminal page is broken there: its bundled xterm.js throws "exports is not
//! defined"), whose notebook page talks to its Python kernel over a websocket. Without access:
//! the web UI's sign-in, then the denial page, whose Request access opens the request form with
//! the app filled in; approved by another person in their browser → a cell typed and run in the
//! notebook prints its result through the gateway; the grant revoked → the open websocket is
//! closed and the next request is denied again.

use super::{Browser, PASSWORD, free_port, set_password};
use crate::harness::{Server, gatehouse, http_builder, run, stderr};
use fantoccini::Locator;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const TOKEN: &str = "ui-apps-bootstrap-token-0123456789";

/// Jupyter Notebook on a loopback port, without its own authentication (the gateway is the door),
/// its websockets accepted from the app's public origin. Stopped (its whole process group, the
/// kernel included) when dropped.
struct Notebook {
    child: Child,
    _home: TempDir,
}

impl Notebook {
    fn start(port: u16, public_origin: &str) -> Notebook {
        let home = TempDir::new().unwrap();
        let h = home.path();
        // A notebook with one empty code cell, on the Python 3 kernel.
        let notebook = serde_json::json!({
            "cells": [{ "cell_type": "code", "execution_count": null, "metadata": {},
                        "outputs": [], "source": "" }],
            "metadata": { "kernelspec": { "name": "python3", "display_name": "Python 3",
                                          "language": "python" } },
            "nbformat": 4, "nbformat_minor": 5,
        });
        std::fs::write(h.join("gh.ipynb"), notebook.to_string()).unwrap();
        let child = Command::new("jupyter-notebook")
            .args([
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                &format!("--port={port}"),
                "--port-retries=0",
                "--NotebookApp.token=",
                "--NotebookApp.password=",
                &format!("--NotebookApp.allow_origin={public_origin}"),
                &format!("--notebook-dir={}", h.display()),
            ])
            .env("HOME", h)
            .env("JUPYTER_CONFIG_DIR", h.join("config"))
            .env("JUPYTER_DATA_DIR", h.join("data"))
            .env("JUPYTER_RUNTIME_DIR", h.join("runtime"))
            .env("SHELL", "/bin/bash")
            .current_dir(h)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("jupyter-notebook (Debian package jupyter-notebook) must be installed");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "jupyter-notebook did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Notebook { child, _home: home }
    }
}

impl Drop for Notebook {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints the server's log when the test fails.
struct LogOnPanic(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.0.lock().unwrap().join("\n"));
        }
    }
}

/// Waits (generously: a condition, never a timing) until `script` returns `want`.
async fn wait_js(b: &Browser, script: &str, want: serde_json::Value, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = b.c.execute(script, vec![]).await.unwrap_or_default();
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: {script} gave {got}, not {want}:\n{}",
                b.html().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Screenshots at a laptop's and a phone's width.
async fn shots(b: &Browser, name: &str) {
    for width in [1366, 390] {
        b.c.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.shot(&format!("{name}-{width}")).await;
    }
    b.c.set_window_size(1366, 900).await.unwrap();
}

#[tokio::test]
async fn browser_app_jupyter_notebook_requested_approved_used_and_cut_on_revoke() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let nb_port = free_port();
    let policy = format!(
        r#"
[[identities]]
username = "alice"

[[identities]]
username = "bob"

[[targets]]
name = "notebook"
kind = "http"
address = "http://127.0.0.1:{nb_port}"

[[roles]]
name = "notebook-users"
targets = {{ names = ["notebook"] }}
protocols = ["http"]
max_duration = "4h"
requestable_by = ["alice"]
approvals = [{{ from = "bob", count = 1 }}]
"#
    );
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stderr(&out));
    set_password(&data, "alice");
    set_password(&data, "bob");
    let server = Server::start_https(&data, &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)]).await;
    let _log = LogOnPanic(server.stderr.clone());
    let app = format!("https://notebook.apps.localhost:{}", server.apps.port());
    let notebook = Notebook::start(nb_port, &app);

    // alice, with no access yet, opens the app's notebook: the web UI asks her to sign in...
    let a = Browser::start(&server.base).await;
    a.c.goto(&format!("{app}/notebooks/gh.ipynb"))
        .await
        .unwrap();
    a.text("#login-form").await;
    a.fill("#username", "alice").await;
    a.fill("#password", PASSWORD).await;
    a.click("#sign-in").await;
    // ...and brings her back to the app host, which says she has no access now.
    a.wait_text("h1", "No access to this app now").await;
    let url = a.c.current_url().await.unwrap();
    assert_eq!(url.host_str(), Some("notebook.apps.localhost"), "{url}");
    shots(&a, "app-denied").await;

    // Request access: the web UI's form, the app filled in.
    a.click("#request-access").await;
    a.text("#request-form").await;
    assert_eq!(a.path().await, "/requests/new");
    let targets =
        a.c.find(Locator::Css("#targets"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
    assert_eq!(targets.as_deref(), Some("notebook"));
    a.fill("#duration", "1h").await;
    a.fill("#reason", "look at the notebook's logs").await;
    a.click("#submit-request").await;
    assert!(
        a.text(".flash").await.contains("Request sent"),
        "{}",
        a.html().await
    );

    // bob approves, in his own browser.
    let b = Browser::start(&server.base).await;
    b.sign_in("bob", PASSWORD, None).await;
    b.goto("/approvals").await;
    let item = b.text(".request-item[data-requester='alice']").await;
    assert!(item.contains("notebook"), "{item}");
    b.click(".request-item[data-requester='alice'] button.approve")
        .await;
    assert!(
        b.text(".flash").await.contains("Approved"),
        "{}",
        b.html().await
    );
    b.close().await;

    // alice opens the app again: the notebook loads through the gateway, starts its kernel and
    // connects to it over a websocket.
    a.c.goto(&format!("{app}/notebooks/gh.ipynb"))
        .await
        .unwrap();
    wait_js(
        &a,
        "return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel \
         && Jupyter.notebook.kernel.is_connected())",
        true.into(),
        "the notebook's kernel websocket opens",
    )
    .await;
    let url = a.c.current_url().await.unwrap();
    assert_eq!(url.host_str(), Some("notebook.apps.localhost"), "{url}");
    // Python typed into the cell and run: the kernel's answer comes back over the websocket.
    a.click(".cell .CodeMirror").await;
    a.c.find(Locator::Css(".cell .CodeMirror textarea"))
        .await
        .unwrap()
        .send_keys("print(\"gh-%d\" % (40 + 2))")
        .await
        .unwrap();
    a.click("button[data-jupyter-action='jupyter-notebook:run-cell-and-select-next']")
        .await;
    a.wait_text(".output_area", "gh-42").await;
    shots(&a, "app-notebook").await;

    // Watch this very websocket.
    a.c.execute(
        "window.ghClosed = false; Jupyter.notebook.kernel.ws.addEventListener('close', \
         () => { window.ghClosed = true; })",
        vec![],
    )
    .await
    .unwrap();
    // An administrator revokes alice's grant: her open websocket is closed...
    let api = http_builder(&[&data.join("keys/web-cert.pem")])
        .build()
        .unwrap();
    let grants: serde_json::Value = api
        .get(server.url("/api/v1/grants/all?identity=alice"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["state"] == "active")
        .unwrap_or_else(|| panic!("no active grant: {grants}"))["grant"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .post(server.url(&format!("/api/v1/grants/{grant}/revoke")))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "reason": "e2e: the notebook is done" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let revoked = Instant::now();
    wait_js(
        &a,
        "return window.ghClosed",
        true.into(),
        "the kernel's websocket is closed after the revoke",
    )
    .await;
    println!(
        "the browser saw its websocket closed within {:?} of the revoke's answer (polled every 100 ms)",
        revoked.elapsed()
    );
    a.shot("app-notebook-revoked-1366").await;
    // ...and the next request is denied again.
    a.c.goto(&format!("{app}/notebooks/gh.ipynb"))
        .await
        .unwrap();
    a.wait_text("h1", "No access to this app now").await;
    a.close().await;

    // The session in the reviewer UI: bob is made a reviewer, sets up his second factor (a
    // privilege needs one), finds alice's app session on the Sessions page and opens its
    // request timeline: the notebook's page, its kernel's websocket with its messages, the end
    // by the revoke, the signature verified.
    let r = api
        .post(server.url("/api/v1/identities/bob/privileges"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "privilege": "reviewer" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let b = Browser::start(&server.base).await;
    b.sign_in("bob", PASSWORD, None).await;
    assert_eq!(b.path().await, "/account");
    b.click("#totp-setup").await;
    let secret = b.text("#totp-secret").await;
    let code = super::fresh_code(&secret).await;
    b.fill("#code", &code).await;
    b.click("#totp-confirm").await;
    assert!(b.text(".flash").await.contains("Authenticator app set up"));
    b.goto("/sessions").await;
    let row = b.text("tr.session").await;
    assert!(row.contains("alice") && row.contains("notebook"), "{row}");
    b.click("tr.session a.open").await;
    b.text("#requests").await;
    let timeline = b.text("#requests").await;
    assert!(timeline.contains("/notebooks/gh.ipynb"), "{timeline}");
    assert!(timeline.contains("websocket close"), "{timeline}");
    assert!(timeline.contains("messages"), "{timeline}");
    assert!(
        b.text("#signature").await.contains("verified"),
        "{}",
        b.html().await
    );
    let serious = b.axe_serious().await;
    assert!(serious.is_empty(), "axe-core on the timeline: {serious:?}");
    // Filtered by path: the notebook's API calls only.
    b.fill("#path", "/api/").await;
    b.click("#filter").await;
    b.text("#clear-filters").await;
    let api_calls = b.text("#requests").await;
    assert!(api_calls.contains("/api/"), "{api_calls}");
    assert!(!api_calls.contains("/notebooks/gh.ipynb"), "{api_calls}");
    shots(&b, "app-session-timeline").await;
    b.close().await;
    drop(notebook);
    server.stop();
}
