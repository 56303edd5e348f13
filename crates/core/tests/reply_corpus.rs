//! The reply corpus: every line of `fixtures/replies.tsv` classified and compared, with every
//! mismatch printed at once.

use std::collections::BTreeMap;

use rollcall_core::{CommandKind, EnhancedCode, ProviderTable, Reply, classify};

const CORPUS: &str = include_str!("fixtures/replies.tsv");

struct Fixture<'a> {
    line: usize,
    provider: &'a str,
    command: CommandKind,
    reply: &'a str,
    expected: &'a str,
}

/// Parses a wire reply (`\n` between lines) the way a reply parser hands it over: the basic
/// code, the enhanced code of the first line, and the texts of all lines, codes removed, joined
/// by newlines.
fn split_reply(reply: &str) -> (u16, Option<EnhancedCode>, String) {
    let mut code = 0;
    let mut enhanced = None;
    let mut texts = Vec::new();
    for (i, line) in reply.split("\\n").enumerate() {
        let (basic, rest) = line.split_at(3.min(line.len()));
        if i == 0 {
            code = basic.parse().unwrap_or(0);
        }
        let rest = rest.get(1..).unwrap_or("");
        let text = match EnhancedCode::parse_prefix(rest) {
            Some((e, text)) => {
                if i == 0 {
                    enhanced = Some(e);
                }
                text
            }
            None => rest,
        };
        texts.push(text.trim());
    }
    (code, enhanced, texts.join("\n"))
}

/// The reply a parser would hand over: the texts of its lines as one line each.
fn reply(code: u16, enhanced: Option<EnhancedCode>, text: &str) -> Reply {
    Reply {
        code,
        enhanced,
        lines: text.split('\n').map(str::to_owned).collect(),
    }
}

fn fixtures() -> Vec<Fixture<'static>> {
    CORPUS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(
                cols.len(),
                4,
                "line {}: expected 4 tab-separated columns",
                i + 1
            );
            Fixture {
                line: i + 1,
                provider: cols[0],
                command: CommandKind::from_name(cols[1])
                    .unwrap_or_else(|| panic!("line {}: unknown command {:?}", i + 1, cols[1])),
                reply: cols[2],
                expected: cols[3],
            }
        })
        .collect()
}

/// The label `provider` gives `reply`: through its rows first when the built-in provider table
/// has it, else through the generic table.
fn classify_as(provider: &str, command: CommandKind, reply: &Reply) -> String {
    match ProviderTable::builtin().get(provider) {
        Some(rules) => rules.classify(command, reply).label(),
        None => classify(command, reply).label(),
    }
}

#[test]
fn every_provider_row_has_a_fixture() {
    // Each row of a provider's own is exercised by at least one fixture of that provider
    // that the generic table alone would classify otherwise, or that it classifies the same.
    let table = ProviderTable::builtin();
    let fixtures = fixtures();
    for p in table.providers() {
        let rows = p.rule().replies.len();
        let mine = fixtures.iter().filter(|f| f.provider == p.name()).count();
        assert!(
            rows == 0 || mine >= 1,
            "provider {} has {rows} reply rows and no fixture",
            p.name()
        );
    }
}

#[test]
fn every_reply_in_the_corpus_classifies_as_expected() {
    let fixtures = fixtures();
    let mut mismatches = Vec::new();
    let mut per_provider: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &fixtures {
        *per_provider.entry(f.provider).or_default() += 1;
        let (code, enhanced, text) = split_reply(f.reply);
        let got = classify_as(f.provider, f.command, &reply(code, enhanced, &text));
        if got != f.expected {
            mismatches.push(format!(
                "line {} [{}] {} {:?}\n    expected {}, got {}",
                f.line, f.provider, f.command, f.reply, f.expected, got
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} replies misclassified:\n{}",
        mismatches.len(),
        fixtures.len(),
        mismatches.join("\n")
    );
    assert!(
        fixtures.len() >= 100,
        "corpus has only {} replies",
        fixtures.len()
    );
    for provider in [
        "postfix",
        "exim",
        "microsoft365",
        "google",
        "outlook_com",
        "yahoo",
        "icloud",
        "yandex",
        "mimecast",
        "proofpoint",
        "barracuda",
        "sendmail",
        "qmail",
    ] {
        assert!(
            per_provider.get(provider).copied().unwrap_or(0) >= 5,
            "fewer than 5 replies from {provider}: {per_provider:?}"
        );
    }
}

#[test]
fn the_same_reply_without_an_enhanced_code_from_the_parser_classifies_the_same() {
    // A reply parser that does not split off the enhanced code (server did not advertise
    // ENHANCEDSTATUSCODES) passes it in the text; classify must find it there.
    for f in fixtures() {
        let (code, enhanced, text) = split_reply(f.reply);
        let Some(e) = enhanced else { continue };
        let with_code_in_text = format!("{e} {text}");
        assert_eq!(
            classify_as(
                f.provider,
                f.command,
                &reply(code, None, &with_code_in_text)
            ),
            f.expected,
            "line {}",
            f.line
        );
    }
}
