//! Layered configuration without I/O: the binaries read the TOML file and the environment,
//! this module merges `ELS_*` variables over the file's values and names the bad variable.
//!
//! Order: defaults, then the TOML file, then environment variables (`ELS_BROKERS`,
//! `ELS_LISTEN`, ...: the prefix plus the field name in upper case). Nested tables use a
//! double underscore: `ELS_ADMIN__TOKEN` sets `admin.token`.

use serde_json::{Map, Value};

use crate::error::ModelError;

/// Overlay `vars` (name, value) whose names start with `prefix` onto `base` (a JSON object
/// made from the config struct). Values are converted to the type the field already has:
/// numbers and booleans are parsed, arrays are comma-separated, optional (null) fields take
/// the string. Unknown names are errors, so typos do not pass silently.
pub fn overlay_env(
    base: Value,
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Value, ModelError> {
    let Value::Object(mut root) = base else {
        return Err(ModelError::field("", "configuration must be a table"));
    };
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        // `<prefix>CONFIG` names the file itself.
        if rest == "CONFIG" {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        set_path(&mut root, &path, &raw).map_err(|msg| ModelError::field(name.clone(), msg))?;
    }
    Ok(Value::Object(root))
}

fn set_path(table: &mut Map<String, Value>, path: &[String], raw: &str) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty variable name")?;
    let slot = table
        .get_mut(first)
        .ok_or_else(|| format!("no configuration field `{first}`"))?;
    if rest.is_empty() {
        *slot = convert(slot, raw)?;
        return Ok(());
    }
    match slot {
        Value::Object(inner) => set_path(inner, rest, raw),
        _ => Err(format!("`{first}` is not a table")),
    }
}

fn convert(current: &Value, raw: &str) -> Result<Value, String> {
    Ok(match current {
        Value::Bool(_) => Value::Bool(match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(format!("`{raw}` is not a boolean")),
        }),
        Value::Number(_) => {
            let n: serde_json::Number = raw
                .trim()
                .parse()
                .map_err(|_| format!("`{raw}` is not a number"))?;
            Value::Number(n)
        }
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        Value::Object(_) => return Err("is a table; set its fields with `__`".into()),
        Value::String(_) | Value::Null => Value::String(raw.to_string()),
    })
}

/// Build a config: `T::default()`, then the TOML text (if any), then `ELS_*`-style variables.
/// Errors name the file field or the variable.
pub fn layered<T>(
    file_text: Option<&str>,
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ModelError>
where
    T: Default + serde::Serialize + serde::de::DeserializeOwned,
{
    let from_file: T = match file_text {
        Some(text) => toml::from_str(text).map_err(|e| {
            ModelError::field(
                "config file",
                e.to_string().lines().collect::<Vec<_>>().join(" "),
            )
        })?,
        None => T::default(),
    };
    let base = serde_json::to_value(from_file).map_err(|e| ModelError::field("", e.to_string()))?;
    let merged = overlay_env(base, prefix, vars)?;
    serde_path_to_error::deserialize(merged).map_err(|e| {
        ModelError::field(
            format!("{prefix}{}", e.path().to_string().to_ascii_uppercase()),
            e.inner().to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlays_typed_values() {
        let base = json!({"brokers": "a:1", "workers": 4, "gzip": false, "tags": [], "opt": null,
                          "admin": {"token": null}});
        let vars = [
            ("ELS_BROKERS", "b:2"),
            ("ELS_WORKERS", "8"),
            ("ELS_GZIP", "true"),
            ("ELS_TAGS", "x, y"),
            ("ELS_OPT", "z"),
            ("ELS_ADMIN__TOKEN", "t"),
            ("OTHER", "ignored"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let out = overlay_env(base, "ELS_", vars).unwrap();
        assert_eq!(
            out,
            json!({"brokers": "b:2", "workers": 8, "gzip": true, "tags": ["x", "y"], "opt": "z",
                   "admin": {"token": "t"}})
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let base = json!({"workers": 4});
        let err = overlay_env(
            base.clone(),
            "ELS_",
            [("ELS_WORKERS".into(), "many".into())],
        )
        .unwrap_err();
        assert_eq!(err.field_name(), Some("ELS_WORKERS"));
        let err = overlay_env(base, "ELS_", [("ELS_WORKRS".into(), "1".into())]).unwrap_err();
        assert!(err.to_string().contains("no configuration field"), "{err}");
    }
}
