//! The command line: global options (the admin API's address, token and output format) and
//! the command tree. Parsing here is the first line of validation; usage errors exit 2.

use std::fmt;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use crate::client::{self, Token};
use crate::dlq::DlqCommand;
use crate::output::Format;
use crate::settings::SettingsCommand;
use crate::status::StatusArgs;
use crate::streams::{parse_stream_id, StreamsCommand};
use crate::tokens::TokensCommand;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the admin API (or, for test-event, the SIEM) answered with an error, or a replay had failures
  2  usage error: bad arguments or input; nothing was sent
  3  cannot connect to the admin API";

/// Operate ELS: stream health (status, pause, resume), dead letters, org stream settings,
/// tokens and test events, through the running consumer's admin API.
#[derive(Debug, Parser)]
#[command(name = "elsctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the admin API and how to print. `Debug` is safe to log: the token and any
/// password in the URL are redacted.
#[derive(Clone, Args)]
pub struct Config {
    /// Base URL of the consumer's admin API (sled is single-process, so elsctl never opens
    /// the store itself).
    #[arg(
        long,
        global = true,
        env = "ELS_ADMIN_URL",
        default_value = "http://127.0.0.1:9090",
        value_parser = parse_admin_url
    )]
    pub admin_url: Url,
    /// Bearer token for the admin API (the consumer's ELS_ADMIN_TOKEN, or one issued with
    /// `elsctl tokens create`). Prefer the environment variable: command lines are visible
    /// to other local users.
    #[arg(long, global = true, env = "ELS_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,
    /// Print tables, or the API's JSON as is (pretty).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("admin_url", &client::shown(&self.admin_url))
            .field("token", &self.token)
            .field("output", &self.output)
            .finish()
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Dead letters: list, show, replay, purge.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Org settings (the stream `default`): list, get, set, delete.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// An org's streams (up to the consumer's max_streams_per_org, each with its own
    /// settings): list, get, set, delete, test.
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// Admin API tokens: create (super admins), list, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Send a sample event through an org's delivery path and show the SIEM's answer.
    ///
    /// Exits 0 only if the SIEM answered 2xx.
    TestEvent {
        /// The org whose settings to test.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        org: String,
    },
    /// Stream health: every org's stream state (active, failing, paused, probing,
    /// paused_by_user, disabled), why, and what it holds; `--org` shows one in detail with
    /// its recent state changes.
    Status(StatusArgs),
    /// Pause a stream on purpose: its events are held (parked) until resumed.
    Pause(Target),
    /// Resume a stream (paused by a user or by ELS): held events go out first.
    Resume(Target),
}

/// The stream `pause` and `resume` act on: `ORG` (or `--org ORG`), and `--stream` (default:
/// the stream `default`, the org's settings from before streams).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Target {
    /// The org.
    #[arg(
        value_name = "ORG",
        value_parser = NonEmptyStringValueParser::new(),
        required_unless_present = "org_flag",
        conflicts_with = "org_flag"
    )]
    pub org_arg: Option<String>,
    /// The org (as the positional ORG).
    #[arg(
        long = "org",
        id = "org_flag",
        value_name = "ORG",
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub org_flag: Option<String>,
    /// The stream of the org; without it the stream `default`.
    #[arg(long, value_parser = parse_stream_id)]
    pub stream: Option<String>,
}

impl Target {
    /// The org, from whichever way it was given (clap requires one).
    pub fn org(&self) -> &str {
        self.org_arg
            .as_deref()
            .or(self.org_flag.as_deref())
            .unwrap_or_default()
    }
}

