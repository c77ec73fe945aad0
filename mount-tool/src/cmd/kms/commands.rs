//! The `kmsfs kms` operation subcommands: their options (AWS names in
//! kebab-case) and the AWS KMS JSON request each one sends to the engine.

use super::params::{
    BlobArg, Tag, context_json, parse_blob, parse_context, parse_string_list, parse_tags, tags_json,
};
use crate::exit::CliError;
use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// An encryption context option value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context(pub BTreeMap<String, String>);

fn context_arg(s: &str) -> Result<Context, String> {
    parse_context(s).map(Context)
}

/// The tags one `--tags` argument carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList(pub Vec<Tag>);

fn tags_arg(s: &str) -> Result<TagList, String> {
    parse_tags(s).map(TagList)
}

/// The strings one list argument carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

fn list_arg(s: &str) -> Result<StringList, String> {
    parse_string_list(s).map(StringList)
}

/// `--key-id`: a key id, key ARN, alias name (`alias/NAME`) or alias ARN.
#[derive(Debug, Clone, Args)]
pub struct KeyIdArg {
    /// Key id, key ARN, alias name (alias/NAME) or alias ARN
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
}

/// `--grant-tokens`: accepted and passed through to the engine.
#[derive(Debug, Clone, Args)]
pub struct GrantTokensArg {
    /// Grant tokens (passed through)
    #[arg(long, num_args = 1.., value_parser = list_arg, value_name = "TOKEN")]
    pub grant_tokens: Vec<StringList>,
}

/// `--limit` and `--marker`. When neither is given, list commands fetch every
/// page (as `aws` does) and print one merged list.
#[derive(Debug, Clone, Args)]
pub struct PagingArgs {
    /// Maximum number of items in one page (disables automatic paging)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// NextMarker from a previous truncated response (disables automatic paging)
    #[arg(long, value_name = "MARKER")]
    pub marker: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CreateKeyArgs {
    /// Description of the key
    #[arg(long)]
    pub description: Option<String>,
    /// ENCRYPT_DECRYPT (the default), SIGN_VERIFY, GENERATE_VERIFY_MAC or
    /// KEY_AGREEMENT
    #[arg(long, value_name = "USAGE")]
    pub key_usage: Option<String>,
    /// SYMMETRIC_DEFAULT (the default), RSA_2048/3072/4096,
    /// ECC_NIST_P256/P384/P521, ECC_SECG_P256K1, ECC_NIST_EDWARDS25519,
    /// ML_DSA_44/65/87 or HMAC_224/256/384/512
    #[arg(long, value_name = "SPEC")]
    pub key_spec: Option<String>,
    /// AWS_KMS (the default) or EXTERNAL: a key without key material,
    /// PendingImport until import-key-material
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Tags: TagKey=KEY,TagValue=VALUE ... or a JSON list
    #[arg(long, num_args = 1.., value_parser = tags_arg, value_name = "TAG")]
    pub tags: Vec<TagList>,
}

#[derive(Debug, Clone, Args)]
pub struct KeyIdGrantArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    #[command(flatten)]
    pub grants: GrantTokensArg,
}

#[derive(Debug, Clone, Args)]
pub struct UpdateKeyDescriptionArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    /// The new description
    #[arg(long)]
    pub description: String,
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleKeyDeletionArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    /// Waiting period, 7-30 days [engine default: 30]
    #[arg(long, value_name = "DAYS")]
    pub pending_window_in_days: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct AliasTargetArgs {
    /// Alias name, alias/NAME
    #[arg(long, value_name = "ALIAS")]
    pub alias_name: String,
    /// Key id or key ARN the alias points to
    #[arg(long, value_name = "KEY")]
    pub target_key_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteAliasArgs {
    /// Alias name, alias/NAME
    #[arg(long, value_name = "ALIAS")]
    pub alias_name: String,
}

#[derive(Debug, Clone, Args)]
pub struct ListAliasesArgs {
    /// Only aliases of this key
    #[arg(long, value_name = "KEY")]
    pub key_id: Option<String>,
    #[command(flatten)]
    pub paging: PagingArgs,
}

#[derive(Debug, Clone, Args)]
pub struct KeyPagingArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    #[command(flatten)]
    pub paging: PagingArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TagResourceArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    /// Tags: TagKey=KEY,TagValue=VALUE ... or a JSON list
    #[arg(long, required = true, num_args = 1.., value_parser = tags_arg, value_name = "TAG")]
    pub tags: Vec<TagList>,
}

