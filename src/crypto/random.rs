//! Random bytes from the `aws-lc-rs` system generator.

use super::CryptoError;

/// Fills `dest` with cryptographically secure random bytes.
pub fn fill_random(dest: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(dest).map_err(|_| CryptoError::Random)
}

/// Returns `N` cryptographically secure random bytes.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// Nonces drawn per refill of the per-thread nonce pool.
const POOL_NONCES: usize = 128;

thread_local! {
    static NONCE_POOL: std::cell::RefCell<(Vec<u8>, usize, u32)> =
        const { std::cell::RefCell::new((Vec::new(), 0, 0)) };
}

/// A fresh random 12-byte nonce. Drawn from a small per-thread pool that is
/// refilled from the system generator 128 nonces at a time (one backend call
/// per 1.5 KiB instead of per block: seal throughput). The pool is dropped
/// when the process id changes, so a forked child never reuses the parent's
/// nonces. Nonces are not secret.
pub fn random_nonce() -> Result<[u8; 12], CryptoError> {
    NONCE_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (buf, pos, pid) = &mut *pool;
        let me = std::process::id();
        if *pid != me || *pos + 12 > buf.len() {
            buf.resize(12 * POOL_NONCES, 0);
            fill_random(buf)?;
            *pos = 0;
            *pid = me;
        }
        let mut out = [0u8; 12];
        out.copy_from_slice(&buf[*pos..*pos + 12]);
        *pos += 12;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_nonces_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(3 * POOL_NONCES + 5) {
            assert!(seen.insert(random_nonce().unwrap()));
        }
    }

    #[test]
    fn random_arrays_differ() {
        let a: [u8; 32] = random_array().unwrap();
        let b: [u8; 32] = random_array().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
