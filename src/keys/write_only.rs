//! Write-only volumes (`kmsfs init --write-only-key RSA_KEY`): a mount
//! wraps each new file's data key so that only a principal allowed to
//! Decrypt with the volume's RSA key can unwrap it, and the mount itself
//! needs no such permission.
//!
//! # Design
//!
//! The file header has 102 bytes for the wrapped data key; an RSA-OAEP
//! ciphertext is 256 to 512 bytes. So a mount draws one random 32-byte
//! *slot key* (at its first new file), encrypts it once under the RSA
//! key's public key (RSAES_OAEP_SHA_256, locally, from one GetPublicKey)
//! into a *slot file* `kmsfs.writers/<slot id>`, and wraps every new data
//! key under the slot key with AES-256-GCM-SIV, the encryption context
//! (volume and path) as associated data: 81 bytes in the header, no service
//! call per file. The path binding is that associated data; the slot's
//! binding to the volume is a hash inside the RSA plaintext, checked after
//! Decrypt (RSA Decrypt takes no encryption context). Byte layouts:
//! docs/file-format.md, "Write-only volumes".
//!
//! Reading a file always asks the service: Decrypt of the file's slot with
//! the RSA key, as the FUSE caller, cached per (slot, principal) for the
//! mount's re-authorization interval as data keys are. The mount never
//! uses the slot key it made to read: a host denied Decrypt cannot read
//! back what it wrote, even while it still holds the slot key. It does use
//! it for what needs a data key without reading: opening for writing
//! ([`WriteOnlyKeys::decrypt_for_write`]) and renaming (a re-wrap) files of
//! its own slot. Files of other slots need the service's Decrypt for those
//! too, so a writing host gets EACCES.

use crate::crypto::{self, NONCE_LEN, RsaOaepPublicKey, SivKey, TAG_LEN};
use crate::keys::cache::{CacheKey, cache_key};
use crate::keys::{
    DataKeyBytes, GeneratedDataKey, KeyService, PublicKeyInfo, SecretVec, ServiceStats,
};
use kms_engine::context::canonical_encoding;
use kms_engine::{EncryptionContext, KmsError, Principal};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The directory (in the cipher root) holding the slot files.
pub const SLOT_DIR_NAME: &str = "kmsfs.writers";
/// The RSA encryption algorithm, in AWS KMS's name.
pub const OAEP_ALGORITHM: &str = "RSAES_OAEP_SHA_256";
/// The first bytes of a data key wrapped under a slot key.
pub const WRAP_MAGIC: [u8; 4] = *b"KMWO";
/// The first bytes of a slot file.
pub const SLOT_MAGIC: [u8; 4] = *b"KMWS";
/// The version of both formats.
pub const FORMAT_VERSION: u8 = 1;
/// Length of a slot id.
pub const SLOT_ID_LEN: usize = 16;
/// magic, version, slot id: the part of the wrapped key before the nonce.
const WRAP_PREFIX_LEN: usize = 4 + 1 + SLOT_ID_LEN;
/// Length of a wrapped data key: prefix, nonce, 32-byte key, tag.
pub const WRAPPED_KEY_LEN: usize = WRAP_PREFIX_LEN + NONCE_LEN + 32 + TAG_LEN;
// It fits the file header.
const _: () = assert!(WRAPPED_KEY_LEN <= crate::format::MAX_WRAPPED_DEK_LEN);
/// magic, version, slot id, u16 length: the part of a slot file before
/// the RSA ciphertext.
const SLOT_PREFIX_LEN: usize = 4 + 1 + SLOT_ID_LEN + 2;
/// The largest RSA ciphertext (RSA_4096).
const MAX_RSA_LEN: usize = 512;
/// The largest slot file.
pub const MAX_SLOT_FILE_LEN: usize = SLOT_PREFIX_LEN + MAX_RSA_LEN;
/// Mode of a slot file (a ciphertext; readable like `kmsfs.conf`).
pub const SLOT_FILE_MODE: u32 = 0o644;
/// The label that starts the slot binding's hash input.
const SLOT_BINDING_LABEL: &[u8] = b"kmsfs write-only slot v1\0";
/// Slot keys kept per (slot, principal) before the map is emptied.
const MAX_OPENED: usize = 4096;

