//! Running one call for a connection's principal, or, when the client names
//! another principal, for that principal on the client's behalf.
//!
//! An on-behalf-of call runs with the named principal as the caller and the
//! client attached as [`Principal::invoked_by`]: every key the operation
//! uses must allow the caller its action *and* the client
//! [`ON_BEHALF_OF_ACTION`] (checked where every authorization is decided,
//! `Engine::authorize_request`), and the audit record names both. An
//! operation that authorizes on no key ([`KEYLESS_OPERATIONS`]) cannot be
//! checked that way: it runs on behalf of another principal only for a
//! client that is root (uid 0), and is AccessDeniedException (audited)
//! for anyone else.

use crate::principal::ON_BEHALF_OF_ACTION;
use crate::{Engine, KmsError, Principal};
use serde_json::Value;

/// Operations whose authorization is not decided on a key's policy: they
/// create or list keys, draw random bytes, or follow grant rules of their
/// own (CreateGrant's and RetireGrant's grantee and retiring-principal
/// checks, the access key operations' administrator check). Unknown
/// operation names count as key-less too.
pub const KEYLESS_OPERATIONS: &[&str] = &[
    "CreateKey",
    "ListKeys",
    "ListAliases",
    "GenerateRandom",
    "CreateGrant",
    "ListRetirableGrants",
    "RetireGrant",
    "CreateAccessKey",
    "ListAccessKeys",
    "UpdateAccessKey",
    "DeleteAccessKey",
];

/// Whether `operation` is checked on a key's policy, so that
/// [`ON_BEHALF_OF_ACTION`] can be asked of the client on that key.
pub fn is_keyed_operation(operation: &str) -> bool {
    crate::ops::dispatch::OPERATIONS.contains(&operation)
        && !KEYLESS_OPERATIONS.contains(&operation)
}

/// Runs `operation` for `client` itself, or for `on_behalf_of` (with
/// `client` as its `invoked_by`) under the rules of the module
/// documentation.
pub fn call(
    engine: &Engine,
    client: &Principal,
    on_behalf_of: Option<Principal>,
    operation: &str,
    request: Value,
) -> Result<Value, KmsError> {
    let Some(mut caller) = on_behalf_of else {
        return engine.dispatch(client, operation, request);
    };
    let mut plain_client = client.clone();
    plain_client.invoked_by = None;
    caller.invoked_by = Some(Box::new(plain_client));
    let known = crate::ops::dispatch::OPERATIONS.contains(&operation);
    // An unknown name is UnsupportedOperation from dispatch, unaudited as
    // for a direct call.
    if is_keyed_operation(operation) || client.uid == 0 || !known {
        return engine.dispatch(&caller, operation, request);
    }
    let refusal = KmsError::AccessDenied(format!(
        "User: {client} is not authorized to perform: {ON_BEHALF_OF_ACTION} for {operation}: \
         an operation on no key runs on behalf of another principal only for root"
    ));
    engine.audited(&caller, operation, |_| Err(refusal))
}
