//! The outcome of resolving a domain's mail servers ([`Resolution`]) and its parts.
//!
//! Owns the outcome types only; it does not map them to verdicts (the engine does) and does
//! not talk to DNS.

use std::net::IpAddr;

/// One mail server to try: a normalised host name (lowercase, no trailing dot), its MX
/// preference, and the addresses the target policy permits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MxTarget {
    /// Host name, lowercase, without a trailing dot. For an implicit MX, the domain itself.
    pub name: String,
    /// MX preference (lower is tried first); 0 for an implicit MX.
    pub preference: u16,
    /// Addresses to connect to (IPv4 first, then IPv6), never empty.
    pub addrs: Vec<IpAddr>,
}

/// What DNS says about where mail for a domain goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Mail servers to try, in the order to try them (RFC 5321 5.1: by preference, random
    /// among equal preferences). `implicit`: the domain has no MX and its own A/AAAA records
    /// are used.
    Mail {
        /// Hosts in order; never empty.
        hosts: Vec<MxTarget>,
        /// True when no MX exists and the domain's own address is used (RFC 5321 5.1).
        implicit: bool,
    },
    /// RFC 7505: the domain publishes a single `MX 0 .` and accepts no mail.
    NullMx,
    /// No MX and no A/AAAA, or every target unusable (loopback/unspecified), or every MX host
    /// name missing from DNS.
    NoMailServer,
    /// NXDOMAIN for the domain.
    NoSuchDomain,
    /// Every usable target is in a private or special-purpose range and private targets are
    /// not allowed.
    ForbiddenTarget,
    /// SERVFAIL, REFUSED, timeout or another transient failure, after the configured attempts.
    /// Unknown, never undeliverable.
    TempFail {
        /// What went wrong, for evidence and logs.
        reason: String,
    },
}

impl Resolution {
    /// A transient failure: the caller may try again later.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Resolution::TempFail { .. })
    }

    /// The mail hosts, if any.
    pub fn hosts(&self) -> &[MxTarget] {
        match self {
            Resolution::Mail { hosts, .. } => hosts,
            _ => &[],
        }
    }

    /// A bounded label for metrics and logs.
    pub fn as_label(&self) -> &'static str {
        match self {
            Resolution::Mail {
                implicit: false, ..
            } => "mail",
            Resolution::Mail { implicit: true, .. } => "implicit_mx",
            Resolution::NullMx => "null_mx",
            Resolution::NoMailServer => "no_mail_server",
            Resolution::NoSuchDomain => "no_such_domain",
            Resolution::ForbiddenTarget => "forbidden_target",
            Resolution::TempFail { .. } => "temp_fail",
        }
    }
}
