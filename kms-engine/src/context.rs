//! Encryption context: a string map bound to a ciphertext as associated data.
//!
//! The canonical encoding sorts pairs by key bytes and length-prefixes every
//! key and value, so `{"ab":"c"}` and `{"a":"bc"}` never encode alike:
//!
//! ```text
//! u32 BE  number of pairs
//! per pair, in ascending byte order of the key:
//!   u32 BE  key length      | key bytes (UTF-8)
//!   u32 BE  value length    | value bytes (UTF-8)
//! ```

use std::collections::BTreeMap;

/// A string-to-string map. `BTreeMap` keeps keys in byte order, which is the
/// canonical order.
pub type EncryptionContext = BTreeMap<String, String>;

/// The canonical byte encoding of an encryption context (see module docs).
pub fn canonical_encoding(ctx: &EncryptionContext) -> Vec<u8> {
    let len: usize = ctx.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&len_u32(ctx.len()).to_be_bytes());
    for (k, v) in ctx {
        out.extend_from_slice(&len_u32(k.len()).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&len_u32(v.len()).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn len_u32(n: usize) -> u32 {
    // Contexts are validated to be far below 4 GiB before they are encoded.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Builds a context from pairs (convenience for callers and tests).
pub fn context_from<'a, I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> EncryptionContext {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_ambiguity_is_impossible() {
        let a = context_from([("ab", "c")]);
        let b = context_from([("a", "bc")]);
        assert_ne!(canonical_encoding(&a), canonical_encoding(&b));
    }

    #[test]
    fn known_answer() {
        let ctx = context_from([("b", "2"), ("a", "1")]);
        assert_eq!(
            canonical_encoding(&ctx),
            [
                0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 1, b'1', 0, 0, 0, 1, b'b', 0, 0, 0, 1, b'2'
            ]
        );
        assert_eq!(canonical_encoding(&EncryptionContext::new()), [0, 0, 0, 0]);
    }
}
