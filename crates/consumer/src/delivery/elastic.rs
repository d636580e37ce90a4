//! Elasticsearch `_bulk`: request bodies and what each item's answer means.
//!
//! A `_bulk` request is NDJSON: per event an action line
//! (`{"create":{"_index":..,"_id":..}}`, or `index`) and the document's source line, each
//! ending in `\n`. The `_id` is the event's id, so a re-sent event is not indexed twice:
//! with `create` Elasticsearch answers it 409 `version_conflict_engine_exception`, which
//! means "already delivered"; with `index` it overwrites itself.
//!
//! Elasticsearch answers 200 even when items fail: the reply lists one result per action, in
//! request order, each with its own HTTP status; the top-level `errors` flag only says
//! whether any failed. So [`parse_bulk_reply`] reads every item's status: 2xx stored, 409 on
//! `create` a duplicate (delivered), 408/429/5xx (`es_rejected_execution_exception`, a shard
//! unavailable) to be re-sent, other 4xx (mapping and document parsing errors) permanent for
//! that document alone. Only the re-sendable items go into the next request; a rejected one
//! is dead-lettered without holding back the rest of its batch.

use els_model::settings::{ElasticOpType, ElasticOptions};
use serde::Deserialize;

/// Most bytes of an item's error reason kept.
pub const MAX_REASON_BYTES: usize = 300;

/// Bytes of one action line beyond the index name and the event id (with margin), for
/// sizing requests before writing them.
pub const ACTION_BYTES: usize = 48;

/// The action of every item of a stream.
fn action(options: &ElasticOptions) -> &'static str {
    match options.op_type {
        ElasticOpType::Create => "create",
        ElasticOpType::Index => "index",
    }
}

/// Append one item to a `_bulk` body: the action line for `event_id` (index and id
/// JSON-escaped), `\n`, the source `write_source` writes, `\n`. A raw newline in the written
/// source (pretty-printed JSON; JSON strings cannot contain one) is turned into a space so
/// the item stays one line. Returns the bytes appended.
pub fn write_item(
    out: &mut Vec<u8>,
    options: &ElasticOptions,
    event_id: &str,
    write_source: impl FnOnce(&mut Vec<u8>),
) -> usize {
    let start = out.len();
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(action(options).as_bytes());
    out.extend_from_slice(b"\":{\"_index\":");
    write_json_string(out, &options.index);
    out.extend_from_slice(b",\"_id\":");
    write_json_string(out, event_id);
    out.extend_from_slice(b"}}\n");
    let source = out.len();
    write_source(out);
    for b in &mut out[source..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    out.push(b'\n');
    out.len() - start
}

/// A `_bulk` body for `events` (`(event_id, event)` pairs), each event's source written
/// straight into the body by `write_source` (e.g. the outbound event writer). The body ends
/// in `\n`, as `_bulk` requires.
pub fn bulk_body<'a, E>(
    events: impl IntoIterator<Item = (&'a str, E)>,
    options: &ElasticOptions,
    mut write_source: impl FnMut(&mut Vec<u8>, E),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    for (id, event) in events {
        write_item(&mut out, options, id, |o| write_source(o, event));
    }
    out
}

/// `text` as a JSON string. serde_json cannot fail on a `str` written to a `Vec`.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// What became of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Indexed (2xx).
    Stored,
    /// 409 `version_conflict_engine_exception` on `create`: the document is there from an
    /// earlier send. Delivered.
    Duplicate,
    /// 408, 429 or 5xx (`es_rejected_execution_exception`, shard unavailable...): re-send this
    /// document.
    Retry { status: u16, reason: String },
    /// Another 4xx (`mapper_parsing_exception`, `document_parsing_exception`,
    /// `illegal_argument_exception`...): this document can never be stored; dead-letter it.
    Rejected {
        status: u16,
        error_type: String,
        reason: String,
    },
}

/// What a `_bulk` answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkReply {
    /// 200: one outcome per document sent, in request order.
    Items(Vec<ItemOutcome>),
    /// Another status: the whole request failed; classify `status` as for any request
    /// (401/403/413/429/5xx...).
    Request { status: u16 },
    /// A 200 whose body does not parse or does not list one item per document sent: a
    /// transient failure of the whole request.
    Malformed(String),
}

/// Counts of item outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkSummary {
    pub stored: usize,
    pub duplicates: usize,
    pub retry: usize,
    pub rejected: usize,
}