#[derive(Debug, Clone, Args)]
pub struct UntagResourceArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    /// Tag keys to remove
    #[arg(long, required = true, num_args = 1.., value_parser = list_arg, value_name = "KEY")]
    pub tag_keys: Vec<StringList>,
}

#[derive(Debug, Clone, Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    /// Data to encrypt: fileb://FILE, or the text itself
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub plaintext: BlobArg,
    /// Encryption context: k=v,k2=v2 or a JSON object
    #[arg(long, value_parser = context_arg, value_name = "CONTEXT")]
    pub encryption_context: Option<Context>,
    /// SYMMETRIC_DEFAULT (the default), RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256
    #[arg(long, value_name = "ALGORITHM")]
    pub encryption_algorithm: Option<String>,
    #[command(flatten)]
    pub grants: GrantTokensArg,
}

#[derive(Debug, Clone, Args)]
pub struct DecryptArgs {
    /// Ciphertext: fileb://FILE
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub ciphertext_blob: BlobArg,
    /// Encryption context the data was encrypted under: k=v,k2=v2 or JSON
    #[arg(long, value_parser = context_arg, value_name = "CONTEXT")]
    pub encryption_context: Option<Context>,
    /// Require this key (the blob names its key otherwise; required for an
    /// RSA key)
    #[arg(long, value_name = "KEY")]
    pub key_id: Option<String>,
    /// SYMMETRIC_DEFAULT (the default), RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256
    #[arg(long, value_name = "ALGORITHM")]
    pub encryption_algorithm: Option<String>,
    #[command(flatten)]
    pub grants: GrantTokensArg,
}

