//! The Findings page in chromium: an administrator (second factor set up first) sees what to
//! tighten, filters by kind, at a laptop's and a phone's width; axe-core finds nothing serious.

use super::{Browser, PASSWORD, fresh_code, set_password};
use crate::harness::{Server, gatehouse, run, stderr};
use tempfile::TempDir;

#[tokio::test]
async fn browser_findings_page_lists_what_to_tighten_by_kind() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let policy = r#"
[[identities]]
username = "alice"

[[targets]]
name = "db-01"
kind = "ssh"
address = "127.0.0.1:1"

[[roles]]
name = "prod-db"
targets = { names = ["db-01"] }
logins = ["postgres"]

[[assignments]]
role = "prod-db"
to = "alice"
kind = "standing"
"#;
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stderr(&out));
    let server = Server::start_https(
        &data,
        &[],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", "ui-findings-token-0123456789")],
    )
    .await;
    set_password(&data, "admin");
    let b = Browser::start(&server.base).await;
    b.sign_in("admin", PASSWORD, None).await;
    b.click("#totp-setup").await;
    let secret = b.text("#totp-secret").await;
    b.fill("#code", &fresh_code(&secret).await).await;
    b.click("#totp-confirm").await;
    assert!(b.text(".flash").await.contains("Authenticator app set up"));

    b.goto("/findings").await;
    let all = b.text("#findings").await;
    assert!(
        all.contains("identity:alice — holds the privileged role prod-db standing"),
        "{all}"
    );
    assert!(all.contains("role:prod-db"), "{all}");
    assert!(all.contains("What to do:"), "{all}");
    for width in [1366, 390] {
        b.c.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        b.shot(&format!("findings-{width}")).await;
        let wide: bool =
            b.c.execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap();
        assert!(!wide, "the page scrolls sideways at {width} px");
    }
    b.c.set_window_size(1366, 900).await.unwrap();
    let serious = b.axe_serious().await;
    assert!(serious.is_empty(), "axe-core: {serious:?}");

    // One kind.
    b.click("a[href='/findings?kind=privileged_role_without_session_mfa']")
        .await;
    let one = b.text("#findings").await;
    assert!(one.contains("role:prod-db"), "{one}");
    assert!(!one.contains("identity:alice"), "{one}");
    b.click("a[href='/findings?kind=unused_api_token']").await;
    assert!(
        b.text("#no-findings")
            .await
            .contains("No findings of this kind")
    );
    // "Start a review" of the role a finding names: a one-off campaign over its holders, owned
    // by the administrator (alice has no manager: the owner is the fallback reviewer).
    b.goto("/findings?kind=standing_privileged_access").await;
    b.click("form.start-review button").await;
    // The campaign page's progress (waited for: the click returns before the page loads).
    let progress = b.text("#progress").await;
    assert!(b.path().await.starts_with("/reviews/campaigns/"));
    assert!(progress.contains("open: 1"), "{progress}");
    let items = b.text("#items").await;
    assert!(
        items.contains("alice") && items.contains("admin"),
        "{items}"
    );
    // The administrator is that item's reviewer (the fallback): accepting the recommendation
    // (keep, privileged) needs a reason, then decides it.
    b.goto("/reviews").await;
    b.click("section.bulk input[name='confirm']").await;
    b.click("section.bulk button.accept-all").await;
    let flash = b.text(".flash").await;
    assert!(flash.starts_with("0 decided"), "{flash}");
    // A fresh page (no banner), so the next banner read is the next answer's.
    b.goto("/reviews").await;
    b.fill(
        "section.bulk input[name='reason']",
        "needed for the migration",
    )
    .await;
    b.click("section.bulk input[name='confirm']").await;
    b.click("section.bulk button.accept-all").await;
    let flash = b.text(".flash").await;
    assert!(flash.starts_with("1 decided"), "{flash}");
    assert!(b.text("#queue-empty").await.contains("Nothing waits"));
    b.close().await;
    server.stop();
}
