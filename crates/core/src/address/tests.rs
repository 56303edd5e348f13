use super::*;

fn ok(input: &str) -> EmailAddress {
    EmailAddress::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
}

fn reason(input: &str) -> SyntaxReason {
    match EmailAddress::parse(input) {
        Ok(a) => panic!("{input:?} should fail, parsed as {a}"),
        Err(e) => e.reason(),
    }
}

#[test]
fn valid_forms_normalise() {
    let cases = [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@Example.COM\t", "Alice@example.com"),
        (
            "first.last@sub.example.co.uk",
            "first.last@sub.example.co.uk",
        ),
        ("alice+tag@example.com", "alice+tag@example.com"),
        ("o'reilly@example.ie", "o'reilly@example.ie"),
        (
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "!#$%&'*+-/=?^_`{|}~@example.com",
        ),
        ("1234@123.example", "1234@123.example"),
        ("<alice@example.com>", "alice@example.com"),
        ("< alice@example.com >", "alice@example.com"),
        ("Alice Doe <alice@example.com>", "alice@example.com"),
        ("\"Doe, Alice\" <alice@example.com>", "alice@example.com"),
        ("\"Bob <boss>\" <bob@example.com>", "bob@example.com"),
        ("\u{a0}alice@example.com\u{a0}", "alice@example.com"),
        ("a@b.co", "a@b.co"),
    ];
    for (input, expected) in cases {
        assert_eq!(ok(input).to_string(), expected, "{input:?}");
    }
}

#[test]
fn local_part_case_is_kept_domain_is_lowered() {
    let a = ok("MixedCase@EXAMPLE.org");
    assert_eq!(a.local_part(), "MixedCase");
    assert_eq!(a.domain().as_str(), "example.org");
}

