//! `gatehouse demo`: everything in one command for a first look — its own data directory, a
//! built-in sandbox SSH target that trusts the Gatehouse user CA, demo identities and roles, a
//! key for you, then the real server; prints the ssh line to paste.

use crate::config::Settings;
use crate::context::{self, Schema};
use anyhow::Context;
use gatehouse_broker::{Actor, Clock, SystemClock};
use gatehouse_gateway::keys;
use tokio_util::sync::CancellationToken;

/// The demo people's web passwords (the demo listens on loopback only).
const DEMO_PASSWORDS: [(&str, &str); 2] = [
    ("alice", "alice-demo-password"),
    ("bob", "bob-demo-password"),
];

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let dir = settings.data_dir.join("demo");
    let keys_dir = dir.join("keys");
    let settings = Settings {
        data_dir: dir.clone(),
        database_url: None,
        signing_key: keys_dir.join("signing-key.pem"),
        ssh_host_key: keys_dir.join("ssh_host_ed25519_key"),
        ssh_user_ca_key: keys_dir.join("ssh_user_ca"),
        ssh_client_ca_key: keys_dir.join("ssh_client_ca"),
        sealing_key: keys_dir.join("secrets.key"),
        apps_tls_cert: keys_dir.join("apps-cert.pem"),
        apps_tls_key: keys_dir.join("apps-key.pem"),
        app_assertion_key: keys_dir.join("app-assertion-key.pem"),
        recordings_dir: dir.join("recordings"),
        ..settings
    };
    context::prepare_data_dir(&dir)?;
    let store = context::open_store(&settings, Schema::Migrate).await?;

    // The sandbox target, trusting the user CA the gateway signs session certificates with.
    let (ca, _) = keys::load_or_create(&settings.ssh_user_ca_key, "gatehouse user CA")?;
    let (sandbox_key, _) =
        keys::load_or_create(&keys_dir.join("sandbox_host_key"), "gatehouse sandbox")?;
    let sandbox_line = keys::public_line(&sandbox_key)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the sandbox target")?;
    let sandbox_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(gatehouse_gateway::sandbox::serve(
        listener,
        sandbox_key,
        ca.public_key().clone(),
        stop.clone(),
    ));

    // The demo web app, behind the app gateway as `hello`.
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the demo app")?;
    let app_addr = app_listener.local_addr()?;
    tokio::spawn(gatehouse_gateway::sandbox_app::serve(
        app_listener,
        stop.clone(),
    ));

    // Your key as the demo identity `alice` (0600, OpenSSH format).
    let key_path = dir.join("demo_ed25519");
    let (user_key, _) = keys::load_or_create(&key_path, "alice@gatehouse-demo")?;
    let user_line = keys::public_line(&user_key)?;
    let policy = format!(
        r#"
[[identities]]
username = "alice"
display_name = "Alice (demo engineer)"
attributes = {{ department = "engineering", employment_type = "employee" }}
ssh_keys = ["{user_line}"]

[[identities]]
username = "bob"
display_name = "Bob (demo approver)"
attributes = {{ department = "security", employment_type = "employee" }}

[[groups]]
name = "security"
members = ["bob"]

[[targets]]
name = "sandbox"
kind = "ssh"
address = "{sandbox_addr}"
host_key = "{sandbox_line}"
labels = {{ env = "demo" }}

[[targets]]
name = "hello"
kind = "http"
address = "http://{app_addr}"
description = "The demo web app: shows who the app gateway says you are"

[[roles]]
name = "hello-users"
description = "The demo web app, for alice"
targets = {{ names = ["hello"] }}
protocols = ["http"]

[[assignments]]
role = "hello-users"
to = "alice"
kind = "standing"

[[roles]]
name = "sandbox-user"
description = "Standing access to the sandbox as `demo`"
targets = {{ names = ["sandbox"] }}
logins = ["demo"]

[[roles]]
name = "sandbox-root"
description = "Root on the sandbox: request it, bob approves"
targets = {{ names = ["sandbox"] }}
logins = ["root"]
max_duration = "1h"
requestable_by = ["alice"]
approvals = [{{ from = "group:security", count = 1 }}]
require_reason = true

[[assignments]]
role = "sandbox-user"
to = "alice"
kind = "standing"

[[assignments]]
role = "sandbox-root"
to = "alice"
kind = "eligible"
"#
    );
    let doc = gatehouse_broker::provisioning::apply::doc::parse("demo policy", &policy)?;
    gatehouse_broker::provisioning::apply::apply(
        &store,
        &Actor::Cli,
        SystemClock.now_ms(),
        &doc,
        false,
    )
    .await
    .context("setting up the demo identities")?;
    // Web sign-in for the two demo people (loopback only, like the rest of the demo); bob also
    // reviews sessions.
    let mut tx = store.begin().await?;
    for (who, password) in DEMO_PASSWORDS {
        let phc = tokio::task::spawn_blocking(move || {
            gatehouse_broker::identity::passwords::hash(password)
        })
        .await??;
        gatehouse_broker::identity::passwords::set_hash(
            &mut tx,
            &Actor::Cli,
            SystemClock.now_ms(),
            who,
            &phc,
            None,
        )
        .await?;
    }
    gatehouse_broker::access::privileges::grant(
        &mut tx,
        &Actor::Cli,
        SystemClock.now_ms(),
        "bob",
        gatehouse_broker::access::privileges::Privilege::Reviewer,
    )
    .await?;
    tx.commit().await?;
    store.close().await;

    let recordings = settings.recordings_dir.clone();
    let banner = move |bound: crate::serve::Bound| {
        let (host, port) = (bound.ssh.ip(), bound.ssh.port());
        let app = match &bound.apps {
            Some((domain, 443)) => format!("\nDemo web app (alice): https://hello.{domain}/\n"),
            Some((domain, p)) => format!("\nDemo web app (alice): https://hello.{domain}:{p}/\n"),
            None => String::new(),
        };
        eprintln!(
            "\nGatehouse demo (data in {dir}). Paste this to open a recorded session on the sandbox:\n\n    ssh -i {key} -p {port} demo@sandbox@{host}\n\nOr `ssh -i {key} -p {port} {host}` to see what alice may reach. Recordings land in {rec}; check one with\n`gatehouse --data-dir {dir} recordings verify FILE.cast`.\n\nWeb UI: {web} — sign in as alice / {alice_pw} (request sandbox-root) or bob / {bob_pw}\n(approves, replays and watches sessions; as a reviewer bob first sets up an authenticator app).\nThe certificates are self-signed: accept them in the browser.\n{app}Stop with Ctrl-C.\n",
            dir = dir.display(),
            key = key_path.display(),
            rec = recordings.display(),
            web = bound.web_url,
            alice_pw = DEMO_PASSWORDS[0].1,
            bob_pw = DEMO_PASSWORDS[1].1,
        );
    };
    let served = crate::serve::run_with(settings, banner).await;
    stop.cancel();
    served
}
