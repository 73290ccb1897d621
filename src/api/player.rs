//! Playback routes: start a play on the daemon's player, read its state, control it.
//!
//! `POST /v1/play` with `"out": "pipe"` answers with the raw PCM itself (s16le, interleaved),
//! so `busker play … --out -` works while a daemon holds the data directory.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::control::{ApiFailure, ApiResult, AppState, blocking};
use crate::player::{Control, NullSink, PlayError, PlayOptions, QueueItem, RawSink, Sink, Status, WavSink};

/// Where the daemon's player sends audio.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Output {
    /// Real-time null sink (measurement).
    Null,
    /// The speakers (builds with the `speakers` feature).
    Speakers,
    /// A WAV file at this (absolute) path.
    Wav(std::path::PathBuf),
    /// Raw PCM in the HTTP response.
    Pipe,
}

/// `POST /v1/play`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlayRequest {
    /// Track or release id (or prefix), or search words.
    pub query: String,
    /// How to play.
    #[serde(default)]
    pub options: PlayOptions,
    /// Where to.
    pub out: Output,
}

/// Answer to `POST /v1/play` (except pipes, which get audio).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlayStarted {
    /// The queue, in playing order.
    pub queue: Vec<QueueItem>,
    /// The output.
    pub output: String,
}

/// `POST /v1/player/seek`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeekRequest {
    /// Position in milliseconds.
    pub position_ms: u64,
}

/// `POST /v1/player/queue`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueueRequest {
    /// Track or release id (or prefix), or search words.
    pub query: String,
}

impl From<PlayError> for ApiFailure {
    fn from(e: PlayError) -> Self {
        crate::Error::Play(e).into()
    }
}

/// Resolves a query to a queue on the blocking pool (it reads the store).
async fn resolve(s: &AppState, query: String) -> Result<Vec<QueueItem>, ApiFailure> {
    let Json(items) = blocking(&s.node, move |l| Ok(crate::player::resolve(&l.store, &query)?)).await?;
    Ok(items)
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/play", post(play))
        .route("/v1/player", get(state))
        .route("/v1/player/pause", post(|s| control(s, Control::Pause)))
        .route("/v1/player/resume", post(|s| control(s, Control::Resume)))
        .route("/v1/player/next", post(|s| control(s, Control::Next)))
        .route("/v1/player/stop", post(|s| control(s, Control::Stop)))
        .route("/v1/player/seek", post(seek))
        .route("/v1/player/queue", post(enqueue))
}

/// Writes into a bounded channel that an HTTP body drains; a gone client is a broken pipe.
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(buf.to_vec()).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn speakers() -> Result<Box<dyn Sink>, ApiFailure> {
    #[cfg(feature = "speakers")]
    {
        crate::player::speakers::Speakers::open()
            .map(|s| Box::new(s) as Box<dyn Sink>)
            .map_err(|e| ApiFailure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
    #[cfg(not(feature = "speakers"))]
    Err(ApiFailure(
        StatusCode::BAD_REQUEST,
        "this busker was built without speakers (cargo feature `speakers`); use a WAV file or a pipe".into(),
    ))
}

async fn play(State(s): State<AppState>, Json(r): Json<PlayRequest>) -> Result<Response, ApiFailure> {
    let items = resolve(&s, r.query.clone()).await?;
    let (sink, pipe): (Box<dyn Sink>, _) = match &r.out {
        Output::Null => (Box::new(NullSink::new()), None),
        Output::Speakers => (speakers()?, None),
        Output::Wav(path) => {
            if !path.is_absolute() {
                return Err(ApiFailure(StatusCode::BAD_REQUEST, format!("{}: give an absolute path", path.display())));
            }
            let sink = WavSink::create(path).map_err(|e| ApiFailure(StatusCode::BAD_REQUEST, e.to_string()))?;
            (Box::new(sink), None)
        }
        Output::Pipe => {
            let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
            (Box::new(RawSink::new(ChannelWriter(tx), "the client's pipe")), Some(rx))
        }
    };
    let player = s.node.play(items.clone(), sink, r.options)?;
    match pipe {
        None => Ok(Json(PlayStarted { queue: items, output: player.status().output }).into_response()),
        Some(rx) => {
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
            });
            Ok(([(header::CONTENT_TYPE, "audio/L16")], Body::from_stream(stream)).into_response())
        }
    }
}

fn current(s: &AppState) -> Result<crate::player::Player, ApiFailure> {
    s.node
        .player()
        .ok_or_else(|| ApiFailure(StatusCode::NOT_FOUND, "nothing has played since the daemon started".into()))
}

async fn state(State(s): State<AppState>) -> ApiResult<Status> {
    Ok(Json(current(&s)?.status()))
}

async fn control(State(s): State<AppState>, c: Control) -> ApiResult<Status> {
    let p = current(&s)?;
    // `apply` waits for the player thread: off the runtime.
    blocking(&s.node, move |_| Ok(p.apply(c)?)).await
}

async fn seek(State(s): State<AppState>, Json(r): Json<SeekRequest>) -> ApiResult<Status> {
    control(State(s), Control::Seek(r.position_ms)).await
}

async fn enqueue(State(s): State<AppState>, Json(r): Json<QueueRequest>) -> ApiResult<Status> {
    let items = resolve(&s, r.query).await?;
    control(State(s), Control::Enqueue(items)).await
}
