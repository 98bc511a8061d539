//! Sessions through the gateway: exec, PTY, scp and sftp recorded; denials; sessions ending with
//! their access (revoked, expired, identity disabled, on another PostgreSQL instance); strict
//! recording; the demo.

use super::*;

#[tokio::test]
async fn exec_pty_scp_and_sftp_work_through_the_gateway_and_are_recorded() {
    let lab = Lab::start().await;
    // exec, with its exit status.
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(ok(&out), "hi\n");
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("exit 3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    // TARGET alone: the only login allowed.
    let out = lab.ssh("alice", "db-01").arg("id -un").output().unwrap();
    assert_eq!(ok(&out), "root\n");

    // An interactive shell under a PTY.
    let mut child = lab
        .ssh("alice", "root@db-01")
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo marker-$((6*7))\n").unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(b"exit\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        text(&out.stdout).contains("marker-42"),
        "{}",
        text(&out.stdout)
    );

    // scp and sftp copy 10 MiB intact.
    let big = lab.path("big.bin");
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let remote = lab.path("remote.bin");
    let out = Command::new("scp")
        .arg("-q")
        .arg("-P")
        .arg(lab.server.ssh.port().to_string())
        .args(lab.opts("alice"))
        .arg(&big)
        .arg(format!("root@db-01@127.0.0.1:{}", remote.display()))
        .output()
        .unwrap();
    ok(&out);
    assert!(std::fs::read(&remote).unwrap() == data, "scp copy differs");
    let back = lab.path("back.bin");
    let batch = lab.path("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}.sftp\nget {}.sftp {}\nrm {}.sftp\n",
            big.display(),
            remote.display(),
            remote.display(),
            back.display(),
            remote.display()
        ),
    )
    .unwrap();
    let out = Command::new("sftp")
        .arg("-q")
        .arg("-P")
        .arg(lab.server.ssh.port().to_string())
        .args(lab.opts("alice"))
        .arg("-b")
        .arg(&batch)
        .arg("root@db-01@127.0.0.1")
        .output()
        .unwrap();
    ok(&out);
    assert!(std::fs::read(&back).unwrap() == data, "sftp copy differs");

    // Every session is in the sessions table with its recording and end.
    let sessions = lab.ended_sessions().await;
    let kinds: Vec<&str> = sessions
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for k in ["exec", "shell", "sftp"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    assert!(
        sessions
            .iter()
            .all(|s| s["ended_at_ms"].is_i64() && s["identity"] == "alice")
    );
    let sftp_in = sessions
        .iter()
        .filter(|s| s["kind"] == "sftp")
        .map(|s| s["bytes_up"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(sftp_in > 10 * 1024 * 1024, "bytes up {sftp_in}");
    let shell = sessions.iter().find(|s| s["kind"] == "shell").unwrap();
    let cast = lab
        .path("data/recordings")
        .join(shell["recording"].as_str().unwrap());

    // The recording plays in asciinema (which wants a terminal: give it one with script(1)).
    let played = Command::new("script")
        .args([
            "-qec",
            &format!("asciinema cat {}", cast.display()),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        text(&played.stdout).contains("marker-42"),
        "{}",
        text(&played.stdout)
    );
    // SFTP file operations are markers of their session.
    let sftp = sessions.iter().find(|s| s["kind"] == "sftp").unwrap();
    let sftp_cast = std::fs::read_to_string(
        lab.path("data/recordings")
            .join(sftp["recording"].as_str().unwrap()),
    )
    .unwrap();
    assert!(
        sftp_cast.contains("sftp open") && sftp_cast.contains("sftp remove"),
        "{sftp_cast}"
    );

    // Verified offline with only the public key; one changed byte fails it.
    let public = std::fs::read_to_string(lab.path("data/keys/signing-key.pub")).unwrap();
    let verify = || {
        gatehouse(&lab.path("elsewhere"))
            .args(["recordings", "verify", "--public-key", public.trim()])
            .arg(&cast)
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(ok(&out).starts_with("OK: "));
    let mut bytes = std::fs::read(&cast).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&cast, &bytes).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("the cast was changed"));

    // Audited: starts and ends.
    assert!(lab.audit("session.start").await.len() >= 6);
    assert!(lab.audit("session.end").await.len() >= 6);
    lab.server.stop();
}

#[tokio::test]
async fn sessions_without_access_are_denied_and_sessions_end_with_their_grant() {
    let lab = Lab::start().await;
    // bob holds nothing live: denied, and an unknown target gets the very same answer.
    let known = lab.ssh("bob", "root@db-01").arg("true").output().unwrap();
    let unknown = lab.ssh("bob", "root@db-99").arg("true").output().unwrap();
    assert_eq!(known.status.code(), Some(1));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&known.stderr).contains("access denied"),
        "{}",
        text(&known.stderr)
    );
    assert_eq!(text(&known.stderr), text(&unknown.stderr), "no enumeration");
    // SFTP and scp ride the same session channel, so the same decision refuses them.
    let batch = lab.path("deny-batch");
    std::fs::write(&batch, "ls /\n").unwrap();
    let sftp = Command::new("sftp")
        .arg("-q")
        .arg("-P")
        .arg(lab.server.ssh.port().to_string())
        .args(lab.opts("bob"))
        .arg("-b")
        .arg(&batch)
        .arg("root@db-01@127.0.0.1")
        .output()
        .unwrap();
    assert!(
        !sftp.status.success(),
        "sftp without a grant: {}",
        text(&sftp.stdout)
    );
    assert!(
        !text(&sftp.stdout).contains("bin"),
        "{}",
        text(&sftp.stdout)
    );
    let scp = Command::new("scp")
        .arg("-q")
        .arg("-P")
        .arg(lab.server.ssh.port().to_string())
        .args(lab.opts("bob"))
        .arg("root@db-01@127.0.0.1:/etc/hostname")
        .arg(lab.path("stolen"))
        .output()
        .unwrap();
    assert!(!scp.status.success());
    assert!(
        !lab.path("stolen").exists(),
        "scp without a grant copied a file"
    );
    let denied = lab.audit("session.denied").await;
    assert!(
        denied
            .iter()
            .any(|e| e["actor"] == "identity:bob" && e["object"] == "target:db-01"),
        "{denied:?}"
    );
    // With no target, the menu: what bob may reach now (nothing) and may request.
    let menu = lab.ssh("bob", "bob").output().unwrap();
    let menu = ok(&menu);
    assert!(
        menu.contains("You may not reach any target right now") && menu.contains("db-temp"),
        "{menu}"
    );

    // bob activates db-temp (no approval needed), connects; revoking the grant cuts him off.
    let grant = lab.activate("bob", "db-temp").await;
    let mut child = long_session(&lab, "bob");
    wait_started(&mut child);
    let (st, _) = lab
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/grants/{grant}/revoke"),
            TOKEN,
            Some(serde_json::json!({ "reason": "e2e revoke" })),
        )
        .await;
    assert_eq!(st, 200);
    let (out, took) = ends_within(child, Duration::from_secs(5));
    println!("revoked: the ssh client exited {took:?} after the revoke answered");
    assert!(!text(&out.stdout).contains("still-here"));
    assert!(
        text(&out.stderr).contains("gatehouse: session ended: your access was revoked"),
        "{}",
        text(&out.stderr)
    );

    // A standing assignment that ends in 3 s: the session ends with it.
    let until = chrono_like_now_plus(3);
    let (st, a) = lab
        .api(reqwest::Method::POST, "/api/v1/assignments", TOKEN,
            Some(serde_json::json!({ "role": "db-temp", "to": "bob", "kind": "standing", "until": until })))
        .await;
    assert_eq!(st, 201, "{a}");
    let mut child = long_session(&lab, "bob");
    wait_started(&mut child);
    let (out, took) = ends_within(child, Duration::from_secs(10));
    println!(
        "expired: the ssh client exited {took:?} after the session started (assignment ends 3 s after it was made)"
    );
    assert!(
        text(&out.stderr).contains("your access has expired"),
        "{}",
        text(&out.stderr)
    );

    let ended: Vec<String> = lab
        .ended_sessions()
        .await
        .iter()
        .map(|s| s["end_reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        ended.contains(&"grant_revoked".to_string())
            && ended.contains(&"grant_expired".to_string()),
        "{ended:?}"
    );
    lab.server.stop();
}

