//! Regression tests for the gateway's security classes: offered-but-unsigned keys, stalled
//! clients, strict key exchange and hostile input before authentication, pinned host keys, port
//! forwarding without permission, remote and agent forwarding never.

use super::*;

struct NoSignature;

struct BadSignature;

#[derive(Debug)]
struct Refused;

impl From<russh::SendError> for Refused {
    fn from(_: russh::SendError) -> Self {
        Refused
    }
}

impl russh::Signer for NoSignature {
    type Error = Refused;
    async fn auth_sign(
        &mut self,
        _key: &russh::keys::agent::AgentIdentity,
        _hash_alg: Option<russh::keys::HashAlg>,
        _to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, Refused> {
        Err(Refused)
    }
}

impl russh::Signer for BadSignature {
    type Error = Refused;
    async fn auth_sign(
        &mut self,
        _key: &russh::keys::agent::AgentIdentity,
        _hash_alg: Option<russh::keys::HashAlg>,
        mut to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, Refused> {
        // A well-formed ssh-ed25519 signature blob that no key made.
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&64u32.to_be_bytes());
        blob.extend_from_slice(&[7u8; 64]);
        to_sign.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        to_sign.extend_from_slice(&blob);
        Ok(to_sign)
    }
}

#[tokio::test]
async fn security_offered_key_without_signature_never_authenticates() {
    let lab = Lab::start().await;
    let alice = russh::keys::load_public_key(lab.path("alice.pub")).unwrap();
    let config = std::sync::Arc::new(russh::client::Config::default());

    // Offer alice's registered key, then fail to sign: the gateway answered "that key could
    // work" (PK_OK), which must not be a login.
    let mut h = russh::client::connect(config.clone(), lab.server.ssh, AnyHost)
        .await
        .unwrap();
    let r = h
        .authenticate_publickey_with("root@db-01", alice.clone(), None, &mut NoSignature)
        .await;
    assert!(r.is_err(), "the signer refused");
    let opened = tokio::time::timeout(Duration::from_secs(5), h.channel_open_session()).await;
    assert!(
        !matches!(opened, Ok(Ok(_))),
        "a channel opened without a verified signature"
    );

    // Offer it with a signature no key made: refused.
    let mut h = russh::client::connect(config.clone(), lab.server.ssh, AnyHost)
        .await
        .unwrap();
    let r = h
        .authenticate_publickey_with("root@db-01", alice, None, &mut BadSignature)
        .await
        .unwrap();
    assert!(!r.success(), "a bad signature authenticated");
    let opened = tokio::time::timeout(Duration::from_secs(5), h.channel_open_session()).await;
    assert!(!matches!(opened, Ok(Ok(_))));

    // The real key with its real signature works (the test can tell the difference).
    let key = russh::keys::load_secret_key(lab.path("alice"), None).unwrap();
    let mut h = russh::client::connect(config, lab.server.ssh, AnyHost)
        .await
        .unwrap();
    let r = h
        .authenticate_publickey(
            "root@db-01",
            russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None),
        )
        .await
        .unwrap();
    assert!(r.success());
    assert!(
        lab.sessions().await.is_empty(),
        "no session was opened by the probes"
    );
    lab.server.stop();
}

#[tokio::test]
async fn security_a_stalled_client_neither_blocks_others_nor_outlives_the_login_timeout() {
    let lab = Lab::start_with("[ssh]\nlogin_timeout = \"2s\"\n").await;
    // A client that connects and says nothing; another that sends half a banner.
    let mut silent = std::net::TcpStream::connect(lab.server.ssh).unwrap();
    let mut slow = std::net::TcpStream::connect(lab.server.ssh).unwrap();
    std::io::Write::write_all(&mut slow, b"SSH-2.0-").unwrap();
    let t = Instant::now();
    // Meanwhile everyone else gets in.
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(ok(&out), "hi\n");
    for stream in [&mut silent, &mut slow] {
        // Our banner may arrive first; then the connection must close.
        assert!(
            closes(stream),
            "a stalled client outlived the login timeout"
        );
    }
    let took = t.elapsed();
    println!("stalled clients were cut after {took:?} (login timeout 2 s)");
    assert!(took < Duration::from_secs(12), "{took:?}");
    lab.server.stop();
}

