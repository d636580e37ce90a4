//! Who may do what, and what they did: scoped admin API tokens and the audit trail.
//!
//! - `token.rs`: a token as stored ([`TokenRecord`]: id, role, orgs, expiry and the SHA-256
//!   of its secret, never the secret), new secrets, and the [`Principal`] a request acts as.
//! - `registry.rs`: [`TokenRegistry`], every token in memory, fed by the tokens topic;
//!   authenticates bearer tokens (the bootstrap `ELS_ADMIN_TOKEN` is a super admin).
//! - `audit.rs`: [`AuditLog`], actions recorded to the audit topic and the newest of them
//!   kept in memory for `GET /v1/audit`.
//! - `topic.rs`: the Kafka side both share: create a topic, write a record and wait for the
//!   ack, follow every partition from the beginning on a thread (as the settings topic is).

pub mod audit;
pub mod registry;
pub mod token;
pub mod topic;

pub use audit::AuditLog;
pub use registry::TokenRegistry;
pub use token::{Principal, TokenRecord, TokenRecordV1};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::ConsumerError;

/// The token registry and audit log of a running consumer, each connected to its topic when
/// one is configured: the topic created if missing (tokens compacted), read to its end, then
/// followed on a thread until `stop`, and written through.
pub async fn start(
    config: &Config,
    stop: CancellationToken,
) -> Result<(TokenRegistry, AuditLog), ConsumerError> {
    let (tokens, audit) = (TokenRegistry::default(), AuditLog::default());
    let replication = config.settings_topic_replication;
    if config.tokens_topic.trim().is_empty() {
        tracing::warn!(
            "tokens topic disabled: only ELS_ADMIN_TOKEN works, no tokens can be issued"
        );
    } else {
        let topic = config.tokens_topic.as_str();
        topic::ensure_topic(&config.brokers, topic, replication, true).await?;
        let registry = tokens.clone();
        topic::follow(
            &config.brokers,
            topic,
            move |id, payload| registry.apply_payload(id, payload),
            stop.clone(),
        )
        .await?;
        tokens.attach_writer(topic::TopicWriter::new(&config.brokers, topic)?);
        tracing::info!(
            topic,
            tokens = tokens.list().len(),
            "following the tokens topic"
        );
    }
    if config.audit_topic.trim().is_empty() {
        tracing::warn!(
            "audit topic disabled: audit entries are kept in this instance's memory only"
        );
    } else {
        let topic = config.audit_topic.as_str();
        topic::ensure_topic(&config.brokers, topic, replication, false).await?;
        let log = audit.clone();
        topic::follow(
            &config.brokers,
            topic,
            move |_, payload| log.apply_payload(payload),
            stop,
        )
        .await?;
        audit.attach_writer(topic::TopicWriter::new(&config.brokers, topic)?);
    }
    Ok((tokens, audit))
}
