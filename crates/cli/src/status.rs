//! `elsctl status|pause|resume`: stream health, through the admin API.
//!
//! `status` lists every stream of every org (`GET /v1/status`, following `next` until the
//! last page), or with `--org` (and `--stream`) shows one stream in detail with its recent
//! state changes (`GET /v1/orgs/{org}[/streams/{stream}]/status` and `/stream-events`).
//! `pause` and `resume` post to the stream's `pause`/`resume` route and print the state the
//! stream is in afterwards. The stream `default` keeps the org-level routes. The answers are
//! `els_api::status`'s types; rendering takes `now` so tables are testable.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::builder::{
    NonEmptyStringValueParser, PossibleValue, PossibleValuesParser, TypedValueParser,
};
use els_api::status::{
    NoticeList, StatusList, StatusQuery, StatusReason, StreamNotice, StreamState, StreamStatus,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::Target;
use crate::client::{self, AdminClient, DEFAULT_TIMEOUT, NO_QUERY};
use crate::error::Error;
use crate::output::{self, Format};
use crate::streams::{parse_stream_id, DEFAULT_STREAM};
use crate::{Io, Outcome};

/// Orgs per `GET /v1/status` page (the API's maximum).
pub const PAGE_LIMIT: usize = 1000;
/// Recent notices shown by `status --org`.
pub const NOTICE_LIMIT: usize = 10;
/// Longest reason text in the list table (the detail view shows it whole).
const REASON_COLUMN_CHARS: usize = 60;
const LIST_PATH: &str = "/v1/status";
const STATUS_PATH: &str = "/v1/orgs/{org}/status";
const NOTICES_PATH: &str = "/v1/orgs/{org}/stream-events";

/// What each state means, for `--state`'s help and error.
pub fn describe(state: StreamState) -> &'static str {
    match state {
        StreamState::Active => "events flow",
        StreamState::Failing => "the SIEM answers with transient errors; deliveries are retried",
        StreamState::Paused => {
            "a configuration error or failing too long: events are held and probed"
        }
        StreamState::Probing => "paused, with a probe on its way",
        StreamState::PausedByUser => "paused on purpose; held until resumed",
        StreamState::Disabled => "`enabled: false`: not streamed",
    }
}

/// `--state`: one of the API's spellings ([`StreamState::ALL`]); anything else is a usage
/// error that lists them.
pub fn state_parser() -> impl TypedValueParser<Value = StreamState> {
    let values = StreamState::ALL.map(|s| PossibleValue::new(s.as_str()).help(describe(s)));
    PossibleValuesParser::new(values).map(|s| {
        s.parse()
            .expect("clap only lets the possible values through")
    })
}

/// `elsctl status`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct StatusArgs {
    /// Only streams in this state.
    #[arg(long, value_parser = state_parser(), conflicts_with = "org")]
    pub state: Option<StreamState>,
    /// Show this org's stream in detail, with its recent state changes.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub org: Option<String>,
    /// With `--org`: which of its streams (default: the stream `default`).
    #[arg(long, value_parser = parse_stream_id, requires = "org")]
    pub stream: Option<String>,
}

/// The path segments of a stream's route `rest` (`status`, `pause`, `resume`): the org-level
/// route for the stream `default`, `/streams/{stream}/...` for the others.
pub fn stream_route<'a>(org: &'a str, stream: &'a str, rest: &'a str) -> Vec<&'a str> {
    if stream == DEFAULT_STREAM {
        vec!["v1", "orgs", org, rest]
    } else {
        vec!["v1", "orgs", org, "streams", stream, rest]
    }
}

/// `ORG`, or `ORG --stream S` for a stream other than `default`, as typed in a command.
fn target_text(org: &str, stream: &str) -> String {
    let org = output::one_line(org);
    if stream == DEFAULT_STREAM {
        org
    } else {
        format!("{org} --stream {}", output::one_line(stream))
    }
}

