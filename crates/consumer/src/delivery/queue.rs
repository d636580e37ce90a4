//! A stream's bounded job queue: one receiver (the stream's worker), senders held by the
//! dispatcher. It does what the worker needs from a channel (wait for the next job, take
//! what is queued without waiting, close when idle, room for the parking decision) and keeps
//! its memory to what is queued: a ring buffer that grows with the queue and is given back
//! when the queue empties. (A tokio channel keeps blocks of 32 slots per queue for as long
//! as the queue lives: 2.5 KB for each of 10,000 orgs that ever queued 33 jobs.)
//!
//! Wake-ups go through two [`Notify`]s. A waiter registers with its `Notify` before it looks
//! at the queue under the lock, so a change between its look and its wait still wakes it;
//! every wake-up is followed by another look, so a spurious or stale one only costs a loop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// A queue of at most `capacity` items (at least 1): its sender and its receiver.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            closed: false,
            receiver_waits: false,
            senders_wait: 0,
        }),
        capacity: capacity.max(1),
        closed: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        item_or_close: Notify::new(),
        room_or_close: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// [`State::closed`], readable without the lock (the dispatcher looks at every queue
    /// every tick).
    closed: AtomicBool,
    /// Live [`Sender`]s; the receiver sees the end of the queue when none is left.
    senders: AtomicUsize,
    /// The receiver's wake-up: an item came, the queue closed, or the last sender left.
    item_or_close: Notify,
    /// Waiting senders' wake-up: an item was taken, or the queue closed.
    room_or_close: Notify,
}

struct State<T> {
    items: VecDeque<T>,
    /// Closed by the receiver (or its drop): no more sends; what is queued can still be
    /// taken.
    closed: bool,
    receiver_waits: bool,
    senders_wait: usize,
}

/// Ring buffers at most this long stay allocated when their queue empties.
const KEPT_EMPTY_CAPACITY: usize = 8;

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the queue inconsistent (every change
        // is one VecDeque call or a flag), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take the next item, waking a sender waiting for room.
    fn pop(&self, state: &mut State<T>) -> Option<T> {
        let item = state.items.pop_front()?;
        if state.items.is_empty() && state.items.capacity() > KEPT_EMPTY_CAPACITY {
            state.items = VecDeque::new();
        }
        if state.senders_wait > 0 {
            self.room_or_close.notify_one();
        }
        Some(item)
    }

    /// The receiver's look at the queue: the next item, or why there is none.
    fn take(&self) -> Result<T, TryRecvError> {
        let mut state = self.lock();
        if let Some(item) = self.pop(&mut state) {
            return Ok(item);
        }
        if state.closed || self.senders.load(Ordering::Acquire) == 0 {
            return Err(TryRecvError::Disconnected);
        }
        // About to wait: the next send wakes the receiver.
        state.receiver_waits = true;
        Err(TryRecvError::Empty)
    }
}

/// Why [`Sender::try_send`] gave its item back.
pub enum TrySendError<T> {
    Full(T),
    Closed(T),
}

/// The queue closed before the item went in; the item is given back.
pub struct Closed<T>(pub T);

impl<T> std::fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> std::fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Closed(..)")
    }
}

/// Why [`Receiver::try_recv`] has nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    /// Closed, or no sender left, and nothing queued.
    Disconnected,
}

/// The sending side; clones share the queue.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taken under the lock so a receiver between its check and its wait sees it.
            let _state = self.shared.lock();
            self.shared.item_or_close.notify_one();
        }
    }
}

impl<T> Sender<T> {
    /// Queue `item` now, or give it back (queue full or closed).
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= self.shared.capacity {
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        if state.receiver_waits {
            state.receiver_waits = false;
            self.shared.item_or_close.notify_one();
        }
        Ok(())
    }

