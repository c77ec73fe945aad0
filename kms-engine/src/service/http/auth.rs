//! Who sent an HTTPS request: the integration point between the endpoint and
//! the request-signature verifier (SigV4 over the engine's access keys). The
//! endpoint runs no operation before an [`Authenticator`] accepted the
//! request, and the principal an operation runs for is the one the
//! authenticator returns, never one named in the request body.

use crate::Principal;
use hyper::HeaderMap;

/// What an authenticator sees of a request: everything a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// `POST`, ...
    pub method: &'a str,
    /// The URI path as sent (`/`).
    pub path: &'a str,
    /// The raw query string (`""` when there is none).
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    /// The whole body (already bounded by the endpoint's body limit).
    pub body: &'a [u8],
}

/// An accepted request: the access key that signed it and the principal
/// that key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub access_key_id: String,
    pub principal: Principal,
}

/// A refused request, with the AWS exception a client expects
/// (`MissingAuthenticationTokenException`, `IncompleteSignatureException`,
/// `InvalidSignatureException`, `UnrecognizedClientException`,
/// `ExpiredTokenException` ...). Answered as HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRefusal {
    pub exception: &'static str,
    pub message: String,
    /// The access key id the request claimed, when it named one (for the
    /// audit record of the refusal).
    pub access_key_id: Option<String>,
}

/// Verifies requests (see the module doc). Called on a blocking thread:
/// an implementation may read the engine store.
pub trait Authenticator: Send + Sync {
    fn authenticate(&self, request: &RequestParts<'_>) -> Result<Authenticated, AuthRefusal>;
}
