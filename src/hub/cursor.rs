//! The position of a stream in every log it reads, carried in each message's `id:`.
//!
//! One id must resume both the broadcast log and the tab's private log, so it holds both sequence
//! numbers, plus the hub's epoch: sequence numbers restart with the process, and a cursor from an
//! earlier run must lead to a resync rather than to a wrong replay.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: u64,
    pub broadcast: u64,
    pub private: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}-{}", self.epoch, self.broadcast, self.private)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadCursor;

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let mut parts = s.trim().split('-');
        let epoch = parts.next().ok_or(BadCursor)?;
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| BadCursor)?;
        let broadcast = parts
            .next()
            .ok_or(BadCursor)?
            .parse()
            .map_err(|_| BadCursor)?;
        let private = parts
            .next()
            .ok_or(BadCursor)?
            .parse()
            .map_err(|_| BadCursor)?;
        if parts.next().is_some() {
            return Err(BadCursor);
        }
        Ok(Cursor {
            epoch,
            broadcast,
            private,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tests::nearly;
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let c = Cursor {
            epoch: 0xdead_beef,
            broadcast: 42,
            private: 7,
        };
        assert_eq!(c.to_string(), "deadbeef-42-7");
        assert_eq!("deadbeef-42-7".parse::<Cursor>(), Ok(c));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", "x-1-2", "1-2", "1-2-3-4", "1--2", "1-a-2", "1-2-"] {
            assert_eq!(bad.parse::<Cursor>(), Err(BadCursor), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_a_cursor_that_round_trips_or_refused_without_panicking(text in nearly(
            vec!["-", "0", "9", "f", "x", "+", " ", "18446744073709551616"],
            any::<u64>().prop_map(|n| n.to_string()),
        )) {
            if let Ok(cursor) = text.parse::<Cursor>() {
                prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
            }
        }

        #[test]
        fn every_cursor_round_trips(epoch in any::<u64>(), broadcast in any::<u64>(), private in any::<u64>()) {
            let cursor = Cursor { epoch, broadcast, private };
            prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        }
    }
}
