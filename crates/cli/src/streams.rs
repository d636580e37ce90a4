//! `elsctl streams list|get|set|delete|test`: the streams of one org (each its own settings
//! document, destination and health) through `/v1/orgs/{org}/streams[/{stream}]`.
//!
//! As with `settings`, a stream's settings stay opaque JSON: only the consumer validates them
//! and names the bad field. The list is read loosely (id, name, endpoint, URL, enabled and the
//! state), so a newer consumer's extra settings fields do not break the table.

use clap::builder::NonEmptyStringValueParser;
use els_api::status::StreamStatus;
use els_api::{SettingsDeleted, TestEventRequest, TestEventResult};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{self, AdminClient, DEFAULT_TIMEOUT, NO_BODY, NO_QUERY};
use crate::error::Error;
use crate::output::{self, Format};
use crate::settings::{placeholder_warnings, read_settings};
use crate::{Io, Outcome};

/// The stream of settings written before streams existed (`/v1/orgs/{org}/settings`).
pub const DEFAULT_STREAM: &str = "default";
/// Longest URL in the list table.
const URL_COLUMN_CHARS: usize = 60;
const LIST_PATH: &str = "/v1/orgs/{org}/streams";

/// A stream id as the API takes it: `[a-z0-9][a-z0-9_-]{0,31}`; anything else is a usage
/// error before anything is sent.
pub fn parse_stream_id(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if first_ok && rest_ok && s.len() <= 32 {
        Ok(s.to_string())
    } else {
        Err(
            "a stream id is 1-32 characters: lowercase letters, digits, '_' or '-', starting \
             with a letter or digit (e.g. default, lake, siem-2)"
                .to_string(),
        )
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum StreamsCommand {
    /// List an org's streams: id, name, endpoint type, URL, enabled, state.
    List {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
    },
    /// Show one stream's settings as JSON (secrets redacted).
    Get {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
        #[arg(value_parser = parse_stream_id)]
        stream: String,
    },
    /// Add or replace a stream from a JSON settings file and print what was stored.
    Set {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
        #[arg(value_parser = parse_stream_id)]
        stream: String,
        /// The settings JSON; `-` reads stdin.
        #[arg(long, short)]
        file: String,
    },
    /// Remove a stream: its events stop streaming there.
    Delete {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
        #[arg(value_parser = parse_stream_id)]
        stream: String,
    },
    /// Send a sample event through one stream and show the endpoint's answer.
    ///
    /// Exits 0 only if the endpoint answered 2xx.
    Test {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        org: String,
        #[arg(value_parser = parse_stream_id)]
        stream: String,
    },
}

/// `GET /v1/orgs/{org}/streams`, read loosely (see the module doc).
#[derive(Debug, Clone, Deserialize)]
pub struct StreamListView {
    pub org: String,
    pub max_streams: usize,
    pub streams: Vec<StreamEntryView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamEntryView {
    pub id: String,
    pub settings: Value,
    pub status: StreamStatus,
}

pub async fn run(
    command: StreamsCommand,
    client: &AdminClient,
    format: Format,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    let mut outcome = Outcome::Success;
    let text = match command {
        StreamsCommand::List { org } => {
            let value = client
                .get(&["v1", "orgs", &org, "streams"], NO_QUERY)
                .await?;
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => render_list(&client::view(&value, LIST_PATH)?),
            }
        }
        StreamsCommand::Get { org, stream } => {
            let path = ["v1", "orgs", &org, "streams", &stream];
            output::pretty(&client.get(&path, NO_QUERY).await?)
        }
        StreamsCommand::Set { org, stream, file } => {
            let settings = read_settings(&file, io.stdin)?;
            for warning in placeholder_warnings(&settings) {
                io.err
                    .write_all(format!("warning: {warning}\n").as_bytes())?;
            }
            let stored = client
                .send(
                    Method::PUT,
                    &["v1", "orgs", &org, "streams", &stream],
                    NO_QUERY,
                    Some(&settings),
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            match format {
                Format::Json => output::pretty(&stored),
                Format::Table => format!(
                    "stored stream {stream} of {} (secrets redacted):\n{}",
                    output::one_line(&org),
                    output::pretty(&stored)
                ),
            }
        }
        StreamsCommand::Delete { org, stream } => {
            let value = client
                .send(
                    Method::DELETE,
                    &["v1", "orgs", &org, "streams", &stream],
                    NO_QUERY,
                    NO_BODY,
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => {
                    let deleted: SettingsDeleted =
                        client::view(&value, "/v1/orgs/{org}/streams/{stream}")?;
                    let org = output::one_line(&org);
                    if deleted.deleted {
                        format!("deleted stream {stream} of {org}\n")
                    } else {
                        format!("{org} had no stream {stream}\n")
                    }
                }
            }
        }
        StreamsCommand::Test { org, stream } => {
            let value = client
                .send(
                    Method::POST,
                    &["v1", "orgs", &org, "streams", &stream, "test"],
                    NO_QUERY,
                    Some(&TestEventRequest {}),
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            let result: TestEventResult =
                client::view(&value, "/v1/orgs/{org}/streams/{stream}/test")?;
            if !result.is_success() {
                outcome = Outcome::Failure;
            }
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => crate::test_event::render(&result),
            }
        }
    };
    io.out.write_all(text.as_bytes())?;
    Ok(outcome)
}

/// A settings field as a table cell (`-` when absent or empty).
fn field(settings: &Value, name: &str) -> String {
    output::cell(settings.get(name))
}

pub fn render_list(list: &StreamListView) -> String {
    let rows: Vec<Vec<String>> = list
        .streams
        .iter()
        .map(|s| {
            let endpoint = match settings_str(&s.settings, "endpoint") {
                Some(e) => output::one_line(e),
                None => "hec".to_string(),
            };
            let enabled = s.settings.get("enabled").and_then(Value::as_bool) != Some(false);
            vec![
                output::one_line(&s.id),
                field(&s.settings, "name"),
                endpoint,
                output::truncate(&field(&s.settings, "url"), URL_COLUMN_CHARS),
                if enabled { "yes" } else { "no" }.to_string(),
                s.status.state.as_str().to_string(),
            ]
        })
        .collect();
    let org = output::one_line(&list.org);
    let n = list.streams.len();
    if n == 0 {
        return format!(
            "{org} has no streams of its own (at most {}); its events use the default \
             settings, if any\n",
            list.max_streams
        );
    }
    let mut text = output::table(
        &["ID", "NAME", "ENDPOINT", "URL", "ENABLED", "STATE"],
        &rows,
    );
    text.push_str(&format!(
        "{n} of at most {} {} for {org}\n",
        list.max_streams,
        if list.max_streams == 1 {
            "stream"
        } else {
            "streams"
        }
    ));
    text
}

fn settings_str<'a>(settings: &'a Value, name: &str) -> Option<&'a str> {
    settings.get(name).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use els_api::status::StreamState;
    use serde_json::json;

    fn status(org: &str, stream: &str, state: StreamState) -> StreamStatus {
        StreamStatus {
            org: org.into(),
            stream: stream.into(),
            state,
            since: DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
            reason: None,
            last_success: None,
            held_events: 0,
            held_bytes: 0,
            delivered_last_hour: 0,
            failed_last_hour: 0,
        }
    }

    #[test]
    fn stream_ids_are_checked_like_the_api_does() {
        for ok in ["default", "lake", "a", "siem-2", "x_y", &"a".repeat(32)] {
            assert!(parse_stream_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Lake", "-a", "_a", "a b", "a/b", "é", &"a".repeat(33)] {
            assert!(parse_stream_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_table_has_one_row_per_stream() {
        let list = StreamListView {
            org: "org-1".into(),
            max_streams: 5,
            streams: vec![
                StreamEntryView {
                    id: "default".into(),
                    settings: json!({"url": "https://splunk.example:8088/services/collector/event"}),
                    status: status("org-1", "default", StreamState::Active),
                },
                StreamEntryView {
                    id: "lake".into(),
                    settings: json!({"name": "Data lake", "endpoint": "http", "enabled": false,
                                     "url": format!("https://lake.example/{}", "x".repeat(80))}),
                    status: status("org-1", "lake", StreamState::Disabled),
                },
            ],
        };
        let text = render_list(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID       NAME       ENDPOINT  URL                                                           ENABLED  STATE"
        );
        assert_eq!(
            lines[1],
            "default  -          hec       https://splunk.example:8088/services/collector/event          yes      active"
        );
        assert!(lines[2].starts_with("lake     Data lake  http      https://lake.example/xxx"));
        assert!(lines[2].ends_with("…  no       disabled"), "{}", lines[2]);
        assert_eq!(lines[3], "2 of at most 5 streams for org-1");
    }

    #[test]
    fn an_org_without_streams_says_so() {
        let list = StreamListView {
            org: "org-2".into(),
            max_streams: 5,
            streams: vec![],
        };
        assert_eq!(
            render_list(&list),
            "org-2 has no streams of its own (at most 5); its events use the default settings, if any\n"
        );
    }
}