#[derive(Debug, Clone, Args)]
pub struct ReEncryptArgs {
    /// Ciphertext: fileb://FILE
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub ciphertext_blob: BlobArg,
    /// Context the data was encrypted under
    #[arg(long, value_parser = context_arg, value_name = "CONTEXT")]
    pub source_encryption_context: Option<Context>,
    /// Require this source key
    #[arg(long, value_name = "KEY")]
    pub source_key_id: Option<String>,
    /// Key to encrypt under
    #[arg(long, value_name = "KEY")]
    pub destination_key_id: String,
    /// Context to encrypt under
    #[arg(long, value_parser = context_arg, value_name = "CONTEXT")]
    pub destination_encryption_context: Option<Context>,
    #[arg(long, value_name = "ALGORITHM")]
    pub source_encryption_algorithm: Option<String>,
    #[arg(long, value_name = "ALGORITHM")]
    pub destination_encryption_algorithm: Option<String>,
    #[command(flatten)]
    pub grants: GrantTokensArg,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateDataKeyArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    /// AES_256 or AES_128
    #[arg(long, value_name = "SPEC")]
    pub key_spec: Option<String>,
    /// Data key length in bytes, 1-1024
    #[arg(long, value_name = "N")]
    pub number_of_bytes: Option<u32>,
    /// Encryption context: k=v,k2=v2 or a JSON object
    #[arg(long, value_parser = context_arg, value_name = "CONTEXT")]
    pub encryption_context: Option<Context>,
    #[command(flatten)]
    pub grants: GrantTokensArg,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateRandomArgs {
    /// Number of random bytes, 1-1024
    #[arg(long, value_name = "N")]
    pub number_of_bytes: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct EnableKeyRotationArgs {
    #[command(flatten)]
    pub key: KeyIdArg,
    /// Rotation period, 90-2560 days [engine default: 365]
    #[arg(long, value_name = "DAYS")]
    pub rotation_period_in_days: Option<u32>,
}

/// Every engine operation, named as in `aws kms`.
#[derive(Debug, Clone, Subcommand)]
pub enum OpCommand {
    /// Create a key (symmetric unless --key-spec says otherwise)
    CreateKey(CreateKeyArgs),
    /// Show a key's metadata
    DescribeKey(KeyIdGrantArgs),
    /// List key ids and ARNs
    ListKeys(PagingArgs),
    /// Enable a disabled key
    EnableKey(KeyIdArg),
    /// Disable a key (it cannot be used until enabled)
    DisableKey(KeyIdArg),
    /// Change a key's description
    UpdateKeyDescription(UpdateKeyDescriptionArgs),
    /// Schedule a key for destruction after a waiting period
    ScheduleKeyDeletion(ScheduleKeyDeletionArgs),
    /// Cancel a scheduled deletion (the key returns disabled)
    CancelKeyDeletion(KeyIdArg),
    /// Create an alias for a key
    CreateAlias(AliasTargetArgs),
    /// Point an alias at another key
    UpdateAlias(AliasTargetArgs),
    /// Delete an alias
    DeleteAlias(DeleteAliasArgs),
    /// List aliases
    ListAliases(ListAliasesArgs),
    /// Add or replace tags on a key
    TagResource(TagResourceArgs),
    /// Remove tags from a key
    UntagResource(UntagResourceArgs),
    /// List a key's tags
    ListResourceTags(KeyPagingArgs),
    /// Encrypt up to 4096 bytes under a key
    Encrypt(EncryptArgs),
    /// Decrypt a ciphertext blob
    Decrypt(DecryptArgs),
    /// Decrypt and encrypt again under a new key and/or context
    ReEncrypt(ReEncryptArgs),
    /// Generate a data key: plaintext and wrapped copy
    GenerateDataKey(GenerateDataKeyArgs),
    /// Generate a data key: wrapped copy only
    GenerateDataKeyWithoutPlaintext(GenerateDataKeyArgs),
    /// Random bytes
    GenerateRandom(GenerateRandomArgs),
    /// Turn on automatic rotation
    EnableKeyRotation(EnableKeyRotationArgs),
    /// Turn off automatic rotation
    DisableKeyRotation(KeyIdArg),
    /// Show whether and when a key rotates
    GetKeyRotationStatus(KeyIdArg),
    /// Rotate a key now
    RotateKeyOnDemand(KeyIdArg),
    /// List a key's completed rotations
    ListKeyRotations(KeyPagingArgs),
}

/// A request for the engine: the AWS operation name and its JSON body.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub op: &'static str,
    pub body: Value,
}

/// Builds a JSON object, leaving out absent (`None`) and empty-list fields.
struct Body(Map<String, Value>);

impl Body {
    fn new() -> Self {
        Body(Map::new())
    }
    fn set(mut self, name: &str, v: impl Into<Value>) -> Self {
        self.0.insert(name.to_string(), v.into());
        self
    }
    fn opt<T: Into<Value>>(self, name: &str, v: Option<T>) -> Self {
        match v {
            Some(v) => self.set(name, v),
            None => self,
        }
    }
    fn context(self, name: &str, c: &Option<Context>) -> Self {
        let v = c.as_ref().map(|c| context_json(&c.0));
        self.opt(name, v)
    }
    fn list(self, name: &str, items: Vec<Value>) -> Self {
        if items.is_empty() {
            self
        } else {
            self.set(name, Value::Array(items))
        }
    }
    fn grants(self, g: &GrantTokensArg) -> Self {
        let tokens = g
            .grant_tokens
            .iter()
            .flat_map(|l| l.0.iter().cloned().map(Value::String))
            .collect();
        self.list("GrantTokens", tokens)
    }
    fn paging(self, p: &PagingArgs) -> Self {
        self.opt("Limit", p.limit).opt("Marker", p.marker.clone())
    }
    fn done(self, op: &'static str) -> Request {
        Request {
            op,
            body: Value::Object(self.0),
        }
    }
}

fn all_tags(lists: &[TagList]) -> Vec<Tag> {
    lists.iter().flat_map(|l| l.0.iter().cloned()).collect()
}

fn key(k: &KeyIdArg) -> Body {
    Body::new().set("KeyId", k.key_id.clone())
}

impl OpCommand {
    /// The AWS JSON request. Reads `fileb://` files, so it can fail with an
    /// I/O error.
    pub fn request(&self) -> Result<Request, CliError> {
        use OpCommand as C;
        Ok(match self {
            C::CreateKey(a) => {
                let tags = all_tags(&a.tags);
                let tags = if tags.is_empty() {
                    Vec::new()
                } else {
                    tags_json(&tags).as_array().cloned().unwrap_or_default()
                };
                Body::new()
                    .opt("Description", a.description.clone())
                    .opt("KeyUsage", a.key_usage.clone())
                    .opt("KeySpec", a.key_spec.clone())
                    .opt("Origin", a.origin.clone())
                    .list("Tags", tags)
                    .done("CreateKey")
            }
            C::DescribeKey(a) => key(&a.key).grants(&a.grants).done("DescribeKey"),
            C::ListKeys(p) => Body::new().paging(p).done("ListKeys"),
            C::EnableKey(k) => key(k).done("EnableKey"),
            C::DisableKey(k) => key(k).done("DisableKey"),
            C::UpdateKeyDescription(a) => key(&a.key)
                .set("Description", a.description.clone())
                .done("UpdateKeyDescription"),
            C::ScheduleKeyDeletion(a) => key(&a.key)
                .opt("PendingWindowInDays", a.pending_window_in_days)
                .done("ScheduleKeyDeletion"),
            C::CancelKeyDeletion(k) => key(k).done("CancelKeyDeletion"),
            C::CreateAlias(a) => alias_target(a).done("CreateAlias"),
            C::UpdateAlias(a) => alias_target(a).done("UpdateAlias"),
            C::DeleteAlias(a) => Body::new()
                .set("AliasName", a.alias_name.clone())
                .done("DeleteAlias"),
            C::ListAliases(a) => Body::new()
                .opt("KeyId", a.key_id.clone())
                .paging(&a.paging)
                .done("ListAliases"),
            C::TagResource(a) => key(&a.key)
                .set("Tags", tags_json(&all_tags(&a.tags)))
                .done("TagResource"),
            C::UntagResource(a) => {
                let keys: Vec<Value> = a
                    .tag_keys
                    .iter()
                    .flat_map(|l| l.0.iter().cloned().map(Value::String))
                    .collect();
                key(&a.key)
                    .set("TagKeys", Value::Array(keys))
                    .done("UntagResource")
            }
            C::ListResourceTags(a) => key(&a.key).paging(&a.paging).done("ListResourceTags"),
            C::Encrypt(a) => key(&a.key)
                .set(
                    "Plaintext",
                    a.plaintext.read_base64("--plaintext")?.as_str(),
                )
                .context("EncryptionContext", &a.encryption_context)
                .opt("EncryptionAlgorithm", a.encryption_algorithm.clone())
                .grants(&a.grants)
                .done("Encrypt"),
            C::Decrypt(a) => Body::new()
                .set(
                    "CiphertextBlob",
                    a.ciphertext_blob.read_base64("--ciphertext-blob")?.as_str(),
                )
                .context("EncryptionContext", &a.encryption_context)
                .opt("KeyId", a.key_id.clone())
                .opt("EncryptionAlgorithm", a.encryption_algorithm.clone())
                .grants(&a.grants)
                .done("Decrypt"),
            C::ReEncrypt(a) => Body::new()
                .set(
                    "CiphertextBlob",
                    a.ciphertext_blob.read_base64("--ciphertext-blob")?.as_str(),
                )
                .context("SourceEncryptionContext", &a.source_encryption_context)
                .opt("SourceKeyId", a.source_key_id.clone())
                .set("DestinationKeyId", a.destination_key_id.clone())
                .context(
                    "DestinationEncryptionContext",
                    &a.destination_encryption_context,
                )
                .opt(
                    "SourceEncryptionAlgorithm",
                    a.source_encryption_algorithm.clone(),
                )
                .opt(
                    "DestinationEncryptionAlgorithm",
                    a.destination_encryption_algorithm.clone(),
                )
                .grants(&a.grants)
                .done("ReEncrypt"),
            C::GenerateDataKey(a) => data_key(a).done("GenerateDataKey"),
            C::GenerateDataKeyWithoutPlaintext(a) => {
                data_key(a).done("GenerateDataKeyWithoutPlaintext")
            }
            C::GenerateRandom(a) => Body::new()
                .opt("NumberOfBytes", a.number_of_bytes)
                .done("GenerateRandom"),
            C::EnableKeyRotation(a) => key(&a.key)
                .opt("RotationPeriodInDays", a.rotation_period_in_days)
                .done("EnableKeyRotation"),
            C::DisableKeyRotation(k) => key(k).done("DisableKeyRotation"),
            C::GetKeyRotationStatus(k) => key(k).done("GetKeyRotationStatus"),
            C::RotateKeyOnDemand(k) => key(k).done("RotateKeyOnDemand"),
            C::ListKeyRotations(a) => key(&a.key).paging(&a.paging).done("ListKeyRotations"),
        })
    }

