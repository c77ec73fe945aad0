//! Engine errors, one variant per AWS KMS exception (plus the store's own).

use thiserror::Error;

/// An error from an engine operation. Every variant maps to the AWS KMS
/// exception name a client would see ([`KmsError::exception_name`]). Messages
/// never contain key material, plaintext or passphrases.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KmsError {
    #[error("NotFoundException: {0}")]
    NotFound(String),
    #[error("DisabledException: {0}")]
    Disabled(String),
    #[error("KMSInvalidStateException: {0}")]
    InvalidState(String),
    #[error("InvalidCiphertextException: {0}")]
    InvalidCiphertext(String),
    #[error("IncorrectKeyException: {0}")]
    IncorrectKey(String),
    #[error("ValidationException: {0}")]
    Validation(String),
    #[error("AlreadyExistsException: {0}")]
    AlreadyExists(String),
    #[error("LimitExceededException: {0}")]
    LimitExceeded(String),
    #[error("AccessDeniedException: {0}")]
    AccessDenied(String),
    #[error("InvalidAliasNameException: {0}")]
    InvalidAliasName(String),
    #[error("InvalidArnException: {0}")]
    InvalidArn(String),
    #[error("InvalidKeyUsageException: {0}")]
    InvalidKeyUsage(String),
    #[error("InvalidGrantTokenException: {0}")]
    InvalidGrantToken(String),
    #[error("InvalidGrantIdException: {0}")]
    InvalidGrantId(String),
    #[error("MalformedPolicyDocumentException: {0}")]
    MalformedPolicyDocument(String),
    #[error("TagException: {0}")]
    Tag(String),
    #[error("UnsupportedOperationException: {0}")]
    UnsupportedOperation(String),
    /// Verify: the signature does not verify.
    #[error("KMSInvalidSignatureException: {0}")]
    InvalidSignature(String),
    /// VerifyMac: the MAC does not verify.
    #[error("KMSInvalidMacException: {0}")]
    InvalidMac(String),
    /// ImportKeyMaterial: the import token was not made by this engine for
    /// this key (or was altered).
    #[error("InvalidImportTokenException: {0}")]
    InvalidImportToken(String),
    /// ImportKeyMaterial: the import token's 24 hours are over.
    #[error("ExpiredImportTokenException: {0}")]
    ExpiredImportToken(String),
    /// ImportKeyMaterial: the material does not fit the key spec, or is not
    /// the material imported before.
    #[error("IncorrectKeyMaterialException: {0}")]
    IncorrectKeyMaterial(String),
    /// The root key does not open the store: wrong passphrase or key file.
    #[error(
        "IncorrectPassphraseException: the passphrase or key file does not open this engine store"
    )]
    WrongPassphrase,
    /// The store exists but cannot be decoded (corrupted or tampered).
    #[error("StoreCorruptedException: {0}")]
    StoreCorrupted(String),
    /// No store where one was expected.
    #[error("StoreNotFoundException: {0}")]
    StoreNotFound(String),
    /// The store is older than a generation already seen: the one anchored
    /// in the audit trail's signed digests, or the one this engine read.
    #[error("StoreRolledBackException: {0}")]
    StoreRolledBack(String),
    /// An I/O error while reading or writing the store or the audit trail.
    #[error("KMSInternalException: {0}")]
    Internal(String),
    /// The engine could not be reached: a remote engine that is down, a
    /// connection that broke, or a request that timed out (client side;
    /// the filesystem answers EIO, never hangs).
    #[error("KMSUnavailableException: {0}")]
    Unavailable(String),
    /// A system call on the engine's own files (store, lock) failed. The OS
    /// error is kept so a caller can tell a full disk (`ENOSPC`), an
    /// exhausted quota or a read-only filesystem from other failures; to a
    /// client it is still `KMSInternalException`.
    #[error("KMSInternalException: {context}: {message}")]
    Io {
        /// What the engine was doing, e.g. `"writing the engine store"`.
        context: String,
        /// The `std::io::ErrorKind` of the failure.
        kind: std::io::ErrorKind,
        /// The raw `errno`, when the failure came from the OS.
        raw_os_error: Option<i32>,
        /// The OS error's text.
        message: String,
    },
}

