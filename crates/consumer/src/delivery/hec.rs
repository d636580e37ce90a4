//! What a permanent HEC answer means for the batch that got it, as data: a pure
//! [`decide`] from (HTTP status, parsed HEC reply, batch size) to a [`Decision`], applied by
//! [`super::worker`].
//!
//! Splunk answers some errors for the whole request (the token, the index, the channel, acks
//! switched off): splitting cannot isolate anything, so the batch gets one decision. Code 6
//! names the bad event (`invalid-event-number`); the events before it are already indexed.
//! `413` is about size, not content: halves are smaller and may pass.

use els_model::hec::HecReply;
use uuid::Uuid;

/// The request header naming the sender's data channel. Splunk requires it when the token has
/// indexer acknowledgement on (code 10 without it); it is harmless otherwise, so it is sent on
/// every HEC request.
pub const CHANNEL_HEADER: &str = "X-Splunk-Request-Channel";

/// A data channel: a random v4 UUID made once per org worker and kept for the worker's life,
/// so every request of an org from this instance carries the same channel until the worker
/// retires (idle), and no two instances or orgs share one.
pub fn new_channel() -> Uuid {
    Uuid::new_v4()
}

/// The indexer acknowledgement endpoint next to the HEC URL `url`: its path up to
/// `/services/collector` plus `/ack` (Splunk serves `/services/collector/ack` beside
/// `/services/collector/event`, also behind a path prefix); `None` for a URL without that
/// path.
pub fn ack_url(url: &reqwest::Url) -> Option<reqwest::Url> {
    const COLLECTOR: &str = "/services/collector";
    let path = url.path();
    let at = path.find(COLLECTOR)?;
    let mut ack = url.clone();
    ack.set_path(&format!("{}{COLLECTOR}/ack", &path[..at]));
    ack.set_query(None);
    ack.set_fragment(None);
    Some(ack)
}

/// What to do with a batch the SIEM refused for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A configuration error of the whole request (HEC codes 1-4, 7, 10, 11, 14; HTTP 404):
    /// one decision for the batch, every event dead-lettered once as `rejected`.
    WholeRequest,
    /// A 400 not about the whole request, on more than one event: halve to isolate the
    /// poison event.
    Split,
    /// Code 6 naming event `n` (0-based, inside the batch): events before it are indexed
    /// (delivered), it is dead-lettered alone, the events after it are sent again.
    InvalidEvent(usize),
    /// `413` on more than one event: halve, the halves are smaller.
    SplitTooLarge,
    /// `413` on a single event: dead-lettered as `too_large`.
    TooLarge,
    /// Anything else permanent (a lone event's 400, 401/403 without a HEC code, an SSRF
    /// refusal): dead-letter the batch as `rejected`.
    DeadLetter,
}

/// HEC codes that are about the whole request, not its events: 1-4 token missing, invalid,
/// disabled or malformed; 7 incorrect index; 10/11 data channel missing or invalid; 14 ack
/// disabled.
pub fn is_whole_request_code(code: i64) -> bool {
    matches!(code, 1..=4 | 7 | 10 | 11 | 14)
}

/// The HEC reply in an answer's (capped) body, if it is one.
pub fn parse_reply(body: &str) -> Option<HecReply> {
    serde_json::from_str(body.trim()).ok()
}

