//! Operations by AWS name with JSON in and out: the entry point for the CLI
//! and the AWS-JSON endpoint.

use crate::engine::{CallOrigin, Engine, OriginGuard};
use crate::{KmsError, Principal};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every operation name [`Engine::dispatch`] accepts.
pub const OPERATIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "EnableKey",
    "DisableKey",
    "UpdateKeyDescription",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "TagResource",
    "UntagResource",
    "ListResourceTags",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateRandom",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKeyOnDemand",
    "ListKeyRotations",
    "PutKeyPolicy",
    "GetKeyPolicy",
    "ListKeyPolicies",
    "CreateGrant",
    "ListGrants",
    "ListRetirableGrants",
    "RetireGrant",
    "RevokeGrant",
    "GetPublicKey",
    "Sign",
    "Verify",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GetParametersForImport",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "GetKeyLastUsage",
    // IAM's access key operations (administrators only).
    "CreateAccessKey",
    "ListAccessKeys",
    "UpdateAccessKey",
    "DeleteAccessKey",
];

type Op<Req, Resp> = fn(&Engine, &Principal, Req) -> Result<Resp, KmsError>;

fn call<Req: DeserializeOwned, Resp: Serialize>(
    engine: &Engine,
    caller: &Principal,
    operation: &str,
    request: Value,
    op: Op<Req, Resp>,
) -> Result<Value, KmsError> {
    let req: Req = match serde_json::from_value(request) {
        Ok(r) => r,
        Err(e) => {
            let err = KmsError::Validation(format!(
                "invalid {operation} request: {}",
                describe_json_error(&e)
            ));
            // A malformed call is still a call: audit it.
            return engine.audited(caller, operation, |_| Err(err));
        }
    };
    let resp = op(engine, caller, req)?;
    serde_json::to_value(resp)
        .map_err(|e| KmsError::Internal(format!("cannot encode {operation} response: {e}")))
}

/// A serde error message that cannot echo request values (which may be
/// plaintext): field-name errors are kept, value errors are generalized.
fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.starts_with("missing field")
        || msg.starts_with("unknown field")
        || msg.starts_with("duplicate field")
        || msg.starts_with("invalid base64")
    {
        msg
    } else {
        "a field has the wrong type or an invalid value".into()
    }
}

impl Engine {
    /// [`Engine::dispatch`] for a call that arrived from `origin` (an access
    /// key, a network address): its audit record says so.
    pub fn dispatch_from(
        &self,
        caller: &Principal,
        origin: &CallOrigin,
        operation: &str,
        request: Value,
    ) -> Result<Value, KmsError> {
        let _origin = OriginGuard::set(origin);
        self.dispatch(caller, operation, request)
    }