impl KmsError {
    /// The AWS-style exception name, e.g. `"NotFoundException"`.
    pub fn exception_name(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::InvalidArn(_) => "InvalidArnException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::InvalidGrantToken(_) => "InvalidGrantTokenException",
            KmsError::InvalidGrantId(_) => "InvalidGrantIdException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::Tag(_) => "TagException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::InvalidSignature(_) => "KMSInvalidSignatureException",
            KmsError::InvalidMac(_) => "KMSInvalidMacException",
            KmsError::InvalidImportToken(_) => "InvalidImportTokenException",
            KmsError::ExpiredImportToken(_) => "ExpiredImportTokenException",
            KmsError::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            KmsError::WrongPassphrase => "IncorrectPassphraseException",
            KmsError::StoreCorrupted(_) => "StoreCorruptedException",
            KmsError::StoreNotFound(_) => "StoreNotFoundException",
            KmsError::StoreRolledBack(_) => "StoreRolledBackException",
            KmsError::Internal(_) | KmsError::Io { .. } => "KMSInternalException",
            KmsError::Unavailable(_) => "KMSUnavailableException",
        }
    }

    /// The human-readable message without the exception name.
    pub fn message(&self) -> String {
        let full = self.to_string();
        match full.split_once(": ") {
            Some((_, msg)) => msg.to_string(),
            None => full,
        }
    }
}

impl KmsError {
    /// The error a remote engine reported as exception `name` with
    /// `message` (the inverse of [`KmsError::exception_name`] and
    /// [`KmsError::message`]); an unknown name becomes
    /// [`KmsError::Internal`] with the name kept in the message.
    pub fn from_exception(name: &str, message: String) -> KmsError {
        match name {
            "NotFoundException" => KmsError::NotFound(message),
            "DisabledException" => KmsError::Disabled(message),
            "KMSInvalidStateException" => KmsError::InvalidState(message),
            "InvalidCiphertextException" => KmsError::InvalidCiphertext(message),
            "IncorrectKeyException" => KmsError::IncorrectKey(message),
            "ValidationException" => KmsError::Validation(message),
            "AlreadyExistsException" => KmsError::AlreadyExists(message),
            "LimitExceededException" => KmsError::LimitExceeded(message),
            "AccessDeniedException" => KmsError::AccessDenied(message),
            "InvalidAliasNameException" => KmsError::InvalidAliasName(message),
            "InvalidArnException" => KmsError::InvalidArn(message),
            "InvalidKeyUsageException" => KmsError::InvalidKeyUsage(message),
            "InvalidGrantTokenException" => KmsError::InvalidGrantToken(message),
            "InvalidGrantIdException" => KmsError::InvalidGrantId(message),
            "MalformedPolicyDocumentException" => KmsError::MalformedPolicyDocument(message),
            "TagException" => KmsError::Tag(message),
            "UnsupportedOperationException" => KmsError::UnsupportedOperation(message),
            "KMSInvalidSignatureException" => KmsError::InvalidSignature(message),
            "KMSInvalidMacException" => KmsError::InvalidMac(message),
            "InvalidImportTokenException" => KmsError::InvalidImportToken(message),
            "ExpiredImportTokenException" => KmsError::ExpiredImportToken(message),
            "IncorrectKeyMaterialException" => KmsError::IncorrectKeyMaterial(message),
            "IncorrectPassphraseException" => KmsError::WrongPassphrase,
            "StoreCorruptedException" => KmsError::StoreCorrupted(message),
            "StoreNotFoundException" => KmsError::StoreNotFound(message),
            "StoreRolledBackException" => KmsError::StoreRolledBack(message),
            "KMSInternalException" => KmsError::Internal(message),
            "KMSUnavailableException" => KmsError::Unavailable(message),
            other => KmsError::Internal(format!("{other}: {message}")),
        }
    }

