//! Slow work a mechanism starts off the async runtime's threads — a security
//! key waiting for a touch, the slow hashes of recovery codes — and a handle
//! the login keeps: the bus layer waits on it (never longer than a poll),
//! the service takes its result. Dropping the handle (a login that ended or
//! whose caller hung up) tells the job to give up where it can.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The result of one job, once it is done.
pub struct Work<T> {
    slot: Arc<Mutex<Option<T>>>,
    signal: Arc<Signal>,
}

/// Tells a job whether its login still wants the result.
#[derive(Clone)]
pub struct Cancel(Arc<Signal>);

impl Cancel {
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }
}

/// Waits for some job to be done, whatever it returns.
#[derive(Clone)]
pub struct Waiter(Arc<Signal>);

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("done", &self.0.done.load(Ordering::SeqCst))
            .finish()
    }
}

impl Waiter {
    /// Completes when the job is done (at once if it already is).
    pub async fn ready(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.0.done.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// The same, blocking this thread, for at most `limit`; whether the
    /// job is done.
    pub fn block(&self, limit: Duration) -> bool {
        let guard = self.0.finished.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .0
            .changed
            .wait_timeout_while(guard, limit, |finished| !*finished)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

struct Signal {
    done: AtomicBool,
    cancelled: AtomicBool,
    notify: Notify,
    /// `done` again, for threads that wait without a runtime.
    finished: Mutex<bool>,
    changed: Condvar,
}

impl Signal {
    fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
        self.notify.notify_waiters();
    }
}

impl<T: Send + 'static> Work<T> {
    /// Run `job` on a thread of its own, named `name`.
    pub fn spawn(
        name: &str,
        job: impl FnOnce(&Cancel) -> T + Send + 'static,
    ) -> Result<Work<T>, String> {
        let work = Work::waiting();
        let (slot, signal) = (Arc::clone(&work.slot), Arc::clone(&work.signal));
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let result = job(&Cancel(Arc::clone(&signal)));
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                signal.finish();
            })
            .map_err(|e| format!("cannot start a thread for {name}: {e}"))?;
        Ok(work)
    }

    /// A job already done with `result` (for work that turned out quick).
    pub fn done(result: T) -> Work<T> {
        let work = Work::waiting();
        *work.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        work.signal.finish();
        work
    }

    fn waiting() -> Work<T> {
        Work {
            slot: Arc::new(Mutex::new(None)),
            signal: Arc::new(Signal {
                done: AtomicBool::new(false),
                cancelled: AtomicBool::new(false),
                notify: Notify::new(),
                finished: Mutex::new(false),
                changed: Condvar::new(),
            }),
        }
    }
}

impl<T> Work<T> {
    /// The result, if the job is done; only the first call gets it.
    pub fn take(&self) -> Option<T> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn is_done(&self) -> bool {
        self.signal.done.load(Ordering::SeqCst)
    }

    pub fn waiter(&self) -> Waiter {
        Waiter(Arc::clone(&self.signal))
    }
}

impl<T> Drop for Work<T> {
    fn drop(&mut self) {
        self.signal.cancelled.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_off_thread_and_its_result_is_taken_once() {
        let work = Work::spawn("test", |_| 6 * 7).expect("spawn");
        let waiter = work.waiter();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(waiter.ready());
        assert!(work.is_done());
        assert_eq!(work.take(), Some(42));
        assert_eq!(work.take(), None);
    }

    #[test]
    fn dropping_the_handle_cancels_the_job() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let work = Work::spawn("test", move |cancel| {
            let _ = rx.recv();
            let _ = seen_tx.send(cancel.is_cancelled());
        })
        .expect("spawn");
        drop(work);
        tx.send(()).expect("release the job");
        assert_eq!(seen_rx.recv(), Ok(true));
    }

    #[test]
    fn a_thread_can_block_until_the_job_is_done() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let work = Work::spawn("test", move |_| rx.recv().is_ok()).expect("spawn");
        let waiter = work.waiter();
        assert!(!waiter.block(Duration::from_millis(1)), "not done yet");
        tx.send(()).expect("release");
        assert!(waiter.block(Duration::from_secs(30)));
        assert_eq!(work.take(), Some(true));
    }
}
