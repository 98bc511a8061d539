//! The SSH gateway as engineers use it: Debian's OpenSSH client in front, a real sshd (trusting
//! the Gatehouse user CA) behind, on loopback ports chosen at run time.

use crate::harness::{Server, gatehouse, run, stdout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-bootstrap-token-0123456789abcdef";

/// A target: OpenSSH's sshd on a free loopback port, trusting `ca.pub`, with its own host key.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub host_key_pub: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn keygen(path: &Path, comment: &str) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

impl Sshd {
    pub fn start(dir: &Path, ca_pub: &Path) -> Sshd {
        let host_key = dir.join("target_host_key");
        keygen(&host_key, "target");
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nTrustedUserCAKeys {}\nPidFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nAuthorizedKeysFile none\nSubsystem sftp internal-sftp\n\
                 AllowTcpForwarding yes\nLogLevel VERBOSE\n",
                host_key.display(),
                ca_pub.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd (Debian package openssh-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            child,
            port,
            host_key_pub: std::fs::read_to_string(host_key.with_extension("pub"))
                .unwrap()
                .trim()
                .to_string(),
        }
    }
}

/// Gatehouse with a real target, and alice (standing root on db-01) and bob (no access yet; may
/// activate `db-temp` himself) with their own keys.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub server: Server,
    /// Kept for its lifetime: the target stops when the lab is dropped.
    _sshd: Sshd,
}

impl Lab {
    pub async fn start() -> Lab {
        Lab::start_with("").await
    }

