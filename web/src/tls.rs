//! HTTPS for the web listener: a configured certificate, or one generated on first start
//! (self-signed, for `localhost` and the loopback addresses plus the public URL's host) and kept
//! in the data directory so browsers see the same one after a restart.

use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Installs the process-wide rustls crypto provider (ring); harmless when already installed.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Makes sure `cert` and `key` exist, generating a self-signed pair for `names` if neither does.
/// Returns whether it generated them.
pub fn ensure_certificate(cert: &Path, key: &Path, names: &[String]) -> Result<bool, String> {
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (true, false) | (false, true) => {
            return Err(format!(
                "only one of {} and {} exists; provide both or neither",
                cert.display(),
                key.display()
            ));
        }
        (false, false) => {}
    }
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let generated = rcgen::generate_simple_self_signed(sans)
        .map_err(|e| format!("generating the web certificate: {e}"))?;
    if let Some(dir) = key.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, generated.cert.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(true)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cert: &Path,
    key: &Path,
    app: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    install_provider();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let handle: axum_server::Handle<std::net::SocketAddr> = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        h.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let std_listener = listener.into_std()?;
    axum_server::tls_rustls::from_tcp_rustls(std_listener, config)?
        // TCP_NODELAY: a response whose TLS records leave in two segments must not wait for
        // the client's delayed ACK (seen as a 40 ms tail on one request in twenty).
        .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
}
