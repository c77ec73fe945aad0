//! Key specs, key usages, origins and the algorithms each allows, with
//! AWS's names: what CreateKey accepts, what DescribeKey and GetPublicKey
//! report, and which algorithm an operation may ask a key for.
//!
//! The enums are stored in the engine state (postcard, by variant index):
//! new variants go at the end, never between existing ones, so a later
//! addition (an `External` origin's states, another curve) keeps reading
//! every store written before it.

use crate::KmsError;
use serde::{Deserialize, Serialize};

/// AWS `KeySpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeySpec {
    SymmetricDefault,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccNistP256,
    EccNistP384,
    EccNistP521,
    EccSecgP256k1,
    EccNistEdwards25519,
    Hmac224,
    Hmac256,
    Hmac384,
    Hmac512,
    MlDsa44,
    MlDsa65,
    MlDsa87,
}

/// AWS `KeyUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyUsage {
    EncryptDecrypt,
    SignVerify,
    GenerateVerifyMac,
    KeyAgreement,
}

/// AWS `Origin`. Only `AwsKms` keys are made today; `External` (imported
/// key material, state PendingImport until imported) has its place so
/// that adding it changes no stored layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyOrigin {
    AwsKms,
    External,
}

impl KeyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::AwsKms => "AWS_KMS",
            KeyOrigin::External => "EXTERNAL",
        }
    }
}

const SPECS: [(&str, KeySpec); 16] = [
    ("SYMMETRIC_DEFAULT", KeySpec::SymmetricDefault),
    ("RSA_2048", KeySpec::Rsa2048),
    ("RSA_3072", KeySpec::Rsa3072),
    ("RSA_4096", KeySpec::Rsa4096),
    ("ECC_NIST_P256", KeySpec::EccNistP256),
    ("ECC_NIST_P384", KeySpec::EccNistP384),
    ("ECC_NIST_P521", KeySpec::EccNistP521),
    ("ECC_SECG_P256K1", KeySpec::EccSecgP256k1),
    ("ECC_NIST_EDWARDS25519", KeySpec::EccNistEdwards25519),
    ("HMAC_224", KeySpec::Hmac224),
    ("HMAC_256", KeySpec::Hmac256),
    ("HMAC_384", KeySpec::Hmac384),
    ("HMAC_512", KeySpec::Hmac512),
    ("ML_DSA_44", KeySpec::MlDsa44),
    ("ML_DSA_65", KeySpec::MlDsa65),
    ("ML_DSA_87", KeySpec::MlDsa87),
];

/// Key specs AWS defines that this engine does not make (SM2 is for
/// AWS's China Regions only; aws-lc-rs does not expose it).
const UNSUPPORTED_SPECS: [&str; 1] = ["SM2"];

impl KeySpec {
    /// The AWS name, e.g. `"ECC_NIST_P256"`.
    pub fn as_str(self) -> &'static str {
        SPECS
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |(n, _)| n)
    }

    /// Parses an AWS `KeySpec` name: an unknown one is ValidationException
    /// (what AWS's input validation answers), SM2 is
    /// UnsupportedOperationException.
    pub fn parse(name: &str) -> Result<KeySpec, KmsError> {
        if let Some((_, s)) = SPECS.iter().find(|(n, _)| *n == name) {
            return Ok(*s);
        }
        if UNSUPPORTED_SPECS.contains(&name) {
            return Err(KmsError::UnsupportedOperation(format!(
                "KeySpec {name} is not supported by this engine"
            )));
        }
        Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'keySpec' failed to satisfy \
             constraint: Member must satisfy enum value set: [{}]",
            SPECS.map(|(n, _)| n).join(", ")
        )))
    }

    pub fn is_symmetric(self) -> bool {
        self == KeySpec::SymmetricDefault
    }

    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512
        )
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    /// True for key specs with a public key (GetPublicKey works).
    pub fn is_asymmetric(self) -> bool {
        !self.is_symmetric() && !self.is_hmac()
    }

    /// The key usages AWS allows for this spec.
    pub fn usages(self) -> &'static [KeyUsage] {
        use KeySpec as S;
        use KeyUsage as U;
        match self {
            S::SymmetricDefault => &[U::EncryptDecrypt],
            S::Rsa2048 | S::Rsa3072 | S::Rsa4096 => &[U::EncryptDecrypt, U::SignVerify],
            S::EccNistP256 | S::EccNistP384 | S::EccNistP521 => &[U::SignVerify, U::KeyAgreement],
            S::EccSecgP256k1 | S::EccNistEdwards25519 => &[U::SignVerify],
            S::MlDsa44 | S::MlDsa65 | S::MlDsa87 => &[U::SignVerify],
            S::Hmac224 | S::Hmac256 | S::Hmac384 | S::Hmac512 => &[U::GenerateVerifyMac],
        }
    }

    /// HMAC key length in bytes (the spec's bit count / 8).
    pub fn hmac_key_len(self) -> Option<usize> {
        match self {
            KeySpec::Hmac224 => Some(28),
            KeySpec::Hmac256 => Some(32),
            KeySpec::Hmac384 => Some(48),
            KeySpec::Hmac512 => Some(64),
            _ => None,
        }
    }

    /// RSA modulus length in bytes.
    pub fn rsa_modulus_len(self) -> Option<usize> {
        match self {
            KeySpec::Rsa2048 => Some(256),
            KeySpec::Rsa3072 => Some(384),
            KeySpec::Rsa4096 => Some(512),
            _ => None,
        }
    }
}

