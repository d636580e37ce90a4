//! The in-memory view of all orgs' stream settings, shared by every worker.
//!
//! Settings are read once per batch, so a change applies to the next batch without a restart.
//! Loaded from a JSON file for the local run; the settings topic ([`super::topic`])
//! feeds the same store, and the admin API writes through it ([`SettingsStore::save`]).
//!
//! Records from the topic carry their (partition, offset): an org's settings are only replaced
//! by a newer record, so the writing instance, which applies its own write at once, never
//! goes back to an older version when its reader catches up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use els_model::settings::{EndpointKind, HttpFormat, OrgSettings, DEFAULT_STREAM};
use els_model::template::BodyTemplate;
use els_model::ModelError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde::Deserialize;

use super::topic::Writer;
use crate::error::ConsumerError;
use crate::streams::StreamKey;

/// One org's validated settings with the template, URL and request headers prepared once
/// (not per request).
#[derive(Debug)]
pub struct OrgRuntime {
    pub settings: OrgSettings,
    pub template: Option<BodyTemplate>,
    pub url: reqwest::Url,
    /// Content type, custom headers, then auth headers (marked sensitive: never printed).
    pub headers: HeaderMap,
}

impl OrgRuntime {
    pub fn new(settings: OrgSettings) -> Result<Self, ModelError> {
        settings.validate()?;
        let template = settings
            .body_template
            .as_deref()
            .map(|t| BodyTemplate::parse(t, "body_template"))
            .transpose()?;
        let url = reqwest::Url::parse(&settings.url)
            .map_err(|e| ModelError::field("url", format!("not a valid URL: {e}")))?;
        let mut headers = HeaderMap::new();
        let ndjson = match settings.endpoint {
            EndpointKind::Elasticsearch => true,
            EndpointKind::Http => settings.http.format == HttpFormat::Ndjson,
            EndpointKind::Hec | EndpointKind::Datadog => false,
        };
        let content_type = if ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (i, h) in settings.custom_headers.iter().enumerate() {
            let field = |part: &str| format!("custom_headers[{i}].{part}");
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| ModelError::field(field("name"), "not a valid header name"))?;
            let value = HeaderValue::from_str(&h.value)
                .map_err(|_| ModelError::field(field("value"), "not a valid header value"))?;
            headers.append(name, value);
        }
        for (i, h) in settings.auth_headers.iter().enumerate() {
            let field = |part: &str| format!("auth_headers[{i}].{part}");
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| ModelError::field(field("name"), "not a valid header name"))?;
            // The error never quotes the value: it is a secret.
            let mut value = HeaderValue::from_str(h.value.expose())
                .map_err(|_| ModelError::field(field("value"), "not a valid header value"))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        Ok(Self {
            settings,
            template,
            url,
            headers,
        })
    }
}

/// The settings file: per-org entries and an optional default for orgs without their own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    #[serde(default)]
    pub orgs: HashMap<String, OrgSettings>,
    #[serde(default)]
    pub default: Option<OrgSettings>,
}

/// Where a settings record sits in the settings topic: (partition, offset).
pub type Version = (i32, i64);

/// One org's streams as the engine sees them: every stream's key and runtime, sorted by
/// stream id. A snapshot: a change builds a new one, so readers never lock while routing.
#[derive(Debug, Default)]
pub struct OrgStreams {
    pub streams: Vec<(StreamKey, Arc<OrgRuntime>)>,
}

impl OrgStreams {
    pub fn get(&self, stream: &str) -> Option<&Arc<OrgRuntime>> {
        self.streams
            .iter()
            .find(|(k, _)| k.stream() == stream)
            .map(|(_, rt)| rt)
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Orgs with settings of their own: stream id -> runtime.
    orgs: HashMap<String, BTreeMap<String, Arc<OrgRuntime>>>,
    /// The engine's view of each org with settings of its own, rebuilt on every change.
    snapshots: HashMap<String, Arc<OrgStreams>>,
    /// The settings file's default (the stream `default` of orgs without settings).
    default: Option<Arc<OrgRuntime>>,
    /// Snapshots of orgs that stream under the file's default, made on first use.
    defaulted: HashMap<String, Arc<OrgStreams>>,
    /// The topic record (key: [`StreamKey::as_str`]) each stream's current settings (or
    /// deletion) came from.
    versions: HashMap<String, Version>,
}

impl Inner {
    fn rebuild(&mut self, org: &str) {
        match self.orgs.get(org) {
            Some(streams) if !streams.is_empty() => {
                let snapshot = OrgStreams {
                    streams: streams
                        .iter()
                        .map(|(id, rt)| (StreamKey::new(org, id), rt.clone()))
                        .collect(),
                };
                self.snapshots.insert(org.to_string(), Arc::new(snapshot));
            }
            _ => {
                self.orgs.remove(org);
                self.snapshots.remove(org);
            }
        }
    }
}

/// Shared, cheaply cloned handle to the settings of all orgs.
#[derive(Debug, Clone, Default)]
pub struct SettingsStore {
    inner: Arc<RwLock<Inner>>,
    /// The durable side (the settings topic), once attached; without it settings are
    /// read-only (file only).
    writer: Arc<OnceLock<Arc<Writer>>>,
}

impl SettingsFile {
    /// Read and parse a settings file (not yet validated); an empty path is an empty file.
    pub fn read(path: &str) -> Result<Self, ConsumerError> {
        if path.is_empty() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConsumerError::Settings(format!("reading {path}: {e}")))?;
        serde_json::from_str(&text).map_err(|e| ConsumerError::Settings(format!("{path}: {e}")))
    }
}

