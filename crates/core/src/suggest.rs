//! Typo suggestions for mail domains: `did_you_mean("gmial.com") == Some("gmail.com")`.
//!
//! Owns `did_you_mean`, the curated candidate list (`CANDIDATES`) and the bounded
//! Damerau-Levenshtein distance it uses. It does not decide when to ask (the caller asks only
//! for a domain without a mail server) nor what the verdict is (`decision` does).
//!
//! The rules, in order (docs/scoring.md has the user's version):
//! 1. A domain that is a candidate itself gets nothing.
//! 2. Distance is Damerau-Levenshtein with adjacent transposition (optimal string alignment):
//!    `gmial.com` is one edit from `gmail.com`. A typed domain of at least
//!    `TWO_EDITS_FROM_LEN` characters may be two edits away, a shorter one only one (two edits
//!    on a short name reach too many unrelated names).
//! 3. The nearest candidate wins; at equal distance the earlier (more used) candidate wins,
//!    except that a tie at two edits gives nothing: a two-edit guess with an equally good rival
//!    is a coin toss.
//! 4. A domain on the embedded free-provider or disposable list gets a suggestion only when it
//!    is a slip of the hand on the winning candidate: one edit, after the first character, that
//!    adds a non-digit, drops a character or swaps two neighbours. Those lists hold real
//!    providers one substitution away from a candidate (`ymail.com`, `email.com`, `yahoo.ch`,
//!    `mail.com` without the `g`), which must get nothing, but also typo-squatted domains
//!    (`gmial.com`, `yaho.com`, `hotmail.co` are on the free list, `gmai.com` and `gmil.com` on
//!    the disposable one), which are exactly what this function is for.

use crate::domain::Domain;
use crate::domain_lists::{is_disposable, is_free_provider};

/// The most used consumer mail domains, most used first (the order breaks ties). Every entry
/// is on the embedded free-provider list (a test checks). Very short names (`me.com`, `qq.com`,
/// `pm.me`, `wp.pl`) are left out on purpose: one edit from them reaches too many unrelated
/// domains.
pub const CANDIDATES: [&str; 66] = [
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "aol.com",
    "icloud.com",
    "live.com",
    "msn.com",
    "hotmail.co.uk",
    "yahoo.co.uk",
    "googlemail.com",
    "comcast.net",
    "hotmail.fr",
    "yahoo.fr",
    "gmx.de",
    "web.de",
    "mail.ru",
    "yandex.ru",
    "orange.fr",
    "live.co.uk",
    "hotmail.it",
    "libero.it",
    "protonmail.com",
    "proton.me",
    "sbcglobal.net",
    "verizon.net",
    "att.net",
    "ymail.com",
    "rocketmail.com",
    "btinternet.com",
    "free.fr",
    "wanadoo.fr",
    "laposte.net",
    "sfr.fr",
    "t-online.de",
    "gmx.net",
    "yahoo.de",
    "yahoo.es",
    "yahoo.it",
    "yahoo.ca",
    "yahoo.com.br",
    "yahoo.co.in",
    "yahoo.com.au",
    "hotmail.de",
    "hotmail.es",
    "outlook.fr",
    "outlook.de",
    "live.fr",
    "bigpond.com",
    "cox.net",
    "charter.net",
    "earthlink.net",
    "shaw.ca",
    "rogers.com",
    "sky.com",
    "ntlworld.com",
    "virgilio.it",
    "uol.com.br",
    "bol.com.br",
    "terra.com.br",
    "yandex.com",
    "rambler.ru",
    "naver.com",
    "hanmail.net",
    "zoho.com",
    "seznam.cz",
];

/// Shortest typed domain allowed two edits (`gmai.com`, 8 characters, may be two away).
pub const TWO_EDITS_FROM_LEN: usize = 8;

/// Longest candidate; the distance rows are sized for it, so no candidate allocates.
const MAX_CANDIDATE_LEN: usize = 16;

/// Room for the distance rows: one cell per candidate character plus the empty prefix.
const ROW: usize = MAX_CANDIDATE_LEN + 1;

/// The common mail domain `domain` is probably a typo of, if any (rules in the module docs).
///
/// `domain` is a normalised ASCII mail domain (`Domain::as_str`); ASCII case is ignored. Cheap:
/// no allocation per candidate (the distance rows live on the stack), and candidates whose
/// length is out of reach are skipped before any work.
pub fn did_you_mean(domain: &str) -> Option<&'static str> {
    let typed = domain.as_bytes();
    if typed.is_empty() || !domain.is_ascii() || typed.len() > MAX_CANDIDATE_LEN + 2 {
        return None;
    }
    if CANDIDATES.iter().any(|c| c.eq_ignore_ascii_case(domain)) {
        return None;
    }
    let max = if typed.len() >= TWO_EDITS_FROM_LEN {
        2
    } else {
        1
    };
    let best = nearest(typed, max)?;
    if is_listed(domain) && !is_slip(typed, best.as_bytes()) {
        return None;
    }
    Some(best)
}