const USAGES: [(&str, KeyUsage); 4] = [
    ("ENCRYPT_DECRYPT", KeyUsage::EncryptDecrypt),
    ("SIGN_VERIFY", KeyUsage::SignVerify),
    ("GENERATE_VERIFY_MAC", KeyUsage::GenerateVerifyMac),
    ("KEY_AGREEMENT", KeyUsage::KeyAgreement),
];

impl KeyUsage {
    pub fn as_str(self) -> &'static str {
        USAGES
            .iter()
            .find(|(_, u)| *u == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn parse(name: &str) -> Result<KeyUsage, KmsError> {
        USAGES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, u)| *u)
            .ok_or_else(|| {
                KmsError::Validation(format!(
                    "1 validation error detected: Value '{name}' at 'keyUsage' failed to \
                     satisfy constraint: Member must satisfy enum value set: [{}]",
                    USAGES.map(|(n, _)| n).join(", ")
                ))
            })
    }
}

/// The spec and usage CreateKey makes from its request (AWS's defaults:
/// SYMMETRIC_DEFAULT and ENCRYPT_DECRYPT), or AWS's refusal.
pub fn spec_and_usage(
    key_spec: Option<&str>,
    customer_master_key_spec: Option<&str>,
    key_usage: Option<&str>,
) -> Result<(KeySpec, KeyUsage), KmsError> {
    let spec = match (key_spec, customer_master_key_spec) {
        (Some(_), Some(_)) => {
            return Err(KmsError::Validation(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
                 CustomerMasterKeySpec is deprecated."
                    .into(),
            ));
        }
        (Some(s), None) | (None, Some(s)) => KeySpec::parse(s)?,
        (None, None) => KeySpec::SymmetricDefault,
    };
    let usage = match key_usage {
        Some(u) => KeyUsage::parse(u)?,
        None => KeyUsage::EncryptDecrypt,
    };
    if !spec.usages().contains(&usage) {
        return Err(KmsError::Validation(format!(
            "KeyUsage {} is not compatible with KeySpec {}",
            usage.as_str(),
            spec.as_str()
        )));
    }
    Ok((spec, usage))
}

/// AWS `SigningAlgorithmSpec` values this engine implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    RsassaPssSha256,
    RsassaPssSha384,
    RsassaPssSha512,
    RsassaPkcs1V15Sha256,
    RsassaPkcs1V15Sha384,
    RsassaPkcs1V15Sha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    Ed25519Sha512,
    MlDsaShake256,
}

const SIGNING: [(&str, SigningAlgorithm); 11] = [
    ("RSASSA_PSS_SHA_256", SigningAlgorithm::RsassaPssSha256),
    ("RSASSA_PSS_SHA_384", SigningAlgorithm::RsassaPssSha384),
    ("RSASSA_PSS_SHA_512", SigningAlgorithm::RsassaPssSha512),
    (
        "RSASSA_PKCS1_V1_5_SHA_256",
        SigningAlgorithm::RsassaPkcs1V15Sha256,
    ),
    (
        "RSASSA_PKCS1_V1_5_SHA_384",
        SigningAlgorithm::RsassaPkcs1V15Sha384,
    ),
    (
        "RSASSA_PKCS1_V1_5_SHA_512",
        SigningAlgorithm::RsassaPkcs1V15Sha512,
    ),
    ("ECDSA_SHA_256", SigningAlgorithm::EcdsaSha256),
    ("ECDSA_SHA_384", SigningAlgorithm::EcdsaSha384),
    ("ECDSA_SHA_512", SigningAlgorithm::EcdsaSha512),
    ("ED25519_SHA_512", SigningAlgorithm::Ed25519Sha512),
    ("ML_DSA_SHAKE_256", SigningAlgorithm::MlDsaShake256),
];

