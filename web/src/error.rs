//! The one place where domain errors become HTTP responses, with stable error codes.
//! Internal details (storage, keys) are logged, never sent to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_broker::Error;

/// An error on its way to the client: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self::from_ref(&e)
    }
}

impl ApiError {
    /// The response for a domain error (the one mapping of domain errors to HTTP).
    pub fn from_ref(e: &Error) -> Self {
        let status = match e {
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::Refused(..) => StatusCode::FORBIDDEN,
            Error::Key(_) | Error::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match e {
            Error::Unavailable(_) => "the database is unavailable; try again shortly".to_string(),
            Error::Key(_) | Error::Storage(_) => "internal error".to_string(),
            Error::Forbidden(_) => "you are not allowed to do this".to_string(),
            other => other.to_string(),
        };
        if status.is_server_error() {
            tracing::error!(code = e.code(), error = %e, "request failed");
        }
        Self {
            status,
            code: e.code(),
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gatehouse\""),
            );
        }
        resp
    }
}

/// Any path no route matches.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The error as a page, for browser routes: the same status, code and message as the API gives.
pub fn page(e: ApiError) -> Response {
    use askama::Template;
    #[derive(Template)]
    #[template(path = "error.html")]
    struct ErrorPage<'a> {
        status: u16,
        code: &'a str,
        message: &'a str,
    }
    let body = ErrorPage {
        status: e.status.as_u16(),
        code: e.code,
        message: &e.message,
    }
    .render()
    .unwrap_or_else(|_| "error".to_string());
    (e.status, axum::response::Html(body)).into_response()
}
