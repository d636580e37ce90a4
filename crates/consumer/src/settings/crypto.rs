//! Auth header values at rest: XChaCha20-Poly1305 with a random 24-byte nonce per value and
//! the org id as associated data, so a ciphertext copied to another org's record (or with
//! one bit flipped) fails to open.
//!
//! Stored form: `enc:v1:<kid>:<base64(nonce || ciphertext)>`. `kid` names the master key;
//! the first configured key seals new values and every configured key opens, so rotation is
//! "add the new key first, keep the old one until every record was rewritten".
//!
//! Master keys come from `master_keys` (`ELS_MASTER_KEYS`: `kid:64-hex-chars,kid2:...`) or
//! `master_key_file` (the same, one per line, `#` comments). Nothing here ever prints key or
//! plain-text material: errors name the key id and the org at most.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use els_model::settings::{OrgSettings, Secret};
use rand::RngCore;

use crate::config::Config;
use crate::error::ConsumerError;

/// Prefix of a sealed value, with the format version.
pub const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

struct MasterKey {
    kid: String,
    cipher: XChaCha20Poly1305,
}

/// The configured master keys; the first seals. `Debug` shows key ids only.
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("kids", &self.kids())
            .finish()
    }
}

/// Why a sealed value did not open. Never carries key or plain-text material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not an encrypted value (expected `{SEALED_PREFIX}<kid>:<base64>`)")]
    NotSealed,
    #[error("encrypted with unknown key id `{0}` (configured: {1})")]
    UnknownKid(String, String),
    #[error("malformed ciphertext")]
    Malformed,
    #[error("authentication failed with key `{0}` (tampered, or sealed for another org)")]
    Failed(String),
}

