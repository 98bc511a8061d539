//! Outbound HTTPS: webhooks and SCIM push to receivers whose certificate comes from a private CA
//! (made here with rcgen, served by socat's OpenSSL listener in front of a plain receiver), with
//! and without `[tls] extra_ca_file`; and `apply --server` against `serve`'s default HTTPS
//! listener with `--ca-file`, with the pin `serve` logs, with a wrong pin and with neither.

use crate::access::{EXAMPLE, next_delivery, receiver};
use crate::harness::{Server, gatehouse, run, stderr, stdout};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-bootstrap-token-0123456789abcdef";
const UNKNOWN_ISSUER: &str = "invalid peer certificate: UnknownIssuer";

/// A private CA and a server certificate it issued for localhost and 127.0.0.1, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Gatehouse e2e private CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = leaf.signed_by(&key, &ca).unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("receiver-cert.pem"),
            key: dir.join("receiver-key.pem"),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, leaf.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }
}

/// A real TLS terminator (socat's OpenSSL listener, Debian's `socat`) on a free loopback port,
/// relaying to a plain TCP port; stopped with its forked children when dropped.
struct Terminator {
    child: Child,
    port: u16,
}

impl Terminator {
    async fn start(pki: &Pki, backend: u16) -> Terminator {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
                pki.cert.display(),
                pki.key.display()
            ))
            .arg(format!("TCP:127.0.0.1:{backend}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("socat (Debian package socat: scripts/packages.sh test)");
        let t = Terminator { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "socat never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        t
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// alice takes the break-glass role of the example policy: an alert for the webhook.
async fn break_glass(server: &Server, data: &Path) {
    let out = run(gatehouse(data)
        .args(["apply", EXAMPLE, "--server", &server.base])
        .env("GATEHOUSE_TOKEN", TOKEN));
    assert!(out.status.success(), "{}", stderr(&out));
    let http = crate::harness::http();
    let alice: serde_json::Value = http
        .post(server.url("/api/v1/identities/alice/tokens"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "name": "e2e" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = http
        .post(server.url("/api/v1/requests"))
        .bearer_auth(alice["token"].as_str().unwrap())
        .json(&serde_json::json!({ "role": "emergency", "duration": "30m", "reason": "INC-7 tls" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn https_webhook_is_delivered_with_the_private_ca_and_refused_naming_the_certificate_without()
{
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (plain, mut got) = receiver(false).await;
    let tls = Terminator::start(&pki, plain).await;
    let hook = format!("https://localhost:{}/hook", tls.port);

    // Without the CA: not delivered, and the log names the certificate problem.
    let config = dir.path().join("without-ca.toml");
    std::fs::write(
        &config,
        format!("[notifications]\nwebhook_url = \"{hook}\"\n"),
    )
    .unwrap();
    let data = dir.path().join("without");
    let server = Server::start(
        &data,
        &["--config", config.to_str().unwrap()],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)],
    )
    .await;
    break_glass(&server, &data).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let failure = loop {
        let found = server.stderr.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["fields"]["message"] == "webhook delivery failed").then(|| {
                v["fields"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
        });
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "no failed delivery logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(failure.contains(UNKNOWN_ISSUER), "{failure}");
    assert!(!failure.contains("/hook"), "the URL stays out: {failure}");
    server.stop();

    // With `[tls] extra_ca_file` (relative to the file): delivered.
    let config = dir.path().join("with-ca.toml");
    std::fs::write(
        &config,
        format!("[notifications]\nwebhook_url = \"{hook}\"\n[tls]\nextra_ca_file = \"ca.pem\"\n"),
    )
    .unwrap();
    let data = dir.path().join("with");
    let server = Server::start(
        &data,
        &["--config", config.to_str().unwrap()],
        &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)],
    )
    .await;
    break_glass(&server, &data).await;
    let (status, body) = next_delivery(&mut got).await;
    assert_eq!(status, 204);
    let msg: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(msg["event"], "break_glass", "{msg}");
    assert!(msg["text"].as_str().unwrap().contains("INC-7 tls"), "{msg}");
    server.stop();
}

#[tokio::test]
async fn push_provisions_an_https_scim_app_through_the_private_ca() {
    let tools = crate::scim::python_tools();
    let app = crate::push::App::start(&tools).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let plain: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let tls = Terminator::start(&pki, plain).await;
    let data = dir.path().join("data");
    let token_file = dir.path().join("jira.token");
    std::fs::write(&token_file, &app.token).unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[[push]]\nname = \"jira\"\nurl = \"https://localhost:{}\"\ntoken_file = \"jira.token\"\nroles = [\"jira-users\"]\n",
            tls.port
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("policy.toml"), crate::push::POLICY).unwrap();
    let out = run(gatehouse(&data)
        .arg("apply")
        .arg(dir.path().join("policy.toml")));
    assert!(out.status.success(), "{}", stderr(&out));
    let push = |ca: Option<&Path>| {
        let mut c = gatehouse(&data);
        c.arg("--config").arg(&config).args(["push", "run"]);
        if let Some(ca) = ca {
            c.env("GATEHOUSE_TLS_EXTRA_CA_FILE", ca);
        }
        run(&mut c)
    };

    // Without the CA: refused at once (no retries), the certificate problem named.
    let out = push(None);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains(UNKNOWN_ISSUER), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(app.user("ann@example.com").await.is_none());

    // With it (GATEHOUSE_TLS_EXTRA_CA_FILE, the twin of `[tls] extra_ca_file`): provisioned.
    let out = push(Some(&pki.ca));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("did create ann@example.com (jira-users)"),
        "{}",
        stdout(&out)
    );
    let ann = app.user("ann@example.com").await.expect("ann provisioned");
    assert_eq!(ann["active"], true);
}

#[tokio::test]
async fn apply_server_reaches_the_default_https_listener_with_ca_file_or_pin_and_names_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start_https(dir.path(), &[], &[("GATEHOUSE_BOOTSTRAP_TOKEN", TOKEN)]).await;
    assert!(
        server.base.starts_with("https://localhost:"),
        "{}",
        server.base
    );
    let cert = dir.path().join("keys/web-cert.pem");
    // What serve logged at start: the certificate's SHA-256 and the flag that pins it.
    let (sha256, pin_flag) = server
        .stderr
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let f = &v["fields"];
            Some((
                f["sha256"].as_str()?.to_string(),
                f["pin"].as_str()?.to_string(),
            ))
        })
        .expect("serve logs its web certificate's SHA-256");
    assert_eq!(pin_flag, format!("--pin-sha256 {sha256}"));
    let apply = |extra: &[&str]| {
        run(gatehouse(dir.path())
            .args(["apply", EXAMPLE, "--server", &server.base])
            .args(extra)
            .env("GATEHOUSE_TOKEN", TOKEN))
    };

    // Neither --ca-file nor a pin: refused, the certificate problem named, a hint, no panic.
    let out = apply(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(UNKNOWN_ISSUER), "{err}");
    assert!(
        err.contains("--ca-file") && err.contains("--pin-sha256"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // The generated certificate as --ca-file.
    let out = apply(&["--dry-run", "--ca-file", cert.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("+ create role prod-db"),
        "{}",
        stdout(&out)
    );

    // The pin serve printed (and in the colon spelling `openssl x509 -fingerprint` prints).
    let mut args: Vec<&str> = pin_flag.split(' ').collect();
    let out = apply(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("change(s) applied"),
        "{}",
        stdout(&out)
    );
    let colons = hex_pairs(&sha256.to_uppercase()).join(":");
    args[1] = &colons;
    let out = apply(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));

    // A wrong pin: refused, both fingerprints named.
    let wrong = format!(
        "{}{}",
        if sha256.starts_with('0') { "1" } else { "0" },
        &sha256[1..]
    );
    let out = apply(&["--pin-sha256", &wrong]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "(SHA-256 {sha256}) does not match the pinned SHA-256 {wrong}"
        )),
        "{err}"
    );
    // Not a SHA-256 at all.
    let out = apply(&["--pin-sha256", "abc"]);
    assert!(stderr(&out).contains("64 hex digits"), "{}", stderr(&out));
    server.stop();
}

fn hex_pairs(hex: &str) -> Vec<String> {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}
