//! The policy lockout safety check: refuse a key policy under which the
//! caller setting it could never change the policy again.

use super::Policy;
use super::evaluate::{RequestContext, evaluate};
use crate::error::KmsError;
use crate::principal::Principal;

/// Refuses `policy` unless it lets `caller` call `kms:PutKeyPolicy` on the
/// key afterwards (AWS's check, run by CreateKey and PutKeyPolicy unless the
/// caller bypasses it). Grants do not count, as in AWS: only the key policy
/// can give PutKeyPolicy. The check evaluates a PutKeyPolicy request without
/// encryption context at `now_unix`.
pub fn check_lockout(
    policy: &Policy,
    caller: &Principal,
    resource_arn: &str,
    key_id: &str,
    now_unix: i64,
) -> Result<(), KmsError> {
    let mut ctx = RequestContext::new(caller, "PutKeyPolicy", resource_arn, key_id, now_unix);
    ctx.bypass_policy_lockout_safety_check = Some(false);
    let d = evaluate(policy, &ctx);
    if d.allowed {
        return Ok(());
    }
    Err(KmsError::MalformedPolicyDocument(format!(
        "the new key policy will not allow you ({caller}) to update the key policy in the \
         future ({}); add a statement that allows kms:PutKeyPolicy for you, or pass \
         --bypass-policy-lockout-safety-check if this is intended",
        d.reason
    )))
}
