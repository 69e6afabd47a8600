//! The users and tokens of the configuration, and the check of a request's credentials against
//! them: which principal it is, and which streams it may watch.
//!
//! Secrets are stored as argon2 hashes, whose verification is slow on purpose (tens of
//! milliseconds and about 19 MiB, with `framecast hash-password`'s parameters). A player asks
//! many times a second (an HLS part, a playlist reload, each with the same credentials), so a
//! successful verification is remembered for [`VERIFIED_FOR`]: as a keyed SHA-256 digest of the
//! secret (the key made at start, never stored), one per user or token, compared in constant
//! time. A wrong secret is never remembered and always pays the full verification.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::Principal;
use super::credentials::Credentials;
use crate::config::access::{AccessSettings, Role, SecretHash, StreamScope};

/// How long a verified secret is taken without verifying it again. A password changed in the
/// file and reloaded (SIGHUP) starts a new list with nothing remembered.
pub const VERIFIED_FOR: Duration = Duration::from_secs(600);

/// A user or token, by its place in the list it was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountId(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Token,
}

#[derive(Debug)]
struct Account {
    name: String,
    kind: Kind,
    hash: SecretHash,
    streams: StreamScope,
    admin: bool,
}

/// A secret that verified, remembered as its digest.
#[derive(Debug, Clone, Copy)]
struct Verified {
    digest: [u8; 32],
    at: Instant,
}

/// Counts of checks, for `/status`.
#[derive(Debug, Default)]
pub struct CheckCounts {
    /// Full argon2 verifications run (right or wrong secrets).
    pub verifications: AtomicU64,
    /// Checks answered from a remembered verification.
    pub remembered: AtomicU64,
}

/// The users and tokens in force, with what they have been verified with lately.
#[derive(Debug)]
pub struct AccessList {
    settings: AccessSettings,
    accounts: Vec<Account>,
    /// One slot per account, in the same order.
    verified: Mutex<Vec<Option<Verified>>>,
    /// Keys the digests of remembered secrets; made at start, never written anywhere.
    digest_key: [u8; 32],
}

impl AccessList {
    pub fn new(settings: &AccessSettings) -> Self {
        let users = settings.users.iter().map(|user| Account {
            name: user.name.clone(),
            kind: Kind::User,
            hash: user.password_hash.clone(),
            streams: user.streams.clone(),
            admin: user.role == Role::Admin,
        });
        let tokens = settings.tokens.iter().map(|token| Account {
            name: token.name.clone(),
            kind: Kind::Token,
            hash: token.token_hash.clone(),
            streams: token.streams.clone(),
            admin: false,
        });
        let accounts: Vec<Account> = users.chain(tokens).collect();
        let mut digest_key = [0; 32];
        OsRng.fill_bytes(&mut digest_key);
        Self {
            settings: settings.clone(),
            verified: Mutex::new(vec![None; accounts.len()]),
            accounts,
            digest_key,
        }
    }

    /// The settings this list was made from.
    pub fn settings(&self) -> &AccessSettings {
        &self.settings
    }

    /// No users and no tokens: no request is checked.
    pub fn is_open(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The principal a remembered verification of `credentials` names, at `now`; `None` when
    /// they have to be verified ([`AccessList::verify`]).
    pub fn remembered(&self, credentials: &Credentials, now: Instant) -> Option<AccountId> {
        let digest = self.digest(credentials.secret());
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        // Every candidate is compared (no early exit), each in constant time.
        let mut found = None;
        for id in self.candidates(credentials) {
            if let Some(seen) = verified[id.0]
                && now.saturating_duration_since(seen.at) < VERIFIED_FOR
                && bool::from(seen.digest.ct_eq(&digest))
            {
                found = Some(id);
            }
        }
        found
    }

    /// Verifies `credentials` with argon2, slowly: call it off the async threads. Remembers a
    /// success at `now`.
    pub fn verify(&self, credentials: &Credentials, now: Instant) -> Option<AccountId> {
        let secret = credentials.secret().as_bytes();
        let candidates = self.candidates(credentials);
        if candidates.is_empty() {
            // An unknown user name costs what a known one does: the answer's timing does not
            // tell which names exist.
            let _ = verify_against(dummy_hash(), secret);
            return None;
        }
        let id = candidates
            .into_iter()
            .find(|id| verify_against(self.accounts[id.0].hash.as_str(), secret))?;
        let digest = self.digest(credentials.secret());
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified[id.0] = Some(Verified { digest, at: now });
        Some(id)
    }

    /// Who `id` is.
    pub fn principal(&self, id: AccountId) -> Principal {
        let account = &self.accounts[id.0];
        Principal {
            name: account.name.clone(),
            admin: account.admin,
        }
    }

    /// Whether `id` may watch `stream`.
    pub fn allows(&self, id: AccountId, stream: &str) -> bool {
        self.accounts[id.0].streams.allows(stream)
    }

    /// The streams the user or token named `name` may watch.
    pub fn streams_of(&self, name: &str) -> Option<&StreamScope> {
        self.accounts
            .iter()
            .find(|account| account.name == name)
            .map(|account| &account.streams)
    }

    /// Basic names its account (a user, or a token by its name, for players that only take
    /// `user:pass@` URLs); Bearer may be any token.
    fn candidates(&self, credentials: &Credentials) -> Vec<AccountId> {
        let ids = self.accounts.iter().enumerate();
        match credentials {
            Credentials::Basic { user, .. } => ids
                .filter(|(_, account)| account.name == *user)
                .map(|(i, _)| AccountId(i))
                .collect(),
            Credentials::Bearer { .. } => ids
                .filter(|(_, account)| account.kind == Kind::Token)
                .map(|(i, _)| AccountId(i))
                .collect(),
        }
    }

    fn digest(&self, secret: &str) -> [u8; 32] {
        // HMAC accepts a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.digest_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Whether `secret` is the one `phc` was made from (the output compared in constant time by
/// `password-hash`).
fn verify_against(phc: &str, secret: &[u8]) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| Argon2::default().verify_password(secret, &hash).is_ok())
}

/// A hash with the default parameters, verified against for unknown names.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_secret("framecast").unwrap_or_default())
}

