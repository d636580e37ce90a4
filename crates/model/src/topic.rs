//! An execution event as the consumer reads it from the topic: the JSON text the producer
//! wrote, the byte ranges of its top-level members, and the few fields delivery needs, typed.
//!
//! Delivery forwards events almost unchanged (see [`crate::privacy`]), so the consumer does
//! not build an [`ExecutionEvent`] with a `String` per field only to serialise it again: it
//! checks every known field's type (an event that would not parse as an `ExecutionEvent` is
//! refused here too), keeps the text, and writes the outbound object by copying members.
//! The text and, after it, the member index share one allocation: the index is written as
//! ASCII (see the module `index`), so both are one `str` and reading either needs no check
//! of the bytes. Only escapes (in keys, or in the few string fields kept) take another.
//!
//! One difference from `ExecutionEvent`: an unknown key that appears twice is forwarded twice
//! (`ExecutionEvent` keeps the last). Ingest refuses repeated keys at any depth and the
//! producer serialises events from a map, so events it wrote never repeat a key; known fields
//! repeated are refused by both.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use chrono::DateTime;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::{
    EventType, ExecutionEvent, FlowError, FlowPause, ThirdPartyLimit, ThrottleLimit,
};

/// A JSON string's value: a range of the event text, or (first [`ESCAPED`]) when it had
/// escapes, the index of its unescaped text in [`Extra::texts`].
#[derive(Debug, Clone, Copy)]
struct Text(u32, u32);

/// A member's key while scanning: a range of the text (no escapes) or unescaped.
enum Key {
    Span(u32, u32),
    Owned(String),
}

/// Marks a [`Member`] whose key had escapes (`key.1` indexes [`Extra::keys`]), and a
/// [`Text`] that had escapes.
const ESCAPED: u32 = u32::MAX;

/// One top-level member while parsing: the range of its key (or [`ESCAPED`]) and of its raw
/// value. Stored in the event as [`index`] encodes it.
#[derive(Debug, Clone, Copy)]
struct Member {
    key: (u32, u32),
    value: (u32, u32),
}

/// What had escapes, unescaped (almost never there).
#[derive(Debug, Clone, Default)]
struct Extra {
    keys: Vec<Box<str>>,
    texts: Vec<Box<str>>,
}

/// See the module docs.
#[derive(Clone)]
pub struct TopicEvent {
    /// The JSON text (`json_len` bytes), then the member index.
    data: Box<str>,
    json_len: u32,
    extra: Option<Box<Extra>>,
    pub event_id: Uuid,
    pub event_type: EventType,
    /// Event time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    org_id: Text,
    flow_id: Text,
    org_hostname: Text,
    user_id: Text,
    user_email: Text,
}

impl fmt::Debug for TopicEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicEvent")
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("org_id", &self.org_id())
            .field("flow_id", &self.flow_id())
            .field("bytes", &self.len())
            .finish()
    }
}

/// Why a payload is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnEvent(pub String);

impl fmt::Display for NotAnEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value type of each known field, as [`ExecutionEvent`] declares it.
#[derive(Clone, Copy)]
enum Kind {
    Uuid,
    EventType,
    Timestamp,
    Str,
    OptStr,
    OptU32,
    OptU64,
    OptBool,
    OptFlowError,
    OptThrottleLimit,
    OptFlowPause,
    OptThirdPartyLimit,
}

