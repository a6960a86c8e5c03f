//! The upload as it arrives: sniffed, parsed and counted chunk by chunk, with every limit
//! checked on the way, so nothing depends on having the whole file.

use super::parse::{Item, ParseLimits, Parser, Record};

/// Why an upload as a whole is refused (rows are rejected one by one instead).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 415: not text at all.
    NotCsv(String),
    /// 422: a CSV we cannot import.
    Invalid(String),
    /// 413: over a size limit.
    TooLarge(String),
}

/// Bytes looked at to tell text from binary.
const SNIFF: usize = 1024;

pub struct Intake {
    parser: Parser,
    limits: ParseLimits,
    max_rows: u64,
    max_bytes: u64,
    pub header: Option<Vec<String>>,
    items: Vec<Item>,
    /// File bytes received so far.
    pub bytes: u64,
    /// Data records seen so far (accepted or not).
    pub records: u64,
    /// The first bytes, held until there are enough to tell text from binary.
    head: Option<Vec<u8>>,
    refusal: Option<Refusal>,
}

impl Intake {
    pub fn new(limits: ParseLimits, max_rows: u64, max_bytes: u64) -> Intake {
        Intake {
            parser: Parser::new(limits),
            limits,
            max_rows,
            max_bytes,
            header: None,
            items: Vec::new(),
            bytes: 0,
            records: 0,
            head: Some(Vec::with_capacity(SNIFF)),
            refusal: None,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.max_bytes {
            return Err(Refusal::TooLarge(format!(
                "the file is larger than the {} limit",
                super::views::megabytes(self.max_bytes)
            )));
        }
        if let Some(head) = &mut self.head {
            head.extend_from_slice(chunk);
            if head.len() < SNIFF {
                return Ok(());
            }
            return self.sniff();
        }
        self.run(|parser, emit| parser.feed(chunk, emit))
    }

    /// Looks at the file's first bytes (before parsing any) and parses them if they are text.
    fn sniff(&mut self) -> Result<(), Refusal> {
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        if head.contains(&0) {
            return Err(Refusal::NotCsv(
                "this is not a CSV file: it contains binary data".into(),
            ));
        }
        self.run(|parser, emit| parser.feed(&head, emit))
    }

    /// The upload has ended: flush the last record and refuse files with nothing to import.
    pub fn end(&mut self) -> Result<(), Refusal> {
        self.sniff()?;
        self.run(|parser, emit| parser.finish(emit))?;
        if self.header.is_none() {
            return Err(Refusal::Invalid("the file is empty".into()));
        }
        if self.records == 0 {
            return Err(Refusal::Invalid("the file has a header but no rows".into()));
        }
        Ok(())
    }

    /// Items parsed since the last call.
    pub fn take(&mut self) -> Vec<Item> {
        std::mem::take(&mut self.items)
    }

    pub fn pending(&self) -> usize {
        self.items.len()
    }

    fn run(
        &mut self,
        drive: impl FnOnce(&mut Parser, &mut dyn FnMut(Record<'_>)),
    ) -> Result<(), Refusal> {
        let Intake {
            parser,
            limits,
            max_rows,
            header,
            items,
            records,
            refusal,
            ..
        } = self;
        let mut emit = |r: Record<'_>| {
            if refusal.is_some() {
                return;
            }
            match header {
                None => match r.header(limits) {
                    Ok(names) => *header = Some(names),
                    Err(e) => *refusal = Some(Refusal::Invalid(e)),
                },
                Some(names) => {
                    *records += 1;
                    if *records > *max_rows {
                        *refusal = Some(Refusal::TooLarge(format!(
                            "the file has more than {} rows, the limit",
                            super::views::grouped(*max_rows)
                        )));
                    } else {
                        items.push(r.check(names.len(), limits));
                    }
                }
            }
        };
        drive(parser, &mut emit);
        match self.refusal.clone() {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_columns: 10,
        max_field_chars: 50,
    };

    fn intake(input: &[u8]) -> Result<(Vec<String>, Vec<Item>), Refusal> {
        let mut intake = Intake::new(LIMITS, 3, 1000);
        for chunk in input.chunks(5) {
            intake.push(chunk)?;
        }
        intake.end()?;
        Ok((intake.header.clone().unwrap(), intake.take()))
    }

    #[test]
    fn whole_file_refusals() {
        assert!(matches!(intake(b""), Err(Refusal::Invalid(m)) if m.contains("empty")));
        assert!(matches!(intake(b"\n\n"), Err(Refusal::Invalid(m)) if m.contains("empty")));
        assert!(matches!(intake(b"a,b\n"), Err(Refusal::Invalid(m)) if m.contains("no rows")));
        assert!(
            matches!(intake(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Err(Refusal::NotCsv(m)) if m.contains("binary"))
        );
        assert!(
            matches!(intake(b"caf\xe9,b\n1,2\n"), Err(Refusal::Invalid(m)) if m.contains("UTF-8"))
        );
        assert!(
            matches!(intake(b"a\n1\n2\n3\n4\n"), Err(Refusal::TooLarge(m)) if m.contains("more than 3 rows"))
        );
        let big = vec![b'x'; 1001];
        assert!(matches!(intake(&big), Err(Refusal::TooLarge(m)) if m.contains("larger")));
    }

    #[test]
    fn rows_and_rejects_in_file_order() {
        let (header, items) = intake(b"a,b\n1,2\n3\n").unwrap();
        assert_eq!(header, ["a", "b"]);
        assert!(matches!(&items[0], Item::Row(_)));
        assert!(matches!(&items[1], Item::Reject(r) if r.row == 3));
    }
}
