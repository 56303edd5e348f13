//! `score` and `ScoreWeights` against docs/scoring.md: the documented tables are the code's
//! defaults, the TOML example parses and gives the numbers the doc states, overrides apply,
//! scores clamp and misspelt keys are refused.

use rollcall_core::score::{SELF_HOSTED, base_score};
use rollcall_core::{
    Evidence, Flag, FlagWeights, Flags, Reason, ScoreWeights, Status, Verdict, score,
};
use serde::Deserialize;

const DOC: &str = include_str!("../../../docs/scoring.md");

fn verdict(reason: Reason, flags: &[Flag]) -> Verdict {
    let mut set = Flags::default();
    for f in flags {
        set.insert(*f);
    }
    Verdict::new(reason, Evidence::default()).with_flags(set)
}

/// The cells of every table row whose first cell is a `code` name.
fn doc_rows() -> Vec<Vec<&'static str>> {
    DOC.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`'))
                .collect()
        })
        .collect()
}

/// The one ```toml block of the doc.
fn doc_toml() -> &'static str {
    let start = DOC.find("```toml\n").expect("a ```toml block") + "```toml\n".len();
    let len = DOC[start..].find("```").expect("the block's end");
    &DOC[start..start + len]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    score: ScoreWeights,
}

fn parse(toml_text: &str) -> ScoreWeights {
    toml::from_str::<ConfigFile>(toml_text).unwrap().score
}

#[test]
fn the_doc_tables_are_the_defaults() {
    let rows = doc_rows();
    for reason in Reason::ALL {
        let row = rows
            .iter()
            .find(|r| r.len() == 3 && r[0] == reason.as_str())
            .unwrap_or_else(|| panic!("docs/scoring.md has no base for {reason}"));
        assert_eq!(row[1], reason.status().as_str(), "{reason}");
        assert_eq!(
            row[2].parse::<i32>().unwrap(),
            base_score(reason),
            "{reason}"
        );
    }
    let defaults = FlagWeights::default();
    for flag in Flag::ALL {
        let row = rows
            .iter()
            .find(|r| r.len() == 2 && r[0] == flag.as_str())
            .unwrap_or_else(|| panic!("docs/scoring.md has no weight for {flag}"));
        assert_eq!(row[1].parse::<i32>().unwrap(), defaults.get(flag), "{flag}");
    }
}

#[test]
fn every_reason_has_a_base_in_its_status_band() {
    let w = ScoreWeights::default();
    for reason in Reason::ALL {
        let s = score(&verdict(reason, &[]), None, &w);
        assert_eq!(i32::from(s), base_score(reason), "{reason}");
        let band = match reason.status() {
            Status::Deliverable => 80..=100,
            Status::Risky => 15..=79,
            Status::Unknown => 10..=49,
            Status::Undeliverable => 0..=5,
        };
        assert!(band.contains(&s), "{reason}: {s}");
    }
}

#[test]
fn the_doc_example_parses_and_scores_as_stated() {
    let w = parse(doc_toml());
    w.validate().unwrap();
    assert_eq!(w.reasons.get("role_account"), Some(&60));
    // Flags left out keep their defaults.
    assert_eq!(
        w.flags,
        FlagWeights {
            free_provider: -5,
            ..FlagWeights::default()
        }
    );
    let alice = verdict(Reason::Accepted, &[Flag::FreeProvider]);
    assert_eq!(score(&alice, Some("google"), &w), 92);
    let info = verdict(Reason::RoleAccount, &[Flag::RoleAccount]);
    assert_eq!(score(&info, None, &w), 57);
    // The stated sums are not the defaults' sums.
    assert_eq!(score(&alice, Some("google"), &ScoreWeights::default()), 95);
}

#[test]
fn an_empty_section_is_the_defaults() {
    assert_eq!(parse("[score]\n"), ScoreWeights::default());
}

#[test]
fn overrides_apply() {
    let mut w = ScoreWeights::default();
    w.reasons.insert("catch_all".into(), 70);
    w.flags.disposable = -30;
    w.providers.insert("yahoo".into(), -4);
    w.providers.insert(SELF_HOSTED.into(), 1);
    w.validate().unwrap();
    assert_eq!(score(&verdict(Reason::CatchAll, &[]), None, &w), 71);
    assert_eq!(
        score(&verdict(Reason::CatchAll, &[]), Some("yahoo"), &w),
        66
    );
    assert_eq!(
        score(&verdict(Reason::CatchAll, &[]), Some("google"), &w),
        70
    );
    let accepted_disposable = verdict(Reason::Accepted, &[Flag::Disposable]);
    assert_eq!(score(&accepted_disposable, Some("google"), &w), 65);
    // The flag repeating the reason is in the base, not added again.
    let disposable = verdict(Reason::Disposable, &[Flag::Disposable]);
    assert_eq!(score(&disposable, Some("google"), &w), 15);
}

#[test]
fn scores_clamp_to_0_100() {
    let mut w = ScoreWeights::default();
    w.reasons.insert("accepted".into(), 150);
    w.reasons.insert("mailbox_not_found".into(), i32::MIN);
    w.flags.role_account = i32::MIN;
    w.providers.insert("google".into(), i32::MAX);
    let accepted = verdict(Reason::Accepted, &[]);
    assert_eq!(score(&accepted, None, &w), 100);
    assert_eq!(score(&accepted, Some("google"), &w), 100);
    let all_flags = verdict(Reason::MailboxNotFound, &Flag::ALL);
    assert_eq!(score(&all_flags, None, &w), 0);
    assert_eq!(score(&all_flags, Some("google"), &w), 0);
    // i32::MIN + i32::MAX = -1: summed without overflow.
    let role = verdict(Reason::Greylisted, &[Flag::RoleAccount]);
    assert_eq!(score(&role, Some("google"), &w), 44);
}

#[test]
fn misspelt_keys_are_refused() {
    let w = parse("[score.reasons]\nacepted = 90\n");
    let err = w.validate().unwrap_err();
    assert_eq!(err.to_string(), r#"unknown score.reasons key "acepted""#);

    let w = parse("[score.providers]\ngmail = 3\n");
    let err = w.validate().unwrap_err();
    assert_eq!(err.to_string(), r#"unknown score.providers key "gmail""#);

    // Status names are not reason names.
    assert!(parse("[score.reasons]\nrisky = 50\n").validate().is_err());

    // Unknown fields and flags fail at parse time already.
    for bad in [
        "[score]\nreason = {}\n",
        "[score.flags]\nvip = 5\n",
        "[score]\nthreshold = 80\n",
    ] {
        let parsed = toml::from_str::<ConfigFile>(bad);
        assert!(parsed.is_err(), "{bad:?} parsed");
    }
}
