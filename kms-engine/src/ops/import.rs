//! Imported key material (AWS's "bring your own key"): GetParametersForImport,
//! ImportKeyMaterial and DeleteImportedKeyMaterial for keys made with
//! Origin EXTERNAL.
//!
//! The engine keeps no state between GetParametersForImport and
//! ImportKeyMaterial: the import token carries the one-time RSA wrapping
//! key's private half, the key id, the wrapping algorithm and the expiry,
//! sealed with AES-256-GCM under a key derived from the store key, with the
//! key id as associated data. A token is therefore opaque to its holder,
//! cannot be altered or moved to another key, and dies with the store key.
//!
//! Token layout: `KIT1` (4 bytes), nonce (12), sealed postcard body + tag
//! (16); associated data `KIT1` + the key id's 36 characters.

use crate::asym::Loaded;
use crate::engine::{Algorithms, Engine};
use crate::ids::KeyId;
use crate::key::{
    Expiration, ImportRecord, KEY_MATERIAL_DOES_NOT_EXPIRE, KEY_MATERIAL_EXPIRES, KeyMaterial,
    KeyRecord, KeyState, KeyVersion, Material, SecretDer,
};
use crate::keyspec::{KeyOrigin, KeySpec, RsaEncryption, WrappingAlgorithm, wrapping_key_spec};
use crate::state::remove_imported_material;
use crate::wire::b64;
use crate::{KmsError, Principal};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

/// How long a public key and import token are valid (AWS: 24 hours).
pub const PARAMETERS_VALIDITY_SECS: i64 = 24 * 3600;
/// Latest ValidTo ImportKeyMaterial accepts (AWS: 365 days ahead).
pub const MAX_VALID_TO_SECS: i64 = 365 * 86_400;
/// Largest ImportToken and EncryptedKeyMaterial (AWS's CiphertextType).
pub const MAX_BLOB: usize = 6144;

const TOKEN_MAGIC: &[u8; 4] = b"KIT1";
const TOKEN_KEY_LABEL: &[u8] = b"kmsfs-engine import token key v1";
const MATERIAL_ID_LABEL: &[u8] = b"kmsfs key material id v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportRequest {
    pub key_id: String,
    pub wrapping_algorithm: String,
    pub wrapping_key_spec: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportResponse {
    /// The key ARN.
    pub key_id: String,
    #[serde(with = "b64")]
    pub import_token: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the RSA wrapping key.
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    /// Unix seconds.
    pub parameters_valid_to: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportKeyMaterialRequest {
    pub key_id: String,
    #[serde(with = "b64")]
    pub import_token: Vec<u8>,
    /// Wrapped under the token's public key: never logged.
    #[serde(with = "b64")]
    pub encrypted_key_material: Vec<u8>,
    /// Unix seconds (a JSON number; fractions are dropped).
    #[serde(default, deserialize_with = "epoch_seconds")]
    pub valid_to: Option<i64>,
    #[serde(default)]
    pub expiration_model: Option<String>,
    #[serde(default)]
    pub import_type: Option<String>,
    #[serde(default)]
    pub key_material_description: Option<String>,
    #[serde(default)]
    pub key_material_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportKeyMaterialResponse {
    /// The key ARN.
    pub key_id: String,
    pub key_material_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteImportedKeyMaterialRequest {
    pub key_id: String,
    #[serde(default)]
    pub key_material_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteImportedKeyMaterialResponse {
    /// The key ARN.
    pub key_id: String,
    pub key_material_id: String,
}

/// An AWS timestamp: epoch seconds as a JSON number (botocore may send a
/// fraction).
fn epoch_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(f) if f.is_finite() && f.abs() < 1e15 => {
            #[allow(clippy::cast_possible_truncation)] // bounded just above
            Ok(Some(f.floor() as i64))
        }
        Some(_) => Err(serde::de::Error::custom("ValidTo is not a timestamp")),
    }
}

/// What an import token holds, sealed.
#[derive(Serialize, Deserialize)]
struct TokenBody {
    key_id: KeyId,
    wrapping_key_spec: KeySpec,
    algorithm: WrappingAlgorithm,
    valid_to: i64,
    /// The wrapping key's PKCS#8 private key.
    private_key: SecretDer,
}

fn invalid_token() -> KmsError {
    KmsError::InvalidImportToken(
        "The import token is invalid or belongs to another KMS key.".into(),
    )
}

fn token_cipher(engine: &Engine) -> Result<LessSafeKey, KmsError> {
    let key = engine.derived_key(TOKEN_KEY_LABEL);
    UnboundKey::new(&AES_256_GCM, &key[..])
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::Internal("cannot build the import token key".into()))
}

fn token_aad(id: KeyId) -> Vec<u8> {
    let mut aad = TOKEN_MAGIC.to_vec();
    aad.extend_from_slice(id.to_string().as_bytes());
    aad
}

fn seal_token(engine: &Engine, body: &TokenBody) -> Result<Vec<u8>, KmsError> {
    let plain = Zeroizing::new(
        postcard::to_allocvec(body)
            .map_err(|e| KmsError::Internal(format!("cannot encode an import token: {e}")))?,
    );
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| KmsError::Internal("random source failed".into()))?;
    let mut sealed = plain.to_vec();
    token_cipher(engine)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(token_aad(body.key_id).as_slice()),
            &mut sealed,
        )
        .map_err(|_| KmsError::Internal("sealing an import token failed".into()))?;
    let mut out = TOKEN_MAGIC.to_vec();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a token for key `id`: InvalidImportTokenException when it was not