/// AWS signing algorithms this engine does not implement: SM2DSA (China
/// Regions), ED25519_PH_SHA_512 (aws-lc-rs has no Ed25519ph).
const UNSUPPORTED_SIGNING: [&str; 2] = ["SM2DSA", "ED25519_PH_SHA_512"];

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        SIGNING
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }

    /// Parses a `SigningAlgorithm` request value.
    pub fn parse(name: &str) -> Result<SigningAlgorithm, KmsError> {
        if let Some((_, a)) = SIGNING.iter().find(|(n, _)| *n == name) {
            return Ok(*a);
        }
        if UNSUPPORTED_SIGNING.contains(&name) {
            return Err(KmsError::UnsupportedOperation(format!(
                "signing algorithm {name} is not supported by this engine"
            )));
        }
        Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'signingAlgorithm' failed to \
             satisfy constraint: Member must satisfy enum value set: [{}]",
            SIGNING.map(|(n, _)| n).join(", ")
        )))
    }

    /// The hash whose output a DIGEST message must be (None: the
    /// algorithm takes no digest, as Ed25519 and ML-DSA here).
    pub fn digest_len(self) -> Option<usize> {
        use SigningAlgorithm as A;
        match self {
            A::RsassaPssSha256 | A::RsassaPkcs1V15Sha256 | A::EcdsaSha256 => Some(32),
            A::RsassaPssSha384 | A::RsassaPkcs1V15Sha384 | A::EcdsaSha384 => Some(48),
            A::RsassaPssSha512 | A::RsassaPkcs1V15Sha512 | A::EcdsaSha512 => Some(64),
            A::Ed25519Sha512 | A::MlDsaShake256 => None,
        }
    }
}

/// The signing algorithms a SIGN_VERIFY key of `spec` supports.
pub fn signing_algorithms(spec: KeySpec) -> &'static [SigningAlgorithm] {
    use SigningAlgorithm as A;
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
            A::RsassaPssSha256,
            A::RsassaPssSha384,
            A::RsassaPssSha512,
            A::RsassaPkcs1V15Sha256,
            A::RsassaPkcs1V15Sha384,
            A::RsassaPkcs1V15Sha512,
        ],
        KeySpec::EccNistP256 | KeySpec::EccSecgP256k1 => &[A::EcdsaSha256],
        KeySpec::EccNistP384 => &[A::EcdsaSha384],
        KeySpec::EccNistP521 => &[A::EcdsaSha512],
        KeySpec::EccNistEdwards25519 => &[A::Ed25519Sha512],
        KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => &[A::MlDsaShake256],
        _ => &[],
    }
}

/// RSA `EncryptionAlgorithmSpec` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaEncryption {
    OaepSha1,
    OaepSha256,
}

pub const RSAES_OAEP_SHA_1: &str = "RSAES_OAEP_SHA_1";
pub const RSAES_OAEP_SHA_256: &str = "RSAES_OAEP_SHA_256";

impl RsaEncryption {
    pub fn as_str(self) -> &'static str {
        match self {
            RsaEncryption::OaepSha1 => RSAES_OAEP_SHA_1,
            RsaEncryption::OaepSha256 => RSAES_OAEP_SHA_256,
        }
    }

    /// The largest plaintext for a modulus of `modulus_len` bytes: k − 2
    /// hLen − 2 (RFC 8017; AWS's table: 214/342/470 bytes for SHA-1,
    /// 190/318/446 for SHA-256).
    pub fn max_plaintext(self, modulus_len: usize) -> usize {
        let h = match self {
            RsaEncryption::OaepSha1 => 20,
            RsaEncryption::OaepSha256 => 32,
        };
        modulus_len.saturating_sub(2 * h + 2)
    }
}

/// The encryption algorithms an ENCRYPT_DECRYPT key of `spec` supports.
pub fn encryption_algorithms(spec: KeySpec) -> Vec<String> {
    if spec.is_rsa() {
        vec![RSAES_OAEP_SHA_1.into(), RSAES_OAEP_SHA_256.into()]
    } else {
        vec![crate::wire::SYMMETRIC_DEFAULT.into()]
    }
}

