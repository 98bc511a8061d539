//! The demo's built-in SSH target: a small russh server that trusts only Gatehouse's user CA
//! (the way a real sshd with `TrustedUserCAKeys` would) and offers a toy shell, so a newcomer
//! can reach a recorded session without a real host. Not a real shell: a few harmless commands.

use russh::keys::{Certificate, PrivateKey};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MOTD: &str = "Welcome to the Gatehouse sandbox. You reached it through the gateway with a \
certificate minted for this session only; everything you type and see is recorded.\r\n\
Type `help` for the commands.\r\n";

/// Serves the sandbox on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    host_key: PrivateKey,
    user_ca: russh::keys::PublicKey,
    stop: CancellationToken,
) {
    let config = Arc::new(server::Config {
        keys: vec![host_key],
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(200),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: None,
        preferred: crate::ssh::preferred(),
        ..Default::default()
    });
    loop {
        let (tcp, _) = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let handler = Sandbox {
            ca: user_ca.clone(),
            user: String::new(),
            lines: HashMap::new(),
        };
        let config = config.clone();
        tokio::spawn(async move {
            if let Ok(running) = server::run_stream(config, tcp, handler).await {
                let _ = running.await;
            }
        });
    }
}

struct Sandbox {
    ca: russh::keys::PublicKey,
    user: String,
    /// The line being typed, per channel.
    lines: HashMap<ChannelId, String>,
}

impl Sandbox {
    fn run(&self, command: &str) -> (String, bool) {
        let mut words = command.split_whitespace();
        let out = match words.next().unwrap_or("") {
            "" => String::new(),
            "help" => {
                "commands: help, whoami, hostname, date, echo TEXT, ls, cat motd, uptime, exit\r\n"
                    .into()
            }
            "whoami" => format!("{}\r\n", self.user),
            "hostname" => "sandbox\r\n".into(),
            "date" => format!("{}\r\n", chrono::Utc::now().to_rfc2822()),
            "echo" => format!("{}\r\n", words.collect::<Vec<_>>().join(" ")),
            "ls" => "motd\r\n".into(),
            "cat" => match words.next() {
                Some("motd") => MOTD.into(),
                Some(f) => format!("cat: {f}: No such file or directory\r\n"),
                None => String::new(),
            },
            "uptime" => " up a while, 1 user, load average: 0.00, 0.00, 0.00\r\n".into(),
            "exit" | "logout" => return (String::new(), true),
            other => format!("{other}: command not found (try `help`)\r\n"),
        };
        (out, false)
    }
}

fn prompt(user: &str) -> String {
    format!("{user}@sandbox:~$ ")
}

impl server::Handler for Sandbox {
    type Error = russh::Error;

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        // russh checked the signature and the validity window; the rest is ours, as sshd does.
        let trusted = cert.signature_key() == self.ca.key_data()
            && cert.cert_type().is_user()
            && cert.valid_principals().iter().any(|p| p == user)
            && cert.critical_options().is_empty();
        if trusted {
            self.user = user.to_string();
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _w: u32,
        _h: u32,
        _pw: u32,
        _ph: u32,
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
        session.channel_success(channel)?;
        self.lines.insert(channel, String::new());
        session.data(
            channel,
            format!("{MOTD}{}", prompt(&self.user)).into_bytes(),
        )?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let (out, _) = self.run(&String::from_utf8_lossy(data));
        session.data(channel, out.replace("\r\n", "\n").into_bytes())?;
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(mut line) = self.lines.remove(&channel) else {
            return Ok(());
        };
        let mut echo = String::new();
        for ch in String::from_utf8_lossy(data).chars() {
            match ch {
                '\r' | '\n' => {
                    echo.push_str("\r\n");
                    let (out, done) = self.run(&line);
                    line.clear();
                    echo.push_str(&out);
                    if done {
                        session.data(channel, format!("{echo}logout\r\n").into_bytes())?;
                        session.exit_status_request(channel, 0)?;
                        session.eof(channel)?;
                        return session.close(channel);
                    }
                    echo.push_str(&prompt(&self.user));
                }
                '\u{7f}' | '\u{8}' if line.pop().is_some() => {
                    echo.push_str("\u{8} \u{8}");
                }
                '\u{3}' => {
                    line.clear();
                    echo.push_str("^C\r\n");
                    echo.push_str(&prompt(&self.user));
                }
                '\u{4}' if line.is_empty() => {
                    session.data(channel, "logout\r\n".to_string().into_bytes())?;
                    session.exit_status_request(channel, 0)?;
                    session.eof(channel)?;
                    return session.close(channel);
                }
                c if !c.is_control() && line.len() < 1024 => {
                    line.push(c);
                    echo.push(c);
                }
                _ => {}
            }
        }
        self.lines.insert(channel, line);
        session.data(channel, echo.into_bytes())
    }
}
