//! The in-memory view of all orgs' stream settings, shared by every worker.
//!
//! Settings are read once per batch, so a change applies to the next batch without a restart.
//! Loaded from a JSON file for the local run; the settings topic feeds the same store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use els_model::settings::OrgSettings;
use els_model::template::BodyTemplate;
use serde::Deserialize;

use crate::error::ConsumerError;

/// One org's validated settings with the template parsed once.
#[derive(Debug)]
pub struct OrgRuntime {
    pub settings: OrgSettings,
    pub template: Option<BodyTemplate>,
}

impl OrgRuntime {
    pub fn new(settings: OrgSettings) -> Result<Self, els_model::ModelError> {
        settings.validate()?;
        let template = settings
            .body_template
            .as_deref()
            .map(|t| BodyTemplate::parse(t, "body_template"))
            .transpose()?;
        Ok(Self { settings, template })
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

#[derive(Debug, Default)]
struct Inner {
    orgs: HashMap<String, Arc<OrgRuntime>>,
    default: Option<Arc<OrgRuntime>>,
}

/// Shared, cheaply cloned handle to the settings of all orgs.
#[derive(Debug, Clone, Default)]
pub struct SettingsStore {
    inner: Arc<RwLock<Inner>>,
}

impl SettingsStore {
    /// Load a settings file; every entry is validated and errors name org and field.
    pub fn from_file(path: &str) -> Result<Self, ConsumerError> {
        let store = Self::default();
        if path.is_empty() {
            return Ok(store);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConsumerError::Settings(format!("reading {path}: {e}")))?;
        let file: SettingsFile = serde_json::from_str(&text)
            .map_err(|e| ConsumerError::Settings(format!("{path}: {e}")))?;
        for (org, settings) in file.orgs {
            store.put(&org, settings)?;
        }
        if let Some(default) = file.default {
            let runtime = OrgRuntime::new(default)
                .map_err(|e| ConsumerError::Settings(format!("default: {e}")))?;
            store.write().default = Some(Arc::new(runtime));
        }
        Ok(store)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Validate and store one org's settings.
    pub fn put(&self, org: &str, settings: OrgSettings) -> Result<(), ConsumerError> {
        let runtime = OrgRuntime::new(settings)
            .map_err(|e| ConsumerError::Settings(format!("org {org}: {e}")))?;
        self.write().orgs.insert(org.to_string(), Arc::new(runtime));
        Ok(())
    }

    pub fn remove(&self, org: &str) {
        self.write().orgs.remove(org);
    }

    /// The org's settings, or the default; `None` means the org does not stream.
    pub fn get(&self, org: &str) -> Option<Arc<OrgRuntime>> {
        let inner = self.read();
        inner.orgs.get(org).or(inner.default.as_ref()).cloned()
    }

    pub fn org_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.read().orgs.keys().cloned().collect();
        ids.sort();
        ids
    }
}