/// Reads until the peer closes the connection (or the timeout); true when it closed.
fn closes(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// The name-lists of the server's KEXINIT, read after exchanging banners.
fn server_kexinit(addr: std::net::SocketAddr) -> Vec<Vec<String>> {
    use std::io::{BufRead, Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"SSH-2.0-GatehouseTest\r\n").unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut banner = String::new();
    reader.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}");
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).unwrap();
    let mut packet = vec![0u8; u32::from_be_bytes(len) as usize];
    reader.read_exact(&mut packet).unwrap();
    let payload = &packet[1..packet.len() - packet[0] as usize];
    assert_eq!(payload[0], 20, "SSH_MSG_KEXINIT");
    let mut at = 17; // message number and cookie
    let mut lists = Vec::new();
    for _ in 0..10 {
        let n = u32::from_be_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
        let names = std::str::from_utf8(&payload[at + 4..at + 4 + n]).unwrap();
        lists.push(names.split(',').map(str::to_string).collect());
        at += 4 + n;
    }
    lists
}

#[tokio::test]
async fn security_strict_key_exchange_no_compression_and_hostile_pre_auth_input() {
    use std::io::Write;
    let lab = Lab::start().await;
    let lists = server_kexinit(lab.server.ssh);
    // Terrapin (CVE-2023-48795): strict key exchange is offered.
    assert!(
        lists[0].iter().any(|k| k == "kex-strict-s-v00@openssh.com"),
        "{:?}",
        lists[0]
    );
    // No compression at all, so no decompression bomb before (or after) authentication.
    assert_eq!(lists[6], ["none"], "client to server");
    assert_eq!(lists[7], ["none"], "server to client");

    // A megabyte of junk instead of a banner: the connection is dropped.
    let mut junk = std::net::TcpStream::connect(lab.server.ssh).unwrap();
    let _ = junk.write_all(&vec![b'x'; 1 << 20]);
    assert!(
        closes(&mut junk),
        "junk before the banner must end the connection"
    );

    // A banner, then a packet that claims to be 4 GiB long: dropped, nothing allocated for it.
    let mut huge = std::net::TcpStream::connect(lab.server.ssh).unwrap();
    huge.write_all(b"SSH-2.0-GatehouseTest\r\n").unwrap();
    let _ = huge.write_all(&[0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0]);
    assert!(
        closes(&mut huge),
        "an oversized packet must end the connection"
    );

    // Everyone else still gets in.
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(ok(&out), "hi\n");
    lab.server.stop();
}

#[tokio::test]
async fn a_target_presenting_another_host_key_is_refused() {
    let lab = Lab::start().await;
    keygen(&lab.path("impostor"), "impostor");
    let impostor = std::fs::read_to_string(lab.path("impostor.pub")).unwrap();
    let (st, t) = lab
        .api(reqwest::Method::GET, "/api/v1/targets/db-01", TOKEN, None)
        .await;
    assert_eq!(st, 200, "{t}");
    let body = serde_json::json!({
        "name": "db-01", "kind": "ssh", "address": t["address"],
        "host_key": impostor.trim(), "labels": t["labels"],
    });
    let (st, v) = lab
        .api(
            reqwest::Method::PUT,
            "/api/v1/targets/db-01",
            TOKEN,
            Some(body),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach db-01"),
        "{}",
        text(&out.stderr)
    );
    let denied = lab.audit("session.denied").await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"].to_string().contains("host key does not match")),
        "{denied:?}"
    );
    lab.server.stop();
}

/// Opens `ssh -L` through the gateway for a few seconds and reads what comes through the tunnel
/// from the target's own sshd port.
async fn through_a_tunnel(lab: &Lab, to_port: u16) -> String {
    use std::io::Read;
    let local = free_port();
    let mut child = lab
        .ssh("alice", "root@db-01")
        .arg("-L")
        .arg(format!("{local}:127.0.0.1:{to_port}"))
        .arg("echo up; sleep 4")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_line(&mut child, b"up\n");
    let mut got = Vec::new();
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", local)) {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    text(&got)
}

