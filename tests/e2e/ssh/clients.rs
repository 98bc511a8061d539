//! SSH clients other than OpenSSH through the gateway: a strict one (russh, counting the EOF and
//! CLOSE messages each channel gets: RFC 4254 §5.3 allows one of each per direction).

use super::*;
use russh::client::{self, Msg};
use russh::{Channel, ChannelId, ChannelMsg};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// EOF and CLOSE messages received, per channel.
type Seen = Arc<Mutex<HashMap<ChannelId, (u32, u32)>>>;

/// A client handler that counts what russh reports of each channel's end.
struct Counting(Seen);

impl client::Handler for Counting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.0.lock().unwrap().entry(channel).or_default().0 += 1;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.0.lock().unwrap().entry(channel).or_default().1 += 1;
        Ok(())
    }
}

/// Reads a channel to its end: standard output and the exit status.
async fn drain(ch: &mut Channel<Msg>) -> (String, Option<u32>) {
    let (mut out, mut status) = (Vec::new(), None);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            _ => {}
        }
    }
    (text(&out), status)
}

/// Runs `command` on a new channel of `h`; returns the channel's id, output and exit status.
async fn exec(h: &client::Handle<Counting>, command: &str) -> (ChannelId, String, Option<u32>) {
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, command).await.unwrap();
    let (out, status) = drain(&mut ch).await;
    (ch.id(), out, status)
}

#[tokio::test]
async fn each_channel_gets_one_eof_and_one_close() {
    let lab = Lab::start().await;
    let seen = Seen::default();
    let key = russh::keys::load_secret_key(lab.path("alice"), None).unwrap();
    let config = Arc::new(client::Config::default());
    let mut h = client::connect(config, lab.server.ssh, Counting(seen.clone()))
        .await
        .unwrap();
    let auth = h
        .authenticate_publickey(
            "root@db-01",
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None),
        )
        .await
        .unwrap();
    assert!(auth.success());
    let mut counted = Vec::new();

    // Two commands, one after the other, on the one connection.
    let (id, out, status) = exec(&h, "echo one").await;
    assert_eq!((out.as_str(), status), ("one\n", Some(0)));
    counted.push(("exec", id));
    let (id, out, status) = exec(&h, "echo two; exit 3").await;
    assert_eq!((out.as_str(), status), ("two\n", Some(3)));
    counted.push(("second exec", id));

    // The client half-closes first: its EOF reaches the target, which answers and ends.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "cat").await.unwrap();
    ch.data_bytes(&b"half-closed\n"[..]).await.unwrap();
    ch.eof().await.unwrap();
    let (out, status) = drain(&mut ch).await;
    assert_eq!((out.as_str(), status), ("half-closed\n", Some(0)));
    counted.push(("exec after the client's EOF", ch.id()));

    // A shell under a PTY.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .unwrap();
    ch.request_shell(true).await.unwrap();
    ch.data_bytes(&b"echo marker-$((6*7)); exit 5\n"[..])
        .await
        .unwrap();
    let (out, status) = drain(&mut ch).await;
    assert!(out.contains("marker-42"), "{out}");
    assert_eq!(status, Some(5));
    counted.push(("shell", ch.id()));

    // The sftp subsystem: SSH_FXP_INIT (version 3) is answered with SSH_FXP_VERSION; the
    // client's EOF ends the server.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.request_subsystem(true, "sftp").await.unwrap();
    ch.data_bytes(&[0u8, 0, 0, 5, 1, 0, 0, 0, 3][..])
        .await
        .unwrap();
    let mut reply = Vec::new();
    while reply.len() < 5 {
        match ch.wait().await {
            Some(ChannelMsg::Data { data }) => reply.extend_from_slice(&data),
            Some(_) => {}
            None => panic!("the sftp channel closed before its version: {reply:?}"),
        }
    }
    assert_eq!(reply[4], 2, "SSH_FXP_VERSION: {reply:?}");
    ch.eof().await.unwrap();
    drain(&mut ch).await;
    counted.push(("sftp", ch.id()));

    // The client closes first (russh forgets a channel it closed: its CLOSE reply is not
    // counted): the session ends, and the connection goes on.
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "sleep 30").await.unwrap();
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(_) => {}
            None => panic!("the channel closed before the command started"),
        }
    }
    ch.close().await.unwrap();
    drop(ch);
    let (_, out, status) = exec(&h, "echo after").await;
    assert_eq!((out.as_str(), status), ("after\n", Some(0)));

    // A round trip: whatever the gateway sent before its answer has reached the handler.
    h.send_ping().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    for (what, id) in counted {
        assert_eq!(
            seen.get(&id).copied(),
            Some((1, 1)),
            "{what}: (EOF, CLOSE) received (all channels: {seen:?})"
        );
    }
    drop(h);
    let ended = lab.ended_sessions().await;
    assert!(
        ended.iter().any(|s| s["end_reason"] == "client_closed"),
        "{ended:?}"
    );
    // The target (OpenSSH, which logs a CLOSE received twice as a protocol error) saw none.
    let target_log = std::fs::read_to_string(lab.path("sshd.log")).unwrap();
    assert!(!target_log.contains("protocol error"), "{target_log}");
    lab.server.stop();
}
