//! What an upload must be before its rows are read: a multipart form with a part named `file`,
//! within the size limit; and the name shown for it. Rows are checked as they arrive (`intake`).

use axum::extract::multipart::MultipartError;
use axum::http::{HeaderMap, StatusCode, header};

use super::intake::Refusal;
use super::views;
use crate::web::error::{ApiError, FieldError};

/// Multipart framing around the file (boundaries, part headers) that a request may add to it.
pub const MULTIPART_SLACK: u64 = 64 * 1024;

/// The upload's announced size (`Content-Length`), if any; a request that announces more than
/// the limit, or is not multipart, is refused before anything is read.
pub fn announced_size(headers: &HeaderMap, max_upload_bytes: u64) -> Result<Option<u64>, ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > max_upload_bytes + MULTIPART_SLACK) {
        return Err(too_large(&format!(
            "the file is larger than the {} limit",
            views::megabytes(max_upload_bytes)
        )));
    }
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the file as multipart/form-data, in a part named \"file\"",
        ));
    }
    Ok(announced)
}

/// A multipart body without the `file` part.
pub fn no_file() -> ApiError {
    FieldError::new(
        "file",
        "no file was sent: put the CSV in a multipart part named \"file\"",
    )
    .into()
}

/// Why the file as a whole was refused, as an answer.
pub fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotCsv(m) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
        Refusal::Invalid(m) => FieldError::new("file", m).into(),
        Refusal::TooLarge(m) => too_large(&m),
    }
}

/// A multipart body that could not be read.
pub fn broken(e: MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large("the upload is larger than the limit");
    }
    // The client stopped sending (the request body timeout): its doing, not the server's.
    let stalled = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
        .any(|e| e.is::<tower_http::timeout::TimeoutError>());
    if stalled {
        return ApiError::new(StatusCode::REQUEST_TIMEOUT, "the upload stopped arriving");
    }
    ApiError::new(
        status,
        format!("the upload could not be read: {}", e.body_text()),
    )
}

fn too_large(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: message.to_string(),
        field: Some("file".to_string()),
    }
}

/// The name shown for the file: its last path component, bounded, or a stand-in.
pub fn clean_name(name: Option<&str>) -> String {
    let name = name
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .trim();
    let name: String = name.chars().filter(|c| !c.is_control()).take(100).collect();
    if name.is_empty() {
        "upload.csv".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_name_is_the_last_path_component_without_control_characters() {
        assert_eq!(clean_name(Some("C:\\Users\\me\\data.csv")), "data.csv");
        assert_eq!(clean_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_name(Some("a\u{7}b.csv")), "ab.csv");
        assert_eq!(clean_name(Some("  ")), "upload.csv");
        assert_eq!(clean_name(None), "upload.csv");
        assert_eq!(clean_name(Some(&"x".repeat(300))).len(), 100);
    }

    #[test]
    fn only_multipart_within_the_limit_is_read() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let multipart = ("content-type", "multipart/form-data; boundary=x");
        assert_eq!(
            announced_size(&headers(&[multipart, ("content-length", "10")]), 100).unwrap(),
            Some(10)
        );
        let over = (100 + MULTIPART_SLACK + 1).to_string();
        let e = announced_size(&headers(&[multipart, ("content-length", &over)]), 100).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let e = announced_size(&headers(&[("content-type", "text/csv")]), 100).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
