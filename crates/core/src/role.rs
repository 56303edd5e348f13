//! Role accounts: local parts that name a function, not a person.
//!
//! Owns the role list and `is_role_local_part`. Mail to `support@` usually reaches a team or a
//! ticket system; it is deliverable but a poor target for a person-to-person list, so the
//! verdict flags it. It does not decide the verdict (`decision` does).

/// Role local parts, lowercase, sorted (binary search). RFC 2142 names the mailboxes a domain
/// is expected to run (abuse, hostmaster, info, marketing, noc, postmaster, sales, security,
/// support, usenet, news, uucp, webmaster, www, ftp); the rest are the common team, system and
/// no-reply names seen on real lists.
const ROLE_LOCAL_PARTS: &[&str] = &[
    "abuse",
    "accounting",
    "accounts",
    "admin",
    "administrator",
    "billing",
    "careers",
    "compliance",
    "contact",
    "contactus",
    "customercare",
    "customerservice",
    "devnull",
    "dns",
    "do-not-reply",
    "donotreply",
    "enquiries",
    "enquiry",
    "feedback",
    "finance",
    "ftp",
    "hello",
    "help",
    "helpdesk",
    "hostmaster",
    "hr",
    "info",
    "inquiries",
    "inquiry",
    "it",
    "jobs",
    "legal",
    "mail",
    "mailer-daemon",
    "marketing",
    "media",
    "news",
    "newsletter",
    "no-reply",
    "noc",
    "noreply",
    "null",
    "office",
    "orders",
    "postmaster",
    "press",
    "privacy",
    "recruiting",
    "recruitment",
    "root",
    "sales",
    "security",
    "service",
    "shop",
    "staff",
    "subscribe",
    "support",
    "sysadmin",
    "team",
    "unsubscribe",
    "usenet",
    "uucp",
    "webmaster",
    "welcome",
    "www",
];

/// True when a local part (unquoted content) names a role. Case-insensitive; a `+tag`
/// sub-address is ignored (`Support+EU` is `support`), and `_` or `.` between words counts as
/// `-` (`no_reply`, `no.reply`).
pub fn is_role_local_part(local: &str) -> bool {
    let base = local.split('+').next().unwrap_or(local);
    if base.is_empty() || base.len() > 32 {
        return false;
    }
    // Folded into a buffer on the stack: asked for every address, twice.
    let mut key = [0u8; 32];
    for (out, b) in key.iter_mut().zip(base.bytes()) {
        *out = match b {
            b'_' | b'.' => b'-',
            b => b.to_ascii_lowercase(),
        };
    }
    let key = &key[..base.len()];
    ROLE_LOCAL_PARTS
        .binary_search_by(|word| word.as_bytes().cmp(key))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_lowercase_and_unique() {
        assert!(ROLE_LOCAL_PARTS.windows(2).all(|w| w[0] < w[1]));
        assert!(
            ROLE_LOCAL_PARTS
                .iter()
                .all(|r| !r.chars().any(|c| c.is_ascii_uppercase()))
        );
    }

    #[test]
    fn matches_roles() {
        for local in [
            "abuse",
            "ADMIN",
            "Info",
            "postmaster",
            "support+eu",
            "Sales+2024",
            "no-reply",
            "noreply",
            "No_Reply",
            "no.reply",
            "webmaster",
            "hostmaster",
            "root",
            "security",
            "billing",
            "contact",
            "help",
            "marketing",
            "office",
        ] {
            assert!(is_role_local_part(local), "{local}");
        }
    }

    #[test]
    fn people_are_not_roles() {
        for local in [
            "alice",
            "info.alice",
            "supporter",
            "admin1",
            "salesman",
            "",
            "+support",
            "roots",
            "j.smith",
            "contact-me",
        ] {
            assert!(!is_role_local_part(local), "{local}");
        }
    }
}
