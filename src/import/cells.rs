//! A row's cells packed into one string for storage: each cell as `<byte length>:<text>`.
//!
//! CSV columns vary per file, so a row is stored as one value; length prefixes make the packing
//! unambiguous for any cell content and cost one allocation per row, which the import's
//! throughput needs (JSON would escape and allocate per cell).

use std::fmt::Write;

pub fn encode<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for cell in cells {
        push(&mut out, cell);
    }
    out
}

pub fn push(out: &mut String, cell: &str) {
    let _ = write!(out, "{}:", cell.len());
    out.push_str(cell);
}

/// The cells of a packed row; stops at the first malformed prefix (never produced by `encode`).
pub fn decode(packed: &str) -> Vec<&str> {
    let mut cells = Vec::new();
    let mut rest = packed;
    while let Some((len, tail)) = rest.split_once(':') {
        let Ok(len) = len.parse::<usize>() else { break };
        let Some(cell) = tail.get(..len) else { break };
        cells.push(cell);
        rest = &tail[len..];
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_content() {
        let cells = ["", "a:b", "12:x", "é,\"q\"\n", "<script>"];
        let packed = encode(cells);
        assert_eq!(decode(&packed), cells);
        assert_eq!(decode(""), Vec::<&str>::new());
    }
}