/// made by this engine for this key, ExpiredImportTokenException after its
/// ParametersValidTo.
fn open_token(engine: &Engine, id: KeyId, token: &[u8], now: i64) -> Result<TokenBody, KmsError> {
    if token.len() < TOKEN_MAGIC.len() + NONCE_LEN + 16 || &token[..4] != TOKEN_MAGIC {
        return Err(invalid_token());
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&token[4..4 + NONCE_LEN]);
    let mut buf = Zeroizing::new(token[4 + NONCE_LEN..].to_vec());
    let plain = token_cipher(engine)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(token_aad(id).as_slice()),
            buf.as_mut_slice(),
        )
        .map_err(|_| invalid_token())?;
    let body: TokenBody = postcard::from_bytes(plain).map_err(|_| invalid_token())?;
    if body.key_id != id {
        return Err(invalid_token());
    }
    if body.valid_to < now {
        return Err(KmsError::ExpiredImportToken(
            "The import token is expired. Use GetParametersForImport to get a new import token \
             and public key."
                .into(),
        ));
    }
    Ok(body)
}

fn bad_wrapping() -> KmsError {
    KmsError::InvalidCiphertext(
        "The key material could not be decrypted with the wrapping key and algorithm of the \
         import token."
            .into(),
    )
}

/// Unwraps `wrapped` with the token's private key: RSA-OAEP for RSAES_*;
/// for RSA_AES_KEY_WRAP_* the first modulus-length bytes are the OAEP-
/// encrypted AES-256 key and the rest the material under AES key wrap with
/// padding. Any failure is InvalidCiphertextException.
fn unwrap_material(body: &TokenBody, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let private = PrivateDecryptingKey::from_pkcs8(body.private_key.bytes())
        .map_err(|_| KmsError::Internal("the import token's wrapping key does not parse".into()))?;
    let key = OaepPrivateDecryptingKey::new(private)
        .map_err(|_| KmsError::Internal("the import token's wrapping key".into()))?;
    let oaep = match body.algorithm.oaep() {
        RsaEncryption::OaepSha1 => &OAEP_SHA1_MGF1SHA1,
        RsaEncryption::OaepSha256 => &OAEP_SHA256_MGF1SHA256,
    };
    let k = key.key_size_bytes();
    let (rsa_part, kwp_part) = if body.algorithm.is_key_wrap() {
        if wrapped.len() <= k {
            return Err(bad_wrapping());
        }
        wrapped.split_at(k)
    } else {
        (wrapped, &[][..])
    };
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let n = key
        .decrypt(oaep, rsa_part, out.as_mut_slice(), None)
        .map_err(|_| bad_wrapping())?
        .len();
    out.truncate(n);
    if !body.algorithm.is_key_wrap() {
        return Ok(out);
    }
    if out.len() != 32 {
        return Err(bad_wrapping());
    }
    let kek = KeyEncryptionKey::new(&AES_256, &out).map_err(|_| bad_wrapping())?;
    let mut material = Zeroizing::new(vec![0u8; kwp_part.len()]);
    let m = kek
        .unwrap_with_padding(kwp_part, material.as_mut_slice())
        .map_err(|_| bad_wrapping())?
        .len();
    material.truncate(m);
    Ok(material)
}

