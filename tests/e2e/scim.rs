//! The SCIM 2.0 service provider as identity providers use it: PyPI's `scim2-tester` (through
//! `scim2 test`) against the real server, and the protocol features it does not exercise —
//! filters, sorting, paging, ETags, Bulk, errors — checked over HTTP. Both run on SQLite and on
//! PostgreSQL.

use crate::harness::{Server, gatehouse, run, stdout};
use gatehouse_broker::ledger::store::Backend;
use gatehouse_broker::testkit::TestDb;
use serde_json::{Value, json};
use std::path::PathBuf;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// The Python tools `scripts/python-tools.sh` installs (pinned versions).
pub fn python_tools() -> PathBuf {
    let dir = std::env::var("GATEHOUSE_PY_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gatehouse/venv")
        });
    assert!(
        dir.join("bin/scim2").exists(),
        "{} has no scim2: run scripts/python-tools.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

async fn start() -> (tempfile::TempDir, Server, String) {
    let (dir, _, server, token) = start_on(Backend::Sqlite).await;
    (dir, server, token)
}

/// A server on `backend` (a database of its own on PostgreSQL, dropped with the `TestDb`) and
/// a SCIM client token made with the CLI.
async fn start_on(backend: Backend) -> (tempfile::TempDir, Option<TestDb>, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDb::postgres().await),
    };
    let url = db.as_ref().map(|d| d.url.clone());
    let env: Vec<(&str, &str)> = url
        .iter()
        .map(|u| ("GATEHOUSE_DATABASE_URL", u.as_str()))
        .collect();
    let server = Server::start(&data, &[], &env).await;
    let mut add = gatehouse(&data);
    add.envs(env.iter().copied())
        .args(["scim", "client", "add", "okta"]);
    let out = run(&mut add);
    assert!(out.status.success());
    let token = stdout(&out).trim().to_string();
    (dir, db, server, token)
}

pub(crate) struct Scim<'a> {
    pub(crate) server: &'a Server,
    pub(crate) token: &'a str,
}