/// Every field [`ExecutionEvent`] types (a test checks both agree on what is valid).
const FIELDS: [(&str, Kind); 30] = [
    ("event_id", Kind::Uuid),
    ("event_type", Kind::EventType),
    ("execution_id", Kind::Uuid),
    ("timestamp", Kind::Timestamp),
    ("flow_id", Kind::Str),
    ("flow_name", Kind::Str),
    ("org_id", Kind::Str),
    ("org_name", Kind::Str),
    ("org_hostname", Kind::Str),
    ("user_id", Kind::Str),
    ("user_email", Kind::Str),
    ("parent_execution_id", Kind::OptStr),
    ("parent_flow_id", Kind::OptStr),
    ("parent_flow_name", Kind::OptStr),
    ("root_execution_id", Kind::OptStr),
    ("root_flow_id", Kind::OptStr),
    ("root_flow_name", Kind::OptStr),
    ("folder_id", Kind::OptStr),
    ("folder_name", Kind::OptStr),
    ("folder_id_path", Kind::OptStr),
    ("engine_mode", Kind::OptStr),
    ("idempotency_key", Kind::OptStr),
    ("depth", Kind::OptU32),
    ("throttled", Kind::OptBool),
    ("duration", Kind::OptU64),
    ("step_count", Kind::OptU32),
    ("error", Kind::OptFlowError),
    ("throttle_limit", Kind::OptThrottleLimit),
    ("pause", Kind::OptFlowPause),
    ("third_party_limit", Kind::OptThirdPartyLimit),
];

/// Indexes into [`FIELDS`] of the fields kept typed.
const EVENT_ID: usize = 0;
const EVENT_TYPE: usize = 1;
const TIMESTAMP: usize = 3;
const FLOW_ID: usize = 4;
const ORG_ID: usize = 6;
const ORG_HOSTNAME: usize = 8;
const USER_ID: usize = 9;
const USER_EMAIL: usize = 10;

impl TopicEvent {
    /// Check and index a payload from the topic.
    pub fn parse(payload: &[u8]) -> Result<Self, NotAnEvent> {
        let text = std::str::from_utf8(payload).map_err(|e| NotAnEvent(e.to_string()))?;
        scan(text, |members, keys| Self::indexed(text, members, keys))
    }

    /// The event of `text`, its members and the keys of theirs that had escapes.
    fn indexed(text: &str, members: &[Member], keys: Vec<Box<str>>) -> Result<Self, NotAnEvent> {
        // Where each known field's value is, by index into FIELDS.
        let mut found: [Option<(u32, u32)>; FIELDS.len()] = [None; FIELDS.len()];
        for member in members {
            let name = match member.key {
                (ESCAPED, i) => &*keys[i as usize],
                (a, b) => &text[a as usize..b as usize],
            };
            if let Some(i) = field_index(name) {
                if found[i].is_some() {
                    return Err(NotAnEvent(format!("duplicate field `{name}`")));
                }
                found[i] = Some(member.value);
            }
        }
        let raw = |i: usize| found[i].map(|(a, b)| &text[a as usize..b as usize]);
        for (i, (name, kind)) in FIELDS.iter().enumerate() {
            check(name, *kind, raw(i))?;
        }
        // The checks above guarantee these parse.
        let required = |i: usize| raw(i).ok_or_else(|| missing(FIELDS[i].0));
        let event_id = uuid(required(EVENT_ID)?)?;
        let event_type = event_type(required(EVENT_TYPE)?)?;
        let timestamp = json_str(required(TIMESTAMP)?)?;
        let timestamp_ms = DateTime::parse_from_rfc3339(&timestamp)
            .map_err(|e| NotAnEvent(format!("not an RFC 3339 timestamp: {e}")))?
            .timestamp_millis();
        let mut texts = Vec::new();
        let mut text_of = |i: usize| -> Result<Text, NotAnEvent> {
            let (a, b) = found[i].ok_or_else(|| missing(FIELDS[i].0))?;
            Ok(match json_str(&text[a as usize..b as usize])? {
                Cow::Borrowed(_) => Text(a + 1, b - 1),
                Cow::Owned(s) => {
                    texts.push(s.into_boxed_str());
                    Text(ESCAPED, texts.len() as u32 - 1)
                }
            })
        };
        let org_id = text_of(ORG_ID)?;
        let flow_id = text_of(FLOW_ID)?;
        let org_hostname = text_of(ORG_HOSTNAME)?;
        let user_id = text_of(USER_ID)?;
        let user_email = text_of(USER_EMAIL)?;
        let extra =
            (!keys.is_empty() || !texts.is_empty()).then(|| Box::new(Extra { keys, texts }));
        Ok(Self {
            data: index::append(text, members),
            json_len: text.len() as u32,
            extra,
            org_id,
            flow_id,
            org_hostname,
            user_id,
            user_email,
            event_id,
            event_type,
            timestamp_ms,
        })
    }