fn incorrect(what: String) -> KmsError {
    KmsError::IncorrectKeyMaterial(what)
}

/// The key material of an import for a key of `k`'s spec, checked: 256
/// bits for SYMMETRIC_DEFAULT, the spec's length up to the hash's block
/// size for HMAC, a PKCS#8 private key of the spec's size or curve for
/// asymmetric keys; anything else IncorrectKeyMaterialException.
fn material_for(k: &KeyRecord, bytes: &[u8]) -> Result<Material, KmsError> {
    let spec = k.spec;
    if spec.is_symmetric() {
        if bytes.len() != 32 {
            return Err(incorrect(format!(
                "key material for a SYMMETRIC_DEFAULT key must be 256 bits, got {} bits",
                bytes.len() * 8
            )));
        }
        let mut m = Zeroizing::new([0u8; 32]);
        m.copy_from_slice(bytes);
        return Ok(Material::Symmetric(KeyMaterial(m)));
    }
    if let Some(min) = spec.hmac_key_len() {
        let max = if min <= 32 { 64 } else { 128 };
        if !(min..=max).contains(&bytes.len()) {
            return Err(incorrect(format!(
                "key material for an {} key must be {min} to {max} bytes, got {}",
                spec.as_str(),
                bytes.len()
            )));
        }
        return Ok(Material::Hmac(SecretDer(Zeroizing::new(bytes.to_vec()))));
    }
    let m = Material::Private(SecretDer(Zeroizing::new(bytes.to_vec())));
    let loaded = Loaded::load(spec, k.usage, &m).map_err(|_| {
        incorrect(format!(
            "key material for an {} key must be a PKCS#8 DER private key of that key spec",
            spec.as_str()
        ))
    })?;
    if let Some(len) = spec.rsa_modulus_len() {
        let size = PublicEncryptingKey::from_der(&loaded.public)
            .map(|p| p.key_size_bytes())
            .map_err(|_| KmsError::Internal("RSA public key".into()))?;
        if size != len {
            return Err(incorrect(format!(
                "key material for an {} key must be an RSA key of {} bits, got {} bits",
                spec.as_str(),
                len * 8,
                size * 8
            )));
        }
    }
    Ok(m)
}

fn material_bytes(m: &Material) -> &[u8] {
    match m {
        Material::Symmetric(k) => k.bytes(),
        Material::Private(p) | Material::Hmac(p) => p.bytes(),
    }
}

