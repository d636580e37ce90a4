//! Adopting local state written without this changelog (an older version, or the changelog
//! turned off): once per data directory and state topic, before the local trees are treated
//! as mere views of the changelog.
//!
//! - Parked events are re-published to the events topic (their old offsets were finished;
//!   whichever instance owns the partition consumes them again). Their org's order relative
//!   to newer events is not kept: this runs once.
//! - Dead letters are written to the changelog under their [`record_id`] (re-keyed if an
//!   older version numbered them); those without an input offset stay local-only, and so do
//!   those that do not decode (reported; the view keeps them, removable by id).

use rdkafka::producer::FutureRecord;

use super::{Changelog, Key};
use crate::delivery::park::parse_key;
use crate::error::ConsumerError;
use crate::metrics::ChangelogKind;
use crate::state::record::{dead_letter_slot, record_id, DeadLetter};
use crate::state::StateStore;

/// Key in the `meta` tree: the state topic this directory's state was adopted into.
const ADOPTED: &[u8] = b"state_topic";

/// Adopt what the local trees hold unless that was done for this state topic already.
pub async fn adopt_local_state(
    store: &StateStore,
    changelog: &Changelog,
    events_topic: &str,
) -> Result<(), ConsumerError> {
    let meta = store.db().open_tree("meta")?;
    if meta.get(ADOPTED)?.as_deref() == Some(changelog.topic().as_bytes()) {
        return Ok(());
    }
    let dead_letters = store.dead_letters();
    let parked = store.parked_tree()?;
    let mut sends = Vec::new();
    for item in parked.iter() {
        let (key, value) = item?;
        let org = parse_key(&key).map(|(org, _)| org).unwrap_or_default();
        let record = FutureRecord::<str, [u8]>::to(events_topic)
            .key(org)
            .payload(&value);
        let send = changelog.producer.send_result(record).map_err(|(e, _)| {
            ConsumerError::Changelog(format!("re-publishing a parked event: {e}"))
        })?;
        sends.push(send);
    }
    let republished = sends.len();
    for send in futures::future::join_all(sends).await {
        super::outcome(send)?;
    }
    parked.clear()?;

    // Read first, rewrite after: a new id may equal an old record's number. A record that
    // does not decode stays local-only (nothing tells which input offset it stands for); the
    // view keeps it, reported, removable by id.
    let mut records = Vec::new();
    let mut unreadable = 0usize;
    for item in dead_letters.tree().iter() {
        let (key, bytes) = item?;
        match DeadLetter::from_json(&bytes) {
            Ok(d) => records.push((key, d.into_record())),
            Err(e) => {
                unreadable += 1;
                tracing::error!(error = %e, "a local dead-letter record cannot be read; it stays local-only");
            }
        }
    }
    let (mut acks, mut rekeyed, mut local_only) = (Vec::new(), Vec::new(), 0usize);
    for (key, mut record) in records {
        let Some(id) = record_id(&record) else {
            local_only += 1;
            continue;
        };
        record.id = id;
        let bytes = DeadLetter::V1(record.clone()).to_json()?;
        let name = Key::Dead {
            partition: record.partition,
            offset: record.offset,
            slot: dead_letter_slot(id),
        };
        acks.push(changelog.send(name, Some(&bytes))?);
        if key.as_ref() != id.to_be_bytes() {
            rekeyed.push((key, id, bytes));
        }
    }
    let published = acks.len();
    for ack in acks {
        changelog.acked(ChangelogKind::Dead, ack).await?;
    }
    for (old, _, _) in &rekeyed {
        if let Ok(old) = <[u8; 8]>::try_from(old.as_ref()) {
            dead_letters.apply_changelog(u64::from_be_bytes(old), None)?;
        }
    }
    for (_, id, bytes) in &rekeyed {
        dead_letters.apply_changelog(*id, Some(bytes))?;
    }
    meta.insert(ADOPTED, changelog.topic().as_bytes())?;
    store.db().flush_async().await?;
    if republished + published + local_only + unreadable > 0 {
        tracing::warn!(
            topic = %changelog.topic(),
            republished_parked = republished,
            published_dead_letters = published,
            local_only_dead_letters = local_only,
            unreadable_dead_letters = unreadable,
            "adopted local state written without the state topic"
        );
    }
    Ok(())
}
