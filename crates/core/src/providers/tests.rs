use super::*;
use crate::verdict::Evidence;

fn reply(code: u16, enhanced: &str, text: &str) -> Reply {
    Reply::new(code, EnhancedCode::parse(enhanced), text)
}

#[test]
fn the_builtin_table_loads_with_unique_names() {
    let table = ProviderTable::builtin();
    let names: Vec<&str> = table.providers().map(|p| p.name()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "{names:?}");
    for wanted in [
        "google",
        "google_workspace",
        "microsoft365",
        "outlook_com",
        "yahoo",
        "icloud",
        "proofpoint",
        "mimecast",
        "barracuda",
        "zoho",
        "yandex",
        "mail_ru",
    ] {
        assert!(table.get(wanted).is_some(), "{wanted} missing");
    }
}

#[test]
fn detection_by_mx_host_and_domain() {
    let t = ProviderTable::builtin();
    let cases: &[(&str, &[&str], &str)] = &[
        ("gmail.com", &["gmail-smtp-in.l.google.com."], "google"),
        (
            "example.com",
            &["aspmx.l.google.com", "alt1.aspmx.l.google.com"],
            "google_workspace",
        ),
        (
            "hotmail.com",
            &["hotmail-com.olc.protection.outlook.com"],
            "outlook_com",
        ),
        (
            "example.com",
            &["example-com.mail.protection.outlook.com"],
            "microsoft365",
        ),
        ("aol.com", &["mx-aol.mail.gm0.yahoodns.net"], "yahoo"),
        ("icloud.com", &["mx01.mail.icloud.com"], "icloud"),
        ("example.com", &["mx0a-0012ab01.pphosted.com"], "proofpoint"),
        (
            "example.com",
            &["eu-smtp-inbound-1.mimecast.com"],
            "mimecast",
        ),
        (
            "example.com",
            &["d123456a.ess.barracudanetworks.com"],
            "barracuda",
        ),
        ("example.com", &["mx.zoho.com"], "zoho"),
        ("yandex.ru", &["mx.yandex.ru"], "yandex"),
        ("mail.ru", &["mxs.mail.ru"], "mail_ru"),
        ("example.com", &["mx.example.com"], "self_hosted"),
        // A suffix only matches at a label boundary.
        ("example.com", &["evilgoogle.com"], "self_hosted"),
        // Names that are not ASCII (a misconfigured zone) are compared, never split.
        (
            "example.com",
            &["mx.exämple.google.com", "ö.googl€.com"],
            "google_workspace",
        ),
        ("example.com", &["€€€€€€€€€€€€€€"], "self_hosted"),
        // A provider behind the domain's own backup is still the provider.
        (
            "example.com",
            &["backup.example.com", "ASPMX.L.GOOGLE.COM"],
            "google_workspace",
        ),
    ];
    for (domain, hosts, expected) in cases {
        assert_eq!(
            t.detect(domain, hosts).name(),
            *expected,
            "{domain} {hosts:?}"
        );
    }
}

#[test]
fn provider_rows_come_before_the_generic_table() {
    let t = ProviderTable::builtin();
    let yahoo = t.get("yahoo").unwrap();
    let disabled = reply(
        554,
        "",
        "delivery error: dd Sorry your message to x@yahoo.com cannot be delivered. This mailbox is disabled (554.30).",
    );
    assert_eq!(
        yahoo.classify(CommandKind::RcptTo, &disabled).label(),
        "undeliverable:mailbox_disabled"
    );
    // The same reply elsewhere is what the generic table says.
    assert_eq!(
        crate::classify(CommandKind::RcptTo, &disabled).label(),
        "undeliverable:mailbox_disabled"
    );
    let icloud = t.get("icloud").unwrap();
    let blocked = reply(
        554,
        "5.7.0",
        "Blocked - see https://ipcheck.proofpoint.com/?ip=203.0.113.7",
    );
    assert_eq!(
        icloud.classify(CommandKind::RcptTo, &blocked).label(),
        "blocked"
    );
    // A row for RCPT says nothing about MAIL FROM.
    let ms = t.get("microsoft365").unwrap();
    let busy = reply(
        451,
        "4.7.500",
        "Server busy. Please try again later from [203.0.113.7].",
    );
    assert_eq!(
        ms.classify(CommandKind::RcptTo, &busy).label(),
        "retry:rate_limited"
    );
    assert_eq!(
        ms.classify(CommandKind::MailFrom, &busy).label(),
        crate::classify(CommandKind::MailFrom, &busy).label()
    );
}