#[test]
fn quoted_local_parts() {
    let a = ok("\"john doe\"@example.com");
    assert!(a.is_quoted_local());
    assert_eq!(a.local_part(), "\"john doe\"");
    assert_eq!(a.local_unquoted(), "john doe");

    // Escapes are normalised to the minimum: only `"` and `\` stay escaped.
    let a = ok(r#""a\"b\\c\d"@example.com"#);
    assert_eq!(a.local_part(), r#""a\"b\\cd""#);
    assert_eq!(a.local_unquoted(), r#"a"b\cd"#);

    let a = ok("\"user@host\"@example.com");
    assert_eq!(a.local_unquoted(), "user@host");
    assert_eq!(a.to_string(), "\"user@host\"@example.com");

    // RFC 5321 4.1.2: a quoted string that could be a dot-string is stored unquoted.
    let a = ok("\"alice\"@example.com");
    assert!(!a.is_quoted_local());
    assert_eq!(a.to_string(), "alice@example.com");
    assert_eq!(a, ok("alice@example.com"));

    assert_eq!(ok("\".leading\"@example.com").local_part(), "\".leading\"");
    assert_eq!(ok("\"a..b\"@example.com").local_part(), "\"a..b\"");
    assert_eq!(ok("Name <\"a<b\"@example.com>").local_unquoted(), "a<b");
}

#[test]
fn quoted_local_refusals() {
    assert_eq!(
        reason("\"unterminated@example.com"),
        SyntaxReason::InvalidQuotedLocal
    );
    assert_eq!(
        reason("\"a\"b@example.com"),
        SyntaxReason::InvalidQuotedLocal
    );
    assert_eq!(reason("\"\"@example.com"), SyntaxReason::EmptyLocal);
    assert_eq!(reason("\"a\""), SyntaxReason::MissingAt);
    assert_eq!(
        reason("\"a\\\"@example.com"),
        SyntaxReason::InvalidQuotedLocal
    );
    assert_eq!(
        reason("\"a\rb\"@example.com"),
        SyntaxReason::ControlCharacter
    );
}

#[test]
fn idn_domains() {
    let a = ok("user@Bücher.example");
    assert_eq!(a.domain().as_str(), "xn--bcher-kva.example");
    assert_eq!(a.to_string(), "user@xn--bcher-kva.example");
    assert_eq!(a.to_unicode_string(), "user@bücher.example");
    let a = ok("info@пример.рф");
    assert_eq!(a.domain().as_str(), "xn--e1afmkfd.xn--p1ai");
    assert_eq!(a.domain().unicode(), "пример.рф");
}

#[test]
fn non_ascii_local_parts_parse_and_say_so() {
    let a = ok("用户@例子.广告");
    assert!(!a.is_ascii_local());
    assert_eq!(a.local_part(), "用户");
    let a = ok("jürgen@example.de");
    assert!(!a.is_ascii_local());
    assert!(ok("juergen@example.de").is_ascii_local());
    // Unicode white space inside an unquoted local part is still white space.
    assert_eq!(
        reason("a\u{3000}b@example.com"),
        SyntaxReason::InvalidLocalCharacter
    );
}

#[test]
fn injection_attempts_are_refused() {
    let attempts = [
        "alice@example.com\r\nRCPT TO:<victim@example.org>",
        "alice@example.com\r\n",
        "alice@example.com\n",
        "alice\r@example.com",
        "alice@exa\rmple.com",
        "alice\0@example.com",
        "alice@example.com\0",
        "<alice@example.com>\r\nDATA",
        "Name\n <alice@example.com>",
        "\"alice\r\nQUIT\"@example.com",
        "alice\u{7f}@example.com",
        "alice\u{85}@example.com",
        "alice\u{2028}@example.com",
        "alice\u{202e}moc.elpmaxe@example.com",
        "al\u{200b}ice@example.com",
        "\u{feff}alice@example.com",
        "al\tice@example.com",
        "alice@example.com\u{1b}[2J",
    ];
    for input in attempts {
        assert_eq!(reason(input), SyntaxReason::ControlCharacter, "{input:?}");
    }
    // Characters that are not controls but still cannot appear unquoted.
    for input in [
        "alice bob@example.com",
        "a<b@example.com",
        "a>b@example.com",
        "a:b@x.com",
    ] {
        assert_eq!(
            reason(input),
            SyntaxReason::InvalidLocalCharacter,
            "{input:?}"
        );
    }
}

#[test]
fn structural_refusals() {
    let cases = [
        ("", SyntaxReason::Empty),
        ("   ", SyntaxReason::Empty),
        ("alice", SyntaxReason::MissingAt),
        ("alice.example.com", SyntaxReason::MissingAt),
        ("@example.com", SyntaxReason::EmptyLocal),
        ("alice@", SyntaxReason::EmptyDomain),
        ("a@b@example.com", SyntaxReason::InvalidLocalCharacter),
        (".alice@example.com", SyntaxReason::InvalidLocalDots),
        ("alice.@example.com", SyntaxReason::InvalidLocalDots),
        ("al..ice@example.com", SyntaxReason::InvalidLocalDots),
        ("alice@example..com", SyntaxReason::EmptyLabel),
        ("alice@.example.com", SyntaxReason::EmptyLabel),
        ("alice@example.com.", SyntaxReason::EmptyLabel),
        ("alice@localhost", SyntaxReason::DomainWithoutDot),
        ("alice@[192.0.2.1]", SyntaxReason::DomainLiteral),
        ("alice@[IPv6:2001:db8::1]", SyntaxReason::DomainLiteral),
        ("alice@192.0.2.1", SyntaxReason::NumericTld),
        ("alice@exa_mple.com", SyntaxReason::InvalidLabel),
        ("alice@-example.com", SyntaxReason::InvalidLabel),
        ("alice@example.com (Alice)", SyntaxReason::InvalidLabel),
        ("<alice@example.com", SyntaxReason::UnbalancedAngleBrackets),
        ("alice@example.com>", SyntaxReason::UnbalancedAngleBrackets),
        (
            "\"Name <x\" alice@example.com>",
            SyntaxReason::UnbalancedAngleBrackets,
        ),
        ("Alice <>", SyntaxReason::Empty),
        (
            "alice(comment)@example.com",
            SyntaxReason::InvalidLocalCharacter,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(reason(input), expected, "{input:?}");
    }
}

#[test]
fn length_limits() {
    let local64 = "a".repeat(64);
    assert!(EmailAddress::parse(&format!("{local64}@example.com")).is_ok());
    assert_eq!(
        reason(&format!("a{local64}@example.com")),
        SyntaxReason::LocalTooLong
    );
    // A quoted local part counts its quotes (RFC 5321 4.5.3.1.1 is about the wire form).
    assert_eq!(
        reason(&format!("\"{} b\"@example.com", "a".repeat(61))),
        SyntaxReason::LocalTooLong
    );
    // 64 + 1 + 189 = 254 octets passes; one more octet of domain does not.
    let domain = |last: usize| format!("{d}.{d}.{}.com", "d".repeat(last), d = "d".repeat(63));
    let d189 = domain(57);
    assert_eq!(d189.len(), 189);
    assert!(EmailAddress::parse(&format!("{local64}@{d189}")).is_ok());
    let d190 = domain(58);
    assert_eq!(d190.len(), 190);
    assert_eq!(
        reason(&format!("{local64}@{d190}")),
        SyntaxReason::AddressTooLong
    );
    assert_eq!(
        reason(&format!("a@{}.com", "a".repeat(64))),
        SyntaxReason::LabelTooLong
    );
}

#[test]
fn messages_are_human_and_never_echo_controls() {
    let e = EmailAddress::parse("a\r\nb@example.com").unwrap_err();
    assert_eq!(e.reason().as_str(), "control_character");
    assert!(!e.message().chars().any(char::is_control));
    assert!(e.to_string().contains("control_character"));
}

#[test]
fn serde_round_trip_validates() {
    let a = ok("Alice <alice@Bücher.example>");
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(json, "\"alice@xn--bcher-kva.example\"");
    let back: EmailAddress = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    assert!(serde_json::from_str::<EmailAddress>("\"a\\r\\n@example.com\"").is_err());
}

#[test]
fn display_form_reparses_to_the_same_address() {
    for input in [
        "\"john doe\"@example.com",
        r#""a\"b"@example.com"#,
        "用户@例子.广告",
        "Name <x+y@Example.com>",
    ] {
        let a = ok(input);
        assert_eq!(ok(&a.to_string()), a, "{input:?}");
        assert_eq!(ok(&a.to_unicode_string()), a, "{input:?}");
    }
}

#[test]
fn dedupe_key_folds_case_and_display_forms_only() {
    let key = |input: &str| ok(input).dedupe_key();
    let first = key("John.Doe@Example.COM");
    assert_eq!(key("john.doe@example.com"), first);
    assert_eq!(key("Doe <JOHN.DOE@example.com>"), first);
    assert_eq!(key("\"john.doe\"@example.com"), first);
    assert_ne!(key("john.doe@example.org"), first);
    assert_ne!(key("jane.doe@example.com"), first);
    // The hash keeps the parts apart: moving a character across the `@` is another address.
    assert_ne!(key("ab@c.example"), key("a@bc.example"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics_and_output_is_clean(input in "\\PC{0,80}|[\\x00-\\x7f]{0,80}") {
            if let Ok(a) = EmailAddress::parse(&input) {
                let s = a.to_string();
                prop_assert!(!s.chars().any(is_forbidden_char));
                prop_assert!(!a.to_unicode_string().chars().any(is_forbidden_char));
                prop_assert!(s.len() <= MAX_ADDRESS_OCTETS);
                prop_assert!(a.local_part().len() <= MAX_LOCAL_OCTETS);
                prop_assert_eq!(EmailAddress::parse(&s).ok(), Some(a));
            }
        }

        #[test]
        fn address_shaped_input_never_panics(
            local in "[a-zA-Z0-9.\"\\\\ \\r\\n\\x00+<>@(),:;é用]{0,70}",
            domain in "[a-zA-Z0-9.\\-_\\[\\]\\r\\n:ü例。]{0,70}",
        ) {
            let input = format!("{local}@{domain}");
            if let Ok(a) = EmailAddress::parse(&input) {
                let s = a.to_string();
                prop_assert!(!s.chars().any(char::is_control));
                // What the parser accepts, RCPT TO can carry.
                prop_assert!(a.to_mailbox().is_ok(), "{s:?}");
                prop_assert_eq!(EmailAddress::parse(&s).ok(), Some(a));
            }
        }
    }
}
