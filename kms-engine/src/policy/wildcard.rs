//! Wildcard matching as IAM does it: `*` matches any run of characters
//! (including none), `?` matches exactly one character, everything else
//! matches itself.

/// Matches `text` against `pattern`, case-sensitively (StringLike, Resource).
pub fn matches(pattern: &str, text: &str) -> bool {
    glob(pattern.as_bytes(), text.as_bytes(), false)
}

/// Matches `text` against `pattern`, ignoring ASCII case (Action names).
pub fn matches_ignore_ascii_case(pattern: &str, text: &str) -> bool {
    glob(pattern.as_bytes(), text.as_bytes(), true)
}

/// Length of the UTF-8 sequence that starts with byte `b`.
fn char_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Iterative matcher with single-star backtracking: linear in practice, never
/// exponential. Both inputs are valid UTF-8, so `?` steps over one whole
/// character; literal bytes compare byte by byte (UTF-8 is prefix-free, so a
/// literal character either matches whole or not at all).
fn glob(p: &[u8], t: &[u8], ignore_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    // (pattern index just after the last `*`, text index that star resumes at)
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti = (ti + char_len(t[ti])).min(t.len());
                continue;
            }
            Some(&c) if eq(c, t[ti]) => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                let next = (st + char_len(t[st])).min(t.len());
                star = Some((sp, next));
                pi = sp;
                ti = next;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "abC", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("/shared/*", "/shared/a/b.txt", true),
            ("/shared/*", "/shared", false),
            ("/shared/*", "/sharedx/a", false),
            ("*.txt", "a.txt.bak", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxb", true),
            ("??", "é1", true),
            ("?", "é", true),
            ("é*", "éa", true),
            ("a**b", "ab", true),
            ("kms:*", "kms:Decrypt", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t), *want, "pattern {p:?} text {t:?}");
        }
    }

    #[test]
    fn ignore_case() {
        assert!(matches_ignore_ascii_case("kms:decrypt", "kms:Decrypt"));
        assert!(matches_ignore_ascii_case("KMS:Gen*", "kms:GenerateDataKey"));
        assert!(matches_ignore_ascii_case(
            "kms:Re?ncrypt*",
            "kms:ReEncryptFrom"
        ));
        assert!(!matches_ignore_ascii_case("kms:Encrypt", "kms:Decrypt"));
        assert!(!matches("kms:decrypt", "kms:Decrypt"));
    }
}