    /// What had escapes, unescaped (only ever read for an event that had some).
    fn extra(&self) -> &Extra {
        const NONE: &Extra = &Extra {
            keys: Vec::new(),
            texts: Vec::new(),
        };
        self.extra.as_deref().unwrap_or(NONE)
    }

    /// The event as the producer wrote it.
    pub fn from_event(event: &ExecutionEvent) -> Result<Self, NotAnEvent> {
        let bytes = serde_json::to_vec(event).map_err(|e| NotAnEvent(e.to_string()))?;
        Self::parse(&bytes)
    }

    fn text(&self, t: &Text) -> &str {
        match *t {
            Text(ESCAPED, i) => &self.extra().texts[i as usize],
            Text(a, b) => &self.data[a as usize..b as usize],
        }
    }

    pub fn org_id(&self) -> &str {
        self.text(&self.org_id)
    }

    pub fn flow_id(&self) -> &str {
        self.text(&self.flow_id)
    }

    pub fn org_hostname(&self) -> &str {
        self.text(&self.org_hostname)
    }

    pub fn user_id(&self) -> &str {
        self.text(&self.user_id)
    }

    pub fn user_email(&self) -> &str {
        self.text(&self.user_email)
    }

    /// The JSON text as read from the topic.
    pub fn json(&self) -> &str {
        &self.data[..self.json_len as usize]
    }

    /// Size of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.json_len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.json_len == 0
    }

    /// Event time as seconds since the epoch with millisecond precision (HEC's `time`).
    pub fn epoch_seconds(&self) -> f64 {
        self.timestamp_ms as f64 / 1000.0
    }

    /// Top-level members in order: `(key, raw member text, raw value)`. The member text runs
    /// from the key's opening quote to the value's end when the key needs no escaping, so runs
    /// of members can be copied as one slice (see [`crate::privacy::write_outbound`]).
    pub(crate) fn members(&self) -> impl Iterator<Item = MemberRef<'_>> {
        let text = self.json();
        index::Members::new(&self.data.as_bytes()[text.len()..]).map(move |m| {
            let value = &text[m.value.0 as usize..m.value.1 as usize];
            match m.key {
                (ESCAPED, i) => MemberRef {
                    key: &self.extra().keys[i as usize],
                    span: None,
                    value,
                },
                (a, b) => MemberRef {
                    key: &text[a as usize..b as usize],
                    span: Some((a as usize - 1, m.value.1 as usize)),
                    value,
                },
            }
        })
    }
}

/// A member as [`TopicEvent::members`] yields it.
pub(crate) struct MemberRef<'a> {
    pub key: &'a str,
    /// Byte range of `"key":value` in the text, when the key is written without escapes.
    pub span: Option<(usize, usize)>,
    pub value: &'a str,
}

fn missing(name: &str) -> NotAnEvent {
    NotAnEvent(format!("missing field `{name}`"))
}

fn typed<'a, T: serde::Deserialize<'a>>(raw: &'a str) -> Result<T, NotAnEvent> {
    serde_json::from_str(raw).map_err(|e| NotAnEvent(e.to_string()))
}

/// A raw JSON string's value, borrowed when it has no escapes.
fn json_str(raw: &str) -> Result<Cow<'_, str>, NotAnEvent> {
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => typed::<String>(raw).map(Cow::Owned),
    }
}

/// The index in [`FIELDS`] of a known field's name (a `match`, not a search: this runs for
/// every member of every event).
fn field_index(name: &str) -> Option<usize> {
    Some(match name {
        "event_id" => 0,
        "event_type" => 1,
        "execution_id" => 2,
        "timestamp" => 3,
        "flow_id" => 4,
        "flow_name" => 5,
        "org_id" => 6,
        "org_name" => 7,
        "org_hostname" => 8,
        "user_id" => 9,
        "user_email" => 10,
        "parent_execution_id" => 11,
        "parent_flow_id" => 12,
        "parent_flow_name" => 13,
        "root_execution_id" => 14,
        "root_flow_id" => 15,
        "root_flow_name" => 16,
        "folder_id" => 17,
        "folder_name" => 18,
        "folder_id_path" => 19,
        "engine_mode" => 20,
        "idempotency_key" => 21,
        "depth" => 22,
        "throttled" => 23,
        "duration" => 24,
        "step_count" => 25,
        "error" => 26,
        "throttle_limit" => 27,
        "pause" => 28,
        "third_party_limit" => 29,
        _ => return None,
    })
}

