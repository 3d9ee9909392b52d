//! The metrics address: `GET /metrics` (OpenMetrics text) and `GET /health` (200 when the
//! sidecar can carry calls, 503 with the reason when not).

use super::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Whether the sidecar can carry calls: `Ok` with a summary, or `Err` with why not.
pub type HealthCheck = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    health: HealthCheck,
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves until `cancel`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: HealthCheck,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/health", get(healthz))
        .with_state(Served { metrics, health });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

async fn scrape(State(served): State<Served>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        served.metrics.encode(),
    )
}

async fn healthz(State(served): State<Served>) -> impl IntoResponse {
    match (served.health)() {
        Ok(summary) => (StatusCode::OK, format!("OK {summary}\n")),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("DOWN {why}\n")),
    }
}
