//! Who may watch, as the configuration file says it: users (`[[users]]`, HTTP Basic), tokens
//! (`[[tokens]]`, HTTP Bearer), whether `/metrics` is public, and the other sites' origins
//! allowed to embed the streams (CORS). The file's tables, and their checks with line and
//! column; [`crate::access`] verifies requests against the result.

use std::collections::HashMap;
use std::ops::Range;

use argon2::password_hash::PasswordHash;
use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, Position};
use super::settings::StreamName;

/// A user's or token's name: shown in logs and `/status`, and for a user the name typed
/// before the password. RFC 7617 §2: a Basic user-id cannot hold a colon.
const MAX_NAME_CHARS: usize = 64;

/// Users, tokens and the CORS origins: server-wide, re-read on SIGHUP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessSettings {
    pub users: Vec<UserSettings>,
    pub tokens: Vec<TokenSettings>,
    /// `/metrics` without credentials even when users exist.
    pub metrics_public: bool,
    /// Pages on which other origins may use the streams' responses.
    pub cors_allowed_origins: CorsOrigins,
}

impl AccessSettings {
    /// No users and no tokens: everything is open to whoever reaches the port.
    pub fn is_open(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }
}

/// One `[[users]]` table, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSettings {
    pub name: String,
    pub password_hash: SecretHash,
    pub streams: StreamScope,
    pub role: Role,
}

/// One `[[tokens]]` table, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    pub name: String,
    pub token_hash: SecretHash,
    pub streams: StreamScope,
}

/// The streams a user or token may watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamScope {
    /// `streams = ["*"]`: every stream, those added later too.
    All,
    /// The streams named, each one configured.
    Only(Vec<StreamName>),
}

impl StreamScope {
    pub fn allows(&self, stream: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|name| name.as_str() == stream),
        }
    }
}

/// What a user may do beyond watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches the streams in its `streams`.
    #[default]
    View,
    /// Watches, and may make signed links on the stream pages.
    Admin,
}

/// Origins whose pages may read framecast's responses (`Access-Control-Allow-Origin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers: only framecast's own pages (and `<img>`/`<video>` anywhere, which
    /// need none) use the streams.
    #[default]
    None,
    /// `"*"`: any origin.
    Any,
    /// These origins exactly (`scheme://host[:port]`, as browsers send them).
    Only(Vec<String>),
}

impl CorsOrigins {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    pub fn allow<'a>(&self, origin: &'a str) -> Option<&'a str> {
        match self {
            Self::None => None,
            Self::Any => Some("*"),
            Self::Only(origins) => origins.iter().any(|o| o == origin).then_some(origin),
        }
    }
}

/// An argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), checked to parse. Not a
/// secret, but an offline guess needs only it: its `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    /// The PHC string if it is an argon2 hash with its parameters, salt and output.
    pub fn new(phc: &str) -> Result<Self, String> {
        let parsed = PasswordHash::new(phc).map_err(|_| {
            "not a hash string like `$argon2id$v=19$m=…`; make one with `framecast \
             hash-password`"
                .to_owned()
        })?;
        argon2::Algorithm::try_from(parsed.algorithm).map_err(|_| {
            format!(
                "`{}` is not an argon2 hash; make one with `framecast hash-password`",
                parsed.algorithm
            )
        })?;
        argon2::Params::try_from(&parsed).map_err(|error| format!("argon2 parameters: {error}"))?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(
                "the hash has no salt or no output; make one with `framecast \
                        hash-password`"
                    .into(),
            );
        }
        Ok(Self(phc.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// One `[[users]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserTable {
    name: Spanned<String>,
    password_hash: Spanned<String>,
    streams: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    role: Role,
}

/// One `[[tokens]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenTable {
    name: Spanned<String>,
    token_hash: Spanned<String>,
    streams: Spanned<Vec<Spanned<String>>>,
}

