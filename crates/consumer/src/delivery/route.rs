//! Where the consume loop sends a selected event: to its stream's queue ([`super::dispatch`]),
//! or to the park store ([`super::park`]) when the queue stays full, or when the org already
//! has parked events (new events queue behind them, so the org's SIEM sees its events in
//! offset order); and parked events back to queues with room, oldest first.
//! No Kafka here: the engine's unit tests drive these with a fake SIEM.

use std::time::Duration;

use super::dispatch::{Dispatcher, QueueFull};
use super::park::Park;
use super::worker::Job;
use crate::error::ConsumerError;
use crate::settings::SettingsStore;
use crate::streams::{Release, StreamStates};

/// Parking failed: the job (its offset stays unfinished, redelivered after a restart) and
/// why. The job is boxed: this is the rare path.
pub struct ParkFailed {
    pub job: Box<Job>,
    pub error: ConsumerError,
}

/// Queue `job` (consumed from Kafka) on its org's worker, waiting up to `park_after` for
/// room, or park it: at once when the org has parked events still to hand over, or when its
/// stream is `holding` (paused).
pub async fn route(
    dispatcher: &mut Dispatcher,
    park: &mut Park,
    job: Job,
    park_after: Duration,
    holding: bool,
) -> Result<(), ParkFailed> {
    let job = if holding || park.has_waiting(job.stream.as_str()) {
        job
    } else {
        match dispatcher.dispatch_within(job, park_after).await {
            Ok(()) => return Ok(()),
            Err(job) => job,
        }
    };
    let (partition, offset) = (job.origin.partition(), job.origin.offset());
    park.park(&job.stream, &job.event, partition, offset)
        .map_err(|error| ParkFailed {
            job: Box::new(job),
            error,
        })
}

/// Hand parked events back to orgs whose queues have room, in offset order; a paused
/// stream gets nothing, or one event when its probe is due ([`StreamStates::release`]).
pub async fn resume_parked(
    dispatcher: &mut Dispatcher,
    park: &mut Park,
    streams: &StreamStates,
    settings: &SettingsStore,
) {
    for org in park.orgs_waiting() {
        let room = dispatcher.room(&org);
        if room == 0 {
            continue;
        }
        let current = settings
            .stream(&crate::streams::StreamKey::from_encoded(&org))
            .map_or(0, |rt| std::sync::Arc::as_ptr(&rt) as usize);
        let room = match streams.release(&org, current) {
            Release::All => room,
            Release::Probe => 1,
            Release::Nothing => continue,
        };
        match park.take(&org, room) {
            Ok(jobs) => {
                for job in jobs {
                    if let Err(QueueFull(job)) = dispatcher.try_dispatch(job) {
                        // Cannot happen (we are the only sender), but never drop a job.
                        dispatcher.dispatch(*job).await;
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, org_id = %org, "reading parked events failed"),
        }
    }
}