    /// With extra configuration file text (e.g. an `[ssh]` section).
    pub async fn start_with(config: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("alice"), "alice@laptop");
        keygen(&d.join("bob"), "bob@laptop");
        let out = run(gatehouse(&d.join("data")).args(["ssh", "ca"]));
        assert!(out.status.success());
        std::fs::write(d.join("ca.pub"), stdout(&out)).unwrap();
        let sshd = Sshd::start(d, &d.join("ca.pub"));
        let key = |who: &str| {
            std::fs::read_to_string(d.join(format!("{who}.pub")))
                .unwrap()
                .trim()
                .to_string()
        };
        let policy = format!(
            r#"
[[identities]]
username = "alice"
ssh_keys = ["{alice}"]

[[identities]]
username = "bob"
ssh_keys = ["{bob}"]

[[targets]]
name = "db-01"
kind = "ssh"
address = "127.0.0.1:{port}"
host_key = "{host_key}"
labels = {{ env = "prod" }}

[[roles]]
name = "db-root"
targets = {{ names = ["db-01"] }}
logins = ["root"]

[[roles]]
name = "db-temp"
targets = {{ names = ["db-01"] }}
logins = ["root"]
max_duration = "1h"

[[assignments]]
role = "db-root"
to = "alice"
kind = "standing"

[[assignments]]
role = "db-temp"
to = "bob"
kind = "eligible"
"#,
            alice = key("alice"),
            bob = key("bob"),
            port = sshd.port,
            host_key = sshd.host_key_pub,
        );
        std::fs::write(d.join("policy.toml"), policy).unwrap();
        let out = run(gatehouse(&d.join("data"))
            .arg("apply")
            .arg(d.join("policy.toml")));
        assert!(out.status.success(), "{}", stdout(&out));
        std::fs::write(d.join("gatehouse.toml"), config).unwrap();
        let config_path = d.join("gatehouse.toml").display().to_string();
        let server = Server::start(
            &d.join("data"),
            &["--config", &config_path],
            &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)],
        )
        .await;
        Lab {
            dir,
            server,
            _sshd: sshd,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// OpenSSH options for `who`, without the port.
    pub fn opts(&self, who: &str) -> Vec<String> {
        [
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.path(who).display().to_string()])
        .collect()
    }

    /// `ssh -p PORT … USER@127.0.0.1 ARGS` as `who`.
    pub fn ssh(&self, who: &str, user: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-p")
            .arg(self.server.ssh.port().to_string())
            .args(self.opts(who))
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::null());
        c
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = reqwest::Client::new()
            .request(method, self.server.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let st = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn token(&self, who: &str) -> String {
        let (st, v) = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/identities/{who}/tokens"),
                TOKEN,
                Some(serde_json::json!({ "name": "e2e" })),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    pub async fn sessions(&self) -> Vec<serde_json::Value> {
        let (_, v) = self
            .api(reqwest::Method::GET, "/api/v1/sessions", TOKEN, None)
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    pub async fn audit(&self, action: &str) -> Vec<serde_json::Value> {
        let (_, v) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/audit?action={action}"),
                TOKEN,
                None,
            )
            .await;
        v["events"].as_array().cloned().unwrap_or_default()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

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
    let sessions = lab.sessions().await;
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

/// Runs `ssh … sleep 30` in the background and returns it with when it started.
fn long_session(lab: &Lab, who: &str) -> Child {
    lab.ssh(who, "root@db-01")
        .arg("echo started; sleep 30; echo still-here")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_started(child: &mut Child) {
    use std::io::Read;
    let mut buf = [0u8; 8];
    let out = child.stdout.as_mut().unwrap();
    let n = out.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"started\n");
}

/// Waits for the ssh client to exit; returns its output and how long that took.
fn ends_within(mut child: Child, limit: Duration) -> (Output, Duration) {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t.elapsed() < limit,
            "the session outlived its access by {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t.elapsed();
    (child.wait_with_output().unwrap(), took)
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
    let bob = lab.token("bob").await;
    let (st, r) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/requests",
            &bob,
            Some(serde_json::json!({ "role": "db-temp", "duration": "30m", "reason": "e2e" })),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    let grant = r["grant_id"].as_str().unwrap().to_string();
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
        .sessions()
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

struct AnyHost;
impl russh::client::Handler for AnyHost {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
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
    use std::io::Read;
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
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 4096];
        // Our banner may arrive first; then the connection must close.
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
    let took = t.elapsed();
    println!("stalled clients were cut after {took:?} (login timeout 2 s)");
    assert!(took < Duration::from_secs(12), "{took:?}");
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
    let s = lab.sessions().await;
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
    let bob = lab.token("bob").await;
    let (st, r) = lab
        .api(
            reqwest::Method::POST,
            "/api/v1/requests",
            &bob,
            Some(serde_json::json!({ "role": "db-temp", "duration": "30m", "reason": "e2e" })),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    let grant = r["grant_id"].as_str().unwrap().to_string();
    let mut child = long_session(&lab, "bob");
    wait_started(&mut child);
    // Revoke through instance B; the session runs on instance A.
    let resp = reqwest::Client::new()
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
    let (st, v) = lab
        .api(
            reqwest::Method::PUT,
            "/api/v1/roles/db-root",
            TOKEN,
            Some(
                serde_json::json!({ "name": "db-root", "targets": { "names": ["db-01"] },
                "logins": ["root"], "port_forwarding": true }),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let got = through_a_tunnel(&lab, sshd_port).await;
    assert!(got.starts_with("SSH-2.0-OpenSSH"), "{got:?}");
    assert!(!lab.audit("session.forward").await.is_empty());
    lab.server.stop();
}

#[tokio::test]
async fn engineers_log_in_with_gatehouse_client_certificates_only() {
    let lab = Lab::start().await;
    // A key nobody registered, certified for alice by `gatehouse ssh sign-user-key`.
    keygen(&lab.path("laptop"), "alice@new-laptop");
    let out = gatehouse(&lab.path("data"))
        .args([
            "ssh",
            "sign-user-key",
            "--identity",
            "alice",
            "--valid",
            "1h",
        ])
        .arg(lab.path("laptop.pub"))
        .output()
        .unwrap();
    assert_eq!(
        ok(&out).trim(),
        lab.path("laptop-cert.pub").display().to_string()
    );
    // Copies of the same private key under other names, so OpenSSH (which picks up NAME-cert.pub
    // beside NAME by itself) presents exactly one thing each time.
    let copy_key = |name: &str| {
        let to = lab.path(name);
        std::fs::copy(lab.path("laptop"), &to).unwrap();
        std::fs::copy(lab.path("laptop.pub"), to.with_extension("pub")).unwrap();
    };
    let out = lab
        .ssh("laptop", "root@db-01")
        .arg("whoami")
        .output()
        .unwrap();
    assert_eq!(ok(&out), "root\n");
    let s = lab.sessions().await;
    assert_eq!(s[0]["identity"], "alice", "{s:?}");
    assert!(!lab.audit("ssh.client_cert_issued").await.is_empty());

    // The same key certified by the CA targets trust (as if a session certificate leaked):
    // refused, like the bare unregistered key.
    copy_key("forged");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(lab.path("data/keys/ssh_user_ca"))
        .args([
            "-I",
            "gatehouse-user identity=alice",
            "-n",
            "alice",
            "-V",
            "-5m:+1h",
        ])
        .arg(lab.path("forged.pub"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = lab
        .ssh("forged", "root@db-01")
        .arg("whoami")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    copy_key("bare");
    let out = lab
        .ssh("bare", "root@db-01")
        .arg("whoami")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    // An unknown identity cannot be certified.
    let out = gatehouse(&lab.path("data"))
        .args(["ssh", "sign-user-key", "--identity", "mallory"])
        .arg(lab.path("laptop.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no identity mallory"));
    lab.server.stop();
}

/// Logs in with russh as alice's key, answering the TOTP prompt with `code` (None: stop at the
/// prompt). Returns whether the login succeeded and, if so, `echo hi`'s output.
async fn login_with_totp(lab: &Lab, code: Option<&str>) -> (bool, String) {
    use russh::client::KeyboardInteractiveAuthResponse as K;
    let key = russh::keys::load_secret_key(lab.path("alice"), None).unwrap();
    let config = std::sync::Arc::new(russh::client::Config::default());
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
    match r {
        russh::client::AuthResult::Failure {
            partial_success: true,
            ..
        } => {}
        other => panic!("the key alone must not be enough: {other:?}"),
    }
    let Some(code) = code else {
        return (false, String::new());
    };
    let prompt = h
        .authenticate_keyboard_interactive_start("root@db-01", None)
        .await
        .unwrap();
    let K::InfoRequest { prompts, .. } = prompt else {
        panic!("no TOTP prompt: {prompt:?}");
    };
    assert_eq!(prompts[0].prompt, "TOTP code: ");
    let done = h
        .authenticate_keyboard_interactive_respond(vec![code.to_string()])
        .await
        .unwrap();
    if !matches!(done, K::Success) {
        return (false, String::new());
    }
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "echo hi").await.unwrap();
    let mut out = Vec::new();
    while let Some(msg) = ch.wait().await {
        match msg {
            russh::ChannelMsg::Data { data } => out.extend_from_slice(&data),
            russh::ChannelMsg::ExitStatus { .. }
            | russh::ChannelMsg::Eof
            | russh::ChannelMsg::Close
                if !out.is_empty() =>
            {
                break;
            }
            _ => {}
        }
    }
    (true, text(&out))
}

#[tokio::test]
async fn roles_with_session_mfa_ask_for_a_totp_code_at_ssh_login() {
    let lab = Lab::start().await;
    let out = gatehouse(&lab.path("data"))
        .args(["mfa", "enroll-totp", "--identity", "alice"])
        .output()
        .unwrap();
    let printed = ok(&out);
    assert!(printed.starts_with("otpauth://totp/"), "{printed}");
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    let (st, v) = lab
        .api(
            reqwest::Method::PUT,
            "/api/v1/roles/db-root",
            TOKEN,
            Some(
                serde_json::json!({ "name": "db-root", "targets": { "names": ["db-01"] },
                "logins": ["root"], "session_mfa": true }),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    // OpenSSH in batch mode cannot answer the prompt: the key alone does not get in.
    let out = lab
        .ssh("alice", "root@db-01")
        .arg("echo hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    // A wrong code is refused; the right one gets in, once.
    assert!(!login_with_totp(&lab, Some("000000")).await.0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let code = gatehouse_broker::mfa::code_at(&secret, now_ms).unwrap();
    let (ok_login, output) = login_with_totp(&lab, Some(&code)).await;
    assert!(ok_login);
    assert_eq!(output, "hi\n");
    assert!(
        !login_with_totp(&lab, Some(&code)).await.0,
        "a code is accepted once"
    );
    // Stopping at the prompt opens nothing.
    login_with_totp(&lab, None).await;
    let results: Vec<String> = lab
        .audit("mfa.totp")
        .await
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        results.iter().filter(|r| *r == "success").count(),
        1,
        "{results:?}"
    );
    assert_eq!(lab.sessions().await.len(), 1);
    lab.server.stop();
}
