//! Elasticsearch `_bulk` ("Bulk index or delete documents", Elasticsearch API reference):
//! parsing the NDJSON body of action/metadata lines and source lines, deciding each item's
//! outcome, and the answer and error bodies, pure and unit-tested.
//!
//! Reference: <https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk>.
//!
//! What Elasticsearch does and this module plays:
//! - The body is action lines (`{"create":{"_index":"i","_id":"1"}}`), each `create` or
//!   `index` followed by its source line; the body must end with a newline. A body-level
//!   problem (bad action line, missing index, no body) refuses the whole request with 400
//!   and `{"error":{"root_cause":[..],"type":..,"reason":..},"status":400}`.
//! - Otherwise the answer is 200 `{"took","errors","items"}`; each item carries its own
//!   `status`, and failed ones an `error` with `type` and `reason`. `errors` is true when any
//!   item failed. A sender must look at items, not at the HTTP status.
//! - `create` of an `_id` already in the index is 409 `version_conflict_engine_exception`
//!   (what a re-sent duplicate gets); `index` overwrites it (200 `updated`, version + 1).
//!   Without `_id`, an id is generated (20 URL-safe characters).
//! - `delete` is played (200 `deleted` or 404 `not_found`, without an error, as
//!   Elasticsearch answers); `update` is not: its item answers 400
//!   `illegal_argument_exception` (ELS never sends updates).

use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use serde_json::{json, Map, Value};

/// Elasticsearch's `http.max_content_length` default, 100mb.
pub const DEFAULT_MAX_CONTENT_LENGTH: usize = 100 * 1024 * 1024;

/// Header every Elasticsearch answer carries; the official clients refuse a server without
/// it ("The client noticed that the server is not Elasticsearch").
pub const PRODUCT_HEADER: (&str, &str) = ("x-elastic-product", "Elasticsearch");

/// One index's documents: id → version, and the next sequence number.
#[derive(Debug, Default)]
pub struct EsIndex {
    docs: HashMap<String, u64>,
    next_seq_no: u64,
}

/// Index name → its documents.
pub type EsDocs = HashMap<String, EsIndex>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Index,
    Delete,
    Update,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Index => "index",
            Action::Delete => "delete",
            Action::Update => "update",
        }
    }
}

/// One parsed bulk item.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub action: Action,
    pub index: String,
    pub id: Option<String>,
    /// The source line: `Ok` a JSON object, `Err` why it is not one (an item error, as
    /// Elasticsearch reports a bad document). `None` for `delete`.
    pub source: Option<Result<Value, String>>,
}

/// A body-level refusal: HTTP status, error `type` and `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub status: u16,
    pub kind: &'static str,
    pub reason: String,
}

impl BodyError {
    fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        BodyError {
            status: 400,
            kind,
            reason: reason.into(),
        }
    }

    pub fn body(&self) -> Value {
        error_body(self.status, self.kind, &self.reason)
    }
}

/// Elasticsearch's error answer: `{"error":{"root_cause":[..],"type","reason"},"status"}`.
pub fn error_body(status: u16, kind: &str, reason: &str) -> Value {
    json!({
        "error": {
            "root_cause": [{"type": kind, "reason": reason}],
            "type": kind,
            "reason": reason,
        },
        "status": status,
    })
}

/// The body of an injected whole-request fault with `status`.
pub fn fault_body(status: u16) -> Value {
    let (kind, reason) = match status {
        429 => (
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation",
        ),
        503 => (
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/2/no master];",
        ),
        _ => ("exception", "simulated failure"),
    };
    error_body(status, kind, reason)
}

/// Why authentication failed: no credentials, or ones that are not accepted (both 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
}