    /// For list commands run without `--limit`/`--marker`: the response
    /// field that holds the items, so every page can be fetched and merged.
    pub fn auto_paged_field(&self) -> Option<&'static str> {
        let (field, paging) = match self {
            OpCommand::ListKeys(p) => ("Keys", p),
            OpCommand::ListAliases(a) => ("Aliases", &a.paging),
            OpCommand::ListResourceTags(a) => ("Tags", &a.paging),
            OpCommand::ListKeyRotations(a) => ("Rotations", &a.paging),
            _ => return None,
        };
        (paging.limit.is_none() && paging.marker.is_none()).then_some(field)
    }

    /// The fields `--output text` prints bare, one per line, for commands
    /// whose point is one value (a blob or a plaintext). Empty: print every
    /// field the way `aws --output text` does.
    pub fn text_fields(&self) -> &'static [&'static str] {
        match self {
            OpCommand::Encrypt(_)
            | OpCommand::ReEncrypt(_)
            | OpCommand::GenerateDataKeyWithoutPlaintext(_) => &["CiphertextBlob"],
            OpCommand::Decrypt(_) | OpCommand::GenerateRandom(_) => &["Plaintext"],
            OpCommand::GenerateDataKey(_) => &["Plaintext", "CiphertextBlob"],
            _ => &[],
        }
    }
}

