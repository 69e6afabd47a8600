//! Who may watch: the grant a request carries once it has been checked, whether by a user's
//! password, a bearer token or a signed link. The HTTP layer checks requests and puts the
//! [`Grant`] into the request's extensions; resources read it from there (an MJPEG stream
//! opened by a signed link ends when the link expires, a playlist fetched by one carries its
//! signature into every URI it lists).
//!
//! | file | owns |
//! | --- | --- |
//! | [`credentials`] | the `Authorization` header parsed: HTTP Basic and Bearer |
//! | [`users`] | users and tokens, their argon2 verification (remembered a while) and streams |
//! | [`failures`] | back-off and 429 for addresses that keep failing, and their counts |
//! | [`signed_link`] | signed, expiring links: their HMAC, their scope, their check (pure) |
//! | [`signing_key`] | the signed links' key file, made on first start |
//! | [`sign_url_command`] | `framecast sign-url` |

pub mod credentials;
pub mod failures;
pub mod sign_url_command;
pub mod signed_link;
pub mod signing_key;
pub mod users;

/// What a checked request may do, and on whose behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// No users are configured: everything is open to everyone who can reach the port.
    Open,
    /// A configured user (HTTP Basic) or token (HTTP Bearer).
    Principal(Principal),
    /// A signed, expiring link for the requested path (a stream's `live.m3u8` link also covers
    /// that stream's HLS paths).
    SignedLink(SignedLinkGrant),
}

/// A user or a token from the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's or token's name from the configuration (never its secret).
    pub name: String,
    /// `true` for users with `role = "admin"`.
    pub admin: bool,
}

/// A request that came with a valid signed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLinkGrant {
    /// When the link stops being valid, in seconds since the Unix epoch.
    pub expires_at_unix: u64,
    /// The link's query as it came (`exp=…&sig=…`), carried into the URIs a playlist lists.
    pub query: String,
}

/// Seconds since the Unix epoch, what signed links expire by; 0 for a clock set before it.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Grant {
    /// Whether the request may do what only admins may (make signed links): a user with
    /// `role = "admin"`. Nobody on an open server: a link made there would still open the
    /// stream after users are added, until it expires.
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Open => false,
            Self::Principal(principal) => principal.admin,
            Self::SignedLink(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_users_may_do_admin_things() {
        let principal = |admin| {
            Grant::Principal(Principal {
                name: "x".into(),
                admin,
            })
        };
        assert!(!Grant::Open.is_admin());
        assert!(principal(true).is_admin());
        assert!(!principal(false).is_admin());
        let link = Grant::SignedLink(SignedLinkGrant {
            expires_at_unix: 0,
            query: String::new(),
        });
        assert!(!link.is_admin());
    }
}
