//! The TLS flags of the gRPC API: the coordinator's certificate, key and client CA
//! (`ServerTlsFlags`), and what a client (`submit`, `watch`) trusts and presents
//! (`ClientTlsFlags`).
//!
//! Owns reading the PEM files and turning every problem into one `ConfigError` line naming the
//! flag, its env var and the fix (exit 64). Checking the PEM content is `rollcall_api::tls`'s.

use std::path::{Path, PathBuf};

use rollcall_api::{ClientTls, ServerTls, TlsPart};

use crate::config::ConfigError;

/// TLS of the API a coordinator serves. Without --tls-cert and --tls-key the API is plaintext.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerTlsFlags {
    /// Serve the API over TLS with this certificate chain (PEM, the server's certificate
    /// first, then any intermediates). Needs --tls-key. Clients then use an https:// URL.
    #[arg(long, value_name = "FILE", env = "ROLLCALL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", env = "ROLLCALL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: refuse every client that does not present a certificate signed by this CA
    /// (PEM; one or more certificates). Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "FILE", env = "ROLLCALL_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

/// TLS of a client of the API, used when --coordinator is an https:// URL.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientTlsFlags {
    /// Trust only this CA (PEM) for the coordinator's certificate: a private or self-signed
    /// CA. Without it an https:// coordinator must have a certificate from a public CA.
    #[arg(long, value_name = "FILE", env = "ROLLCALL_CA")]
    pub ca: Option<PathBuf>,

    /// Present this client certificate (PEM) to a coordinator that requires one (mutual TLS,
    /// its --tls-client-ca). Needs --tls-client-key.
    #[arg(long, value_name = "FILE", env = "ROLLCALL_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,

    /// The private key of --tls-client-cert (PEM).
    #[arg(long, value_name = "FILE", env = "ROLLCALL_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

/// A flag as named in errors, with its env var.
fn flag(part: TlsPart) -> &'static str {
    match part {
        TlsPart::ServerCert => "--tls-cert (ROLLCALL_TLS_CERT)",
        TlsPart::ServerKey => "--tls-key (ROLLCALL_TLS_KEY)",
        TlsPart::ClientCa => "--tls-client-ca (ROLLCALL_TLS_CLIENT_CA)",
        TlsPart::Ca => "--ca (ROLLCALL_CA)",
        TlsPart::ClientCert => "--tls-client-cert (ROLLCALL_TLS_CLIENT_CERT)",
        TlsPart::ClientKey => "--tls-client-key (ROLLCALL_TLS_CLIENT_KEY)",
        _ => "TLS",
    }
}

/// What to do about a wrong input.
fn fix(part: TlsPart) -> &'static str {
    match part {
        TlsPart::ServerCert => "give the PEM certificate chain of this server, its own first",
        TlsPart::ServerKey => "give the PEM private key that belongs to --tls-cert",
        TlsPart::ClientCa => {
            "give the PEM certificate of the CA that signs the client certificates"
        }
        TlsPart::Ca => {
            "give the PEM certificate of the CA that signed the coordinator's certificate"
        }
        TlsPart::ClientCert => {
            "give the PEM client certificate signed by the coordinator's client CA"
        }
        TlsPart::ClientKey => "give the PEM private key that belongs to --tls-client-cert",
        _ => "check the TLS files",
    }
}

fn invalid(part: TlsPart, path: &Path, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        setting: flag(part),
        reason: format!("{}: {reason}", path.display()),
        fix: fix(part),
    }
}

fn read(part: TlsPart, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(part, path, format!("cannot read it: {e}")))
}

/// Maps a `rollcall_api::Error::Tls` back to the file it came from.
fn refused(e: rollcall_api::Error, files: &[(TlsPart, &Path)]) -> ConfigError {
    match e {
        rollcall_api::Error::Tls { part, why } => {
            let path = files
                .iter()
                .find(|(p, _)| *p == part)
                .map_or(Path::new("?"), |(_, path)| path);
            invalid(part, path, why)
        }
        other => ConfigError::Invalid {
            setting: "TLS",
            reason: other.to_string(),
            fix: "check the TLS files",
        },
    }
}

/// Both or neither: one of a pair alone is a mistake worth stopping for, not a quiet fallback
/// to plaintext or to no client certificate.
fn pair<'a>(
    first: (TlsPart, Option<&'a Path>),
    second: (TlsPart, Option<&'a Path>),
) -> Result<Option<(&'a Path, &'a Path)>, ConfigError> {
    match (first.1, second.1) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(missing(second.0, first.0)),
        (None, Some(_)) => Err(missing(first.0, second.0)),
    }
}

fn missing(absent: TlsPart, given: TlsPart) -> ConfigError {
    ConfigError::Invalid {
        setting: flag(absent),
        reason: format!("it is not set but {} is", flag(given)),
        fix: fix(absent),
    }
}

