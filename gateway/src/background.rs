//! One owner for the process's background work. Every long-lived task (the engine's claim
//! loops, reaper and outbox relay, the reconciliation loops, the replay supervisor and its runs,
//! the dashboard's sampler, the body budget's watcher, the audit writer) is spawned through a
//! [`Background`], which [`crate::app::Application`] owns. Shutdown then has one shape:
//! cancel the root token, wait for the tasks, and only then let the sinks (the audit writer)
//! write what the tasks left behind and stop.
//!
//! Two tiers, because the audit writer must outlive everything that audits: a task stops when
//! the root token is cancelled; a sink stops when its own token is cancelled, which happens
//! after every task has finished.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The process's background work: cheap to clone, every clone the same owner.
#[derive(Clone, Debug, Default)]
pub struct Background {
    stop: CancellationToken,
    tasks: TaskTracker,
    sinks_stop: CancellationToken,
    sinks: TaskTracker,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when the process shuts down: every task selects on it.
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Spawns a task that ends when [`Background::token`] is cancelled.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Spawns a sink: a task that takes what the tasks produce and must see all of it. It ends
    /// when the token it is given is cancelled, which [`Background::shutdown`] does only after
    /// every task has finished.
    pub fn spawn_sink<F>(&self, sink: impl FnOnce(CancellationToken) -> F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.sinks.spawn(sink(self.sinks_stop.clone()))
    }

    /// Tasks and sinks still running.
    pub fn running(&self) -> usize {
        self.tasks.len() + self.sinks.len()
    }

    /// Cancels every task; they finish on their own (see [`Background::shutdown`]).
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Cancels the tasks and waits up to `tasks_within` for them, then stops the sinks and waits
    /// up to `sinks_within` for them to write what is left. Returns how many are still running
    /// (0 when everything finished in time); the runtime drops those when the process exits.
    pub async fn shutdown(&self, tasks_within: Duration, sinks_within: Duration) -> usize {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(tasks_within, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                running = self.tasks.len(),
                "background tasks still running after they were told to stop"
            );
        }
        self.sinks_stop.cancel();
        self.sinks.close();
        if tokio::time::timeout(sinks_within, self.sinks.wait()).await.is_err() {
            tracing::warn!(running = self.sinks.len(), "the audit writer did not finish in time");
        }
        self.running()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn sinks_stop_only_after_every_task_has_finished() {
        let bg = Background::new();
        let task_done = Arc::new(AtomicBool::new(false));
        let seen_by_sink = Arc::new(AtomicBool::new(false));
        let token = bg.token();
        let done = task_done.clone();
        bg.spawn(async move {
            token.cancelled().await;
            // Work after the cancel (a last write) still happens before the sinks stop.
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, Ordering::SeqCst);
        });
        let (done, seen) = (task_done.clone(), seen_by_sink.clone());
        bg.spawn_sink(|stop| async move {
            stop.cancelled().await;
            seen.store(done.load(Ordering::SeqCst), Ordering::SeqCst);
        });
        assert_eq!(bg.running(), 2);
        assert_eq!(bg.shutdown(Duration::from_secs(5), Duration::from_secs(5)).await, 0);
        assert!(task_done.load(Ordering::SeqCst));
        assert!(seen_by_sink.load(Ordering::SeqCst), "the sink stopped before the task finished");
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_token_is_counted_not_awaited_for_ever() {
        let bg = Background::new();
        bg.spawn(std::future::pending());
        assert_eq!(bg.shutdown(Duration::from_millis(50), Duration::from_millis(50)).await, 1);
    }
}
