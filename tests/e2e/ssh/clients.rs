//! SSH clients other than OpenSSH through the gateway: a strict one (russh, counting the EOF and
//! CLOSE messages each channel gets: RFC 4254 §5.3 allows one of each per direction), PuTTY's
//! `plink` and `psftp` (Debian's putty-tools) and Paramiko (PyPI, pinned in
//! `scripts/python-tools.sh`).

use super::*;
use russh::client::{self, Msg};
use russh::{Channel, ChannelId, ChannelMsg};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// EOF and CLOSE messages received, per channel.
type Seen = Arc<Mutex<HashMap<ChannelId, (u32, u32)>>>;

/// A client handler that counts what russh reports of each channel's end.
struct Counting(Seen);

impl client::Handler for Counting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.0.lock().unwrap().entry(channel).or_default().0 += 1;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.0.lock().unwrap().entry(channel).or_default().1 += 1;
        Ok(())
    }
}

/// Reads a channel to its end: standard output and the exit status.
async fn drain(ch: &mut Channel<Msg>) -> (String, Option<u32>) {
    let (mut out, mut status) = (Vec::new(), None);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            _ => {}
        }
    }
    (text(&out), status)
}

/// Runs `command` on a new channel of `h`; returns the channel's id, output and exit status.
async fn exec(h: &client::Handle<Counting>, command: &str) -> (ChannelId, String, Option<u32>) {
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, command).await.unwrap();
    let (out, status) = drain(&mut ch).await;
    (ch.id(), out, status)
}

#[tokio::test]
async fn each_channel_gets_one_eof_and_one_close() {
    let lab = Lab::start().await;
    let seen = Seen::default();
    let key = russh::keys::load_secret_key(lab.path("alice"), None).unwrap();
    let config = Arc::new(client::Config::default());
    let mut h = client::connect(config, lab.server.ssh, Counting(seen.clone()))
        .await
        .unwrap();
    let auth = h
        .authenticate_publickey(
            "root@db-01",
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None),
        )
        .await
        .unwrap();
    assert!(auth.success());
    let mut counted = Vec::new();

    // Two commands, one after the other, on the one connection.
    let (id, out, status) = exec(&h, "echo one").await;
    assert_eq!((out.as_str(), status), ("one\n", Some(0)));
    counted.push(("exec", id));
    let (id, out, status) = exec(&h, "echo two; exit 3").await;
    assert_eq!((out.as_str(), status), ("two\n", Some(3)));
    counted.push(("second exec", id));

    // The client half-closes first: its EOF reaches the target, which answers and ends.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "cat").await.unwrap();
    ch.data_bytes(&b"half-closed\n"[..]).await.unwrap();
    ch.eof().await.unwrap();
    let (out, status) = drain(&mut ch).await;
    assert_eq!((out.as_str(), status), ("half-closed\n", Some(0)));
    counted.push(("exec after the client's EOF", ch.id()));

    // A shell under a PTY.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .unwrap();
    ch.request_shell(true).await.unwrap();
    ch.data_bytes(&b"echo marker-$((6*7)); exit 5\n"[..])
        .await
        .unwrap();
    let (out, status) = drain(&mut ch).await;
    assert!(out.contains("marker-42"), "{out}");
    assert_eq!(status, Some(5));
    counted.push(("shell", ch.id()));

    // The sftp subsystem: SSH_FXP_INIT (version 3) is answered with SSH_FXP_VERSION; the
    // client's EOF ends the server.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.request_subsystem(true, "sftp").await.unwrap();
    ch.data_bytes(&[0u8, 0, 0, 5, 1, 0, 0, 0, 3][..])
        .await
        .unwrap();
    let mut reply = Vec::new();
    while reply.len() < 5 {
        match ch.wait().await {
            Some(ChannelMsg::Data { data }) => reply.extend_from_slice(&data),
            Some(_) => {}
            None => panic!("the sftp channel closed before its version: {reply:?}"),
        }
    }
    assert_eq!(reply[4], 2, "SSH_FXP_VERSION: {reply:?}");
    ch.eof().await.unwrap();
    drain(&mut ch).await;
    counted.push(("sftp", ch.id()));

    // The client closes first (russh forgets a channel it closed: its CLOSE reply is not
    // counted): the session ends, and the connection goes on.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "sleep 30").await.unwrap();
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(_) => {}
            None => panic!("the channel closed before the command started"),
        }
    }
    ch.close().await.unwrap();
    drop(ch);
    let (_, out, status) = exec(&h, "echo after").await;
    assert_eq!((out.as_str(), status), ("after\n", Some(0)));

    // A round trip: whatever the gateway sent before its answer has reached the handler.
    h.send_ping().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    for (what, id) in counted {
        assert_eq!(
            seen.get(&id).copied(),
            Some((1, 1)),
            "{what}: (EOF, CLOSE) received (all channels: {seen:?})"
        );
    }
    drop(h);
    let ended = lab.ended_sessions().await;
    assert!(
        ended.iter().any(|s| s["end_reason"] == "client_closed"),
        "{ended:?}"
    );
    // The target (OpenSSH, which logs a CLOSE received twice as a protocol error) saw none.
    let target_log = std::fs::read_to_string(lab.path("sshd.log")).unwrap();
    assert!(!target_log.contains("protocol error"), "{target_log}");
    lab.server.stop();
}

