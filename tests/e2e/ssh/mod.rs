//! The SSH gateway as engineers use it: Debian's OpenSSH client in front, a real sshd (trusting
//! the Gatehouse user CA) behind, on loopback ports chosen at run time.

use crate::harness::{Server, gatehouse, run, stdout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod clients;
mod lifecycle;
mod login;
mod review;
mod reviews;
mod scim;
mod security;
mod sessions;

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
        Sshd::start_trusting(dir, Some(ca_pub), None)
    }

    /// An sshd in `dir` (its own files there) trusting the CA in `ca_pub` and/or the keys in
    /// `authorized_keys` (read as the login user: keep it world-readable).
    pub fn start_trusting(
        dir: &Path,
        ca_pub: Option<&Path>,
        authorized_keys: Option<&Path>,
    ) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        let host_key = dir.join("target_host_key");
        keygen(&host_key, "target");
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nTrustedUserCAKeys {}\nPidFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nAuthorizedKeysFile {}\nSubsystem sftp internal-sftp\n\
                 AllowTcpForwarding yes\nLogLevel VERBOSE\n",
                host_key.display(),
                ca_pub.map_or("none".to_string(), |p| p.display().to_string()),
                dir.join("sshd.pid").display(),
                authorized_keys.map_or("none".to_string(), |p| p.display().to_string()),
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
        Lab::start_full(config, "{}", "").await
    }

    /// With extra configuration, alice's attributes (a TOML inline table) and policy text
    /// appended to the lab's own.
    pub async fn start_full(config: &str, alice_attributes: &str, extra_policy: &str) -> Lab {
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
attributes = {alice_attributes}

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
{extra_policy}
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
        let mut r = crate::harness::http()
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

    /// Replaces role db-root (login root) with these targets and extra fields.
    pub async fn put_db_root(&self, targets: &[&str], extra: serde_json::Value) {
        let mut role = serde_json::json!({ "name": "db-root", "targets": { "names": targets },
            "logins": ["root"] });
        if let (Some(r), Some(e)) = (role.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        let (st, v) = self
            .api(
                reqwest::Method::PUT,
                "/api/v1/roles/db-root",
                TOKEN,
                Some(role),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }

    /// `who` activates `role` (no approval needed) for 30 minutes; returns the grant id.
    pub async fn activate(&self, who: &str, role: &str) -> String {
        let token = self.token(who).await;
        let (st, r) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/requests",
                &token,
                Some(serde_json::json!({ "role": role, "duration": "30m", "reason": "e2e" })),
            )
            .await;
        assert_eq!(st, 201, "{r}");
        r["grant_id"].as_str().unwrap().to_string()
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

    /// The sessions once every one has its end recorded (a client may exit a moment before the
    /// gateway writes the end and the manifest).
    pub async fn ended_sessions(&self) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.sessions().await;
            if s.iter().all(|x| x["ended_at_ms"].is_i64()) || Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
