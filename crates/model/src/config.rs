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
/// the string. Bad values are errors naming the variable. Names that match no field are
/// returned (not applied) so the caller can warn about them: one shell may hold the variables
/// of several ELS tools (`ELS_ADMIN_URL` is elsctl's, `ELS_ADMIN_TOKEN` the consumer's).
pub fn overlay_env(
    base: Value,
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(Value, Vec<String>), ModelError> {
    let Value::Object(mut root) = base else {
        return Err(ModelError::field("", "configuration must be a table"));
    };
    let mut unknown = Vec::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        // `<prefix>CONFIG` names the file itself.
        if rest == "CONFIG" {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        match set_path(&mut root, &path, &raw) {
            Ok(true) => {}
            Ok(false) => unknown.push(name),
            Err(msg) => return Err(ModelError::field(name.clone(), msg)),
        }
    }
    Ok((Value::Object(root), unknown))
}

/// Set the field at `path`; `Ok(false)` when there is no such field.
fn set_path(table: &mut Map<String, Value>, path: &[String], raw: &str) -> Result<bool, String> {
    let (first, rest) = path.split_first().ok_or("empty variable name")?;
    let Some(slot) = table.get_mut(first) else {
        return Ok(false);
    };
    if rest.is_empty() {
        *slot = convert(slot, raw)?;
        return Ok(true);
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
/// Errors name the file field or the variable; also returns the variables that matched no
/// field (for a warning).
pub fn layered<T>(
    file_text: Option<&str>,
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(T, Vec<String>), ModelError>
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
    let (merged, unknown) = overlay_env(base, prefix, vars)?;
    let config = serde_path_to_error::deserialize(merged).map_err(|e| {
        ModelError::field(
            format!("{prefix}{}", e.path().to_string().to_ascii_uppercase()),
            e.inner().to_string(),
        )
    })?;
    Ok((config, unknown))
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
        let (out, unknown) = overlay_env(base, "ELS_", vars).unwrap();
        assert!(unknown.is_empty());
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
        let (out, unknown) =
            overlay_env(base.clone(), "ELS_", [("ELS_WORKRS".into(), "1".into())]).unwrap();
        assert_eq!(out, base, "an unknown name changes nothing");
        assert_eq!(unknown, vec!["ELS_WORKRS".to_string()]);
    }
}