impl AuthError {
    pub fn body(self, path: &str) -> Value {
        let reason = match self {
            AuthError::Missing => {
                format!("missing authentication credentials for REST request [{path}]")
            }
            AuthError::Invalid => "unable to authenticate with provided credentials and \
                                   anonymous access is not allowed for this request"
                .to_owned(),
        };
        let header = json!({"WWW-Authenticate": [AUTH_CHALLENGES[0], AUTH_CHALLENGES[1]]});
        json!({
            "error": {
                "root_cause": [{"type": "security_exception", "reason": reason, "header": header}],
                "type": "security_exception",
                "reason": reason,
                "header": header,
            },
            "status": 401,
        })
    }
}

/// The `WWW-Authenticate` values of Elasticsearch's 401.
pub const AUTH_CHALLENGES: [&str; 2] = ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"];

/// Check `Authorization` against the accepted tokens: `ApiKey <key>` (the key itself, or
/// base64 `id:key` as Elasticsearch's encoded API keys are: the `key` part is checked),
/// `Basic base64(user:password)` (the password is checked, any user), or `Bearer <token>`.
pub fn authenticate(
    header: Option<&str>,
    accepted: impl Fn(&str) -> bool,
) -> Result<(), AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, credential) = value.trim().split_once(' ').ok_or(AuthError::Invalid)?;
    let credential = credential.trim();
    let decoded = || {
        crate::oauth::base64_decode(credential)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|s| s.split_once(':').map(|(_, secret)| secret.to_owned()))
    };
    let ok = if scheme.eq_ignore_ascii_case("apikey") {
        accepted(credential) || decoded().is_some_and(|key| accepted(&key))
    } else if scheme.eq_ignore_ascii_case("basic") {
        decoded().is_some_and(|password| accepted(&password))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        accepted(credential)
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid)
    }
}

/// Check the `Content-Type` of a bulk request: JSON or NDJSON, plain or in the versioned
/// form the official clients send (`application/vnd.elasticsearch+x-ndjson;
/// compatible-with=8`). `Err` is the 406 body Elasticsearch answers.
pub fn check_content_type(value: Option<&str>) -> Result<(), Value> {
    let Some(value) = value else {
        return Err(json!({"error": "Content-Type header is missing", "status": 406}));
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json"
        | "application/x-ndjson"
        | "application/vnd.elasticsearch+json"
        | "application/vnd.elasticsearch+x-ndjson" => Ok(()),
        _ => Err(json!({
            "error": format!("Content-Type header [{value}] is not supported"),
            "status": 406,
        })),
    }
}

const META_KEYS: &[&str] = &[
    "_index",
    "_id",
    "routing",
    "pipeline",
    "require_alias",
    "require_data_stream",
    "if_seq_no",
    "if_primary_term",
    "version",
    "version_type",
    "dynamic_templates",
    "retry_on_conflict",
    "_source",
    "list_executed_pipelines",
];

/// Parse a bulk body; `default_index` is the `{index}` of `POST /{index}/_bulk`.
pub fn parse_bulk(body: &[u8], default_index: Option<&str>) -> Result<Vec<Op>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::new(
            "parse_exception",
            "request body is required",
        ));
    }
    if body.last() != Some(&b'\n') {
        return Err(BodyError::new(
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        ));
    }
    let lines: Vec<&[u8]> = body[..body.len() - 1].split(|b| *b == b'\n').collect();
    let mut ops = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i];
        i += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (action, index, id) = parse_action(line, line_no, default_index)?;
        let source = match action {
            Action::Delete => None,
            _ => {
                let Some(source) = lines.get(i) else {
                    return Err(BodyError::new(
                        "action_request_validation_exception",
                        "Validation Failed: 1: source is missing;2: content type is missing;",
                    ));
                };
                i += 1;
                Some(parse_source(source))
            }
        };
        ops.push(Op {
            action,
            index,
            id,
            source,
        });
    }
    if ops.is_empty() {
        return Err(BodyError::new(
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        ));
    }
    Ok(ops)
}

