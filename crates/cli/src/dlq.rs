//! `elsctl dlq list|show|replay|purge`: the dead-letter store, through the admin API.
//!
//! Filters are checked here before anything is sent (reason spelling, RFC 3339 times, `--since`
//! not after `--until`), and the two destructive commands refuse to act on the whole store
//! unless the operator says `--yes`.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use clap::builder::{
    NonEmptyStringValueParser, PossibleValue, PossibleValuesParser, TypedValueParser,
};
use els_api::{DeadLetterList, DeadLetterQuery, PurgeResult, Reason, ReplayResult};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{self, AdminClient, DEFAULT_TIMEOUT, NO_BODY, NO_QUERY, REPLAY_TIMEOUT};
use crate::error::Error;
use crate::output::{self, Format};
use crate::{Io, Outcome};

/// Longest error excerpt in the list table.
const ERROR_COLUMN_CHARS: usize = 60;

/// `--reason`: one of the admin API's spellings ([`Reason::ALL`]), each explained in `--help`.
pub fn reason_parser() -> impl TypedValueParser<Value = Reason> {
    let values = Reason::ALL.map(|r| PossibleValue::new(r.as_str()).help(r.describe()));
    PossibleValuesParser::new(values)
        .map(|s| Reason::parse(&s).expect("clap only lets the possible values through"))
}

/// `--since`/`--until`: RFC 3339 with an explicit offset, as the admin API expects.
pub fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("not an RFC 3339 time ({e}); e.g. 2024-05-01T12:00:00Z"))
}

/// Which dead letters a command applies to. Times compare with `last_failed_at`.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct Filters {
    /// Only this org's dead letters.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub org: Option<String>,
    /// Only this stream's (a stream id, e.g. `default`).
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub stream: Option<String>,
    /// Only this reason.
    #[arg(long, value_parser = reason_parser())]
    pub reason: Option<Reason>,
    /// Only those that last failed at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<FixedOffset>>,
    /// Only those that last failed at or before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<FixedOffset>>,
    /// At most this many, oldest first.
    #[arg(long)]
    pub limit: Option<usize>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// What clap cannot check one argument at a time.
    pub fn validate(&self) -> Result<(), Error> {
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if since > until {
                return Err(Error::Usage(format!(
                    "--since ({}) is after --until ({}); nothing could match",
                    since.to_rfc3339(),
                    until.to_rfc3339()
                )));
            }
        }
        Ok(())
    }

    /// The filters as the admin API takes them: the query string of list and purge (encoded
    /// by reqwest, so a `+02:00` offset survives), and with the `rate` the replay body.
    pub fn request(&self, rate: Option<u32>) -> DeadLetterQuery {
        DeadLetterQuery {
            org: self.org.clone(),
            stream: self.stream.clone(),
            reason: self.reason.map(|r| r.as_str().to_string()),
            since: self.since.map(|t| t.to_rfc3339()),
            until: self.until.map(|t| t.to_rfc3339()),
            limit: self.limit,
            rate,
        }
    }
}