/// Count `outcomes` by kind.
pub fn summarize(outcomes: &[ItemOutcome]) -> BulkSummary {
    let mut s = BulkSummary::default();
    for o in outcomes {
        match o {
            ItemOutcome::Stored => s.stored += 1,
            ItemOutcome::Duplicate => s.duplicates += 1,
            ItemOutcome::Retry { .. } => s.retry += 1,
            ItemOutcome::Rejected { .. } => s.rejected += 1,
        }
    }
    s
}

/// The part of a `_bulk` reply read. `errors` is not trusted: every item's status is.
#[derive(Deserialize)]
struct Reply {
    items: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// One item's result, under its action's name.
#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Read Elasticsearch's answer to a `_bulk` request of `sent` documents.
pub fn parse_bulk_reply(status: u16, body: &[u8], sent: usize) -> BulkReply {
    if status != 200 {
        return BulkReply::Request { status };
    }
    let reply: Reply = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return BulkReply::Malformed(format!("the _bulk answer does not parse: {e}")),
    };
    if reply.items.len() != sent {
        return BulkReply::Malformed(format!(
            "the _bulk answer lists {} items for {sent} documents sent",
            reply.items.len()
        ));
    }
    let mut outcomes = Vec::with_capacity(sent);
    for (i, entry) in reply.items.into_iter().enumerate() {
        match item_outcome(entry) {
            Ok(o) => outcomes.push(o),
            Err(why) => return BulkReply::Malformed(format!("_bulk answer item {i}: {why}")),
        }
    }
    BulkReply::Items(outcomes)
}

/// One item's outcome, or why it cannot be read.
fn item_outcome(entry: serde_json::Map<String, serde_json::Value>) -> Result<ItemOutcome, String> {
    if entry.len() != 1 {
        return Err(format!("expected one action, found {} keys", entry.len()));
    }
    let Some((action, value)) = entry.into_iter().next() else {
        return Err("expected one action, found none".into());
    };
    let item: Item = serde_json::from_value(value).map_err(|e| format!("`{action}`: {e}"))?;
    let (error_type, reason) = error_of(item.error.as_ref());
    Ok(match item.status {
        200..=299 => ItemOutcome::Stored,
        409 if action == "create" && error_type == "version_conflict_engine_exception" => {
            ItemOutcome::Duplicate
        }
        408 | 429 | 500..=599 => ItemOutcome::Retry {
            status: item.status,
            reason: cap(&join(&error_type, &reason)),
        },
        400..=499 => ItemOutcome::Rejected {
            status: item.status,
            error_type,
            reason,
        },
        other => return Err(format!("`{action}` has status {other}")),
    })
}

/// An item error's `type` and its `reason` (with the first `caused_by`'s), capped. Old
/// versions gave the error as a plain string.
fn error_of(error: Option<&serde_json::Value>) -> (String, String) {
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match error {
        Some(serde_json::Value::String(s)) => (String::new(), cap(s)),
        Some(e) => {
            let mut reason = text(e.get("reason"));
            if let Some(cause) = e.get("caused_by") {
                let cause = join(&text(cause.get("type")), &text(cause.get("reason")));
                if !cause.is_empty() {
                    reason = format!("{reason} (caused by {cause})");
                }
            }
            (cap(&text(e.get("type"))), cap(&reason))
        }
        None => (String::new(), String::new()),
    }
}

/// `type: reason`, either part possibly empty.
fn join(error_type: &str, reason: &str) -> String {
    match (error_type.is_empty(), reason.is_empty()) {
        (false, false) => format!("{error_type}: {reason}"),
        (false, true) => error_type.to_string(),
        _ => reason.to_string(),
    }
}