    /// An I/O failure while `context`, keeping the OS error.
    pub fn io(context: impl Into<String>, e: &std::io::Error) -> KmsError {
        KmsError::Io {
            context: context.into(),
            kind: e.kind(),
            raw_os_error: e.raw_os_error(),
            message: e.to_string(),
        }
    }

    /// The OS `errno` behind this error, if it is an I/O failure that came
    /// from a system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            KmsError::Io { raw_os_error, .. } => *raw_os_error,
            _ => None,
        }
    }
}

impl From<std::io::Error> for KmsError {
    fn from(e: std::io::Error) -> Self {
        KmsError::io("I/O error", &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_name_matches_display_prefix() {
        let errors = [
            KmsError::NotFound("k".into()),
            KmsError::InvalidState("k".into()),
            KmsError::WrongPassphrase,
            KmsError::Internal("x".into()),
            KmsError::io(
                "writing the engine store",
                &std::io::Error::from_raw_os_error(28),
            ),
        ];
        for e in errors {
            assert!(e.to_string().starts_with(e.exception_name()), "{e}");
        }
        assert_eq!(KmsError::NotFound("no key".into()).message(), "no key");
    }

    /// What a remote engine sends (exception name and message) turns back
    /// into the same error, so clients over any transport see one error.
    #[test]
    fn from_exception_inverts_exception_name_and_message() {
        let errors = [
            KmsError::NotFound("k".into()),
            KmsError::Disabled("k".into()),
            KmsError::InvalidState("k".into()),
            KmsError::InvalidCiphertext("c".into()),
            KmsError::IncorrectKey("k".into()),
            KmsError::Validation("v".into()),
            KmsError::AlreadyExists("a".into()),
            KmsError::LimitExceeded("l".into()),
            KmsError::AccessDenied("no".into()),
            KmsError::InvalidAliasName("a".into()),
            KmsError::InvalidArn("a".into()),
            KmsError::InvalidKeyUsage("u".into()),
            KmsError::InvalidGrantToken("t".into()),
            KmsError::InvalidGrantId("g".into()),
            KmsError::MalformedPolicyDocument("p".into()),
            KmsError::Tag("t".into()),
            KmsError::UnsupportedOperation("o".into()),
            KmsError::InvalidSignature("s".into()),
            KmsError::InvalidMac("m".into()),
            KmsError::InvalidImportToken("t".into()),
            KmsError::ExpiredImportToken("t".into()),
            KmsError::IncorrectKeyMaterial("m".into()),
            KmsError::WrongPassphrase,
            KmsError::StoreCorrupted("s".into()),
            KmsError::StoreNotFound("s".into()),
            KmsError::StoreRolledBack("s".into()),
            KmsError::Internal("i".into()),
            KmsError::Unavailable("down".into()),
        ];
        for e in errors {
            assert_eq!(KmsError::from_exception(e.exception_name(), e.message()), e);
        }
        assert_eq!(
            KmsError::from_exception("ThrottlingException", "slow down".into()),
            KmsError::Internal("ThrottlingException: slow down".into())
        );
    }

    #[test]
    fn io_errors_keep_the_os_error_and_stay_internal_to_clients() {
        let os = std::io::Error::from_raw_os_error(28); // ENOSPC on Linux
        let e = KmsError::io("writing the engine store", &os);
        assert_eq!(e.exception_name(), "KMSInternalException");
        assert_eq!(e.raw_os_error(), Some(28));
        assert!(
            matches!(&e, KmsError::Io { kind, .. } if *kind == std::io::ErrorKind::StorageFull),
            "{e:?}"
        );
        assert!(e.message().starts_with("writing the engine store: "), "{e}");
        let from = KmsError::from(std::io::Error::from_raw_os_error(30));
        assert_eq!(from.raw_os_error(), Some(30));
        assert_eq!(from.exception_name(), "KMSInternalException");
        assert_eq!(KmsError::Internal("x".into()).raw_os_error(), None);
    }
}
