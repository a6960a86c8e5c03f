//! Ids in paths, one rule for every resource: a path names a resource or nothing. An id that
//! cannot be one (malformed) names nothing, as an id nobody holds does: both are a 404, whose
//! message says which it was.

use std::fmt;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::Response;

use super::error::ApiError;
use super::negotiate::Wants;

/// The largest id: what a JavaScript number holds exactly, so API clients never round one, and
/// a server-chosen `max + 1` never overflows.
pub const MAX: i64 = (1 << 53) - 1;

/// A resource that paths name by a numeric id.
pub trait Named {
    /// What it is called in messages ("offer", "job").
    const NAME: &'static str;
}

/// The `{id}` of a route's path: a whole number from 1 to [`MAX`].
pub struct Id<T> {
    value: i64,
    of: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    pub fn get(&self) -> i64 {
        self.value
    }
}

impl<T: Named> Id<T> {
    pub fn parse(text: &str) -> Result<Id<T>, ApiError> {
        text.parse::<i64>()
            .ok()
            .filter(|id| (1..=MAX).contains(id))
            .map(|value| Id {
                value,
                of: PhantomData,
            })
            .ok_or_else(|| malformed(T::NAME, text, &format!("whole numbers from 1 to {MAX}")))
    }
}

impl<S: Send + Sync, T: Named> FromRequestParts<S> for Id<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let text = segment(parts, state).await?;
        Id::parse(&text).map_err(|e| Wants::of(&parts.headers).error(e))
    }
}

/// The text of a route's one path parameter, whatever it names.
pub async fn segment<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, Response> {
    let Path(text) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| Wants::of(&parts.headers).error(ApiError::new(e.status(), e.body_text())))?;
    Ok(text)
}

/// An id that cannot name a `name`: `expected` says what its ids look like.
pub fn malformed(name: &str, text: &str, expected: &str) -> ApiError {
    ApiError::not_found(format!(
        "malformed {name} id {text:?}: {name} ids are {expected}"
    ))
}

/// A well-formed id that names no `name`.
pub fn missing(name: &str, id: impl fmt::Display) -> ApiError {
    ApiError::not_found(format!("no {name} with id {id}"))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    struct Thing;

    impl Named for Thing {
        const NAME: &'static str = "thing";
    }

    #[test]
    fn an_id_is_a_whole_number_from_one_to_max() {
        assert_eq!(Id::<Thing>::parse("7").unwrap().get(), 7);
        assert_eq!(Id::<Thing>::parse(&MAX.to_string()).unwrap().get(), MAX);
        for bad in ["0", "-1", "abc", "1.5", "", "9007199254740992"] {
            let e = Id::<Thing>::parse(bad).err().unwrap();
            assert_eq!(e.status, StatusCode::NOT_FOUND, "{bad}");
            assert!(e.message.starts_with("malformed thing id"), "{bad}");
        }
        assert_eq!(missing("thing", 5).message, "no thing with id 5");
    }
}