/// RFC 3339 for now + `secs`, from the system clock.
fn chrono_like_now_plus(secs: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs);
    let unix = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn strict_recording_refuses_a_session_that_cannot_be_recorded() {
    // The recordings directory lies under a regular file: nothing can be created there.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "x").unwrap();
    let lab = Lab::start_with(&format!(
        "[ssh]\nrecordings_dir = \"{}\"\n",
        blocker.join("recordings").display()
    ))
    .await;
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("echo hi")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).is_empty(),
        "the command ran: {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("the session could not be recorded"),
        "{}",
        text(&out.stderr)
    );
    let s = lab.ended_sessions().await;
    assert_eq!(s[0]["end_reason"], "recording_failed", "{s:?}");
    lab.server.stop();
}

#[tokio::test]
async fn disabling_an_identity_ends_its_live_sessions() {
    let lab = Lab::start().await;
    let mut child = long_session(&lab, "alice");
    wait_started(&mut child);
    let (st, v) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/identities/alice/status",
            TOKEN,
            Some(serde_json::json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (out, took) = ends_within(child, Duration::from_secs(5));
    println!("disabled: the ssh client exited {took:?} after the change answered");
    assert!(
        text(&out.stderr).contains("your account was disabled"),
        "{}",
        text(&out.stderr)
    );
    // And it cannot come back: its keys no longer authenticate.
    let out = lab.ssh("alice", "root@db-01").arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    lab.server.stop();
}

#[tokio::test]
async fn the_demo_prints_an_ssh_line_that_reaches_a_recorded_sandbox_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_command("demo", dir.path(), &[], &[]).await;
    // The banner names the key and the port actually bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = server.log();
        if let Some(l) = log.lines().find(|l| l.trim_start().starts_with("ssh -i ")) {
            break l.trim().to_string();
        }
        assert!(Instant::now() < deadline, "no ssh line printed:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        line.contains(&format!("-p {}", server.ssh.port())),
        "{line}"
    );
    let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
    // Paste it, as a newcomer would (plus non-interactive options and a command).
    let program = words.remove(0);
    let out = Command::new(program)
        .current_dir(dir.path().parent().unwrap())
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(&words)
        .arg("echo hello from the sandbox")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(ok(&out), "hello from the sandbox\n");
    // Recorded and verifiable.
    let demo = dir.path().join("demo");
    let mut casts = Vec::new();
    let mut stack = vec![demo.join("recordings")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()) {
            if e.is_dir() {
                stack.push(e);
            } else if e.extension().is_some_and(|x| x == "cast") {
                casts.push(e);
            }
        }
    }
    // The session's end (and manifest) is written just after the client exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while casts.len() == 1 && !casts[0].with_extension("manifest.sig").exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(casts.len(), 1, "{casts:?}");
    let out = gatehouse(&demo)
        .args(["recordings", "verify"])
        .arg(&casts[0])
        .output()
        .unwrap();
    assert!(ok(&out).starts_with("OK: "));
    server.stop();
}

