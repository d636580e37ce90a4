//! `elsctl tokens create|list|revoke`: admin API tokens (a super admin's token is needed).
//!
//! `create --org ORG --role ROLE --ttl 30d` prints the new token's secret once (the consumer
//! keeps only its hash); `list` shows ids, roles, orgs and expiry, never secrets; `revoke ID`
//! stops a token on every instance within seconds. Bad roles, orgs and lifetimes are usage
//! errors (exit 2) before anything is sent.

use clap::builder::NonEmptyStringValueParser;
use els_api::{CreateToken, CreatedToken, Role, TokenInfo, TokenList};
use reqwest::Method;

use crate::client::{self, AdminClient, DEFAULT_TIMEOUT, NO_BODY, NO_QUERY};
use crate::error::Error;
use crate::output::{self, Format};
use crate::{Io, Outcome};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokensCommand {
    /// Issue a token; its secret is printed once (store it now).
    Create {
        /// `super_admin`, `org_admin` or `org_viewer`.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// An org the token may touch (repeat for several; none for `super_admin`).
        #[arg(long = "org", value_parser = NonEmptyStringValueParser::new())]
        orgs: Vec<String>,
        /// Lifetime: a number with `s`, `m`, `h` or `d` (`90m`, `12h`, `30d`).
        #[arg(long, value_parser = parse_ttl)]
        ttl: u64,
        /// A note for operators: who or what uses the token.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List every token (revoked and expired ones too); secrets are never shown.
    List,
    /// Revoke a token by id (`tok_...`); every instance refuses it within seconds.
    Revoke {
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        id: String,
    },
}

pub fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        let all: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role `{s}`; one of {}", all.join(", "))
    })
}

/// `30d`, `12h`, `90m`, `45s` as seconds (at least a minute, as the consumer requires).
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a lifetime; e.g. 90m, 12h, 30d");
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = n.checked_mul(factor).ok_or_else(bad)?;
    if secs < 60 {
        return Err("the lifetime must be at least 1m".into());
    }
    Ok(secs)
}

pub async fn run(
    command: TokensCommand,
    client: &AdminClient,
    format: Format,
    io: &mut Io<'_>,
) -> Result<Outcome, Error> {
    let text = match command {
        TokensCommand::Create {
            role,
            orgs,
            ttl,
            description,
        } => {
            match (role, orgs.is_empty()) {
                (Role::SuperAdmin, false) => {
                    return Err(Error::Usage(
                        "a super_admin token covers every org: leave out --org".into(),
                    ))
                }
                (Role::OrgAdmin | Role::OrgViewer, true) => {
                    return Err(Error::Usage(format!(
                        "--role {role} needs at least one --org"
                    )))
                }
                _ => {}
            }
            let request = CreateToken {
                role,
                orgs,
                ttl_secs: ttl,
                description,
            };
            let value = client
                .send(
                    Method::POST,
                    &["v1", "tokens"],
                    NO_QUERY,
                    Some(&request),
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => {
                    let created: CreatedToken = client::view(&value, "/v1/tokens")?;
                    let mut text = render(std::slice::from_ref(&created.token));
                    text.push_str(&format!(
                        "secret (shown once, store it now): {}\n",
                        output::one_line(&created.secret)
                    ));
                    text
                }
            }
        }
        TokensCommand::List => {
            let value = client.get(&["v1", "tokens"], NO_QUERY).await?;
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => {
                    let list: TokenList = client::view(&value, "/v1/tokens")?;
                    let mut text = render(&list.tokens);
                    text.push_str(&format!("{} tokens\n", list.tokens.len()));
                    text
                }
            }
        }
        TokensCommand::Revoke { id } => {
            let value = client
                .send(
                    Method::DELETE,
                    &["v1", "tokens", &id],
                    NO_QUERY,
                    NO_BODY,
                    DEFAULT_TIMEOUT,
                )
                .await?
                .into_json()?;
            match format {
                Format::Json => output::pretty(&value),
                Format::Table => {
                    let info: TokenInfo = client::view(&value, "/v1/tokens/{id}")?;
                    format!("revoked {}\n", output::one_line(&info.id))
                }
            }
        }
    };
    io.out.write_all(text.as_bytes())?;
    Ok(Outcome::Success)
}

/// ID, ROLE, ORGS, EXPIRES, STATE.
pub fn render(tokens: &[TokenInfo]) -> String {
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            let state = if t.revoked_at.is_some() {
                "revoked"
            } else if t.expires_at <= now {
                "expired"
            } else {
                "active"
            };
            vec![
                output::one_line(&t.id),
                t.role.to_string(),
                output::one_line(&t.orgs.join(",")),
                t.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                state.to_string(),
            ]
        })
        .collect();
    output::table(&["ID", "ROLE", "ORGS", "EXPIRES", "STATE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn lifetimes_and_roles_parse_or_are_usage_errors() {
        assert_eq!(parse_ttl("30d"), Ok(30 * 86_400));
        assert_eq!(parse_ttl("12h"), Ok(12 * 3600));
        assert_eq!(parse_ttl("90m"), Ok(5400));
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "1.5h",
            "30s",
            "99999999999999999999d",
            "3w",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_role("org_admin"), Ok(Role::OrgAdmin));
        assert!(parse_role("admin").unwrap_err().contains("org_viewer"));
        for args in [
            &[
                "elsctl", "tokens", "create", "--role", "root", "--ttl", "1d",
            ][..],
            &[
                "elsctl",
                "tokens",
                "create",
                "--role",
                "org_admin",
                "--org",
                "a",
                "--ttl",
                "soon",
            ],
            &["elsctl", "tokens", "create", "--org", "a", "--ttl", "1d"],
            &["elsctl", "tokens", "revoke"],
            &[
                "elsctl",
                "tokens",
                "create",
                "--role",
                "org_admin",
                "--org",
                "",
                "--ttl",
                "1d",
            ],
        ] {
            let err = Cli::try_parse_from(args).expect_err("usage");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        assert!(Cli::try_parse_from([
            "elsctl",
            "tokens",
            "create",
            "--role",
            "org_viewer",
            "--org",
            "a",
            "--org",
            "b",
            "--ttl",
            "30d"
        ])
        .is_ok());
    }
}