    /// Queue `item`, waiting for room; gives it back if the queue closes first.
    pub async fn send(&self, item: T) -> Result<(), Closed<T>> {
        let mut item = item;
        loop {
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(i)) => return Err(Closed(i)),
                Err(TrySendError::Full(i)) => item = i,
            }
            self.wait_for_room().await;
        }
    }

    /// Queue `item`, waiting up to `wait` for room; gives it back if the queue stayed full
    /// or closed.
    pub async fn send_timeout(&self, item: T, wait: Duration) -> Result<(), T> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut item = item;
        loop {
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(i)) => return Err(i),
                Err(TrySendError::Full(i)) => item = i,
            }
            if tokio::time::timeout_at(deadline, self.wait_for_room())
                .await
                .is_err()
            {
                // One last look: room may have come with the deadline.
                return self.try_send(item).map_err(|e| match e {
                    TrySendError::Full(i) | TrySendError::Closed(i) => i,
                });
            }
        }
    }

    /// Wait until an item is taken or the queue closes (or a stale wake-up: callers look
    /// again).
    async fn wait_for_room(&self) {
        // Registered before looking, so each taken item wakes a distinct waiting sender.
        let woken = self.shared.room_or_close.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        {
            let mut state = self.shared.lock();
            if state.closed || state.items.len() < self.shared.capacity {
                return;
            }
            state.senders_wait += 1;
        }
        let _waiting = WaitingSender(&self.shared);
        woken.await;
    }

    /// Whether the receiver closed the queue (idle) or is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// How many more items the queue takes now.
    pub fn capacity(&self) -> usize {
        let state = self.shared.lock();
        self.shared.capacity.saturating_sub(state.items.len())
    }
}

/// A sender's place among the waiting ones, given up when its wait ends or is cancelled.
struct WaitingSender<'a, T>(&'a Shared<T>);

impl<T> Drop for WaitingSender<'_, T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.senders_wait = state.senders_wait.saturating_sub(1);
    }
}

