//! Routing through the park store: once an org has parked events, its new events park
//! behind them even when its queue has room, and parked events go back in offset order, so
//! the SIEM sees the org's events in offset order.

use super::*;
use crate::delivery::dispatch::Dispatcher;
use crate::delivery::park::Park;
use crate::delivery::route::{resume_parked, route};

#[tokio::test(start_paused = true)]
async fn parked_events_go_back_in_offset_order_before_new_ones() {
    // One event per request, 100 ms each; the org's queue holds two.
    let knobs = EngineKnobs {
        batch_max_events: 1,
        ..knobs()
    };
    let siem = FakeSiem::ok().with_latency(Duration::from_millis(100));
    let mut h = Harness::new(hec(), knobs, siem);
    let mut dispatcher = Dispatcher::new(h.engine.clone(), 2);
    let mut park = Park::open(&h.services.store).unwrap();
    let park_after = Duration::from_millis(10);
    // 0 is sent, 1 and 2 fill the queue, 3 waits 10 ms for room and parks; 4 and 5 park
    // behind it at once.
    for n in 0..6 {
        assert!(route(&mut dispatcher, &mut park, job(n), park_after, false)
            .await
            .is_ok());
    }
    assert_eq!((park.stored(), park.waiting_total()), (3, 3));
    // The worker drains its queue; a new event still parks behind the parked ones.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(dispatcher.room(ORG), 2);
    assert!(route(&mut dispatcher, &mut park, job(6), park_after, false)
        .await
        .is_ok());
    assert_eq!(
        dispatcher.room(ORG),
        2,
        "a new event jumped the parked ones"
    );
    assert_eq!(park.waiting_total(), 4);
    // Housekeeping hands parked events back as the queue has room.
    let mut finished = Vec::new();
    while finished.len() < 7 {
        let (streams, settings) = (&h.services.streams, &h.services.settings);
        resume_parked(&mut dispatcher, &mut park, streams, settings).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        for done in h.finished_now() {
            if let Origin::Parked(at) = &done.origin {
                park.complete(&at.key, at.partition, at.offset).unwrap();
            }
            finished.push(done);
        }
    }
    let sent: Vec<Vec<u32>> = h.siem.bodies();
    assert_eq!(sent, (0..7).map(|n| vec![n]).collect::<Vec<_>>());
    assert_eq!(offsets(&finished), [0, 1, 2, 3, 4, 5, 6]);
    let parked: Vec<bool> = finished
        .iter()
        .map(|d| matches!(d.origin, Origin::Parked(_)))
        .collect();
    assert_eq!(parked, [false, false, false, true, true, true, true]);
    assert_eq!((park.stored(), park.waiting_total()), (0, 0));
}