/// A UUID in a JSON string (the forms `Uuid`'s own deserializer accepts).
fn uuid(raw: &str) -> Result<Uuid, NotAnEvent> {
    let text = json_str(raw)?;
    Uuid::parse_str(&text).map_err(|e| NotAnEvent(e.to_string()))
}

/// An event type in a JSON string: a known one or a well-formed unknown one (kept by name).
fn event_type(raw: &str) -> Result<EventType, NotAnEvent> {
    let text = json_str(raw)?;
    EventType::parse(&text).map_err(NotAnEvent)
}

/// Check one known field against its declared type.
fn check(name: &str, kind: Kind, raw: Option<&str>) -> Result<(), NotAnEvent> {
    let in_field = |e: NotAnEvent| NotAnEvent(format!("{name}: {e}"));
    let Some(raw) = raw else {
        return match kind {
            Kind::Uuid | Kind::EventType | Kind::Timestamp | Kind::Str => Err(missing(name)),
            _ => Ok(()),
        };
    };
    let optional_null = raw == "null";
    match kind {
        Kind::Uuid => uuid(raw).map(drop),
        Kind::EventType => event_type(raw).map(drop),
        Kind::Timestamp | Kind::Str => json_str(raw).map(drop),
        _ if optional_null => Ok(()),
        Kind::OptStr => json_str(raw).map(drop),
        Kind::OptU32 => typed::<u32>(raw).map(drop),
        Kind::OptU64 => typed::<u64>(raw).map(drop),
        Kind::OptBool => typed::<bool>(raw).map(drop),
        Kind::OptFlowError => typed::<FlowError>(raw).map(drop),
        Kind::OptThrottleLimit => typed::<ThrottleLimit>(raw).map(drop),
        Kind::OptFlowPause => typed::<FlowPause>(raw).map(drop),
        Kind::OptThirdPartyLimit => typed::<ThirdPartyLimit>(raw).map(drop),
    }
    .map_err(in_field)
}

/// `then` of the top-level members of a JSON object, with ranges into `text`, and the keys
/// that had escapes.
fn scan<T>(
    text: &str,
    then: impl FnOnce(&[Member], Vec<Box<str>>) -> Result<T, NotAnEvent>,
) -> Result<T, NotAnEvent> {
    thread_local! {
        /// Reused for every event: the members are only read while the event is indexed.
        static SCRATCH: RefCell<Vec<Member>> = const { RefCell::new(Vec::new()) };
    }
    // (The index shifts offsets left by one.)
    if text.len() > (u32::MAX >> 1) as usize {
        return Err(NotAnEvent("event larger than 2 GiB".into()));
    }
    let base = text.as_ptr() as usize;
    SCRATCH.with_borrow_mut(|members| {
        members.clear();
        let mut de = serde_json::Deserializer::from_str(text);
        let escaped_keys = de
            .deserialize_map(ObjectVisitor { base, members })
            .map_err(|e| NotAnEvent(e.to_string()))?;
        de.end().map_err(|e| NotAnEvent(e.to_string()))?;
        then(members, escaped_keys)
    })
}

/// The member index kept after an event's text. Each member is a few numbers, each written
/// as base-64 digits in ASCII (low digit first; a byte holds 6 bits, and 0x40 when more
/// follow), so the index is valid UTF-8 and shares the text's one allocation:
///
/// - a key without escapes: `(key start - prev) << 1`, `key end - key start`,
///   `value start - key end`, `value end - value start`;
/// - a key with escapes: `index in Extra::keys << 1 | 1`, `value start - prev`,
///   `value end - value start`;
///
/// where `prev` is the end of the previous member's value (0 for the first). Compact JSON
/// takes about 5 bytes a member (16 as `Member`).
mod index {
    use std::cell::RefCell;

