//! The SSH gateway: a russh server facing engineers' OpenSSH clients. Identity comes only from a
//! verified public-key signature; the SSH user names the destination; every session channel is
//! decided by the broker, bridged to the target through a fresh session certificate, recorded,
//! and ended when its access ends.

mod bridge;
mod flow;
mod guesses;
mod handler;
mod lanes;
mod menu;
mod open;
mod readbuf;
pub mod sftp;
pub mod target;
pub mod upstream;

use crate::enforce::{EndReason, Live};
use gatehouse_broker::access::policy::CatalogCache;
use gatehouse_broker::keys::SigningKeyPair;
use gatehouse_broker::{SharedClock, Store};
use russh::keys::PrivateKey;
use russh::server;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the SSH gateway is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub recordings_dir: PathBuf,
    /// Refuse or end a session whose recording cannot be written.
    pub strict_recording: bool,
    /// Key exchange and authentication must be done within this.
    pub login_timeout: Duration,
}

/// The gateway's SSH keys.
pub struct SshKeys {
    /// What clients see (and pin).
    pub host_key: PrivateKey,
    /// Signs session certificates; targets trust it.
    pub user_ca: Arc<PrivateKey>,
    /// Its certificates identify engineers to the gateway.
    pub client_ca: russh::keys::PublicKey,
    /// Opens sealed second-factor seeds.
    pub sealing: Arc<gatehouse_broker::sealing::SealingKey>,
}

impl std::fmt::Debug for SshKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SshKeys(..)")
    }
}

/// Everything the connections of one gateway share.
pub struct Shared {
    pub store: Store,
    pub cache: CatalogCache,
    pub clock: SharedClock,
    pub signer: Arc<SigningKeyPair>,
    pub user_ca: Arc<PrivateKey>,
    /// The CA whose certificates identify engineers (separate from `user_ca`, which targets
    /// trust: an engineer's certificate must never open a target directly).
    pub client_ca: russh::keys::PublicKey,
    pub sealing: Arc<gatehouse_broker::sealing::SealingKey>,
    pub settings: Settings,
    pub live: Arc<Live>,
    /// Every session and forward task, so a stop waits for their ends and manifests.
    pub tasks: tokio_util::task::TaskTracker,
    /// TOTP codes tried at login, per identity across connections.
    totp_guesses: guesses::TotpGuesses,
    config: Arc<server::Config>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ssh::Shared({} live)", self.live.len())
    }
}

/// Algorithm preferences of both sides: russh's defaults plus AES-GCM first (hardware AES makes it
/// the fastest here, and it is what OpenSSH clients commonly pick), and no compression: russh
/// would otherwise offer plain `zlib`, which starts before authentication (a decompression bomb
/// from anyone), and on the links a gateway serves it only costs CPU.
pub fn preferred() -> russh::Preferred {
    const COMPRESSION: &[russh::compression::Name] = &[russh::compression::NONE];
    const CIPHERS: &[russh::cipher::Name] = &[
        russh::cipher::AES_128_GCM,
        russh::cipher::AES_256_GCM,
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_CTR,
        russh::cipher::AES_128_CTR,
    ];
    russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(CIPHERS),
        compression: std::borrow::Cow::Borrowed(COMPRESSION),
        ..Default::default()
    }
}

/// The SSH window both sides grant (as OpenSSH does). russh credits it back when a packet is
/// received, not when it was passed on: see `flow` for what that means for the bridge.
pub const WINDOW: u32 = 2 * 1024 * 1024;

/// Most authentication attempts per connection (each rejected key counts).
pub const MAX_AUTH_ATTEMPTS: usize = 6;

impl Shared {
    pub fn new(
        store: Store,
        cache: CatalogCache,
        clock: SharedClock,
        signer: Arc<SigningKeyPair>,
        keys: SshKeys,
        settings: Settings,
    ) -> Arc<Self> {
        let SshKeys {
            host_key,
            user_ca,
            client_ca,
            sealing,
        } = keys;
        let config = server::Config {
            server_id: russh::SshId::Standard("SSH-2.0-Gatehouse".into()),
            // Keyboard-interactive only ever follows a verified key (a TOTP prompt for roles
            // that need a second factor); on its own it is refused.
            methods: russh::MethodSet::from(
                &[
                    russh::MethodKind::PublicKey,
                    russh::MethodKind::KeyboardInteractive,
                ][..],
            ),
            keys: vec![host_key],
            // OpenSSH's first `none` probe must not cost a second; real rejections do.
            auth_rejection_time: Duration::from_millis(500),
            auth_rejection_time_initial: Some(Duration::ZERO),
            max_auth_attempts: MAX_AUTH_ATTEMPTS,
            window_size: WINDOW,
            maximum_packet_size: 65_535,
            nodelay: true,
            // Idle shells stay: keepalives find dead peers instead.
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 4,
            preferred: preferred(),
            ..Default::default()
        };
        Arc::new(Shared {
            store,
            cache,
            clock,
            signer,
            user_ca,
            client_ca,
            sealing,
            settings,
            live: Arc::new(Live::default()),
            tasks: tokio_util::task::TaskTracker::new(),
            totp_guesses: guesses::TotpGuesses::default(),
            config: Arc::new(config),
        })
    }
}

/// Accepts connections until `stop`, each in its own task with its login deadline; then ends the
/// live sessions (each writes its end and its recording's manifest) and waits a moment for them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    tokio::spawn(crate::enforce::run(
        shared.store.clone(),
        shared.cache.clone(),
        shared.clock.clone(),
        shared.live.clone(),
        stop.clone(),
    ));
    let tasks = tokio_util::task::TaskTracker::new();
    let lanes = lanes::Lanes::start(lanes::count())?;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: keep serving the others.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let local = tcp.local_addr().ok();
        let shared = shared.clone();
        // The socket moves to its lane's own IO driver, so its readiness wakes that thread.
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a connection to its lane");
                continue;
            }
        };
        tasks.spawn_on(
            async move {
                match tokio::net::TcpStream::from_std(tcp) {
                    Ok(tcp) => handler::connection(shared, tcp, peer, local).await,
                    Err(e) => tracing::warn!(error = %e, "cannot take a connection on its lane"),
                }
            },
            lanes.pick(),
        );
    }
    shared.live.end_all(EndReason::Shutdown);
    tasks.close();
    shared.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        tasks.wait().await;
        shared.tasks.wait().await;
    })
    .await;
    drop(lanes);
    Ok(())
}
