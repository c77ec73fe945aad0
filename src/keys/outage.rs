//! One log line per outage of a remote key service: the first call that
//! finds it unreachable says so, the first call that gets through again
//! says it is back, and nothing is logged in between (a mount that keeps
//! trying opens during an outage does not flood the log).

use kms_engine::KmsError;
use std::sync::atomic::{AtomicBool, Ordering};

/// The outage state of one service, named in its log lines.
#[derive(Debug)]
pub struct OutageLog {
    /// What the log lines call the service ("the key engine", "the key
    /// service https://...").
    what: String,
    down: AtomicBool,
}

impl OutageLog {
    pub fn new(what: impl Into<String>) -> OutageLog {
        OutageLog {
            what: what.into(),
            down: AtomicBool::new(false),
        }
    }

    /// Whether the last call found the service unreachable.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Notes a call's outcome: `KMSUnavailableException` starts an episode
    /// (logged once), any other outcome (the service answered, even with a
    /// refusal) ends it (logged once).
    pub fn observe<T>(&self, result: &Result<T, KmsError>) {
        match result {
            Err(KmsError::Unavailable(why)) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    log::error!(
                        "{} is unreachable ({why}): opening and creating files fails with \
                         EIO until it is back; open files keep working",
                        self.what
                    );
                }
            }
            _ => {
                if self.down.swap(false, Ordering::Relaxed) {
                    log::warn!("{} is reachable again", self.what);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_starts_on_unavailable_and_ends_on_any_answer() {
        let o = OutageLog::new("the key service");
        assert!(!o.is_down());
        o.observe::<()>(&Err(KmsError::AccessDenied("no".into())));
        assert!(!o.is_down());
        o.observe::<()>(&Err(KmsError::Unavailable("refused".into())));
        o.observe::<()>(&Err(KmsError::Unavailable("refused".into())));
        assert!(o.is_down());
        o.observe::<()>(&Err(KmsError::Disabled("k".into())));
        assert!(!o.is_down());
        o.observe(&Ok(()));
        assert!(!o.is_down());
    }
}
