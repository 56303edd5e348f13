//! The typo table: every line of `fixtures/typos.tsv` against `did_you_mean`.

use rollcall_core::did_you_mean;

const TABLE: &str = include_str!("fixtures/typos.tsv");

#[test]
fn typo_table() {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut negatives = 0;
    for (n, line) in TABLE.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (typed, expected) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {}: want `typed<TAB>expected`", n + 1));
        let expected = (expected != "-").then_some(expected);
        negatives += usize::from(expected.is_none());
        checked += 1;
        let got = did_you_mean(typed);
        if got != expected {
            failures.push(format!(
                "line {}: {typed}: expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(checked >= 40, "only {checked} cases");
    assert!(negatives >= 10, "only {negatives} negatives");
}