/// `--admin-url`: an absolute http(s) URL; a path is kept as a prefix (reverse proxies).
pub fn parse_admin_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL ({e}); e.g. http://127.0.0.1:9090"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(
            "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:9090"
                .to_string(),
        );
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere_and_default_sensibly() {
        let cli = Cli::try_parse_from([
            "elsctl",
            "dlq",
            "list",
            "--output",
            "json",
            "--admin-url",
            "https://ops.example/els",
        ])
        .expect("parse");
        assert_eq!(cli.config.output, Format::Json);
        assert_eq!(cli.config.admin_url.as_str(), "https://ops.example/els");
    }

    #[test]
    fn admin_url_must_be_http() {
        assert!(parse_admin_url("ftp://host").is_err());
        assert!(parse_admin_url("127.0.0.1:9090").is_err());
        assert!(parse_admin_url("unix:/tmp/sock").is_err());
        assert!(parse_admin_url("http://127.0.0.1:9090").is_ok());
        let err = Cli::try_parse_from(["elsctl", "--admin-url", "nope", "dlq", "list"])
            .expect_err("bad url");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn the_token_is_never_shown() {
        let cli = Cli::try_parse_from([
            "elsctl",
            "--token",
            "sup3r-s3cret-t0ken",
            "settings",
            "list",
        ])
        .expect("parse");
        assert!(cli.config.token.is_some());
        assert!(!format!("{:?}", cli.config).contains("sup3r-s3cret-t0ken"));
        assert!(!format!("{cli:?}").contains("sup3r-s3cret-t0ken"));
        assert!(!format!("{cli:#?}").contains("sup3r-s3cret-t0ken"));
        let cli = Cli::try_parse_from([
            "elsctl",
            "--admin-url",
            "http://ops:hunter2@127.0.0.1:9090",
            "settings",
            "list",
        ])
        .expect("parse");
        assert!(!format!("{:?}", cli.config).contains("hunter2"));
        // `--help` must not print the value of ELS_ADMIN_TOKEN from the environment.
        let command = Cli::command();
        let token = command
            .get_arguments()
            .find(|a| a.get_id() == "token")
            .expect("token arg");
        assert!(token.is_hide_env_values_set());
    }

    #[test]
    fn help_lists_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("3  cannot connect"), "{help}");
    }

    #[test]
    fn subcommands_parse() {
        for args in [
            &["elsctl", "dlq", "show", "7"][..],
            &[
                "elsctl",
                "dlq",
                "replay",
                "--reason",
                "rate_limited",
                "--rate",
                "10",
            ],
            &["elsctl", "dlq", "purge", "--yes"],
            &["elsctl", "settings", "get", "org-1"],
            &["elsctl", "settings", "set", "org-1", "--file", "-"],
            &["elsctl", "settings", "delete", "org-1"],
            &["elsctl", "test-event", "--org", "org-1"],
            &["elsctl", "status"],
            &["elsctl", "status", "--state", "paused_by_user"],
            &["elsctl", "status", "--org", "org-1", "--output", "json"],
            &["elsctl", "pause", "--org", "org-1"],
            &["elsctl", "resume", "--org", "org-1"],
            &["elsctl", "pause", "org-1"],
            &["elsctl", "resume", "org-1", "--stream", "lake"],
            &["elsctl", "streams", "list", "org-1"],
            &["elsctl", "streams", "get", "org-1", "lake"],
            &["elsctl", "streams", "set", "org-1", "lake", "--file", "-"],
            &["elsctl", "streams", "delete", "org-1", "lake"],
            &["elsctl", "streams", "test", "org-1", "default"],
            &["elsctl", "status", "--org", "org-1", "--stream", "lake"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
        for args in [
            &["elsctl", "settings", "set", "org-1"][..],
            &["elsctl", "test-event"],
            &["elsctl", "dlq"],
            &["elsctl", "--output", "yaml", "dlq", "list"],
            &["elsctl", "status", "--state", "stopped"],
            &["elsctl", "status", "--org", ""],
            &["elsctl", "status", "--org", "org-1", "--state", "paused"],
            &["elsctl", "pause"],
            &["elsctl", "resume", "--org", ""],
            &["elsctl", "resume", "org-1", "--org", "org-2"],
            &["elsctl", "pause", "org-1", "--stream", "Lake"],
            &["elsctl", "streams", "list"],
            &["elsctl", "streams", "get", "org-1"],
            &["elsctl", "streams", "set", "org-1", "lake"],
            &["elsctl", "streams", "test", "org-1", "a/b"],
            &["elsctl", "status", "--stream", "lake"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("usage");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
