//! `GET /csv?rows=N`: mock CSV (`id,name,email,city,amount,date`) generated as it is sent;
//! `GET /data.csv`: a 100-row sample of it, kept in the repository.
//!
//! Each row is a pure function of its id (a SplitMix64 hash), so the data looks random yet is
//! the same on every request, and any row can be produced without the ones before it.

use std::fmt::Write;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use time::{Date, Duration, Month};

use super::views;
use crate::AppState;
use crate::web::error::{ApiError, FieldError};

pub const HEADER: &str = "id,name,email,city,amount,date\n";
/// Rows per chunk of the response body: big enough to be cheap, small enough to stay bounded.
pub const ROWS_PER_CHUNK: u64 = 1000;

const FIRST: &[&str] = &[
    "Ada", "Alan", "Amara", "Ben", "Carla", "Chen", "Dmitri", "Elena", "Farah", "Grace", "Hugo",
    "Ines", "Jonas", "Kenji", "Lena", "Marta", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami",
    "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Nguyen",
    "Smith",
    "Garcia",
    "Müller",
    "Rossi",
    "Kowalski",
    "Okafor",
    "Tanaka",
    "Silva",
    "Dubois",
    "Haddad",
    "Novak",
    "Johansson",
    "Patel",
    "O'Brien",
    "Kim",
    "Fischer",
    "Moreau",
    "Costa",
    "Lindqvist",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "mail.example", "corp.example"];
const CITIES: &[&str] = &[
    "Lisbon",
    "Berlin",
    "Osaka",
    "Toronto",
    "Nairobi",
    "Lyon",
    "Kraków",
    "Austin",
    "Melbourne",
    "Bogotá",
    "Oslo",
    "Seoul",
    "Dublin",
    "Porto",
    "Montréal",
    "Cape Town",
];

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pick<'a>(list: &[&'a str], n: u64) -> &'a str {
    list[(n % list.len() as u64) as usize]
}

/// Appends row `id` (1-based), with its line break.
pub fn push_row(out: &mut String, id: u64) {
    let h = mix(id);
    let first = pick(FIRST, h);
    let last = pick(LAST, h >> 8);
    let user: String = last
        .replace('ü', "u")
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    let domain = pick(DOMAINS, h >> 16);
    let city = pick(CITIES, h >> 20);
    let cents = (h >> 28) % 500_000;
    let epoch = Date::from_calendar_date(2024, Month::January, 1).expect("valid date");
    let date = epoch + Duration::days(((h >> 48) % 730) as i64);
    let _ = writeln!(
        out,
        "{id},{first} {last},{}.{user}{}@{domain},{city},{}.{:02},{date}",
        first.to_ascii_lowercase(),
        id % 100,
        cents / 100,
        cents % 100,
    );
}

/// Rows `from..=to` as one chunk of CSV text.
pub fn chunk(from: u64, to: u64) -> String {
    let mut out = String::with_capacity(((to + 1 - from) * 64) as usize);
    for id in from..=to {
        push_row(&mut out, id);
    }
    out
}

#[derive(Deserialize)]
pub struct CsvQuery {
    rows: Option<String>,
}

/// `GET /csv?rows=N`: mock CSV, generated chunk by chunk as the client reads it.
pub async fn mock_csv(
    State(state): State<AppState>,
    Query(query): Query<CsvQuery>,
) -> Result<Response, ApiError> {
    let max = state.config.import.max_mock_rows;
    let rows = match query.rows.as_deref().map(str::trim) {
        None | Some("") => 100,
        Some(text) => text.parse::<u64>().map_err(|_| {
            FieldError::new("rows", format!("rows must be a whole number, got {text:?}"))
        })?,
    };
    if rows > max {
        return Err(FieldError::new(
            "rows",
            format!(
                "rows is {}; the limit is {}",
                views::grouped(rows),
                views::grouped(max)
            ),
        )
        .into());
    }
    // One chunk at a time: memory stays flat whatever `rows` is.
    let header =
        futures_util::stream::once(async { Ok::<_, std::convert::Infallible>(HEADER.to_string()) });
    let body = futures_util::stream::unfold(1u64, move |from| async move {
        (from <= rows).then(|| {
            let to = (from + ROWS_PER_CHUNK - 1).min(rows);
            (Ok(chunk(from, to)), to + 1)
        })
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"mock-{rows}.csv\""),
            ),
        ],
        Body::from_stream(header.chain(body)),
    )
        .into_response())
}

/// `GET /data.csv`: the sample file from the repository, built into the binary.
pub async fn data_csv() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"data.csv\"",
            ),
            // Its name stays while its content may change with a deploy.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../data.csv"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deterministic_and_well_formed() {
        let a = chunk(1, 50);
        assert_eq!(a, chunk(1, 50));
        assert_eq!(a.lines().count(), 50);
        for (i, line) in a.lines().enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 6, "{line}");
            assert_eq!(fields[0], (i + 1).to_string());
            assert!(fields[2].contains('@'), "{line}");
            assert!(fields[4].parse::<f64>().is_ok(), "{line}");
            assert_eq!(fields[5].len(), 10, "{line}");
        }
        let mut one = String::new();
        push_row(&mut one, 2);
        assert_eq!(one, a.lines().nth(1).unwrap().to_string() + "\n");
    }
}
