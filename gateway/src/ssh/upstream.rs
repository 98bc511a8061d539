//! Gatehouse as an SSH client towards a target: connect, check the target's host key (pinned, or
//! learned on first use and audited), and authenticate with a certificate minted for this session
//! only by Gatehouse's user CA, for a fresh key that never leaves the process.

use crate::error::{Error, Result};
use crate::keys::{self, CertRequest};
use russh::client;
use russh::keys::{PrivateKey, PublicKey, PublicKeyOrCertificate};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long connecting to a target (TCP, key exchange, authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The client side's callbacks: the host key check, and refusing anything the target opens.
pub struct Upstream {
    /// The pinned key; None: trust on first use.
    expected: Option<PublicKey>,
    /// The key the target presented.
    seen: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Upstream {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(key.clone());
        }
        Ok(match &self.expected {
            Some(pinned) => pinned.key_data() == key.key_data(),
            None => true,
        })
    }

    // A target may not open any channel towards the gateway (sessions, forwarded ports, agent,
    // X11, sockets): each is refused on its own; the connection stays.
    async fn server_channel_open_session(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        refuse(reply).await
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        _connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        refuse(reply).await
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        refuse(reply).await
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        refuse(reply).await
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        refuse(reply).await
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        refuse(reply).await
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        refuse(reply).await
    }
}

async fn refuse(reply: client::ChannelOpenHandle) -> std::result::Result<(), russh::Error> {
    reply
        .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
        .await;
    Ok(())
}

/// Where and how to reach a target.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub name: String,
    pub address: String,
    /// `ssh-ed25519 AAAA…` when pinned.
    pub host_key: Option<String>,
}

/// A live upstream connection, and the host key seen when the target's key was not pinned yet.
pub struct Connected {
    pub handle: client::Handle<Upstream>,
    pub learned_host_key: Option<String>,
}

fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        window_size: super::WINDOW,
        maximum_packet_size: 65_535,
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        preferred: super::preferred(),
        ..Default::default()
    })
}

/// How Gatehouse logs in to a target.
pub enum Credential<'a> {
    /// A certificate minted for this session (the default): the target trusts the user CA.
    Certificate {
        ca: &'a PrivateKey,
        request: CertRequest<'a>,
    },
    /// A private key vaulted for this target and login.
    Vaulted {
        login: &'a str,
        key: Box<PrivateKey>,
    },
}

/// Connects to `target` and logs in with `credential`.
pub async fn connect(target: &TargetInfo, credential: Credential<'_>) -> Result<Connected> {
    let fail = |message: String| Error::Upstream {
        target: target.name.clone(),
        message,
    };
    let expected = match &target.host_key {
        Some(line) => Some(
            PublicKey::from_openssh(line)
                .map_err(|e| fail(format!("the pinned host key is not readable: {e}")))?,
        ),
        None => None,
    };
    let seen = Arc::new(Mutex::new(None));
    let handler = Upstream {
        expected: expected.clone(),
        seen: seen.clone(),
    };
    let work = async {
        let tcp = tokio::net::TcpStream::connect(target.address.as_str())
            .await
            .map_err(|e| fail(format!("cannot connect to {}: {e}", target.address)))?;
        let _ = tcp.set_nodelay(true);
        let stream = super::readbuf::FlowBuf::new(tcp).quick_acks();
        let mut handle = client::connect_stream(client_config(), stream, handler)
            .await
            .map_err(|e| {
                let mismatch = expected.is_some()
                    && seen.lock().ok().and_then(|s| s.clone()).is_some_and(|s| {
                        expected
                            .as_ref()
                            .is_some_and(|p| p.key_data() != s.key_data())
                    });
                if mismatch {
                    fail("the host key does not match the pinned key".into())
                } else {
                    fail(format!("cannot connect to {}: {e}", target.address))
                }
            })?;
        let (login, auth) = match credential {
            Credential::Certificate { ca, request } => {
                let key = Arc::new(keys::new_ed25519("gatehouse session")?);
                let certificate = keys::mint_user_cert(ca, key.public_key(), &request)?;
                let auth = handle
                    .authenticate_openssh_cert(request.login, key, certificate)
                    .await;
                (request.login, auth)
            }
            Credential::Vaulted { login, key } => {
                let auth = handle
                    .authenticate_publickey(
                        login,
                        russh::keys::PrivateKeyWithHashAlg::new(Arc::new(*key), None),
                    )
                    .await;
                (login, auth)
            }
        };
        let auth = auth.map_err(|e| fail(format!("authentication failed: {e}")))?;
        if !auth.success() {
            return Err(fail(format!(
                "the target refused Gatehouse's credential for {login} (does sshd trust the Gatehouse user CA, or hold the vaulted key, and may {login} log in?)"
            )));
        }
        Ok(handle)
    };
    let handle = tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| fail(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))??;
    let learned_host_key = match expected {
        Some(_) => None,
        None => seen
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(|k| k.to_openssh().ok())),
    };
    Ok(Connected {
        handle,
        learned_host_key,
    })
}