impl ServerTlsFlags {
    /// The server's TLS, or `None` for plaintext.
    pub(crate) fn load(&self) -> Result<Option<ServerTls>, ConfigError> {
        let identity = pair(
            (TlsPart::ServerCert, self.tls_cert.as_deref()),
            (TlsPart::ServerKey, self.tls_key.as_deref()),
        )?;
        let Some((cert, key)) = identity else {
            return match &self.tls_client_ca {
                Some(_) => Err(missing(TlsPart::ServerCert, TlsPart::ClientCa)),
                None => Ok(None),
            };
        };
        let mut files = vec![(TlsPart::ServerCert, cert), (TlsPart::ServerKey, key)];
        let tls = ServerTls::from_pem(
            &read(TlsPart::ServerCert, cert)?,
            &read(TlsPart::ServerKey, key)?,
        )
        .map_err(|e| refused(e, &files))?;
        let Some(ca) = self.tls_client_ca.as_deref() else {
            return Ok(Some(tls));
        };
        files.push((TlsPart::ClientCa, ca));
        tls.require_client_certs(&read(TlsPart::ClientCa, ca)?)
            .map(Some)
            .map_err(|e| refused(e, &files))
    }
}

impl ClientTlsFlags {
    /// The client's TLS settings, or `None` when no flag was given (public roots for https).
    pub(crate) fn load(&self) -> Result<Option<ClientTls>, ConfigError> {
        let identity = pair(
            (TlsPart::ClientCert, self.tls_client_cert.as_deref()),
            (TlsPart::ClientKey, self.tls_client_key.as_deref()),
        )?;
        if self.ca.is_none() && identity.is_none() {
            return Ok(None);
        }
        let mut files = Vec::new();
        let tls = match self.ca.as_deref() {
            Some(ca) => {
                files.push((TlsPart::Ca, ca));
                ClientTls::trusting(&read(TlsPart::Ca, ca)?).map_err(|e| refused(e, &files))?
            }
            None => ClientTls::public_roots(),
        };
        let Some((cert, key)) = identity else {
            return Ok(Some(tls));
        };
        files.extend([(TlsPart::ClientCert, cert), (TlsPart::ClientKey, key)]);
        tls.with_client_cert(
            &read(TlsPart::ClientCert, cert)?,
            &read(TlsPart::ClientKey, key)?,
        )
        .map(Some)
        .map_err(|e| refused(e, &files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rollcall-api-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn server(cert: Option<PathBuf>, key: Option<PathBuf>, ca: Option<PathBuf>) -> ServerTlsFlags {
        ServerTlsFlags {
            tls_cert: cert,
            tls_key: key,
            tls_client_ca: ca,
        }
    }

    #[test]
    fn no_flags_mean_plaintext() {
        assert!(server(None, None, None).load().unwrap().is_none());
        let client = ClientTlsFlags {
            ca: None,
            tls_client_cert: None,
            tls_client_key: None,
        };
        assert!(client.load().unwrap().is_none());
    }

    #[test]
    fn a_certificate_and_its_key_load_and_the_client_ca_turns_on_mtls() {
        let dir = scratch("ok");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = write(&dir, "cert.pem", &ck.cert.pem());
        let key = write(&dir, "key.pem", &ck.signing_key.serialize_pem());
        let tls = server(Some(cert.clone()), Some(key.clone()), None)
            .load()
            .unwrap()
            .unwrap();
        assert!(!tls.requires_client_certs());
        let tls = server(Some(cert.clone()), Some(key.clone()), Some(cert.clone()))
            .load()
            .unwrap()
            .unwrap();
        assert!(tls.requires_client_certs());
        let client = ClientTlsFlags {
            ca: Some(cert.clone()),
            tls_client_cert: Some(cert),
            tls_client_key: Some(key),
        };
        assert!(client.load().unwrap().is_some());
    }

    #[test]
    fn a_missing_file_names_the_flag_and_the_path() {
        let dir = scratch("missing");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = write(&dir, "cert.pem", &ck.cert.pem());
        let absent = dir.join("no-such-key.pem");
        let e = server(Some(cert), Some(absent.clone()), None)
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid setting `--tls-key (ROLLCALL_TLS_KEY)`"),
            "{e}"
        );
        assert!(e.contains(&absent.display().to_string()), "{e}");
        assert!(e.contains("fix: give the PEM private key"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_wrong_file_is_blamed_on_its_own_flag() {
        let dir = scratch("wrong");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = write(&dir, "cert.pem", &ck.cert.pem());
        let key = write(&dir, "key.pem", &ck.signing_key.serialize_pem());
        // The key where the CA belongs.
        let e = server(Some(cert.clone()), Some(key.clone()), Some(key.clone()))
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`--tls-client-ca (ROLLCALL_TLS_CLIENT_CA)`"),
            "{e}"
        );
        let e = ClientTlsFlags {
            ca: Some(key),
            tls_client_cert: None,
            tls_client_key: None,
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`--ca (ROLLCALL_CA)`"), "{e}");
    }

    #[test]
    fn half_a_pair_is_refused() {
        let p = PathBuf::from("/nonexistent/cert.pem");
        let e = server(Some(p.clone()), None, None)
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`--tls-key (ROLLCALL_TLS_KEY)`: it is not set but --tls-cert"),
            "{e}"
        );
        let e = server(None, None, Some(p.clone()))
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`--tls-cert (ROLLCALL_TLS_CERT)`: it is not set"),
            "{e}"
        );
        let e = ClientTlsFlags {
            ca: None,
            tls_client_cert: None,
            tls_client_key: Some(p),
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`--tls-client-cert (ROLLCALL_TLS_CLIENT_CERT)`"),
            "{e}"
        );
    }
}