/// At most [`MAX_REASON_BYTES`] of `text`, cut at a character boundary, `…` marking a cut.
fn cap(text: &str) -> String {
    crate::state::record::truncate(text, MAX_REASON_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(op_type: ElasticOpType) -> ElasticOptions {
        ElasticOptions {
            index: "els-events".into(),
            op_type,
            max_events: 500,
            max_bytes: 1024 * 1024,
        }
    }

    /// An item line of a reply.
    fn item(action: &str, status: u16, error: Option<(&str, &str)>) -> String {
        match error {
            None => format!(
                r#"{{"{action}":{{"_index":"els-events","_id":"x","_version":1,"result":"created","_shards":{{"total":2,"successful":1,"failed":0}},"_seq_no":0,"_primary_term":1,"status":{status}}}}}"#
            ),
            Some((t, r)) => format!(
                r#"{{"{action}":{{"_index":"els-events","_id":"x","status":{status},"error":{{"type":"{t}","reason":"{r}"}}}}}}"#
            ),
        }
    }

    fn reply(errors: bool, items: &[String]) -> Vec<u8> {
        format!(
            r#"{{"took":3,"errors":{errors},"items":[{}]}}"#,
            items.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn body_is_ndjson_with_escaped_metadata() {
        let mut o = options(ElasticOpType::Create);
        o.index = "logs-\"els\"\\x".into();
        let events = [
            ("evt-1", r#"{"a":1}"#),
            ("id\"with\nnewline", "{\n  \"b\": 2\n}"),
        ];
        let body = bulk_body(events, &o, |out, source| {
            out.extend_from_slice(source.as_bytes())
        });
        let text = String::from_utf8(body).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            r#"{"create":{"_index":"logs-\"els\"\\x","_id":"evt-1"}}"#
        );
        assert_eq!(lines[1], r#"{"a":1}"#);
        let action: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(action["create"]["_id"], "id\"with\nnewline");
        assert_eq!(action["create"]["_index"], "logs-\"els\"\\x");
        let source: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(source["b"], 2, "a pretty source stays one line");

        let body = bulk_body([("e", "{}")], &options(ElasticOpType::Index), |out, s| {
            out.extend_from_slice(s.as_bytes())
        });
        assert_eq!(
            body,
            b"{\"index\":{\"_index\":\"els-events\",\"_id\":\"e\"}}\n{}\n"
        );
        assert!(bulk_body(std::iter::empty::<(&str, ())>(), &o, |_, _| unreachable!()).is_empty());
    }

    #[test]
    fn write_item_reports_its_size() {
        let mut out = b"prefix".to_vec();
        let o = options(ElasticOpType::Create);
        let n = write_item(&mut out, &o, "evt-1", |w| w.extend_from_slice(b"{}"));
        assert_eq!(n, out.len() - 6);
        assert!(n <= ACTION_BYTES + o.index.len() + "evt-1".len() + 2);
    }

    #[test]
    fn picks_the_failed_items_of_500() {
        let mut items: Vec<String> = (0..500).map(|_| item("create", 201, None)).collect();
        for i in [7, 250, 499] {
            items[i] = item(
                "create",
                429,
                Some((
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation",
                )),
            );
        }
        items[100] = item(
            "create",
            400,
            Some((
                "mapper_parsing_exception",
                "failed to parse field [duration_ms] of type [long]",
            )),
        );
        let BulkReply::Items(outcomes) = parse_bulk_reply(200, &reply(true, &items), 500) else {
            panic!()
        };
        let retry: Vec<usize> = (0..500)
            .filter(|i| matches!(outcomes[*i], ItemOutcome::Retry { status: 429, .. }))
            .collect();
        assert_eq!(retry, [7, 250, 499]);
        assert_eq!(
            outcomes[100],
            ItemOutcome::Rejected {
                status: 400,
                error_type: "mapper_parsing_exception".into(),
                reason: "failed to parse field [duration_ms] of type [long]".into(),
            }
        );
        assert_eq!(
            summarize(&outcomes),
            BulkSummary {
                stored: 496,
                duplicates: 0,
                retry: 3,
                rejected: 1
            }
        );
        let ItemOutcome::Retry { reason, .. } = &outcomes[7] else {
            panic!()
        };
        assert_eq!(
            reason,
            "es_rejected_execution_exception: rejected execution of coordinating operation"
        );
    }

    #[test]
    fn conflicts_on_create_are_duplicates_only() {
        let conflict = Some((
            "version_conflict_engine_exception",
            "[x]: version conflict, document already exists (current version [1])",
        ));
        let items = [item("create", 409, conflict), item("index", 409, conflict)];
        let BulkReply::Items(o) = parse_bulk_reply(200, &reply(true, &items), 2) else {
            panic!()
        };
        assert_eq!(o[0], ItemOutcome::Duplicate);
        assert!(matches!(o[1], ItemOutcome::Rejected { status: 409, .. }));
    }

    #[test]
    fn errors_false_with_all_created() {
        let items: Vec<String> = (0..3).map(|_| item("create", 201, None)).collect();
        assert_eq!(
            parse_bulk_reply(200, &reply(false, &items), 3),
            BulkReply::Items(vec![ItemOutcome::Stored; 3])
        );
        // `errors: false` is not trusted over an item's status.
        let items = [item("create", 201, None), item("create", 503, None)];
        let BulkReply::Items(o) = parse_bulk_reply(200, &reply(false, &items), 2) else {
            panic!()
        };
        assert_eq!(
            o[1],
            ItemOutcome::Retry {
                status: 503,
                reason: String::new()
            }
        );
    }

    #[test]
    fn whole_request_answers() {
        let items = [item("create", 201, None)];
        assert!(matches!(
            parse_bulk_reply(200, &reply(false, &items), 2),
            BulkReply::Malformed(m) if m == "the _bulk answer lists 1 items for 2 documents sent"
        ));
        assert!(matches!(
            parse_bulk_reply(200, b"<html>proxy</html>", 1),
            BulkReply::Malformed(_)
        ));
        assert!(matches!(
            parse_bulk_reply(200, br#"{"took":1,"errors":false}"#, 1),
            BulkReply::Malformed(_)
        ));
        assert!(matches!(
            parse_bulk_reply(200, br#"{"items":[{"create":{"status":201},"index":{"status":201}}]}"#, 1),
            BulkReply::Malformed(m) if m.contains("item 0")
        ));
        assert!(matches!(
            parse_bulk_reply(200, br#"{"items":[{"create":{"result":"created"}}]}"#, 1),
            BulkReply::Malformed(_)
        ));
        assert!(matches!(
            parse_bulk_reply(200, br#"{"items":[{"create":{"status":302}}]}"#, 1),
            BulkReply::Malformed(_)
        ));
        for status in [401, 403, 413, 429, 503] {
            assert_eq!(
                parse_bulk_reply(status, b"{}", 1),
                BulkReply::Request { status }
            );
        }
    }

    #[test]
    fn reasons_are_capped() {
        let long = "é".repeat(400);
        let items = [item(
            "create",
            400,
            Some(("illegal_argument_exception", &long)),
        )];
        let BulkReply::Items(o) = parse_bulk_reply(200, &reply(true, &items), 1) else {
            panic!()
        };
        let ItemOutcome::Rejected { reason, .. } = &o[0] else {
            panic!()
        };
        assert!(reason.len() <= MAX_REASON_BYTES + '…'.len_utf8());
        assert!(reason.ends_with('…'));
    }

    /// An Elasticsearch 8.x answer as its docs describe it: a created document, a conflict
    /// on a re-sent one, a document parsing error with its cause, a rejected execution, on a
    /// data stream's backing index.
    #[test]
    fn an_elasticsearch_8_reply() {
        let body = r#"{
          "errors": true,
          "took": 18,
          "items": [
            {"create": {"_index": ".ds-logs-els-default-2025.01.06-000001", "_id": "evt-1",
              "_version": 1, "result": "created",
              "_shards": {"total": 2, "successful": 1, "failed": 0},
              "_seq_no": 12, "_primary_term": 1, "status": 201}},
            {"create": {"_index": ".ds-logs-els-default-2025.01.06-000001", "_id": "evt-2",
              "status": 409,
              "error": {"type": "version_conflict_engine_exception",
                "reason": "[evt-2]: version conflict, document already exists (current version [1])",
                "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "shard": "0",
                "index": ".ds-logs-els-default-2025.01.06-000001"}}},
            {"create": {"_index": ".ds-logs-els-default-2025.01.06-000001", "_id": "evt-3",
              "status": 400,
              "error": {"type": "document_parsing_exception",
                "reason": "[1:87] failed to parse field [duration_ms] of type [long] in document with id 'evt-3'. Preview of field's value: 'slow'",
                "caused_by": {"type": "illegal_argument_exception",
                  "reason": "For input string: \"slow\""}}}},
            {"create": {"_index": ".ds-logs-els-default-2025.01.06-000001", "_id": "evt-4",
              "status": 429,
              "error": {"type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]"}}}
          ]
        }"#;
        let BulkReply::Items(o) = parse_bulk_reply(200, body.as_bytes(), 4) else {
            panic!()
        };
        assert_eq!(o[0], ItemOutcome::Stored);
        assert_eq!(o[1], ItemOutcome::Duplicate);
        assert_eq!(
            o[2],
            ItemOutcome::Rejected {
                status: 400,
                error_type: "document_parsing_exception".into(),
                reason: "[1:87] failed to parse field [duration_ms] of type [long] in document \
                         with id 'evt-3'. Preview of field's value: 'slow' (caused by \
                         illegal_argument_exception: For input string: \"slow\")"
                    .into(),
            }
        );
        assert!(matches!(&o[3], ItemOutcome::Retry { status: 429, reason }
            if reason.starts_with("es_rejected_execution_exception: rejected execution")));
    }
}
