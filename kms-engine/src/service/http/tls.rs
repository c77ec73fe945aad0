//! TLS for the HTTPS endpoint: rustls on the aws-lc-rs provider, HTTP/1.1
//! only, with a certificate and key from PEM files or a self-signed
//! certificate the engine generates at its first start and keeps in its
//! directory (key 0600), so that clients can pin it (`AWS_CA_BUNDLE`).

use super::HttpError;
use crate::safe_fs::Dir;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// File name of the generated certificate in the engine directory.
pub const SELF_SIGNED_CERT: &str = "https-cert.pem";
/// File name of the generated certificate's private key (mode 0600).
pub const SELF_SIGNED_KEY: &str = "https-key.pem";
/// Largest PEM file read (a certificate chain is a few KiB).
const MAX_PEM: u64 = 1 << 20;

/// A server certificate ready to serve, with what a client needs to trust it.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub config: Arc<ServerConfig>,
    /// The certificate file (a CA bundle for clients of a self-signed one).
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate (DER), upper-case hex pairs joined by
    /// `:` as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint: String,
    /// Whether this start generated the certificate.
    pub generated: bool,
}

/// The certificate chain in `cert` and the private key in `key` (PEM).
pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerCert, HttpError> {
    let cert_pem = read_small(cert)?;
    let key_pem = read_small(key)?;
    build(cert, &cert_pem, &key_pem, false)
}

/// The engine's own self-signed certificate in `engine_dir`, generated
/// (names `localhost`, `127.0.0.1`, `::1` and `extra_names`) when absent.
pub fn self_signed(engine_dir: &Path, extra_names: &[String]) -> Result<ServerCert, HttpError> {
    let dir = Dir::open_private(engine_dir, false)
        .map_err(|e| HttpError::io(format!("opening {}", engine_dir.display()), &e))?;
    let cert_path = engine_dir.join(SELF_SIGNED_CERT);
    let key_path = engine_dir.join(SELF_SIGNED_KEY);
    if cert_path.exists() || key_path.exists() {
        return build(
            &cert_path,
            &read_small(&cert_path)?,
            &read_small(&key_path)?,
            false,
        );
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for n in extra_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| HttpError::Tls(format!("certificate names: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kmsfs engine");
    let key =
        rcgen::KeyPair::generate().map_err(|e| HttpError::Tls(format!("key generation: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| HttpError::Tls(format!("self-signing: {e}")))?;
    let key_pem = Zeroizing::new(key.serialize_pem().into_bytes());
    let cert_pem = cert.pem().into_bytes();
    // The key first: a certificate without its key is never left behind.
    dir.write_new(OsStr::new(SELF_SIGNED_KEY), &key_pem, 0o600)
        .map_err(|e| HttpError::io(format!("writing {}", key_path.display()), &e))?;
    dir.write_new(OsStr::new(SELF_SIGNED_CERT), &cert_pem, 0o600)
        .map_err(|e| HttpError::io(format!("writing {}", cert_path.display()), &e))?;
    build(&cert_path, &cert_pem, &key_pem, true)
}

fn build(
    cert_path: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
    generated: bool,
) -> Result<ServerCert, HttpError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| HttpError::Tls(format!("{}: {e}", cert_path.display())))?;
    let leaf = certs.first().ok_or_else(|| {
        HttpError::Tls(format!(
            "{}: no certificate in the file",
            cert_path.display()
        ))
    })?;
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| HttpError::Tls("the private key file holds no PEM private key".into()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| HttpError::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerCert {
        config: Arc::new(config),
        cert_path: cert_path.to_path_buf(),
        fingerprint,
        generated,
    })
}

/// `AB:CD:...` SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A regular file of at most [`MAX_PEM`] bytes, not followed through a
/// symlink; zeroized on drop (it may be a private key).
fn read_small(path: &Path) -> Result<Zeroizing<Vec<u8>>, HttpError> {
    let io = |e: &std::io::Error| HttpError::io(format!("reading {}", path.display()), e);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io(&e))?;
    let meta = f.metadata().map_err(|e| io(&e))?;
    if !meta.is_file() || meta.len() > MAX_PEM {
        return Err(HttpError::Tls(format!(
            "{} is not a regular file of at most {MAX_PEM} bytes",
            path.display()
        )));
    }
    let mut out = Zeroizing::new(Vec::new());
    f.take(MAX_PEM).read_to_end(&mut out).map_err(|e| io(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_with_a_private_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let engine_dir = dir.path().join("engine");
        std::fs::create_dir(&engine_dir).unwrap();
        std::fs::set_permissions(&engine_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let first = self_signed(&engine_dir, &["kms.example".into()]).unwrap();
        assert!(first.generated);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let mode = std::fs::metadata(engine_dir.join(SELF_SIGNED_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = self_signed(&engine_dir, &[]).unwrap();
        assert!(!again.generated);
        assert_eq!(again.fingerprint, first.fingerprint);
        // The same pair loads as PEM files.
        let pem = from_pem_files(
            &engine_dir.join(SELF_SIGNED_CERT),
            &engine_dir.join(SELF_SIGNED_KEY),
        )
        .unwrap();
        assert_eq!(pem.fingerprint, first.fingerprint);
    }

    #[test]
    fn bad_pem_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.pem");
        std::fs::write(&c, "not pem").unwrap();
        assert!(matches!(from_pem_files(&c, &c), Err(HttpError::Tls(_))));
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&c, &link).unwrap();
        assert!(from_pem_files(&link, &c).is_err());
    }
}
