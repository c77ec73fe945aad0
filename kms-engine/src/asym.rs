//! Asymmetric and HMAC key material through aws-lc-rs: generation (PKCS#8
//! private keys, random HMAC keys), the parsed keys a snapshot keeps ready,
//! and the primitives the operations call (sign, verify, RSA-OAEP, HMAC,
//! ECDH). Private keys leave this module only sealed in the store or, for
//! data key pairs, as the caller's own plaintext.

use crate::KmsError;
use crate::key::{Material, SecretDer};
use crate::keyspec::{KeySpec, KeyUsage, RsaEncryption, SigningAlgorithm};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, PqdsaKeyPair, RsaKeyPair};
use aws_lc_rs::{agreement, digest, hmac};
use std::fmt;
use zeroize::Zeroizing;

fn internal(what: &str) -> KmsError {
    KmsError::Internal(format!("{what} failed"))
}

fn ecdsa_signing(spec: KeySpec) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::EccNistP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::EccNistP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        KeySpec::EccNistP521 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
        KeySpec::EccSecgP256k1 => Some(&signature::ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

fn ecdh_algorithm(spec: KeySpec) -> Option<&'static agreement::Algorithm> {
    match spec {
        KeySpec::EccNistP256 => Some(&agreement::ECDH_P256),
        KeySpec::EccNistP384 => Some(&agreement::ECDH_P384),
        KeySpec::EccNistP521 => Some(&agreement::ECDH_P521),
        _ => None,
    }
}

fn mldsa_signing(spec: KeySpec) -> Option<&'static signature::PqdsaSigningAlgorithm> {
    match spec {
        KeySpec::MlDsa44 => Some(&signature::ML_DSA_44_SIGNING),
        KeySpec::MlDsa65 => Some(&signature::ML_DSA_65_SIGNING),
        KeySpec::MlDsa87 => Some(&signature::ML_DSA_87_SIGNING),
        _ => None,
    }
}

fn rsa_size(spec: KeySpec) -> Option<KeySize> {
    match spec {
        KeySpec::Rsa2048 => Some(KeySize::Rsa2048),
        KeySpec::Rsa3072 => Some(KeySize::Rsa3072),
        KeySpec::Rsa4096 => Some(KeySize::Rsa4096),
        _ => None,
    }
}

fn der(d: Pkcs8V1Der<'_>) -> SecretDer {
    SecretDer(Zeroizing::new(d.as_ref().to_vec()))
}

/// A fresh PKCS#8 private key of `spec` for `usage` (an ECC key for
/// KEY_AGREEMENT is an ECDH key; the encoding is the same either way).
pub fn generate_private_key(spec: KeySpec, usage: KeyUsage) -> Result<SecretDer, KmsError> {
    if let Some(size) = rsa_size(spec) {
        let k = PrivateDecryptingKey::generate(size).map_err(|_| internal("RSA key generation"))?;
        return k
            .as_der()
            .map(der)
            .map_err(|_| internal("RSA key encoding"));
    }
    if usage == KeyUsage::KeyAgreement
        && let Some(alg) = ecdh_algorithm(spec)
    {
        let k = agreement::PrivateKey::generate(alg).map_err(|_| internal("EC key generation"))?;
        let d: Pkcs8V1Der<'static> = k.as_der().map_err(|_| internal("EC key encoding"))?;
        return Ok(der(d));
    }
    if let Some(alg) = ecdsa_signing(spec) {
        let k = EcdsaKeyPair::generate(alg).map_err(|_| internal("EC key generation"))?;
        let doc = k.to_pkcs8v1().map_err(|_| internal("EC key encoding"))?;
        return Ok(SecretDer(Zeroizing::new(doc.as_ref().to_vec())));
    }
    if spec == KeySpec::EccNistEdwards25519 {
        let k = Ed25519KeyPair::generate().map_err(|_| internal("Ed25519 key generation"))?;
        let doc = k
            .to_pkcs8v1()
            .map_err(|_| internal("Ed25519 key encoding"))?;
        return Ok(SecretDer(Zeroizing::new(doc.as_ref().to_vec())));
    }
    if let Some(alg) = mldsa_signing(spec) {
        let k = PqdsaKeyPair::generate(alg).map_err(|_| internal("ML-DSA key generation"))?;
        return k
            .private_key()
            .as_der()
            .map(der)
            .map_err(|_| internal("ML-DSA key encoding"));
    }
    Err(KmsError::Internal(format!(
        "{} has no private key",
        spec.as_str()
    )))
}

