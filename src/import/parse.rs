//! The upload's CSV, parsed as its chunks arrive (csv-core is a push parser), into checked rows.
//!
//! Buffers are bounded: a record longer than any valid one is counted and discarded rather than
//! buffered, so a file with an unclosed quote cannot make the server hold it whole.

use csv_core::{ReadRecordResult, Reader};

use super::cells;

#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub max_columns: usize,
    pub max_field_chars: usize,
}

impl ParseLimits {
    /// Bytes of one record beyond which no valid record can go (4 bytes per char at most).
    fn max_record_bytes(&self) -> usize {
        self.max_columns * (self.max_field_chars * 4 + 1)
    }
}

/// A data row, or the reason it was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Packed cells (see [`cells`]).
    Row(String),
    Reject(Reject),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The row number as a spreadsheet shows it: the header is row 1.
    pub row: u64,
    pub reason: String,
}

pub struct Parser {
    core: Reader,
    limits: ParseLimits,
    out: Vec<u8>,
    outlen: usize,
    ends: Vec<usize>,
    endlen: usize,
    /// Fields of the current record, counted even when their ends were dropped.
    fields: usize,
    /// The current record outgrew the byte cap and lost its contents.
    oversized: bool,
    rows: u64,
}

/// One complete record, not yet checked.
pub struct Record<'a> {
    pub row: u64,
    data: &'a [u8],
    ends: &'a [usize],
    fields: usize,
    oversized: bool,
}

impl Parser {
    pub fn new(limits: ParseLimits) -> Parser {
        Parser {
            core: Reader::new(),
            limits,
            out: vec![0; 4096],
            outlen: 0,
            ends: vec![0; 16],
            endlen: 0,
            fields: 0,
            oversized: false,
            rows: 0,
        }
    }

    /// Parses `input`, calling `emit` for each record it completes.
    pub fn feed(&mut self, input: &[u8], emit: &mut dyn FnMut(Record<'_>)) {
        self.run(input, false, emit);
    }

    /// Ends the input: emits a last record that has no line break after it.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Record<'_>)) {
        self.run(&[], true, emit);
    }

