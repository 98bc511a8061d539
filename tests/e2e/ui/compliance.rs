//! Compliance in chromium and from the command line: the dashboard's charts are drawn by the
//! vendored Chart.js with no CSP violation, at a laptop's and a phone's width; an evidence pack
//! downloaded from the API verifies offline with only the public key and fails after one changed
//! byte or a removed file; its one-file HTML summary opens with its charts drawn; the
//! entitlement report filters, rebuilds a past date from the audit log, and says what is wrong
//! with a bad date.

use super::{Browser, PASSWORD, fresh_code, set_password};
use crate::harness::{Server, gatehouse, http_builder, run, stderr, stdout};
use tempfile::TempDir;

const TOKEN: &str = "ui-compliance-token-0123456789";

const POLICY: &str = r#"
[[identities]]
username = "alice"

[[targets]]
name = "db-01"
address = "127.0.0.1:1"

[[targets]]
name = "dev-01"
address = "127.0.0.1:2"

[[roles]]
name = "prod-db"
targets = { names = ["db-01"] }
logins = ["postgres"]

[[roles]]
name = "eng-base"
targets = { names = ["dev-01"] }
logins = ["dev"]
birthright = { department = ["eng"] }

[[assignments]]
role = "prod-db"
to = "alice"
kind = "standing"
"#;

fn no_csp_errors(console: &[String]) {
    let bad: Vec<&String> = console
        .iter()
        .filter(|m| {
            m.contains("Refused")
                || m.contains("Content Security Policy")
                || m.starts_with("SEVERE")
        })
        .collect();
    assert!(bad.is_empty(), "console: {bad:?}");
}

