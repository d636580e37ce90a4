//! Fault injection: one global set of faults, set by flags at start or `PUT /sim/faults` at run
//! time, that makes ingest requests slow, hang or fail the way a real SIEM does under load.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::hec::{fault_code, Reply};
use crate::Error;

/// Longest a hung request is held open; it ends earlier when the client gives up or the server
/// shuts down.
pub const HANG_LIMIT: Duration = Duration::from_secs(3600);

/// The faults applied to ingest requests (HEC and generic). The JSON form is what
/// `GET`/`PUT /sim/faults` read and write; missing fields take their defaults (no fault).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer every ingest request with this HTTP status (and the fitting HEC body) without
    /// storing anything.
    pub status: Option<u16>,
    /// HEC `code` for `status` answers, when the default for the status does not fit the test.
    pub hec_code: Option<u16>,
    /// Sleep this long before answering (the answer is normal unless `status` is set too).
    pub delay_ms: u64,
    /// When non-zero, the request faults (`status`, `hec_code`, `delay_ms`, `retry_after`,
    /// `hang`) apply to the next N ingest requests only and then clear themselves.
    pub fail_next: u64,
    /// Value of a `Retry-After` header added to `status` answers (seconds or an HTTP date).
    pub retry_after: Option<String>,
    /// Never answer: hold the request open until the client gives up (bounded by
    /// [`HANG_LIMIT`] and by shutdown).
    pub hang: bool,
    /// Process the request normally but send the answer's body one byte per second (status
    /// and headers go out at once), like a SIEM behind a congested link.
    pub trickle: bool,
    /// Make `GET /services/collector/health` answer 503 (code 18). Not cleared by `fail_next`.
    pub unhealthy: bool,
    /// Poison events: a request holding an envelope (or document) whose JSON text contains
    /// this string is refused whole with 400, HEC code 6 and that envelope's
    /// `invalid-event-number`, as Splunk does for an event it cannot index. Not cleared by
    /// `fail_next`.
    pub reject_containing: Option<String>,
    /// Ack-enabled tokens: this percentage (0..=100) of the ack ids handed out is never
    /// acknowledged (the ack endpoint answers `false` for them forever), like events lost
    /// inside Splunk ("About HTTP Event Collector Indexer Acknowledgment"). Spread evenly: of
    /// every 100 consecutive ids, exactly this many never ack. Not cleared by `fail_next`.
    pub never_ack_percent: u8,
    /// Elasticsearch `_bulk`: reject `count` of the next `within` bulk items (spread evenly,
    /// the last one included) with item status 429 `es_rejected_execution_exception`, as a
    /// node whose write queue is full does. Rejected items are not stored; a re-send is
    /// judged afresh. Clears itself once `within` items have been seen (`seen` counts them).
    /// Not cleared by `fail_next`.
    pub bulk_rejections: Option<BulkRejections>,
    /// Elasticsearch `_bulk`: documents with one of these event ids (the source's `event_id`,
    /// else the action's `_id`) always fail with item status 400
    /// `document_parsing_exception`, like a document that does not fit the index mapping; a
    /// re-send fails again. Not cleared by `fail_next`.
    pub mapping_error_ids: Vec<String>,
    /// Elasticsearch `_bulk`: fields mapped as `long`: a document whose top-level field (or
    /// field of `event`) of one of these names holds a string that is not an integer fails
    /// with item status 400 `document_parsing_exception`, as Elasticsearch answers a value that
    /// does not parse as the mapped type. Not cleared by `fail_next`.
    pub mapping_long_fields: Vec<String>,
}

/// See [`Faults::bulk_rejections`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRejections {
    /// Items to reject.
    pub count: u64,
    /// Among how many next items; missing or 0: the next `count` items.
    #[serde(default)]
    pub within: u64,
    /// Items judged so far (normally left out when setting).
    #[serde(default)]
    pub seen: u64,
}

impl BulkRejections {
    fn window(&self) -> u64 {
        if self.within == 0 {
            self.count
        } else {
            self.within
        }
    }
}

/// What one ingest request suffers, decided by [`Faults::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub delay: Duration,
    pub hang: bool,
    pub trickle: bool,
    /// The answer to give instead of processing the request, if any.
    pub reply: Option<Reply>,
    pub retry_after: Option<HeaderValue>,
}

