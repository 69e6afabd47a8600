//! Who may watch: the grant a request carries once it has been checked, whether by a user's
//! password, a bearer token or a signed link. The HTTP layer checks requests and puts the
//! [`Grant`] into the request's extensions; resources read it from there (an MJPEG stream
//! opened by a signed link ends when the link expires, a playlist fetched by one carries its
//! signature into every URI it lists).

pub mod sign_url_command;
pub mod signed_link;
pub mod signing_key;

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