fn parse_action(
    line: &[u8],
    line_no: usize,
    default_index: Option<&str>,
) -> Result<(Action, String, Option<String>), BodyError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        BodyError::new(
            "x_content_parse_exception",
            format!("[{line_no}:{}] {e}", e.column()),
        )
    })?;
    let malformed = |found: &str| {
        BodyError::new(
            "illegal_argument_exception",
            format!(
                "Malformed action/metadata line [{line_no}], expected field [create], [delete], \
                 [index] or [update] but found [{found}]"
            ),
        )
    };
    let Value::Object(fields) = value else {
        return Err(BodyError::new(
            "illegal_argument_exception",
            format!(
                "Malformed action/metadata line [{line_no}], expected START_OBJECT or END_OBJECT \
                 but found [VALUE]"
            ),
        ));
    };
    let mut entries = fields.into_iter();
    let Some((name, meta)) = entries.next() else {
        return Err(malformed("END_OBJECT"));
    };
    if let Some((extra, _)) = entries.next() {
        return Err(BodyError::new(
            "illegal_argument_exception",
            format!(
                "Malformed action/metadata line [{line_no}], expected END_OBJECT but found \
                 [{extra}]"
            ),
        ));
    }
    let action = match name.as_str() {
        "create" => Action::Create,
        "index" => Action::Index,
        "delete" => Action::Delete,
        "update" => Action::Update,
        other => return Err(malformed(other)),
    };
    let Value::Object(meta) = meta else {
        return Err(BodyError::new(
            "illegal_argument_exception",
            format!(
                "Malformed action/metadata line [{line_no}], expected START_OBJECT but found \
                 [VALUE]"
            ),
        ));
    };
    if let Some(unknown) = meta.keys().find(|k| !META_KEYS.contains(&k.as_str())) {
        return Err(BodyError::new(
            "illegal_argument_exception",
            format!("Action/metadata line [{line_no}] contains an unknown parameter [{unknown}]"),
        ));
    }
    let index = match meta.get("_index") {
        Some(Value::String(index)) => index.clone(),
        Some(_) => {
            return Err(BodyError::new(
                "illegal_argument_exception",
                format!("Malformed action/metadata line [{line_no}], [_index] must be a string"),
            ))
        }
        None => match default_index {
            Some(index) => index.to_owned(),
            None => {
                return Err(BodyError::new(
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                ))
            }
        },
    };
    let id = match meta.get("_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(BodyError::new(
                "illegal_argument_exception",
                format!("Malformed action/metadata line [{line_no}], [_id] must be a string"),
            ))
        }
    };
    if action == Action::Delete && id.is_none() {
        return Err(BodyError::new(
            "action_request_validation_exception",
            "Validation Failed: 1: id is missing;",
        ));
    }
    Ok((action, index, id))
}

fn parse_source(line: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(fields)) => Ok(Value::Object(fields)),
        Ok(_) => Err("[1:1] failed to parse: the document is not a JSON object".to_owned()),
        Err(e) => Err(format!(
            "[{}:{}] failed to parse: {e}",
            e.line(),
            e.column()
        )),
    }
}

/// Elasticsearch's index name rules ("Create index API": lowercase, no `\ / * ? " < > | ,
/// #` or space, not starting with `-`, `_` or `+`, not `.` or `..`, at most 255 bytes).
pub fn index_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name != name.to_lowercase() {
        return Some("must be lowercase");
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("must not start with '_', '-', or '+'");
    }
    if name == "." || name == ".." {
        return Some("must not be '.' or '..'");
    }
    if name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']) {
        return Some(
            "must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?, #, :]",
        );
    }
    if name.len() > 255 {
        return Some("index name is too long");
    }
    None
}

/// Item faults set through `/sim/faults`.
#[derive(Debug, Clone, Copy)]
pub struct ItemFaults<'a> {
    /// Event ids whose documents always fail to parse.
    pub mapping_error_ids: &'a [String],
    /// Fields mapped as `long`: a string value that is not an integer fails to parse.
    pub long_fields: &'a [String],
}