/// The receiving side: the stream's worker.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once the queue is closed (or has no sender left) and empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            // Registered before looking, so a send between the look and the wait wakes it.
            let woken = self.shared.item_or_close.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.shared.take() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            woken.await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.shared.take()
    }

    /// Take no more items: senders get their items back; what is queued can still be
    /// received.
    pub fn close(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        self.shared.closed.store(true, Ordering::Release);
        self.shared.room_or_close.notify_waiters();
        drop(state);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        let items = std::mem::take(&mut self.shared.lock().items);
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_come_out_in_order_and_a_full_queue_gives_them_back() {
        let (tx, mut rx) = channel(2);
        assert!(tx.try_send(1).is_ok() && tx.try_send(2).is_ok());
        assert_eq!(tx.capacity(), 0);
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.capacity(), 1);
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_new_items_and_hands_out_what_it_holds() {
        let (tx, mut rx) = channel(8);
        tx.try_send("a").ok();
        rx.close();
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send("b"), Err(TrySendError::Closed("b"))));
        assert!(matches!(tx.send("c").await, Err(Closed("c"))));
        assert_eq!(rx.recv().await, Some("a"));
        assert_eq!(rx.recv().await, None);
        let (tx, rx) = channel::<u8>(1);
        drop(rx);
        assert!(tx.is_closed());
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_send_and_for_the_last_sender_leaving() {
        let (tx, mut rx) = channel(4);
        let waiting = tokio::spawn(async move { (rx.recv().await, rx) });
        tokio::task::yield_now().await;
        tx.try_send(7).ok();
        let (first, mut rx) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the send, its sender still there")
            .unwrap();
        assert_eq!(first, Some(7));
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        drop(tx);
        tokio::task::yield_now().await;
        drop(tx2);
        let end = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the last sender leaving")
            .unwrap();
        assert_eq!(end, None);
    }

    #[tokio::test(start_paused = true)]
    async fn senders_wait_for_room_within_their_deadline() {
        let (tx, mut rx) = channel(1);
        tx.try_send(0).ok();
        // Nobody takes: the item comes back after the wait.
        assert_eq!(tx.send_timeout(1, Duration::from_millis(50)).await, Err(1));
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(2).await.is_ok() })
        };
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await, Some(0));
        assert!(
            waiter.await.unwrap(),
            "the waiting send went in once room came"
        );
        assert_eq!(rx.try_recv(), Ok(2));
        // A sender waiting when the queue closes gets its item back.
        tx.try_send(3).ok();
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(4).await.map_err(|Closed(i)| i) })
        };
        tokio::task::yield_now().await;
        rx.close();
        assert_eq!(waiter.await.unwrap(), Err(4));
    }

    #[tokio::test]
    async fn a_receive_cancelled_by_a_timeout_loses_nothing() {
        let (tx, mut rx) = channel(4);
        for round in 0..100 {
            let quick = tokio::time::timeout(Duration::from_micros(1), rx.recv()).await;
            assert!(quick.is_err() || quick == Ok(Some(round)));
            if quick.is_err() {
                tx.try_send(round).ok();
                assert_eq!(rx.recv().await, Some(round));
            }
        }
    }

    /// Two threads, a small queue, senders and a receiver that mix waiting, not waiting and
    /// giving up (as the dispatcher and a lingering worker do): every item arrives once, in
    /// each sender's order, and nobody sleeps through a wake-up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_two_threads_nothing_is_lost_or_stuck() {
        const PER_SENDER: u32 = 20_000;
        let (tx, mut rx) = channel::<(u8, u32)>(4);
        let mut senders = Vec::new();
        for id in 0..3u8 {
            let tx = tx.clone();
            senders.push(tokio::spawn(async move {
                for n in 0..PER_SENDER {
                    let mut item = (id, n);
                    loop {
                        match n % 3 {
                            0 => match tx.try_send(item) {
                                Ok(()) => break,
                                Err(TrySendError::Full(i)) => {
                                    item = i;
                                    tokio::task::yield_now().await;
                                }
                                Err(TrySendError::Closed(_)) => panic!("closed"),
                            },
                            1 => match tx.send_timeout(item, Duration::from_micros(50)).await {
                                Ok(()) => break,
                                Err(i) => item = i,
                            },
                            _ => {
                                tx.send(item).await.expect("open");
                                break;
                            }
                        }
                    }
                }
            }));
        }
        // The first sender stays until everything arrived, so the end of the queue cannot
        // stand in for a wake-up a send should have given.
        let received = tokio::spawn(async move {
            let mut next = [0u32; 3];
            let mut total = 0u32;
            while total < 3 * PER_SENDER {
                let item = match total % 4 {
                    0 => match rx.try_recv() {
                        Ok(item) => Some(item),
                        Err(TryRecvError::Empty) => {
                            tokio::task::yield_now().await;
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => None,
                    },
                    1 => match tokio::time::timeout(Duration::from_micros(20), rx.recv()).await {
                        Ok(item) => item,
                        Err(_) => continue,
                    },
                    _ => rx.recv().await,
                };
                let Some((id, n)) = item else { break };
                assert_eq!(n, next[id as usize], "sender {id}'s order");
                next[id as usize] += 1;
                total += 1;
            }
            total
        });
        let all = tokio::time::timeout(Duration::from_secs(60), async {
            for s in senders {
                s.await.unwrap();
            }
            received.await.unwrap()
        })
        .await
        .expect("nothing stuck");
        assert_eq!(all, 3 * PER_SENDER);
        drop(tx);
    }

    #[test]
    fn an_emptied_queue_gives_its_buffer_back() {
        let (tx, mut rx) = channel(1000);
        for i in 0..500 {
            tx.try_send([i; 8]).ok();
        }
        assert!(rx.shared.lock().items.capacity() >= 500);
        while rx.try_recv().is_ok() {}
        assert!(rx.shared.lock().items.capacity() <= KEPT_EMPTY_CAPACITY);
        // A queue that stays short keeps its small buffer instead of reallocating.
        tx.try_send([1; 8]).ok();
        let kept = rx.shared.lock().items.capacity();
        rx.try_recv().ok();
        assert_eq!(rx.shared.lock().items.capacity(), kept);
    }
}