    use super::{Member, ESCAPED};

    /// The numbers of `m`, `prev` being the end of the previous member's value.
    fn numbers(m: &Member, prev: u32) -> impl Iterator<Item = u32> {
        let (vs, ve) = m.value;
        let n = match m.key {
            (ESCAPED, i) => [(i << 1) | 1, vs - prev, ve - vs, 0],
            (ks, ke) => [(ks - prev) << 1, ke - ks, vs - ke, ve - vs],
        };
        let len = if m.key.0 == ESCAPED { 3 } else { 4 };
        n.into_iter().take(len)
    }

    /// `text` followed by the index of `members`, in one allocation of the exact size (the
    /// index is written to a reused buffer first, then both are copied in).
    pub(super) fn append(text: &str, members: &[Member]) -> Box<str> {
        thread_local! {
            static INDEX: RefCell<String> = const { RefCell::new(String::new()) };
        }
        INDEX.with_borrow_mut(|index| {
            index.clear();
            let mut prev = 0;
            for m in members {
                for mut n in numbers(m, prev) {
                    while n >= 0x40 {
                        index.push(char::from((n & 0x3f) as u8 | 0x40));
                        n >>= 6;
                    }
                    index.push(char::from(n as u8));
                }
                prev = m.value.1;
            }
            let mut out = String::with_capacity(text.len() + index.len());
            out.push_str(text);
            out.push_str(index);
            out.into_boxed_str()
        })
    }

    /// The members an index holds, in order.
    pub(super) struct Members<'a> {
        bytes: &'a [u8],
        prev: u32,
    }

    impl<'a> Members<'a> {
        pub(super) fn new(bytes: &'a [u8]) -> Self {
            Self { bytes, prev: 0 }
        }

        fn number(&mut self) -> u32 {
            let mut n = 0;
            let mut shift = 0;
            loop {
                let (&b, rest) = self.bytes.split_first().expect("a complete index");
                self.bytes = rest;
                n |= u32::from(b & 0x3f) << shift;
                if b & 0x40 == 0 {
                    return n;
                }
                shift += 6;
            }
        }
    }

    impl Iterator for Members<'_> {
        type Item = Member;

        fn next(&mut self) -> Option<Member> {
            if self.bytes.is_empty() {
                return None;
            }
            let first = self.number();
            let key = if first & 1 == 1 {
                let vs = self.prev + self.number();
                (ESCAPED, first >> 1, vs)
            } else {
                let ks = self.prev + (first >> 1);
                let ke = ks + self.number();
                (ks, ke, ke + self.number())
            };
            let (ks, ke, vs) = key;
            let ve = vs + self.number();
            self.prev = ve;
            Some(Member {
                key: (ks, ke),
                value: (vs, ve),
            })
        }
    }
}

/// Offset of `part` (a slice of the text) from the text's start.
fn offset(base: usize, part: &str) -> u32 {
    (part.as_ptr() as usize - base) as u32
}

/// Collects members into `members`; returns the keys that had escapes.
struct ObjectVisitor<'m> {
    base: usize,
    members: &'m mut Vec<Member>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Vec<Box<str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct ExecutionEvent")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut escaped_keys = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed { base: self.base })? {
            let value: &'de RawValue = map.next_value()?;
            let v = offset(self.base, value.get());
            let key = match key {
                Key::Span(a, b) => (a, b),
                Key::Owned(k) => {
                    escaped_keys.push(k.into_boxed_str());
                    (ESCAPED, escaped_keys.len() as u32 - 1)
                }
            };
            self.members.push(Member {
                key,
                value: (v, v + value.get().len() as u32),
            });
        }
        Ok(escaped_keys)
    }
}

struct KeySeed {
    base: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key, E> {
        let a = offset(self.base, key);
        Ok(Key::Span(a, a + key.len() as u32))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(Key::Owned(key.into()))
    }
}

#[cfg(test)]
mod tests;