/// The algorithm a key of `spec` must be asked for by `EncryptionAlgorithm`
/// (None in the request means SYMMETRIC_DEFAULT, as in AWS): Ok(None) for a
/// symmetric key, Ok(Some) for RSA, else InvalidKeyUsageException in AWS's
/// words.
pub fn encryption_algorithm_for(
    spec: KeySpec,
    requested: Option<&str>,
) -> Result<Option<RsaEncryption>, KmsError> {
    let name = requested.unwrap_or(crate::wire::SYMMETRIC_DEFAULT);
    let incompatible = || {
        KmsError::InvalidKeyUsage(format!(
            "Algorithm {name} is incompatible with key spec {}.",
            spec.as_str()
        ))
    };
    match (spec, name) {
        (KeySpec::SymmetricDefault, crate::wire::SYMMETRIC_DEFAULT) => Ok(None),
        (s, RSAES_OAEP_SHA_1) if s.is_rsa() => Ok(Some(RsaEncryption::OaepSha1)),
        (s, RSAES_OAEP_SHA_256) if s.is_rsa() => Ok(Some(RsaEncryption::OaepSha256)),
        (_, crate::wire::SYMMETRIC_DEFAULT | RSAES_OAEP_SHA_1 | RSAES_OAEP_SHA_256) => {
            Err(incompatible())
        }
        (_, "SM2PKE") => Err(KmsError::UnsupportedOperation(
            "encryption algorithm SM2PKE is not supported by this engine".into(),
        )),
        (_, other) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'encryptionAlgorithm' failed to \
             satisfy constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, \
             RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]"
        ))),
    }
}

/// The MAC algorithm of an HMAC key spec (one each).
pub fn mac_algorithm(spec: KeySpec) -> Option<&'static str> {
    match spec {
        KeySpec::Hmac224 => Some("HMAC_SHA_224"),
        KeySpec::Hmac256 => Some("HMAC_SHA_256"),
        KeySpec::Hmac384 => Some("HMAC_SHA_384"),
        KeySpec::Hmac512 => Some("HMAC_SHA_512"),
        _ => None,
    }
}

/// Checks a `MacAlgorithm` request value against `spec`.
pub fn check_mac_algorithm(spec: KeySpec, requested: &str) -> Result<(), KmsError> {
    const ALL: [&str; 4] = [
        "HMAC_SHA_224",
        "HMAC_SHA_256",
        "HMAC_SHA_384",
        "HMAC_SHA_512",
    ];
    if !ALL.contains(&requested) {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{requested}' at 'macAlgorithm' failed to \
             satisfy constraint: Member must satisfy enum value set: [{}]",
            ALL.join(", ")
        )));
    }
    if mac_algorithm(spec) != Some(requested) {
        return Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {requested} is incompatible with key spec {}.",
            spec.as_str()
        )));
    }
    Ok(())
}

/// `KeyAgreementAlgorithmSpec`: only ECDH.
pub const ECDH: &str = "ECDH";

/// The DataKeyPairSpec values GenerateDataKeyPair makes (AWS's list
/// without SM2).
pub fn data_key_pair_spec(name: &str) -> Result<KeySpec, KmsError> {
    let spec = match KeySpec::parse(name) {
        Ok(s) => s,
        Err(KmsError::Validation(_)) => {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{name}' at 'keyPairSpec' failed to \
                 satisfy constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, \
                 RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, SM2, \
                 ECC_NIST_EDWARDS25519]"
            )));
        }
        Err(e) => return Err(e),
    };
    match spec {
        s if s.is_rsa() => Ok(s),
        KeySpec::EccNistP256
        | KeySpec::EccNistP384
        | KeySpec::EccNistP521
        | KeySpec::EccSecgP256k1
        | KeySpec::EccNistEdwards25519 => Ok(spec),
        other => Err(KmsError::Validation(format!(
            "KeyPairSpec {} is not a data key pair spec",
            other.as_str()
        ))),
    }
}

/// AWS `AlgorithmSpec` for wrapping imported key material
/// (GetParametersForImport `WrappingAlgorithm`): the ones this engine
/// implements. Stored in import tokens (by variant index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WrappingAlgorithm {
    /// The material encrypted with RSA-OAEP (SHA-1, MGF1 SHA-1).
    RsaesOaepSha1,
    /// The material encrypted with RSA-OAEP (SHA-256, MGF1 SHA-256).
    RsaesOaepSha256,
    /// A random AES-256 key encrypted with RSA-OAEP (SHA-1), then the
    /// material wrapped under it with AES key wrap with padding (RFC 5649).
    RsaAesKeyWrapSha1,
    /// As [`WrappingAlgorithm::RsaAesKeyWrapSha1`] with OAEP SHA-256.
    RsaAesKeyWrapSha256,
}

