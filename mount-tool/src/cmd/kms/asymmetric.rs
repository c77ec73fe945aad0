//! `kmsfs kms get-public-key|sign|verify|generate-mac|verify-mac|
//! derive-shared-secret|generate-data-key-pair[-without-plaintext]`: the
//! asymmetric, HMAC and key agreement operations with `aws kms` option
//! names (binary inputs as `fileb://FILE`, or the text itself), sent to the
//! engine as AWS JSON requests through the same path as the other `kms` ops.

use super::Request;
use super::params::{BlobArg, context_json, parse_blob, parse_context, parse_string_list};
use crate::exit::CliError;
use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

fn context_arg(s: &str) -> Result<BTreeMap<String, String>, String> {
    parse_context(s)
}

fn tokens_arg(s: &str) -> Result<Vec<String>, String> {
    parse_string_list(s)
}

#[derive(Debug, Clone, Args)]
pub struct KeyTokens {
    /// Key id, key ARN, alias name (alias/NAME) or alias ARN
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// Grant tokens (passed through)
    #[arg(long, num_args = 1.., value_parser = tokens_arg, value_name = "TOKEN")]
    pub grant_tokens: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub key: KeyTokens,
    /// The message (up to 4096 bytes) or its digest: fileb://FILE or text
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub message: BlobArg,
    /// RAW (the default) or DIGEST
    #[arg(long, value_name = "TYPE")]
    pub message_type: Option<String>,
    /// RSASSA_PSS_SHA_256 ... ECDSA_SHA_256 ... ED25519_SHA_512, ML_DSA_SHAKE_256
    #[arg(long, value_name = "ALGORITHM")]
    pub signing_algorithm: String,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub sign: SignArgs,
    /// The signature: fileb://FILE
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub signature: BlobArg,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateMacArgs {
    #[command(flatten)]
    pub key: KeyTokens,
    /// The message (up to 4096 bytes): fileb://FILE or text
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub message: BlobArg,
    /// HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384 or HMAC_SHA_512 (the key's)
    #[arg(long, value_name = "ALGORITHM")]
    pub mac_algorithm: String,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyMacArgs {
    #[command(flatten)]
    pub mac: GenerateMacArgs,
    /// The MAC to verify: fileb://FILE
    #[arg(long = "mac", value_parser = parse_blob, value_name = "BLOB")]
    pub mac_value: BlobArg,
}

#[derive(Debug, Clone, Args)]
pub struct DeriveSharedSecretArgs {
    #[command(flatten)]
    pub key: KeyTokens,
    /// ECDH
    #[arg(long, value_name = "ALGORITHM")]
    pub key_agreement_algorithm: String,
    /// The peer's public key, DER SubjectPublicKeyInfo: fileb://FILE
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub public_key: BlobArg,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateDataKeyPairArgs {
    #[command(flatten)]
    pub key: KeyTokens,
    /// RSA_2048/3072/4096, ECC_NIST_P256/P384/P521, ECC_SECG_P256K1 or
    /// ECC_NIST_EDWARDS25519
    #[arg(long, value_name = "SPEC")]
    pub key_pair_spec: String,
    /// Encryption context: k=v,k2=v2 or a JSON object
    #[arg(long, value_parser = context_arg, value_name = "CONTEXT")]
    pub encryption_context: Option<BTreeMap<String, String>>,
}

/// The asymmetric, HMAC and key agreement operations, named as in `aws kms`.
#[derive(Debug, Clone, Subcommand)]
pub enum AsymmetricCommand {
    /// Show an asymmetric key's public key (DER SubjectPublicKeyInfo) and algorithms
    GetPublicKey(KeyTokens),
    /// Sign a message or digest with an asymmetric SIGN_VERIFY key
    Sign(SignArgs),
    /// Verify a signature (an invalid one exits with KMSInvalidSignatureException)
    Verify(VerifyArgs),
    /// Compute the HMAC of a message with an HMAC key
    GenerateMac(GenerateMacArgs),
    /// Verify an HMAC (an invalid one exits with KMSInvalidMacException)
    VerifyMac(VerifyMacArgs),
    /// ECDH between a KEY_AGREEMENT key and a peer's public key
    DeriveSharedSecret(DeriveSharedSecretArgs),
    /// Make a key pair; its private key in plaintext and encrypted under a key
    GenerateDataKeyPair(GenerateDataKeyPairArgs),
    /// Make a key pair; its private key only encrypted under a key
    GenerateDataKeyPairWithoutPlaintext(GenerateDataKeyPairArgs),
}

/// A JSON object under construction.
struct Body(Map<String, Value>);

impl Body {
    fn key(k: &KeyTokens) -> Body {
        let mut m = Map::new();
        m.insert("KeyId".into(), Value::String(k.key_id.clone()));
        let tokens: Vec<Value> = k
            .grant_tokens
            .iter()
            .flatten()
            .cloned()
            .map(Value::String)
            .collect();
        if !tokens.is_empty() {
            m.insert("GrantTokens".into(), Value::Array(tokens));
        }
        Body(m)
    }
    fn set(mut self, name: &str, v: impl Into<Value>) -> Body {
        self.0.insert(name.into(), v.into());
        self
    }
    fn opt(self, name: &str, v: Option<impl Into<Value>>) -> Body {
        match v {
            Some(v) => self.set(name, v),
            None => self,
        }
    }
    fn blob(self, name: &str, b: &BlobArg, option: &str) -> Result<Body, CliError> {
        Ok(self.set(name, b.read_base64(option)?.as_str()))
    }
    fn done(self, op: &'static str) -> Request {
        Request {
            op,
            body: Value::Object(self.0),
        }
    }
}

fn sign_body(a: &SignArgs) -> Result<Body, CliError> {
    Ok(Body::key(&a.key)
        .blob("Message", &a.message, "--message")?
        .opt("MessageType", a.message_type.clone())
        .set("SigningAlgorithm", a.signing_algorithm.clone()))
}

fn mac_body(a: &GenerateMacArgs) -> Result<Body, CliError> {
    Ok(Body::key(&a.key)
        .blob("Message", &a.message, "--message")?
        .set("MacAlgorithm", a.mac_algorithm.clone()))
}

fn pair_body(a: &GenerateDataKeyPairArgs) -> Body {
    Body::key(&a.key)
        .set("KeyPairSpec", a.key_pair_spec.clone())
        .opt(
            "EncryptionContext",
            a.encryption_context.as_ref().map(context_json),
        )
}

impl AsymmetricCommand {
    /// The AWS JSON request (reads `fileb://` inputs).
    pub fn request(&self) -> Result<Request, CliError> {
        use AsymmetricCommand as C;
        Ok(match self {
            C::GetPublicKey(k) => Body::key(k).done("GetPublicKey"),
            C::Sign(a) => sign_body(a)?.done("Sign"),
            C::Verify(a) => sign_body(&a.sign)?
                .blob("Signature", &a.signature, "--signature")?
                .done("Verify"),
            C::GenerateMac(a) => mac_body(a)?.done("GenerateMac"),
            C::VerifyMac(a) => mac_body(&a.mac)?
                .blob("Mac", &a.mac_value, "--mac")?
                .done("VerifyMac"),
            C::DeriveSharedSecret(a) => Body::key(&a.key)
                .set("KeyAgreementAlgorithm", a.key_agreement_algorithm.clone())
                .blob("PublicKey", &a.public_key, "--public-key")?
                .done("DeriveSharedSecret"),
            C::GenerateDataKeyPair(a) => pair_body(a).done("GenerateDataKeyPair"),
            C::GenerateDataKeyPairWithoutPlaintext(a) => {
                pair_body(a).done("GenerateDataKeyPairWithoutPlaintext")
            }
        })
    }

    /// The fields `--output text` prints bare (see `OpCommand::text_fields`).
    pub fn text_fields(&self) -> &'static [&'static str] {
        use AsymmetricCommand as C;
        match self {
            C::GetPublicKey(_) => &["PublicKey"],
            C::Sign(_) => &["Signature"],
            C::GenerateMac(_) => &["Mac"],
            C::DeriveSharedSecret(_) => &["SharedSecret"],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: AsymmetricCommand,
    }

    fn req(args: &[&str]) -> Request {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().c.request().unwrap()
    }

    #[test]
    fn requests_use_aws_member_names() {
        let dir = tempfile::tempdir().unwrap();
        let sig = dir.path().join("sig");
        std::fs::write(&sig, [1u8, 2, 3]).unwrap();
        let sig_arg = format!("fileb://{}", sig.display());
        assert_eq!(
            req(&[
                "sign",
                "--key-id",
                "alias/s",
                "--message",
                "hi",
                "--message-type",
                "RAW",
                "--signing-algorithm",
                "ECDSA_SHA_256",
                "--grant-tokens",
                "t1"
            ]),
            Request {
                op: "Sign",
                body: json!({"KeyId": "alias/s", "Message": "aGk=", "MessageType": "RAW",
                             "SigningAlgorithm": "ECDSA_SHA_256", "GrantTokens": ["t1"]}),
            }
        );
        assert_eq!(
            req(&[
                "verify",
                "--key-id",
                "k",
                "--message",
                "hi",
                "--signature",
                &sig_arg,
                "--signing-algorithm",
                "ED25519_SHA_512"
            ])
            .body,
            json!({"KeyId": "k", "Message": "aGk=", "Signature": "AQID",
                   "SigningAlgorithm": "ED25519_SHA_512"})
        );
        assert_eq!(
            req(&[
                "verify-mac",
                "--key-id",
                "k",
                "--message",
                "hi",
                "--mac",
                &sig_arg,
                "--mac-algorithm",
                "HMAC_SHA_256"
            ]),
            Request {
                op: "VerifyMac",
                body: json!({"KeyId": "k", "Message": "aGk=", "Mac": "AQID",
                             "MacAlgorithm": "HMAC_SHA_256"}),
            }
        );
        assert_eq!(
            req(&[
                "derive-shared-secret",
                "--key-id",
                "k",
                "--key-agreement-algorithm",
                "ECDH",
                "--public-key",
                &sig_arg
            ])
            .body,
            json!({"KeyId": "k", "KeyAgreementAlgorithm": "ECDH", "PublicKey": "AQID"})
        );
        assert_eq!(
            req(&[
                "generate-data-key-pair-without-plaintext",
                "--key-id",
                "k",
                "--key-pair-spec",
                "ECC_NIST_P256",
                "--encryption-context",
                "a=1"
            ]),
            Request {
                op: "GenerateDataKeyPairWithoutPlaintext",
                body: json!({"KeyId": "k", "KeyPairSpec": "ECC_NIST_P256",
                             "EncryptionContext": {"a": "1"}}),
            }
        );
        assert_eq!(req(&["get-public-key", "--key-id", "k"]).op, "GetPublicKey");
    }

    #[test]
    fn a_missing_fileb_input_is_an_error_not_a_request() {
        let mut v = vec![
            "t",
            "verify",
            "--key-id",
            "k",
            "--message",
            "m",
            "--signing-algorithm",
            "ECDSA_SHA_256",
            "--signature",
            "fileb:///nonexistent/kmsfs-sig",
        ];
        let parsed = T::try_parse_from(v.drain(..));
        let err = parsed.map(|t| t.c.request());
        assert!(matches!(err, Ok(Err(_)) | Err(_)));
    }
}
