//! What a user sees when something is wrong: one line naming the problem, no panic, no backtrace;
//! and `--help` on every command.

use crate::harness::{BIN, gatehouse, run, stderr, stdout};
use std::process::Command;

fn assert_one_clean_line(err: &str) {
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn every_command_explains_itself() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "checkpoint", "--help"],
        vec!["audit", "export", "--help"],
        vec!["version", "--help"],
        vec!["apply", "--help"],
        vec!["policy", "check", "--help"],
        vec!["authorize", "--help"],
        vec!["sod", "scan", "--help"],
        vec!["findings", "--help"],
    ] {
        let out = run(Command::new(BIN).args(&args));
        assert!(out.status.success(), "{args:?}");
        let text = stdout(&out);
        assert!(text.contains("Usage: gatehouse"), "{args:?}: {text}");
        assert!(
            text.lines().count() > 8,
            "{args:?} help is too thin: {text}"
        );
    }
    let version = run(Command::new(BIN).arg("version"));
    assert!(stdout(&version).starts_with(&format!("gatehouse {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn a_malformed_config_file_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"data\"\n\n[web]\nlisten = \"127.0.0.1:99999\"\n",
    )
    .unwrap();
    let out = run(gatehouse(dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("migrate"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_one_clean_line(&err);
    assert!(err.contains(&format!("{}:4:10:", cfg.display())), "{err}");

    std::fs::write(&cfg, "databse_url = \"postgres://x\"\n").unwrap();
    let err = stderr(&run(gatehouse(dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("migrate")));
    assert_one_clean_line(&err);
    assert!(
        err.contains(":1:1:") && err.contains("unknown field `databse_url`"),
        "{err}"
    );
}

#[test]
fn an_unreachable_database_is_one_line_naming_the_host() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://gatehouse:hunter2@127.0.0.1:{port}/gatehouse");
    for cmd in [
        vec!["migrate"],
        vec!["serve", "--web-listen", "127.0.0.1:0"],
        vec!["audit", "verify"],
    ] {
        let out = run(gatehouse(dir.path())
            .env("GATEHOUSE_DATABASE_URL", &url)
            .args(&cmd));
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&out);
        assert_one_clean_line(&err);
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(!err.contains("hunter2"), "password leaked: {err}");
    }
}

#[test]
fn an_unwritable_data_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = run(gatehouse(&file.join("data")).arg("migrate"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_one_clean_line(&err);
    assert!(
        err.contains("data directory") && err.contains("is not writable"),
        "{err}"
    );
}

#[test]
fn a_missing_database_is_not_created_by_read_only_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(gatehouse(&dir.path().join("nowhere")).args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(2));
    assert_one_clean_line(&stderr(&out));
    assert!(!dir.path().join("nowhere").exists());
}
