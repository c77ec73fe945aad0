//! kmsfs: an encrypted FUSE filesystem that gives every file its own data key,
//! wrapped by a master key in a KMS under an encryption context bound to the
//! file's path.
//!
//! Layers, bottom up: [`crypto`] (AEAD primitives), [`format`](mod@format) (pure on-disk
//! encodings), [`content`] (block encryption), [`names`] (name encryption),
//! [`keys`] (the key service and the data-key cache), [`volume`] (opening a
//! volume), [`fuse`] (the adaptor), [`fsck`](mod@fsck) (checking an unmounted volume).

pub mod content;
pub mod crypto;
pub mod format;
pub mod fsck;
pub mod fuse;
pub mod keys;
pub mod names;
pub mod repair;
pub mod rewrap;
pub mod volume;