/// The material CreateKey makes for a key of `spec` and `usage`.
pub fn generate_material(spec: KeySpec, usage: KeyUsage) -> Result<Material, KmsError> {
    if spec.is_symmetric() {
        return crate::key::KeyMaterial::generate().map(Material::Symmetric);
    }
    if let Some(len) = spec.hmac_key_len() {
        let mut k = Zeroizing::new(vec![0u8; len]);
        aws_lc_rs::rand::fill(k.as_mut_slice())
            .map_err(|_| KmsError::Internal("random source failed".into()))?;
        return Ok(Material::Hmac(SecretDer(k)));
    }
    generate_private_key(spec, usage).map(Material::Private)
}

/// A key parsed once per snapshot, ready for its operations.
pub enum LoadedKey {
    RsaSign(RsaKeyPair),
    RsaDecrypt(OaepPrivateDecryptingKey),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    MlDsa(PqdsaKeyPair),
    Ecdh(agreement::PrivateKey),
    Hmac(Box<hmac::Key>),
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoadedKey(<redacted>)")
    }
}

/// A loaded key and its public key (DER SubjectPublicKeyInfo; empty for
/// HMAC keys).
#[derive(Debug)]
pub struct Loaded {
    pub key: LoadedKey,
    pub public: Vec<u8>,
}

fn spki(
    d: Result<PublicKeyX509Der<'static>, aws_lc_rs::error::Unspecified>,
) -> Result<Vec<u8>, KmsError> {
    d.map(|d| d.as_ref().to_vec())
        .map_err(|_| internal("public key encoding"))
}

fn rejected(_: aws_lc_rs::error::KeyRejected) -> KmsError {
    KmsError::StoreCorrupted("a stored private key does not parse".into())
}

impl Loaded {
    /// Parses stored non-symmetric material of a key of `spec` and `usage`.
    pub fn load(spec: KeySpec, usage: KeyUsage, material: &Material) -> Result<Loaded, KmsError> {
        match material {
            Material::Symmetric(_) => Err(KmsError::Internal(
                "symmetric material is not loaded as a private key".into(),
            )),
            Material::Hmac(k) => {
                let alg = match spec {
                    KeySpec::Hmac224 => hmac::HMAC_SHA224,
                    KeySpec::Hmac256 => hmac::HMAC_SHA256,
                    KeySpec::Hmac384 => hmac::HMAC_SHA384,
                    KeySpec::Hmac512 => hmac::HMAC_SHA512,
                    _ => {
                        return Err(KmsError::StoreCorrupted(
                            "HMAC material on a non-HMAC key".into(),
                        ));
                    }
                };
                Ok(Loaded {
                    key: LoadedKey::Hmac(Box::new(hmac::Key::new(alg, k.bytes()))),
                    public: Vec::new(),
                })
            }
            Material::Private(p) => Self::load_private(spec, usage, p.bytes()),
        }
    }

