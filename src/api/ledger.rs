//! Ledger routes: entries, verification, tips, the budget, settlement and the artist report.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::control::{ApiResult, AppState, blocking};
use crate::Error;
use crate::catalog::ArtistKey;
use crate::ledger::{Budget, Entry, Money, Period, Report};
use crate::node::SettleReport;

/// Most entries one `GET /v1/ledger` returns.
pub const MAX_PAGE: u64 = 10_000;

/// `POST /v1/tip`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TipRequest {
    /// Artist name or key.
    pub artist: String,
    /// Amount.
    pub amount: Money,
}

/// Answer to `POST /v1/tip`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TipResponse {
    /// The artist's key.
    pub artist: ArtistKey,
    /// The artist's name.
    pub name: String,
    /// Where the artist takes payment, if their catalog names a rail.
    pub payment: Option<String>,
    /// The ledger entry recorded.
    pub entry: Entry,
}

/// `POST /v1/budget`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BudgetRequest {
    /// Amount per period.
    pub amount: Money,
    /// Period.
    pub per: Period,
}

/// Answer to `GET /v1/budget` and `POST /v1/budget`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BudgetView {
    /// The budget, if set.
    pub budget: Option<Budget>,
    /// How the current period would be split if it ended now.
    pub current: Vec<(ArtistKey, u64)>,
}

/// `GET /v1/ledger` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct LedgerView {
    /// Entries in the log.
    pub len: u64,
    /// The key that signs them (the node key).
    pub signer: ArtistKey,
    /// The entries asked for.
    pub entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Page {
    from: Option<u64>,
    limit: Option<u64>,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/ledger", get(show))
        .route("/v1/ledger/verify", post(verify))
        .route("/v1/tip", post(tip_route))
        .route("/v1/budget", get(budget).post(set_budget))
        .route("/v1/settle", post(settle))
        .route("/v1/report", get(report))
}

/// Reads a page of entries.
pub fn page(local: &crate::Local, from: u64, limit: u64) -> crate::Result<LedgerView> {
    let ledger = &local.ledger;
    let entries = ledger.entries(from).take(limit.min(MAX_PAGE) as usize).collect::<Result<Vec<_>, _>>()?;
    Ok(LedgerView { len: ledger.len(), signer: ArtistKey(ledger.signer().to_bytes()), entries })
}

async fn show(State(s): State<AppState>, Query(p): Query<Page>) -> ApiResult<LedgerView> {
    blocking(&s.node, move |l| page(l, p.from.unwrap_or(0), p.limit.unwrap_or(MAX_PAGE))).await
}

async fn verify(State(s): State<AppState>) -> ApiResult<u64> {
    blocking(&s.node, |l| Ok(l.ledger.verify()?)).await
}

/// Records a tip and describes it, with the artist's payment rail.
pub fn tip(local: &crate::Local, r: TipRequest) -> crate::Result<TipResponse> {
    let (catalog, entry) = local.tip(&r.artist, r.amount)?;
    let profile = &catalog.catalog().profile;
    Ok(TipResponse { artist: catalog.artist(), name: profile.name.clone(), payment: profile.payment.clone(), entry })
}

async fn tip_route(State(s): State<AppState>, Json(r): Json<TipRequest>) -> ApiResult<TipResponse> {
    blocking(&s.node, move |l| tip(l, r)).await
}

/// The budget and the current period's split.
pub fn budget_view(local: &crate::Local) -> crate::Result<BudgetView> {
    let now = crate::time::unix_now();
    Ok(match Budget::preview(&local.ledger, now)? {
        Some((budget, current)) => BudgetView { budget: Some(budget), current },
        None => BudgetView { budget: None, current: Vec::new() },
    })
}

async fn budget(State(s): State<AppState>) -> ApiResult<BudgetView> {
    blocking(&s.node, budget_view).await
}

async fn set_budget(State(s): State<AppState>, Json(r): Json<BudgetRequest>) -> ApiResult<BudgetView> {
    blocking(&s.node, move |l| {
        Budget::set(&l.ledger, &Budget { amount: r.amount, per: r.per }, crate::time::unix_now())?;
        budget_view(l)
    })
    .await
}

async fn settle(State(s): State<AppState>) -> ApiResult<SettleReport> {
    Ok(Json(s.node.settle().await?))
}

/// The artist report for this node's own catalog.
pub fn artist_report(local: &crate::Local) -> crate::Result<Report> {
    if local.identity.artist_key().is_none() {
        return Err(Error::Identity(crate::identity::IdentityError::NoArtistKey));
    }
    let catalog = local.own_catalog()?;
    Ok(local.ledger.report(catalog.as_ref().map(|c| c.catalog()))?)
}

async fn report(State(s): State<AppState>) -> ApiResult<Report> {
    blocking(&s.node, artist_report).await
}
