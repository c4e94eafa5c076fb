//! Produce, then await the job's decision: an edge request whose answer is
//! what a dataflow job decided of the record the edge sent (a room's
//! create, a tournament's action) sends the record, then waits, up to a
//! bound, for the decision to show in the view the edge follows. One helper
//! for every such request, so none writes its own wait.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Sends with `send`; once the broker has the record, waits up to `within`
/// for `look` to find the job's decision ([`wait`]). `Ok(None)`: not
/// decided in time (the caller answers "pending").
pub async fn produce_then_await<T, S, E>(
    send: impl Future<Output = Result<S, E>>,
    within: Duration,
    look: impl FnMut() -> Result<T, Arc<Notify>>,
) -> Result<Option<T>, E> {
    send.await?;
    Ok(wait(within, look).await)
}

/// Waits up to `within` for `look` to find a decision: `look` returns it,
/// or the [`Notify`] that announces the next change that could bring it.
/// Each wait is registered before the look it follows, so no change falls
/// between (a `Notified` made before `notify_waiters` is woken by it,
/// polled or not).
pub async fn wait<T>(
    within: Duration,
    mut look: impl FnMut() -> Result<T, Arc<Notify>>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let notify = match look() {
            Ok(decided) => return Some(decided),
            Err(notify) => notify,
        };
        let changed = notify.notified();
        match look() {
            Ok(decided) => return Some(decided),
            // What announces the decision changed meanwhile (a
            // tournament that appeared): look again at once.
            Err(other) if !Arc::ptr_eq(&other, &notify) => continue,
            Err(_) => {}
        }
        tokio::time::timeout_at(deadline, changed).await.ok()?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn a_decision_made_while_waiting_is_found_and_none_in_time_is_none() {
        let notify = Arc::new(Notify::new());
        let state = Arc::new(Mutex::new(None::<u32>));
        let look = {
            let (notify, state) = (notify.clone(), state.clone());
            move || state.lock().unwrap().ok_or_else(|| notify.clone())
        };
        assert_eq!(wait(Duration::from_millis(20), look.clone()).await, None);
        let waiting = tokio::spawn(wait(Duration::from_secs(30), look));
        tokio::time::sleep(Duration::from_millis(20)).await;
        *state.lock().unwrap() = Some(7);
        notify.notify_waiters();
        assert_eq!(waiting.await.unwrap(), Some(7));
    }
}