    fn load_private(spec: KeySpec, usage: KeyUsage, pkcs8: &[u8]) -> Result<Loaded, KmsError> {
        if spec.is_rsa() {
            if usage == KeyUsage::EncryptDecrypt {
                let k = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(rejected)?;
                let public = spki(k.public_key().as_der())?;
                let key = OaepPrivateDecryptingKey::new(k).map_err(|_| internal("RSA key"))?;
                return Ok(Loaded {
                    key: LoadedKey::RsaDecrypt(key),
                    public,
                });
            }
            let k = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
            let public = spki(k.public_key().as_der())?;
            return Ok(Loaded {
                key: LoadedKey::RsaSign(k),
                public,
            });
        }
        if usage == KeyUsage::KeyAgreement
            && let Some(alg) = ecdh_algorithm(spec)
        {
            let k = agreement::PrivateKey::from_private_key_der(alg, pkcs8).map_err(rejected)?;
            let public = spki(
                k.compute_public_key()
                    .map_err(|_| internal("public key"))?
                    .as_der(),
            )?;
            return Ok(Loaded {
                key: LoadedKey::Ecdh(k),
                public,
            });
        }
        if let Some(alg) = ecdsa_signing(spec) {
            let k = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(rejected)?;
            let public = spki(k.public_key().as_der())?;
            return Ok(Loaded {
                key: LoadedKey::Ecdsa(k),
                public,
            });
        }
        if spec == KeySpec::EccNistEdwards25519 {
            let k = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
            let public = spki(k.public_key().as_der())?;
            return Ok(Loaded {
                key: LoadedKey::Ed25519(k),
                public,
            });
        }
        if let Some(alg) = mldsa_signing(spec) {
            let k = PqdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(rejected)?;
            let public = spki(k.public_key().as_der())?;
            return Ok(Loaded {
                key: LoadedKey::MlDsa(k),
                public,
            });
        }
        Err(KmsError::StoreCorrupted(format!(
            "a private key stored for key spec {}",
            spec.as_str()
        )))
    }
}

/// The digest algorithm of a signing algorithm (None: Ed25519, ML-DSA).
fn digest_of(alg: SigningAlgorithm) -> Option<&'static digest::Algorithm> {
    match alg.digest_len() {
        Some(32) => Some(&digest::SHA256),
        Some(48) => Some(&digest::SHA384),
        Some(64) => Some(&digest::SHA512),
        _ => None,
    }
}

fn rsa_signing(alg: SigningAlgorithm) -> Option<&'static dyn signature::RsaEncoding> {
    use SigningAlgorithm as A;
    Some(match alg {
        A::RsassaPssSha256 => &signature::RSA_PSS_SHA256,
        A::RsassaPssSha384 => &signature::RSA_PSS_SHA384,
        A::RsassaPssSha512 => &signature::RSA_PSS_SHA512,
        A::RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_SHA256,
        A::RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_SHA384,
        A::RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_SHA512,
        _ => return None,
    })
}

