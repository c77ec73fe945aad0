//! kms-engine: a local key management engine modeled on AWS KMS.
//!
//! The engine owns master keys (and every rotated version of them), wraps and
//! unwraps data keys under an encryption context, and reports every call to an
//! audit sink. Every operation takes the caller's [`Principal`].

pub mod audit;
pub mod clock;
pub mod context;
pub mod error;
pub mod grant;
pub mod policy;
pub mod principal;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::EncryptionContext;
pub use error::KmsError;
pub use principal::Principal;
