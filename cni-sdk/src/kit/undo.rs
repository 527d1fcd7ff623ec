//! An ADD undo stack: every step that changes something registers its inverse, and a failure
//! unwinds them in reverse order, so a failed ADD leaves nothing behind (where Go's deferred
//! cleanups miss paths, see go-plugins-notes §1.6).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::{Error, Result};

type Step<'a> = (String, Pin<Box<dyn Future<Output = Result<()>> + 'a>>);

/// The inverses of the steps done so far, run in reverse order by [`Undo::unwind`].
///
/// An inverse is a future that is not polled until the stack unwinds (futures do nothing until
/// polled), so registering one costs nothing on the success path. Futures need not be `Send`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::cell::RefCell;
/// use cni_sdk::kit::Undo;
/// use cni_sdk::Error;
///
/// let log = RefCell::new(Vec::new());
/// let mut undo = Undo::new();
/// undo.push("remove the veth pair", async { log.borrow_mut().push("veth"); Ok::<_, Error>(()) });
/// undo.push("IPAM DEL", async { log.borrow_mut().push("ipam"); Err::<(), _>(Error::internal("ipam is down")) });
/// let err = undo.unwind(Error::internal("route add failed")).await;
/// assert_eq!(*log.borrow(), ["ipam", "veth"]);
/// assert_eq!(err.message(), "route add failed");
/// assert!(err.details().unwrap().contains("undo \"IPAM DEL\" failed: ipam is down"));
/// # });
/// ```
#[must_use = "an Undo stack must be committed or unwound"]
pub struct Undo<'a> {
    steps: Vec<Step<'a>>,
}

impl fmt::Debug for Undo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Undo").field("steps", &names).finish()
    }
}

impl Default for Undo<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Undo<'a> {
    /// An empty stack.
    pub fn new() -> Self {
        Self { steps: Vec::new() }
    }

    /// Registers the inverse of a step just done; `what` names it in logs and errors. The
    /// inverse's success value (e.g. whether a link was still there to delete) is ignored.
    pub fn push<T: 'a, E: Into<Error> + 'a>(
        &mut self,
        what: impl Into<String>,
        inverse: impl Future<Output = Result<T, E>> + 'a,
    ) {
        let fut = async move { inverse.await.map(drop).map_err(Into::into) };
        self.steps.push((what.into(), Box::pin(fut)));
    }

    /// The number of registered inverses.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Success: drops every inverse without running it.
    pub fn commit(self) {
        drop(self);
    }

    /// Failure: runs every inverse, newest first (a failing one is logged and the rest still
    /// run), and returns `error` with the failed inverses appended to its details.
    pub async fn unwind(self, error: Error) -> Error {
        let mut failures = Vec::new();
        for (what, step) in self.steps.into_iter().rev() {
            if let Err(e) = step.await {
                tracing::warn!(step = %what, error = %e, "undoing a step of a failed ADD failed");
                failures.push(format!("undo {what:?} failed: {}", e.message()));
            }
        }
        if failures.is_empty() {
            return error;
        }
        let details = match error.details() {
            Some(d) => format!("{d}; {}", failures.join("; ")),
            None => failures.join("; "),
        };
        Error::from_kind(error.kind(), error.message()).with_code(error.code()).with_details(details)
    }
}

/// Runs `body` with a fresh [`Undo`] stack: when `body` fails, the stack unwinds before the
/// error is returned; when it succeeds, the inverses are dropped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cni_sdk::kit::with_undo;
/// use cni_sdk::net::fake::FakeNetwork;
///
/// let world = FakeNetwork::new();
/// let host = world.host();
/// let failed: cni_sdk::Result<()> = with_undo(async |undo| {
///     let br = host.bridge("cni9").execute().await?;
///     undo.push("delete the bridge", host.delete_link(br.index));
///     Err(cni_sdk::Error::internal("a later step failed"))
/// })
/// .await;
/// assert!(failed.is_err());
/// assert!(host.find_link("cni9").await.unwrap().is_none());
/// # });
/// ```
pub async fn with_undo<'a, T, F>(body: F) -> Result<T>
where
    F: AsyncFnOnce(&mut Undo<'a>) -> Result<T>,
{
    let mut undo = Undo::new();
    match body(&mut undo).await {
        Ok(v) => {
            undo.commit();
            Ok(v)
        }
        Err(e) => Err(undo.unwind(e).await),
    }
}
