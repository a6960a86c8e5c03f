//! How a caller wants its answer, read from its headers in one place: JSON for API callers, a
//! page for a browser, a fragment for the page's htmx.

use std::convert::Infallible;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// An API caller (no `text/html` in `Accept`): JSON.
    Json,
    /// A browser loading a page (`Accept: text/html`).
    Page,
    /// The page's htmx (`HX-Request: true`): a fragment to swap in.
    Fragment,
}

impl Wants {
    pub fn of(headers: &HeaderMap) -> Wants {
        let htmx = headers
            .get("hx-request")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let html = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        match (htmx, html) {
            (true, _) => Wants::Fragment,
            (false, true) => Wants::Page,
            (false, false) => Wants::Json,
        }
    }

    /// HTML or JSON by `Accept`, marked as varying with it so caches keep both.
    pub fn answer(
        self,
        html: impl FnOnce() -> Response,
        json: impl FnOnce() -> Response,
    ) -> Response {
        let mut response = if self == Wants::Json { json() } else { html() };
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        response
    }

    /// `error` in the caller's language: JSON, a page, or a line of HTML for the page's htmx to
    /// show where the answer goes.
    pub fn error(self, error: ApiError) -> Response {
        match self {
            Wants::Json => error.into_response(),
            Wants::Page => {
                let page = ErrorPage {
                    assets: assets::prefix(),
                    title: error.status.canonical_reason().unwrap_or("Error"),
                    message: error.message,
                    unknown_path: None,
                };
                (error.status, page).into_response()
            }
            Wants::Fragment => {
                let alert = Alert {
                    message: error.message,
                };
                (error.status, alert).into_response()
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Wants {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Wants::of(&parts.headers))
    }
}

/// A whole page that says what went wrong; for an unknown route, which path.
#[derive(Template, WebTemplate)]
#[template(path = "web/error.html")]
pub struct ErrorPage {
    pub assets: String,
    pub title: &'static str,
    pub message: String,
    pub unknown_path: Option<String>,
}

/// What went wrong, as a line for the page.
#[derive(Template, WebTemplate)]
#[template(path = "web/alert.html")]
pub struct Alert {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(pairs: &[(&'static str, &str)]) -> Wants {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, v.parse().unwrap());
        }
        Wants::of(&headers)
    }

    #[test]
    fn htmx_then_accept_decide() {
        assert_eq!(wants(&[]), Wants::Json);
        assert_eq!(wants(&[("accept", "application/json")]), Wants::Json);
        assert_eq!(wants(&[("accept", "text/html,*/*")]), Wants::Page);
        let htmx = [("accept", "text/html"), ("hx-request", "true")];
        assert_eq!(wants(&htmx), Wants::Fragment);
        assert_eq!(wants(&[("hx-request", "TRUE")]), Wants::Fragment);
        assert_eq!(wants(&[("hx-request", "false")]), Wants::Json);
    }
}
