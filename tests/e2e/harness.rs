//! Runs the binary: one-shot commands, and `serve` as a child process found through its JSON log
//! line and a polled health check (like lldap's fixture).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A `gatehouse` command with a clean environment (no GATEHOUSE_* leaking in from the shell).
pub fn gatehouse(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--data-dir").arg(data_dir);
    cmd
}

/// A test's HTTP client. reqwest is built without a TLS provider of its own (the binary hands it
/// a rustls config: src/outbound.rs), so every client here gets one too, trusting nothing but
/// `roots` (PEM files).
pub fn http_builder(roots: &[&Path]) -> reqwest::ClientBuilder {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut store = rustls::RootCertStore::empty();
    for file in roots {
        for cert in CertificateDer::pem_file_iter(file).unwrap() {
            store.add(cert.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(config)
}

/// A plain test client (see `http_builder`).
pub fn http() -> reqwest::Client {
    http_builder(&[]).build().unwrap()
}

/// Runs to completion.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `gatehouse serve`, stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    /// Where the SSH gateway listens.
    pub ssh: std::net::SocketAddr,
    /// Where the app gateway listens (HTTPS, app hosts `NAME.apps.localhost`).
    pub apps: std::net::SocketAddr,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `serve` on a free loopback port and waits until /healthz answers.
    pub async fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_command("serve", data_dir, extra, env).await
    }

    /// Starts `command` (`serve` or `demo`) on free loopback ports, the web side on plain HTTP.
    pub async fn start_command(
        command: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::start_full(command, data_dir, extra, env, false).await
    }

    /// Starts `serve` with the web side on HTTPS (its default: a generated certificate), reached
    /// as `https://localhost:PORT` as a browser would.
    pub async fn start_https(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_full("serve", data_dir, extra, env, true).await
    }

    async fn start_full(
        command: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        https: bool,
    ) -> Server {
        let mut cmd = gatehouse(data_dir);
        cmd.args(["--log-format", "json"]).args(extra).args([
            command,
            "--web-listen",
            "127.0.0.1:0",
            "--ssh-listen",
            "127.0.0.1:0",
            "--app-listen",
            "127.0.0.1:0",
            "--web-tls",
            if https { "auto" } else { "off" },
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let msg = v["fields"]["message"].as_str().unwrap_or_default();
                    if msg == "web listener bound"
                        || msg == "ssh listener bound"
                        || msg == "app listener bound"
                    {
                        let addr = v["fields"]["addr"].as_str().unwrap_or_default().to_string();
                        let _ = tx.send((msg.to_string(), addr));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (mut web, mut ssh, mut apps) = (None, None, None);
        while web.is_none() || ssh.is_none() || apps.is_none() {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((m, a)) if m.starts_with("web") => web = Some(a),
                Ok((m, a)) if m.starts_with("app") => apps = Some(a),
                Ok((_, a)) => ssh = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!("serve did not start:\n{}", lines.lock().unwrap().join("\n"));
                }
            }
        }
        let addr = web.unwrap_or_default();
        let base = if https {
            let port = addr.rsplit(':').next().unwrap_or_default();
            format!("https://localhost:{port}")
        } else {
            format!("http://{addr}")
        };
        let server = Server {
            child,
            base,
            ssh: ssh.unwrap_or_default().parse().unwrap(),
            apps: apps.unwrap_or_default().parse().unwrap(),
            stderr: lines,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        if https {
            // The listener accepting is enough (the browser does the rest).
            while std::net::TcpStream::connect(&addr).is_err() {
                assert!(Instant::now() < deadline, "the web listener never accepted");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return server;
        }
        loop {
            if let Ok(r) = http().get(server.url("/healthz")).send().await
                && r.status() == 200
            {
                return server;
            }
            assert!(Instant::now() < deadline, "healthz never answered 200");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Status of `GET /api/v1/whoami` with `token`.
    pub async fn whoami_status(&self, token: &str) -> u16 {
        let resp = http()
            .get(self.url("/api/v1/whoami"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    /// Status of `POST /setup` with a setup code.
    pub async fn redeem_setup_status(&self, code: &str) -> u16 {
        let resp = http()
            .post(self.url("/setup"))
            .form(&[("code", code)])
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    /// Everything written to standard error so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}
