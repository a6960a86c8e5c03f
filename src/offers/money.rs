//! Money as a whole number of cents, so it is stored, compared and added exactly.
//!
//! Input is read from its decimal text (a JSON number literal or a form field), never through a
//! float: `19.99` is 1999 cents, not 1998.9999…. More than two decimal places is refused rather
//! than rounded (`19.999` → 422), so nothing a caller sent is silently changed; trailing zeros
//! are fine (`19.990`, `1.5e2`).

use std::fmt;

use serde::{Serialize, Serializer};

/// The largest value accepted: 1,000,000,000,000.00 (15 significant digits, so it also survives
/// any client that reads the JSON number as a double).
pub const MAX_CENTS: i64 = 100_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money {
    cents: i64,
}

/// Why a value was refused; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    NotANumber,
    Negative,
    NotFinite,
    TooLarge,
    TooPrecise,
}

impl MoneyError {
    pub fn message(&self, field: &str) -> String {
        match self {
            MoneyError::NotANumber => format!("{field} must be a number, like 1000000 or 19.99"),
            MoneyError::Negative => format!("{field} must not be negative"),
            MoneyError::NotFinite => format!("{field} must be a finite number"),
            MoneyError::TooLarge => {
                format!("{field} must be at most {}", Money { cents: MAX_CENTS })
            }
            MoneyError::TooPrecise => {
                format!("{field} has more than two decimal places; send whole cents")
            }
        }
    }
}

impl Money {
    pub fn from_cents(cents: i64) -> Result<Money, MoneyError> {
        match cents {
            c if c < 0 => Err(MoneyError::Negative),
            c if c > MAX_CENTS => Err(MoneyError::TooLarge),
            cents => Ok(Money { cents }),
        }
    }

    pub fn cents(self) -> i64 {
        self.cents
    }