/// Replay and purge act on the whole store only when asked to explicitly.
pub fn require_scope(filters: &Filters, yes: bool, verb: &str) -> Result<(), Error> {
    if filters.is_empty() && !yes {
        return Err(Error::Usage(format!(
            "refusing to {verb} every dead letter: {verb}ing everything needs --yes \
             (or narrow it with --org, --stream, --reason, --since, --until or --limit)"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead letters as a table, with a count by reason.
    List {
        #[command(flatten)]
        filters: Filters,
    },
    /// Show one dead letter as JSON.
    Show {
        /// The dead letter's id (first column of `dlq list`).
        id: u64,
    },
    /// Re-publish matching dead letters to Kafka (same event_id).
    ///
    /// Each record is removed once Kafka acknowledged it; a record whose re-publish failed
    /// stays. Exits 1 if any failed.
    Replay {
        #[command(flatten)]
        filters: Filters,
        /// Events per second (the consumer's default is 500).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
        /// Confirm a replay of every dead letter (needed when no filter is given).
        #[arg(long)]
        yes: bool,
    },
    /// Delete matching dead letters for good.
    Purge {
        #[command(flatten)]
        filters: Filters,
        /// Confirm a purge of every dead letter (needed when no filter is given).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(
    command: DlqCommand,
    client: &AdminClient,
    format: Format,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    match command {
        DlqCommand::List { filters } => {
            filters.validate()?;
            let value = list(client, &filters).await?;
            let text = match format {
                Format::Json => output::pretty(&value),
                Format::Table => render_list(&client::view(&value, LIST_PATH)?),
            };
            io.out.write_all(text.as_bytes())?;
            Ok(Outcome::Success)
        }
        DlqCommand::Show { id } => {
            let value = client
                .get(&["v1", "dead-letters", &id.to_string()], NO_QUERY)
                .await?;
            io.out.write_all(output::pretty(&value).as_bytes())?;
            Ok(Outcome::Success)
        }
        DlqCommand::Replay { filters, rate, yes } => {
            replay(client, &filters, rate, yes, format, io).await
        }
        DlqCommand::Purge { filters, yes } => {
            filters.validate()?;
            require_scope(&filters, yes, "purge")?;
            let value = client
                .send(
                    Method::DELETE,
                    &["v1", "dead-letters"],
                    &filters.request(None),
                    NO_BODY,
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            let text = match format {
                Format::Json => output::pretty(&value),
                Format::Table => {
                    let purge: PurgeResult = client::view(&value, LIST_PATH)?;
                    format!("purged {}, {} remain\n", purge.purged, purge.remaining)
                }
            };
            io.out.write_all(text.as_bytes())?;
            Ok(Outcome::Success)
        }
    }
}

const LIST_PATH: &str = "/v1/dead-letters";

async fn list(client: &AdminClient, filters: &Filters) -> Result<Value, Error> {
    client
        .get(&["v1", "dead-letters"], &filters.request(None))
        .await
}

async fn replay(
    client: &AdminClient,
    filters: &Filters,
    rate: Option<u32>,
    yes: bool,
    format: Format,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    filters.validate()?;
    require_scope(filters, yes, "replay")?;
    // Count first, so a long replay starts with context.
    let listed: DeadLetterList = client::view(&list(client, filters).await?, LIST_PATH)?;
    let progress = format!("replaying {} dead letters...\n", listed.matched);
    match format {
        // Keep stdout a single JSON document.
        Format::Json => io.err.write_all(progress.as_bytes())?,
        Format::Table => io.out.write_all(progress.as_bytes())?,
    }
    io.out.flush()?;
    let body = filters.request(rate);
    let answer = client
        .send(
            Method::POST,
            &["v1", "dead-letters", "replay"],
            NO_QUERY,
            Some(&body),
            REPLAY_TIMEOUT,
        )
        .await?;
    // 502 carries the same result when some records failed to re-publish.
    let result = match answer.status {
        200 | 502 => answer.parse::<Value>().ok().and_then(|value| {
            ReplayResult::deserialize(&value)
                .ok()
                .map(|view| (value, view))
        }),
        _ => None,
    };
    let Some((value, view)) = result else {
        let url = answer.url.clone();
        return Err(answer.into_json().err().unwrap_or(Error::Unexpected {
            url,
            detail: "a replay answer without counts".to_string(),
        }));
    };
    let text = match format {
        Format::Json => output::pretty(&value),
        Format::Table => render_replay(&view),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(if view.failed > 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}

pub fn render_list(list: &DeadLetterList) -> String {
    let mut text = String::new();
    if !list.items.is_empty() {
        let rows: Vec<Vec<String>> = list
            .items
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    output::one_line(&r.org_id),
                    r.reason.as_str().to_string(),
                    r.last_status
                        .map_or_else(|| "-".to_string(), |s| s.to_string()),
                    r.attempts.to_string(),
                    output::cell(r.event.get("event_type")),
                    output::cell(r.event.get("event_id")),
                    r.last_failed_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    output::truncate(&output::one_line(&r.last_error), ERROR_COLUMN_CHARS),
                ]
            })
            .collect();
        text.push_str(&output::table(
            &[
                "ID",
                "ORG",
                "REASON",
                "STATUS",
                "ATTEMPTS",
                "EVENT_TYPE",
                "EVENT_ID",
                "LAST_FAILED_AT",
                "ERROR",
            ],
            &rows,
        ));
    }
    text.push_str(&format!(
        "{} matched of {} dead letters",
        list.matched, list.total
    ));
    if !list.by_reason.is_empty() {
        let mut counts: Vec<(&str, usize)> = list
            .by_reason
            .iter()
            .map(|(reason, n)| (reason.as_str(), *n))
            .collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = counts
            .iter()
            .map(|(reason, n)| format!("{reason}: {n}"))
            .collect();
        text.push_str(&format!(" ({})", parts.join(", ")));
    }
    text.push('\n');
    text
}

pub fn render_replay(replay: &ReplayResult) -> String {
    let mut text = format!(
        "replayed {} of {} (failed {})\n",
        replay.replayed, replay.matched, replay.failed
    );
    if replay.failed > 0 {
        if let Some(error) = replay.last_error.as_deref().filter(|e| !e.is_empty()) {
            text.push_str(&format!("last error: {}\n", output::one_line(error)));
        }
    }
    text.push_str(&format!("{} dead letters remain\n", replay.remaining));
    text
}

#[cfg(test)]
mod tests;
