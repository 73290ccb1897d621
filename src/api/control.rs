//! Control API routes. Thin: each handler calls one [`Node`] method.

use std::path::PathBuf;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::catalog::publish::{PublishOptions, PublishReport};
use crate::catalog::{ArtistKey, ContentId, Licence, Splits};
use crate::{Error, Node};

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) node: Node,
    token: String,
    shutdown: tokio::sync::mpsc::Sender<()>,
}

/// `POST /v1/publish`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PublishRequest {
    /// Folder to publish (as seen by the daemon).
    pub dir: PathBuf,
    /// Release title.
    pub title: Option<String>,
    /// Release date.
    pub date: Option<String>,
    /// Licence.
    pub licence: Licence,
    /// Tip splits.
    pub splits: Option<Splits>,
    /// Skip undecodable files.
    pub skip_bad: bool,
    /// Copy the files into the store instead of serving them in place.
    #[serde(default)]
    pub copy: bool,
}

/// `POST /v1/get`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GetRequest {
    /// Release or track id (or prefix).
    pub id: String,
    /// Where to write the files; none: only fetch and pin.
    pub out_dir: Option<PathBuf>,
}

/// Answer to `POST /v1/get`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GetResponse {
    /// What was fetched.
    pub report: crate::net::FetchReport,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// `POST /v1/export`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportRequest {
    /// Release or track id (or prefix).
    pub id: String,
    /// Output folder.
    pub out_dir: PathBuf,
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
}

#[derive(Deserialize)]
struct CatalogQuery {
    artist: Option<String>,
}

/// An error answer: JSON `{"error": "…"}` with a fitting status.
pub(super) struct ApiFailure(pub(super) StatusCode, pub(super) String);

impl From<Error> for ApiFailure {
    fn from(e: Error) -> Self {
        use crate::catalog::StoreError;
        use crate::player::PlayError;
        let status = match &e {
            Error::Play(PlayError::NothingFound(_)) => StatusCode::NOT_FOUND,
            Error::Play(PlayError::Ambiguous(_) | PlayError::BadPosition(_)) => StatusCode::BAD_REQUEST,
            Error::Play(PlayError::NotPlaying) => StatusCode::CONFLICT,
            Error::Play(PlayError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(StoreError::NotFound(_) | StoreError::Ambiguous(_)) => StatusCode::NOT_FOUND,
            Error::Ledger(crate::ledger::LedgerError::Refused(_)) => StatusCode::BAD_REQUEST,
            Error::Publish(_)
            | Error::Catalog(_)
            | Error::Media(_)
            | Error::Net(crate::net::NetError::BadAddress(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiFailure>;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given =
        req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.trim().as_bytes(), state.token.as_bytes()) => next.run(req).await,
        _ => ApiFailure(StatusCode::UNAUTHORIZED, "missing or wrong API token".into()).into_response(),
    }
}

/// The control API. `shutdown` receives a message when a client asks the daemon to stop.
pub fn router(node: Node, token: String, shutdown: tokio::sync::mpsc::Sender<()>) -> Router {
    let state = AppState { node, token, shutdown };
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/search", get(search))
        .route("/v1/catalog", get(catalog))
        .route("/v1/publish", post(publish))
        .route("/v1/get", post(fetch))
        .route("/v1/downloads", get(downloads))
        .route("/v1/export", post(export))
        .route("/v1/verify", post(verify))
        .route("/v1/shutdown", post(shutdown_route))
        .merge(super::ledger::routes())
        .merge(super::player::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Runs `f` on the blocking pool with the node's local state (disk work off the runtime).
pub(super) async fn blocking<T: Send + 'static>(
    node: &Node,
    f: impl FnOnce(&crate::Local) -> crate::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let node = node.clone();
    let out = tokio::task::spawn_blocking(move || f(node.local()))
        .await
        .map_err(|_| ApiFailure(StatusCode::INTERNAL_SERVER_ERROR, "blocking task failed".into()))??;
    Ok(Json(out))
}

async fn status(State(s): State<AppState>) -> ApiResult<crate::net::Status> {
    Ok(Json(s.node.status().await?))
}

async fn peers(State(s): State<AppState>) -> ApiResult<Vec<crate::net::PeerInfo>> {
    Ok(Json(s.node.peers().await?))
}

async fn search(
    State(s): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Vec<crate::catalog::search::Hit>> {
    Ok(Json(s.node.search(&q.q)?))
}

async fn catalog(State(s): State<AppState>, Query(q): Query<CatalogQuery>) -> ApiResult<crate::catalog::Catalog> {
    let local = s.node.local();
    let key = match q.artist {
        Some(a) => {
            a.parse::<ArtistKey>().map_err(|e| ApiFailure(StatusCode::BAD_REQUEST, format!("artist key: {e}")))?
        }
        None => local
            .identity
            .artist_key()
            .ok_or_else(|| ApiFailure(StatusCode::BAD_REQUEST, "this node has no artist key; name an artist".into()))?,
    };
    let signed = local.store.catalog(&key).map_err(Error::from)?;
    let signed =
        signed.ok_or_else(|| ApiFailure(StatusCode::NOT_FOUND, format!("no catalog stored for artist {key}")))?;
    Ok(Json(signed.catalog().clone()))
}

async fn publish(State(s): State<AppState>, Json(r): Json<PublishRequest>) -> ApiResult<PublishReport> {
    let opts = PublishOptions {
        title: r.title,
        date: r.date,
        licence: r.licence,
        splits: r.splits,
        skip_bad: r.skip_bad,
        copy: r.copy,
    };
    Ok(Json(s.node.publish(&r.dir, opts).await?))
}

async fn fetch(State(s): State<AppState>, Json(r): Json<GetRequest>) -> ApiResult<GetResponse> {
    match r.out_dir {
        Some(out) => {
            let (report, files) = s.node.get(&r.id, &out).await?;
            Ok(Json(GetResponse { report, files }))
        }
        None => Ok(Json(GetResponse { report: s.node.fetch(&r.id).await?, files: Vec::new() })),
    }
}

/// One piece of content being fetched, for `GET /v1/downloads`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Download {
    /// Content id (a track or cover).
    pub id: ContentId,
    /// Bytes stored so far.
    pub have: u64,
    /// Bytes in all (0 until the manifest has arrived).
    pub total: u64,
}

async fn downloads(State(s): State<AppState>) -> ApiResult<Vec<Download>> {
    blocking(&s.node, |l| {
        let mut out = Vec::new();
        for (id, _) in l.store.wanted().map_err(crate::Error::from)? {
            let (have, total) = l.store.progress(&id).map_err(crate::Error::from)?.unwrap_or((0, 0));
            out.push(Download { id, have, total });
        }
        Ok(out)
    })
    .await
}

async fn export(State(s): State<AppState>, Json(r): Json<ExportRequest>) -> ApiResult<Vec<PathBuf>> {
    blocking(&s.node, move |l| l.export(&r.id, &r.out_dir)).await
}

async fn verify(State(s): State<AppState>) -> ApiResult<crate::catalog::VerifyReport> {
    blocking(&s.node, |l| l.verify(&|_| {})).await
}

async fn shutdown_route(State(s): State<AppState>) -> impl IntoResponse {
    let _ = s.shutdown.try_send(());
    Json(serde_json::json!({ "stopping": true }))
}