fn verification(
    spec: KeySpec,
    alg: SigningAlgorithm,
) -> Option<&'static dyn signature::VerificationAlgorithm> {
    use SigningAlgorithm as A;
    Some(match (spec, alg) {
        (_, A::RsassaPssSha256) => &signature::RSA_PSS_2048_8192_SHA256,
        (_, A::RsassaPssSha384) => &signature::RSA_PSS_2048_8192_SHA384,
        (_, A::RsassaPssSha512) => &signature::RSA_PSS_2048_8192_SHA512,
        (_, A::RsassaPkcs1V15Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (_, A::RsassaPkcs1V15Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (_, A::RsassaPkcs1V15Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (KeySpec::EccNistP256, A::EcdsaSha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeySpec::EccSecgP256k1, A::EcdsaSha256) => &signature::ECDSA_P256K1_SHA256_ASN1,
        (KeySpec::EccNistP384, A::EcdsaSha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (KeySpec::EccNistP521, A::EcdsaSha512) => &signature::ECDSA_P521_SHA512_ASN1,
        (_, A::Ed25519Sha512) => &signature::ED25519,
        (KeySpec::MlDsa44, A::MlDsaShake256) => &signature::ML_DSA_44,
        (KeySpec::MlDsa65, A::MlDsaShake256) => &signature::ML_DSA_65,
        (KeySpec::MlDsa87, A::MlDsaShake256) => &signature::ML_DSA_87,
        _ => return None,
    })
}

/// What a Sign or Verify message is: the message itself, or its digest
/// under the algorithm's hash (the caller checked its length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Raw,
    Digest,
}

impl Loaded {
    /// Signs `msg` with `alg` (the caller checked that `alg` fits the key
    /// and that a digest has the hash's length).
    pub fn sign(
        &self,
        spec: KeySpec,
        alg: SigningAlgorithm,
        msg: &[u8],
        kind: MessageKind,
    ) -> Result<Vec<u8>, KmsError> {
        let failed = || internal("signing");
        let imported = |a: &'static digest::Algorithm| {
            digest::Digest::import_less_safe(msg, a).map_err(|_| failed())
        };
        match (&self.key, kind) {
            (LoadedKey::RsaSign(k), kind) => {
                let enc = rsa_signing(alg).ok_or_else(failed)?;
                let mut sig = vec![0u8; k.public_modulus_len()];
                match kind {
                    MessageKind::Raw => k
                        .sign(enc, &aws_lc_rs::rand::SystemRandom::new(), msg, &mut sig)
                        .map_err(|_| failed())?,
                    MessageKind::Digest => {
                        let d = imported(digest_of(alg).ok_or_else(failed)?)?;
                        k.sign_digest(enc, &d, &mut sig).map_err(|_| failed())?;
                    }
                }
                Ok(sig)
            }
            (LoadedKey::Ecdsa(k), MessageKind::Raw) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed()),
            (LoadedKey::Ecdsa(k), MessageKind::Digest) => {
                let d = imported(digest_of(alg).ok_or_else(failed)?)?;
                k.sign_digest(&d)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| failed())
            }
            (LoadedKey::Ed25519(k), MessageKind::Raw) => k
                .try_sign(msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed()),
            (LoadedKey::MlDsa(k), MessageKind::Raw) => {
                let mut sig = vec![0u8; k.algorithm().signature_len()];
                let n = k.sign(msg, &mut sig).map_err(|_| failed())?;
                sig.truncate(n);
                Ok(sig)
            }
            _ => {
                let _ = spec;
                Err(failed())
            }
        }
    }

    /// Whether `sig` is `alg`'s signature of `msg` under this key.
    pub fn verify(
        &self,
        spec: KeySpec,
        alg: SigningAlgorithm,
        msg: &[u8],
        kind: MessageKind,
        sig: &[u8],
    ) -> Result<bool, KmsError> {
        let v = verification(spec, alg).ok_or_else(|| internal("verification"))?;
        let public = signature::UnparsedPublicKey::new(v, self.public.as_slice());
        Ok(match kind {
            MessageKind::Raw => public.verify(msg, sig).is_ok(),
            MessageKind::Digest => {
                let a = digest_of(alg).ok_or_else(|| internal("verification"))?;
                let d = digest::Digest::import_less_safe(msg, a)
                    .map_err(|_| internal("verification"))?;
                public.verify_digest(&d, sig).is_ok()
            }
        })
    }

    /// RSA-OAEP encryption under the public key.
    pub fn rsa_encrypt(&self, alg: RsaEncryption, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let public =
            PublicEncryptingKey::from_der(&self.public).map_err(|_| internal("RSA public key"))?;
        let key = OaepPublicEncryptingKey::new(public).map_err(|_| internal("RSA public key"))?;
        let mut out = vec![0u8; key.ciphertext_size()];
        let n = key
            .encrypt(oaep(alg), plaintext, &mut out, None)
            .map_err(|_| internal("RSA encryption"))?
            .len();
        out.truncate(n);
        Ok(out)
    }

    /// RSA-OAEP decryption; any failure is InvalidCiphertextException.
    pub fn rsa_decrypt(
        &self,
        alg: RsaEncryption,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let LoadedKey::RsaDecrypt(k) = &self.key else {
            return Err(internal("RSA decryption"));
        };
        let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
        let n = k
            .decrypt(oaep(alg), ciphertext, out.as_mut_slice(), None)
            .map_err(|_| KmsError::InvalidCiphertext("the ciphertext does not decrypt".into()))?
            .len();
        out.truncate(n);
        Ok(out)
    }

    /// HMAC of `msg`.
    pub fn mac(&self, msg: &[u8]) -> Result<Vec<u8>, KmsError> {
        match &self.key {
            LoadedKey::Hmac(k) => Ok(hmac::sign(k, msg).as_ref().to_vec()),
            _ => Err(internal("HMAC")),
        }
    }

    /// Whether `tag` is the HMAC of `msg` (constant-time compare).
    pub fn verify_mac(&self, msg: &[u8], tag: &[u8]) -> Result<bool, KmsError> {
        match &self.key {
            LoadedKey::Hmac(k) => Ok(hmac::verify(k, msg, tag).is_ok()),
            _ => Err(internal("HMAC")),
        }
    }

    /// ECDH with a peer public key (DER SubjectPublicKeyInfo): the raw
    /// shared secret (the x coordinate), or None when the peer key is not
    /// a valid point of this key's curve.
    pub fn agree(&self, peer_spki: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, KmsError> {
        let LoadedKey::Ecdh(k) = &self.key else {
            return Err(internal("key agreement"));
        };
        let peer = agreement::UnparsedPublicKey::new(k.algorithm(), peer_spki);
        Ok(agreement::agree(k, peer, (), |s| Ok(Zeroizing::new(s.to_vec()))).ok())
    }
}

