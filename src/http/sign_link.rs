//! `GET /streams/{name}/sign?path=stream.mjpg&valid=1h` (and `/sign` for the first stream at
//! the root): an admin's signed link to one of the stream's resources, as one line of text,
//! the path with its `?exp=…&sig=…` query. The stream page's "Signed link" form asks here.
//!
//! Only for a user with `role = "admin"` (403 for anyone else, signed links included: a link
//! must not make more links), only when a `signing_key_file` is configured (404 otherwise),
//! and a bad `path` or `valid` is 400 with a one-line reason.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};

use crate::access::signed_link::{self, SIGNABLE_RESOURCES};
use crate::access::signing_key::SigningKey;
use crate::access::{Grant, now_unix};

use super::AppState;
use super::cache::CachePolicy;
use super::query;
use super::signed_access::SIGNED_LINKS_OFF;
use super::streams::Served;

/// Validity when the request names none.
const DEFAULT_VALIDITY: &str = "1h";

pub async fn sign(req: HttpRequest, stream: Served, state: web::Data<AppState>) -> HttpResponse {
    let grant = req.extensions().get::<Grant>().cloned();
    let answer = make_link(
        grant.as_ref(),
        state.signing_key.as_deref(),
        &stream.base_for(&req),
        req.query_string(),
        now_unix(),
    );
    let (status, body) = match answer {
        Ok(link) => (StatusCode::OK, link),
        Err((status, reason)) => (status, reason),
    };
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
        // A link is a secret of its own: never stored.
        .insert_header(CachePolicy::Live.header())
        .body(format!("{body}\n"))
}

/// Whether a request with `grant` may make links: an admin's only.
pub fn may_sign(grant: Option<&Grant>) -> bool {
    grant.is_some_and(Grant::is_admin)
}

/// The link a request asks for, or its status and one-line reason. `base` is where the
/// stream's resources are (`/` or `/streams/NAME/`); `query` has `path` (one of
/// [`SIGNABLE_RESOURCES`]) and `valid` (as `sign-url --valid`, 1h by default).
pub fn make_link(
    grant: Option<&Grant>,
    key: Option<&SigningKey>,
    base: &str,
    query: &str,
    now_unix: u64,
) -> Result<String, (StatusCode, String)> {
    if !may_sign(grant) {
        return Err((
            StatusCode::FORBIDDEN,
            "only an admin can make signed links".into(),
        ));
    }
    let key = key.ok_or_else(|| (StatusCode::NOT_FOUND, SIGNED_LINKS_OFF.to_owned()))?;
    let bad = |reason: String| (StatusCode::BAD_REQUEST, reason);
    let resource = query::lookup(query, "path").ok_or_else(|| {
        bad(format!(
            "`path` is missing: one of {}",
            SIGNABLE_RESOURCES.join(", ")
        ))
    })?;
    if !SIGNABLE_RESOURCES.contains(&resource.as_str()) {
        let shown: String = resource.chars().take(40).collect();
        return Err(bad(format!(
            "path `{}` is not one of {}",
            shown.escape_debug(),
            SIGNABLE_RESOURCES.join(", ")
        )));
    }
    let valid = query::lookup(query, "valid").unwrap_or_else(|| DEFAULT_VALIDITY.into());
    let validity = signed_link::parse_validity(&valid).map_err(|e| bad(format!("valid: {e}")))?;
    let path = format!("{base}{resource}");
    Ok(signed_link::signed_url(
        key,
        &path,
        now_unix.saturating_add(validity.as_secs()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Principal, SignedLinkGrant};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[3; 32]).unwrap_or_else(|| panic!("a key"))
    }

    fn admin() -> Grant {
        Grant::Principal(Principal {
            name: "alice".into(),
            admin: true,
        })
    }

    #[test]
    fn an_admin_gets_a_link_that_verifies() {
        let link = make_link(
            Some(&admin()),
            Some(&key()),
            "/streams/front/",
            "path=stream.mjpg&valid=15m",
            1000,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let (path, query) = link.split_once('?').unwrap_or_else(|| panic!("{link}"));
        assert_eq!(path, "/streams/front/stream.mjpg");
        let grant = signed_link::verify(&key(), path, query, 1000);
        assert_eq!(grant.map(|g| g.expires_at_unix), Ok(1900));
        let root = make_link(Some(&admin()), Some(&key()), "/", "path=live.m3u8", 0)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(root.starts_with("/live.m3u8?exp=3600&sig="), "{root}");
    }

    #[test]
    fn everyone_but_an_admin_is_refused() {
        let viewer = Grant::Principal(Principal {
            name: "bob".into(),
            admin: false,
        });
        let link = Grant::SignedLink(SignedLinkGrant {
            expires_at_unix: 10,
            query: "exp=10&sig=x".into(),
        });
        for grant in [None, Some(&Grant::Open), Some(&viewer), Some(&link)] {
            let answer = make_link(grant, Some(&key()), "/", "path=stream.mjpg", 0);
            assert_eq!(
                answer.map_err(|(status, _)| status),
                Err(StatusCode::FORBIDDEN),
                "{grant:?}"
            );
        }
    }

    #[test]
    fn bad_values_and_a_missing_key_say_why() {
        for (query, status, reason) in [
            ("valid=1h", StatusCode::BAD_REQUEST, "`path` is missing"),
            (
                "path=status",
                StatusCode::BAD_REQUEST,
                "path `status` is not",
            ),
            ("path=..%2Fx", StatusCode::BAD_REQUEST, "path `../x` is not"),
            (
                "path=stream.mjpg&valid=1w",
                StatusCode::BAD_REQUEST,
                "valid: `1w`",
            ),
            (
                "path=stream.mjpg&valid=0s",
                StatusCode::BAD_REQUEST,
                "valid: `0s`",
            ),
        ] {
            let (got_status, got_reason) =
                make_link(Some(&admin()), Some(&key()), "/", query, 0).expect_err(query);
            assert_eq!(got_status, status, "{query}");
            assert!(got_reason.contains(reason), "{query}: {got_reason}");
            assert!(!got_reason.contains('\n'));
        }
        let off = make_link(Some(&admin()), None, "/", "path=stream.mjpg", 0);
        assert_eq!(
            off,
            Err((StatusCode::NOT_FOUND, SIGNED_LINKS_OFF.to_owned()))
        );
    }
}
