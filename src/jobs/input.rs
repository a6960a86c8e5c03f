//! What a new job may ask for: the same rules for the page's form (text fields) and JSON
//! (numbers), each refusal naming its field.

use serde::Deserialize;
use serde_json::Value;

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

/// Fields kept raw (a form sends text, JSON sends numbers) so bad ones get a readable error.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct JobInput {
    #[serde(default)]
    pub total: Option<Value>,
    #[serde(default)]
    pub interval_ms: Option<Value>,
    #[serde(default)]
    pub fail_at: Option<Value>,
}

impl JobInput {
    pub fn validate(&self, limits: &Limits) -> Result<NewJob, FieldError> {
        let total = whole("total", self.total.as_ref())?.unwrap_or(limits.default_total.into());
        let total = within("total", total, limits.max_total)?;
        let interval_ms = whole("interval_ms", self.interval_ms.as_ref())?
            .unwrap_or(limits.default_interval_ms.into());
        let interval_ms = within("interval_ms", interval_ms, limits.max_interval_ms)?;
        let fail_at = match whole("fail_at", self.fail_at.as_ref())? {
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

    /// A field as the user typed it, to give it back in the form.
    pub fn text(value: Option<&Value>) -> String {
        match value {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }
}

/// A whole number, or `None` when the field is absent or left empty.
fn whole(field: &'static str, value: Option<&Value>) -> Result<Option<i128>, FieldError> {
    let not_whole = |shown: &str| {
        FieldError::new(
            field,
            format!("{field} must be a whole number, got {shown}"),
        )
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i128>()
            .map(Some)
            .map_err(|_| not_whole(&format!("{:?}", truncate(s.trim())))),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Ok(Some(i.into())),
            (_, Some(u)) => Ok(Some(u.into())),
            _ => Err(not_whole(&n.to_string())),
        },
        Some(other) => Err(not_whole(&truncate(&other.to_string()))),
    }
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
    use serde_json::json;

    fn check(input: Value) -> Result<NewJob, FieldError> {
        serde_json::from_value::<JobInput>(input)
            .unwrap()
            .validate(&Limits::STANDARD)
    }

    #[test]
    fn defaults_fill_what_is_missing_or_empty() {
        let job = check(json!({})).unwrap();
        assert_eq!((job.total, job.interval_ms, job.fail_at), (100, 100, None));
        let job = check(json!({"total": "", "interval_ms": " 20 ", "fail_at": ""})).unwrap();
        assert_eq!((job.total, job.interval_ms, job.fail_at), (100, 20, None));
        let job = check(json!({"total": 50, "interval_ms": 20, "fail_at": 50})).unwrap();
        assert_eq!(
            (job.total, job.interval_ms, job.fail_at),
            (50, 20, Some(50))
        );
    }

    #[test]
    fn bad_numbers_name_their_field() {
        let cases = [
            (json!({"total": "ten"}), "total", "whole number"),
            (json!({"total": 0}), "total", "at least 1"),
            (json!({"total": -5}), "total", "at least 1"),
            (json!({"total": 10001}), "total", "at most 10000"),
            (json!({"total": 1e30}), "total", "whole number"),
            (
                json!({"total": "99999999999999999999999"}),
                "total",
                "at most",
            ),
            (json!({"total": 2.5}), "total", "whole number"),
            (json!({"total": [1]}), "total", "whole number"),
            (json!({"interval_ms": "0"}), "interval_ms", "at least 1"),
            (
                json!({"interval_ms": 10_001}),
                "interval_ms",
                "at most 10000",
            ),
            (
                json!({"total": 5, "fail_at": 6}),
                "fail_at",
                "between 1 and 5",
            ),
            (json!({"fail_at": 0}), "fail_at", "between 1 and 100"),
            (json!({"fail_at": "x"}), "fail_at", "whole number"),
        ];
        for (input, field, words) in cases {
            let err = check(input.clone()).unwrap_err();
            assert_eq!(err.field, field, "{input}");
            assert!(err.message.contains(words), "{input}: {}", err.message);
        }
    }

    #[test]
    fn quoted_input_is_short() {
        let err = check(json!({"total": "x".repeat(500)})).unwrap_err();
        assert!(err.message.len() < 80, "{}", err.message);
    }
}
