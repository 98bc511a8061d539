//! A mover's manager keeps access in its HR grace period from the approvals page: two HR
//! imports make alice a mover whose old birthright role is in its grace period; her manager bob
//! sees it under Approvals and keeps it (audited as `lifecycle.keep`); alice herself sees
//! nothing to keep and is refused when she posts the form for it.

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
        &format!("{head}E1,Bob,Ray,bob@x.io,,payments\nE2,Alice,Lee,alice@x.io,E1,payments\n"),
    );
    // alice moves: payments-base enters its grace period.
    import(
        &data,
        dir.path(),
        &format!("{head}E1,Bob,Ray,bob@x.io,,payments\nE2,Alice,Lee,alice@x.io,E1,risk\n"),
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
    assert_eq!(grace.len(), 1, "{grace:?}");

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
    let answer =
        b.c.execute(
            "const t = document.querySelector('meta[name=csrf-token]').content; \
             return fetch('/approvals/keep/' + arguments[0], { method: 'POST', \
               headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, \
               body: 'csrf=' + encodeURIComponent(t) }) \
             .then(r => decodeURIComponent(r.url.replace(/\\+/g, ' ')));",
            vec![serde_json::json!(id)],
        )
        .await
        .unwrap();
    let answer = answer.as_str().unwrap_or_default().to_string();
    assert!(
        answer.contains("Not kept") && answer.contains("manager"),
        "{answer}"
    );
    b.sign_out().await;

    // bob keeps it.
    b.sign_in("bob", PASSWORD, None).await;
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
    server.stop();
}
