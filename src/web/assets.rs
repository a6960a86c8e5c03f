//! Static files, embedded in the binary so Herald stays one file to deploy.
//!
//! URLs carry a tag derived from the files' contents, so browsers may cache them for a year and
//! a new build can never be served from an old cache.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// A file of `static/`, served under its own name.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../static/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

const ASSETS: &[Asset] = &[
    asset!("htmx.min.js", JS),
    asset!("hx-sse.min.js", JS),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", SVG),
    asset!("LICENSE", "text/plain; charset=utf-8"),
];

static TAG: LazyLock<String> = LazyLock::new(|| {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in ASSETS.iter().flat_map(|a| a.bytes) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:012x}", hash & 0xffff_ffff_ffff)
});

/// Where templates find the assets, e.g. `/static/3fa9c1d2e0b4`.
pub fn prefix() -> String {
    format!("/static/{}", *TAG)
}

pub async fn serve(Path((tag, name)): Path<(String, String)>) -> Response {
    // A stale tag (a page rendered before a deploy) still gets the file, but must not cache it.
    let cache = if tag == *TAG {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    file(&name, cache)
}

/// `GET /favicon.ico`, which browsers ask for whatever the page says: the SVG icon, under a
/// name that does not change with its content, so cached for a day only.
pub async fn favicon() -> Response {
    file("favicon.svg", "public, max-age=86400")
}

fn file(name: &str, cache: &'static str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}