/// The id of material `m` imported into key `id`: HMAC-SHA256 keyed by the
/// material over a label and the key id. It tells the same material from
/// another without revealing it (the material is the key of the MAC).
pub fn material_id(id: KeyId, m: &Material) -> [u8; 32] {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, material_bytes(m));
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&k);
    ctx.update(MATERIAL_ID_LABEL);
    ctx.update(id.to_string().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// UnsupportedOperationException for a key whose origin is not EXTERNAL.
fn require_external(k: &KeyRecord, op: &str) -> Result<(), KmsError> {
    if k.origin == KeyOrigin::External {
        return Ok(());
    }
    Err(KmsError::UnsupportedOperation(format!(
        "{} has origin {}: {op} works only on keys with origin EXTERNAL.",
        k.arn(),
        k.origin.as_str()
    )))
}

fn refuse_pending_deletion(k: &KeyRecord) -> Result<(), KmsError> {
    if k.state == KeyState::PendingDeletion {
        return Err(KmsError::InvalidState(format!(
            "{} is pending deletion.",
            k.arn()
        )));
    }
    Ok(())
}

/// The expiration an ImportKeyMaterial request asks for, checked as AWS
/// does (ValidationException): KEY_MATERIAL_EXPIRES (the default) needs a
/// ValidTo in the future and at most 365 days ahead; DOES_NOT_EXPIRE takes
/// none.
fn expiration_of(req: &ImportKeyMaterialRequest, now: i64) -> Result<Expiration, KmsError> {
    match req.expiration_model.as_deref() {
        None | Some(KEY_MATERIAL_EXPIRES) => {
            let Some(t) = req.valid_to else {
                return Err(KmsError::Validation(
                    "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES".into(),
                ));
            };
            if t <= now {
                return Err(KmsError::Validation(
                    "ValidTo must be a time in the future".into(),
                ));
            }
            if t > now + MAX_VALID_TO_SECS {
                return Err(KmsError::Validation(
                    "ValidTo must be at most 365 days from now".into(),
                ));
            }
            Ok(Expiration::At(t))
        }
        Some(KEY_MATERIAL_DOES_NOT_EXPIRE) => {
            if req.valid_to.is_some() {
                return Err(KmsError::Validation(
                    "ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
                        .into(),
                ));
            }
            Ok(Expiration::Never)
        }
        Some(other) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'expirationModel' failed to \
             satisfy constraint: Member must satisfy enum value set: [KEY_MATERIAL_EXPIRES, \
             KEY_MATERIAL_DOES_NOT_EXPIRE]"
        ))),
    }
}

/// ImportType and the 2025 multi-material parameters: this engine keeps one
/// material per key, so NEW_KEY_MATERIAL on a key that already had one
/// (AWS's on-demand rotation of imported keys) and KeyMaterialDescription
/// are UnsupportedOperationException.
fn check_import_type(
    req: &ImportKeyMaterialRequest,
    k: &KeyRecord,
    id: &[u8; 32],
) -> Result<(), KmsError> {
    if req.key_material_description.is_some() {
        return Err(KmsError::UnsupportedOperation(
            "KeyMaterialDescription is not supported by this engine".into(),
        ));
    }
    let known = k.import.as_ref().map(|i| i.material_id);
    match req.import_type.as_deref() {
        None => {}
        Some("NEW_KEY_MATERIAL") => {
            if req.key_material_id.is_some() {
                return Err(KmsError::Validation(
                    "KeyMaterialId cannot be specified with ImportType NEW_KEY_MATERIAL".into(),
                ));
            }
            if known.is_some() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} already has imported key material; importing new key material \
                     (on-demand rotation of imported keys) is not supported by this engine",
                    k.arn()
                )));
            }
        }
        Some("EXISTING_KEY_MATERIAL") if known.is_none() => {
            return Err(incorrect(format!(
                "{} has no key material to re-import; use NEW_KEY_MATERIAL",
                k.arn()
            )));
        }
        Some("EXISTING_KEY_MATERIAL") => {}
        Some(other) => {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'importType' failed to \
                 satisfy constraint: Member must satisfy enum value set: [NEW_KEY_MATERIAL, \
                 EXISTING_KEY_MATERIAL]"
            )));
        }
    }
    if let Some(want) = req.key_material_id.as_deref()
        && want != hex(id)
    {
        return Err(incorrect(
            "the key material does not match the KeyMaterialId in the request".into(),
        ));
    }
    if let Some(known) = known
        && known != *id
    {
        return Err(incorrect(format!(
            "the key material is not the key material previously imported into {}",
            k.arn()
        )));
    }
    Ok(())
}

