//! Group commit: the changes an instance makes at the same time share one transaction.
//!
//! The outbox orders the event log with one advisory lock that each transaction holds until it
//! has committed, so commits that announce something go one at a time, and each waits for its
//! own WAL flush (a few ms): alone, every change would cost a flush, and the whole database
//! would accept a few hundred a second. So each instance has one committer thread. Changes are
//! queued to it; it takes everything queued (up to [`MAX_BATCH`]) and stores it in one
//! transaction: the lock first, then each change in a savepoint of its own (one that fails is
//! rolled back alone, its caller gets its error, the others go on), then the messages of all of
//! them, numbered in queue order, and one commit: one flush for the batch. While it commits,
//! the next batch queues up, so the busier the instance, the more each flush carries.
//!
//! The lock is taken before the first change's writes, not after them: batches of different
//! instances then never wait for each other's rows while holding their own (a change that waits
//! for a row another batch holds waits for that batch's commit, never in a cycle), and the log
//! and the state change in the same order, as if every change ran alone.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;
use tracing::{Dispatch, Span};

use super::{Db, Tx};
use crate::hub::Publish;
use crate::store::{Store, StoreError, StoreResult};

/// Changes stored in one transaction at most. Each one's savepoint is a subtransaction, and a
/// transaction with more than 64 of them makes every other session's snapshots slower.
const MAX_BATCH: usize = 64;

/// The committer's queue. When the store goes, the queue closes and the thread ends.
pub struct Queue(Mutex<mpsc::Sender<Box<dyn Pending>>>);

impl Queue {
    /// Starts the committer thread.
    pub(super) fn start(db: Arc<Db>) -> StoreResult<Queue> {
        let (send, receive) = mpsc::channel();
        std::thread::Builder::new()
            .name("herald-commit".into())
            .spawn(move || committer(&db, &receive))
            .map_err(|e| StoreError::new(format!("cannot start the committer: {e}")))?;
        Ok(Queue(Mutex::new(send)))
    }

    /// Queues `write` now (so changes queued one after another are stored in that order); the
    /// future resolves when its batch has committed, with its value and the number of its last
    /// message (none when it announced nothing).
    pub fn submit<T, E, W>(
        &self,
        write: W,
    ) -> impl Future<Output = Result<(T, Option<u64>), E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        W: FnOnce(&dyn Store) -> Result<(T, Publish), E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let change = Box::new(Change {
            write: Some(write),
            outcome: None,
            reply,
            span: Span::current(),
            dispatch: tracing::dispatcher::get_default(Dispatch::clone),
        });
        let queued = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(change)
            .is_ok();
        async move {
            if !queued {
                return Err(StoreError::new("the committer has stopped").into());
            }
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::new("the committer has stopped").into()))
        }
    }
}

/// A queued change, with its types hidden.
trait Pending: Send {
    /// Runs the change's writes; what it announces, or `None` when it failed.
    fn write(&mut self, tx: &Tx<'_>) -> Option<Publish>;
    /// Tells the caller how its change ended: the number of its last message once committed,
    /// or why the batch was not.
    fn finish(self: Box<Self>, committed: StoreResult<Option<u64>>);
}

struct Change<W, T, E> {
    write: Option<W>,
    /// The change's own value or error, once it has run.
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<(T, Option<u64>), E>>,
    /// The caller's, so what the change logs is told apart by the request that made it.
    span: Span,
    dispatch: Dispatch,
}

impl<T, E, W> Pending for Change<W, T, E>
where
    T: Send,
    E: From<StoreError> + Send,
    W: FnOnce(&dyn Store) -> Result<(T, Publish), E> + Send,
{
    fn write(&mut self, tx: &Tx<'_>) -> Option<Publish> {
        let write = self.write.take()?;
        let ran = tracing::dispatcher::with_default(&self.dispatch, || {
            self.span
                .in_scope(|| catch_unwind(AssertUnwindSafe(|| write(tx))))
        });
        let (outcome, publish) = match ran {
            Ok(Ok((value, publish))) => (Ok(value), Some(publish)),
            Ok(Err(e)) => (Err(e), None),
            Err(_) => (Err(StoreError::new("the change panicked").into()), None),
        };
        self.outcome = Some(outcome);
        publish
    }

    fn finish(self: Box<Self>, committed: StoreResult<Option<u64>>) {
        let answer = match (self.outcome, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(last)) => Ok((value, last)),
            (_, Err(e)) => Err(e.into()),
            (None, Ok(_)) => Err(StoreError::new("the change was not run").into()),
        };
        // The caller may have gone; the change is stored all the same.
        let _ = self.reply.send(answer);
    }
}

fn committer(db: &Db, queue: &mpsc::Receiver<Box<dyn Pending>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        commit(db, batch);
    }
}

/// Stores `batch` in one transaction and tells each change how it ended.
fn commit(db: &Db, mut batch: Vec<Box<dyn Pending>>) {
    let stored = db.transaction(|tx| {
        let publishes = if let [alone] = &mut batch[..] {
            // No savepoint: if it fails, the transaction is rolled back whole.
            tx.lock_events("")?;
            vec![Some(alone.write(tx).ok_or_else(failed)?)]
        } else {
            let mut publishes = Vec::with_capacity(batch.len());
            for (i, change) in batch.iter_mut().enumerate() {
                tx.savepoint(i == 0)?;
                let publish = change.write(tx);
                if publish.is_none() {
                    tx.rollback_to_savepoint()?;
                }
                publishes.push(publish);
            }
            publishes
        };
        tx.append_events(publishes)
    });
    match stored {
        Ok(lasts) => {
            if lasts.iter().any(Option::is_some) {
                db.signals.poke();
            }
            for (change, last) in batch.into_iter().zip(lasts) {
                change.finish(Ok(last));
            }
        }
        Err(e) => {
            for change in batch {
                change.finish(Err(e.clone()));
            }
        }
    }
}

/// A batch of one whose change failed: its own error is what its caller gets.
fn failed() -> StoreError {
    StoreError::new("the change failed")
}

impl Tx<'_> {
    /// A savepoint before the next change, in the round trip that takes the log's lock
    /// (`first`) or releases the previous change's savepoint.
    fn savepoint(&self, first: bool) -> StoreResult<()> {
        if first {
            return self.lock_events("SAVEPOINT change");
        }
        Ok(self
            .raw()
            .batch_execute("RELEASE SAVEPOINT change; SAVEPOINT change")?)
    }

    /// Undoes the writes of the change since the last savepoint (it failed), and clears an
    /// error it left the transaction in.
    fn rollback_to_savepoint(&self) -> StoreResult<()> {
        Ok(self.raw().batch_execute("ROLLBACK TO SAVEPOINT change")?)
    }
}
