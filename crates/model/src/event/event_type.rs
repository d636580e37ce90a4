//! The event type: a known one, or a well-formed name this version does not know, kept as
//! sent. The engine adds types over time; refusing them would lose their events.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// Longest accepted `event_type` name, in bytes (names are ASCII).
pub const MAX_EVENT_TYPE_BYTES: usize = 64;

/// An execution event type: one this version knows, or a well-formed name it does not
/// ([`EventType::Unknown`]). The engine adds types; an unknown one is accepted, kept by name,
/// passed on unchanged and streamed to streams that take `"all"` or list it by name, never
/// refused. A name is well-formed when it is upper snake case (`FLOW_RESUMED`: upper-case
/// letters and digits in words joined by single underscores, starting with a letter) of at
/// most [`MAX_EVENT_TYPE_BYTES`] bytes.
///
/// `Copy` (the unknown name is stored inline), so delivery passes it around as before. The
/// derived order puts known types first, in declaration order, then unknown ones by name: a
/// settings record's list serialises in the order it did before unknown types existed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    FlowStart,
    FlowComplete,
    FlowFailed,
    FlowCanceled,
    FlowThrottled,
    FlowPaused,
    FlowThirdPartyRateLimited,
    /// A well-formed type this version does not know, kept exactly as sent.
    Unknown(TypeName),
}

impl EventType {
    /// Every type this version knows.
    pub const KNOWN: [EventType; 7] = [
        EventType::FlowStart,
        EventType::FlowComplete,
        EventType::FlowFailed,
        EventType::FlowCanceled,
        EventType::FlowThrottled,
        EventType::FlowPaused,
        EventType::FlowThirdPartyRateLimited,
    ];

    /// The wire name, e.g. `FLOW_FAILED`, or an unknown type's name as sent.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::FlowStart => "FLOW_START",
            EventType::FlowComplete => "FLOW_COMPLETE",
            EventType::FlowFailed => "FLOW_FAILED",
            EventType::FlowCanceled => "FLOW_CANCELED",
            EventType::FlowThrottled => "FLOW_THROTTLED",
            EventType::FlowPaused => "FLOW_PAUSED",
            EventType::FlowThirdPartyRateLimited => "FLOW_THIRD_PARTY_RATE_LIMITED",
            EventType::Unknown(name) => name.as_str(),
        }
    }

    /// Whether this version knows the type (and types its metadata).
    pub fn is_known(&self) -> bool {
        !matches!(self, EventType::Unknown(_))
    }

    /// A known type by its wire name, or a well-formed unknown one; otherwise why not (the
    /// message quotes the name only when it is short).
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(known) = Self::KNOWN.into_iter().find(|t| t.as_str() == name) {
            return Ok(known);
        }
        let shown = if name.chars().count() <= MAX_EVENT_TYPE_BYTES {
            format!("`{name}`")
        } else {
            format!("a {}-byte name", name.len())
        };
        if name.is_empty() {
            return Err("must not be empty: an event type such as FLOW_START".into());
        }
        if name.len() > MAX_EVENT_TYPE_BYTES {
            return Err(format!(
                "{shown} is longer than {MAX_EVENT_TYPE_BYTES} bytes"
            ));
        }
        let well_formed = name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.split('_').all(|word| {
                !word.is_empty()
                    && word
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            });
        if !well_formed {
            return Err(format!(
                "{shown} is not an event type: upper-case letters and digits in words joined \
                 by single underscores, starting with a letter (e.g. FLOW_PAUSED)"
            ));
        }
        Ok(EventType::Unknown(TypeName::new(name)))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = EventType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event type such as \"FLOW_FAILED\"")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<EventType, E> {
                EventType::parse(name).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// An unknown event type's name, stored inline so [`EventType`] stays `Copy`. Only
/// [`EventType::parse`] makes one, from a well-formed (ASCII) name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeName {
    /// The name's bytes, zero-padded (so equal names compare equal and order by text).
    bytes: [u8; MAX_EVENT_TYPE_BYTES],
    len: u8,
}

impl TypeName {
    fn new(name: &str) -> Self {
        let mut bytes = [0; MAX_EVENT_TYPE_BYTES];
        let len = name.len().min(MAX_EVENT_TYPE_BYTES);
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_known_unknown_and_malformed() {
        for t in EventType::KNOWN {
            assert_eq!(EventType::parse(t.as_str()), Ok(t));
            assert!(t.is_known());
        }
        assert_eq!(EventType::FlowPaused.as_str(), "FLOW_PAUSED");
        assert_eq!(
            EventType::FlowThirdPartyRateLimited.as_str(),
            "FLOW_THIRD_PARTY_RATE_LIMITED"
        );
        let longest = format!("F{}", "_X".repeat((MAX_EVENT_TYPE_BYTES - 1) / 2));
        assert_eq!(
            longest.len(),
            MAX_EVENT_TYPE_BYTES - 1 + (MAX_EVENT_TYPE_BYTES % 2)
        );
        for name in [
            "FLOW_RESUMED",
            "FLOW2",
            "F",
            "FLOW_V2_STEP_RETRIED",
            longest.as_str(),
        ] {
            let t = EventType::parse(name).unwrap();
            assert!(!t.is_known(), "{name}");
            assert_eq!(t.as_str(), name);
            assert_eq!(t.to_string(), name);
            assert_eq!(serde_json::to_value(t).unwrap(), name);
            assert_eq!(serde_json::from_value::<EventType>(name.into()).unwrap(), t);
        }
        assert_ne!(
            EventType::parse("FLOW_A").unwrap(),
            EventType::parse("FLOW_B").unwrap()
        );
        // Known types sort first (settings lists serialise as before), unknown ones by name.
        assert!(EventType::FlowThirdPartyRateLimited < EventType::parse("A").unwrap());
        assert!(EventType::parse("FLOW_A").unwrap() < EventType::parse("FLOW_AB").unwrap());
        let too_long = "F".repeat(MAX_EVENT_TYPE_BYTES + 1);
        for bad in [
            "",
            "flow_paused",
            "Flow_Paused",
            "FLOW PAUSED",
            "FLOW-PAUSED",
            "FLOW__PAUSED",
            "_FLOW",
            "FLOW_",
            "1FLOW",
            "FLOW\n",
            "FLÖW",
            too_long.as_str(),
        ] {
            let err = EventType::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad:?}");
            assert!(
                serde_json::from_value::<EventType>(bad.into()).is_err(),
                "{bad:?}"
            );
        }
        // A long bad name is not echoed back.
        let err = EventType::parse(&"x".repeat(10_000)).unwrap_err();
        assert!(err.len() < 200, "{err}");
    }
}