/// The gateway's host key fingerprint (`SHA256:…`), as `plink -hostkey` takes it.
fn gateway_fingerprint(lab: &Lab) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(lab.path("data/keys/ssh_host_ed25519_key"))
        .output()
        .unwrap();
    let line = ok(&out);
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// A PuTTY tool (`plink`, `psftp`) as alice, with her key converted to PuTTY's format, the
/// gateway's host key given, no agent, no prompts, and a home of its own (no saved settings).
fn putty(lab: &Lab, tool: &str) -> Command {
    let ppk = lab.path("alice.ppk");
    if !ppk.exists() {
        let out = Command::new("puttygen")
            .arg(lab.path("alice"))
            .args(["-O", "private", "-o"])
            .arg(&ppk)
            .stdin(Stdio::null())
            .output()
            .expect("puttygen (Debian package putty-tools: scripts/packages.sh test)");
        ok(&out);
    }
    let home = lab.path("putty-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = Command::new(tool);
    c.env("HOME", &home)
        .args(["-batch", "-noagent", "-P"])
        .arg(lab.server.ssh.port().to_string())
        .arg("-i")
        .arg(&ppk)
        .arg("-hostkey")
        .arg(gateway_fingerprint(lab))
        .args(["-l", "root@db-01"])
        .stdin(Stdio::null());
    c
}

/// The incoming channel messages PuTTY logged (`-sshlog`), by name (`SSH2_MSG_CHANNEL_EOF`…).
fn incoming_channel_messages(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Incoming packet"))
        .filter_map(|l| l.split('(').nth(1))
        .map(|m| m.trim_end_matches(')').to_string())
        .filter(|m| m.starts_with("SSH2_MSG_CHANNEL_"))
        .collect()
}

#[tokio::test]
async fn plink_runs_a_command_and_psftp_copies_files_through_the_gateway() {
    let lab = Lab::start().await;
    let log = lab.path("plink.log");
    let out = putty(&lab, "plink")
        .arg("-sshlog")
        .arg(&log)
        .args(["127.0.0.1", "echo one; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(
        (text(&out.stdout).as_str(), out.status.code()),
        ("one\n", Some(3)),
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("err"), "{}", text(&out.stderr));
    // What PuTTY received on the wire: one EOF, one CLOSE, and nothing after the CLOSE.
    let got = incoming_channel_messages(&log);
    let count = |m: &str| got.iter().filter(|g| *g == m).count();
    assert_eq!(count("SSH2_MSG_CHANNEL_EOF"), 1, "{got:?}");
    assert_eq!(count("SSH2_MSG_CHANNEL_CLOSE"), 1, "{got:?}");
    assert_eq!(
        got.last().map(String::as_str),
        Some("SSH2_MSG_CHANNEL_CLOSE"),
        "{got:?}"
    );

    // psftp puts a file and gets it back (3 MiB: past the 2 MiB window).
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (local, remote, back) = (
        lab.path("local.bin"),
        lab.path("remote-psftp.bin"),
        lab.path("back-psftp.bin"),
    );
    std::fs::write(&local, &data).unwrap();
    let batch = lab.path("psftp-batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\nrm {}\nquit\n",
            local.display(),
            remote.display(),
            remote.display(),
            back.display(),
            remote.display()
        ),
    )
    .unwrap();
    let out = putty(&lab, "psftp")
        .arg("-b")
        .arg(&batch)
        .arg("127.0.0.1")
        .output()
        .unwrap();
    ok(&out);
    assert!(std::fs::read(&back).unwrap() == data, "psftp copy differs");
    assert!(!remote.exists(), "psftp rm did not remove the copy");

    let kinds: Vec<String> = lab
        .ended_sessions()
        .await
        .iter()
        .map(|s| s["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        kinds.contains(&"exec".to_string()) && kinds.contains(&"sftp".to_string()),
        "{kinds:?}"
    );
    lab.server.stop();
}

/// Two commands on one Paramiko `Transport`, the gateway's host key checked; prints
/// `STATUS:OUTPUT` for each.
const PARAMIKO: &str = r#"
import base64, sys, paramiko
port, key, host = int(sys.argv[1]), sys.argv[2], sys.argv[3].split()
t = paramiko.Transport(("127.0.0.1", port))
t.connect(hostkey=paramiko.Ed25519Key(data=base64.b64decode(host[1])),
          username="root@db-01", pkey=paramiko.Ed25519Key.from_private_key_file(key))
for command in ["echo one", "echo two; exit 3"]:
    ch = t.open_session()
    ch.exec_command(command)
    out = ch.makefile("rb").read().decode()
    sys.stdout.write(f"{ch.recv_exit_status()}:{out}")
    ch.close()
t.close()
"#;

#[tokio::test]
async fn paramiko_runs_two_commands_on_one_connection_through_the_gateway() {
    let lab = Lab::start().await;
    let venv = std::env::var("GATEHOUSE_PY_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gatehouse/venv")
        });
    let script = lab.path("two_commands.py");
    std::fs::write(&script, PARAMIKO).unwrap();
    let host = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(lab.path("data/keys/ssh_host_ed25519_key"))
        .output()
        .unwrap();
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(lab.server.ssh.port().to_string())
        .arg(lab.path("alice"))
        .arg(ok(&host).trim())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}/bin/python: {e} (run scripts/python-tools.sh, which installs Paramiko)",
                venv.display()
            )
        });
    assert_eq!(ok(&out), "0:one\n3:two\n", "stderr: {}", text(&out.stderr));
    let sessions = lab.ended_sessions().await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    lab.server.stop();
}
