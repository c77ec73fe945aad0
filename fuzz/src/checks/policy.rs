//! Checks of the key policy parser, evaluator and wildcard matcher.

use super::FIXED_NOW;
use kms_engine::Principal;
use kms_engine::context::context_from;
use kms_engine::policy::{self, Policy, RequestContext};

/// `Policy::parse` on arbitrary text; a parsed policy is evaluated and
/// explained for several callers and actions (with and without encryption
/// context and the optional request fields), and run through the lockout
/// check, none of which may panic; `evaluate` and `explain` must agree.
pub fn policy_parse(data: &[u8]) {
    let Ok(doc) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Policy::parse(doc) else {
        return;
    };
    let key_id = "00112233-4455-4677-8899-aabbccddeeff";
    let arn = format!("arn:aws:kms:local:000000000000:key/{key_id}");
    let mut named = Principal::from_ids(1000, 50, vec![100, 101]);
    named.user_name = Some("alice".into());
    named.group_names = vec!["staff".into(), "wheel".into()];
    let callers = [Principal::from_ids(0, 0, vec![]), named];
    let ctx = context_from([("kmsfs:volume", "v"), ("kmsfs:path", "/a/b")]);
    let ops = [kms_engine::grant::GrantOperation::Decrypt];
    for who in &callers {
        for action in [
            "Decrypt",
            "kms:Encrypt",
            "PutKeyPolicy",
            "CreateGrant",
            "ReEncryptFrom",
            "GenerateDataKey",
            "kms:",
            "",
        ] {
            for now in [0, FIXED_NOW, i64::MAX] {
                let mut rc = RequestContext::new(who, action, &arn, key_id, now);
                check_policy_decision(&p, &rc);
                rc = rc.with_encryption_context(&ctx);
                rc.grant_operations = Some(&ops);
                rc.grantee_principal = Some("uid:1000");
                rc.retiring_principal = Some("user:bob");
                rc.request_alias = Some("alias/fuzz");
                rc.key_spec = Some("SYMMETRIC_DEFAULT");
                rc.key_usage = Some("ENCRYPT_DECRYPT");
                rc.encryption_algorithm = Some("SYMMETRIC_DEFAULT");
                rc.bypass_policy_lockout_safety_check = Some(true);
                check_policy_decision(&p, &rc);
            }
        }
        let _ = policy::check_lockout(&p, who, &arn, key_id, FIXED_NOW);
    }
}

fn check_policy_decision(p: &Policy, rc: &RequestContext<'_>) {
    let d = policy::evaluate(p, rc);
    let x = policy::explain(p, &[], rc);
    assert_eq!(x.decision, d, "explain and evaluate disagree");
    let _ = x.to_json();
    let _ = d.reason.to_string();
    let _ = format!("{x:?}");
}

/// Reference wildcard matcher: dynamic programming over characters.
fn glob_reference(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // dp[j]: p[..i] matches t[..j]
    let mut dp = vec![false; t.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= dp[j];
                next[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = dp[j - 1] && (pc == '?' || eq(pc, t[j - 1]));
            }
        }
        dp = next;
    }
    dp[t.len()]
}

/// The policy wildcard matcher (`*`, `?`) against a reference implementation,
/// case-sensitive and not. Input: pattern, a 0 byte, text (both UTF-8).
pub fn policy_wildcard(data: &[u8]) {
    let cut = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (Ok(pattern), Ok(text)) = (
        std::str::from_utf8(&data[..cut]),
        std::str::from_utf8(data.get(cut + 1..).unwrap_or_default()),
    ) else {
        return;
    };
    if pattern.len() > 256 || text.len() > 256 {
        return;
    }
    assert_eq!(
        policy::wildcard::matches(pattern, text),
        glob_reference(pattern, text, false),
        "matches({pattern:?}, {text:?})"
    );
    assert_eq!(
        policy::wildcard::matches_ignore_ascii_case(pattern, text),
        glob_reference(pattern, text, true),
        "matches_ignore_ascii_case({pattern:?}, {text:?})"
    );
}
