//! Push to apps: `gatehouse push run` provisions the holders of a mapped role into a SCIM app —
//! PyPI's `scim2-server` on a loopback port — then puts back a change made in the app, reports a
//! user it did not create, and deactivates a leaver.

use crate::harness::{gatehouse, run, stdout};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct App {
    child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    pub(crate) async fn start(tools: &std::path::Path) -> App {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let token = "jira-scim-token-for-tests".to_string();
        let child = Command::new(tools.join("bin/scim2-server"))
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                &token,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let app = App {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = crate::harness::http()
                .get(format!("{}/ServiceProviderConfig", app.url))
                .bearer_auth(&app.token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return app;
            }
            assert!(Instant::now() < deadline, "scim2-server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = crate::harness::http()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn users(&self) -> Vec<Value> {
        self.call(reqwest::Method::GET, "/Users?count=1000", None)
            .await["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) async fn user(&self, name: &str) -> Option<Value> {
        self.users()
            .await
            .into_iter()
            .find(|u| u["userName"] == name)
    }
}

pub(crate) const POLICY: &str = r#"
[[identities]]
username = "ann"
display_name = "Ann Lee"
email = "ann@example.com"

[[identities]]
username = "bob"
display_name = "Bob Ray"
email = "bob@example.com"

[[identities]]
username = "cyd"
display_name = "Cyd Day"
email = "cyd@example.com"

[[groups]]
name = "jira-team"
members = ["cyd"]

[[targets]]
name = "jira"
kind = "ssh"
address = "127.0.0.1:1"

[[roles]]
name = "jira-users"
targets = { names = ["jira"] }
logins = ["app"]

[[assignments]]
role = "jira-users"
to = "ann"
kind = "standing"

[[assignments]]
role = "jira-users"
to = "group:jira-team"
kind = "standing"
"#;

#[tokio::test]
async fn push_creates_then_deactivates_the_right_users_in_a_scim_app() {
    let tools = crate::scim::python_tools();
    let app = App::start(&tools).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_file = dir.path().join("jira.token");
    std::fs::write(&token_file, &app.token).unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[[push]]\nname = \"jira\"\nurl = \"{}\"\ntoken_file = \"{}\"\nroles = [\"jira-users\"]\n",
            app.url,
            token_file.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stdout(&out));
    // Someone made a user in the app by hand: reported, never touched.
    app.call(reqwest::Method::POST, "/Users", Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "admin@example.com" }))).await;
    let push = |extra: &[&str]| {
        let mut c = gatehouse(&data);
        c.arg("--config")
            .arg(&config)
            .args(["push", "run"])
            .args(extra);
        run(&mut c)
    };

    let out = push(&["--dry-run"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("would create ann@example.com (jira-users)"),
        "{text}"
    );
    assert!(
        text.contains("would create cyd@example.com (jira-users)"),
        "{text}"
    );
    assert!(!text.contains("bob@"), "{text}");
    assert!(
        text.contains("drift: admin@example.com is in jira but not provisioned by Gatehouse"),
        "{text}"
    );
    assert_eq!(app.users().await.len(), 1, "a dry run changes nothing");

    let out = push(&[]);
    let text = stdout(&out);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    let ann = app.user("ann@example.com").await.expect("ann provisioned");
    assert_eq!(
        (ann["active"].as_bool(), ann["displayName"].as_str()),
        (Some(true), Some("Ann Lee"))
    );
    assert!(
        ann["externalId"]
            .as_str()
            .unwrap()
            .starts_with("gatehouse:")
    );
    assert!(app.user("cyd@example.com").await.is_some());
    assert!(app.user("bob@example.com").await.is_none());
    let groups = app.call(reqwest::Method::GET, "/Groups", None).await;
    let group = &groups["Resources"][0];
    assert_eq!(group["displayName"], "jira-users");
    assert_eq!(group["members"].as_array().unwrap().len(), 2, "{group}");

    // A change made in the app is drift, put back.
    let id = ann["id"].as_str().unwrap();
    app.call(reqwest::Method::PATCH, &format!("/Users/{id}"), Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "displayName", "value": "Someone Else" }] }))).await;
    let text = stdout(&push(&[]));
    assert!(
        text.contains("drift: ann@example.com was changed in jira (displayName); put back"),
        "{text}"
    );
    assert_eq!(
        app.user("ann@example.com").await.unwrap()["displayName"],
        "Ann Lee"
    );

    // ann leaves (the policy no longer names her: disabled): deactivated in the app, not deleted.
    let without_ann = POLICY.replace("[[identities]]\nusername = \"ann\"\ndisplay_name = \"Ann Lee\"\nemail = \"ann@example.com\"\n", "").replace("[[assignments]]\nrole = \"jira-users\"\nto = \"ann\"\nkind = \"standing\"\n", "");
    std::fs::write(dir.path().join("policy.toml"), without_ann).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&push(&[]));
    assert!(text.contains("did deactivate ann@example.com"), "{text}");
    assert_eq!(app.user("ann@example.com").await.unwrap()["active"], false);
    assert_eq!(app.user("cyd@example.com").await.unwrap()["active"], true);
    assert_eq!(
        app.user("admin@example.com").await.unwrap()["active"],
        Value::Null,
        "untouched"
    );
    let text = stdout(&push(&[]));
    assert!(
        text.contains("jira: 1 change(s)") || text.contains("jira: 0 change(s)"),
        "{text}"
    );
}
