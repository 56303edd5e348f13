//! Exhaustive checks of the wire mappings: every core value, every wire value, names agree.

use std::sync::Arc;

use rollcall_core::ports::Progress;
use rollcall_core::{
    CampaignId, EmailAddress, EnhancedCode, Evidence, Flags, Reason, Status, Verdict,
};

use super::*;

/// `invalid_syntax` is `REASON_INVALID_SYNTAX`: protobuf style prefixes the enum name.
fn wire_name(prefix: &str, snake: &str) -> String {
    format!("{prefix}_{}", snake.to_ascii_uppercase())
}

#[test]
fn every_reason_round_trips_with_matching_name() {
    for r in Reason::ALL {
        let wire = v1::Reason::from(r);
        assert_eq!(wire.as_str_name(), wire_name("REASON", r.as_str()));
        assert_eq!(Reason::try_from(wire).unwrap(), r);
        assert_eq!(reason_from_wire(wire as i32).unwrap(), r);
    }
}

#[test]
fn every_wire_reason_maps_to_a_core_reason_except_unspecified() {
    let mut mapped = Vec::new();
    for value in 0..64 {
        match v1::Reason::try_from(value) {
            Ok(v1::Reason::Unspecified) => {
                assert!(matches!(
                    reason_from_wire(value),
                    Err(Error::Unspecified("reason"))
                ));
            }
            Ok(wire) => mapped.push(Reason::try_from(wire).unwrap()),
            Err(_) => assert!(matches!(
                reason_from_wire(value),
                Err(Error::UnknownEnumValue { kind: "reason", .. })
            )),
        }
    }
    // Same set. The wire numbering follows `Reason::ALL` up to `forbidden_target` (21); reasons
    // added later (`accepts_all`, 22) take the next numbers, so old clients keep theirs.
    let mut sorted = mapped.clone();
    sorted.sort();
    let mut all = Reason::ALL.to_vec();
    all.sort();
    assert_eq!(sorted, all);
    assert_eq!(mapped.last(), Some(&Reason::AcceptsAll));
}

#[test]
fn every_status_round_trips_with_matching_name() {
    let mut mapped = Vec::new();
    for s in Status::ALL {
        let wire = v1::Status::from(s);
        assert_eq!(wire.as_str_name(), wire_name("STATUS", s.as_str()));
        assert_eq!(Status::try_from(wire).unwrap(), s);
        assert_eq!(status_from_wire(wire as i32).unwrap(), s);
    }
    for value in 0..16 {
        match v1::Status::try_from(value) {
            Ok(v1::Status::Unspecified) => assert!(status_from_wire(value).is_err()),
            Ok(wire) => mapped.push(Status::try_from(wire).unwrap()),
            Err(_) => assert!(matches!(
                status_from_wire(value),
                Err(Error::UnknownEnumValue { kind: "status", .. })
            )),
        }
    }
    assert_eq!(mapped, Status::ALL);
}

#[test]
fn every_campaign_state_round_trips() {
    for s in CampaignState::ALL {
        let wire = v1::CampaignState::from(s);
        assert_eq!(campaign_state_from_wire(wire as i32).unwrap(), s);
    }
    assert!(campaign_state_from_wire(0).is_err());
    assert!(campaign_state_from_wire(99).is_err());
}

fn rejected_verdict() -> Verdict {
    let address = EmailAddress::parse("alice@example.com").unwrap();
    let mut evidence = Evidence::for_address(&address);
    evidence.mx_host = Some("mx1.example.com".into());
    evidence.egress = Some("a".into());
    evidence.set_reply(
        550,
        EnhancedCode::parse("5.1.1"),
        "<alice@example.com>: Recipient address rejected: User unknown in local recipient table",
    );
    Verdict::new(Reason::MailboxNotFound, evidence)
        .with_flags(Flags {
            role_account: true,
            free_provider: true,
            ..Flags::default()
        })
        .with_detail("the server says the mailbox does not exist")
}

#[test]
fn verdict_becomes_a_full_result_and_back() {
    let v = rejected_verdict();
    let r = v1::VerificationResult::from(&v);
    assert_eq!(r.address, "alice@example.com");
    assert_eq!(r.status(), v1::Status::Undeliverable);
    assert_eq!(r.reason(), v1::Reason::MailboxNotFound);
    assert_eq!(r.mx_host, "mx1.example.com");
    assert_eq!(r.egress, "a");
    assert_eq!(r.smtp_code, 550);
    assert_eq!(r.enhanced_code, "5.1.1");
    assert!(
        r.reply_text
            .ends_with("User unknown in local recipient table")
    );
    assert_eq!(r.flags, ["role_account", "free_provider"]);
    assert_eq!(r.detail, "the server says the mailbox does not exist");
    assert_eq!((r.row, r.duplicate), (0, false));

    let back = Verdict::try_from(&r).unwrap();
    assert_eq!(back.reason(), Reason::MailboxNotFound);
    assert_eq!(back.flags, v.flags);
    assert_eq!(back.detail, v.detail);
    assert_eq!(back.evidence.smtp_code, Some(550));
    assert_eq!(back.evidence.enhanced_code, v.evidence.enhanced_code);
    assert_eq!(back.evidence.smtp_text, v.evidence.smtp_text);
    assert_eq!(back.evidence.mx_host, v.evidence.mx_host);
    assert_eq!(back.evidence.egress.as_deref(), Some("a"));
    assert_eq!(back.evidence.domain.as_deref(), Some("example.com"));
}