/// Whether `wrapped` is a data key wrapped under a slot key (it starts
/// with [`WRAP_MAGIC`]); anything else is the key service's own blob.
pub fn is_slot_wrapped(wrapped: &[u8]) -> bool {
    wrapped.starts_with(&WRAP_MAGIC)
}

/// The file name of slot `id`: 32 lowercase hex digits.
pub fn slot_file_name(id: &[u8; SLOT_ID_LEN]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn bad(what: impl Into<String>) -> KmsError {
    KmsError::InvalidCiphertext(what.into())
}

/// The slot id of a wrapped data key; checks length, magic and version.
pub fn wrapped_slot_id(wrapped: &[u8]) -> Result<[u8; SLOT_ID_LEN], KmsError> {
    if wrapped.len() != WRAPPED_KEY_LEN || !is_slot_wrapped(wrapped) {
        return Err(bad(format!(
            "a write-only wrapped data key is {WRAPPED_KEY_LEN} bytes starting with KMWO; \
             this one is {} bytes",
            wrapped.len()
        )));
    }
    if wrapped[4] != FORMAT_VERSION {
        return Err(bad(format!(
            "unknown write-only wrapped key version {}",
            wrapped[4]
        )));
    }
    let mut id = [0u8; SLOT_ID_LEN];
    id.copy_from_slice(&wrapped[5..WRAP_PREFIX_LEN]);
    Ok(id)
}

/// Associated data of a wrapped data key: its first 21 bytes, then the
/// canonical encoding of the file's encryption context.
fn wrap_aad(prefix: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    let mut aad = prefix[..WRAP_PREFIX_LEN].to_vec();
    aad.extend_from_slice(&canonical_encoding(ctx));
    aad
}

/// Wraps `dek` under slot `id`'s key with `nonce`, bound to `ctx`.
pub fn seal_data_key(
    slot_key: &SivKey,
    id: &[u8; SLOT_ID_LEN],
    nonce: &[u8; NONCE_LEN],
    dek: &DataKeyBytes,
    ctx: &EncryptionContext,
) -> Result<Vec<u8>, KmsError> {
    let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
    out.extend_from_slice(&WRAP_MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(id);
    out.extend_from_slice(nonce);
    let mut ct = [0u8; 32];
    let mut tag = [0u8; TAG_LEN];
    slot_key
        .seal_out_of_place(
            nonce,
            &wrap_aad(&out, ctx),
            dek.as_slice(),
            &mut ct,
            &mut tag,
        )
        .map_err(|e| KmsError::Internal(format!("wrapping a data key: {e}")))?;
    out.extend_from_slice(&ct);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Unwraps a data key wrapped by [`seal_data_key`] under `ctx`; a wrong
/// slot key, context (a moved file) or any changed byte is
/// InvalidCiphertext.
pub fn open_data_key(
    slot_key: &SivKey,
    wrapped: &[u8],
    ctx: &EncryptionContext,
) -> Result<DataKeyBytes, KmsError> {
    wrapped_slot_id(wrapped)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&wrapped[WRAP_PREFIX_LEN..WRAP_PREFIX_LEN + NONCE_LEN]);
    let ct = &wrapped[WRAP_PREFIX_LEN + NONCE_LEN..WRAP_PREFIX_LEN + NONCE_LEN + 32];
    let tag = &wrapped[WRAP_PREFIX_LEN + NONCE_LEN + 32..];
    let mut dek = DataKeyBytes::new([0u8; 32]);
    slot_key
        .open_out_of_place(&nonce, &wrap_aad(wrapped, ctx), ct, tag, dek.as_mut_slice())
        .map_err(|_| {
            bad("the data key does not open under this path (moved, or changed) with its slot key")
        })?;
    Ok(dek)
}

/// The 32-byte binding of slot `id` to `volume_id`: SHA-256 of the label,
/// the slot id and the volume id's 36 ASCII bytes.
pub fn slot_binding(volume_id: &str, id: &[u8; SLOT_ID_LEN]) -> [u8; 32] {
    let mut input = SLOT_BINDING_LABEL.to_vec();
    input.extend_from_slice(id);
    input.extend_from_slice(volume_id.as_bytes());
    crypto::sha256(&input)
}

/// The RSA plaintext of a slot: the slot key, then its binding.
pub fn slot_plaintext(slot_key: &[u8; 32], volume_id: &str, id: &[u8; SLOT_ID_LEN]) -> SecretVec {
    let mut pt = Zeroizing::new(Vec::with_capacity(64));
    pt.extend_from_slice(slot_key);
    pt.extend_from_slice(&slot_binding(volume_id, id));
    pt
}

/// The slot key in an RSA plaintext, once its binding is checked.
pub fn check_slot_plaintext(
    pt: &[u8],
    volume_id: &str,
    id: &[u8; SLOT_ID_LEN],
) -> Result<Zeroizing<[u8; 32]>, KmsError> {
    if pt.len() != 64 || pt[32..] != slot_binding(volume_id, id) {
        return Err(bad(
            "the slot file does not belong to this slot of this volume (its binding differs)",
        ));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&pt[..32]);
    Ok(key)
}

/// A slot file: magic, version, slot id, u16 BE length, RSA ciphertext.
pub fn encode_slot_file(id: &[u8; SLOT_ID_LEN], rsa_ciphertext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SLOT_PREFIX_LEN + rsa_ciphertext.len());
    out.extend_from_slice(&SLOT_MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(id);
    // At most MAX_RSA_LEN (512): fits in a u16.
    out.extend_from_slice(&(rsa_ciphertext.len() as u16).to_be_bytes());
    out.extend_from_slice(rsa_ciphertext);
    out
}

/// The RSA ciphertext of slot file `bytes`, which must be slot `id`'s.
pub fn decode_slot_file<'a>(bytes: &'a [u8], id: &[u8; SLOT_ID_LEN]) -> Result<&'a [u8], KmsError> {
    if bytes.len() < SLOT_PREFIX_LEN || bytes[..4] != SLOT_MAGIC {
        return Err(bad("not a slot file (bad magic or too short)"));
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(bad(format!("unknown slot file version {}", bytes[4])));
    }
    if bytes[5..5 + SLOT_ID_LEN] != id[..] {
        return Err(bad("the slot file names another slot"));
    }
    let len = usize::from(u16::from_be_bytes([bytes[21], bytes[22]]));
    if !(1..=MAX_RSA_LEN).contains(&len) || bytes.len() != SLOT_PREFIX_LEN + len {
        return Err(bad("slot file length does not match its RSA ciphertext"));
    }
    Ok(&bytes[SLOT_PREFIX_LEN..])
}

