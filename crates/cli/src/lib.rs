//! `elsctl`, the ELS operator CLI.
//!
//! The dead-letter store is sled, which only one process may open, so `elsctl` never touches
//! it: every command is an HTTP call to the running consumer's admin API (bearer token).
//! `main.rs` only parses the command line, calls [`run`] and turns the result into an exit
//! code; everything here writes to the [`Io`] it is given, so commands are testable without a
//! terminal. Request and answer bodies are the `els-api` crate's types, the same the consumer
//! serves (settings documents stay opaque JSON: only the consumer validates them).
//!
//! - [`cli`]: the command line (clap): global options ([`cli::Config`]) and the command tree.
//! - [`client`]: the HTTP client: bearer token, URL building, size-capped answers, and transport
//!   failures mapped to exit codes (cannot connect = 3).
//! - [`dlq`]: `dlq list|show|replay|purge`: client-side filter checks, the `--yes` rule, and
//!   the dead-letter table.
//! - [`settings`]: `settings list|get|set|delete`: org settings as opaque JSON.
//! - [`streams`]: `streams list|get|set|delete|test`: an org's streams, each its own settings
//!   document (opaque JSON) and health.
//! - [`tokens`]: `tokens create|list|revoke`: admin API tokens; the secret printed once.
//! - [`test_event`]: `test-event`: the SIEM's answer to a sample event, explained.
//! - [`status`]: `status`, `pause`, `resume`: stream health (state, reason, held events) per
//!   stream, all pages of the list, one stream with its recent state changes.
//! - [`output`]: `--output table|json`, table layout, and text from the network made safe for
//!   a terminal.
//! - [`error`]: the one error enum, the API's error shape, and the exit codes.

pub mod cli;
pub mod client;
pub mod dlq;
pub mod error;
pub mod output;
pub mod settings;
pub mod status;
pub mod streams;
pub mod test_event;
pub mod tokens;

use std::io::{Read, Write};

pub use cli::{Cli, Command, Config};
pub use error::{exit, ApiError, Error};

use client::AdminClient;

/// Where a command reads and writes: the process's streams in `main`, buffers in tests.
pub struct Io<'a> {
    /// Only `settings set --file -` reads it.
    pub stdin: &'a mut dyn Read,
    /// Results: tables, JSON, summary lines.
    pub out: &'a mut dyn Write,
    /// Progress and warnings that must not mix into JSON output.
    pub err: &'a mut dyn Write,
}

/// How a command that ran to the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Printed normally, but the result is a failure: a replay with failed records, or a
    /// test event the SIEM did not accept.
    Failure,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => exit::SUCCESS,
            Outcome::Failure => exit::FAILURE,
        }
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// Run one parsed command against the admin API.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<Outcome, Error> {
    let client = AdminClient::new(&cli.config.admin_url, cli.config.token.as_ref())?;
    let format = cli.config.output;
    let outcome = match cli.command {
        Command::Dlq(command) => dlq::run(command, &client, format, io).await?,
        Command::Settings(command) => settings::run(command, &client, format, io).await?,
        Command::Tokens(command) => tokens::run(command, &client, format, io).await?,
        Command::TestEvent { org } => test_event::run(&org, &client, format, io).await?,
        Command::Status(args) => status::status(args, &client, format, now(), io).await?,
        Command::Streams(command) => streams::run(command, &client, format, io).await?,
        Command::Pause(target) => {
            status::act(status::Action::Pause, &target, &client, format, now(), io).await?
        }
        Command::Resume(target) => {
            status::act(status::Action::Resume, &target, &client, format, now(), io).await?
        }
    };
    io.out.flush()?;
    Ok(outcome)
}
