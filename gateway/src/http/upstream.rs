//! The clients towards apps, one per way of trusting an `https` upstream: the outbound roots
//! (`[tls]`, the default), an app's own CA file (`upstream_ca_file`), or an app's pinned
//! certificate (`upstream_pin_sha256`). Each is made on first use and kept (a CA file is read
//! then: a changed file is read again after a restart); one that cannot be made is not kept,
//! so the app's requests fail with 502 until it is fixed.

use super::proxy::{self, Client};
use gatehouse_broker::access::targets::{AppSettings, parse_sha256};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Trust {
    CaFile(String),
    Pin([u8; 32]),
}

/// The clients (see the module).
pub struct Clients {
    default: Client,
    made: Mutex<HashMap<Trust, Client>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clients")
    }
}

impl Clients {
    /// The default client verifies upstreams with `outbound` (the binary's outbound TLS).
    pub fn new(outbound: rustls::ClientConfig) -> Self {
        Self {
            default: proxy::client(outbound),
            made: Mutex::new(HashMap::new()),
        }
    }

    /// The client for an app with these settings; `Err` says in words why none can be made.
    pub fn for_app(&self, app: &AppSettings) -> Result<Client, String> {
        let trust = match (&app.upstream_pin_sha256, &app.upstream_ca_file) {
            (Some(pin), _) => Trust::Pin(parse_sha256(pin).map_err(|e| e.to_string())?),
            (None, Some(file)) => Trust::CaFile(file.clone()),
            (None, None) => return Ok(self.default.clone()),
        };
        if let Some(c) = self.made.lock().ok().and_then(|m| m.get(&trust).cloned()) {
            return Ok(c);
        }
        let config = match &trust {
            Trust::Pin(pin) => crate::pinned::config(*pin).map_err(|e| e.to_string())?,
            Trust::CaFile(file) => ca_config(file)?,
        };
        let client = proxy::client(config);
        if let Ok(mut m) = self.made.lock() {
            m.insert(trust, client.clone());
        }
        Ok(client)
    }
}

/// TLS that trusts the CA certificates (PEM) in `file`, and nothing else.
fn ca_config(file: &str) -> Result<rustls::ClientConfig, String> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("upstream_ca_file {file}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("upstream_ca_file {file}: no certificate in it"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| format!("upstream_ca_file {file}: certificate {}: {e}", i + 1))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
