//! RTSP over TLS (`rtsps://`, RFC 7826 §19.2) for an RTSP client that speaks plain TCP only.
//!
//! retina opens its own `TcpStream` to the host in the URL and takes no other stream, so the
//! source connects to the camera and completes the TLS handshake itself, then listens on a
//! loopback port of its own for exactly one connection, the client's, and copies bytes
//! between the two until either side closes. The client is given `rtsp://127.0.0.1:PORT/…`;
//! RTSP carries no host name the camera must see (request URIs are absolute, and cameras go by
//! their path), and Digest authentication covers whatever URI was sent.
//!
//! The handshake comes first, before the client is told the port, so that a certificate that
//! is not trusted is reported as such, with the fingerprint to pin, rather than as a failed
//! DESCRIBE. The listener takes the first connection and closes, so it is open only for the
//! moment between the handshake and the client's connect, on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::address::{CertificateCheck, format_sha256};
use crate::source::SourceError;

/// How long the client may take to connect to the tunnel once it is open.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS connection to the camera, offered in plain on a loopback port. Dropping it ends
/// the connection.
pub struct TlsTunnel {
    /// Where the RTSP client connects.
    pub local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TlsTunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to the camera at `host`:`port` over TLS, checking its certificate as `check`
/// says, and opens the tunnel. Runs inside a tokio runtime, which then carries the bytes.
pub async fn open(
    host: &str,
    port: u16,
    check: &CertificateCheck,
) -> Result<TlsTunnel, SourceError> {
    let verifier = Arc::new(CameraCertificate::new(check.clone())?);
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Unsupported(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| SourceError::Failed(format!("`{host}` is not a host name for TLS")))?;
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
        SourceError::NotFound(format!("cannot reach the camera at {host}:{port}: {e}"))
    })?;
    let _ = tcp.set_nodelay(true);
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| handshake_error(&e, host, port, verifier.seen()))?;

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| SourceError::Failed(format!("cannot open the TLS tunnel: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| SourceError::Failed(format!("cannot open the TLS tunnel: {e}")))?;
    let task = tokio::spawn(async move {
        let accepted = tokio::time::timeout(ACCEPT_TIMEOUT, listener.accept()).await;
        drop(listener);
        let Ok(Ok((mut plain, peer))) = accepted else {
            return;
        };
        if !peer.ip().is_loopback() {
            return;
        }
        let _ = plain.set_nodelay(true);
        let mut tls = tls;
        // Ends when either side closes or fails; the RTSP client sees the close.
        let _ = tokio::io::copy_bidirectional(&mut plain, &mut tls).await;
    });
    Ok(TlsTunnel { local, task })
}

/// rustls with ring, the one provider built in.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's certificate authorities (Debian: /etc/ssl/certs), read once.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        roots
    })
}

/// What the handshake failure means for the user: for a certificate that was not trusted,
/// the fingerprint that would pin it.
fn handshake_error(
    error: &std::io::Error,
    host: &str,
    port: u16,
    seen: Option<[u8; 32]>,
) -> SourceError {
    let certificate_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(reason) => Some(reason.clone()),
            _ => None,
        });
    match (certificate_error, seen) {
        (Some(CertificateError::ApplicationVerificationFailure), Some(digest)) => {
            SourceError::Failed(format!(
                "the camera at {host}:{port} sent a certificate other than the one pinned: \
                 its SHA-256 is {}",
                format_sha256(&digest)
            ))
        }
        (Some(reason), Some(digest)) => SourceError::Failed(format!(
            "the camera at {host}:{port} has a TLS certificate that is not trusted ({}); to \
             trust this one, add #sha256={} to the address",
            why_untrusted(reason),
            format_sha256(&digest).replace(':', "")
        )),
        _ => SourceError::Failed(format!(
            "TLS with the camera at {host}:{port} failed: {error}"
        )),
    }
}

/// A certificate error in words; the common ones as a camera's owner would put them.
fn why_untrusted(reason: CertificateError) -> String {
    match reason {
        CertificateError::UnknownIssuer => {
            "issued by an authority this system does not know".into()
        }
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            "self-signed".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "issued for another host name".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        other => rustls::Error::InvalidCertificate(other)
            .to_string()
            .trim_start_matches("invalid peer certificate: ")
            .to_owned(),
    }
}

/// Checks the camera's certificate as [`CertificateCheck`] says, and remembers the SHA-256
/// of the one it saw for the error message. Handshake signatures are always verified, so
/// the camera holds the key of the certificate it showed.
#[derive(Debug)]
struct CameraCertificate {
    check: CertificateCheck,
    /// For [`CertificateCheck::SystemRoots`].
    roots: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<[u8; 32]>>,
}

impl CameraCertificate {
    fn new(check: CertificateCheck) -> Result<Self, SourceError> {
        let provider = provider();
        let roots = match check {
            CertificateCheck::SystemRoots => {
                let roots = system_roots();
                if roots.is_empty() {
                    return Err(SourceError::Unsupported(
                        "no certificate authorities found on this system to check the \
                         camera's certificate (Debian: ca-certificates); or pin the camera's \
                         certificate with #sha256=…"
                            .into(),
                    ));
                }
                let verifier = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots.clone()),
                    provider.clone(),
                )
                .build()
                .map_err(|e| SourceError::Unsupported(format!("TLS: {e}")))?;
                Some(verifier)
            }
            CertificateCheck::Sha256(_) | CertificateCheck::AcceptAny => None,
        };
        Ok(Self {
            check,
            roots,
            provider,
            seen: Mutex::new(None),
        })
    }

    fn seen(&self) -> Option<[u8; 32]> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ServerCertVerifier for CameraCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest);
        match (&self.check, &self.roots) {
            (CertificateCheck::Sha256(pin), _) if *pin == digest => {
                Ok(ServerCertVerified::assertion())
            }
            (CertificateCheck::Sha256(_), _) => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            (CertificateCheck::AcceptAny, _) => Ok(ServerCertVerified::assertion()),
            (CertificateCheck::SystemRoots, Some(roots)) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            (CertificateCheck::SystemRoots, None) => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