/// `cors_allowed_origins` as written: a list of origins, or `"*"`.
#[derive(Debug)]
pub(super) enum OriginsText {
    Any(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for OriginsText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OriginsText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of origins such as [\"https://example.org\"], or \"*\"")
            }
            fn visit_str<E>(self, value: &str) -> Result<OriginsText, E> {
                Ok(OriginsText::Any(value.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OriginsText, A::Error> {
                let mut origins = Vec::new();
                while let Some(origin) = seq.next_element::<String>()? {
                    origins.push(origin);
                }
                Ok(OriginsText::List(origins))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The access keys of the file as written.
pub(super) struct AccessTables {
    pub users: Vec<UserTable>,
    pub tokens: Vec<TokenTable>,
    pub metrics_public: Option<bool>,
    pub cors_allowed_origins: Option<Spanned<OriginsText>>,
}

/// Checks the access keys; `streams` are the file's stream names, `text` the file (for line
/// numbers), `error` makes an error at a span of it.
pub(super) fn resolve(
    tables: AccessTables,
    streams: &[StreamName],
    text: &str,
    error: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<AccessSettings, ConfigError> {
    // Users and tokens share one set of names: a grant names its principal.
    let mut names_seen: HashMap<String, usize> = HashMap::new();
    let mut check_name = |name: &Spanned<String>, kind: &str| -> Result<String, ConfigError> {
        let text_name = name.as_ref();
        check_principal_name(text_name).map_err(|reason| {
            error(
                name.span(),
                format!("{kind} name `{}`: {reason}", text_name.escape_debug()),
            )
        })?;
        if let Some(first) = names_seen.get(text_name) {
            return Err(error(
                name.span(),
                format!(
                    "{kind} name `{text_name}` is used twice (first on line {first}); users and \
                     tokens need names of their own"
                ),
            ));
        }
        names_seen.insert(
            text_name.to_owned(),
            Position::of(text, name.span().start).line,
        );
        Ok(text_name.to_owned())
    };
    let hash = |phc: &Spanned<String>, key: &str| {
        SecretHash::new(phc.as_ref())
            .map_err(|reason| error(phc.span(), format!("{key}: {reason}")))
    };
    let scope = |written: &Spanned<Vec<Spanned<String>>>| scope_of(written, streams, error);

    let mut users = Vec::with_capacity(tables.users.len());
    for table in &tables.users {
        users.push(UserSettings {
            name: check_name(&table.name, "user")?,
            password_hash: hash(&table.password_hash, "password_hash")?,
            streams: scope(&table.streams)?,
            role: table.role,
        });
    }
    let mut tokens = Vec::with_capacity(tables.tokens.len());
    for table in &tables.tokens {
        tokens.push(TokenSettings {
            name: check_name(&table.name, "token")?,
            token_hash: hash(&table.token_hash, "token_hash")?,
            streams: scope(&table.streams)?,
        });
    }
    let cors_allowed_origins = match tables.cors_allowed_origins {
        None => CorsOrigins::None,
        Some(written) => origins_of(written.as_ref())
            .map_err(|reason| error(written.span(), format!("cors_allowed_origins: {reason}")))?,
    };
    Ok(AccessSettings {
        users,
        tokens,
        metrics_public: tables.metrics_public.unwrap_or(false),
        cors_allowed_origins,
    })
}

/// Names are typed into players' URLs and logged: printable, no colon (RFC 7617 §2), short.
fn check_principal_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("longer than {MAX_NAME_CHARS} characters"));
    }
    if name
        .chars()
        .any(|c| c == ':' || c.is_control() || c.is_whitespace())
    {
        return Err("holds a colon, a space or a control character".into());
    }
    Ok(())
}

fn scope_of(
    written: &Spanned<Vec<Spanned<String>>>,
    streams: &[StreamName],
    error: &dyn Fn(Range<usize>, String) -> ConfigError,
) -> Result<StreamScope, ConfigError> {
    let names = written.as_ref();
    if names.is_empty() {
        return Err(error(
            written.span(),
            "streams: empty; list stream names, or [\"*\"] for every stream".into(),
        ));
    }
    if names.iter().any(|name| name.as_ref() == "*") {
        if names.len() > 1 {
            return Err(error(
                written.span(),
                "streams: \"*\" means every stream and stands alone".into(),
            ));
        }
        return Ok(StreamScope::All);
    }
    let mut scope = Vec::with_capacity(names.len());
    for name in names {
        match streams
            .iter()
            .find(|stream| stream.as_str() == name.as_ref())
        {
            Some(stream) => scope.push(stream.clone()),
            None => {
                return Err(error(
                    name.span(),
                    format!(
                        "streams: no stream is named `{}`; the streams are {}",
                        name.as_ref().escape_debug(),
                        streams
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    Ok(StreamScope::Only(scope))
}

/// An origin as browsers send it in `Origin` (RFC 6454 §6.2): `scheme://host[:port]`, no
/// path, no trailing slash.
fn origins_of(written: &OriginsText) -> Result<CorsOrigins, String> {
    let origins = match written {
        OriginsText::Any(star) if star == "*" => return Ok(CorsOrigins::Any),
        OriginsText::Any(other) => {
            return Err(format!(
                "`{}`: write a list of origins, e.g. [\"https://example.org\"], or \"*\"",
                other.escape_debug()
            ));
        }
        OriginsText::List(origins) => origins,
    };
    if origins.iter().any(|o| o == "*") {
        return if origins.len() == 1 {
            Ok(CorsOrigins::Any)
        } else {
            Err("\"*\" means every origin and stands alone".into())
        };
    }
    for origin in origins {
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or_else(|| {
                format!(
                    "`{}` is not an origin: it starts with https:// or http://",
                    origin.escape_debug()
                )
            })?;
        let well_formed = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !well_formed {
            return Err(format!(
                "`{}` is not an origin: scheme://host[:port], without a path or a trailing slash",
                origin.escape_debug()
            ));
        }
    }
    Ok(CorsOrigins::Only(origins.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_origins_allow_what_they_name() {
        let garage = StreamName::new("garage").unwrap_or_else(|e| panic!("{e}"));
        assert!(StreamScope::All.allows("anything"));
        let only = StreamScope::Only(vec![garage]);
        assert!(only.allows("garage"));
        assert!(!only.allows("front"));
        assert!(!only.allows("garage2"));
        let list = CorsOrigins::Only(vec!["https://example.org".into()]);
        assert_eq!(
            list.allow("https://example.org"),
            Some("https://example.org")
        );
        assert_eq!(list.allow("https://example.org.evil"), None);
        assert_eq!(list.allow("http://example.org"), None);
        assert_eq!(CorsOrigins::Any.allow("https://x"), Some("*"));
        assert_eq!(CorsOrigins::None.allow("https://x"), None);
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        let list = |o: &[&str]| OriginsText::List(o.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            origins_of(&list(&["https://example.org", "http://[::1]:8080"])),
            Ok(CorsOrigins::Only(vec![
                "https://example.org".into(),
                "http://[::1]:8080".into()
            ]))
        );
        assert_eq!(origins_of(&list(&["*"])), Ok(CorsOrigins::Any));
        assert_eq!(
            origins_of(&OriginsText::Any("*".into())),
            Ok(CorsOrigins::Any)
        );
        for bad in [
            &["example.org"][..],
            &["https://example.org/"],
            &["https://example.org/page"],
            &["https://"],
            &["*", "https://example.org"],
        ] {
            assert!(origins_of(&list(bad)).is_err(), "{bad:?}");
        }
        assert!(origins_of(&OriginsText::Any("https://example.org".into())).is_err());
    }

    #[test]
    fn only_argon2_phc_strings_are_hashes() {
        let good = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                    9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ";
        assert!(SecretHash::new(good).is_ok());
        assert_eq!(format!("{:?}", SecretHash::new(good)), "Ok(SecretHash(..))");
        for bad in [
            "hunter2",
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA",
            "$2b$12$abcdefghijklmnopqrstuu5Jb3S8vWgTb4l7pFSVJYK7Z5KjgGxxy",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$argon2id$v=19$m=1,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ",
        ] {
            assert!(SecretHash::new(bad).is_err(), "{bad}");
        }
    }
}
