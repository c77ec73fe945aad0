//! `kmsfs kms get-parameters-for-import|import-key-material|
//! delete-imported-key-material|get-key-last-usage`: imported key material
//! (keys made with `create-key --origin EXTERNAL`) and key last usage, with
//! `aws kms` option names; binary inputs as `fileb://FILE`.

use super::Request;
use super::params::{BlobArg, parse_blob};
use crate::exit::CliError;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A timestamp as `aws` takes it: epoch seconds or an RFC 3339 time
/// (`2027-01-31T12:00:00Z`).
fn timestamp(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            format!("{s:?} is not a time: give epoch seconds or RFC 3339 (2027-01-31T12:00:00Z)")
        })
}

#[derive(Debug, Clone, Args)]
pub struct GetParametersForImportArgs {
    /// Key id or key ARN of a key made with --origin EXTERNAL
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1 or
    /// RSA_AES_KEY_WRAP_SHA_256
    #[arg(long, value_name = "ALGORITHM")]
    pub wrapping_algorithm: String,
    /// RSA_2048, RSA_3072 or RSA_4096
    #[arg(long, value_name = "SPEC")]
    pub wrapping_key_spec: String,
}

#[derive(Debug, Clone, Args)]
pub struct ImportKeyMaterialArgs {
    /// Key id or key ARN (the one the import token was made for)
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// The ImportToken of get-parameters-for-import: fileb://FILE
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub import_token: BlobArg,
    /// The key material wrapped under the PublicKey: fileb://FILE
    #[arg(long, value_parser = parse_blob, value_name = "BLOB")]
    pub encrypted_key_material: BlobArg,
    /// When the material expires: epoch seconds or RFC 3339 (at most 365
    /// days ahead; needed with KEY_MATERIAL_EXPIRES)
    #[arg(long, value_parser = timestamp, value_name = "TIME")]
    pub valid_to: Option<i64>,
    /// KEY_MATERIAL_EXPIRES (the default) or KEY_MATERIAL_DOES_NOT_EXPIRE
    #[arg(long, value_name = "MODEL")]
    pub expiration_model: Option<String>,
    /// NEW_KEY_MATERIAL or EXISTING_KEY_MATERIAL
    #[arg(long, value_name = "TYPE")]
    pub import_type: Option<String>,
    /// The KeyMaterialId of an earlier import of this material
    #[arg(long, value_name = "ID")]
    pub key_material_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteImportedKeyMaterialArgs {
    /// Key id or key ARN
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
    /// The KeyMaterialId to delete (default: the key's material)
    #[arg(long, value_name = "ID")]
    pub key_material_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct GetKeyLastUsageArgs {
    /// Key id or key ARN (not an alias, as in AWS)
    #[arg(long, value_name = "KEY")]
    pub key_id: String,
}

/// Imported key material and key last usage, named as in `aws kms`.
#[derive(Debug, Clone, Subcommand)]
pub enum ImportCommand {
    /// Get an RSA wrapping public key and an import token (valid 24 hours)
    /// for importing key material into an EXTERNAL key
    GetParametersForImport(GetParametersForImportArgs),
    /// Import key material wrapped under the wrapping public key
    ImportKeyMaterial(ImportKeyMaterialArgs),
    /// Delete a key's imported key material (the key turns PendingImport)
    DeleteImportedKeyMaterial(DeleteImportedKeyMaterialArgs),
    /// When, and by which cryptographic operation, a key was last used
    GetKeyLastUsage(GetKeyLastUsageArgs),
}

fn put(m: &mut Map<String, Value>, name: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(name.into(), v);
    }
}

impl ImportCommand {
    /// The AWS JSON request (reads `fileb://` inputs).
    pub fn request(&self) -> Result<Request, CliError> {
        use ImportCommand as C;
        Ok(match self {
            C::GetParametersForImport(a) => Request {
                op: "GetParametersForImport",
                body: json!({
                    "KeyId": a.key_id,
                    "WrappingAlgorithm": a.wrapping_algorithm,
                    "WrappingKeySpec": a.wrapping_key_spec,
                }),
            },
            C::ImportKeyMaterial(a) => {
                let mut m = Map::new();
                m.insert("KeyId".into(), json!(a.key_id));
                m.insert(
                    "ImportToken".into(),
                    json!(a.import_token.read_base64("--import-token")?.as_str()),
                );
                m.insert(
                    "EncryptedKeyMaterial".into(),
                    json!(
                        a.encrypted_key_material
                            .read_base64("--encrypted-key-material")?
                            .as_str()
                    ),
                );
                put(&mut m, "ValidTo", a.valid_to.map(Value::from));
                put(
                    &mut m,
                    "ExpirationModel",
                    a.expiration_model.clone().map(Value::from),
                );
                put(&mut m, "ImportType", a.import_type.clone().map(Value::from));
                put(
                    &mut m,
                    "KeyMaterialId",
                    a.key_material_id.clone().map(Value::from),
                );
                Request {
                    op: "ImportKeyMaterial",
                    body: Value::Object(m),
                }
            }
            C::DeleteImportedKeyMaterial(a) => {
                let mut m = Map::new();
                m.insert("KeyId".into(), json!(a.key_id));
                put(
                    &mut m,
                    "KeyMaterialId",
                    a.key_material_id.clone().map(Value::from),
                );
                Request {
                    op: "DeleteImportedKeyMaterial",
                    body: Value::Object(m),
                }
            }
            C::GetKeyLastUsage(a) => Request {
                op: "GetKeyLastUsage",
                body: json!({"KeyId": a.key_id}),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: ImportCommand,
    }

    fn req(args: &[&str]) -> Request {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().c.request().unwrap()
    }

    #[test]
    fn requests_use_aws_member_names() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b");
        std::fs::write(&f, [1u8, 2, 3]).unwrap();
        let blob = format!("fileb://{}", f.display());
        assert_eq!(
            req(&[
                "get-parameters-for-import",
                "--key-id",
                "k",
                "--wrapping-algorithm",
                "RSAES_OAEP_SHA_256",
                "--wrapping-key-spec",
                "RSA_2048"
            ]),
            Request {
                op: "GetParametersForImport",
                body: json!({"KeyId": "k", "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                             "WrappingKeySpec": "RSA_2048"}),
            }
        );
        assert_eq!(
            req(&[
                "import-key-material",
                "--key-id",
                "k",
                "--import-token",
                &blob,
                "--encrypted-key-material",
                &blob,
                "--valid-to",
                "2027-01-31T12:00:00Z",
                "--expiration-model",
                "KEY_MATERIAL_EXPIRES"
            ]),
            Request {
                op: "ImportKeyMaterial",
                body: json!({"KeyId": "k", "ImportToken": "AQID", "EncryptedKeyMaterial": "AQID",
                             "ValidTo": 1_801_396_800, "ExpirationModel": "KEY_MATERIAL_EXPIRES"}),
            }
        );
        assert_eq!(
            req(&[
                "import-key-material",
                "--key-id",
                "k",
                "--import-token",
                &blob,
                "--encrypted-key-material",
                &blob,
                "--valid-to",
                "1900000000"
            ])
            .body["ValidTo"],
            1_900_000_000
        );
        assert_eq!(
            req(&["delete-imported-key-material", "--key-id", "k"]),
            Request {
                op: "DeleteImportedKeyMaterial",
                body: json!({"KeyId": "k"}),
            }
        );
        assert_eq!(
            req(&["get-key-last-usage", "--key-id", "k"]).body,
            json!({"KeyId": "k"})
        );
        let bad = T::try_parse_from([
            "t",
            "import-key-material",
            "--key-id",
            "k",
            "--import-token",
            "x",
            "--encrypted-key-material",
            "y",
            "--valid-to",
            "tomorrow",
        ]);
        assert!(bad.is_err());
    }
}