pub async fn status(
    args: StatusArgs,
    client: &AdminClient,
    format: Format,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    let text = match args.org {
        Some(org) => {
            let stream = args.stream.as_deref().unwrap_or(DEFAULT_STREAM);
            let status_value = client
                .get(&stream_route(&org, stream, "status"), NO_QUERY)
                .await?;
            let mut notices_value = client
                .get(
                    &["v1", "orgs", &org, "stream-events"],
                    &[("limit", NOTICE_LIMIT)],
                )
                .await?;
            // The org's notices cover all its streams: keep this stream's.
            if let Some(items) = notices_value.get_mut("items").and_then(Value::as_array_mut) {
                items.retain(|n| {
                    n.get("stream")
                        .and_then(Value::as_str)
                        .unwrap_or(DEFAULT_STREAM)
                        == stream
                });
            }
            match format {
                Format::Json => output::pretty(&json!({
                    "status": status_value,
                    "stream_events": notices_value,
                })),
                Format::Table => {
                    let status: StreamStatus = client::view(&status_value, STATUS_PATH)?;
                    let notices: NoticeList = client::view(&notices_value, NOTICES_PATH)?;
                    render_detail(&status, &notices, now)
                }
            }
        }
        None => {
            let list = list_all(client, args.state).await?;
            match format {
                Format::Json => output::pretty(&to_value(&list)),
                Format::Table => render_list(&list, args.state, now),
            }
        }
    };
    io.out.write_all(text.as_bytes())?;
    Ok(Outcome::Success)
}

