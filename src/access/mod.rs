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

pub mod credentials;
pub mod failures;
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

impl Grant {
    /// Whether the request may do what only admins may (make signed links): a user with
    /// `role = "admin"`, or anyone when nothing is checked (no users or tokens configured).
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Open => true,
            Self::Principal(principal) => principal.admin,
            Self::SignedLink(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_and_open_servers_may_do_admin_things() {
        let principal = |admin| {
            Grant::Principal(Principal {
                name: "x".into(),
                admin,
            })
        };
        assert!(Grant::Open.is_admin());
        assert!(principal(true).is_admin());
        assert!(!principal(false).is_admin());
        let link = Grant::SignedLink(SignedLinkGrant {
            expires_at_unix: 0,
            query: String::new(),
        });
        assert!(!link.is_admin());
    }
}
