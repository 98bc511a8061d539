//! A mover's manager keeps access in its HR grace period from the approvals page: two HR
//! imports make alice a mover whose old birthright role is in its grace period; her manager bob
//! sees it under Approvals and keeps it (audited as `lifecycle.keep`); alice herself sees
//! nothing to keep and is refused when she posts the form for it, or for bob's. bob, the head of the org
//! chart (his own manager in the HR feed, as HR feeds often have it), moves too and never keeps
//! his own access: it is not offered, and posting the form for it is refused (both refusals
//! audited as `lifecycle.keep.refused`).

use super::directory::audit;
use super::{Browser, PASSWORD, set_password};
use crate::harness::{Server, gatehouse, run, stderr};

fn import(data: &std::path::Path, dir: &std::path::Path, csv: &str) {
    let file = dir.join("hr.csv");
    std::fs::write(&file, csv).unwrap();
    let out = run(gatehouse(data).args(["hr", "import"]).arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn security_browser_manager_keeps_a_movers_access_and_no_one_else_can() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = r#"
[[targets]]
name = "db-01"
kind = "ssh"
address = "127.0.0.1:1"

[[roles]]
name = "payments-base"
targets = { names = ["db-01"] }
logins = ["dev"]
birthright = { department = ["payments"] }
"#;
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stderr(&out));
    let head = "employee_number,first_name,last_name,email,manager,department\n";
    import(
        &data,
        dir.path(),
        &format!("{head}E1,Bob,Ray,bob@x.io,E1,payments\nE2,Alice,Lee,alice@x.io,E1,payments\n"),
    );
    // alice and bob move: their payments-base enters its grace period.
    import(
        &data,
        dir.path(),
        &format!("{head}E1,Bob,Ray,bob@x.io,E1,risk\nE2,Alice,Lee,alice@x.io,E1,risk\n"),
    );
    set_password(&data, "alice");
    set_password(&data, "bob");
    let server = Server::start_https(
        &data,
        &[],
        &[(
            "GATEHOUSE_BOOTSTRAP_TOKEN",
            "keep-bootstrap-token-0123456789",
        )],
    )
    .await;

    let grace = audit(&data, "lifecycle.grace");
    assert_eq!(grace.len(), 2, "{grace:?}");
    // bob's own assignment in its grace period, read from the database (no page lists it).
    let bobs: String = {
        use sqlx::{AnyConnection, Connection};
        sqlx::any::install_default_drivers();
        let url = gatehouse_broker::ledger::store::sqlite_url(&data.join("gatehouse.db"));
        let mut c = AnyConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(
            "SELECT a.id FROM role_assignments a JOIN identities i ON i.id = a.subject_id \
             WHERE i.username = 'bob' AND a.not_after IS NOT NULL",
        )
        .fetch_one(&mut c)
        .await
        .unwrap()
    };

    // bob, her manager, sees it.
    let b = Browser::start(&server.base).await;
    b.sign_in("bob", PASSWORD, None).await;
    b.goto("/approvals").await;
    let row = ".grace-item[data-username='alice'][data-role='payments-base']";
    assert!(b.text(row).await.contains("payments-base"));
    let id =
        b.c.find(fantoccini::Locator::Css(row))
            .await
            .unwrap()
            .attr("data-id")
            .await
            .unwrap()
            .unwrap();
    b.sign_out().await;

    // alice is not her own manager: nothing listed, and posting the form herself is refused.
    b.sign_in("alice", PASSWORD, None).await;
    b.goto("/approvals").await;
    b.text("#queue-empty").await;
    assert!(!b.html().await.contains("grace-item"));
    let answer = post_keep(&b, &id).await;
    assert!(answer.ends_with("error=self_keep"), "{answer}");
    let answer = post_keep(&b, &bobs).await;
    assert!(answer.ends_with("error=not_manager"), "{answer}");
    b.goto("/approvals?error=not_manager").await;
    assert!(
        b.text(".alert")
            .await
            .contains("Only that person's manager")
    );
    b.sign_out().await;

    // bob is offered alice's access only, never his own; posting the form for his own is refused.
    b.sign_in("bob", PASSWORD, None).await;
    b.goto("/approvals").await;
    assert_eq!(
        b.html().await.matches("class=\"grace-item\"").count(),
        1,
        "only alice's row"
    );
    let answer = post_keep(&b, &bobs).await;
    assert!(answer.ends_with("error=self_keep"), "{answer}");
    b.goto("/approvals").await;
    b.shot("approvals-keep").await;
    b.click(".grace-item button.keep").await;
    let flash = b.wait_text(".flash", "Kept").await;
    assert!(flash.contains("payments-base"), "{flash}");
    assert!(
        !b.html().await.contains("grace-item"),
        "nothing left to keep"
    );
    b.close().await;

    let kept = audit(&data, "lifecycle.keep");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["actor"], "identity:bob");
    assert_eq!(kept[0]["object"], "identity:alice");
    let refused: Vec<(String, String)> = audit(&data, "lifecycle.keep.refused")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["details"]["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("identity:alice".to_string(), "self_keep".to_string()),
            ("identity:alice".to_string(), "not_manager".to_string()),
            ("identity:bob".to_string(), "self_keep".to_string()),
        ]
    );
    server.stop();
}

/// Posts the keep form for assignment `id` from the signed-in page (as a crafted form would);
/// returns the URL it lands on, without its `&id=…`.
async fn post_keep(b: &Browser, id: &str) -> String {
    let answer =
        b.c.execute(
            "const t = document.querySelector('meta[name=csrf-token]').content; \
             return fetch('/approvals/keep/' + arguments[0], { method: 'POST', \
               headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, \
               body: 'csrf=' + encodeURIComponent(t) }) \
             .then(r => r.url.split('&id=')[0]);",
            vec![serde_json::json!(id)],
        )
        .await
        .unwrap();
    answer.as_str().unwrap_or_default().to_string()
}