/// Checks that GetPublicKey's answer is a key a write-only volume can
/// use: RSA, ENCRYPT_DECRYPT, with RSAES_OAEP_SHA_256.
pub fn check_public_key(info: &PublicKeyInfo) -> Result<RsaOaepPublicKey, KmsError> {
    if !info.key_spec.starts_with("RSA_")
        || info.key_usage != "ENCRYPT_DECRYPT"
        || !info
            .encryption_algorithms
            .iter()
            .any(|a| a == OAEP_ALGORITHM)
    {
        return Err(KmsError::InvalidKeyUsage(format!(
            "{}: a write-only volume needs an RSA key with key usage ENCRYPT_DECRYPT and \
             {OAEP_ALGORITHM}; this one is {} {}",
            info.key_id, info.key_spec, info.key_usage
        )));
    }
    RsaOaepPublicKey::from_der(&info.public_key).map_err(|_| {
        KmsError::InvalidKeyUsage(format!(
            "{}: the public key GetPublicKey returned does not load as an RSA key",
            info.key_id
        ))
    })
}

/// This mount's slot.
struct OwnSlot {
    id: [u8; SLOT_ID_LEN],
    key: SivKey,
}

/// A slot key the service gave a principal.
struct OpenedSlot {
    key: Arc<SivKey>,
    fetched: Instant,
}

/// Unwraps data keys wrapped under slot keys: reads the slot file, asks
/// the key service to Decrypt it as the caller, keeps the slot key per
/// (slot, principal) for the re-authorization interval. What a mount and
/// `kmsfs fsck` read a write-only volume's files with.
pub struct SlotReader {
    root: PathBuf,
    volume_id: String,
    key_id: String,
    reauth: Duration,
    opened: Mutex<HashMap<CacheKey, OpenedSlot>>,
}