#[tokio::test]
async fn browser_compliance_dashboard_evidence_pack_and_entitlements() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stderr(&out));
    // A joiner, then the same person leaving.
    let head = "employee_number,first_name,last_name,email,department,status\n";
    for (n, status) in [(1, "active"), (2, "terminated")] {
        let feed = dir.path().join(format!("feed{n}.csv"));
        std::fs::write(&feed, format!("{head}E7,Bob,Ray,bob@x.io,eng,{status}\n")).unwrap();
        let out = run(gatehouse(&data).args(["hr", "import"]).arg(&feed));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let server = Server::start_https(&data, &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)]).await;
    set_password(&data, "admin");
    let b = Browser::start(&server.base).await;
    b.sign_in("admin", PASSWORD, None).await;
    b.click("#totp-setup").await;
    let secret = b.text("#totp-secret").await;
    b.fill("#code", &fresh_code(&secret).await).await;
    b.click("#totp-confirm").await;
    assert!(b.text(".flash").await.contains("Authenticator app set up"));
    let _ = b.console().await;

    // The dashboard: six charts drawn on their canvases, nothing refused by the CSP.
    b.goto("/compliance").await;
    assert!(
        b.text("#evidence")
            .await
            .contains("Download the evidence pack")
    );
    let mut drawn = 0;
    for _ in 0..50 {
        drawn =
            b.c.execute(
                "return document.querySelectorAll('canvas[data-drawn]').length",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        if drawn == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(drawn, 6, "charts drawn");
    let painted = b
        .c
        .execute(
            "const c = document.querySelector('#chart-sessions_by_target canvas');\
             return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(x => x !== 0)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        painted,
        serde_json::Value::Bool(true),
        "the canvas has pixels"
    );
    assert!(
        b.text("#chart-leaver_cut_off").await.contains("(1 in all)"),
        "{}",
        b.text("#chart-leaver_cut_off").await
    );
    no_csp_errors(&b.console().await);
    for width in [1366, 390] {
        b.c.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        b.shot(&format!("compliance-{width}")).await;
        b.c.execute(
            "document.querySelector('#dashboard').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        b.shot(&format!("compliance-charts-{width}")).await;
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

    // Each chart's data, as a reviewer's script would fetch it.
    let api = http_builder(&[&data.join("keys/web-cert.pem")])
        .build()
        .unwrap();
    let csv = api
        .get(server.url("/compliance/data/leaver_cut_off.csv?days=30"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("label,leavers\n"), "{csv}");
    assert!(csv.contains("< 1 s,1"), "{csv}");

    // An evidence pack from the API, checked offline with only the public key.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let resp = api
        .get(server.url(&format!(
            "/api/v1/reports/evidence?framework=soc2&from=2020-01-01&to={today}"
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip = dir.path().join("pack.zip");
    std::fs::write(&zip, resp.bytes().await.unwrap()).unwrap();
    let unpacked = dir.path().join("unpacked");
    let out = run(std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(&unpacked));
    assert!(out.status.success(), "{}", stderr(&out));
    let pack = unpacked.join(format!("soc2-2020-01-01-{today}"));
    let cp = run(gatehouse(&data).args(["audit", "checkpoint"]));
    let key = stdout(&cp)
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap()
        .to_string();
    let elsewhere = dir.path().join("auditor");
    let verify = |p: &std::path::Path| {
        run(gatehouse(&elsewhere)
            .args(["report", "verify"])
            .arg(p)
            .args(["--public-key", &key]))
    };
    let ok = verify(&pack);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).starts_with("OK: "), "{}", stdout(&ok));
    let leavers = std::fs::read_to_string(pack.join("leavers.csv")).unwrap();
    assert!(leavers.contains("bob,"), "{leavers}");
    let controls = std::fs::read_to_string(pack.join("controls.json")).unwrap();
    assert!(controls.contains("\"CC6.3\""), "{controls}");

    // Its HTML summary opens from disk with its charts, no script and no request elsewhere.
    b.c.goto(&format!("file://{}", pack.join("summary.html").display()))
        .await
        .unwrap();
    let bars =
        b.c.execute(
            "return document.querySelectorAll('svg.chart rect.bar').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(bars > 0, "bars drawn: {bars}");
    assert!(b.text("table").await.contains("CC7.2"));
    b.shot("evidence-summary-1366").await;
    no_csp_errors(&b.console().await);

    let csv_path = pack.join("grants.csv");
    let mut bytes = std::fs::read(&csv_path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&csv_path, &bytes).unwrap();
    let bad = verify(&pack);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stdout(&bad).contains("grants.csv was changed"),
        "{}",
        stdout(&bad)
    );
    bytes[0] ^= 0x20;
    std::fs::write(&csv_path, &bytes).unwrap();
    std::fs::remove_file(pack.join("sessions.json")).unwrap();
    let bad = verify(&pack);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains("sessions.json"), "{}", stdout(&bad));

    // The same from the command line.
    let cli_pack = dir.path().join("hipaa");
    let out = run(gatehouse(&data)
        .args([
            "report",
            "evidence",
            "--framework",
            "hipaa",
            "--from",
            "2020-01-01",
            "--out",
        ])
        .arg(&cli_pack));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("164.312(a)(2)(ii)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(verify(&cli_pack).status.code(), Some(0));
    let out = run(gatehouse(&data)
        .args([
            "report",
            "evidence",
            "--framework",
            "pci",
            "--from",
            "2020-01-01",
            "--out",
        ])
        .arg(dir.path().join("x")));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("use soc2, iso27001, sox or hipaa"),
        "{}",
        stderr(&out)
    );

    // Entitlements: now, filtered; as of today rebuilt from the audit log; a bad date explained.
    b.goto("/compliance/entitlements?identity=alice").await;
    let table = b.text("#entitlements").await;
    assert!(
        table.contains("db-01") && table.contains("postgres") && table.contains("standing"),
        "{table}"
    );
    assert!(!table.contains("bob"), "{table}");
    b.goto(&format!("/compliance/entitlements?as_of={today}"))
        .await;
    assert!(
        b.text("#entitlements-summary")
            .await
            .contains("rebuilt from the audit log")
    );
    let past = b.text("#entitlements").await;
    assert!(past.contains("alice") && !past.contains("bob"), "{past}");
    for width in [1366, 390] {
        b.c.set_window_size(width, 900).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        b.shot(&format!("entitlements-{width}")).await;
    }
    b.c.set_window_size(1366, 900).await.unwrap();
    let serious = b.axe_serious().await;
    assert!(serious.is_empty(), "axe-core: {serious:?}");
    b.goto("/compliance/entitlements?as_of=last-tuesday").await;
    assert!(b.text("#entitlements-error").await.contains("not a date"));
    let now_rows = run(gatehouse(&data).args(["report", "entitlements", "--identity", "alice"]));
    assert!(now_rows.status.success(), "{}", stderr(&now_rows));
    let as_of = run(gatehouse(&data).args([
        "report",
        "entitlements",
        "--identity",
        "alice",
        "--as-of",
        &today,
    ]));
    assert!(as_of.status.success(), "{}", stderr(&as_of));
    let rows = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&now_rows), rows(&as_of));
    assert!(
        stdout(&as_of).contains("alice,db-01,postgres,prod-db,standing"),
        "{}",
        stdout(&as_of)
    );
    let ret = run(gatehouse(&data).args(["report", "retention"]));
    assert!(
        stdout(&ret).contains("audit log: retention not set"),
        "{}",
        stdout(&ret)
    );
    b.close().await;
    server.stop();
}