fn alias_target(a: &AliasTargetArgs) -> Body {
    Body::new()
        .set("AliasName", a.alias_name.clone())
        .set("TargetKeyId", a.target_key_id.clone())
}

fn data_key(a: &GenerateDataKeyArgs) -> Body {
    key(&a.key)
        .opt("KeySpec", a.key_spec.clone())
        .opt("NumberOfBytes", a.number_of_bytes)
        .context("EncryptionContext", &a.encryption_context)
        .grants(&a.grants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        op: OpCommand,
    }

    fn req(args: &[&str]) -> Request {
        let mut argv = vec!["kms"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).unwrap().op.request().unwrap()
    }

    fn usage_error(args: &[&str]) -> clap::Error {
        let mut argv = vec!["kms"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).unwrap_err()
    }

    #[test]
    fn create_key_with_tags() {
        let r = req(&[
            "create-key",
            "--description",
            "vol key",
            "--tags",
            "TagKey=a,TagValue=1",
            "TagKey=b,TagValue=2",
            "--key-usage",
            "ENCRYPT_DECRYPT",
        ]);
        assert_eq!(r.op, "CreateKey");
        assert_eq!(
            r.body,
            json!({
                "Description": "vol key",
                "KeyUsage": "ENCRYPT_DECRYPT",
                "Tags": [{"TagKey":"a","TagValue":"1"},{"TagKey":"b","TagValue":"2"}]
            })
        );
        assert_eq!(req(&["create-key"]).body, json!({}));
    }

    #[test]
    fn key_ops() {
        assert_eq!(
            req(&[
                "describe-key",
                "--key-id",
                "alias/x",
                "--grant-tokens",
                "t1",
                "t2"
            ]),
            Request {
                op: "DescribeKey",
                body: json!({"KeyId":"alias/x","GrantTokens":["t1","t2"]})
            }
        );
        assert_eq!(req(&["enable-key", "--key-id", "k"]).op, "EnableKey");
        assert_eq!(req(&["disable-key", "--key-id", "k"]).op, "DisableKey");
        assert_eq!(
            req(&[
                "update-key-description",
                "--key-id",
                "k",
                "--description",
                "d"
            ])
            .body,
            json!({"KeyId":"k","Description":"d"})
        );
        assert_eq!(
            req(&[
                "schedule-key-deletion",
                "--key-id",
                "k",
                "--pending-window-in-days",
                "7"
            ])
            .body,
            json!({"KeyId":"k","PendingWindowInDays":7})
        );
        assert_eq!(
            req(&["cancel-key-deletion", "--key-id", "k"]).op,
            "CancelKeyDeletion"
        );
    }

    #[test]
    fn list_paging() {
        let r = req(&["list-keys", "--limit", "2", "--marker", "m"]);
        assert_eq!(r.body, json!({"Limit":2,"Marker":"m"}));
        let parse = |a: &[&str]| {
            let mut argv = vec!["kms"];
            argv.extend_from_slice(a);
            T::try_parse_from(argv).unwrap().op
        };
        assert_eq!(parse(&["list-keys"]).auto_paged_field(), Some("Keys"));
        assert_eq!(
            parse(&["list-keys", "--limit", "1"]).auto_paged_field(),
            None
        );
        assert_eq!(
            parse(&["list-aliases", "--key-id", "k"]).auto_paged_field(),
            Some("Aliases")
        );
        assert_eq!(
            parse(&["list-resource-tags", "--key-id", "k"]).auto_paged_field(),
            Some("Tags")
        );
        assert_eq!(
            parse(&["list-key-rotations", "--key-id", "k", "--marker", "x"]).auto_paged_field(),
            None
        );
        assert_eq!(
            parse(&["encrypt", "--key-id", "k", "--plaintext", "x"]).auto_paged_field(),
            None
        );
    }

    #[test]
    fn aliases_and_tags() {
        assert_eq!(
            req(&[
                "create-alias",
                "--alias-name",
                "alias/a",
                "--target-key-id",
                "k"
            ]),
            Request {
                op: "CreateAlias",
                body: json!({"AliasName":"alias/a","TargetKeyId":"k"})
            }
        );
        assert_eq!(
            req(&[
                "update-alias",
                "--alias-name",
                "alias/a",
                "--target-key-id",
                "k2"
            ])
            .op,
            "UpdateAlias"
        );
        assert_eq!(
            req(&["delete-alias", "--alias-name", "alias/a"]).body,
            json!({"AliasName":"alias/a"})
        );
        assert_eq!(req(&["list-aliases"]).body, json!({}));
        assert_eq!(
            req(&[
                "tag-resource",
                "--key-id",
                "k",
                "--tags",
                r#"[{"TagKey":"a","TagValue":"1"}]"#
            ])
            .body,
            json!({"KeyId":"k","Tags":[{"TagKey":"a","TagValue":"1"}]})
        );
        assert_eq!(
            req(&["untag-resource", "--key-id", "k", "--tag-keys", "a", "b"]).body,
            json!({"KeyId":"k","TagKeys":["a","b"]})
        );
        assert_eq!(
            req(&["list-resource-tags", "--key-id", "k"]).body,
            json!({"KeyId":"k"})
        );
    }

    #[test]
    fn crypto_ops() {
        assert_eq!(
            req(&[
                "encrypt",
                "--key-id",
                "alias/v",
                "--plaintext",
                "hi",
                "--encryption-context",
                "b=2,a=1"
            ])
            .body,
            json!({"KeyId":"alias/v","Plaintext":"aGk=","EncryptionContext":{"a":"1","b":"2"}})
        );
        let dir = tempfile::tempdir().unwrap();
        let ct = dir.path().join("ct");
        std::fs::write(&ct, [1u8, 2, 3]).unwrap();
        let ct_arg = format!("fileb://{}", ct.display());
        assert_eq!(
            req(&[
                "decrypt",
                "--ciphertext-blob",
                &ct_arg,
                "--encryption-context",
                r#"{"p":"/x"}"#
            ])
            .body,
            json!({"CiphertextBlob":"AQID","EncryptionContext":{"p":"/x"}})
        );
        assert_eq!(
            req(&[
                "re-encrypt",
                "--ciphertext-blob",
                &ct_arg,
                "--source-encryption-context",
                "p=/a",
                "--destination-encryption-context",
                "p=/b",
                "--destination-key-id",
                "k2",
                "--source-key-id",
                "k1"
            ])
            .body,
            json!({
                "CiphertextBlob":"AQID",
                "SourceEncryptionContext":{"p":"/a"},
                "SourceKeyId":"k1",
                "DestinationKeyId":"k2",
                "DestinationEncryptionContext":{"p":"/b"}
            })
        );
        assert_eq!(
            req(&[
                "generate-data-key",
                "--key-id",
                "k",
                "--key-spec",
                "AES_256"
            ])
            .body,
            json!({"KeyId":"k","KeySpec":"AES_256"})
        );
        let r = req(&[
            "generate-data-key-without-plaintext",
            "--key-id",
            "k",
            "--number-of-bytes",
            "64",
        ]);
        assert_eq!(r.op, "GenerateDataKeyWithoutPlaintext");
        assert_eq!(r.body, json!({"KeyId":"k","NumberOfBytes":64}));
        assert_eq!(
            req(&["generate-random", "--number-of-bytes", "16"]).body,
            json!({"NumberOfBytes":16})
        );
    }

    #[test]
    fn rotation_ops() {
        assert_eq!(
            req(&[
                "enable-key-rotation",
                "--key-id",
                "k",
                "--rotation-period-in-days",
                "90"
            ])
            .body,
            json!({"KeyId":"k","RotationPeriodInDays":90})
        );
        assert_eq!(
            req(&["disable-key-rotation", "--key-id", "k"]).op,
            "DisableKeyRotation"
        );
        assert_eq!(
            req(&["get-key-rotation-status", "--key-id", "k"]).op,
            "GetKeyRotationStatus"
        );
        assert_eq!(
            req(&["rotate-key-on-demand", "--key-id", "k"]).op,
            "RotateKeyOnDemand"
        );
        assert_eq!(
            req(&["list-key-rotations", "--key-id", "k", "--limit", "5"]).body,
            json!({"KeyId":"k","Limit":5})
        );
    }

    #[test]
    fn usage_mistakes_are_clap_errors() {
        use clap::error::ErrorKind;
        assert_eq!(
            usage_error(&["describe-key"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            usage_error(&[
                "encrypt",
                "--key-id",
                "k",
                "--plaintext",
                "x",
                "--encryption-context",
                "bad"
            ])
            .kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            usage_error(&["list-keys", "--limit", "-1"]).kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            usage_error(&["no-such-command"]).kind(),
            ErrorKind::InvalidSubcommand
        );
        assert_eq!(
            usage_error(&["create-key", "--tags", "x"]).kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn text_fields() {
        let op = T::try_parse_from(["kms", "generate-data-key", "--key-id", "k"])
            .unwrap()
            .op;
        assert_eq!(op.text_fields(), &["Plaintext", "CiphertextBlob"]);
    }
}
