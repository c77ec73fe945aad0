//! kms-engine: a local key management engine modeled on AWS KMS.
//!
//! The engine owns master keys (and every rotated version of them), wraps and
//! unwraps data keys under an encryption context, and reports every call to an
//! audit sink. Every operation takes the caller's [`Principal`].
//!
//! Start with [`Engine::create`] / [`Engine::open`]; call the typed op methods
//! (`create_key`, `encrypt`, `decrypt` ...) or [`Engine::dispatch`] with AWS
//! operation names and AWS-shaped JSON.

pub mod access_key;
pub mod asym;
pub mod audit;
pub mod blob;
pub mod clock;
pub mod context;
pub mod engine;
pub mod error;
pub mod grant;
pub mod identity;
pub mod ids;
pub mod key;
pub mod keyspec;
pub mod ops;
pub mod policy;
pub mod principal;
pub mod safe_fs;
pub mod service;
pub mod state;
pub mod store;
pub mod usage;
pub mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::EncryptionContext;
pub use engine::Engine;
pub use error::KmsError;
pub use identity::Resolver;
pub use ids::KeyId;
pub use key::{KeyRecord, KeyState};
pub use ops::access_keys::*;
pub use ops::agreement::*;
pub use ops::aliases::*;
pub use ops::audit_settings::AuditPathChange;
pub use ops::crypto::*;
pub use ops::datakeys::*;
pub use ops::grants::*;
pub use ops::key_pairs::*;
pub use ops::keys::*;
pub use ops::lifecycle::*;
pub use ops::mac::*;
pub use ops::policies::*;
pub use ops::random::*;
pub use ops::root_key::*;
pub use ops::rotation::*;
pub use ops::sign::*;
pub use ops::store_anchor::AnchorCheck;
pub use ops::tags::*;
pub use principal::{Principal, Unresolved};
pub use store::root::{KdfParams, RootKeySource};
pub use wire::{SecretBytes, Tag};