/// The event id of a document: its `event_id` (or `event.event_id`), else the `_id`.
pub fn event_id(source: &Value, id: Option<&str>) -> Option<String> {
    crate::state::event_id(source).or_else(|| id.map(str::to_owned))
}

/// A mapping error for `source`, as Elasticsearch reports a value its mapping refuses.
fn mapping_error(
    source: &Value,
    id: &str,
    event_id: Option<&str>,
    faults: ItemFaults<'_>,
) -> Option<Value> {
    if let Some(eid) = event_id.filter(|e| faults.mapping_error_ids.iter().any(|m| m == e)) {
        return Some(json!({
            "type": "document_parsing_exception",
            "reason": format!(
                "[1:1] failed to parse field [event_id] in document with id '{id}'. Preview of \
                 field's value: '{eid}'"
            ),
            "caused_by": {"type": "illegal_argument_exception", "reason": "simulated mapping conflict"},
        }));
    }
    for field in faults.long_fields {
        let value = source
            .get(field)
            .or_else(|| source.get("event").and_then(|e| e.get(field)));
        if let Some(Value::String(s)) = value {
            if s.trim().parse::<i64>().is_err() {
                return Some(json!({
                    "type": "document_parsing_exception",
                    "reason": format!(
                        "[1:1] failed to parse field [{field}] of type [long] in document with \
                         id '{id}'. Preview of field's value: '{s}'"
                    ),
                    "caused_by": {
                        "type": "illegal_argument_exception",
                        "reason": format!("For input string: \"{s}\""),
                    },
                }));
            }
        }
    }
    None
}

/// The outcome of a bulk request: the answer body and the documents to store.
#[derive(Debug)]
pub struct Outcome {
    /// `{"took","errors","items"}` (caller sets `took`).
    pub body: Value,
    /// Accepted documents with their event id.
    pub stored: Vec<(Value, Option<String>)>,
    /// Items by status.
    pub item_statuses: BTreeMap<u16, u64>,
}

/// Apply `ops` in order to `docs`; `rejected[i]` says item `i` is refused with 429.
pub fn apply(
    ops: Vec<Op>,
    docs: &mut EsDocs,
    faults: ItemFaults<'_>,
    rejected: &[bool],
) -> Outcome {
    let mut items = Vec::with_capacity(ops.len());
    let mut stored = Vec::new();
    let mut item_statuses = BTreeMap::new();
    let mut errors = false;
    for (i, op) in ops.into_iter().enumerate() {
        let (status, item) = apply_one(
            op,
            docs,
            faults,
            rejected.get(i) == Some(&true),
            &mut stored,
        );
        errors |= status >= 300 && status != 404;
        *item_statuses.entry(status).or_default() += 1;
        items.push(item);
    }
    Outcome {
        body: json!({"took": 0, "errors": errors, "items": items}),
        stored,
        item_statuses,
    }
}