impl std::fmt::Debug for SlotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotReader")
            .field("volume_id", &self.volume_id)
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl SlotReader {
    /// For the volume `volume_id` at `root` whose RSA key is `key_id`.
    pub fn new(root: &Path, volume_id: &str, key_id: &str, reauth: Duration) -> SlotReader {
        SlotReader {
            root: root.to_path_buf(),
            volume_id: volume_id.to_string(),
            key_id: key_id.to_string(),
            reauth,
            opened: Mutex::new(HashMap::new()),
        }
    }

    fn slot_dir(&self) -> PathBuf {
        self.root.join(SLOT_DIR_NAME)
    }

    /// Slot `id`'s key as `keys` gives it to `caller`: Decrypt of the slot
    /// file with the RSA key, reused for the re-authorization interval.
    fn slot_key(
        &self,
        keys: &dyn KeyService,
        caller: &Principal,
        id: &[u8; SLOT_ID_LEN],
    ) -> Result<Arc<SivKey>, KmsError> {
        let ck = cache_key(id, &EncryptionContext::new(), caller);
        if let Ok(opened) = self.opened.lock()
            && let Some(o) = opened.get(&ck)
            && o.fetched.elapsed() < self.reauth
        {
            return Ok(o.key.clone());
        }
        let path = self.slot_dir().join(slot_file_name(id));
        let bytes = crate::volume::read_small_file(&path, MAX_SLOT_FILE_LEN).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                bad(format!(
                    "the slot file {SLOT_DIR_NAME}/{} of this file's key is missing",
                    slot_file_name(id)
                ))
            } else if e.raw_os_error() == Some(libc::EIO) {
                bad(format!(
                    "the slot file {SLOT_DIR_NAME}/{} is not a regular file of at most \
                     {MAX_SLOT_FILE_LEN} bytes",
                    slot_file_name(id)
                ))
            } else {
                KmsError::io(format!("reading {}", path.display()), &e)
            }
        })?;
        let rsa = decode_slot_file(&bytes, id)?;
        let pt = keys.decrypt_asymmetric(caller, &self.key_id, rsa, OAEP_ALGORITHM)?;
        let key = check_slot_plaintext(&pt, &self.volume_id, id)?;
        let key = Arc::new(SivKey::new(&key).map_err(|e| KmsError::Internal(e.to_string()))?);
        if let Ok(mut opened) = self.opened.lock() {
            opened.retain(|_, o| o.fetched.elapsed() < self.reauth);
            if opened.len() >= MAX_OPENED {
                opened.clear();
            }
            if !self.reauth.is_zero() {
                opened.insert(
                    ck,
                    OpenedSlot {
                        key: key.clone(),
                        fetched: Instant::now(),
                    },
                );
            }
        }
        Ok(key)
    }

    /// The data key of the slot-wrapped `wrapped` under `ctx`, as `keys`
    /// lets `caller` have it.
    pub fn decrypt_data_key(
        &self,
        keys: &dyn KeyService,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        let id = wrapped_slot_id(wrapped)?;
        let key = self.slot_key(keys, caller, &id)?;
        open_data_key(&key, wrapped, ctx)
    }
}

/// The write-only volume's [`KeyService`] in front of the volume's key
/// service (see the module documentation). Data keys of ordinary blobs
/// (the names key) pass through to the inner service.
pub struct WriteOnlyKeys {
    inner: Arc<dyn KeyService>,
    reader: SlotReader,
    public: OnceLock<RsaOaepPublicKey>,
    own: Mutex<Option<Arc<OwnSlot>>>,
}

impl std::fmt::Debug for WriteOnlyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOnlyKeys")
            .field("reader", &self.reader)
            .finish()
    }
}

