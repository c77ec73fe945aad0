//! Which calls a server runs on its async runtime's own threads instead of
//! handing them to the blocking pool (two thread switches per call).
//!
//! Only operations that read the engine's state in memory and write
//! nothing but their audit record qualify: their work is cryptography on
//! keys already unsealed. Their audit record's flush is not waited for on
//! the thread ([`crate::audit::deferring`]): the server answers once it is
//! durable. A call that would seal a store write with a digest goes to the
//! blocking pool. What may still block briefly on such a thread: the
//! trail's `flock` and one `write`, a segment rotation (every 16 MiB of
//! records: two fsyncs), and the periodic re-check of the store file.
//! (Noting a key's use for GetKeyLastUsage is memory only, see
//! [`crate::usage`].)

use crate::Engine;

/// Operations answered from memory (plus one audit record).
const INLINE_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncrypt",
    "DescribeKey",
    "GenerateRandom",
];

/// True when `operation` may run inline on `engine` now.
pub(crate) fn runs_inline(engine: &Engine, operation: &str) -> bool {
    INLINE_OPERATIONS.contains(&operation) && !engine.audit_anchor_pending()
}