/// Whether the domain is on the free-provider or the disposable list. Parsing allocates, but
/// only once per call, after a candidate was found.
fn is_listed(domain: &str) -> bool {
    Domain::parse(domain).is_ok_and(|d| is_free_provider(&d) || is_disposable(&d))
}

/// The nearest candidate within `max` edits (rule 3 for ties).
fn nearest(typed: &[u8], max: u8) -> Option<&'static str> {
    let mut rows = Rows::default();
    let mut best: Option<(&'static str, u8)> = None;
    let mut tied = false;
    for candidate in CANDIDATES {
        if candidate.len().abs_diff(typed.len()) > usize::from(max) {
            continue;
        }
        let Some(distance) = rows.distance(typed, candidate.as_bytes(), max) else {
            continue;
        };
        match best {
            Some((_, d)) if distance > d => {}
            Some((_, d)) if distance == d => tied = true,
            _ => {
                best = Some((candidate, distance));
                tied = false;
            }
        }
    }
    match best {
        Some((_, 2)) if tied => None,
        Some((candidate, _)) => Some(candidate),
        None => None,
    }
}

/// Rule 4: one edit after the first character that adds a non-digit, drops a character or
/// swaps two neighbours (`gmial.com`, `yaho.com`, `ooutlook.com`; not `mail.com`, `ymail.com`,
/// `y7mail.com`).
fn is_slip(typed: &[u8], candidate: &[u8]) -> bool {
    let common = typed
        .iter()
        .zip(candidate)
        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
        .count();
    if common == 0 {
        return false;
    }
    let (t, c) = (&typed[common..], &candidate[common..]);
    if t.len() == c.len() + 1 {
        !t[0].is_ascii_digit() && t[1..].eq_ignore_ascii_case(c)
    } else if c.len() == t.len() + 1 {
        c[1..].eq_ignore_ascii_case(t)
    } else if t.len() == c.len() && t.len() >= 2 {
        t[0].eq_ignore_ascii_case(&c[1])
            && t[1].eq_ignore_ascii_case(&c[0])
            && t[2..].eq_ignore_ascii_case(&c[2..])
    } else {
        false
    }
}

/// Three rows of the distance matrix, reused for every candidate.
#[derive(Default)]
struct Rows {
    two_up: [u8; ROW],
    up: [u8; ROW],
    current: [u8; ROW],
}

impl Rows {
    /// Optimal-string-alignment distance between `a` and `b` (`b` at most
    /// `MAX_CANDIDATE_LEN` long), or `None` once it is sure to exceed `max`.
    fn distance(&mut self, a: &[u8], b: &[u8], max: u8) -> Option<u8> {
        let m = b.len();
        debug_assert!(m <= MAX_CANDIDATE_LEN);
        let same = |x: u8, y: u8| x.eq_ignore_ascii_case(&y);
        for (j, cell) in self.up[..=m].iter_mut().enumerate() {
            *cell = j as u8;
        }
        for i in 1..=a.len() {
            self.current[0] = i as u8;
            let mut row_min = self.current[0];
            for j in 1..=m {
                let cost = u8::from(!same(a[i - 1], b[j - 1]));
                let mut d = (self.up[j] + 1)
                    .min(self.current[j - 1] + 1)
                    .min(self.up[j - 1] + cost);
                if i > 1 && j > 1 && same(a[i - 1], b[j - 2]) && same(a[i - 2], b[j - 1]) {
                    d = d.min(self.two_up[j - 2] + 1);
                }
                self.current[j] = d;
                row_min = row_min.min(d);
            }
            // Every path to the last cell crosses this row, so it cannot get cheaper.
            if row_min > max {
                return None;
            }
            std::mem::swap(&mut self.two_up, &mut self.up);
            std::mem::swap(&mut self.up, &mut self.current);
        }
        let d = self.up[m];
        (d <= max).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: &str, b: &str) -> Option<u8> {
        Rows::default().distance(a.as_bytes(), b.as_bytes(), 9)
    }