impl WriteOnlyKeys {
    /// For the volume `volume_id` at `root` whose RSA key is `key_id`;
    /// slot keys given by the service are reused for `reauth` (per
    /// principal). New files need [`WriteOnlyKeys::load_public_key`] first.
    pub fn new(
        inner: Arc<dyn KeyService>,
        root: &Path,
        volume_id: &str,
        key_id: &str,
        reauth: Duration,
    ) -> WriteOnlyKeys {
        WriteOnlyKeys {
            inner,
            reader: SlotReader::new(root, volume_id, key_id, reauth),
            public: OnceLock::new(),
            own: Mutex::new(None),
        }
    }

    /// The volume's RSA key.
    pub fn key_id(&self) -> &str {
        &self.reader.key_id
    }

    /// GetPublicKey of the volume's RSA key as `caller`, checked: what a
    /// writable mount does once, at mount.
    pub fn load_public_key(&self, caller: &Principal) -> Result<(), KmsError> {
        let info = self.inner.get_public_key(caller, &self.reader.key_id)?;
        let public = check_public_key(&info)?;
        let _ = self.public.set(public);
        Ok(())
    }

    /// The id of this mount's slot, once it made one.
    pub fn own_slot_id(&self) -> Option<[u8; SLOT_ID_LEN]> {
        self.own.lock().ok()?.as_ref().map(|s| s.id)
    }