impl Scim<'_> {
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = crate::harness::http()
            .request(method, self.server.url(&format!("/scim/v2{path}")))
            .bearer_auth(self.token)
            .header("content-type", "application/scim+json");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let st = resp.status().as_u16();
        let h = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            h,
        )
    }
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.call(reqwest::Method::GET, path, None, &[]).await;
        (s, v)
    }
    async fn user(&self, name: &str, dept: &str, emp: &str, active: bool) -> String {
        let (st, v, _) = self
            .call(
                reqwest::Method::POST,
                "/Users",
                Some(json!({ "schemas": [USER, ENTERPRISE], "userName": name, "active": active,
                    "name": { "givenName": name, "familyName": "Test" },
                    "emails": [{ "value": format!("{name}@example.com"), "type": "work", "primary": true }],
                    ENTERPRISE: { "department": dept, "employeeNumber": emp } })),
                &[],
            )
            .await;
        assert_eq!(st, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

fn names(v: &Value) -> Vec<String> {
    v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn q(filter: &str) -> String {
    url::form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

#[tokio::test]
async fn scim2_tester_reports_no_failure_on_sqlite() {
    scim2_tester_reports_no_failure(Backend::Sqlite).await;
}

#[tokio::test]
async fn scim2_tester_reports_no_failure_on_postgres() {
    scim2_tester_reports_no_failure(Backend::Postgres).await;
}

async fn scim2_tester_reports_no_failure(backend: Backend) {
    let tools = python_tools();
    let (_dir, _db, server, token) = start_on(backend).await;
    let out = std::process::Command::new(tools.join("bin/scim2"))
        .args(["--url", &server.url("/scim/v2"), "test"])
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {token}"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks = report.lines().filter(|l| l.starts_with("SUCCESS")).count();
    let failed: Vec<&str> = report
        .lines()
        .filter(|l| {
            !l.starts_with("SUCCESS") && !l.starts_with("  ") && !l.starts_with("Performing")
        })
        .collect();
    println!(
        "scim2-tester on {backend:?}: {checks} checks passed, {} not",
        failed.len()
    );
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(failed.is_empty(), "{report}");
    assert!(checks >= 130, "{report}");
}

#[tokio::test]
async fn scim_filters_sorting_paging_etags_bulk_and_errors_on_sqlite() {
    scim_filters_sorting_paging_etags_bulk_and_errors(Backend::Sqlite).await;
}

#[tokio::test]
async fn scim_filters_sorting_paging_etags_bulk_and_errors_on_postgres() {
    scim_filters_sorting_paging_etags_bulk_and_errors(Backend::Postgres).await;
}

async fn scim_filters_sorting_paging_etags_bulk_and_errors(backend: Backend) {
    let (_dir, _db, server, token) = start_on(backend).await;
    let s = Scim {
        server: &server,
        token: &token,
    };
    let ann = s.user("ann", "engineering", "E1", true).await;
    s.user("bob", "operations", "E2", true).await;
    s.user("cyd", "engineering", "E3", false).await;

    // Filters: every operator, and/or/not, grouping, value paths, extension URNs, any case.
    for (filter, want) in [
        (r#"userName eq "ANN""#, vec!["ann"]),
        (r#"userName ne "ann""#, vec!["bob", "cyd"]),
        (r#"userName co "y""#, vec!["cyd"]),
        (r#"userName sw "b""#, vec!["bob"]),
        (r#"userName ew "n""#, vec!["ann"]),
        (r#"userName gt "ann" and userName lt "cyd""#, vec!["bob"]),
        (r#"userName ge "bob""#, vec!["bob", "cyd"]),
        (r#"userName le "bob""#, vec!["ann", "bob"]),
        ("title pr", vec![]),
        ("name.givenName pr", vec!["ann", "bob", "cyd"]),
        ("active eq false", vec!["cyd"]),
        (r#"emails[type eq "work" and value co "bob"]"#, vec!["bob"]),
        (
            r#"emails.value ew "@example.com" and not (userName eq "bob")"#,
            vec!["ann", "cyd"],
        ),
        (
            &format!(r#"{ENTERPRISE}:department eq "engineering""#),
            vec!["ann", "cyd"],
        ),
        (
            r#"(userName eq "ann" or userName eq "bob") and active EQ true"#,
            vec!["ann", "bob"],
        ),
        (
            r#"meta.created gt "2000-01-01T00:00:00Z""#,
            vec!["ann", "bob", "cyd"],
        ),
        (&format!(r#"id eq "{ann}""#), vec!["ann"]),
    ] {
        let (st, v) = s
            .get(&format!("/Users?filter={}&sortBy=userName", q(filter)))
            .await;
        assert_eq!(st, 200, "{filter}: {v}");
        assert_eq!(names(&v), want, "{filter}");
    }
    let (st, v) = s
        .get(&format!("/Users?filter={}", q("userName xx \"a\"")))
        .await;
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("invalidFilter")),
        "{v}"
    );

    // Sorting and paging.
    let (_, v) = s
        .get("/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=1")
        .await;
    assert_eq!(names(&v), vec!["bob"]);
    assert_eq!(
        (
            v["totalResults"].as_i64(),
            v["startIndex"].as_i64(),
            v["itemsPerPage"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    let (_, v) = s.get("/Users?count=0").await;
    assert_eq!((v["totalResults"].as_i64(), names(&v).len()), (Some(3), 0));

    // attributes / excludedAttributes.
    let (_, v) = s
        .get(&format!(
            "/Users/{ann}?attributes=userName,{ENTERPRISE}:department"
        ))
        .await;
    assert_eq!(v["userName"], "ann");
    assert!(v.get("emails").is_none(), "{v}");
    assert_eq!(v[ENTERPRISE]["department"], "engineering");
    assert!(v[ENTERPRISE].get("employeeNumber").is_none(), "{v}");
    let (_, v) = s
        .get(&format!(
            "/Users/{ann}?excludedAttributes=emails,name.familyName"
        ))
        .await;
    assert!(
        v.get("emails").is_none()
            && v["name"].get("familyName").is_none()
            && v["name"]["givenName"] == "ann",
        "{v}"
    );
    assert!(v["id"].is_string() && v["schemas"].is_array());

    // ETags: If-None-Match gives 304; a stale If-Match gives 412 and changes nothing.
    let (st, v, h) = s
        .call(reqwest::Method::GET, &format!("/Users/{ann}"), None, &[])
        .await;
    assert_eq!(st, 200);
    let etag = h["etag"].to_str().unwrap().to_string();
    assert_eq!(v["meta"]["version"], etag);
    let (st, _, _) = s
        .call(
            reqwest::Method::GET,
            &format!("/Users/{ann}"),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(st, 304);
    let patch = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "title", "value": "Engineer" },
                       { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann@corp.example" },
                       { "op": "Add", "path": "phoneNumbers", "value": [{ "value": "+1 555 0100", "type": "work" }] }] });
    let (st, v, h2) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{ann}"),
            Some(patch.clone()),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["title"].as_str(), v["emails"][0]["value"].as_str()),
        (Some("Engineer"), Some("ann@corp.example"))
    );
    assert_ne!(h2["etag"].to_str().unwrap(), etag);
    let (st, v, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{ann}"),
            Some(patch),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(st, 412, "{v}");
    let (st, v, _) = s.call(reqwest::Method::PATCH, &format!("/Users/{ann}"), Some(json!({ "Operations": [{ "op": "remove", "path": "phoneNumbers[type eq \"work\"]" }, { "op": "remove", "path": "title" }] })), &[]).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v.get("phoneNumbers").is_none() && v.get("title").is_none(),
        "{v}"
    );
    let (st, v, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{ann}"),
            Some(json!({ "Operations": [{ "op": "remove", "path": "id" }] })),
            &[],
        )
        .await;
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("mutability")),
        "{v}"
    );
    let (st, v, _) = s.call(reqwest::Method::PATCH, &format!("/Users/{ann}"), Some(json!({ "Operations": [{ "op": "replace", "path": "emails[type eq" , "value": "x" }] })), &[]).await;
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("invalidPath")),
        "{v}"
    );

    // Errors in SCIM form: uniqueness, missing required attribute, unknown id.
    let (st, v, _) = s
        .call(
            reqwest::Method::POST,
            "/Users",
            Some(json!({ "schemas": [USER], "userName": "ANN" })),
            &[],
        )
        .await;
    assert_eq!(
        (st, v["scimType"].as_str()),
        (409, Some("uniqueness")),
        "{v}"
    );
    assert_eq!(
        v["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let (st, v, _) = s
        .call(
            reqwest::Method::POST,
            "/Users",
            Some(json!({ "schemas": [USER] })),
            &[],
        )
        .await;
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{v}"
    );
    let (st, _) = s.get("/Users/no-such-id").await;
    assert_eq!(st, 404);

    // Bulk: a user and a group naming it by bulkId, then a failing operation.
    let (st, v, _) = s
        .call(reqwest::Method::POST, "/Bulk", Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                { "method": "POST", "bulkId": "u1", "path": "/Users", "data": { "schemas": [USER], "userName": "dee" } },
                { "method": "POST", "bulkId": "g1", "path": "/Groups", "data": { "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "DB Admins", "members": [{ "value": "bulkId:u1" }] } },
                { "method": "DELETE", "path": "/Users/no-such-id" },
            ] })), &[])
        .await;
    assert_eq!(st, 200, "{v}");
    let ops = v["Operations"].as_array().unwrap();
    assert_eq!(
        ops.iter()
            .map(|o| o["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["201", "201", "404"],
        "{v}"
    );
    let group = ops[1]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (_, g) = s.get(&format!("/Groups/{group}")).await;
    assert_eq!(
        g["members"][0]["value"],
        ops[0]["location"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
    );
    // The group is a Gatehouse group with dee in it; dee's User lists it.
    let dee = ops[0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (_, u) = s.get(&format!("/Users/{dee}")).await;
    assert_eq!(u["groups"][0]["display"], "DB Admins", "{u}");
    // Root search over both kinds.
    let (st, v, _) = s.call(reqwest::Method::POST, "/.search", Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName sw \"DB\" or userName eq \"dee\"" })), &[]).await;
    assert_eq!((st, v["totalResults"].as_i64()), (200, Some(2)), "{v}");

    // DELETE deprovisions: gone from SCIM, the identity terminated (kept for the audit trail).
    let (st, _, _) = s
        .call(reqwest::Method::DELETE, &format!("/Users/{dee}"), None, &[])
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/Users/{dee}")).await;
    assert_eq!(st, 404);
}

/// A SCIM request is authenticated by a live SCIM client token and nothing else: not a session
/// cookie, not a made-up token; a revoked token stops working at once.
#[tokio::test]
async fn security_scim_accepts_only_a_live_scim_client_token() {
    let (_dir, server, token) = start().await;
    let s = Scim {
        server: &server,
        token: &token,
    };
    let (st, _) = s.get("/Users").await;
    assert_eq!(st, 200);
    let anon = Scim {
        server: &server,
        token: "ghscim_not-a-token",
    };
    let (st, v) = anon.get("/Users").await;
    assert_eq!((st, v["status"].as_str()), (401, Some("401")), "{v}");
    let resp = crate::harness::http()
        .get(server.url("/scim/v2/Users"))
        .header(
            "cookie",
            format!("__Host-gh_session={token}; gh_session={token}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let out = run(gatehouse(&_dir.path().join("data")).args(["scim", "client", "revoke", "okta"]));
    assert!(out.status.success());
    let (st, _) = s.get("/Users").await;
    assert_eq!(st, 401);
}

/// Paths with one trailing slash, as Microsoft's SCIM reference client sends them, are answered
/// like the paths without it: listing, filtering, reading, creating; a slash elsewhere is not.
#[tokio::test]
async fn scim_paths_with_a_trailing_slash_answer_like_those_without() {
    let (_dir, server, token) = start().await;
    let s = Scim {
        server: &server,
        token: &token,
    };
    let ann = s.user("ann", "engineering", "E1", true).await;
    s.user("bob", "operations", "E2", true).await;
    let (st, v) = s.get("/Users/").await;
    assert_eq!(
        (st, names(&v)),
        (200, vec!["ann".to_string(), "bob".to_string()]),
        "{v}"
    );
    let (st, v) = s
        .get(&format!("/Users/?filter={}", q(r#"userName eq "bob""#)))
        .await;
    assert_eq!((st, names(&v)), (200, vec!["bob".to_string()]), "{v}");
    let (st, v) = s.get(&format!("/Users/{ann}/")).await;
    assert_eq!((st, v["userName"].as_str()), (200, Some("ann")), "{v}");
    let (st, v, _) = s
        .call(
            reqwest::Method::POST,
            "/Groups/",
            Some(
                json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Ops", "members": [{ "value": ann }] }),
            ),
            &[],
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = s.get("/Groups/").await;
    assert_eq!((st, v["totalResults"].as_i64()), (200, Some(1)), "{v}");
    let (st, _) = s.get("/ServiceProviderConfig/").await;
    assert_eq!(st, 200);
    // Only one trailing slash is dropped; without a SCIM token nothing is answered either way.
    let (st, _) = s.get("/Users//").await;
    assert_eq!(st, 404);
    let anon = Scim {
        server: &server,
        token: "ghscim_not-a-token",
    };
    assert_eq!(anon.get("/Users/").await.0, 401);
    server.stop();
}

/// A SCIM client moves someone (department and manager): what they hold beyond birthright — a
/// role assigned by hand — goes to the new manager's review (a mover campaign).
#[tokio::test]
async fn a_scim_move_opens_the_new_managers_review_of_manual_access() {
    let (dir, server, token) = start().await;
    let s = Scim {
        server: &server,
        token: &token,
    };
    let sam = s.user("sam", "sales", "E100", true).await;
    let alice = s.user("alice", "engineering", "E101", true).await;
    let data = dir.path().join("data");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[targets]]\nname = \"prod-db\"\naddress = \"127.0.0.1:1\"\n\n[[roles]]\nname = \"prod-db-admin\"\n\
         targets = { names = [\"prod-db\"] }\nlogins = [\"postgres\"]\n\n[[assignments]]\nrole = \"prod-db-admin\"\n\
         to = \"alice\"\nkind = \"eligible\"\n",
    )
    .unwrap();
    let out = run(gatehouse(&data).arg("apply").arg(&policy));
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let patch = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            { "op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "sales" },
            { "op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": { "value": sam } },
        ] });
    let (st, v, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/Users/{alice}"),
            Some(patch),
            &[],
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let out = run(gatehouse(&data).args(["reviews", "list"]));
    let list = stdout(&out);
    assert!(list.contains("mover-alice-"), "{list}");
    let id = list
        .lines()
        .find(|l| l.contains("mover-alice-"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let out = run(gatehouse(&data).args(["reviews", "show", &id]));
    let shown = stdout(&out);
    assert!(shown.contains("owner sam"), "{shown}");
    assert!(
        shown.contains("alice  role prod-db-admin (eligible)") && shown.contains("reviewer sam"),
        "{shown}"
    );
}
