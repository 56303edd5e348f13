//! Mailbox names: the key a local part is stored and looked up under (`mailbox_key`) and the
//! local parts that name a function rather than a person (`ROLE_WORDS`). Shared by `world`
//! (lookups and the truth rule) and `population` (generated mailboxes).

/// Lower-cases a local part and drops a `+extension` (Postfix `recipient_delimiter = +`), the
/// key under which mailboxes are stored and looked up.
pub(crate) fn mailbox_key(local: &str) -> String {
    let base = match local.find('+') {
        Some(i) if i > 0 => &local[..i],
        _ => local,
    };
    base.to_lowercase()
}

/// Local parts that name a function rather than a person. Generated people never get one.
pub const ROLE_WORDS: &[&str] = &[
    "abuse",
    "admin",
    "administrator",
    "billing",
    "contact",
    "careers",
    "help",
    "hello",
    "hostmaster",
    "info",
    "jobs",
    "mail",
    "marketing",
    "noc",
    "noreply",
    "no-reply",
    "office",
    "postmaster",
    "press",
    "root",
    "sales",
    "security",
    "support",
    "team",
    "webmaster",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_key_folds_case_and_drops_extension() {
        assert_eq!(mailbox_key("Alice.Smith+News"), "alice.smith");
        assert_eq!(mailbox_key("+odd"), "+odd");
        assert_eq!(mailbox_key("bob"), "bob");
    }
}
