//! The HR feed end to end: an initial load, then a file with 3 joiners, 1 mover and 1 leaver —
//! first as a dry run (nothing changes), then for real — gives exactly the expected access, and
//! the leaver's live SSH session through the gateway closes.

use super::*;

const HR0: &str = "employee_number,first_name,last_name,email,manager,department,title,employment_type,start_date,end_date,sponsor,status
E100,Mia,Boss,mia@example.com,,engineering,Head of Engineering,employee,2020-01-01,,,
E101,Max,Mover,max@example.com,E100,engineering,Engineer,employee,2021-03-01,,,
E102,Lea,Leaver,lea@example.com,E100,engineering,Engineer,employee,2022-05-01,,,
";

const HR1: &str = "employee_number,first_name,last_name,email,manager,department,title,employment_type,start_date,end_date,sponsor,status
E100,Mia,Boss,mia@example.com,,engineering,Head of Engineering,employee,2020-01-01,,,
E101,Max,Mover,max@example.com,E100,operations,SRE,employee,2021-03-01,,,
E102,Lea,Leaver,lea@example.com,E100,engineering,Engineer,employee,2022-05-01,,,terminated
E103,Jo,Joiner,jo@example.com,E100,engineering,Engineer,employee,2026-01-05,,,
E104,Kim,Contractor,kim@example.com,E100,operations,Consultant,contractor,2026-01-05,2099-03-31,E100,
E105,Ned,New,ned@example.com,E100,engineering,Engineer,employee,2026-02-02,,,
E106,Bad,Row,bad@example.com,E100,engineering,Engineer,employee,2026-02-30,,,
";

fn authorize(lab: &Lab, who: &str) -> String {
    let out = run(gatehouse(&lab.path("data")).args([
        "authorize",
        "--identity",
        who,
        "--target",
        "db-01",
    ]));
    stdout(&out)
}