fn wait_line(child: &mut Child, want: &[u8]) {
    use std::io::Read;
    let mut buf = vec![0u8; want.len()];
    child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(buf, want);
}

#[tokio::test]
async fn security_port_forwarding_needs_a_role_that_allows_it() {
    let lab = Lab::start().await;
    let sshd_port = {
        let (_, t) = lab
            .api(reqwest::Method::GET, "/api/v1/targets/db-01", TOKEN, None)
            .await;
        t["address"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };
    // db-root does not allow forwarding: the tunnel carries nothing, and the refusal is audited.
    let got = through_a_tunnel(&lab, sshd_port).await;
    assert_eq!(got, "", "a forward opened without permission");
    let denied = lab.audit("session.denied").await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"].to_string().contains("port forward")),
        "{denied:?}"
    );

    // Once the role allows it, the same tunnel reaches the target's port, audited.
    lab.put_db_root(&["db-01"], serde_json::json!({ "port_forwarding": true }))
        .await;
    let got = through_a_tunnel(&lab, sshd_port).await;
    assert!(got.starts_with("SSH-2.0-OpenSSH"), "{got:?}");
    assert!(!lab.audit("session.forward").await.is_empty());
    lab.server.stop();
}

#[tokio::test]
async fn a_forward_without_a_session_still_ends_with_its_access() {
    use std::io::Read;
    let lab = Lab::start().await;
    lab.put_db_root(&["db-01"], serde_json::json!({ "port_forwarding": true }))
        .await;
    let (_, t) = lab
        .api(reqwest::Method::GET, "/api/v1/targets/db-01", TOKEN, None)
        .await;
    let sshd_port: u16 = t["address"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let local = free_port();
    // `ssh -N -L`: a forward and no session channel at all.
    let mut child = lab
        .ssh("alice", "root@db-01")
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("{local}:127.0.0.1:{sshd_port}"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tunnel = loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", local)) {
            break s;
        }
        assert!(Instant::now() < deadline, "the tunnel never opened");
        std::thread::sleep(Duration::from_millis(50));
    };
    tunnel
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tunnel.read(&mut buf).unwrap();
    assert!(
        text(&buf[..n]).starts_with("SSH-2.0-OpenSSH"),
        "{:?}",
        text(&buf[..n])
    );

    // Remove alice's access: the forwarded connection is cut.
    let (_, all) = lab
        .api(reqwest::Method::GET, "/api/v1/assignments", TOKEN, None)
        .await;
    let id = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "db-root" && a["subject"].to_string().contains("alice"))
        .map(|a| a["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{all}"));
    let (st, _) = lab
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/assignments/{id}"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(st, 204);
    let t = Instant::now();
    let closed = loop {
        match tunnel.read(&mut buf) {
            Ok(0) => break true,
            // The read timeout (5 s): still open.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(_) => break true, // reset
            Ok(_) => {}
        }
    };
    println!(
        "forward: the tunnel closed {:?} after the assignment was removed",
        t.elapsed()
    );
    assert!(closed, "the forward outlived its access");
    assert!(lab.audit("session.forward").await.len() == 1);
    let _ = child.kill();
    let _ = child.wait();
    lab.server.stop();
}

#[tokio::test]
async fn security_remote_forwarding_and_agent_forwarding_are_refused() {
    let lab = Lab::start().await;
    // Remote forwarding (`ssh -R`): the gateway refuses to listen for anyone, so a client that
    // insists on it gets no session at all.
    let out = lab
        .ssh("alice", "root@db-01")
        .args(["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"])
        .arg("echo hi")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("hi"), "{}", text(&out.stdout));
    // Agent forwarding (`ssh -A` with an agent running): the target's sshd would allow it, but
    // the request never gets past the gateway, so the session has no agent socket.
    let sock = lab.path("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("-A")
        .env("SSH_AUTH_SOCK", &sock)
        .arg("echo \"agent=[$SSH_AUTH_SOCK]\"")
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(ok(&out), "agent=[]\n");
    lab.server.stop();
}