    fn run(&mut self, mut input: &[u8], eof: bool, emit: &mut dyn FnMut(Record<'_>)) {
        loop {
            if input.is_empty() && !eof {
                return;
            }
            let (result, nin, nout, nend) = self.core.read_record(
                input,
                &mut self.out[self.outlen..],
                &mut self.ends[self.endlen..],
            );
            input = &input[nin..];
            self.outlen += nout;
            self.endlen += nend;
            self.fields += nend;
            match result {
                ReadRecordResult::InputEmpty => {
                    if !eof {
                        return;
                    }
                }
                ReadRecordResult::OutputFull => {
                    let cap = self.limits.max_record_bytes();
                    if self.out.len() < cap {
                        let grown = (self.out.len() * 2).min(cap);
                        self.out.resize(grown, 0);
                    } else {
                        self.oversized = true;
                        self.outlen = 0;
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    let cap = self.limits.max_columns + 1;
                    if self.ends.len() < cap {
                        let grown = (self.ends.len() * 2).min(cap);
                        self.ends.resize(grown, 0);
                    } else {
                        // More fields than any header may have: counted, and rejected by count.
                        self.endlen = 0;
                    }
                }
                ReadRecordResult::Record => {
                    self.rows += 1;
                    emit(Record {
                        row: self.rows,
                        data: &self.out[..self.outlen],
                        ends: &self.ends[..self.endlen],
                        fields: self.fields,
                        oversized: self.oversized,
                    });
                    self.outlen = 0;
                    self.endlen = 0;
                    self.fields = 0;
                    self.oversized = false;
                }
                ReadRecordResult::End => return,
            }
        }
    }
}

impl Record<'_> {
    /// The header's column names, or why the file cannot be imported.
    pub fn header(&self, limits: &ParseLimits) -> Result<Vec<String>, String> {
        if self.fields > limits.max_columns {
            return Err(format!(
                "the header has {} columns; the limit is {}",
                self.fields, limits.max_columns
            ));
        }
        let fields = self
            .fields(limits)
            .map_err(|e| format!("the header row is invalid: {e}"))?;
        Ok(fields.into_iter().map(|f| f.trim().to_string()).collect())
    }

    /// A data row checked against the header's column count and the limits.
    pub fn check(&self, columns: usize, limits: &ParseLimits) -> Item {
        let reject = |reason: String| {
            Item::Reject(Reject {
                row: self.row,
                reason,
            })
        };
        if self.oversized {
            return reject(self.too_long(limits));
        }
        if self.fields != columns {
            return reject(format!("expected {columns} fields, found {}", self.fields));
        }
        match self.fields(limits) {
            Ok(fields) => Item::Row(cells::encode(fields)),
            Err(e) => reject(e),
        }
    }

    fn too_long(&self, limits: &ParseLimits) -> String {
        format!(
            "a field is longer than {} characters",
            limits.max_field_chars
        )
    }

    fn fields(&self, limits: &ParseLimits) -> Result<Vec<&str>, String> {
        let max = limits.max_field_chars;
        if self.oversized {
            return Err(self.too_long(limits));
        }
        let text =
            std::str::from_utf8(self.data).map_err(|_| "not valid UTF-8 text".to_string())?;
        let mut start = 0;
        let mut fields = Vec::with_capacity(self.ends.len());
        for (i, &end) in self.ends.iter().enumerate() {
            let field = text
                .get(start..end)
                .ok_or_else(|| "not valid UTF-8 text".to_string())?;
            if field.len() > max {
                let chars = field.chars().count();
                if chars > max {
                    return Err(format!(
                        "field {} is {chars} characters long; the limit is {max}",
                        i + 1
                    ));
                }
            }
            fields.push(field);
            start = end;
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_columns: 4,
        max_field_chars: 5,
    };

    /// Feeds `input` in chunks of `chunk` bytes; returns (row, outcome) for every record.
    fn parse(input: &[u8], chunk: usize) -> Vec<(u64, Result<Vec<String>, String>)> {
        let mut parser = Parser::new(LIMITS);
        let mut out = Vec::new();
        let mut emit = |r: Record<'_>| {
            let outcome = if r.row == 1 {
                r.header(&LIMITS)
            } else {
                match r.check(2, &LIMITS) {
                    Item::Row(packed) => Ok(cells::decode(&packed)
                        .into_iter()
                        .map(str::to_string)
                        .collect()),
                    Item::Reject(j) => Err(j.reason),
                }
            };
            out.push((r.row, outcome));
        };
        for piece in input.chunks(chunk) {
            parser.feed(piece, &mut emit);
        }
        parser.finish(&mut emit);
        out
    }

    fn ok(cells: &[&str]) -> Result<Vec<String>, String> {
        Ok(cells.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn the_same_records_whatever_the_chunking() {
        let csv = b"a,b\n1,\"x,y\"\r\n\"q\"\"t\",2\n3,4";
        let expected = vec![
            (1, ok(&["a", "b"])),
            (2, ok(&["1", "x,y"])),
            (3, ok(&["q\"t", "2"])),
            (4, ok(&["3", "4"])),
        ];
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(parse(csv, chunk), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn bad_rows_are_rejected_with_their_reason() {
        let csv = b"a,b\n1\n1,2,3\n\xff,1\n123456,1\nok,1\n";
        let got = parse(csv, 3);
        assert_eq!(got[1], (2, Err("expected 2 fields, found 1".into())));
        assert_eq!(got[2], (3, Err("expected 2 fields, found 3".into())));
        assert_eq!(got[3], (4, Err("not valid UTF-8 text".into())));
        assert_eq!(
            got[4],
            (
                5,
                Err("field 1 is 6 characters long; the limit is 5".into())
            )
        );
        assert_eq!(got[5], (6, ok(&["ok", "1"])));
        assert_eq!(
            parse("a,b\néééé,1\n".as_bytes(), 2)[1].1,
            ok(&["éééé", "1"])
        );
    }

    #[test]
    fn an_unclosed_quote_is_bounded_not_buffered() {
        let mut csv = b"a,b\n\"".to_vec();
        csv.extend(std::iter::repeat_n(b'x', 1 << 20));
        let got = parse(&csv, 4096);
        assert_eq!(got.len(), 2);
        assert!(
            got[1]
                .1
                .as_ref()
                .unwrap_err()
                .contains("a field is longer than 5")
        );
    }

    #[test]
    fn a_wide_header_is_refused() {
        let got = parse(b"a,b,c,d,e,f,g,h,i,j\n", 4);
        assert!(got[0].1.as_ref().unwrap_err().contains("limit is 4"));
    }

    #[test]
    fn blank_lines_are_skipped() {
        let got = parse(b"a,b\n\n1,2\n\n", 2);
        assert_eq!(got, vec![(1, ok(&["a", "b"])), (2, ok(&["1", "2"]))]);
    }

    /// Feeds `input` to the parser in pieces cut at `cuts`, handing every record to `each`.
    fn feed_cut(
        input: &[u8],
        cuts: &[usize],
        limits: ParseLimits,
        each: &mut dyn FnMut(Record<'_>),
    ) {
        let mut parser = Parser::new(limits);
        let mut from = 0;
        for &cut in cuts.iter().chain([&input.len()]) {
            let cut = cut.clamp(from, input.len());
            parser.feed(&input[from..cut], each);
            from = cut;
        }
        parser.finish(each);
    }

    /// Every record of `input` as raw fields.
    fn records(input: &[u8], cuts: &[usize], limits: ParseLimits) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        feed_cut(input, cuts, limits, &mut |r| {
            let mut start = 0;
            let fields = r.ends.iter().map(|&end| {
                let field = r.data[start..end].to_vec();
                start = end;
                field
            });
            out.push(fields.collect());
        });
        out
    }

    /// The `csv` crate's reading of the same bytes, in one piece.
    fn reference(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input)
            .byte_records()
            .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
            .collect()
    }

    /// CSV-ish bytes: mostly the characters that matter to the grammar.
    fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => prop::sample::select(b"ab,\"\n\r ".to_vec()),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..400)
    }

    proptest! {
        #[test]
        fn records_match_the_csv_crate_however_the_input_is_cut(
            input in csv_bytes(),
            mut cuts in prop::collection::vec(0..400usize, 0..8),
        ) {
            cuts.sort_unstable();
            let roomy = ParseLimits { max_columns: 1000, max_field_chars: 1000 };
            prop_assert_eq!(records(&input, &cuts, roomy), reference(&input));
        }

        #[test]
        fn tight_limits_reject_exactly_the_rows_that_break_them(
            input in csv_bytes(),
            mut cuts in prop::collection::vec(0..400usize, 0..8),
        ) {
            cuts.sort_unstable();
            let mut got = Vec::new();
            feed_cut(&input, &cuts, LIMITS, &mut |r| got.push((r.fields, r.check(2, &LIMITS))));
            let expected = reference(&input);
            prop_assert_eq!(got.len(), expected.len(), "a row lost or invented");
            for ((fields, item), fields_expected) in got.into_iter().zip(expected) {
                prop_assert_eq!(fields, fields_expected.len());
                let text: Option<Vec<&str>> = fields_expected
                    .iter()
                    .map(|f| std::str::from_utf8(f).ok())
                    .collect();
                let valid = text.filter(|cells| {
                    cells.len() == 2
                        && cells.iter().all(|c| c.chars().count() <= LIMITS.max_field_chars)
                });
                match (item, valid) {
                    (Item::Row(packed), Some(cells)) => prop_assert_eq!(cells::decode(&packed), cells),
                    (Item::Reject(_), None) => {}
                    (item, valid) => prop_assert!(false, "{item:?} for {valid:?}"),
                }
            }
        }
    }
}