fn apply_one(
    op: Op,
    docs: &mut EsDocs,
    faults: ItemFaults<'_>,
    rejected: bool,
    stored: &mut Vec<(Value, Option<String>)>,
) -> (u16, Value) {
    let name = op.action.name();
    let id = op.id.clone().unwrap_or_else(generate_id);
    let fail = |status: u16, error: Value| {
        let mut item = Map::new();
        item.insert("_index".into(), json!(op.index));
        item.insert("_id".into(), json!(id));
        item.insert("status".into(), json!(status));
        item.insert("error".into(), error);
        (status, json!({ name: item }))
    };
    if let Some(problem) = index_name_problem(&op.index) {
        return fail(
            400,
            json!({
                "type": "invalid_index_name_exception",
                "reason": format!("Invalid index name [{}], {problem}", op.index),
                "index": op.index,
            }),
        );
    }
    if rejected {
        return fail(
            429,
            json!({
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of primary operation [shard_id=[0], queue capacity \
                           = 10000] on EsThreadPoolExecutor[name = write]",
            }),
        );
    }
    let source = match op.source {
        None => None,
        Some(Ok(source)) => Some(source),
        Some(Err(reason)) => {
            return fail(
                400,
                json!({
                    "type": "document_parsing_exception",
                    "reason": reason,
                }),
            )
        }
    };
    if op.action == Action::Update {
        return fail(
            400,
            json!({
                "type": "illegal_argument_exception",
                "reason": "siem-sim does not play the update action; use create or index",
            }),
        );
    }
    let event_id = source.as_ref().and_then(|s| event_id(s, Some(&id)));
    if let Some(source) = &source {
        if let Some(error) = mapping_error(source, &id, event_id.as_deref(), faults) {
            return fail(400, error);
        }
    }
    let index = docs.entry(op.index.clone()).or_default();
    let current = index.docs.get(&id).copied();
    let (status, result, version) = match (op.action, current) {
        (Action::Create, Some(version)) => {
            return fail(
                409,
                json!({
                    "type": "version_conflict_engine_exception",
                    "reason": format!(
                        "[{id}]: version conflict, document already exists (current version \
                         [{version}])"
                    ),
                    "index_uuid": "siemsimsiemsimsiemsim0",
                    "shard": "0",
                    "index": op.index,
                }),
            )
        }
        (Action::Create, None) | (Action::Index, None) => (201, "created", 1),
        (Action::Index, Some(version)) => (200, "updated", version + 1),
        (Action::Delete, Some(version)) => (200, "deleted", version + 1),
        (Action::Delete, None) => (404, "not_found", 1),
        (Action::Update, _) => unreachable!("update answered above"),
    };
    match op.action {
        Action::Delete => {
            index.docs.remove(&id);
        }
        _ => {
            index.docs.insert(id.clone(), version);
        }
    }
    let seq_no = index.next_seq_no;
    index.next_seq_no += 1;
    if let Some(source) = source {
        stored.push((source, event_id));
    }
    let item = json!({
        "_index": op.index,
        "_id": id,
        "_version": version,
        "result": result,
        "_shards": {"total": 2, "successful": 1, "failed": 0},
        "_seq_no": seq_no,
        "_primary_term": 1,
        "status": status,
    });
    (status, json!({ name: item }))
}

