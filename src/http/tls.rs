//! The server's certificate: loaded from its PEM files at start, handed to rustls for every
//! handshake, and replaced while the server runs (SIGHUP, or the files changing on disk)
//! without touching open connections.
//!
//! rustls asks a [`ResolvesServerCert`] for the certificate at each handshake, so swapping
//! the one [`ServerCertificate`] holds is all a reload takes: connections already open keep
//! the session they negotiated, new handshakes get the new certificate. A new pair that does
//! not load (unreadable, not PEM, a key that does not match) leaves the old one in place and
//! is logged once.
//!
//! The files are watched by polling their modification time and length every
//! [`FILE_POLL_INTERVAL`]: one `stat` of two files every few seconds costs nothing, works on
//! every file system (inotify misses renames into bind mounts, NFS), and needs no crate.
//! A renewal that writes the certificate and the key one after the other may be seen half
//! done: that pair does not match and is refused, and the next poll sees the second write.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, crypto::ring};

use crate::config::TlsFiles;

/// How often the certificate and key files are looked at for a change.
pub const FILE_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Larger than any certificate chain or key: a path to something else is refused unread.
const MAX_PEM_BYTES: u64 = 1 << 20;
/// The protocols offered by ALPN (RFC 7301), preferred first: HTTP/2 (RFC 9113 §3.2), then
/// HTTP/1.1 for clients without it.
pub const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a certificate or key could not be used; the message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The certificate new handshakes get, and the files it comes from.
#[derive(Debug)]
pub struct ServerCertificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' state when they were last read, loaded or not: a change since is a reason
    /// to read them again.
    seen: Mutex<FilesState>,
}

/// Modification time and length of the certificate file and the key file.
type FilesState = [Option<(SystemTime, u64)>; 2];

impl ServerCertificate {
    /// Loads the certificate chain and key `files` name; fails naming the file that is wrong.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let seen = files_state(files);
        let key = load_certified_key(files, &provider)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(seen),
        }))
    }

    /// The rustls configuration of the server: this certificate, HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError(format!("TLS: {error}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }

    /// The certificate handshakes get now (its chain, leaf first).
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the files again and uses them for new handshakes; on failure keeps the
    /// certificate in use and says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = files_state(&self.files);
        let key = load_certified_key(&self.files, &self.provider)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// Reloads, logging the outcome in one line; `why` says what asked for it.
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(
                cert = %self.files.cert.display(),
                why,
                "TLS certificate reloaded; new connections use it"
            ),
            Err(error) => tracing::error!(
                %error,
                why,
                "TLS certificate not reloaded; the one in use stays"
            ),
        }
    }

    /// Whether the files changed since they were last read.
    fn files_changed(&self) -> bool {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != files_state(&self.files)
    }

    /// Looks at the files every [`FILE_POLL_INTERVAL`] and reloads when they change; runs
    /// until the task is dropped.
    pub async fn watch_files(self: Arc<Self>) {
        let mut tick = tokio::time::interval(FILE_POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.files_changed() {
                self.reload_logged("the files changed");
            }
        }
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The files' modification times and lengths (`None` for one that cannot be looked at).
fn files_state(files: &TlsFiles) -> FilesState {
    let state = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [state(&files.cert), state(&files.key)]
}

/// The certificate chain and its key from `files`, checked to belong together.
pub fn load_certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_pem(&files.cert, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            TlsError(format!(
                "TLS certificate {}: not a PEM certificate chain: {error}",
                files.cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "TLS certificate {}: no CERTIFICATE block in it",
            files.cert.display()
        )));
    }
    let key_pem = read_pem(&files.key, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        TlsError(format!(
            "TLS key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {error}",
            files.key.display()
        ))
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| {
        TlsError(format!(
            "TLS key {} does not go with the certificate {}: {error}",
            files.key.display(),
            files.cert.display()
        ))
    })
}

/// The whole of a PEM file (bounded), or why not, naming it as `what`.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|error| {
            TlsError(format!(
                "TLS {what} {}: cannot read: {error}",
                path.display()
            ))
        })?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError(format!(
            "TLS {what} {}: larger than {MAX_PEM_BYTES} bytes: not a PEM file",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh self-signed certificate for `name` and its key, as PEM.
    fn self_signed(name: &str) -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()])
            .unwrap_or_else(|e| panic!("rcgen: {e}"));
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    fn write_pair(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&files.key, key).unwrap_or_else(|e| panic!("{e}"));
        files
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("framecast-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    fn leaf(certificate: &ServerCertificate) -> Vec<u8> {
        certificate.current().cert[0].to_vec()
    }

    #[test]
    fn a_matching_pair_loads_and_offers_h2_then_http11() {
        let dir = temp_dir("pair");
        let (cert, key) = self_signed("localhost");
        let files = write_pair(&dir, &cert, &key);
        let certificate = ServerCertificate::load(&files).unwrap_or_else(|e| panic!("{e}"));
        let config = certificate
            .server_config()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(certificate.current().cert.len(), 1);
    }

    #[test]
    fn errors_name_the_file_that_is_wrong() {
        let dir = temp_dir("errors");
        let (cert, key) = self_signed("localhost");
        let (_, other_key) = self_signed("localhost");
        let message = |files: &TlsFiles| match ServerCertificate::load(files) {
            Ok(_) => panic!("{files:?} loaded"),
            Err(error) => error.to_string(),
        };

        let missing = TlsFiles {
            cert: dir.join("absent.pem"),
            key: dir.join("key.pem"),
        };
        let text = message(&missing);
        assert!(
            text.contains("absent.pem") && text.contains("cannot read"),
            "{text}"
        );

        let files = write_pair(&dir, "not pem at all\n", &key);
        let text = message(&files);
        assert!(
            text.contains("cert.pem") && text.contains("no CERTIFICATE"),
            "{text}"
        );

        let files = write_pair(&dir, &cert, "-----BEGIN NOTHING-----\n");
        let text = message(&files);
        assert!(
            text.contains("key.pem") && text.contains("no PEM private key"),
            "{text}"
        );

        // A certificate with some other key.
        let files = write_pair(&dir, &cert, &other_key);
        let text = message(&files);
        assert!(
            text.contains("key.pem")
                && text.contains("does not go with")
                && text.contains("cert.pem"),
            "{text}"
        );
    }

    #[test]
    fn a_reload_swaps_the_certificate_and_a_bad_one_keeps_the_old() {
        let dir = temp_dir("reload");
        let (cert, key) = self_signed("first.test");
        let files = write_pair(&dir, &cert, &key);
        let certificate = ServerCertificate::load(&files).unwrap_or_else(|e| panic!("{e}"));
        let first = leaf(&certificate);
        assert!(!certificate.files_changed());

        let (cert, key) = self_signed("second.test");
        write_pair(&dir, &cert, &key);
        certificate.reload().unwrap_or_else(|e| panic!("{e}"));
        let second = leaf(&certificate);
        assert_ne!(first, second);

        // Half a renewal: a new certificate with the old key.
        let (cert, _) = self_signed("third.test");
        write_pair(&dir, &cert, &key);
        assert!(certificate.reload().is_err());
        assert_eq!(leaf(&certificate), second, "the old certificate stays");
        // Seen: the same files are not read again on every poll.
        assert!(!certificate.files_changed());
    }
}