const WRAPPING: [(&str, WrappingAlgorithm); 4] = [
    ("RSAES_OAEP_SHA_1", WrappingAlgorithm::RsaesOaepSha1),
    ("RSAES_OAEP_SHA_256", WrappingAlgorithm::RsaesOaepSha256),
    (
        "RSA_AES_KEY_WRAP_SHA_1",
        WrappingAlgorithm::RsaAesKeyWrapSha1,
    ),
    (
        "RSA_AES_KEY_WRAP_SHA_256",
        WrappingAlgorithm::RsaAesKeyWrapSha256,
    ),
];

impl WrappingAlgorithm {
    pub fn as_str(self) -> &'static str {
        WRAPPING
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }

    /// Parses a `WrappingAlgorithm` request value: RSAES_PKCS1_V1_5 (which
    /// AWS no longer accepts) and SM2PKE (China Regions) are
    /// UnsupportedOperationException, anything else unknown
    /// ValidationException.
    pub fn parse(name: &str) -> Result<WrappingAlgorithm, KmsError> {
        if let Some((_, a)) = WRAPPING.iter().find(|(n, _)| *n == name) {
            return Ok(*a);
        }
        if matches!(name, "RSAES_PKCS1_V1_5" | "SM2PKE") {
            return Err(KmsError::UnsupportedOperation(format!(
                "wrapping algorithm {name} is not supported by this engine"
            )));
        }
        Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'wrappingAlgorithm' failed to \
             satisfy constraint: Member must satisfy enum value set: [RSAES_PKCS1_V1_5, \
             RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, \
             RSA_AES_KEY_WRAP_SHA_256, SM2PKE]"
        )))
    }

    /// The OAEP hash that encrypts the material or the AES key.
    pub fn oaep(self) -> RsaEncryption {
        match self {
            WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaAesKeyWrapSha1 => {
                RsaEncryption::OaepSha1
            }
            WrappingAlgorithm::RsaesOaepSha256 | WrappingAlgorithm::RsaAesKeyWrapSha256 => {
                RsaEncryption::OaepSha256
            }
        }
    }

    /// Whether the material is wrapped with AES key wrap (RSA_AES_*).
    pub fn is_key_wrap(self) -> bool {
        matches!(
            self,
            WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256
        )
    }
}

/// Parses a `WrappingKeySpec` (RSA_2048/3072/4096; SM2 is
/// UnsupportedOperationException).
pub fn wrapping_key_spec(name: &str) -> Result<KeySpec, KmsError> {
    match name {
        "RSA_2048" => Ok(KeySpec::Rsa2048),
        "RSA_3072" => Ok(KeySpec::Rsa3072),
        "RSA_4096" => Ok(KeySpec::Rsa4096),
        "SM2" => Err(KmsError::UnsupportedOperation(
            "wrapping key spec SM2 is not supported by this engine".into(),
        )),
        other => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'wrappingKeySpec' failed to \
             satisfy constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, \
             RSA_4096, SM2]"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (n, s) in SPECS {
            assert_eq!(KeySpec::parse(n).unwrap(), s);
            assert_eq!(s.as_str(), n);
        }
        for (n, a) in SIGNING {
            assert_eq!(SigningAlgorithm::parse(n).unwrap(), a);
        }
    }

    #[test]
    fn refused_combinations_are_validation_errors() {
        for (spec, usage) in [
            ("HMAC_224", "ENCRYPT_DECRYPT"),
            ("SYMMETRIC_DEFAULT", "GENERATE_VERIFY_MAC"),
            ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
            ("ECC_NIST_EDWARDS25519", "ENCRYPT_DECRYPT"),
            ("RSA_2048", "KEY_AGREEMENT"),
            ("ECC_NIST_P256", "ENCRYPT_DECRYPT"),
        ] {
            let e = spec_and_usage(Some(spec), None, Some(usage)).unwrap_err();
            assert_eq!(
                e.message(),
                format!("KeyUsage {usage} is not compatible with KeySpec {spec}")
            );
        }
        // An asymmetric spec without a usage is ENCRYPT_DECRYPT, refused.
        assert!(matches!(
            spec_and_usage(Some("ECC_NIST_P256"), None, None),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            spec_and_usage(Some("RSA_2048"), Some("RSA_2048"), None),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            spec_and_usage(Some("SM2"), None, Some("SIGN_VERIFY")),
            Err(KmsError::UnsupportedOperation(_))
        ));
    }

    #[test]
    fn oaep_limits_match_aws_table() {
        let limits: Vec<usize> = [256, 384, 512]
            .iter()
            .flat_map(|&k| {
                [
                    RsaEncryption::OaepSha1.max_plaintext(k),
                    RsaEncryption::OaepSha256.max_plaintext(k),
                ]
            })
            .collect();
        assert_eq!(limits, [214, 190, 342, 318, 470, 446]);
    }
}