impl Keyring {
    /// Parse `kid:hex` entries separated by commas or newlines (blank lines and `#` comments
    /// ignored). `field` names the setting in errors.
    pub fn parse(text: &str, field: &str) -> Result<Self, ConsumerError> {
        let bad = |why: String| ConsumerError::Config(format!("`{field}`: {why}"));
        let mut keys: Vec<MasterKey> = Vec::new();
        for (i, entry) in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
            .enumerate()
        {
            let Some((kid, hex_key)) = entry.split_once(':') else {
                return Err(bad(format!("entry {} is not `kid:64-hex-chars`", i + 1)));
            };
            let kid = kid.trim();
            if kid.is_empty()
                || kid.len() > 32
                || !kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(bad(format!(
                    "entry {}: the key id must be 1-32 characters of [A-Za-z0-9._-]",
                    i + 1
                )));
            }
            let bytes = hex::decode(hex_key.trim()).ok().filter(|b| b.len() == 32);
            let Some(bytes) = bytes else {
                return Err(bad(format!(
                    "key `{kid}` must be 64 hex characters (32 random bytes, e.g. `openssl rand -hex 32`)"
                )));
            };
            if keys.iter().any(|k| k.kid == kid) {
                return Err(bad(format!("key id `{kid}` appears twice")));
            }
            keys.push(MasterKey {
                kid: kid.to_string(),
                cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
            });
        }
        if keys.is_empty() {
            return Err(bad("no keys".to_string()));
        }
        Ok(Self { keys })
    }

    /// The keys from configuration: `master_keys`, else `master_key_file`; `None` if neither.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConsumerError> {
        if !config.master_keys.trim().is_empty() {
            return Self::parse(&config.master_keys, "master_keys (ELS_MASTER_KEYS)").map(Some);
        }
        if !config.master_key_file.trim().is_empty() {
            let path = config.master_key_file.trim();
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConsumerError::Config(format!("`master_key_file`: reading {path}: {e}"))
            })?;
            return Self::parse(&text, &format!("master_key_file ({path})")).map(Some);
        }
        Ok(None)
    }

    /// The key ids, sealing key first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// Seal `plain` for `org` with the first key.
    pub fn seal(&self, org: &str, plain: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: org.as_bytes(),
        };
        // Encryption only fails for messages beyond 256 GiB.
        let sealed = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", key.kid, STANDARD.encode(blob))
    }

    /// Open a value sealed for `org`.
    pub fn open(&self, org: &str, sealed: &str) -> Result<Secret, OpenError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(OpenError::NotSealed)?;
        let (kid, b64) = rest.split_once(':').ok_or(OpenError::NotSealed)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or_else(|| {
            OpenError::UnknownKid(kid.chars().take(32).collect(), self.kids().join(", "))
        })?;
        let blob = STANDARD.decode(b64).map_err(|_| OpenError::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: org.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Failed(key.kid.clone()))?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| OpenError::Malformed)
    }

    /// `settings` with every auth header value sealed for `org`.
    pub fn seal_settings(&self, org: &str, settings: &OrgSettings) -> OrgSettings {
        let mut out = settings.clone();
        for h in &mut out.auth_headers {
            h.value = Secret::new(self.seal(org, h.value.expose()));
        }
        if let Some(oauth) = out.oauth2.as_mut() {
            oauth.client_secret = Secret::new(self.seal(org, oauth.client_secret.expose()));
        }
        out
    }

    /// `sealed` with every auth header value and the OAuth2 client secret opened; the error
    /// names the field (`auth_headers[0]`, `oauth2.client_secret`).
    pub fn open_settings(
        &self,
        org: &str,
        sealed: &OrgSettings,
    ) -> Result<OrgSettings, (String, OpenError)> {
        let mut out = sealed.clone();
        for (i, h) in out.auth_headers.iter_mut().enumerate() {
            h.value = self
                .open(org, h.value.expose())
                .map_err(|e| (format!("auth_headers[{i}]"), e))?;
        }
        if let Some(oauth) = out.oauth2.as_mut() {
            oauth.client_secret = self
                .open(org, oauth.client_secret.expose())
                .map_err(|e| ("oauth2.client_secret".to_string(), e))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "k2:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn round_trip_with_random_nonces() {
        let ring = Keyring::parse(K1, "t").unwrap();
        let a = ring.seal("org-1", "Splunk CANARY-7f3a");
        let b = ring.seal("org-1", "Splunk CANARY-7f3a");
        assert!(a.starts_with("enc:v1:k1:"), "{a}");
        assert_ne!(a, b, "fresh nonce per value");
        assert!(!a.contains("CANARY"));
        assert_eq!(
            ring.open("org-1", &a).unwrap().expose(),
            "Splunk CANARY-7f3a"
        );
    }

    #[test]
    fn flipped_bit_and_other_org_fail() {
        let ring = Keyring::parse(K1, "t").unwrap();
        let sealed = ring.seal("org-1", "secret");
        let (head, b64) = sealed.rsplit_once(':').unwrap();
        let mut blob = STANDARD.decode(b64).unwrap();
        for i in [0, NONCE_LEN, blob.len() - 1] {
            blob[i] ^= 0x01;
            let tampered = format!("{head}:{}", STANDARD.encode(&blob));
            assert_eq!(
                ring.open("org-1", &tampered),
                Err(OpenError::Failed("k1".into()))
            );
            blob[i] ^= 0x01;
        }
        assert_eq!(
            ring.open("org-2", &sealed),
            Err(OpenError::Failed("k1".into()))
        );
        assert_eq!(ring.open("org-1", "plain"), Err(OpenError::NotSealed));
        assert_eq!(
            ring.open("org-1", "enc:v1:k1:!!"),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn unknown_kid_and_rotation() {
        let old = Keyring::parse(K1, "t").unwrap();
        let sealed_old = old.seal("org-1", "old secret");
        let only_new = Keyring::parse(K2, "t").unwrap();
        let err = only_new.open("org-1", &sealed_old).unwrap_err();
        assert_eq!(err, OpenError::UnknownKid("k1".into(), "k2".into()));
        assert!(!err.to_string().contains("old secret"));
        // Rotation: the new key first seals, the old one still opens.
        let rotated = Keyring::parse(&format!("{K2},{K1}"), "t").unwrap();
        assert_eq!(rotated.kids(), ["k2", "k1"]);
        assert_eq!(
            rotated.open("org-1", &sealed_old).unwrap().expose(),
            "old secret"
        );
        let sealed_new = rotated.seal("org-1", "new secret");
        assert!(sealed_new.starts_with("enc:v1:k2:"));
        assert!(old.open("org-1", &sealed_new).is_err());
    }

    #[test]
    fn parse_errors_name_the_field_never_the_key() {
        let file = format!("# keys\n{K2}\n\n{K1}\n");
        assert_eq!(Keyring::parse(&file, "f").unwrap().kids(), ["k2", "k1"]);
        for bad in [
            "",
            "nokid",
            "k1:abc",
            "bad kid:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            &format!("{K1},{K1}"),
        ] {
            let err = Keyring::parse(bad, "master_keys").unwrap_err().to_string();
            assert!(err.contains("`master_keys`"), "{err}");
            assert!(!err.contains("0a0b0c"), "{err}");
        }
        let ring = Keyring::parse(K1, "t").unwrap();
        assert_eq!(format!("{ring:?}"), "Keyring { kids: [\"k1\"] }");
    }

    #[test]
    fn settings_seal_and_open() {
        let ring = Keyring::parse(K1, "t").unwrap();
        let mut settings = OrgSettings::hec("https://x/y", "CANARY-7f3a");
        let sealed = ring.seal_settings("org-1", &settings);
        assert!(!serde_json::to_string(&sealed).unwrap().contains("CANARY"));
        assert_eq!(ring.open_settings("org-1", &sealed).unwrap(), settings);
        assert_eq!(
            ring.open_settings("org-2", &sealed).unwrap_err().0,
            "auth_headers[0]",
            "names the header"
        );
        settings.endpoint = els_model::settings::EndpointKind::Http;
        settings.auth_headers.clear();
        settings.oauth2 = Some(els_model::settings::OAuth2 {
            token_url: "https://login.example/t/oauth2/v2.0/token".into(),
            client_id: "app".into(),
            client_secret: Secret::new("CANARY-c1"),
            scope: None,
        });
        let sealed = ring.seal_settings("org-1", &settings);
        assert!(!serde_json::to_string(&sealed).unwrap().contains("CANARY"));
        assert_eq!(ring.open_settings("org-1", &sealed).unwrap(), settings);
        assert_eq!(
            ring.open_settings("org-2", &sealed).unwrap_err().0,
            "oauth2.client_secret"
        );
    }
}
