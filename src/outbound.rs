//! Outbound HTTPS: the one place Gatehouse's HTTP clients get their TLS (webhooks, SCIM push,
//! `apply --server`, and the OpenID Connect client through `[oidc]`). A rustls `ClientConfig` on
//! the ring provider, handed to reqwest ready-made, so no process-wide state is needed: roots are
//! the Mozilla set compiled in (webpki-roots: the same on every machine, even a container without
//! a CA bundle) plus `[tls] extra_ca_file`; or, for `apply --pin-sha256`, the server's exact
//! certificate instead of any chain.

use anyhow::{Context, anyhow, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A reqwest client builder whose TLS is `tls`; callers add their timeout and redirect policy.
/// Every outbound `reqwest::Client` of the binary starts here (reqwest is built without a TLS
/// provider of its own: `Client::new()` would panic).
pub fn builder(tls: &ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(tls.clone())
}

/// TLS that checks servers against the compiled-in roots plus the certificates (PEM, one or
/// more) of each file in `extra_ca`.
pub fn tls_config(extra_ca: &[&Path]) -> anyhow::Result<ClientConfig> {
    let mut roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    for file in extra_ca {
        for (i, cert) in read_pem_certificates(file)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                anyhow!("{}: certificate {} is unusable: {e}", file.display(), i + 1)
            })?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(http1(config))
}

/// TLS for the settings: the compiled-in roots plus `[tls] extra_ca_file`.
pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<ClientConfig> {
    let extra: Vec<&Path> = settings.tls_extra_ca_file.as_deref().into_iter().collect();
    tls_config(&extra).context("[tls] extra_ca_file (--tls-extra-ca-file)")
}

/// TLS that accepts exactly the server certificate whose DER has SHA-256 `pin`: no chain, name
/// or expiry check (the pin is the trust), but the handshake signature is still verified with
/// the provider's algorithms, so only the holder of that certificate's key gets through.
pub fn pinned_tls_config(pin: [u8; 32]) -> anyhow::Result<ClientConfig> {
    let config = gatehouse_gateway::pinned::config(pin).context("TLS protocol versions")?;
    Ok(http1(config))
}

/// reqwest is built for HTTP/1.1 only here: say so in ALPN.
fn http1(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// `--pin-sha256`: 64 hex digits, upper or lower case, colons allowed (as `openssl x509
/// -fingerprint -sha256` prints them).
pub fn parse_pin(text: &str) -> anyhow::Result<[u8; 32]> {
    let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
    hex::decode(&digits)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            anyhow!("--pin-sha256 takes the 64 hex digits of a SHA-256 (serve logs its certificate's at start), not {text:?}")
        })
}

/// The lowercase hex SHA-256 of a certificate's DER: what `--pin-sha256` takes.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn read_pem_certificates(file: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: bad PEM: {e}", file.display()))?;
    if certs.is_empty() {
        bail!(
            "{}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)",
            file.display()
        );
    }
    Ok(certs)
}

/// Logs the SHA-256 of the web listener's certificate (the first of `cert`, the leaf) and the
/// flag that pins it, for clients that do not trust its issuer.
pub fn log_web_certificate(cert: &Path) {
    match read_pem_certificates(cert) {
        Ok(certs) => {
            let sha256 = certs.first().map(|c| fingerprint(c)).unwrap_or_default();
            tracing::info!(
                cert = %cert.display(),
                %sha256,
                pin = %format!("--pin-sha256 {sha256}"),
                "web certificate: `gatehouse apply --server` trusts it with --ca-file CERT or the pin"
            );
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot read the web certificate"),
    }
}

/// A failed call in words: the error and every cause under it, so a certificate problem is
/// named ("invalid peer certificate: UnknownIssuer"), not only "error sending request". Without
/// the URL: a webhook's may carry a secret.
pub fn describe(e: reqwest::Error) -> String {
    chain(&e.without_url())
}

/// An error and its sources joined with ": ", a cause whose text is already there left out.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// Whether a described failure is the server's certificate being refused.
pub fn is_certificate_problem(described: &str) -> bool {
    described.contains("invalid peer certificate")
        || described.contains(gatehouse_gateway::pinned::PIN_MISMATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_in_both_spellings_and_nothing_else() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_pin(&hex).unwrap(), [0xab; 32]);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&colons).unwrap(), [0xab; 32]);
        for bad in [
            "",
            "ab",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            let e = parse_pin(bad).unwrap_err().to_string();
            assert!(e.contains("64 hex digits"), "{e}");
        }
    }

    #[test]
    fn extra_ca_files_are_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = format!("{:#}", tls_config(&[&missing]).unwrap_err());
        assert!(e.contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = format!("{:#}", tls_config(&[&empty]).unwrap_err());
        assert!(e.contains("empty.pem: no certificate"), "{e}");
        // Two certificates in one file: both become roots.
        let two = dir.path().join("two.pem");
        let a = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".to_string()]).unwrap();
        std::fs::write(&two, format!("{}{}", a.cert.pem(), b.cert.pem())).unwrap();
        assert_eq!(read_pem_certificates(&two).unwrap().len(), 2);
        let with = tls_config(&[&two]).unwrap();
        assert_eq!(with.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn fingerprints_are_the_sha256_of_the_der() {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let fp = fingerprint(c.cert.der());
        assert_eq!(fp.len(), 64);
        assert_eq!(parse_pin(&fp).unwrap().to_vec(), hex::decode(&fp).unwrap());
    }

    #[test]
    fn the_chain_names_every_cause_once() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let outer = anyhow::Error::new(inner).context("client error (Connect)");
        let text = chain(outer.as_ref());
        assert_eq!(
            text,
            "client error (Connect): invalid peer certificate: UnknownIssuer"
        );
        assert!(is_certificate_problem(&text));
    }
}