#[tokio::test]
async fn on_postgresql_a_revoke_on_one_instance_ends_the_session_on_another() {
    let (name, url) = gatehouse_broker::testkit::create_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("bob"), "bob@laptop");
    // Two instances share the database and the key files (one data directory for both).
    let data = d.join("data");
    let out = run(gatehouse(&data).args(["--database-url", &url, "ssh", "ca"]));
    assert!(out.status.success());
    std::fs::write(d.join("ca.pub"), stdout(&out)).unwrap();
    let sshd = Sshd::start(d, &d.join("ca.pub"));
    let policy = format!(
        "[[identities]]\nusername = \"bob\"\nssh_keys = [\"{}\"]\n\n[[targets]]\nname = \"db-01\"\nkind = \"ssh\"\naddress = \"127.0.0.1:{}\"\nhost_key = \"{}\"\n\n[[roles]]\nname = \"db-temp\"\ntargets = {{ names = [\"db-01\"] }}\nlogins = [\"root\"]\nmax_duration = \"1h\"\n\n[[assignments]]\nrole = \"db-temp\"\nto = \"bob\"\nkind = \"eligible\"\n",
        std::fs::read_to_string(d.join("bob.pub")).unwrap().trim(),
        sshd.port,
        sshd.host_key_pub
    );
    std::fs::write(d.join("policy.toml"), policy).unwrap();
    let out = run(gatehouse(&data)
        .args(["--database-url", &url, "apply"])
        .arg(d.join("policy.toml")));
    assert!(out.status.success(), "{}", stdout(&out));
    let env = [("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)];
    let a = Server::start(&data, &["--database-url", &url], &env).await;
    let b = Server::start(&data, &["--database-url", &url], &env).await;
    let lab = Lab {
        dir,
        server: a,
        _sshd: sshd,
    };
    let grant = lab.activate("bob", "db-temp").await;
    let mut child = long_session(&lab, "bob");
    wait_started(&mut child);
    // Revoke through instance B; the session runs on instance A.
    let resp = crate::harness::http()
        .post(b.url(&format!("/api/v1/grants/{grant}/revoke")))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "reason": "e2e revoke on B" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (out, took) = ends_within(child, Duration::from_secs(5));
    println!("postgres: the session on A ended {took:?} after B's revoke answered");
    assert!(
        text(&out.stderr).contains("your access was revoked"),
        "{}",
        text(&out.stderr)
    );
    b.stop();
    lab.server.stop();
    gatehouse_broker::testkit::drop_postgres_database(&name).await;
}

#[tokio::test]
async fn a_full_duplex_transfer_does_not_stall() {
    // Upload and download at once through `cat` on the target: 32 MiB each way.
    let lab = Lab::start().await;
    let data: Vec<u8> = (0..32 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut child = lab
        .ssh("alice", "root@db-01")
        .arg("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let input = data.clone();
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input).unwrap();
    });
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut back = Vec::new();
        stdout.read_to_end(&mut back).unwrap();
        back
    });
    let (_, _) = ends_within(child, Duration::from_secs(60));
    writer.join().unwrap();
    let back = reader.join().unwrap();
    println!("full duplex: 32 MiB each way in {:?}", t.elapsed());
    assert!(back == data, "the echo differs ({} bytes back)", back.len());
    lab.server.stop();
}
