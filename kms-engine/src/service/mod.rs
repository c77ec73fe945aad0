//! The engine behind a process boundary: one operation surface
//! ([`Engine::dispatch`]: AWS operation names, AWS JSON shapes) reached
//! through a [`Transport`]. The embedded engine is one transport; the
//! daemon's Unix socket and the AWS JSON 1.1 HTTPS endpoint are the others.
//! Clients (the CLI's `kmsfs kms ...`, the filesystem's key service) are
//! written against [`Transport`] only, so they behave identically whatever
//! the engine is.
//!
//! Principals come from the transport, never from the request body: the
//! kernel (SO_PEERCRED) on the socket, the access key on HTTPS. A client may
//! name another principal (`on_behalf_of`: a FUSE caller of a mount) only
//! through the audited on-behalf-of permission the server checks.

pub mod client;
pub mod frame;
pub(crate) mod inline;
pub mod on_behalf;
pub mod server;

pub use client::{Client, ClientConfig};
pub use server::{ServerConfig, serve};

use crate::{Engine, KmsError, Principal};
use serde_json::Value;

pub mod http;

/// Something that runs engine operations by AWS name with AWS-shaped JSON.
pub trait Transport: Send + Sync {
    /// Runs `operation` (e.g. `"Decrypt"`) with its JSON `request` for the
    /// transport's own principal, or, with `on_behalf_of`, for that
    /// principal (which a remote engine accepts only when the transport's
    /// principal may act for others). A transport failure (engine
    /// unreachable, timeout, broken connection) is
    /// [`KmsError::Unavailable`].
    fn call(
        &self,
        operation: &str,
        request: Value,
        on_behalf_of: Option<&Principal>,
    ) -> Result<Value, KmsError>;
}

/// The embedded engine as a transport: the process holds the store, so it
/// is trusted to name its callers; without `on_behalf_of` the caller is
/// the current process.
impl Transport for Engine {
    fn call(
        &self,
        operation: &str,
        request: Value,
        on_behalf_of: Option<&Principal>,
    ) -> Result<Value, KmsError> {
        match on_behalf_of {
            Some(p) => self.dispatch(p, operation, request),
            None => self.dispatch(&Principal::current_process(), operation, request),
        }
    }
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn call(
        &self,
        operation: &str,
        request: Value,
        on_behalf_of: Option<&Principal>,
    ) -> Result<Value, KmsError> {
        (**self).call(operation, request, on_behalf_of)
    }
}