#[test]
fn every_reason_survives_the_wire_in_a_verdict() {
    for reason in Reason::ALL {
        let v = Verdict::new(reason, Evidence::for_input("bob@example.org"));
        let r = v1::VerificationResult::from(&v);
        assert_eq!((r.smtp_code, r.mx_host.as_str()), (0, ""));
        let back = Verdict::try_from(&r).unwrap();
        assert_eq!((back.status(), back.reason()), (reason.status(), reason));
        assert_eq!(back.evidence.smtp_code, None);
    }
}

#[test]
fn record_carries_row_and_duplicate() {
    let record = ResultRecord {
        row: 41,
        duplicate: true,
        verdict: Arc::new(rejected_verdict()),
    };
    let r = v1::VerificationResult::from(&record);
    assert_eq!((r.row, r.duplicate), (41, true));
    assert_eq!(r.address, "alice@example.com");
}

#[test]
fn inconsistent_results_are_refused() {
    let mut r = v1::VerificationResult::from(&rejected_verdict());
    r.status = v1::Status::Deliverable as i32;
    assert!(matches!(Verdict::try_from(&r), Err(Error::Invalid { .. })));

    let mut r = v1::VerificationResult::from(&rejected_verdict());
    r.flags.push("vip".into());
    assert!(Verdict::try_from(&r).is_err());

    let mut r = v1::VerificationResult::from(&rejected_verdict());
    r.smtp_code = 70_000;
    assert!(Verdict::try_from(&r).is_err());

    let mut r = v1::VerificationResult::from(&rejected_verdict());
    r.reason = 0;
    assert!(matches!(
        Verdict::try_from(&r),
        Err(Error::Unspecified("reason"))
    ));
}

#[test]
fn progress_snapshot_on_the_wire() {
    let p = ProgressSnapshot {
        campaign_id: CampaignId::new("c42").unwrap(),
        state: CampaignState::Running,
        counts: Progress {
            total: 10,
            done: 6,
            by_status: [1, 2, 3, 0],
        },
        rate_per_s: 2.0,
        detail: None,
    };
    let w = v1::Progress::from(&p);
    assert_eq!(w.campaign_id, "c42");
    assert_eq!(w.state(), v1::CampaignState::Running);
    assert_eq!((w.total, w.done), (10, 6));
    assert_eq!(
        (w.deliverable, w.undeliverable, w.risky, w.unknown),
        (1, 2, 3, 0)
    );
    assert_eq!(w.eta_s, Some(2.0));
    assert_eq!(w.detail, "");

    let nan = ProgressSnapshot {
        rate_per_s: f64::NAN,
        ..p
    };
    let w = v1::Progress::from(&nan);
    assert_eq!((w.rate_per_s, w.eta_s), (0.0, None));
}

#[test]
fn campaign_options_are_validated() {
    let ok = v1::CampaignOptions {
        name: "nightly".into(),
        helo: Some("probe.example.net".into()),
        mail_from: Some(String::new()),
        max_sessions: Some(2),
        rcpt_per_minute: None,
        rcpt_per_transaction: Some(50),
        max_wait_secs: Some(0),
    };
    let o = SubmitOptions::try_from(ok.clone()).unwrap();
    assert_eq!(o.max_wait_secs, Some(0), "0 (no bound) is a valid max wait");
    assert_eq!(o.name, "nightly");
    assert_eq!(o.mail_from.as_deref(), Some(""));
    assert_eq!(o.max_sessions, Some(2));
    assert_eq!(o.rcpt_per_minute, None);

    let bad = [
        v1::CampaignOptions {
            helo: Some("probe\r\nRCPT TO:<x@y>".into()),
            ..ok.clone()
        },
        v1::CampaignOptions {
            mail_from: Some("a b@example.com".into()),
            ..ok.clone()
        },
        v1::CampaignOptions {
            helo: Some(String::new()),
            ..ok.clone()
        },
        v1::CampaignOptions {
            max_sessions: Some(0),
            ..ok.clone()
        },
        v1::CampaignOptions {
            rcpt_per_minute: Some(0),
            ..ok.clone()
        },
        v1::CampaignOptions {
            name: "x".repeat(SubmitOptions::MAX_NAME_CHARS + 1),
            ..ok.clone()
        },
        v1::CampaignOptions {
            name: "a\u{7}b".into(),
            ..ok.clone()
        },
    ];
    for o in bad {
        assert!(
            matches!(
                SubmitOptions::try_from(o.clone()),
                Err(Error::Invalid { .. })
            ),
            "{o:?}"
        );
    }
}
