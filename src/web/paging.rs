//! `?page=&per_page=` for every list that pages, with one error for a bad value, answered in the
//! caller's language.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::response::Response;

use super::error::{ApiError, FieldError};
use super::negotiate::Wants;

pub const PER_PAGE: usize = 20;
pub const MAX_PER_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000_000;

/// Which page of a list, counted from 1, and how long a page is. A list whose pages have a
/// fixed length (an import's, the length of its live table) reads only `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: usize,
    pub per_page: usize,
}

impl Paging {
    /// Items before this page.
    pub fn offset(&self) -> usize {
        (self.page - 1).saturating_mul(self.per_page)
    }

    fn read(query: &BTreeMap<String, String>) -> Result<Paging, FieldError> {
        let number = |name: &'static str, default: usize, max: usize| match query.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    FieldError::new(
                        name,
                        format!("{name} must be a whole number from 1 to {max}"),
                    )
                }),
        };
        Ok(Paging {
            page: number("page", 1, MAX_PAGE)?,
            per_page: number("per_page", PER_PAGE, MAX_PER_PAGE)?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let wants = Wants::of(&parts.headers);
        let Query(query) = Query::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| wants.error(ApiError::new(e.status(), e.body_text())))?;
        Paging::read(&query).map_err(|e| wants.error(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Paging, FieldError> {
        let query = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Paging::read(&query)
    }

    #[test]
    fn defaults_bounds_and_offset() {
        let first = read(&[]).unwrap();
        assert_eq!((first.page, first.per_page, first.offset()), (1, 20, 0));
        let third = read(&[("page", "3"), ("per_page", "10")]).unwrap();
        assert_eq!(third.offset(), 20);
        for (name, value) in [("page", "0"), ("page", "x"), ("per_page", "101")] {
            assert_eq!(read(&[(name, value)]).unwrap_err().field, name);
        }
    }
}
