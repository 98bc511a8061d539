//! Trusting one exact server certificate: its SHA-256 is the trust (no chain, name or expiry
//! check), and the handshake signature is still verified, so only the holder of that
//! certificate's key gets through. Used for `gatehouse apply --pin-sha256` and for apps whose
//! upstream is pinned (`upstream_pin_sha256`).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// In the error when the certificate is not the pinned one (callers look for it).
pub const PIN_MISMATCH: &str = "does not match the pinned SHA-256";

/// TLS (ring, safe default versions, no ALPN) that accepts exactly the server certificate
/// whose DER has SHA-256 `pin`.
pub fn config(pin: [u8; 32]) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedLeaf {
        pin,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The check: the leaf's SHA-256, then the handshake signature.
#[derive(Debug)]
struct PinnedLeaf {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

#[derive(Debug)]
struct PinMismatch {
    presented: String,
    pinned: String,
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server's certificate (SHA-256 {}) {PIN_MISMATCH} {}",
            self.presented, self.pinned
        )
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if presented == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::Other(rustls::OtherError(Arc::new(
            PinMismatch {
                presented: hex::encode(presented),
                pinned: hex::encode(self.pin),
            },
        ))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
