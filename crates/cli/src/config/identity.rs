//! Checks of the identity a session announces, wherever it is set (`[identity]`, an
//! `[[egress]]` table, a flag): the HELO name and the MAIL FROM address.

use super::error::ConfigError;

/// RFC 5321 4.1.1.1: EHLO takes a domain (or an address literal, which we do not send).
pub(super) fn check_helo(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting: "identity.helo",
            reason: format!("`{}` is not a host name", name.escape_debug()),
            fix: "set --helo / ROLLCALL_HELO / identity.helo to a name that resolves to your egress IP",
        })
    }
}

pub(super) fn check_mail_from(from: &str) -> Result<String, ConfigError> {
    let from = from.trim();
    if from == "<>" {
        return Ok(String::new());
    }
    match rollcall_core::EmailAddress::parse(from) {
        Ok(address) => Ok(address.to_string()),
        Err(e) => Err(ConfigError::Invalid {
            setting: "identity.mail_from",
            reason: format!("`{}`: {}", from.escape_debug(), e.message()),
            fix: "give an address at a domain you own, or <> for the null sender",
        }),
    }
}
