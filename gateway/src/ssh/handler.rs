//! One client connection: the login deadline, public-key authentication (only a verified
//! signature identifies anyone), and the channel callbacks, which answer requests at once and
//! leave the work to the per-channel tasks of [`super::open`].

use super::Shared;
use super::open::{self, Conn};
use gatehouse_broker::identity::{identities, ssh_keys};
use russh::keys::PublicKey;
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Runs one connection to its end. A client that has not authenticated within the login
/// timeout is cut off, even in the middle of a key exchange.
pub(super) async fn connection(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) {
    let _ = tcp.set_nodelay(true);
    let cut = CancellationToken::new();
    let authed = Arc::new(AtomicBool::new(false));
    let stream = super::readbuf::FlowBuf::new(Guarded {
        inner: tcp,
        cut: Box::pin(cut.clone().cancelled_owned()),
    })
    .quick_acks();
    let handler = Handler {
        conn: Arc::new(Conn::new(shared.clone(), peer, local)),
        authed: authed.clone(),
        identity: None,
        pending: None,
        mfa_failures: 0,
    };
    let deadline = shared.settings.login_timeout;
    let watchdog = {
        let cut = cut.clone();
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            if !authed.load(Ordering::Acquire) {
                tracing::info!(%peer, "login timeout: closing the connection");
                cut.cancel();
            }
        })
    };
    match server::run_stream(shared.config.clone(), stream, handler).await {
        Ok(running) => {
            if let Err(e) = running.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(%peer, error = %e, "handshake failed"),
    }
    watchdog.abort();
}

/// The TCP stream, failing every read and write once `cut` fires (russh has no login deadline
/// of its own, and a disconnect request cannot interrupt a stalled key exchange).
struct Guarded {
    inner: tokio::net::TcpStream,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::os::fd::AsFd for Guarded {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "login timeout")
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

use std::future::Future;

struct Handler {
    conn: Arc<Conn>,
    authed: Arc<AtomicBool>,
    /// Set once a signature was verified (and the second factor passed, where needed).
    identity: Option<open::Who>,
    /// Verified by key or certificate (for its SSH user), waiting for the TOTP code.
    pending: Option<open::Who>,
    /// Wrong codes on this connection; never reset, whatever the client signs again.
    mfa_failures: u8,
}

/// Wrong TOTP codes allowed per connection (signing again does not reset the count).
const MFA_TRIES: u8 = 3;

impl Handler {
    /// The active identity owning `key` as an active registered key, if any.
    async fn owner(&self, key: &PublicKey) -> Option<(String, String)> {
        let fp = crate::keys::fingerprint(key);
        let mut conn = self.conn.shared.store.pool().acquire().await.ok()?;
        let id = ssh_keys::owner_of(&mut conn, &fp).await.ok()??;
        let who = identities::by_id(&mut conn, &id).await.ok()??;
        (who.status == identities::Status::Active).then_some((who.id, who.username))
    }
}

impl Handler {
    /// A key or certificate verified: logged in, or (when the destination needs a second factor
    /// and the identity has one) on to the TOTP prompt.
    async fn verified(&mut self, who: open::Who) -> Auth {
        let shared = self.conn.shared.clone();
        if open::needs_second_factor(&shared, &who, self.conn.peer).await {
            let enrolled = match shared.store.pool().acquire().await {
                Ok(mut c) => gatehouse_broker::identity::mfa::has_totp(&mut c, &who.id)
                    .await
                    .unwrap_or(false),
                Err(_) => false,
            };
            if enrolled {
                if self.mfa_failures >= MFA_TRIES {
                    self.pending = None;
                    return Auth::reject();
                }
                self.pending = Some(who);
                return Auth::Reject {
                    proceed_with_methods: Some(russh::MethodSet::from(
                        &[russh::MethodKind::KeyboardInteractive][..],
                    )),
                    partial_success: true,
                };
            }
            // Not enrolled: logged in, and the session's decision says why it is refused.
        }
        self.identity = Some(who);
        Auth::Accept
    }
}

fn totp_prompt(retry: bool) -> Auth {
    Auth::Partial {
        name: "Gatehouse".into(),
        instructions: if retry {
            "That code was not accepted.".into()
        } else {
            "This access needs a second factor.".into()
        },
        prompts: vec![("TOTP code: ".into(), false)].into(),
    }
}

impl server::Handler for Handler {
    /// The TOTP prompt, only after a verified key or certificate whose destination needs it.
    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(who) = self.pending.clone() else {
            return Ok(Auth::reject());
        };
        // The second factor completes the login the key started: same SSH user only.
        if user != who.ssh_user || self.mfa_failures >= MFA_TRIES {
            self.pending = None;
            return Ok(Auth::reject());
        }
        let Some(mut answers) = response else {
            return Ok(totp_prompt(self.mfa_failures > 0));
        };
        let code = answers
            .next()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let shared = self.conn.shared.clone();
        let now = shared.clock.now_ms();
        let checked = async {
            let mut tx = shared.store.begin().await?;
            let ok = gatehouse_broker::identity::mfa::check_totp(
                &mut tx,
                now,
                &who.id,
                &who.username,
                &code,
                "ssh",
                &shared.sealing,
            )
            .await?;
            // Failures are bounded per identity across connections (`totp_guesses`): each
            // checked one is written.
            if !ok {
                gatehouse_broker::identity::mfa::totp_failed(&mut tx, now, &who.username, "ssh", 0)
                    .await?;
            }
            tx.commit().await?;
            Ok::<bool, gatehouse_broker::Error>(ok)
        };
        // Past the identity's allowance (across connections) a code fails unchecked.
        let checked = if shared.totp_guesses.allow(&who.id) {
            checked.await
        } else {
            drop(checked);
            tracing::warn!(identity = %who.username, peer = %self.conn.peer, "too many TOTP codes tried; this one is not checked");
            Ok(false)
        };
        match checked {
            Ok(true) => {
                self.pending = None;
                self.conn.set_mfa_at(now);
                self.identity = Some(who);
                Ok(Auth::Accept)
            }
            Ok(false) => {
                self.mfa_failures = self.mfa_failures.saturating_add(1);
                if self.mfa_failures < MFA_TRIES {
                    Ok(totp_prompt(true))
                } else {
                    self.pending = None;
                    Ok(Auth::reject())
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot check a TOTP code");
                self.pending = None;
                Ok(Auth::reject())
            }
        }
    }