impl Engine {
    /// GetParametersForImport: a fresh RSA wrapping key of the requested
    /// size and an import token for it, both valid 24 hours.
    pub fn get_parameters_for_import(
        &self,
        caller: &Principal,
        req: GetParametersForImportRequest,
    ) -> Result<GetParametersForImportResponse, KmsError> {
        self.audited(caller, "GetParametersForImport", |a| {
            a.request_parameters = Some(serde_json::json!({
                "wrappingAlgorithm": req.wrapping_algorithm,
                "wrappingKeySpec": req.wrapping_key_spec,
            }));
            let algorithm = WrappingAlgorithm::parse(&req.wrapping_algorithm)?;
            let wrapping_spec = wrapping_key_spec(&req.wrapping_key_spec)?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            let algorithms = Algorithms {
                wrapping_algorithm: Some(algorithm.as_str()),
                wrapping_key_spec: Some(wrapping_spec.as_str()),
                ..Algorithms::default()
            };
            self.authorize_with(
                caller,
                "kms:GetParametersForImport",
                k,
                None,
                Some(&req.key_id),
                &algorithms,
            )?;
            require_external(k, "GetParametersForImport")?;
            refuse_pending_deletion(k)?;
            // AWS's rules: an RSA private key is too long for RSA-OAEP
            // alone, and so is a P-521 key under an RSA_2048 wrapping key.
            if !algorithm.is_key_wrap()
                && (k.spec.is_rsa()
                    || (k.spec == KeySpec::EccNistP521 && wrapping_spec == KeySpec::Rsa2048))
            {
                return Err(KmsError::Validation(format!(
                    "{} key material cannot be wrapped with {} under an {} wrapping key: use \
                     an RSA_AES_KEY_WRAP wrapping algorithm",
                    k.spec.as_str(),
                    algorithm.as_str(),
                    wrapping_spec.as_str()
                )));
            }
            let size = match wrapping_spec {
                KeySpec::Rsa2048 => KeySize::Rsa2048,
                KeySpec::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let private = PrivateDecryptingKey::generate(size)
                .map_err(|_| KmsError::Internal("RSA key generation failed".into()))?;
            let public = private
                .public_key()
                .as_der()
                .map_err(|_| KmsError::Internal("public key encoding failed".into()))?
                .as_ref()
                .to_vec();
            let pkcs8 = private
                .as_der()
                .map_err(|_| KmsError::Internal("RSA key encoding failed".into()))?;
            let valid_to = self.clock.now_unix() + PARAMETERS_VALIDITY_SECS;
            let token = seal_token(
                self,
                &TokenBody {
                    key_id: k.id,
                    wrapping_key_spec: wrapping_spec,
                    algorithm,
                    valid_to,
                    private_key: SecretDer(Zeroizing::new(pkcs8.as_ref().to_vec())),
                },
            )?;
            Ok(GetParametersForImportResponse {
                key_id: k.arn(),
                import_token: token,
                public_key: public,
                parameters_valid_to: valid_to,
            })
        })
    }

    /// ImportKeyMaterial: unwraps the material with the token's wrapping
    /// key, checks it against the key spec and any earlier import, and
    /// installs it with its expiration; a PendingImport key turns Enabled.
    pub fn import_key_material(
        &self,
        caller: &Principal,
        req: ImportKeyMaterialRequest,
    ) -> Result<ImportKeyMaterialResponse, KmsError> {
        self.audited(caller, "ImportKeyMaterial", |a| {
            a.request_parameters = Some(serde_json::json!({
                "expirationModel": req.expiration_model.as_deref().unwrap_or(KEY_MATERIAL_EXPIRES),
                "validTo": req.valid_to,
                "importType": req.import_type,
            }));
            if req.import_token.is_empty() || req.import_token.len() > MAX_BLOB {
                return Err(KmsError::Validation(format!(
                    "ImportToken must be 1 to {MAX_BLOB} bytes"
                )));
            }
            if req.encrypted_key_material.is_empty() || req.encrypted_key_material.len() > MAX_BLOB
            {
                return Err(KmsError::Validation(format!(
                    "EncryptedKeyMaterial must be 1 to {MAX_BLOB} bytes"
                )));
            }
            let now = self.clock.now_unix();
            let expiration = expiration_of(&req, now)?;
            let snap = self.read_snapshot()?;
            let k = snap.resolve(&req.key_id)?;
            a.key(k);
            let algorithms = Algorithms {
                expiration_model: Some(expiration.model()),
                valid_to: expiration.valid_to(),
                ..Algorithms::default()
            };
            self.authorize_with(
                caller,
                "kms:ImportKeyMaterial",
                k,
                None,
                Some(&req.key_id),
                &algorithms,
            )?;
            require_external(k, "ImportKeyMaterial")?;
            refuse_pending_deletion(k)?;
            let body = open_token(self, k.id, &req.import_token, now)?;
            let bytes = unwrap_material(&body, &req.encrypted_key_material)?;
            let material = material_for(k, &bytes)?;
            let id = material_id(k.id, &material);
            check_import_type(&req, k, &id)?;
            let key_id = k.id;
            self.mutate(|st, now| {
                let k = st.resolve_mut(&key_id.to_string())?;
                refuse_pending_deletion(k)?;
                check_import_type(&req, k, &id)?;
                if !k.has_material() {
                    k.versions = vec![KeyVersion {
                        version: 1,
                        created: now,
                        rotation_type: None,
                        material: material.clone(),
                    }];
                }
                k.import = Some(ImportRecord {
                    material_id: id,
                    expiration: Some(expiration),
                });
                if k.state == KeyState::PendingImport {
                    k.state = KeyState::Enabled;
                }
                Ok(ImportKeyMaterialResponse {
                    key_id: k.arn(),
                    key_material_id: hex(&id),
                })
            })
        })
    }

    /// DeleteImportedKeyMaterial: the material leaves the store; the key
    /// turns PendingImport (a PendingDeletion key stays so).
    pub fn delete_imported_key_material(
        &self,
        caller: &Principal,
        req: DeleteImportedKeyMaterialRequest,
    ) -> Result<DeleteImportedKeyMaterialResponse, KmsError> {
        self.audited(caller, "DeleteImportedKeyMaterial", |a| {
            self.mutate(|st, _| {
                let k = st.resolve_mut(&req.key_id)?;
                a.key(k);
                self.authorize_as_requested(
                    caller,
                    "kms:DeleteImportedKeyMaterial",
                    k,
                    None,
                    Some(&req.key_id),
                )?;
                require_external(k, "DeleteImportedKeyMaterial")?;
                let id = match (&k.import, k.has_material()) {
                    (Some(i), true) => hex(&i.material_id),
                    _ => {
                        return Err(KmsError::InvalidState(format!(
                            "{} has no imported key material to delete.",
                            k.arn()
                        )));
                    }
                };
                if let Some(want) = req.key_material_id.as_deref()
                    && want != id
                {
                    return Err(KmsError::NotFound(format!(
                        "key material {want} is not the key material of {}",
                        k.arn()
                    )));
                }
                remove_imported_material(k);
                Ok(DeleteImportedKeyMaterialResponse {
                    key_id: k.arn(),
                    key_material_id: id,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_ids_differ_by_key_and_material() {
        let a = KeyId::generate().unwrap();
        let b = KeyId::generate().unwrap();
        let m1 = Material::Symmetric(KeyMaterial(Zeroizing::new([1; 32])));
        let m2 = Material::Symmetric(KeyMaterial(Zeroizing::new([2; 32])));
        assert_eq!(material_id(a, &m1), material_id(a, &m1));
        assert_ne!(material_id(a, &m1), material_id(a, &m2));
        assert_ne!(material_id(a, &m1), material_id(b, &m1));
        assert_eq!(hex(&material_id(a, &m1)).len(), 64);
    }
}