    /// Parses a JSON number literal (`-?int(.frac)?(e[+-]?exp)?`) exactly.
    pub fn parse_json_number(text: &str) -> Result<Money, MoneyError> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (mantissa, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || (mantissa.contains('.') && !digits(frac)) {
            return Err(MoneyError::NotANumber);
        }
        let exponent = match exponent {
            None => 0,
            Some(e) => {
                let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
                if !digits(unsigned) {
                    return Err(MoneyError::NotANumber);
                }
                // Anything past ±10^6 is far beyond every limit; clamp instead of overflowing.
                let magnitude = unsigned.parse::<i64>().unwrap_or(i64::MAX).min(1_000_000);
                if e.starts_with('-') {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        let all: String = format!("{int}{frac}");
        let significant = all.trim_start_matches('0');
        if significant.is_empty() {
            return Ok(Money { cents: 0 });
        }
        if negative {
            return Err(MoneyError::Negative);
        }
        // value = significant × 10^shift cents
        let shift = exponent - frac.len() as i64 + 2;
        let (kept, scale) = if shift < 0 {
            let drop = (-shift) as usize;
            let kept_len = significant.len().saturating_sub(drop);
            let dropped = &significant[kept_len..];
            if dropped.bytes().any(|b| b != b'0') {
                return Err(MoneyError::TooPrecise);
            }
            (&significant[..kept_len], 0)
        } else {
            (significant, shift as usize)
        };
        // A double overflows past ~1.8e308: that is what a JSON reader would call infinite.
        if kept.len() + scale > 311 {
            return Err(MoneyError::NotFinite);
        }
        if kept.len() + scale > 18 {
            return Err(MoneyError::TooLarge);
        }
        let cents =
            kept.parse::<i64>().map_err(|_| MoneyError::TooLarge)? * 10i64.pow(scale as u32);
        Money::from_cents(cents)
    }

    /// Parses what a person typed in the form: a plain decimal, thousands commas allowed.
    pub fn parse_typed(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim().replace(',', "");
        let lower = text.to_ascii_lowercase();
        if [
            "inf",
            "+inf",
            "-inf",
            "infinity",
            "+infinity",
            "-infinity",
            "nan",
        ]
        .contains(&lower.as_str())
        {
            return Err(MoneyError::NotFinite);
        }
        let text = text.strip_prefix('+').unwrap_or(&text);
        if text.contains(['e', 'E']) {
            return Err(MoneyError::NotANumber);
        }
        // Browsers send `.5` from a number input; JSON's grammar wants the leading zero.
        let text = match text.strip_prefix('.') {
            Some(rest) => format!("0.{rest}"),
            None => text.to_string(),
        };
        Money::parse_json_number(&text)
    }

    /// The exact decimal, shortest form: `1000000`, `19.99`, `19.5`.
    pub fn json_text(self) -> String {
        let (units, cents) = (self.cents / 100, self.cents % 100);
        match cents {
            0 => units.to_string(),
            c if c % 10 == 0 => format!("{units}.{}", c / 10),
            c => format!("{units}.{c:02}"),
        }
    }
}

/// For people: `1,000,000.00`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = (self.cents / 100).to_string();
        let mut grouped = String::with_capacity(units.len() + units.len() / 3);
        for (i, digit) in units.chars().enumerate() {
            if i > 0 && (units.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        write!(f, "{grouped}.{:02}", self.cents % 100)
    }
}

/// A JSON number with the exact decimal text, never a float's approximation.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::value::RawValue::from_string(self.json_text())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(text: &str) -> Result<i64, MoneyError> {
        Money::parse_json_number(text).map(Money::cents)
    }

    #[test]
    fn json_numbers_are_read_exactly() {
        assert_eq!(cents("1000000"), Ok(100_000_000));
        assert_eq!(cents("19.99"), Ok(1999));
        assert_eq!(cents("0.1"), Ok(10));
        assert_eq!(cents("19.990"), Ok(1999));
        assert_eq!(cents("1.5e2"), Ok(15_000));
        assert_eq!(cents("1999E-2"), Ok(1999));
        assert_eq!(cents("0"), Ok(0));
        assert_eq!(cents("-0"), Ok(0));
        assert_eq!(cents("0.00"), Ok(0));
        assert_eq!(cents("1000000000000"), Ok(MAX_CENTS));
    }

    #[test]
    fn bad_numbers_say_why() {
        assert_eq!(cents("19.999"), Err(MoneyError::TooPrecise));
        assert_eq!(cents("1e-3"), Err(MoneyError::TooPrecise));
        assert_eq!(cents("-1"), Err(MoneyError::Negative));
        assert_eq!(cents("-0.01"), Err(MoneyError::Negative));
        assert_eq!(cents("1000000000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(cents("1e20"), Err(MoneyError::TooLarge));
        assert_eq!(cents("1e999"), Err(MoneyError::NotFinite));
        assert_eq!(
            cents("1e99999999999999999999999"),
            Err(MoneyError::NotFinite)
        );
        assert_eq!(cents("\"5\""), Err(MoneyError::NotANumber));
        assert_eq!(cents("1."), Err(MoneyError::NotANumber));
        assert_eq!(cents("true"), Err(MoneyError::NotANumber));
        assert_eq!(cents(""), Err(MoneyError::NotANumber));
    }

    #[test]
    fn typed_values_allow_commas_but_not_infinity() {
        let typed = |t: &str| Money::parse_typed(t).map(Money::cents);
        assert_eq!(typed(" 1,000,000.50 "), Ok(100_000_050));
        assert_eq!(typed(".5"), Ok(50));
        assert_eq!(typed("+3"), Ok(300));
        assert_eq!(typed("Infinity"), Err(MoneyError::NotFinite));
        assert_eq!(typed("NaN"), Err(MoneyError::NotFinite));
        assert_eq!(typed("1e3"), Err(MoneyError::NotANumber));
        assert_eq!(typed("ten"), Err(MoneyError::NotANumber));
        assert_eq!(typed(""), Err(MoneyError::NotANumber));
    }

    #[test]
    fn shown_with_thousands_and_cents() {
        let show = |c: i64| Money::from_cents(c).unwrap().to_string();
        assert_eq!(show(100_000_000), "1,000,000.00");
        assert_eq!(show(1999), "19.99");
        assert_eq!(show(5), "0.05");
        assert_eq!(show(100_000), "1,000.00");
        assert_eq!(show(10_000), "100.00");
        assert_eq!(show(MAX_CENTS), "1,000,000,000,000.00");
    }

    #[test]
    fn json_keeps_the_exact_decimal() {
        let json = |c: i64| serde_json::to_string(&Money::from_cents(c).unwrap()).unwrap();
        assert_eq!(json(100_000_000), "1000000");
        assert_eq!(json(1999), "19.99");
        assert_eq!(json(1950), "19.5");
        assert_eq!(json(5), "0.05");
    }
}
