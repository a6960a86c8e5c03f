//! Who may change state: browsers only from this origin, API callers with the token when one
//! is configured. A page on an origin listed for CORS (`--cors-origins`) is an API caller on
//! the JSON API's routes: it needs the token when one is set, as a script would.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::AppState;

/// Middleware for the routes that change a tab's own state (an upload): Herald's page only.
pub async fn writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match check(req.headers(), state.config.api_token.as_deref(), &[]) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware for the JSON API's writes: Herald's page, API callers, and pages on the origins
/// listed for CORS as API callers.
pub async fn api_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let config = &state.config;
    match check(
        req.headers(),
        config.api_token.as_deref(),
        &config.cors_origins,
    ) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(headers: &HeaderMap, token: Option<&str>, listed: &[String]) -> Result<(), ApiError> {
    let fetch_site = header_str(headers, "sec-fetch-site");
    let origin = header_str(headers, header::ORIGIN.as_str());
    if fetch_site.is_some() || origin.is_some() {
        // A browser: it sends these headers itself and a page cannot forge them.
        let same_site = match fetch_site {
            Some(site) => site == "same-origin" || site == "none",
            None => origin.is_some_and(|o| same_origin(o, header_str(headers, "host"))),
        };
        if same_site {
            return Ok(());
        }
        if !origin.is_some_and(|o| listed.iter().any(|l| l == o)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-origin request refused",
            ));
        }
    }
    match token {
        None => Ok(()),
        Some(expected) => {
            let given = header_str(headers, header::AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                // Whether one came, never what came: a near miss would give the token away.
                tracing::debug!(
                    bearer_given = !given.is_empty(),
                    "API write refused: wrong or missing token"
                );
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong Authorization: Bearer token",
                ))
            }
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn browsers_must_be_same_origin() {
        assert!(check(&headers(&[("sec-fetch-site", "same-origin")]), None, &[]).is_ok());
        assert!(check(&headers(&[("sec-fetch-site", "cross-site")]), None, &[]).is_err());
        let h = headers(&[
            ("origin", "http://localhost:3000"),
            ("host", "localhost:3000"),
        ]);
        assert!(check(&h, None, &[]).is_ok());
        let h = headers(&[
            ("origin", "http://evil.example"),
            ("host", "localhost:3000"),
        ]);
        assert_eq!(
            check(&h, None, &[]).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn browsers_need_no_token_but_api_callers_do() {
        let browser = headers(&[("sec-fetch-site", "same-origin")]);
        assert!(check(&browser, Some("t0k"), &[]).is_ok());
        assert_eq!(
            check(&headers(&[]), Some("t0k"), &[]).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let wrong = headers(&[("authorization", "Bearer nope")]);
        assert!(check(&wrong, Some("t0k"), &[]).is_err());
        let right = headers(&[("authorization", "Bearer t0k")]);
        assert!(check(&right, Some("t0k"), &[]).is_ok());
        assert!(check(&headers(&[]), None, &[]).is_ok());
    }

    #[test]
    fn a_listed_origin_is_an_api_caller_and_the_others_stay_out() {
        let listed = ["https://app.example".to_string()];
        let from = |origin: &str, auth: Option<&str>| {
            let mut pairs = vec![("origin", origin), ("sec-fetch-site", "cross-site")];
            pairs.extend(auth.map(|a| ("authorization", a)));
            headers(&pairs)
        };
        assert!(check(&from("https://app.example", None), None, &listed).is_ok());
        let refused = check(&from("https://app.example", None), Some("t0k"), &listed);
        assert_eq!(refused.unwrap_err().status, StatusCode::UNAUTHORIZED);
        let with_token = from("https://app.example", Some("Bearer t0k"));
        assert!(check(&with_token, Some("t0k"), &listed).is_ok());
        let other = from("https://other.example", Some("Bearer t0k"));
        assert_eq!(
            check(&other, Some("t0k"), &listed).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        // Herald's own page needs no token, listed or not.
        let own = headers(&[
            ("origin", "https://app.example"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(check(&own, Some("t0k"), &listed).is_ok());
    }
}