fn oaep(alg: RsaEncryption) -> &'static OaepAlgorithm {
    match alg {
        RsaEncryption::OaepSha1 => &OAEP_SHA1_MGF1SHA1,
        RsaEncryption::OaepSha256 => &OAEP_SHA256_MGF1SHA256,
    }
}

/// Whether `der` is a DER SubjectPublicKeyInfo (not a raw point): AWS's
/// DeriveSharedSecret takes only that form.
pub fn is_spki(der: &[u8]) -> bool {
    der.first() == Some(&0x30)
}

/// A fresh data key pair of `spec`: the PKCS#8 private key and the DER
/// SubjectPublicKeyInfo public key.
pub fn generate_key_pair(spec: KeySpec) -> Result<(SecretDer, Vec<u8>), KmsError> {
    let private = generate_private_key(spec, KeyUsage::SignVerify)?;
    let usage = if spec.is_rsa() {
        KeyUsage::EncryptDecrypt
    } else {
        KeyUsage::SignVerify
    };
    let loaded = Loaded::load_private(spec, usage, private.bytes())?;
    Ok((private, loaded.public))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spec/usage the engine makes generates, loads, and signs or
    /// verifies, MACs or agrees as its usage says.
    #[test]
    fn every_spec_round_trips() {
        for spec in [
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1,
            KeySpec::EccNistEdwards25519,
            KeySpec::Rsa2048,
            KeySpec::MlDsa44,
        ] {
            let m = generate_material(spec, KeyUsage::SignVerify).unwrap();
            let l = Loaded::load(spec, KeyUsage::SignVerify, &m).unwrap();
            for &alg in crate::keyspec::signing_algorithms(spec) {
                let sig = l.sign(spec, alg, b"msg", MessageKind::Raw).unwrap();
                assert!(l.verify(spec, alg, b"msg", MessageKind::Raw, &sig).unwrap());
                assert!(!l.verify(spec, alg, b"msh", MessageKind::Raw, &sig).unwrap());
                if let Some(a) = digest_of(alg) {
                    let d = digest::digest(a, b"msg");
                    let ds = l.sign(spec, alg, d.as_ref(), MessageKind::Digest).unwrap();
                    assert!(l.verify(spec, alg, b"msg", MessageKind::Raw, &ds).unwrap());
                    assert!(
                        l.verify(spec, alg, d.as_ref(), MessageKind::Digest, &sig)
                            .unwrap()
                    );
                }
            }
        }
        let m = generate_material(KeySpec::Hmac224, KeyUsage::GenerateVerifyMac).unwrap();
        let l = Loaded::load(KeySpec::Hmac224, KeyUsage::GenerateVerifyMac, &m).unwrap();
        let tag = l.mac(b"m").unwrap();
        assert_eq!(tag.len(), 28);
        assert!(l.verify_mac(b"m", &tag).unwrap());
        assert!(!l.verify_mac(b"n", &tag).unwrap());
        let a = generate_material(KeySpec::EccNistP256, KeyUsage::KeyAgreement).unwrap();
        let b = generate_material(KeySpec::EccNistP256, KeyUsage::KeyAgreement).unwrap();
        let la = Loaded::load(KeySpec::EccNistP256, KeyUsage::KeyAgreement, &a).unwrap();
        let lb = Loaded::load(KeySpec::EccNistP256, KeyUsage::KeyAgreement, &b).unwrap();
        let s1 = la.agree(&lb.public).unwrap().unwrap();
        let s2 = lb.agree(&la.public).unwrap().unwrap();
        assert_eq!(*s1, *s2);
        assert_eq!(s1.len(), 32);
        assert!(la.agree(b"\x30\x03garbage").unwrap().is_none());
    }
}