/// A 20-character URL-safe id, the shape of Elasticsearch's auto-generated ids.
fn generate_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_FAULTS: ItemFaults<'static> = ItemFaults {
        mapping_error_ids: &[],
        long_fields: &[],
    };

    fn bulk(lines: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            out.extend_from_slice(line.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }

    fn create(id: &str) -> [Value; 2] {
        [
            json!({"create": {"_index": "els", "_id": id}}),
            json!({"event_id": id, "depth": 1}),
        ]
    }

    #[test]
    fn parses_pairs_and_default_index() {
        let body = bulk(&[
            json!({"create": {"_id": "a"}}),
            json!({"x": 1}),
            json!({"delete": {"_index": "other", "_id": "b"}}),
            json!({"index": {"_index": "els"}}),
            json!({"x": 2}),
        ]);
        let ops = parse_bulk(&body, Some("logs")).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(
            (ops[0].action, ops[0].index.as_str()),
            (Action::Create, "logs")
        );
        assert_eq!(ops[1].source, None);
        assert_eq!(ops[2].id, None);
        assert!(matches!(ops[2].source, Some(Ok(_))));
    }

    #[test]
    fn body_level_errors() {
        let err = |body: &[u8], index: Option<&str>| parse_bulk(body, index).unwrap_err();
        assert_eq!(err(b"", None).kind, "parse_exception");
        let unterminated = err(b"{\"create\":{\"_index\":\"a\"}}\n{}", None);
        assert_eq!(unterminated.kind, "illegal_argument_exception");
        assert!(unterminated.reason.contains("terminated by a newline"));
        let not_json = err(b"{nope\n{}\n", None);
        assert_eq!(not_json.kind, "x_content_parse_exception");
        assert!(not_json.reason.starts_with("[1:"), "{}", not_json.reason);
        let unknown = err(b"{\"upsert\":{}}\n{}\n", Some("i"));
        assert_eq!(unknown.kind, "illegal_argument_exception");
        assert!(unknown.reason.contains("but found [upsert]"));
        let missing_source = err(b"{\"create\":{\"_index\":\"a\"}}\n", None);
        assert_eq!(missing_source.kind, "action_request_validation_exception");
        let no_index = err(b"{\"create\":{}}\n{}\n", None);
        assert!(no_index.reason.contains("index is missing"));
        let bad_param = err(b"{\"create\":{\"_index\":\"a\",\"nope\":1}}\n{}\n", None);
        assert!(bad_param.reason.contains("unknown parameter [nope]"));
        let body = bad_param.body();
        assert_eq!(body["status"], 400);
        assert_eq!(
            body["error"]["root_cause"][0]["type"],
            "illegal_argument_exception"
        );
    }

    #[test]
    fn create_conflicts_and_index_overwrites() {
        let mut docs = EsDocs::new();
        let body = bulk(&[create("a"), create("a")].concat());
        let out = apply(parse_bulk(&body, None).unwrap(), &mut docs, NO_FAULTS, &[]);
        assert_eq!(out.body["errors"], true);
        assert_eq!(out.body["items"][0]["create"]["status"], 201);
        assert_eq!(out.body["items"][0]["create"]["result"], "created");
        let conflict = &out.body["items"][1]["create"];
        assert_eq!(conflict["status"], 409);
        assert_eq!(
            conflict["error"]["type"],
            "version_conflict_engine_exception"
        );
        assert_eq!(out.stored.len(), 1);
        assert_eq!(out.stored[0].1.as_deref(), Some("a"));
        let body = bulk(&[
            json!({"index": {"_index": "els", "_id": "a"}}),
            json!({"y": 1}),
        ]);
        let out = apply(parse_bulk(&body, None).unwrap(), &mut docs, NO_FAULTS, &[]);
        let item = &out.body["items"][0]["index"];
        assert_eq!(
            (item["status"].clone(), item["result"].clone()),
            (json!(200), json!("updated"))
        );
        assert_eq!(item["_version"], 2);
        assert_eq!(out.body["errors"], false);
        // The `_id` is the event id when the source has none.
        assert_eq!(out.stored[0].1.as_deref(), Some("a"));
        // Another index is another namespace.
        let other = bulk(&[json!({"create": {"_index": "els2", "_id": "a"}}), json!({})]);
        let out = apply(parse_bulk(&other, None).unwrap(), &mut docs, NO_FAULTS, &[]);
        assert_eq!(out.body["items"][0]["create"]["status"], 201);
    }

    #[test]
    fn rejections_and_mapping_errors_are_item_errors() {
        let mut docs = EsDocs::new();
        let ids = vec!["b".to_owned()];
        let long = vec!["depth".to_owned()];
        let faults = ItemFaults {
            mapping_error_ids: &ids,
            long_fields: &long,
        };
        let body = bulk(
            &[
                create("a"),
                create("b"),
                [
                    json!({"create": {"_index": "els", "_id": "c"}}),
                    json!({"event_id": "c", "depth": "deep"}),
                ],
                [
                    json!({"create": {"_index": "els", "_id": "d"}}),
                    json!({"depth": "7"}),
                ],
            ]
            .concat(),
        );
        let out = apply(
            parse_bulk(&body, None).unwrap(),
            &mut docs,
            faults,
            &[true, false, false, false],
        );
        let statuses: Vec<_> = out.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["create"]["status"].as_u64().unwrap())
            .collect();
        assert_eq!(statuses, [429, 400, 400, 201]);
        assert_eq!(
            out.body["items"][0]["create"]["error"]["type"],
            "es_rejected_execution_exception"
        );
        assert_eq!(
            out.body["items"][1]["create"]["error"]["type"],
            "document_parsing_exception"
        );
        assert!(out.body["items"][2]["create"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("[depth] of type [long]"));
        assert_eq!(
            out.item_statuses,
            BTreeMap::from([(201, 1), (400, 2), (429, 1)])
        );
        // The rejected document is not in the index: a re-send creates it.
        let out = apply(
            parse_bulk(&bulk(&create("a")), None).unwrap(),
            &mut docs,
            faults,
            &[],
        );
        assert_eq!(out.body["items"][0]["create"]["status"], 201);
    }

    #[test]
    fn bad_sources_updates_deletes_and_index_names() {
        let mut docs = EsDocs::new();
        let body = b"{\"create\":{\"_index\":\"els\",\"_id\":\"a\"}}\n{oops\n\
            {\"update\":{\"_index\":\"els\",\"_id\":\"a\"}}\n{\"doc\":{}}\n\
            {\"delete\":{\"_index\":\"els\",\"_id\":\"zz\"}}\n\
            {\"create\":{\"_index\":\"Bad\"}}\n{}\n";
        let out = apply(parse_bulk(body, None).unwrap(), &mut docs, NO_FAULTS, &[]);
        let items = out.body["items"].as_array().unwrap();
        assert_eq!(
            items[0]["create"]["error"]["type"],
            "document_parsing_exception"
        );
        assert_eq!(items[1]["update"]["status"], 400);
        assert_eq!(items[2]["delete"]["status"], 404);
        assert_eq!(items[2]["delete"]["result"], "not_found");
        assert!(items[2]["delete"].get("error").is_none());
        assert_eq!(
            items[3]["create"]["error"]["type"],
            "invalid_index_name_exception"
        );
        assert!(out.stored.is_empty());
        let auto = bulk(&[
            json!({"create": {"_index": "els"}}),
            json!({"event_id": "e"}),
        ]);
        let out = apply(parse_bulk(&auto, None).unwrap(), &mut docs, NO_FAULTS, &[]);
        assert_eq!(
            out.body["items"][0]["create"]["_id"]
                .as_str()
                .unwrap()
                .len(),
            20
        );
        assert_eq!(out.stored[0].1.as_deref(), Some("e"));
    }

    #[test]
    fn authentication_schemes() {
        let ok = |t: &str| t == "k";
        assert_eq!(authenticate(None, ok), Err(AuthError::Missing));
        assert_eq!(authenticate(Some("ApiKey k"), ok), Ok(()));
        // base64("id:k")
        assert_eq!(authenticate(Some("ApiKey aWQ6aw=="), ok), Ok(()));
        // base64("elastic:k")
        assert_eq!(authenticate(Some("Basic ZWxhc3RpYzpr"), ok), Ok(()));
        assert_eq!(authenticate(Some("Bearer k"), ok), Ok(()));
        assert_eq!(authenticate(Some("Bearer x"), ok), Err(AuthError::Invalid));
        assert_eq!(authenticate(Some("Splunk k"), ok), Err(AuthError::Invalid));
        let body = AuthError::Missing.body("/_bulk");
        assert_eq!(body["status"], 401);
        assert_eq!(body["error"]["type"], "security_exception");
        assert!(body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("[/_bulk]"));
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(Some("application/x-ndjson")).is_ok());
        assert!(check_content_type(Some("application/json; charset=UTF-8")).is_ok());
        assert!(check_content_type(Some(
            "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
        ))
        .is_ok());
        assert_eq!(
            check_content_type(Some("text/plain")).unwrap_err()["status"],
            406
        );
        assert!(check_content_type(None).is_err());
    }
}
