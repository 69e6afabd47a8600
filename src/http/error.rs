//! The one place that maps request failures to HTTP status codes. Handlers return
//! `Result<_, HttpError>` and use `?`.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, ResponseError};

use crate::hls::reload::ReloadError;
use crate::hls::store::BlockError;

use super::cache::CachePolicy;
use super::query::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request itself is wrong (a bad query value); the reason is one line.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing at that path.
    #[error("not found: {0}")]
    NotFound(String),
    /// Not for this request's principal (a signed link where only users may).
    #[error("{0}")]
    Forbidden(String),
    /// The resource is taken (a second WHIP publisher).
    #[error("{0}")]
    Conflict(String),
    /// The body is not of a type the resource takes (a WHEP offer that is not
    /// `application/sdp`); the reason is one line.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The server cannot answer now (no frame in time, shutting down); the reason is one line.
    #[error("{0}")]
    Unavailable(String),
    /// Something on our side failed.
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
            .insert_header(CachePolicy::Live.header())
            .body(format!("{self}\n"))
    }
}

/// A WebRTC session that was not opened: a bad offer is 400 with its reason; no room or a
/// stopped driver is 503.
impl From<crate::webrtc::OpenError> for HttpError {
    fn from(error: crate::webrtc::OpenError) -> Self {
        match error {
            crate::webrtc::OpenError::Offer(reason) => Self::BadRequest(reason.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<QueryError> for HttpError {
    fn from(error: QueryError) -> Self {
        Self::BadRequest(error.to_string())
    }
}

/// rfc8216bis §6.2.5.2: a bad blocking-reload or delta query is 400.
impl From<ReloadError> for HttpError {
    fn from(error: ReloadError) -> Self {
        Self::BadRequest(error.to_string())
    }
}

/// rfc8216bis §6.2.5.2: a request too far ahead of the live edge is 400; one still unanswered
/// after three target durations is 503.
impl From<BlockError> for HttpError {
    fn from(error: BlockError) -> Self {
        match error {
            BlockError::TooFarAhead => Self::BadRequest(error.to_string()),
            BlockError::TimedOut { .. } => Self::Unavailable(error.to_string()),
        }
    }
}

impl HttpError {
    /// The same error, its reason prefixed with what was being done (`what: reason`).
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        match self {
            Self::BadRequest(reason) => Self::BadRequest(format!("{what}: {reason}")),
            Self::NotFound(reason) => Self::NotFound(format!("{what}: {reason}")),
            Self::Forbidden(reason) => Self::Forbidden(format!("{what}: {reason}")),
            Self::Conflict(reason) => Self::Conflict(format!("{what}: {reason}")),
            Self::UnsupportedMediaType(reason) => {
                Self::UnsupportedMediaType(format!("{what}: {reason}"))
            }
            Self::Unavailable(reason) => Self::Unavailable(format!("{what}: {reason}")),
            Self::Internal(reason) => Self::Internal(format!("{what}: {reason}")),
        }
    }
}