#[test]
fn a_421_closes_the_session_whatever_a_row_says() {
    let table = ProviderTable::from_toml(
        "[[provider]]\nname = \"x\"\nmx = [\"a\"]\n[[provider.reply]]\ntext = \"busy\"\nmeans = \"retry:rate_limited\"\n",
    )
    .unwrap();
    let x = table.get("x").unwrap();
    assert_eq!(
        x.classify(CommandKind::RcptTo, &reply(421, "4.7.0", "Server busy"))
            .label(),
        "session_closing"
    );
    assert_eq!(
        x.classify(CommandKind::RcptTo, &reply(451, "4.7.0", "Server busy"))
            .label(),
        "retry:rate_limited"
    );
}

#[test]
fn accepts_all_caps_acceptances_only() {
    let t = ProviderTable::builtin();
    let yahoo = t.get("yahoo").unwrap();
    let accepted = Verdict::new(Reason::Accepted, Evidence::default());
    let capped = yahoo.cap(accepted);
    assert_eq!(capped.reason(), Reason::AcceptsAll);
    assert_eq!(capped.status(), Status::Risky);
    for kept in [
        Reason::MailboxNotFound,
        Reason::MailboxDisabled,
        Reason::MailboxFull,
        Reason::Disposable,
        Reason::Deferred,
        Reason::Blocked,
    ] {
        let v = yahoo.cap(Verdict::new(kept, Evidence::default()));
        assert_eq!(v.reason(), kept);
    }
    assert_eq!(
        yahoo
            .cap(Verdict::new(Reason::CatchAll, Evidence::default()))
            .reason(),
        Reason::AcceptsAll
    );
    // Where a 250 is believed nothing changes.
    let google = t.get("google").unwrap();
    assert_eq!(
        google
            .cap(Verdict::new(Reason::Accepted, Evidence::default()))
            .reason(),
        Reason::Accepted
    );
}

#[test]
fn user_entries_replace_builtins_of_their_name_and_go_first() {
    let user: Vec<ProviderSpec> = toml::from_str::<RulesFile>(
        r#"
[[provider]]
name = "yahoo"
mx = ["*.yahoodns.net"]
rcpt_per_transaction = 5

[[provider]]
name = "acme_gateway"
mx = ["*.gw.example.net"]
accepts_all = true
"#,
    )
    .unwrap()
    .providers;
    let t = ProviderTable::with_overrides(user).unwrap();
    let yahoo = t.get("yahoo").unwrap();
    assert_eq!(yahoo.rcpt_per_transaction(), Some(5));
    assert!(!yahoo.accepts_all(), "replaced whole");
    assert_eq!(t.providers().filter(|p| p.name() == "yahoo").count(), 1);
    assert_eq!(t.providers().next().unwrap().name(), "yahoo");
    assert_eq!(
        t.detect("x.test", &["a.gw.example.net"]).name(),
        "acme_gateway"
    );
    assert!(t.get("outlook_com").is_some());
}

#[test]
fn bad_rules_are_refused_with_the_reason() {
    let cases = [
        ("name = \"Bad\"\nmx = [\"*.x.test\"]", "lowercase"),
        ("name = \"x\"\nmx = []", "mx pattern"),
        (
            "name = \"x\"\nmx = [\"a\"]\nrcpt_per_transaction = 0",
            ">= 1",
        ),
        (
            "name = \"x\"\nmx = [\"a\"]\n[[provider.reply]]\nmeans = \"maybe\"",
            "not a classification",
        ),
        (
            "name = \"x\"\nmx = [\"a\"]\n[[provider.reply]]\ncode = 250\nenhanced = \"5.1.1\"\nmeans = \"blocked\"",
            "disagree",
        ),
        (
            "name = \"x\"\nmx = [\"a\"]\n[[provider.reply]]\ncommand = \"data\"\nmeans = \"blocked\"",
            "unknown command",
        ),
        (
            "name = \"x\"\nmx = [\"a\"]\n[[provider.reply]]\nmeans = \"undeliverable:catch_all\"",
            "another status",
        ),
        (
            "name = \"x\"\nmx = [\"a\"]\n[[provider.reply]]\nenhanced = \"5.x\"\nmeans = \"blocked\"",
            "X.Y.Z",
        ),
        ("name = \"x\"\nmx = [\"a\"]\nsoon = true", "unknown field"),
    ];
    for (entry, expected) in cases {
        let err = ProviderTable::from_toml(&format!("[[provider]]\n{entry}\n")).unwrap_err();
        assert!(err.contains(expected), "{entry:?}: {err}");
    }
    let twice = ProviderTable::from_toml("[[provider]]\nname = \"x\"\nmx = [\"a\"]\n")
        .unwrap()
        .providers
        .iter()
        .map(|p| p.rule().clone())
        .collect::<Vec<_>>();
    let err = ProviderTable::with_overrides([twice.clone(), twice].concat()).unwrap_err();
    assert!(err.contains("twice"), "{err}");
}