    #[test]
    fn candidates_are_free_providers_in_reach_of_the_rows() {
        for (i, c) in CANDIDATES.iter().enumerate() {
            let d = Domain::parse(c).unwrap();
            assert_eq!(d.as_str(), *c, "{c} is not normalised");
            assert!(is_free_provider(&d), "{c} is not on the free-provider list");
            assert!(!is_disposable(&d), "{c} is on the disposable list");
            assert!(c.len() <= MAX_CANDIDATE_LEN, "{c} is too long for the rows");
            assert!(!CANDIDATES[..i].contains(c), "{c} twice");
        }
    }

    #[test]
    fn distance_counts_a_transposition_as_one_edit() {
        assert_eq!(distance("gmial.com", "gmail.com"), Some(1));
        assert_eq!(distance("gmai.com", "gmail.com"), Some(1));
        assert_eq!(distance("gmail.con", "gmail.com"), Some(1));
        assert_eq!(distance("gmial.co", "gmail.com"), Some(2));
        assert_eq!(distance("", "aol.com"), Some(7));
        assert_eq!(distance("gmail.com", "gmail.com"), Some(0));
        assert_eq!(
            Rows::default().distance(b"example.org", b"gmail.com", 2),
            None
        );
    }

    #[test]
    fn reused_rows_give_the_same_answer() {
        let mut rows = Rows::default();
        let first = rows.distance(b"hotmial.co.uk", b"hotmail.co.uk", 2);
        let _ = rows.distance(b"zzzzzzzzzzzzzzzz", b"aol.com", 2);
        assert_eq!(rows.distance(b"hotmial.co.uk", b"hotmail.co.uk", 2), first);
        assert_eq!(first, Some(1));
    }

    #[test]
    fn slips_are_drops_adds_and_swaps_after_the_first_letter() {
        let slip = |t: &str, c: &str| is_slip(t.as_bytes(), c.as_bytes());
        assert!(slip("gmial.com", "gmail.com"));
        assert!(slip("yaho.com", "yahoo.com"));
        assert!(slip("ooutlook.com", "outlook.com"));
        assert!(!slip("outllok.com", "outlook.com"));
        assert!(slip("hotmail.co", "hotmail.com"));
        assert!(!slip("mail.com", "gmail.com"));
        assert!(!slip("ymail.com", "gmail.com"));
        assert!(!slip("y7mail.com", "ymail.com"));
        assert!(!slip("yahoo.ch", "yahoo.ca"));
        assert!(!slip("gmail.com", "gmail.com"));
    }

    #[test]
    fn odd_input_gets_nothing() {
        assert_eq!(did_you_mean(""), None);
        assert_eq!(did_you_mean("gmäil.com"), None);
        assert_eq!(did_you_mean(&"a".repeat(300)), None);
        assert_eq!(did_you_mean("GMIAL.COM"), Some("gmail.com"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The textbook full-matrix optimal-string-alignment distance, to check the bounded one.
        fn reference(a: &[u8], b: &[u8]) -> usize {
            let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
            for (i, row) in d.iter_mut().enumerate() {
                row[0] = i;
            }
            for (j, cell) in d[0].iter_mut().enumerate() {
                *cell = j;
            }
            for i in 1..=a.len() {
                for j in 1..=b.len() {
                    let cost = usize::from(a[i - 1] != b[j - 1]);
                    d[i][j] = (d[i - 1][j] + 1)
                        .min(d[i][j - 1] + 1)
                        .min(d[i - 1][j - 1] + cost);
                    if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                        d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
                    }
                }
            }
            d[a.len()][b.len()]
        }

        proptest! {
            #[test]
            fn bounded_distance_agrees_with_the_reference(
                typed in "[a-z.]{0,18}",
                index in 0..CANDIDATES.len(),
            ) {
                let candidate = CANDIDATES[index].as_bytes();
                let full = reference(typed.as_bytes(), candidate);
                for max in 0..=2u8 {
                    let bounded = Rows::default().distance(typed.as_bytes(), candidate, max);
                    let expected = (full <= usize::from(max)).then_some(full as u8);
                    prop_assert_eq!(bounded, expected);
                }
            }

            #[test]
            fn a_suggestion_is_a_candidate_in_reach(
                typed in "[a-z0-9.-]{0,20}|(gmail|yahoo|hotmail|outlook)\\.[a-z]{1,4}|\\PC{0,30}",
            ) {
                if let Some(s) = did_you_mean(&typed) {
                    prop_assert!(CANDIDATES.contains(&s));
                    prop_assert_ne!(s, typed.as_str());
                    let max = if typed.len() >= TWO_EDITS_FROM_LEN { 2 } else { 1 };
                    prop_assert!(reference(typed.as_bytes(), s.as_bytes()) <= max);
                }
            }
        }
    }
}