/// The argon2id PHC string of `secret` with a fresh random salt and the argon2 crate's default
/// parameters (19 MiB, two passes, one lane: OWASP's recommendation), as `framecast
/// hash-password` prints it.
pub fn hash_secret(secret: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(secret.as_bytes(), &salt)?
        .to_string())
}

/// Reads the secret `framecast hash-password` hashes: the first line of `input`, its line end
/// taken off; an empty one is refused.
pub fn read_secret(input: &mut impl std::io::BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password from standard input: {error}"))?;
    let secret = line
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&line);
    if secret.is_empty() {
        return Err("no password on standard input (one line, not empty)".into());
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamName;
    use crate::config::access::{TokenSettings, UserSettings};

    fn settings() -> AccessSettings {
        let hash = |secret: &str| {
            SecretHash::new(&hash_secret(secret).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let garage = StreamName::new("garage").unwrap_or_else(|e| panic!("{e}"));
        AccessSettings {
            users: vec![
                UserSettings {
                    name: "alice".into(),
                    password_hash: hash("wonderland"),
                    streams: StreamScope::All,
                    role: Role::Admin,
                },
                UserSettings {
                    name: "bob".into(),
                    password_hash: hash("builder"),
                    streams: StreamScope::Only(vec![garage.clone()]),
                    role: Role::View,
                },
            ],
            tokens: vec![TokenSettings {
                name: "home-assistant".into(),
                token_hash: hash("0123abcd"),
                streams: StreamScope::Only(vec![garage]),
            }],
            ..Default::default()
        }
    }

    fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn right_secrets_name_their_principal_and_are_remembered() {
        let list = AccessList::new(&settings());
        let now = Instant::now();
        let alice = basic("alice", "wonderland");
        assert_eq!(list.remembered(&alice, now), None, "not verified yet");
        let id = list.verify(&alice, now).expect("alice's password");
        assert_eq!(
            list.principal(id),
            Principal {
                name: "alice".into(),
                admin: true
            }
        );
        assert_eq!(list.remembered(&alice, now), Some(id));
        assert_eq!(
            list.remembered(&alice, now + VERIFIED_FOR),
            None,
            "verified again after a while"
        );
        assert_eq!(list.remembered(&basic("alice", "wonderlan"), now), None);
        assert_eq!(list.remembered(&basic("bob", "wonderland"), now), None);

        let token = Credentials::Bearer {
            token: "0123abcd".into(),
        };
        let id = list.verify(&token, now).expect("the token");
        assert_eq!(list.principal(id).name, "home-assistant");
        assert!(!list.principal(id).admin);
        assert!(list.allows(id, "garage") && !list.allows(id, "front"));
        assert_eq!(list.remembered(&token, now), Some(id));
        // A token by its name over Basic, for players that only take user:pass@ URLs.
        assert_eq!(
            list.verify(&basic("home-assistant", "0123abcd"), now),
            Some(id)
        );
    }

    #[test]
    fn wrong_secrets_and_unknown_names_are_refused() {
        let list = AccessList::new(&settings());
        let now = Instant::now();
        for credentials in [
            basic("alice", "builder"),
            basic("alice", ""),
            basic("carol", "wonderland"),
            basic("", ""),
            Credentials::Bearer {
                token: "wonderland".into(),
            },
        ] {
            assert_eq!(list.verify(&credentials, now), None, "{credentials:?}");
            assert_eq!(list.remembered(&credentials, now), None);
        }
        assert!(!list.is_open());
        assert!(AccessList::new(&AccessSettings::default()).is_open());
    }

    #[test]
    fn hashes_verify_and_salts_differ() {
        let first = hash_secret("s3cret").unwrap_or_else(|e| panic!("{e}"));
        let second = hash_secret("s3cret").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second);
        assert!(verify_against(&first, b"s3cret"));
        assert!(!verify_against(&first, b"s3cret "));
    }

    #[test]
    fn the_secret_is_one_line_without_its_end() {
        let read = |input: &str| read_secret(&mut input.as_bytes());
        assert_eq!(read("hunter2\n"), Ok("hunter2".into()));
        assert_eq!(read("hunter2\r\n"), Ok("hunter2".into()));
        assert_eq!(read("hunter2"), Ok("hunter2".into()));
        assert_eq!(
            read(" spaced out \nsecond line\n"),
            Ok(" spaced out ".into())
        );
        assert!(read("\n").is_err());
        assert!(read("").is_err());
    }
}