#[tokio::test]
async fn hr_feed_joiners_mover_and_leaver_give_the_expected_access_and_cut_the_leaver() {
    let lab = Lab::start().await;
    // db-root (root on db-01) is a birthright of engineering.
    lab.put_db_root(
        &["db-01"],
        serde_json::json!({ "birthright": { "department": ["engineering"] } }),
    )
    .await;
    let data = lab.path("data");
    std::fs::write(lab.path("hr0.csv"), HR0).unwrap();
    let out = run(gatehouse(&data)
        .args(["hr", "import"])
        .arg(lab.path("hr0.csv")));
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        text(&out.stderr)
    );

    // lea works on db-01 through her birthright access.
    keygen(&lab.path("lea"), "lea@laptop");
    let key = std::fs::read_to_string(lab.path("lea.pub")).unwrap();
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/identities/lea/ssh-keys",
            TOKEN,
            Some(serde_json::json!({ "public_key": key.trim() })),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let mut child = long_session(&lab, "lea");
    wait_started(&mut child);
    // Her key signed that login (OpenSSH, verified at the gateway): its use is recorded, for the
    // unused-key findings.
    let (st, keys) = lab
        .api(
            reqwest::Method::GET,
            "/api/v1/identities/lea/ssh-keys",
            TOKEN,
            None,
        )
        .await;
    assert_eq!(st, 200, "{keys}");
    assert!(keys[0]["last_used_at_ms"].is_i64(), "{keys}");

    // The dry run: exactly 3 joiners, 1 mover, 1 leaver (+ the bad row named); nothing changes.
    std::fs::write(lab.path("hr1.csv"), HR1).unwrap();
    let out = run(gatehouse(&data)
        .args(["hr", "import", "--dry-run"])
        .arg(lab.path("hr1.csv")));
    let plan = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "a bad row: exit 1\n{plan}");
    assert!(
        text(&out.stderr).contains("hr1.csv:8: start_date:"),
        "{}",
        text(&out.stderr)
    );
    let lines: Vec<&str> = plan.lines().collect();
    let kind = |k: &str| lines.iter().filter(|l| l.starts_with(k)).count();
    assert_eq!(
        (kind("+ joiner"), kind("~ mover"), kind("- leaver")),
        (3, 1, 1),
        "{plan}"
    );
    assert!(
        plan.contains("+ joiner   jo (E103, line 5): engineering / Engineer; + role db-root"),
        "{plan}"
    );
    assert!(
        plan.contains("+ joiner   kim (E104, line 6): operations / Consultant\n"),
        "{plan}"
    );
    assert!(plan.contains("~ mover    max (E101, line 3): department \"engineering\" → \"operations\"; title \"Engineer\" → \"SRE\"; - role db-root after 7days grace"), "{plan}");
    assert!(plan.contains("- leaver   lea (E102, line 4)"), "{plan}");
    assert!(plan.contains("dry run: nothing changed"));
    assert!(authorize(&lab, "jo").contains("DENY"));
    assert!(authorize(&lab, "lea").starts_with("ALLOW"));

    // For real: the leaver's live session closes.
    let t = Instant::now();
    let out = run(gatehouse(&data)
        .args(["hr", "import"])
        .arg(lab.path("hr1.csv")));
    assert!(
        stdout(&out).contains("applied 5 change(s)"),
        "{}",
        stdout(&out)
    );
    let (out, _) = ends_within(child, Duration::from_secs(10));
    println!(
        "leaver: the live session closed {:?} after the import started",
        t.elapsed()
    );
    assert!(!text(&out.stdout).contains("still-here"));
    assert!(
        text(&out.stderr).contains("gatehouse: session ended"),
        "{}",
        text(&out.stderr)
    );

    // Exactly the expected access.
    assert!(authorize(&lab, "jo").starts_with("ALLOW"));
    assert!(authorize(&lab, "ned").starts_with("ALLOW"));
    assert!(
        authorize(&lab, "kim").contains("DENY"),
        "operations has no birthright here"
    );
    assert!(authorize(&lab, "lea").contains("DENY"));
    // max moved: engineering access stays for the grace period only.
    let max = authorize(&lab, "max");
    assert!(max.starts_with("ALLOW"), "{max}");
    assert!(
        !max.contains("until no end"),
        "the grace period ends it: {max}"
    );
    // lea cannot log in again; her key is disabled.
    let again = lab.ssh("lea", "root@db-01").arg("true").output().unwrap();
    assert!(!again.status.success());

    // Audited with the record that caused each change, and the session end.
    let leaver = lab.audit("hr.leaver").await;
    assert_eq!(leaver.len(), 1);
    let details = leaver[0]["details"].to_string();
    assert!(
        details.contains("hr1.csv") && details.contains("E102"),
        "{details}"
    );
    assert_eq!(lab.audit("hr.joiner").await.len(), 6);
    assert_eq!(lab.audit("hr.mover").await.len(), 1);
    let ended = lab.ended_sessions().await;
    assert!(
        ended
            .iter()
            .any(|s| s["identity"] == "lea" && s["end_reason"] == "identity_disabled"),
        "{ended:?}"
    );

    // The same file again changes nothing.
    let out = run(gatehouse(&data)
        .args(["hr", "import"])
        .arg(lab.path("hr1.csv")));
    assert!(
        stdout(&out).contains("applied 0 change(s)"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn serve_imports_hr_files_dropped_in_its_folder() {
    let lab =
        Lab::start_with("[hr]\ndrop_folder = \"hr-inbox\"\npoll_interval = \"200ms\"\n").await;
    let inbox = lab.path("hr-inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // Written elsewhere, then renamed in (as writers should).
    std::fs::write(lab.path("feed.tmp"), HR0).unwrap();
    std::fs::rename(lab.path("feed.tmp"), inbox.join("2026-11-26.csv")).unwrap();
    let processed = inbox.join("processed").join("2026-11-26.csv");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processed.exists() {
        assert!(
            Instant::now() < deadline,
            "the dropped file was never imported:\n{}",
            lab.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report =
        std::fs::read_to_string(inbox.join("processed").join("2026-11-26.csv.report.txt")).unwrap();
    assert!(report.contains("applied 3 change(s)"), "{report}");
    let (st, v) = lab
        .api(reqwest::Method::GET, "/api/v1/identities/lea", TOKEN, None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(lab.audit("hr.joiner").await.len(), 3);
}
