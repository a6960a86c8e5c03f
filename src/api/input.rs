//! Which topics a stream follows: `?topics=offers,board` (any subset, default all), checked
//! against [`TOPICS`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::TOPICS;

/// A topic nobody publishes: 400, with the list a client can choose from.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownTopic(String);

impl IntoResponse for UnknownTopic {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
            field: &'static str,
            topics: [&'static str; 4],
        }
        let error = if self.0.is_empty() {
            "topics names no topic".to_string()
        } else {
            format!("unknown topic {:?}", self.0)
        };
        let body = Body {
            error: format!("{error}; valid topics: {}", TOPICS.join(", ")),
            field: "topics",
            topics: TOPICS,
        };
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// The topics named in `query` (comma-separated, spaces ignored, each once), or all of them.
pub fn topics(query: Option<&str>) -> Result<Vec<String>, UnknownTopic> {
    let Some(query) = query else {
        return Ok(TOPICS.iter().map(|t| t.to_string()).collect());
    };
    let mut wanted: Vec<String> = Vec::new();
    for name in query.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !TOPICS.contains(&name) {
            return Err(UnknownTopic(name.to_string()));
        }
        if !wanted.iter().any(|w| w == name) {
            wanted.push(name.to_string());
        }
    }
    if wanted.is_empty() {
        return Err(UnknownTopic(String::new()));
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_subset_once_or_all_by_default() {
        assert_eq!(topics(None).unwrap(), TOPICS);
        assert_eq!(
            topics(Some("board, offers,board")).unwrap(),
            ["board", "offers"]
        );
    }

    #[test]
    fn unknown_or_no_topic_is_refused() {
        assert_eq!(
            topics(Some("offers,prices")),
            Err(UnknownTopic("prices".into()))
        );
        assert_eq!(topics(Some(" , ")), Err(UnknownTopic(String::new())));
        assert_eq!(topics(Some("Offers")), Err(UnknownTopic("Offers".into())));
    }
}