    type Error = russh::Error;

    /// A key offered without a signature ("would you accept this key?"). The answer is always
    /// "sign and see": it never authenticates and changes nothing (regression test
    /// `security_offered_key_without_signature_never_authenticates`). Saying yes to every key
    /// is what lets certificates through (russh shows us only a certificate's subject key
    /// here) and tells a prober nothing about which keys are registered; each key that then
    /// fails its real check costs an attempt and the rejection delay.
    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    /// A certificate whose signature russh verified (with the validity window): Gatehouse still
    /// checks the CA (its client CA, never the target-facing user CA), the type, the key id, the
    /// one principal (the username) and that no critical option is set — then the identity.
    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &russh::keys::Certificate,
    ) -> Result<Auth, Self::Error> {
        let Some(username) = crate::keys::client_cert_identity(cert, &self.conn.shared.client_ca)
        else {
            return Ok(Auth::reject());
        };
        let who = match self.conn.shared.store.pool().acquire().await {
            Ok(mut c) => identities::by_username(&mut c, &username)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        match who {
            Some(who) if who.status == identities::Status::Active => {
                tracing::info!(identity = %who.username, peer = %self.conn.peer, ssh_user = %user, key_id = %cert.key_id(), "certificate verified");
                Ok(self
                    .verified(open::Who {
                        id: who.id,
                        username: who.username,
                        ssh_user: user.to_string(),
                    })
                    .await)
            }
            _ => Ok(Auth::reject()),
        }
    }

    /// Called by russh only after the signature over the session verified with this key.
    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.owner(key.public_key).await {
            Some((id, username)) => {
                tracing::info!(identity = %username, peer = %self.conn.peer, ssh_user = %user, "key verified");
                // The signature is verified here (not at the offer): the key was used.
                let fp = crate::keys::fingerprint(key.public_key);
                let now = self.conn.shared.clock.now_ms();
                if let Ok(mut c) = self.conn.shared.store.pool().acquire().await
                    && let Err(e) = ssh_keys::used(&mut c, &fp, now).await
                {
                    tracing::warn!(error = %e, "cannot record an SSH key's use");
                }
                Ok(self
                    .verified(open::Who {
                        id,
                        username,
                        ssh_user: user.to_string(),
                    })
                    .await)
            }
            None => Ok(Auth::reject()),
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        self.authed.store(true, Ordering::Release);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(who) = self.identity.clone() else {
            return Ok(()); // dropping the reply refuses the channel
        };
        let conn = self.conn.clone();
        let handle = session.handle();
        let tasks = conn.shared.tasks.clone();
        tasks.spawn(open::session(conn, who, channel, reply, handle));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(who) = self.identity.clone() else {
            return Ok(());
        };
        let conn = self.conn.clone();
        let tasks = conn.shared.tasks.clone();
        tasks.spawn(open::forward(
            conn,
            who,
            channel,
            reply,
            open::ForwardTo {
                host: host_to_connect.to_string(),
                port: port_to_connect,
                from_address: originator_address.to_string(),
                from_port: originator_port,
            },
        ));
        Ok(())
    }

    // Requests are answered here, at once and in order (russh keeps one "wants reply" flag per
    // channel); the channel's task forwards them to the target or refuses the session.
    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }
}
