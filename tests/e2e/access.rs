//! The access-model commands as a user runs them: `policy check`, `apply` (direct and through
//! `--server`), `authorize` (what-if) and `sod scan`.

use crate::harness::{Server, gatehouse, run, stdout};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/policy.toml");

#[test]
fn policy_check_accepts_the_documented_example_and_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path()).args(["policy", "check", EXAMPLE]));
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("valid (4 identities, 3 groups, 2 targets, 5 roles"),
        "{}",
        stdout(&out)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[roles]]\nname = \"x\"\nmax_duraton = \"1h\"\n").unwrap();
    let out = run(gatehouse(dir.path()).args(["policy", "check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("bad.toml:3:1"), "{}", stdout(&out));

    std::fs::write(
        &bad,
        "[[roles]]\nname = \"x\"\ncondition = 'principal.shoe_size == 1'\n",
    )
    .unwrap();
    let out = run(gatehouse(dir.path()).args(["policy", "check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("role x condition"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn apply_plans_applies_and_is_idempotent_then_authorize_explains() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE, "--dry-run"]));
    assert!(out.status.success(), "{}", stdout(&out));
    let plan = stdout(&out);
    assert!(plan.contains("+ create role prod-db"), "{plan}");
    assert!(plan.contains("nothing applied (dry run)"), "{plan}");
    // The dry run changed nothing: the same plan again.
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE, "--dry-run"]));
    assert_eq!(stdout(&out), plan);

    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE]));
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("change(s) applied"),
        "{}",
        stdout(&out)
    );
    let out = run(gatehouse(dir.path()).args(["apply", EXAMPLE]));
    assert!(stdout(&out).starts_with("No changes"), "{}", stdout(&out));

    // Standing staging-web allows deploy and root: a login must be named.
    let out =
        run(gatehouse(dir.path()).args(["authorize", "--identity", "alice", "--target", "web-01"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("several logins"), "{}", stdout(&out));
    let out = run(gatehouse(dir.path()).args([
        "authorize",
        "--identity",
        "alice",
        "--target",
        "web-01",
        "--login",
        "root",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("ALLOW"));
    let out = run(gatehouse(dir.path()).args([
        "authorize",
        "--identity",
        "alice",
        "--target",
        "db-01",
        "--login",
        "postgres",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("DENY"));

    // Nobody holds both sides of the SoD rule yet.
    let out = run(gatehouse(dir.path()).args(["sod", "scan"]));
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("No SoD violations"));
}

#[tokio::test]
async fn apply_through_a_running_server_needs_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "e2e-bootstrap-token-0123456789abcdef";
    let server = Server::start(dir.path(), &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", token)]).await;
    let base = server.url("");
    let out = run(gatehouse(dir.path())
        .args(["apply", EXAMPLE, "--server", base.trim_end_matches('/')])
        .env("GATEHOUSE_TOKEN", "ght_wrong"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::harness::stderr(&out).contains("refused (401"),
        "{}",
        crate::harness::stderr(&out)
    );
    let out = run(gatehouse(dir.path())
        .args(["apply", EXAMPLE, "--server", base.trim_end_matches('/')])
        .env("GATEHOUSE_TOKEN", token));
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    assert!(stdout(&out).contains("+ create role prod-db"));
    server.stop();
}
