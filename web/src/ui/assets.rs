//! Static files served from the binary: the stylesheet, the page script, and the pinned
//! asciinema-player and Chart.js (see `web/assets/vendor/README.md`). Nothing is fetched from elsewhere.

use crate::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "gatehouse.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/gatehouse.css"),
    ),
    (
        "gatehouse.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/gatehouse.js"),
    ),
    (
        "replay.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/replay.js"),
    ),
    (
        "asciinema-player.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/asciinema-player.min.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard.js"),
    ),
    (
        "chart.umd.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/chart.umd.min.js"),
    ),
    (
        "asciinema-player.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/asciinema-player.css"),
    ),
];

pub fn routes() -> Router<AppState> {
    Router::new().route("/assets/{file}", get(file))
}

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
