//! TLS for the simulator: a self-signed certificate generated at start (rcgen) for
//! `localhost` and `127.0.0.1`, written as PEM where clients can find and trust it, and a
//! rustls server configuration with the ring provider (the project's one provider).
//!
//! The private key never leaves the process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// Generates the certificate, writes it to `cert_out` (or a fresh temp dir) and returns
/// the server config and the path written.
pub fn server_config(cert_out: Option<&Path>) -> anyhow::Result<(Arc<ServerConfig>, PathBuf)> {
    let names = vec![String::from("localhost"), String::from("127.0.0.1")];
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating the certificate")?;
    let path = match cert_out {
        Some(p) => p.to_path_buf(),
        None => {
            let dir = std::env::temp_dir().join(format!("mm-exchange-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join("cert.pem")
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, certified.cert.pem())
        .with_context(|| format!("writing the certificate to {}", path.display()))?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .context("TLS server certificate")?;
    Ok((Arc::new(config), path))
}
