//! Consumer lag per owned partition, for the `els_consumer_lag_messages` gauge.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::rebalance::{Ownership, RebalanceContext};

/// Every few seconds: consumer lag per owned partition (high watermark - committed).
pub async fn report_lag(
    consumer: Arc<StreamConsumer<RebalanceContext>>,
    topic: String,
    ownership: Arc<Ownership>,
    metrics: crate::metrics::Metrics,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let parts = ownership.assigned();
        let c = consumer.clone();
        let t = topic.clone();
        let lags = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for p in &parts {
                tpl.add_partition(&t, *p);
            }
            let committed = c.committed_offsets(tpl, Duration::from_secs(2)).ok();
            parts
                .iter()
                .filter_map(|p| {
                    let (_, high) = c.fetch_watermarks(&t, *p, Duration::from_secs(2)).ok()?;
                    let pos = committed
                        .as_ref()
                        .and_then(|tpl| tpl.find_partition(&t, *p))
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                        .unwrap_or(0);
                    Some((*p, (high - pos).max(0)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        metrics.lag.reset();
        for (p, lag) in lags {
            metrics.lag.with_label_values(&[&p.to_string()]).set(lag);
        }
    }
}
