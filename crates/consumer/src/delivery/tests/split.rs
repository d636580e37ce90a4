//! A HEC batch answered 400 is split in halves until the poison event stands alone; only it
//! is dead-lettered, everything else is delivered.

use super::*;
use crate::state::Reason;

#[tokio::test(start_paused = true)]
async fn a_hec_400_is_split_down_to_the_poison_event() {
    // The SIEM refuses any body holding event 3.
    let siem = FakeSiem::new(|_, events| if events.contains(&3) { 400 } else { 200 });
    let mut h = Harness::new(hec(), knobs(), siem);
    let _tx = h.worker((0..5).map(job));
    let mut done = offsets(&h.finished(5).await);
    done.sort_unstable();
    assert_eq!(done, [0, 1, 2, 3, 4]);
    // Left halves first: [0..5) -> [0,1] + [2,3,4] -> [2] + [3,4] -> [3] + [4].
    let bodies: Vec<Vec<u32>> = h.siem.bodies();
    let want: Vec<Vec<u32>> = vec![
        vec![0, 1, 2, 3, 4],
        vec![0, 1],
        vec![2, 3, 4],
        vec![2],
        vec![3, 4],
        vec![3],
        vec![4],
    ];
    assert_eq!(bodies, want);
    let dead = h.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].offset, 3);
    assert_eq!(dead[0].reason, Reason::Rejected);
    assert_eq!((dead[0].attempts, dead[0].last_status), (1, Some(400)));
    assert_eq!(h.services.metrics.delivered.get(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_lone_event_answered_400_is_dead_lettered_without_a_split() {
    let mut h = Harness::new(hec(), knobs(), FakeSiem::scripted(&[400]));
    let _tx = h.worker([job(7)]);
    h.finished(1).await;
    assert_eq!(h.siem.bodies(), [vec![7]]);
    let dead = h.dead_letters();
    assert_eq!((dead.len(), dead[0].reason), (1, Reason::Rejected));
}
