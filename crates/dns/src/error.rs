//! The crate's error type: construction problems only.
//!
//! Lookups never fail with an `Error`; they return a [`crate::Resolution`] (a temporary DNS
//! failure is `Resolution::TempFail`, not an error).

/// Why an [`crate::MxResolver`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range.
    #[error("invalid DNS setting `{setting}`: {reason}")]
    InvalidConfig {
        /// The setting's name, as in [`crate::ResolverConfig`].
        setting: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// No nameserver was given and the system configuration could not be read or lists none.
    #[error(
        "cannot use the system DNS configuration (/etc/resolv.conf): {0}; give nameservers explicitly (--dns ADDR:PORT)"
    )]
    SystemConfig(String),
    /// The resolver library refused the configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

impl Error {
    /// True for mistakes in the given settings (as opposed to the machine's configuration).
    pub fn is_invalid_config(&self) -> bool {
        matches!(self, Error::InvalidConfig { .. })
    }

    /// A bounded label for metrics and logs.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::InvalidConfig { .. } => "invalid_config",
            Error::SystemConfig(_) => "system_config",
            Error::Build(_) => "build",
        }
    }
}