    /// This mount's slot, made (and its slot file written) the first time.
    fn own_slot(&self) -> Result<Arc<OwnSlot>, KmsError> {
        let mut own = self
            .own
            .lock()
            .map_err(|_| KmsError::Internal("slot lock poisoned".into()))?;
        if let Some(s) = own.as_ref() {
            return Ok(s.clone());
        }
        let public = self.public.get().ok_or_else(|| {
            KmsError::UnsupportedOperation(
                "this mount has no public key of the write-only key (mounted read-only)".into(),
            )
        })?;
        let rng = |e: crypto::CryptoError| KmsError::Internal(format!("random: {e}"));
        let id: [u8; SLOT_ID_LEN] = crypto::random_array().map_err(rng)?;
        let key = Zeroizing::new(crypto::random_array::<32>().map_err(rng)?);
        let rsa = public
            .encrypt(&slot_plaintext(&key, &self.reader.volume_id, &id))
            .map_err(|e| KmsError::Internal(format!("RSA-OAEP encryption: {e}")))?;
        let dir = self.reader.slot_dir();
        let io = |e: std::io::Error| KmsError::io(format!("writing {}", dir.display()), &e);
        match std::fs::create_dir(&dir) {
            // 0755 whatever the umask: readers' mounts, other users' too,
            // read the slot files (ciphertexts only).
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        if !std::fs::symlink_metadata(&dir).map_err(io)?.is_dir() {
            return Err(KmsError::Internal(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let path = dir.join(slot_file_name(&id));
        kms_engine::safe_fs::write_atomic(&path, &encode_slot_file(&id, &rsa), SLOT_FILE_MODE)
            .map_err(io)?;
        let slot = Arc::new(OwnSlot {
            id,
            key: SivKey::new(&key).map_err(|e| KmsError::Internal(e.to_string()))?,
        });
        log::info!(
            "write-only volume: new files' keys go to slot {}",
            slot_file_name(&id)
        );
        *own = Some(slot.clone());
        Ok(slot)
    }

    /// The data key of `wrapped` for writing (no read through it): from
    /// this mount's own slot key when the file is one this mount created,
    /// else as [`KeyService::decrypt_data_key`] (the service decides).
    pub fn decrypt_for_write(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        if is_slot_wrapped(wrapped) {
            let id = wrapped_slot_id(wrapped)?;
            let own = self.own.lock().ok().and_then(|o| o.clone());
            if let Some(own) = own.filter(|o| o.id == id) {
                return open_data_key(&own.key, wrapped, ctx);
            }
        }
        self.decrypt_data_key(caller, wrapped, ctx)
    }
}

impl KeyService for WriteOnlyKeys {
    fn sync_audit(&self) -> Result<(), KmsError> {
        self.inner.sync_audit()
    }

    /// A fresh data key wrapped under this mount's slot: no service call.
    fn generate_data_key(
        &self,
        _caller: &Principal,
        _key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let slot = self.own_slot()?;
        let rng = |e: crypto::CryptoError| KmsError::Internal(format!("random: {e}"));
        let plaintext = DataKeyBytes::new(crypto::random_array().map_err(rng)?);
        let nonce = crypto::random_nonce().map_err(rng)?;
        let wrapped = seal_data_key(&slot.key, &slot.id, &nonce, &plaintext, ctx)?;
        Ok(GeneratedDataKey { plaintext, wrapped })
    }

    fn decrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKeyBytes, KmsError> {
        if !is_slot_wrapped(wrapped) {
            return self.inner.decrypt_data_key(caller, wrapped, ctx);
        }
        self.reader
            .decrypt_data_key(&*self.inner, caller, wrapped, ctx)
    }

    /// Re-binds the key to `new_ctx` under this mount's slot: the data key
    /// comes from [`WriteOnlyKeys::decrypt_for_write`].
    fn rewrap_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        old_ctx: &EncryptionContext,
        new_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        if !is_slot_wrapped(wrapped) {
            return self
                .inner
                .rewrap_data_key(caller, wrapped, old_ctx, new_ctx);
        }
        let dek = self.decrypt_for_write(caller, wrapped, old_ctx)?;
        let slot = self.own_slot()?;
        let nonce =
            crypto::random_nonce().map_err(|e| KmsError::Internal(format!("random: {e}")))?;
        seal_data_key(&slot.key, &slot.id, &nonce, &dek, new_ctx)
    }

    fn wrapping_key_id(&self, wrapped: &[u8]) -> Result<String, KmsError> {
        if is_slot_wrapped(wrapped) {
            return Ok(self.reader.key_id.clone());
        }
        self.inner.wrapping_key_id(wrapped)
    }

    fn service_stats(&self) -> Option<ServiceStats> {
        self.inner.service_stats()
    }

    fn unreachable(&self) -> bool {
        self.inner.unreachable()
    }

    fn reencrypt_data_key(
        &self,
        caller: &Principal,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        dest_key: &str,
    ) -> Result<Vec<u8>, KmsError> {
        if is_slot_wrapped(wrapped) {
            return Err(KmsError::UnsupportedOperation(
                "a write-only volume's data keys are wrapped for its RSA key's public key, \
                 not by a master key: rewrap does not apply"
                    .into(),
            ));
        }
        self.inner
            .reencrypt_data_key(caller, wrapped, ctx, dest_key)
    }

    fn encrypt_data_key(
        &self,
        caller: &Principal,
        key_id: &str,
        key: &DataKeyBytes,
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.inner.encrypt_data_key(caller, key_id, key, ctx)
    }

    fn get_public_key(&self, caller: &Principal, key_id: &str) -> Result<PublicKeyInfo, KmsError> {
        self.inner.get_public_key(caller, key_id)
    }

    fn decrypt_asymmetric(
        &self,
        caller: &Principal,
        key_id: &str,
        ciphertext: &[u8],
        algorithm: &str,
    ) -> Result<SecretVec, KmsError> {
        self.inner
            .decrypt_asymmetric(caller, key_id, ciphertext, algorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_engine::context::context_from;

    const VOLUME: &str = "0f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b";

    fn ctx(path: &str) -> EncryptionContext {
        context_from([("kmsfs:path", path), ("kmsfs:volume", VOLUME)])
    }

    fn slot_key() -> SivKey {
        let k: [u8; 32] = std::array::from_fn(|i| i as u8);
        SivKey::new(&k).unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Pinned with Python `cryptography`'s AESGCMSIV over the layout in
    /// docs/file-format.md ("Write-only volumes").
    #[test]
    fn known_answer_wrapped_key_and_binding() {
        let w = seal_data_key(
            &slot_key(),
            &[0x11; 16],
            &[0xa5; 12],
            &DataKeyBytes::new([0x42; 32]),
            &ctx("/a"),
        )
        .unwrap();
        assert_eq!(w.len(), WRAPPED_KEY_LEN);
        assert_eq!(
            hex(&w),
            "4b4d574f0111111111111111111111111111111111a5a5a5a5a5a5a5a5a5a5a5a5\
             c0eb4190244fe6ab34593124b58afcbbf4a42a180d5d3a0ca5576f23b536f4e0\
             20a201b4694674961ce6ddf8c91ded3e"
        );
        assert_eq!(
            hex(&slot_binding(VOLUME, &[0x11; 16])),
            "896dd46572bc3796e337b533f2aa19e6319a312fcb00dc0b06d086e4abc45d61"
        );
    }

    #[test]
    fn a_key_opens_under_its_path_only_and_any_changed_byte_fails() {
        let dek = DataKeyBytes::new([7; 32]);
        let w = seal_data_key(&slot_key(), &[3; 16], &[9; 12], &dek, &ctx("/d/f")).unwrap();
        assert_eq!(
            *open_data_key(&slot_key(), &w, &ctx("/d/f")).unwrap(),
            [7; 32]
        );
        assert_eq!(wrapped_slot_id(&w).unwrap(), [3; 16]);
        let moved = open_data_key(&slot_key(), &w, &ctx("/d/g"));
        assert!(matches!(moved, Err(KmsError::InvalidCiphertext(_))));
        let other_volume = context_from([
            ("kmsfs:path", "/d/f"),
            ("kmsfs:volume", "1f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b"),
        ]);
        assert!(open_data_key(&slot_key(), &w, &other_volume).is_err());
        let other_key = SivKey::new(&[1; 32]).unwrap();
        assert!(open_data_key(&other_key, &w, &ctx("/d/f")).is_err());
        for i in 0..w.len() {
            let mut bad = w.clone();
            bad[i] ^= 0x01;
            assert!(
                open_data_key(&slot_key(), &bad, &ctx("/d/f")).is_err(),
                "byte {i}"
            );
        }
        assert!(wrapped_slot_id(&w[..80]).is_err());
        let mut v2 = w.clone();
        v2[4] = 2;
        assert!(wrapped_slot_id(&v2).is_err());
    }

    #[test]
    fn slot_files_round_trip_and_bad_ones_are_refused() {
        let id = [5u8; 16];
        let rsa = vec![0xee; 256];
        let file = encode_slot_file(&id, &rsa);
        assert_eq!(file.len(), 23 + 256);
        assert_eq!(&file[..4], b"KMWS");
        assert_eq!(decode_slot_file(&file, &id).unwrap(), rsa.as_slice());
        assert!(
            decode_slot_file(&file, &[6; 16]).is_err(),
            "another slot's file"
        );
        assert!(decode_slot_file(&file[..file.len() - 1], &id).is_err());
        let mut longer = file.clone();
        longer.push(0);
        assert!(decode_slot_file(&longer, &id).is_err());
        let mut magic = file.clone();
        magic[0] = b'X';
        assert!(decode_slot_file(&magic, &id).is_err());
        let key = [0x33; 32];
        let pt = slot_plaintext(&key, VOLUME, &id);
        assert_eq!(*check_slot_plaintext(&pt, VOLUME, &id).unwrap(), key);
        assert!(check_slot_plaintext(&pt, VOLUME, &[6; 16]).is_err());
        assert!(check_slot_plaintext(&pt, "1f8e2a3c-5b7d-4e1f-9a2b-3c4d5e6f7a8b", &id).is_err());
        assert!(check_slot_plaintext(&pt[..63], VOLUME, &id).is_err());
    }

    #[test]
    fn only_rsa_encrypt_decrypt_keys_with_oaep_sha256_are_taken() {
        let info = |spec: &str, usage: &str, algs: &[&str]| PublicKeyInfo {
            key_id: "k".into(),
            public_key: vec![0; 10],
            key_spec: spec.into(),
            key_usage: usage.into(),
            encryption_algorithms: algs.iter().map(|a| a.to_string()).collect(),
        };
        for bad in [
            info("RSA_2048", "SIGN_VERIFY", &[]),
            info("ECC_NIST_P256", "KEY_AGREEMENT", &[]),
            info("RSA_2048", "ENCRYPT_DECRYPT", &["RSAES_OAEP_SHA_1"]),
        ] {
            assert!(matches!(
                check_public_key(&bad),
                Err(KmsError::InvalidKeyUsage(_))
            ));
        }
        // The right kind, but not a loadable key.
        let garbage = info("RSA_2048", "ENCRYPT_DECRYPT", &["RSAES_OAEP_SHA_256"]);
        assert!(check_public_key(&garbage).is_err());
    }
}
