//! [`CancelToken`]: cancelling runtime calls from elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Cancels runtime calls that were given a clone of it ([`CniRuntime::with_cancel`],
/// [`PodOptions::cancel`]): plugins running at that moment are killed, no further plugin is
/// started, and the calls fail with [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled). A pod
/// setup that is cancelled still rolls back what it attached.
///
/// Dropping a call's future cancels it too (its plugin processes are killed), but then nothing
/// runs afterwards: no rollback, no error. Cheap to clone; all clones are the same token.
///
/// ```
/// use cni_sdk::runtime::CancelToken;
/// let token = CancelToken::new();
/// let other = token.clone();
/// assert!(!other.is_cancelled());
/// token.cancel();
/// assert!(other.is_cancelled());
/// ```
///
/// [`CniRuntime::with_cancel`]: super::CniRuntime::with_cancel
/// [`PodOptions::cancel`]: super::PodOptions::cancel
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: tokio::sync::Notify,
}

impl CancelToken {
    /// A token that is not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every call holding this token (idempotent).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Register before looking at the flag, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}