impl Faults {
    /// A fault set that answers every ingest request with `status`.
    pub fn status(status: u16) -> Self {
        Faults {
            status: Some(status),
            ..Faults::default()
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if let Some(status) = self.status {
            if !(200..=599).contains(&status) {
                return Err(Error::InvalidConfig {
                    field: "faults.status",
                    reason: format!("{status} is not an HTTP status in 200..=599"),
                });
            }
        }
        if self.never_ack_percent > 100 {
            return Err(Error::InvalidConfig {
                field: "faults.never_ack_percent",
                reason: format!("{} is not a percentage", self.never_ack_percent),
            });
        }
        if let Some(r) = &self.bulk_rejections {
            if r.count == 0 || r.within != 0 && r.within < r.count || r.seen >= r.window() {
                return Err(Error::InvalidConfig {
                    field: "faults.bulk_rejections",
                    reason: "need count > 0, within 0 or >= count, and seen < within".to_owned(),
                });
            }
        }
        if let Some(retry_after) = &self.retry_after {
            if retry_after.is_empty() || HeaderValue::from_str(retry_after).is_err() {
                return Err(Error::InvalidConfig {
                    field: "faults.retry_after",
                    reason: "must be a non-empty header value, e.g. \"3\"".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Whether the next bulk item is rejected with 429 (see [`Faults::bulk_rejections`]):
    /// item `i` (0-based) of a window of `w` holding `c` rejections is rejected when
    /// `floor((i+1)c/w)` exceeds `floor(ic/w)`, which picks exactly `c` items spread evenly.
    pub fn take_bulk_rejection(&mut self) -> bool {
        let Some(r) = &mut self.bulk_rejections else {
            return false;
        };
        let (i, c, w) = (r.seen, r.count, r.window());
        let reject = (i + 1) * c / w > i * c / w;
        r.seen += 1;
        if r.seen >= w {
            self.bulk_rejections = None;
        }
        reject
    }

    fn has_request_fault(&self) -> bool {
        self.status.is_some() || self.delay_ms > 0 || self.hang || self.trickle
    }

    /// Decide the fault for the next ingest request and count `fail_next` down.
    /// Call only on a validated set.
    pub fn take(&mut self) -> Option<Injected> {
        if !self.has_request_fault() {
            return None;
        }
        let reply = self
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .map(|status| Reply::Fault {
                status,
                code: self.hec_code.unwrap_or_else(|| fault_code(status)),
            });
        let injected = Injected {
            delay: Duration::from_millis(self.delay_ms),
            hang: self.hang,
            trickle: self.trickle,
            retry_after: reply
                .as_ref()
                .and(self.retry_after.as_deref())
                .and_then(|v| HeaderValue::from_str(v).ok()),
            reply,
        };
        if self.fail_next > 0 {
            self.fail_next -= 1;
            if self.fail_next == 0 {
                *self = Faults {
                    unhealthy: self.unhealthy,
                    never_ack_percent: self.never_ack_percent,
                    reject_containing: self.reject_containing.take(),
                    bulk_rejections: self.bulk_rejections.take(),
                    mapping_error_ids: std::mem::take(&mut self.mapping_error_ids),
                    mapping_long_fields: std::mem::take(&mut self.mapping_long_fields),
                    ..Faults::default()
                };
            }
        }
        Some(injected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_fault_by_default() {
        assert_eq!(Faults::default().take(), None);
        let mut only_unhealthy = Faults {
            unhealthy: true,
            fail_next: 2,
            ..Faults::default()
        };
        assert_eq!(only_unhealthy.take(), None);
        assert_eq!(only_unhealthy.fail_next, 2);
    }

    #[test]
    fn persistent_status_fault() {
        let mut f = Faults {
            retry_after: Some("3".into()),
            ..Faults::status(503)
        };
        for _ in 0..3 {
            let got = f.take().unwrap();
            assert_eq!(
                got.reply,
                Some(Reply::Fault {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: 9
                })
            );
            assert_eq!(got.retry_after, Some(HeaderValue::from_static("3")));
        }
    }

    #[test]
    fn fail_next_clears_request_faults_only() {
        let mut f = Faults {
            hec_code: Some(8),
            fail_next: 2,
            unhealthy: true,
            ..Faults::status(500)
        };
        assert!(f.take().is_some());
        assert_eq!(f.fail_next, 1);
        let last = f.take().unwrap();
        assert_eq!(
            last.reply,
            Some(Reply::Fault {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: 8
            })
        );
        assert_eq!(f.take(), None);
        assert_eq!(
            f,
            Faults {
                unhealthy: true,
                ..Faults::default()
            }
        );
    }

    #[test]
    fn delay_without_status_answers_normally() {
        let mut f = Faults {
            delay_ms: 250,
            retry_after: Some("1".into()),
            ..Faults::default()
        };
        let got = f.take().unwrap();
        assert_eq!(got.delay, Duration::from_millis(250));
        assert_eq!(got.reply, None);
        assert_eq!(got.retry_after, None);
    }

    #[test]
    fn bulk_rejections_pick_exactly_count_items_spread_evenly() {
        let mut f = Faults {
            bulk_rejections: Some(BulkRejections {
                count: 3,
                within: 500,
                seen: 0,
            }),
            ..Faults::default()
        };
        assert!(f.validate().is_ok());
        let picked: Vec<usize> = (0..600).filter(|_| f.take_bulk_rejection()).collect();
        assert_eq!(picked, [166, 333, 499]);
        assert_eq!(f.bulk_rejections, None);
        let mut next_two = Faults {
            bulk_rejections: Some(BulkRejections {
                count: 2,
                ..BulkRejections::default()
            }),
            ..Faults::default()
        };
        let got: Vec<bool> = (0..3).map(|_| next_two.take_bulk_rejection()).collect();
        assert_eq!(got, [true, true, false]);
        let bad = Faults {
            bulk_rejections: Some(BulkRejections {
                count: 5,
                within: 4,
                seen: 0,
            }),
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn fail_next_keeps_item_faults() {
        let mut f = Faults {
            fail_next: 1,
            mapping_error_ids: vec!["x".into()],
            reject_containing: Some("poison".into()),
            ..Faults::status(503)
        };
        assert!(f.take().is_some());
        assert_eq!(f.status, None);
        assert_eq!(f.mapping_error_ids, ["x"]);
        assert_eq!(f.reject_containing.as_deref(), Some("poison"));
    }

    #[test]
    fn validation_names_the_field() {
        let err = Faults::status(42).validate().unwrap_err().to_string();
        assert!(err.contains("faults.status"), "{err}");
        let bad_header = Faults {
            retry_after: Some("a\nb".into()),
            ..Faults::default()
        };
        assert!(bad_header.validate().is_err());
        assert!(Faults::status(429).validate().is_ok());
    }

    #[test]
    fn json_form_takes_defaults_and_refuses_unknown_fields() {
        let f: Faults = serde_json::from_str(r#"{"status":503,"fail_next":1}"#).unwrap();
        assert_eq!(f.status, Some(503));
        assert!(!f.hang);
        assert!(serde_json::from_str::<Faults>(r#"{"stauts":503}"#).is_err());
    }
}
