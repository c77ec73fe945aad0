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
/// nonces. Nonces are not secret. For many seals in a row, [`nonces`]
/// checks the process id once for all of them.
pub fn random_nonce() -> Result<[u8; 12], CryptoError> {
    nonces()?.draw()
}

/// Nonces for a run of seals on this thread: the fork check of
/// [`random_nonce`] (a `getpid`, ~0.2 µs, a tenth of sealing a 4 KiB block)
/// is done once here, not per nonce. Not `Send`: a fork on another thread
/// leaves this one behind in the parent, and this thread cannot fork while
/// it draws.
pub fn nonces() -> Result<Nonces, CryptoError> {
    let me = std::process::id();
    NONCE_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (buf, pos, pid) = &mut *pool;
        if *pid != me {
            // Whatever is left belongs to the parent process too.
            refill(buf, pos)?;
            *pid = me;
        }
        Ok(Nonces {
            _this_thread: std::marker::PhantomData,
        })
    })
}

/// See [`nonces`].
#[derive(Debug)]
pub struct Nonces {
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Nonces {
    /// The next nonce from this thread's pool (refilled when used up).
    pub fn draw(&mut self) -> Result<[u8; 12], CryptoError> {
        NONCE_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let (buf, pos, _) = &mut *pool;
            if *pos + 12 > buf.len() {
                refill(buf, pos)?;
            }
            let mut out = [0u8; 12];
            out.copy_from_slice(&buf[*pos..*pos + 12]);
            *pos += 12;
            Ok(out)
        })
    }
}

fn refill(buf: &mut Vec<u8>, pos: &mut usize) -> Result<(), CryptoError> {
    buf.resize(12 * POOL_NONCES, 0);
    fill_random(buf)?;
    *pos = 0;
    Ok(())
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
    fn nonces_of_a_run_and_single_ones_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            let mut run = nonces().unwrap();
            for _ in 0..(POOL_NONCES + 7) {
                assert!(seen.insert(run.draw().unwrap()));
                assert!(seen.insert(random_nonce().unwrap()));
            }
        }
    }

    /// A pool whose recorded process id is another's (as in a forked
    /// child) is thrown away, not drawn from.
    #[test]
    fn a_pool_of_another_process_is_refilled() {
        let first = random_nonce().unwrap();
        let left = NONCE_POOL.with(|p| {
            let mut p = p.borrow_mut();
            p.2 = p.2.wrapping_add(1);
            p.0[p.1..p.1 + 12].to_vec()
        });
        let next = random_nonce().unwrap();
        assert_ne!(next.to_vec(), left, "the parent's next nonce was reused");
        assert_ne!(next, first);
        NONCE_POOL.with(|p| assert_eq!(p.borrow().1, 12, "drawn from a new pool"));
    }

    #[test]
    fn random_arrays_differ() {
        let a: [u8; 32] = random_array().unwrap();
        let b: [u8; 32] = random_array().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
