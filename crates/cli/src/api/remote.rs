//! Where the coordinator is and how to reach it: the `--coordinator`, `--token` and client TLS
//! flags shared by `submit` and `watch`, checked (`load_tls`) and connected (`connect`). The
//! client itself is `rollcall_api`'s.

use anyhow::Context as _;
use rollcall_api::{Client, ClientTls};

use crate::api::tls::ClientTlsFlags;
use crate::config::ConfigError;

/// Where the coordinator is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The coordinator's API, e.g. http://127.0.0.1:50051; https://HOST:PORT speaks TLS (see
    /// --ca).
    #[arg(
        long,
        value_name = "URL",
        env = "ROLLCALL_COORDINATOR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub coordinator: String,

    /// Bearer token of the coordinator's API.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ROLLCALL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    #[command(flatten)]
    pub tls: ClientTlsFlags,
}

impl Remote {
    /// Reads and checks the TLS flags: a usage error (exit 64) when a file is wrong, or when
    /// they are given with an http:// URL (the token would go in the clear to a server the
    /// user meant to authenticate).
    pub fn load_tls(&self) -> Result<Option<ClientTls>, ConfigError> {
        let tls = self.tls.load()?;
        if tls.is_some() && !self.coordinator.starts_with("https://") {
            return Err(ConfigError::Invalid {
                setting: "--coordinator (ROLLCALL_COORDINATOR)",
                reason: format!(
                    "{:?} is not an https:// URL, but TLS flags (--ca, --tls-client-cert) are \
                     given",
                    self.coordinator
                ),
                fix: "use https://HOST:PORT for a coordinator started with --tls-cert",
            });
        }
        Ok(tls)
    }

    /// Connects with the TLS settings `load_tls` returned.
    pub async fn connect(&self, tls: Option<&ClientTls>) -> anyhow::Result<Client> {
        rollcall_api::connect_with_tls(&self.coordinator, self.token.clone(), tls)
            .await
            .context(crate::exit::Unavailable)
            .with_context(|| format!("cannot reach the coordinator at {}", self.coordinator))
    }
}
