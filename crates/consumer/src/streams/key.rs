//! [`StreamKey`]: which stream of which org. It is the delivery engine's unit: each key has
//! its own queue and worker, park order, state, limit and acks, so one failing stream never
//! holds another, not even one of the same org.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use els_model::settings::DEFAULT_STREAM;

/// Separates org and stream in the encoded form. Org ids never contain control characters
/// (validated at ingest and in the API), so the encoding is unambiguous.
const SEPARATOR: char = '\u{1f}';

/// An org's stream, encoded once as `org` for the stream `default` and `org \x1f stream`
/// otherwise. The default stream's key is the bare org id, which is what park records,
/// stream states and lifecycle notices of the versions before streams were keyed by: they
/// are the default stream's without a migration. Cloning is a reference count.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(Arc<str>);

impl StreamKey {
    pub fn new(org: &str, stream: &str) -> Self {
        if stream == DEFAULT_STREAM {
            Self(Arc::from(org))
        } else {
            Self(Arc::from(format!("{org}{SEPARATOR}{stream}")))
        }
    }

    /// A key from its encoded form ([`Self::as_str`]).
    pub fn from_encoded(encoded: &str) -> Self {
        Self(Arc::from(encoded))
    }

    pub fn org(&self) -> &str {
        split(&self.0).0
    }

    pub fn stream(&self) -> &str {
        split(&self.0).1
    }

    /// The encoded form: the key of maps, park records and state records.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// (org, stream) of an encoded key.
pub fn split(encoded: &str) -> (&str, &str) {
    match encoded.split_once(SEPARATOR) {
        Some((org, stream)) => (org, stream),
        None => (encoded, DEFAULT_STREAM),
    }
}

impl Borrow<str> for StreamKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// `org` for the default stream, `org/stream` otherwise (for people; logs name both).
impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match split(&self.0) {
            (org, DEFAULT_STREAM) => f.write_str(org),
            (org, stream) => write!(f, "{org}/{stream}"),
        }
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_stream_is_the_bare_org() {
        let d = StreamKey::new("org-1", DEFAULT_STREAM);
        assert_eq!(d.as_str(), "org-1");
        assert_eq!((d.org(), d.stream()), ("org-1", "default"));
        let lake = StreamKey::new("org/1", "lake");
        assert_eq!((lake.org(), lake.stream()), ("org/1", "lake"));
        assert_eq!(StreamKey::from_encoded(lake.as_str()), lake);
        assert_eq!(lake.to_string(), "org/1/lake");
        assert_ne!(lake, StreamKey::new("org/1", DEFAULT_STREAM));
        let map: std::collections::HashMap<StreamKey, u8> = [(lake.clone(), 1)].into();
        assert_eq!(map.get(lake.as_str()), Some(&1));
    }
}
