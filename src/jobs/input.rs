//! What a new job may ask for: the same rules for the page's form (text) and JSON (numbers),
//! each refusal naming its field.

use serde::Deserialize;

use super::NewJob;
use crate::web::error::FieldError;

/// Defaults and bounds for new jobs: long enough to watch, short enough to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub default_total: u32,
    pub max_total: u32,
    pub default_interval_ms: u32,
    pub max_interval_ms: u32,
}

impl Limits {
    pub const STANDARD: Limits = Limits {
        default_total: 100,
        max_total: 10_000,
        default_interval_ms: 100,
        max_interval_ms: 10_000,
    };
}

/// `{"total", "interval_ms", "fail_at"}` from an API caller: whole numbers, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBody {
    pub total: Option<i64>,
    pub interval_ms: Option<i64>,
    pub fail_at: Option<i64>,
}

/// The form as typed; an empty field takes its default.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Typed {
    #[serde(default)]
    pub total: String,
    #[serde(default)]
    pub interval_ms: String,
    #[serde(default)]
    pub fail_at: String,
}

/// A field read as a whole number (`None`: left out), or why it is not one.
type Number = Result<Option<i128>, FieldError>;

impl JsonBody {
    pub fn validate(&self, limits: &Limits) -> Result<NewJob, FieldError> {
        let wide = |n: Option<i64>| Ok(n.map(i128::from));
        new_job(
            wide(self.total),
            wide(self.interval_ms),
            wide(self.fail_at),
            limits,
        )
    }
}

impl Typed {
    pub fn validate(&self, limits: &Limits) -> Result<NewJob, FieldError> {
        new_job(
            whole("total", &self.total),
            whole("interval_ms", &self.interval_ms),
            whole("fail_at", &self.fail_at),
            limits,
        )
    }
}

/// Checks the fields in the form's order, so the first one at fault is the one reported.
fn new_job(
    total: Number,
    interval_ms: Number,
    fail_at: Number,
    limits: &Limits,
) -> Result<NewJob, FieldError> {
    let total = total?.unwrap_or(limits.default_total.into());
    let total = within("total", total, limits.max_total)?;
    let interval_ms = interval_ms?.unwrap_or(limits.default_interval_ms.into());
    let interval_ms = within("interval_ms", interval_ms, limits.max_interval_ms)?;
    let fail_at = match fail_at? {
        None => None,
        Some(step) => Some(within("fail_at", step, total).map_err(|_| {
            FieldError::new(
                "fail_at",
                format!("fail_at must be a step between 1 and {total}, or empty"),
            )
        })?),
    };
    Ok(NewJob {
        total,
        interval_ms,
        fail_at,
    })
}

/// A typed whole number, or `None` when the field was left empty.
fn whole(field: &'static str, text: &str) -> Number {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i128>().map(Some).map_err(|_| {
        FieldError::new(
            field,
            format!("{field} must be a whole number, got {:?}", truncate(text)),
        )
    })
}

fn within(field: &'static str, n: i128, max: u32) -> Result<u32, FieldError> {
    if n < 1 {
        return Err(FieldError::new(
            field,
            format!("{field} must be at least 1"),
        ));
    }
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| FieldError::new(field, format!("{field} must be at most {max}")))
}

/// Errors quote what was sent, but never much of it.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(20) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(total: &str, interval_ms: &str, fail_at: &str) -> Result<NewJob, FieldError> {
        let typed = Typed {
            total: total.into(),
            interval_ms: interval_ms.into(),
            fail_at: fail_at.into(),
        };
        typed.validate(&Limits::STANDARD)
    }

    fn json(
        total: Option<i64>,
        interval_ms: Option<i64>,
        fail_at: Option<i64>,
    ) -> Result<NewJob, FieldError> {
        let body = JsonBody {
            total,
            interval_ms,
            fail_at,
        };
        body.validate(&Limits::STANDARD)
    }

    #[test]
    fn defaults_fill_what_is_missing_or_empty() {
        let job = json(None, None, None).unwrap();
        assert_eq!((job.total, job.interval_ms, job.fail_at), (100, 100, None));
        let job = typed("", " 20 ", "").unwrap();
        assert_eq!((job.total, job.interval_ms, job.fail_at), (100, 20, None));
        let job = json(Some(50), Some(20), Some(50)).unwrap();
        assert_eq!(
            (job.total, job.interval_ms, job.fail_at),
            (50, 20, Some(50))
        );
    }

    #[test]
    fn bad_numbers_name_their_field() {
        let cases = [
            (typed("ten", "", ""), "total", "whole number"),
            (json(Some(0), None, None), "total", "at least 1"),
            (json(Some(-5), None, None), "total", "at least 1"),
            (json(Some(10_001), None, None), "total", "at most 10000"),
            (typed("99999999999999999999999", "", ""), "total", "at most"),
            (typed("2.5", "", ""), "total", "whole number"),
            (typed("", "0", ""), "interval_ms", "at least 1"),
            (typed("-5", "abc", ""), "total", "at least 1"),
            (
                json(None, Some(10_001), None),
                "interval_ms",
                "at most 10000",
            ),
            (json(Some(5), None, Some(6)), "fail_at", "between 1 and 5"),
            (json(None, None, Some(0)), "fail_at", "between 1 and 100"),
            (typed("", "", "x"), "fail_at", "whole number"),
        ];
        for (i, (result, field, words)) in cases.into_iter().enumerate() {
            let err = result.unwrap_err();
            assert_eq!(err.field, field, "case {i}");
            assert!(err.message.contains(words), "case {i}: {}", err.message);
        }
    }

    #[test]
    fn json_numbers_are_numbers() {
        for body in [
            r#"{"total": "5"}"#,
            r#"{"total": 2.5}"#,
            r#"{"total": 1e30}"#,
        ] {
            let e = crate::web::input::json::<JsonBody>(body.as_bytes()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("total"), "{body}");
        }
    }

    #[test]
    fn quoted_input_is_short() {
        let err = typed(&"x".repeat(500), "", "").unwrap_err();
        assert!(err.message.len() < 80, "{}", err.message);
    }
}