    /// Runs the AWS KMS operation `operation` (e.g. `"Decrypt"`) with a JSON
    /// request in AWS's shape; returns the JSON response (binary fields
    /// base64). Unknown operation -> UnsupportedOperation; malformed request
    /// -> Validation.
    pub fn dispatch(
        &self,
        caller: &Principal,
        operation: &str,
        request: Value,
    ) -> Result<Value, KmsError> {
        let request = if request.is_null() {
            Value::Object(Default::default())
        } else {
            request
        };
        match operation {
            "CreateKey" => call(self, caller, operation, request, Engine::create_key),
            "DescribeKey" => call(self, caller, operation, request, Engine::describe_key),
            "ListKeys" => call(self, caller, operation, request, Engine::list_keys),
            "EnableKey" => call(self, caller, operation, request, Engine::enable_key),
            "DisableKey" => call(self, caller, operation, request, Engine::disable_key),
            "UpdateKeyDescription" => call(
                self,
                caller,
                operation,
                request,
                Engine::update_key_description,
            ),
            "ScheduleKeyDeletion" => call(
                self,
                caller,
                operation,
                request,
                Engine::schedule_key_deletion,
            ),
            "CancelKeyDeletion" => call(
                self,
                caller,
                operation,
                request,
                Engine::cancel_key_deletion,
            ),
            "CreateAlias" => call(self, caller, operation, request, Engine::create_alias),
            "UpdateAlias" => call(self, caller, operation, request, Engine::update_alias),
            "DeleteAlias" => call(self, caller, operation, request, Engine::delete_alias),
            "ListAliases" => call(self, caller, operation, request, Engine::list_aliases),
            "TagResource" => call(self, caller, operation, request, Engine::tag_resource),
            "UntagResource" => call(self, caller, operation, request, Engine::untag_resource),
            "ListResourceTags" => {
                call(self, caller, operation, request, Engine::list_resource_tags)
            }
            "Encrypt" => call(self, caller, operation, request, Engine::encrypt),
            "Decrypt" => call(self, caller, operation, request, Engine::decrypt),
            "ReEncrypt" => call(self, caller, operation, request, Engine::re_encrypt),
            "GenerateDataKey" => call(self, caller, operation, request, Engine::generate_data_key),
            "GenerateDataKeyWithoutPlaintext" => call(
                self,
                caller,
                operation,
                request,
                Engine::generate_data_key_without_plaintext,
            ),
            "GenerateRandom" => call(self, caller, operation, request, Engine::generate_random),
            "EnableKeyRotation" => call(
                self,
                caller,
                operation,
                request,
                Engine::enable_key_rotation,
            ),
            "DisableKeyRotation" => call(
                self,
                caller,
                operation,
                request,
                Engine::disable_key_rotation,
            ),
            "GetKeyRotationStatus" => call(
                self,
                caller,
                operation,
                request,
                Engine::get_key_rotation_status,
            ),
            "RotateKeyOnDemand" => call(
                self,
                caller,
                operation,
                request,
                Engine::rotate_key_on_demand,
            ),
            "ListKeyRotations" => {
                call(self, caller, operation, request, Engine::list_key_rotations)
            }
            "PutKeyPolicy" => call(self, caller, operation, request, Engine::put_key_policy),
            "GetKeyPolicy" => call(self, caller, operation, request, Engine::get_key_policy),
            "ListKeyPolicies" => call(self, caller, operation, request, Engine::list_key_policies),
            "CreateGrant" => call(self, caller, operation, request, Engine::create_grant),
            "ListGrants" => call(self, caller, operation, request, Engine::list_grants),
            "ListRetirableGrants" => call(
                self,
                caller,
                operation,
                request,
                Engine::list_retirable_grants,
            ),
            "RetireGrant" => call(self, caller, operation, request, Engine::retire_grant),
            "RevokeGrant" => call(self, caller, operation, request, Engine::revoke_grant),
            "GetPublicKey" => call(self, caller, operation, request, Engine::get_public_key),
            "Sign" => call(self, caller, operation, request, Engine::sign),
            "Verify" => call(self, caller, operation, request, Engine::verify),
            "GenerateMac" => call(self, caller, operation, request, Engine::generate_mac),
            "VerifyMac" => call(self, caller, operation, request, Engine::verify_mac),
            "DeriveSharedSecret" => call(
                self,
                caller,
                operation,
                request,
                Engine::derive_shared_secret,
            ),
            "GenerateDataKeyPair" => call(
                self,
                caller,
                operation,
                request,
                Engine::generate_data_key_pair,
            ),
            "GenerateDataKeyPairWithoutPlaintext" => call(
                self,
                caller,
                operation,
                request,
                Engine::generate_data_key_pair_without_plaintext,
            ),
            "GetParametersForImport" => call(
                self,
                caller,
                operation,
                request,
                Engine::get_parameters_for_import,
            ),
            "ImportKeyMaterial" => call(
                self,
                caller,
                operation,
                request,
                Engine::import_key_material,
            ),
            "DeleteImportedKeyMaterial" => call(
                self,
                caller,
                operation,
                request,
                Engine::delete_imported_key_material,
            ),
            "GetKeyLastUsage" => call(self, caller, operation, request, Engine::get_key_last_usage),
            "CreateAccessKey" => call(self, caller, operation, request, Engine::create_access_key),
            "ListAccessKeys" => call(self, caller, operation, request, Engine::list_access_keys),
            "UpdateAccessKey" => call(self, caller, operation, request, Engine::update_access_key),
            "DeleteAccessKey" => call(self, caller, operation, request, Engine::delete_access_key),
            other => self
                .dispatch_kmsfs(caller, other, request)
                .unwrap_or_else(|| {
                    Err(KmsError::UnsupportedOperation(format!(
                        "operation {other:?} is not supported"
                    )))
                }),
        }
    }
}