/// Decide what a permanent answer (`status`, `None` if there was no HTTP answer) with `reply`
/// means for a batch of `events` events.
pub fn decide(status: Option<u16>, reply: Option<&HecReply>, events: usize) -> Decision {
    let code = reply.map(|r| r.code);
    if status == Some(404) || code.is_some_and(is_whole_request_code) {
        return Decision::WholeRequest;
    }
    match status {
        Some(413) if events > 1 => Decision::SplitTooLarge,
        Some(413) => Decision::TooLarge,
        Some(400) => match reply {
            Some(HecReply {
                code: 6,
                invalid_event_number: Some(n),
                ..
            }) if *n < events => Decision::InvalidEvent(*n),
            _ if events > 1 => Decision::Split,
            _ => Decision::DeadLetter,
        },
        _ => Decision::DeadLetter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: i64, n: Option<usize>) -> HecReply {
        HecReply {
            text: "t".into(),
            code,
            invalid_event_number: n,
            ack_id: None,
        }
    }

    #[test]
    fn the_ack_endpoint_sits_beside_the_event_endpoint() {
        let ack = |u: &str| ack_url(&u.parse().unwrap()).map(|u| u.to_string());
        for (url, want) in [
            (
                "https://splunk:8088/services/collector/event",
                Some("https://splunk:8088/services/collector/ack"),
            ),
            (
                "https://splunk:8088/services/collector/event/1.0?channel=x",
                Some("https://splunk:8088/services/collector/ack"),
            ),
            (
                "https://splunk:8088/services/collector",
                Some("https://splunk:8088/services/collector/ack"),
            ),
            (
                "https://proxy/splunk/services/collector/raw",
                Some("https://proxy/splunk/services/collector/ack"),
            ),
            ("https://siem.example/ingest", None),
        ] {
            assert_eq!(ack(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn decision_table() {
        use Decision::*;
        let cases: &[(Option<u16>, Option<HecReply>, usize, Decision)] = &[
            // Whole-request configuration errors, whatever the batch size or status.
            (Some(401), Some(reply(2, None)), 500, WholeRequest),
            (Some(403), Some(reply(1, None)), 1, WholeRequest),
            (Some(403), Some(reply(3, None)), 7, WholeRequest),
            (Some(401), Some(reply(4, None)), 7, WholeRequest),
            (Some(400), Some(reply(7, None)), 500, WholeRequest),
            (Some(400), Some(reply(10, None)), 500, WholeRequest),
            (Some(400), Some(reply(11, None)), 2, WholeRequest),
            (Some(400), Some(reply(14, None)), 2, WholeRequest),
            (Some(404), None, 500, WholeRequest),
            (Some(404), Some(reply(6, Some(3))), 500, WholeRequest),
            // Code 6 names the bad event when it lies inside the batch.
            (Some(400), Some(reply(6, Some(40))), 100, InvalidEvent(40)),
            (Some(400), Some(reply(6, Some(0))), 1, InvalidEvent(0)),
            (Some(400), Some(reply(6, Some(99))), 100, InvalidEvent(99)),
            (Some(400), Some(reply(6, Some(100))), 100, Split),
            (Some(400), Some(reply(6, None)), 100, Split),
            (Some(400), Some(reply(6, Some(5))), 1, DeadLetter),
            // Other 400s split down to a lone event.
            (Some(400), None, 2, Split),
            (Some(400), Some(reply(5, None)), 9, Split),
            (Some(400), Some(reply(12, None)), 9, Split),
            (Some(400), None, 1, DeadLetter),
            (Some(400), Some(reply(12, None)), 1, DeadLetter),
            // 413 splits down to a lone event, which is too large.
            (Some(413), None, 8, SplitTooLarge),
            (Some(413), None, 2, SplitTooLarge),
            (Some(413), None, 1, TooLarge),
            // Everything else permanent.
            (Some(401), None, 5, DeadLetter),
            (Some(403), Some(reply(0, None)), 5, DeadLetter),
            (Some(501), None, 5, DeadLetter),
            (Some(302), None, 5, DeadLetter),
            (None, None, 5, DeadLetter),
        ];
        for (status, reply, events, want) in cases {
            assert_eq!(
                decide(*status, reply.as_ref(), *events),
                *want,
                "{status:?} {reply:?} {events}"
            );
        }
    }

    #[test]
    fn whole_request_codes() {
        let whole: Vec<i64> = (-1..=20).filter(|c| is_whole_request_code(*c)).collect();
        assert_eq!(whole, [1, 2, 3, 4, 7, 10, 11, 14]);
    }

    #[test]
    fn replies_are_parsed_from_answer_bodies() {
        let r = parse_reply(r#"{"text":"Invalid data format","code":6,"invalid-event-number":40}"#)
            .unwrap();
        assert_eq!((r.code, r.invalid_event_number), (6, Some(40)));
        let r = parse_reply(" {\"text\":\"Incorrect index\",\"code\":7}\n").unwrap();
        assert_eq!((r.code, r.invalid_event_number), (7, None));
        assert_eq!(parse_reply(""), None);
        assert_eq!(parse_reply("<html>Not Found</html>"), None);
    }

    #[test]
    fn channels_differ() {
        assert_ne!(new_channel(), new_channel());
    }
}