/// Every page of `GET /v1/status`, as one list (`next` absent). Counts come from the last
/// page. A `next` that does not move forward is an error rather than an endless loop.
pub async fn list_all(
    client: &AdminClient,
    state: Option<StreamState>,
) -> Result<StatusList, Error> {
    let mut query = StatusQuery {
        state,
        limit: Some(PAGE_LIMIT),
        ..StatusQuery::default()
    };
    let mut all = StatusList::default();
    let mut seen_after = HashSet::new();
    loop {
        let value = client.get(&["v1", "status"], &query).await?;
        let page: StatusList = client::view(&value, LIST_PATH)?;
        all.items.extend(page.items);
        all.matched = page.matched;
        all.by_state = page.by_state;
        match page.next {
            Some(next) if seen_after.insert(next.clone()) => query.after = Some(next),
            Some(next) => {
                return Err(Error::Unexpected {
                    url: LIST_PATH.to_string(),
                    detail: format!(
                        "the next page after `{}` was asked for already",
                        output::one_line(&next)
                    ),
                })
            }
            None => return Ok(all),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
}

impl Action {
    fn route(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}

/// `elsctl pause ORG [--stream S]` / `elsctl resume ORG [--stream S]`.
pub async fn act(
    action: Action,
    target: &Target,
    client: &AdminClient,
    format: Format,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    let stream = target.stream.as_deref().unwrap_or(DEFAULT_STREAM);
    let value = client
        .send(
            Method::POST,
            &stream_route(target.org(), stream, action.route()),
            NO_QUERY,
            Some(&json!({})),
            DEFAULT_TIMEOUT,
        )
        .await?
        .into_json()?;
    let text = match format {
        Format::Json => output::pretty(&value),
        Format::Table => {
            let status: StreamStatus = client::view(&value, "/v1/orgs/{org}/{pause,resume}")?;
            render_action(action, &status, now)
        }
    };
    io.out.write_all(text.as_bytes())?;
    Ok(Outcome::Success)
}

/// `403, HEC code 4: Invalid token`; `-` without a reason.
pub fn reason_text(reason: Option<&StatusReason>) -> String {
    let Some(reason) = reason else {
        return "-".to_string();
    };
    let mut codes = Vec::new();
    if let Some(status) = reason.status {
        codes.push(status.to_string());
    }
    if let Some(code) = reason.hec_code {
        codes.push(format!("HEC code {code}"));
    }
    let text = output::one_line(&reason.text);
    match (codes.is_empty(), text.is_empty()) {
        (true, true) => "-".to_string(),
        (true, false) => text,
        (false, true) => codes.join(", "),
        (false, false) => format!("{}: {text}", codes.join(", ")),
    }
}

/// A time as RFC 3339 to the second, UTC.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long ago, coarsely: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

pub fn render_list(list: &StatusList, state: Option<StreamState>, now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = list
        .items
        .iter()
        .map(|s| {
            vec![
                output::one_line(&s.org),
                output::one_line(&s.stream),
                s.state.as_str().to_string(),
                time(s.since),
                age(s.since, now),
                s.held_events.to_string(),
                s.delivered_last_hour.to_string(),
                s.failed_last_hour.to_string(),
                output::truncate(&reason_text(s.reason.as_ref()), REASON_COLUMN_CHARS),
            ]
        })
        .collect();
    let mut text = String::new();
    if !rows.is_empty() {
        text.push_str(&output::table(
            &[
                "ORG",
                "STREAM",
                "STATE",
                "SINCE",
                "FOR",
                "HELD",
                "DELIVERED_1H",
                "FAILED_1H",
                "REASON",
            ],
            &rows,
        ));
    }
    let noun = |n: usize| if n == 1 { "stream" } else { "streams" };
    match state {
        Some(state) => text.push_str(&format!(
            "{} {} {}",
            list.matched,
            noun(list.matched),
            state.as_str()
        )),
        None => text.push_str(&format!("{} {}", list.matched, noun(list.matched))),
    }
    let counts: Vec<String> = list
        .by_state
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(state, n)| format!("{}: {n}", output::one_line(state)))
        .collect();
    if !counts.is_empty() {
        text.push_str(&format!(" (all orgs: {})", counts.join(", ")));
    }
    text.push('\n');
    text
}

pub fn render_detail(status: &StreamStatus, notices: &NoticeList, now: DateTime<Utc>) -> String {
    let org = output::one_line(&status.org);
    let mut text = format!("org:           {org}\n");
    text.push_str(&format!(
        "stream:        {}\n",
        output::one_line(&status.stream)
    ));
    text.push_str(&format!(
        "state:         {} since {} ({} ago)\n",
        status.state.as_str(),
        time(status.since),
        age(status.since, now)
    ));
    if status.reason.is_some() {
        text.push_str(&format!(
            "reason:        {}\n",
            reason_text(status.reason.as_ref())
        ));
    }
    text.push_str(&format!(
        "last success:  {}\n",
        status.last_success.map_or_else(
            || "none seen by this instance".to_string(),
            |at| format!("{} ({} ago)", time(at), age(at, now))
        )
    ));
    text.push_str(&format!(
        "held events:   {} ({} bytes)\n",
        status.held_events, status.held_bytes
    ));
    text.push_str(&format!(
        "last hour:     {} delivered, {} failed\n",
        status.delivered_last_hour, status.failed_last_hour
    ));
    if let Some(hint) = hint(status) {
        text.push_str(&format!("hint: {hint}\n"));
    }
    text.push_str("\nrecent state changes (oldest first):\n");
    if notices.items.is_empty() {
        text.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = notices.items.iter().map(notice_row).collect();
        for line in output::table(&["AT", "FROM", "TO", "REASON"], &rows).lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

fn notice_row(notice: &StreamNotice) -> Vec<String> {
    vec![
        time(notice.at),
        notice.from.as_str().to_string(),
        notice.to.as_str().to_string(),
        reason_text(notice.reason.as_ref()),
    ]
}

/// What the operator can do about a stream that holds its events.
fn hint(status: &StreamStatus) -> Option<String> {
    let org = output::one_line(&status.org);
    let target = target_text(&status.org, &status.stream);
    let fix = if status.stream == DEFAULT_STREAM {
        format!("`elsctl settings set {org}`")
    } else {
        format!(
            "`elsctl streams set {org} {}`",
            output::one_line(&status.stream)
        )
    };
    match status.state {
        StreamState::Paused | StreamState::Probing => Some(format!(
            "events are held and one probe goes out now and then; fix the stream's settings \
             ({fix}, which resumes it) or resume now with `elsctl resume --org {target}`"
        )),
        StreamState::PausedByUser => Some(format!(
            "events are held until `elsctl resume --org {target}`"
        )),
        StreamState::Disabled => Some(
            "the stream's settings say `enabled: false`; its events are not streamed".to_string(),
        ),
        StreamState::Active | StreamState::Failing => None,
    }
}

pub fn render_action(action: Action, status: &StreamStatus, now: DateTime<Utc>) -> String {
    let org = target_text(&status.org, &status.stream);
    let label = if status.stream == DEFAULT_STREAM {
        output::one_line(&status.org)
    } else {
        format!(
            "{} (stream {})",
            output::one_line(&status.org),
            output::one_line(&status.stream)
        )
    };
    let verb = match action {
        Action::Pause => "paused",
        Action::Resume => "resumed",
    };
    let mut text = format!(
        "{verb} {label}: {} since {} ({} ago), {} held events\n",
        status.state.as_str(),
        time(status.since),
        age(status.since, now),
        status.held_events
    );
    match (action, status.state) {
        (Action::Pause, StreamState::PausedByUser) => text.push_str(&format!(
            "its events are held until `elsctl resume --org {org}`\n"
        )),
        (Action::Resume, state) if state.holds() => text.push_str(&format!(
            "still holding: {} — see `elsctl status --org {org}`\n",
            reason_text(status.reason.as_ref())
        )),
        _ => {}
    }
    text
}

/// The merged pages as the API's JSON (one `StatusList` document, without `next`).
pub fn to_value(list: &StatusList) -> Value {
    serde_json::to_value(list).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
