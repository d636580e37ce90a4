//! Routing consumed events to per-stream workers (a bounded, expiring map of queues).
//!
//! Each org's stream has its own bounded queue and worker, so one slow or dead SIEM only
//! fills that stream's queue (not even another stream of the same org waits). When it is
//! full the event is handed back to the caller, which parks it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::queue::{self, TrySendError};
use super::worker::{self, Engine, Job};
use crate::streams::StreamKey;

pub struct Dispatcher {
    engine: Arc<Engine>,
    capacity: usize,
    /// Queues by stream.
    orgs: HashMap<StreamKey, queue::Sender<Job>>,
    tasks: JoinSet<()>,
}

/// The org's queue is full: the job comes back to be parked (boxed: this is the rare path).
pub struct QueueFull(pub Box<Job>);

impl Dispatcher {
    pub fn new(engine: Arc<Engine>, capacity: usize) -> Self {
        Self {
            engine,
            capacity,
            orgs: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Queue `job` on its org's worker without waiting.
    pub fn try_dispatch(&mut self, mut job: Job) -> Result<(), QueueFull> {
        loop {
            let tx = match self.orgs.get(job.stream.as_str()) {
                Some(tx) if !tx.is_closed() => tx,
                _ => {
                    let key = job.stream.clone();
                    let (tx, rx) = queue::channel(self.capacity);
                    self.tasks
                        .spawn(worker::run(key.clone(), rx, self.engine.clone()));
                    self.orgs.entry(key).insert_entry(tx).into_mut()
                }
            };
            match tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(j)) => return Err(QueueFull(Box::new(j))),
                // The worker went idle between our check and the send: start a new one.
                Err(TrySendError::Closed(j)) => {
                    self.orgs.remove(j.stream.as_str());
                    job = j;
                }
            }
        }
    }

    /// Queue `job`, waiting up to `wait` for room; gives the job back if the org's queue
    /// stayed full (the caller parks it).
    pub async fn dispatch_within(
        &mut self,
        job: Job,
        wait: std::time::Duration,
    ) -> Result<(), Job> {
        let job = match self.try_dispatch(job) {
            Ok(()) => return Ok(()),
            Err(QueueFull(job)) => *job,
        };
        let Some(tx) = self.orgs.get(job.stream.as_str()).cloned() else {
            return Err(job);
        };
        tx.send_timeout(job, wait).await
    }

    /// Queue `job`, waiting for room (used when resuming parked events).
    pub async fn dispatch(&mut self, job: Job) {
        let mut job = job;
        loop {
            match self.try_dispatch(job) {
                Ok(()) => return,
                Err(QueueFull(j)) => {
                    let tx = self.orgs[j.stream.as_str()].clone();
                    match tx.send(*j).await {
                        Ok(()) => return,
                        Err(queue::Closed(j)) => job = j,
                    }
                }
            }
        }
    }

    /// How many more jobs the stream's queue (encoded key) takes now.
    pub fn room(&self, stream: &str) -> usize {
        match self.orgs.get(stream) {
            Some(tx) if !tx.is_closed() => tx.capacity(),
            _ => self.capacity,
        }
    }

    /// Drop queues of workers that went idle and reap finished tasks.
    pub fn reap(&mut self) {
        self.orgs.retain(|_, tx| !tx.is_closed());
        while self.tasks.try_join_next().is_some() {}
    }

    pub fn active_orgs(&self) -> usize {
        self.orgs.len()
    }

    /// Close every queue and wait for the workers to finish what they hold.
    pub async fn close(mut self) {
        self.orgs.clear();
        while self.tasks.join_next().await.is_some() {}
    }
}
