//! `elsctl settings list|get|set|delete`: org stream settings through the admin API.
//!
//! Settings are handled as opaque JSON: the consumer validates them (and names the bad field),
//! so `elsctl` never drifts from the server's schema. The file is only checked to be a JSON
//! object, and its content is never echoed (auth header values are secrets). The answers are
//! `els_api`'s ([`OrgList`], [`SettingsDeleted`]).

use std::io::Read;
use std::path::Path;

use clap::builder::NonEmptyStringValueParser;
use els_api::{OrgList, SettingsDeleted, REDACTED};
use reqwest::Method;
use serde_json::Value;

use crate::client::{self, AdminClient, DEFAULT_TIMEOUT, NO_BODY, NO_QUERY};
use crate::error::Error;
use crate::output::{self, Format};
use crate::{Io, Outcome};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SettingsCommand {
    /// List the orgs that have stream settings.
    List,
    /// Show one org's settings as JSON (auth header values redacted).
    Get {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
    },
    /// Store an org's settings from a JSON file and print what was stored.
    Set {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
        /// The settings JSON; `-` reads stdin.
        #[arg(long, short)]
        file: String,
    },
    /// Delete an org's settings: its events stop streaming.
    Delete {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
    },
}

pub async fn run(
    command: SettingsCommand,
    client: &AdminClient,
    format: Format,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    let text = match command {
        SettingsCommand::List => {
            let value = client.get(&["v1", "orgs"], NO_QUERY).await?;
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => render_orgs(&client::view(&value, "/v1/orgs")?),
            }
        }
        SettingsCommand::Get { org } => {
            let path = ["v1", "orgs", &org, "settings"];
            output::pretty(&client.get(&path, NO_QUERY).await?)
        }
        SettingsCommand::Set { org, file } => {
            let settings = read_settings(&file, io.stdin)?;
            for warning in placeholder_warnings(&settings) {
                io.err
                    .write_all(format!("warning: {warning}\n").as_bytes())?;
            }
            let stored = client
                .send(
                    Method::PUT,
                    &["v1", "orgs", &org, "settings"],
                    NO_QUERY,
                    Some(&settings),
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            match format {
                Format::Json => output::pretty(&stored),
                Format::Table => format!(
                    "stored settings for {} (auth header values redacted):\n{}",
                    output::one_line(&org),
                    output::pretty(&stored)
                ),
            }
        }
        SettingsCommand::Delete { org } => {
            let value = client
                .send(
                    Method::DELETE,
                    &["v1", "orgs", &org, "settings"],
                    NO_QUERY,
                    NO_BODY,
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => {
                    let deleted: SettingsDeleted = client::view(&value, "/v1/orgs/{org}/settings")?;
                    let org = output::one_line(&org);
                    if deleted.deleted {
                        format!("deleted settings for {org}\n")
                    } else {
                        format!("{org} had no settings\n")
                    }
                }
            }
        }
    };
    io.out.write_all(text.as_bytes())?;
    Ok(Outcome::Success)
}

pub fn render_orgs(orgs: &OrgList) -> String {
    let rows: Vec<Vec<String>> = orgs
        .orgs
        .iter()
        .map(|o| vec![output::one_line(o)])
        .collect();
    let mut text = output::table(&["ORG"], &rows);
    let n = orgs.orgs.len();
    text.push_str(&format!(
        "{n} {} with settings\n",
        if n == 1 { "org" } else { "orgs" }
    ));
    text
}

/// The settings document from a file or stdin (`-`); must be a JSON object.
pub fn read_settings(file: &str, stdin: &mut dyn Read) -> Result<Value, Error> {
    let (name, text) = if file == "-" {
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|source| Error::Read {
                path: "stdin".to_string(),
                source,
            })?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(Path::new(file)).map_err(|source| Error::Read {
            path: file.to_string(),
            source,
        })?;
        (file.to_string(), text)
    };
    let value: Value = serde_json::from_str(&text).map_err(|source| Error::InvalidJson {
        path: name.clone(),
        source,
    })?;
    if !value.is_object() {
        return Err(Error::Usage(format!(
            "{name}: settings must be a JSON object ({{\"url\": ..., ...}})"
        )));
    }
    Ok(value)
}

/// Auth header values still holding the redaction placeholder, as in a `settings get` output
/// edited and sent back: the server would receive the placeholder, not the secret.
pub fn placeholder_warnings(settings: &Value) -> Vec<String> {
    let Some(headers) = settings.get("auth_headers").and_then(Value::as_array) else {
        return Vec::new();
    };
    headers
        .iter()
        .enumerate()
        .filter(|(_, h)| h.get("value").and_then(Value::as_str) == Some(REDACTED))
        .map(|(i, h)| {
            let name = h.get("name").and_then(Value::as_str).unwrap_or("?");
            format!(
                "auth_headers[{i}] ({}) has the redacted placeholder \"{REDACTED}\" as its value; \
                 put the real secret in the file unless the consumer keeps the stored one",
                output::one_line(name)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_stdin_and_requires_an_object() {
        let mut stdin: &[u8] = br#"{"url": "https://siem.example/services/collector/event"}"#;
        let value = read_settings("-", &mut stdin).expect("object");
        assert_eq!(
            value["url"],
            "https://siem.example/services/collector/event"
        );

        let mut stdin: &[u8] = b"[1, 2]";
        let err = read_settings("-", &mut stdin).expect_err("array");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn invalid_json_names_the_position_but_not_the_content() {
        let mut stdin: &[u8] =
            b"{\"auth_headers\": [{\"name\": \"Authorization\", \"value\": \"Splunk s3cr3t\"}],,}";
        let err = read_settings("-", &mut stdin).expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("stdin is not valid JSON"), "{text}");
        assert!(text.contains("line 1"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn missing_file_is_a_usage_error() {
        let mut stdin: &[u8] = b"";
        let err =
            read_settings("/nonexistent/elsctl/settings.json", &mut stdin).expect_err("missing");
        assert!(err
            .to_string()
            .starts_with("cannot read /nonexistent/elsctl/settings.json"));
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn warns_about_sending_the_placeholder_back() {
        let settings = json!({"auth_headers": [
            {"name": "Authorization", "value": REDACTED},
            {"name": "X-Key", "value": "real"}
        ]});
        let warnings = placeholder_warnings(&settings);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("auth_headers[0] (Authorization)"));
        assert!(placeholder_warnings(&json!({"url": "x"})).is_empty());
    }

    #[test]
    fn orgs_table() {
        let orgs = OrgList {
            orgs: vec!["org-1".into(), "org-2".into()],
        };
        assert_eq!(
            render_orgs(&orgs),
            "ORG\norg-1\norg-2\n2 orgs with settings\n"
        );
        assert_eq!(
            render_orgs(&OrgList { orgs: vec![] }),
            "ORG\n0 orgs with settings\n"
        );
    }
}
