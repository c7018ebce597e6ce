//! NATS subjects: tokens separated by `.`; in a subscription, `*` stands for any one token
//! and `>`, as the last token, for one or more tokens.
//!
//! A subject is valid when it is non-empty, has no empty token (`a..b`, `.a`, `a.`) and no
//! white space; a wildcard must be a whole token (`a.*b` is a literal token in NATS, and
//! refused here as ambiguous). The broker checks every subscription's subject, and a
//! publish's subject for white space and wildcards only in `pedantic` mode, as `nats-server`
//! does.

/// Whether `subject` is a valid subscription subject (wildcards allowed).
pub fn valid_filter(subject: &str) -> bool {
    let mut tokens = subject.split('.').peekable();
    while let Some(token) = tokens.next() {
        if !valid_token(token) {
            return false;
        }
        let is_last = tokens.peek().is_none();
        if token == ">" && !is_last {
            return false;
        }
        if token.len() > 1 && token.contains(['*', '>']) {
            return false;
        }
    }
    !subject.is_empty()
}

/// Whether `subject` is a valid subject to publish to (no wildcards).
pub fn valid_literal(subject: &str) -> bool {
    !subject.is_empty()
        && subject
            .split('.')
            .all(|token| valid_token(token) && !token.contains(['*', '>']))
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

/// Whether `filter` has a wildcard token.
pub fn has_wildcard(filter: &str) -> bool {
    filter.split('.').any(|token| token == "*" || token == ">")
}

/// Whether `subject` matches `filter` (a valid filter).
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in filter.split('.') {
        match token {
            ">" => return subject_tokens.next().is_some(),
            "*" => {
                if subject_tokens.next().is_none() {
                    return false;
                }
            }
            literal => {
                if subject_tokens.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn wildcards_match_tokens() {
        assert!(matches("foo.*", "foo.bar"));
        assert!(!matches("foo.*", "foo.bar.baz"));
        assert!(!matches("foo.*", "foo"));
        assert!(matches("foo.>", "foo.bar.baz"));
        assert!(!matches("foo.>", "foo"));
        assert!(matches(">", "a"));
        assert!(matches("*.b.>", "a.b.c"));
        assert!(!matches("*.b.>", "a.c.c"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
    }

    #[test]
    fn filters_and_literals_are_checked() {
        for good in [
            "a",
            "a.b",
            "a.*",
            "a.>",
            "*",
            ">",
            "*.*.>",
            "_INBOX.x1.*",
            "$CLOCK",
        ] {
            assert!(valid_filter(good), "{good}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a.>.b", "a b", "a.*b", "a\tb", "a>",
        ] {
            assert!(!valid_filter(bad), "{bad:?}");
        }
        assert!(valid_literal("a.b"));
        for bad in ["a.*", ">", "a..b", "", "a b"] {
            assert!(!valid_literal(bad), "{bad:?}");
        }
        assert!(has_wildcard("a.*.c") && has_wildcard("a.>") && !has_wildcard("a.b*"));
    }

    /// Tokens drawn from a small alphabet, so that matches are common.
    fn subject_of(tokens: &[u8]) -> String {
        let names = ["a", "b", "c"];
        let parts: Vec<&str> = tokens.iter().map(|&t| names[usize::from(t % 3)]).collect();
        if parts.is_empty() {
            "a".into()
        } else {
            parts.join(".")
        }
    }

    quickcheck! {
        /// A literal filter matches exactly itself; `>` after a prefix matches exactly the
        /// longer subjects with that prefix; replacing one token by `*` matches exactly the
        /// subjects that differ at most there.
        fn matching_agrees_with_tokens(s: Vec<u8>, t: Vec<u8>, at: usize) -> bool {
            let (s, t) = (subject_of(&s), subject_of(&t));
            let (ts, tt): (Vec<&str>, Vec<&str>) = (s.split('.').collect(), t.split('.').collect());
            let literal = matches(&s, &t) == (s == t);
            let cut = at % ts.len();
            let prefix = ts[..cut].iter().chain(std::iter::once(&">")).copied();
            let full = prefix.collect::<Vec<_>>().join(".");
            let full_ok = matches(&full, &t) == (tt.len() > cut && tt[..cut] == ts[..cut]);
            let mut star = ts.clone();
            star[cut] = "*";
            let star = star.join(".");
            let differs: Vec<usize> = (0..ts.len().min(tt.len())).filter(|&i| ts[i] != tt[i]).collect();
            let star_ok = matches(&star, &t)
                == (ts.len() == tt.len() && differs.iter().all(|&i| i == cut));
            literal && full_ok && star_ok && valid_filter(&full) && valid_filter(&star)
        }
    }
}