impl SettingsStore {
    /// Load a settings file; every entry is validated and errors name org and field.
    pub fn from_file(path: &str) -> Result<Self, ConsumerError> {
        Self::from_parsed(&SettingsFile::read(path)?)
    }

    /// A store holding a parsed settings file's orgs and default, validated.
    pub fn from_parsed(file: &SettingsFile) -> Result<Self, ConsumerError> {
        let store = Self::default();
        for (org, settings) in &file.orgs {
            store.put(org, settings.clone())?;
        }
        if let Some(default) = &file.default {
            let runtime = OrgRuntime::new(default.clone())
                .map_err(|e| ConsumerError::Settings(format!("default: {e}")))?;
            store.write().default = Some(Arc::new(runtime));
        }
        Ok(store)
    }

    /// Make settings writable through the settings topic.
    pub fn attach_writer(&self, writer: Arc<Writer>) {
        let _ = self.writer.set(writer);
    }

    pub fn writer(&self) -> Option<&Arc<Writer>> {
        self.writer.get()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Validate and store one org's default stream.
    pub fn put(&self, org: &str, settings: OrgSettings) -> Result<(), ConsumerError> {
        self.put_stream(org, DEFAULT_STREAM, settings)
    }

    /// Validate and store one stream of an org.
    pub fn put_stream(
        &self,
        org: &str,
        stream: &str,
        settings: OrgSettings,
    ) -> Result<(), ConsumerError> {
        let runtime = OrgRuntime::new(settings)
            .map_err(|e| ConsumerError::Settings(format!("org {org}: {e}")))?;
        let mut inner = self.write();
        inner
            .orgs
            .entry(org.to_string())
            .or_default()
            .insert(stream.to_string(), Arc::new(runtime));
        inner.rebuild(org);
        Ok(())
    }

    /// Forget all of the org's own settings (the default, if any, applies again); whether it
    /// had any.
    pub fn remove(&self, org: &str) -> bool {
        let mut inner = self.write();
        let had = inner.orgs.remove(org).is_some();
        inner.rebuild(org);
        had
    }

    /// Apply a record of the settings topic for `key` (an org's stream): `Some` settings or
    /// `None` (a tombstone), unless the stream's current settings came from the same or a
    /// later record. Returns whether it was applied; invalid settings are an error and
    /// change nothing.
    pub fn apply(
        &self,
        key: &StreamKey,
        version: Version,
        settings: Option<OrgSettings>,
    ) -> Result<bool, ConsumerError> {
        let org = key.org();
        let runtime = settings
            .map(|s| OrgRuntime::new(s).map(Arc::new))
            .transpose()
            .map_err(|e| ConsumerError::Settings(format!("stream {key}: {e}")))?;
        let mut inner = self.write();
        if let Some(&(partition, offset)) = inner.versions.get(key.as_str()) {
            if partition == version.0 && offset >= version.1 {
                return Ok(false);
            }
        }
        inner.versions.insert(key.as_str().to_string(), version);
        match runtime {
            Some(rt) => {
                inner
                    .orgs
                    .entry(org.to_string())
                    .or_default()
                    .insert(key.stream().to_string(), rt);
            }
            None => {
                if let Some(streams) = inner.orgs.get_mut(org) {
                    streams.remove(key.stream());
                }
            }
        }
        inner.rebuild(org);
        Ok(true)
    }

    /// Validate, write to the settings topic (waiting for Kafka's ack) and apply at once.
    pub async fn save(&self, key: &StreamKey, settings: OrgSettings) -> Result<(), ConsumerError> {
        let writer = self.writer().ok_or(ConsumerError::ReadOnlySettings)?;
        OrgRuntime::new(settings.clone())
            .map_err(|e| ConsumerError::Settings(format!("stream {key}: {e}")))?;
        let version = writer.write(key, Some(&settings)).await?;
        self.apply(key, version, Some(settings))?;
        Ok(())
    }

    /// Write a tombstone for the stream and forget its settings at once.
    pub async fn delete(&self, key: &StreamKey) -> Result<(), ConsumerError> {
        let writer = self.writer().ok_or(ConsumerError::ReadOnlySettings)?;
        let version = writer.write(key, None).await?;
        self.apply(key, version, None)?;
        Ok(())
    }

    /// The org's own default stream, ignoring the file's default.
    pub fn get_own(&self, org: &str) -> Option<Arc<OrgRuntime>> {
        self.stream_own(org, DEFAULT_STREAM)
    }

    /// One stream of the org's own settings.
    pub fn stream_own(&self, org: &str, stream: &str) -> Option<Arc<OrgRuntime>> {
        self.read().orgs.get(org)?.get(stream).cloned()
    }

    /// The org's own streams (id -> settings), sorted by id.
    pub fn own_streams(&self, org: &str) -> Vec<(String, Arc<OrgRuntime>)> {
        self.read()
            .orgs
            .get(org)
            .map(|s| s.iter().map(|(id, rt)| (id.clone(), rt.clone())).collect())
            .unwrap_or_default()
    }

    /// The org's default stream, or the file's default; `None`: it has no such stream.
    pub fn get(&self, org: &str) -> Option<Arc<OrgRuntime>> {
        self.stream(&StreamKey::new(org, DEFAULT_STREAM))
    }

    /// The settings of a stream: its own, or for the stream `default` of an org without
    /// settings the file's default.
    pub fn stream(&self, key: &StreamKey) -> Option<Arc<OrgRuntime>> {
        let inner = self.read();
        match inner.orgs.get(key.org()) {
            Some(streams) => streams.get(key.stream()).cloned(),
            None if key.stream() == DEFAULT_STREAM => inner.default.clone(),
            None => None,
        }
    }

    /// Every stream of the org (the file's default stands in for orgs without settings);
    /// `None`: the org does not stream.
    pub fn streams(&self, org: &str) -> Option<Arc<OrgStreams>> {
        {
            let inner = self.read();
            if let Some(s) = inner.snapshots.get(org) {
                return Some(s.clone());
            }
            inner.default.as_ref()?;
            if let Some(s) = inner.defaulted.get(org) {
                return Some(s.clone());
            }
        }
        let mut inner = self.write();
        let default = inner.default.clone()?;
        let snapshot = Arc::new(OrgStreams {
            streams: vec![(StreamKey::new(org, DEFAULT_STREAM), default)],
        });
        inner.defaulted.insert(org.to_string(), snapshot.clone());
        Some(snapshot)
    }

    pub fn org_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.read().orgs.keys().cloned().collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_apply_in_offset_order_only() {
        let store = SettingsStore::default();
        let a = OrgSettings::hec("https://a.example/x", "t");
        let b = OrgSettings::hec("https://b.example/x", "t");
        let o = StreamKey::new("o", DEFAULT_STREAM);
        assert!(store.apply(&o, (0, 5), Some(b.clone())).unwrap());
        // The reader catching up with an older record of the same partition changes nothing.
        assert!(!store.apply(&o, (0, 4), Some(a.clone())).unwrap());
        assert!(!store.apply(&o, (0, 5), Some(a.clone())).unwrap());
        assert_eq!(store.get_own("o").unwrap().settings.url, b.url);
        // Another stream of the same org has its own versions.
        let lake = StreamKey::new("o", "lake");
        assert!(store.apply(&lake, (0, 3), Some(a.clone())).unwrap());
        let streams = store.streams("o").unwrap();
        let ids: Vec<&str> = streams.streams.iter().map(|(k, _)| k.stream()).collect();
        assert_eq!(ids, ["default", "lake"]);
        assert!(store.apply(&o, (0, 6), None).unwrap());
        assert!(store.get_own("o").is_none());
        assert_eq!(store.streams("o").unwrap().streams.len(), 1);
        assert!(store.apply(&lake, (0, 7), None).unwrap());
        assert!(store.streams("o").is_none());
        assert!(!store.apply(&o, (0, 2), Some(a.clone())).unwrap());
        let mut bad = a.clone();
        bad.url = "ftp://x".into();
        assert!(store.apply(&o, (0, 9), Some(bad)).is_err());
        assert!(
            store.get_own("o").is_none(),
            "invalid records change nothing"
        );
        assert_eq!(store.org_ids(), Vec::<String>::new());
    }

    /// Whatever validation accepts in a header value, the request headers take: a value
    /// refused only when the headers are built would answer 400 without naming the field.
    #[test]
    fn validation_refuses_every_header_value_the_request_would_refuse() {
        for c in (0u32..0x100)
            .chain([0x2028, 0xfeff])
            .filter_map(char::from_u32)
        {
            let value = format!("a{c}b");
            for auth in [false, true] {
                let mut s = OrgSettings::hec("https://siem.example/x", "t");
                let field = if auth {
                    s.auth_headers[0].value = els_model::settings::Secret::new(value.clone());
                    "auth_headers[0].value"
                } else {
                    s.custom_headers.push(els_model::settings::Header {
                        name: "X-A".into(),
                        value: value.clone(),
                    });
                    "custom_headers[0].value"
                };
                match s.validate() {
                    Ok(()) => {
                        OrgRuntime::new(s).unwrap_or_else(|e| panic!("{c:?}: {e}"));
                    }
                    Err(e) => assert_eq!(e.field_name(), Some(field), "{c:?}"),
                }
            }
        }
    }
}
