//! `busker ledger|tip|budget|settle|report`: parsing and printing only.

use std::path::PathBuf;

use anyhow::{Context, bail};
use busker::api::{BudgetRequest, BudgetView, LedgerView, TipRequest, TipResponse};
use busker::ledger::bench::{self, Mode};
use busker::ledger::{Body, Money, Period, Report};
use busker::node::SettleReport;
use busker::{Home, Local, Node};
use clap::Subcommand;

use super::remote::Remote;

/// `busker ledger …`.
#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    /// Print entries (newest last).
    Show {
        /// First entry to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries to print.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Re-check every hash and signature; names the first bad entry.
    Verify,
    /// Write every entry as JSON to stdout.
    Export {
        /// JSON (the only format).
        #[arg(long, required = true)]
        json: bool,
    },
    /// Measure durable signed appends and verification in a scratch ledger.
    Bench {
        /// Scratch directory (default: a temporary one). Never the node's own ledger.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Entries per mode.
        #[arg(long, default_value_t = 20_000)]
        entries: u64,
        /// Only this mode: single, batched or concurrent.
        #[arg(long)]
        mode: Option<String>,
        /// Print `acked N` after each durable append (for crash tests).
        #[arg(long)]
        acks: bool,
    },
}

/// `busker budget …`.
#[derive(Debug, Subcommand)]
pub enum BudgetAction {
    /// Set a recurring budget, split across artists by your own plays.
    Set {
        /// Whole minor units per period (e.g. 500 for 5.00 USD).
        amount: String,
        /// Currency or unit code, e.g. USD, EUR, SAT.
        unit: String,
        /// Period: day, week or month.
        #[arg(long, default_value = "month")]
        per: String,
    },
    /// Show the budget and how this period would be split now.
    Show,
}

/// Parses whole minor units; decimals are refused, so no amount is ever a float.
pub fn minor_units(amount: &str, unit: &str) -> anyhow::Result<Money> {
    let minor: u64 = amount.trim().parse().map_err(|_| {
        anyhow::anyhow!("amount {amount:?}: give whole minor units, e.g. 500 for 5.00 {unit} (no decimals)")
    })?;
    Ok(Money { minor, unit: unit.trim().to_uppercase() })
}

fn fmt_money(m: &Money) -> String {
    format!("{} {}", m.minor, m.unit)
}

fn short(s: impl ToString) -> String {
    s.to_string().chars().take(12).collect()
}

fn describe(body: &Body) -> String {
    match body {
        Body::Play { track, artist, ms, hour, via } => format!(
            "play   track {} by {} for {:.1} s, {} {:02}h UTC{}",
            track.short(),
            short(artist),
            *ms as f64 / 1000.0,
            busker::time::date_of_day((hour / 86_400) as u32),
            hour % 86_400 / 3_600,
            via.map(|v| format!(" via {}", short(v))).unwrap_or_default()
        ),
        Body::Tip { artist, amount, budget } => format!(
            "tip    {} to {}{}",
            fmt_money(amount),
            short(artist),
            if budget.is_some() { " (budget)" } else { "" }
        ),
        Body::TipState { artist, n, .. } => format!("state  settlement {n} prepared for {}", short(artist)),
        Body::Receipt { artist, n, .. } => format!("receipt settlement {n} countersigned by {}", short(artist)),
    }
}

pub fn ledger(home: &Home, remote: Option<Remote>, action: LedgerAction) -> anyhow::Result<()> {
    let local = match (&remote, &action) {
        (None, LedgerAction::Show { .. } | LedgerAction::Verify | LedgerAction::Export { .. }) => {
            Some(Local::open(home)?)
        }
        _ => None,
    };
    // One page of entries, from the daemon or the data directory (the same bounded read).
    let page = |from: u64, limit: u64| -> anyhow::Result<LedgerView> {
        match (&remote, &local) {
            (Some(r), _) => r.get(&format!("/v1/ledger?from={from}&limit={limit}")),
            (None, Some(l)) => Ok(busker::api::page(l, from, limit)?),
            (None, None) => bail!("the data directory is not open"),
        }
    };
    match action {
        LedgerAction::Show { from, limit } => {
            let view = page(from, limit)?;
            for e in &view.entries {
                println!("{:>6}  {}", e.seq, describe(&e.body));
            }
            eprintln!("{} entries in all, signed by node key {}", view.len, view.signer);
        }
        LedgerAction::Verify => {
            let n: u64 = match (&remote, &local) {
                (Some(r), _) => r.post("/v1/ledger/verify", &serde_json::json!({}))?,
                (None, Some(l)) => l.ledger.verify()?,
                (None, None) => bail!("the data directory is not open"),
            };
            println!("ledger OK: {n} entries, every hash and signature checked");
        }
        LedgerAction::Export { .. } => {
            // Page by page: the daemon answers at most MAX_PAGE entries per request.
            let mut view = page(0, busker::api::MAX_PAGE)?;
            while (view.entries.len() as u64) < view.len {
                let next = page(view.entries.len() as u64, busker::api::MAX_PAGE)?;
                if next.entries.is_empty() {
                    break;
                }
                view.entries.extend(next.entries);
            }
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        LedgerAction::Bench { dir, entries, mode, acks } => run_bench(dir, entries, mode.as_deref(), acks)?,
    }
    Ok(())
}

fn run_bench(dir: Option<PathBuf>, n: u64, mode: Option<&str>, acks: bool) -> anyhow::Result<()> {
    // A scratch directory only when none is given: a caller that names one (the kill -9 test)
    // kills this process, and an unnamed one would then be left behind.
    let (dir, _tmp) = super::dir_or_temp(dir, "busker-ledger-bench-")?;
    let modes = match mode {
        None => vec![Mode::Single, Mode::Batched, Mode::Concurrent],
        Some("single") => vec![Mode::Single],
        Some("batched") => vec![Mode::Batched],
        Some("concurrent") => vec![Mode::Concurrent],
        Some(m) => bail!("mode {m:?}: use single, batched or concurrent"),
    };
    let ledger = bench::scratch(&dir)?;
    let ack = |seq: u64| {
        if acks {
            println!("acked {seq}");
        }
    };
    for m in modes {
        let took = bench::appends(&ledger, n, m, &ack)?;
        eprintln!("{m:?}: {n} signed durable appends in {took:.2?} = {:.0}/s", n as f64 / took.as_secs_f64());
    }
    let (count, took) = bench::verify(&ledger)?;
    eprintln!("verify: {count} entries in {took:.2?} = {:.0}/s (batch signatures)", count as f64 / took.as_secs_f64());
    Ok(())
}

pub fn tip(remote: Option<Remote>, home: &Home, artist: String, amount: Money) -> anyhow::Result<()> {
    let req = TipRequest { artist, amount };
    let r: TipResponse = match remote {
        Some(r) => r.post("/v1/tip", &req)?,
        None => busker::api::tip(&Local::open(home)?, req)?,
    };
    let amount = match &r.entry.body {
        Body::Tip { amount, .. } => fmt_money(amount),
        _ => String::new(),
    };
    println!("tip of {amount} to {} recorded (ledger entry {})", r.name, r.entry.seq);
    println!("it is settled with the artist's node at the next `busker settle` (the daemon also settles periodically)");
    match r.payment {
        Some(rail) => println!("pay it at: {rail}  (money moves outside busker; the countersigned state is the proof)"),
        None => println!("{} names no payment rail yet; the countersigned state records what you owe", r.name),
    }
    Ok(())
}

pub fn budget(remote: Option<Remote>, home: &Home, action: BudgetAction) -> anyhow::Result<()> {
    let view: BudgetView = match action {
        BudgetAction::Set { amount, unit, per } => {
            let req = BudgetRequest { amount: minor_units(&amount, &unit)?, per: per.parse::<Period>()? };
            match remote {
                Some(r) => r.post("/v1/budget", &req)?,
                None => {
                    let local = Local::open(home)?;
                    busker::ledger::Budget::set(
                        &local.ledger,
                        &busker::ledger::Budget { amount: req.amount, per: req.per },
                        busker::time::unix_now(),
                    )?;
                    busker::api::budget_view(&local)?
                }
            }
        }
        BudgetAction::Show => match remote {
            Some(r) => r.get("/v1/budget")?,
            None => busker::api::budget_view(&Local::open(home)?)?,
        },
    };
    match &view.budget {
        None => println!("no budget set (busker budget set 500 USD --per month)"),
        Some(b) => {
            println!(
                "budget: {} per {}, split by your plays; allocated as tips when each period ends",
                fmt_money(&b.amount),
                format!("{:?}", b.per).to_lowercase()
            );
            if view.current.is_empty() {
                println!("no plays yet this period");
            }
            for (artist, minor) in &view.current {
                println!("  {}  {minor} {}", artist, b.amount.unit);
            }
        }
    }
    Ok(())
}

pub fn settle(remote: Option<Remote>, home: &Home, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let report: SettleReport = match remote {
        Some(r) => r.post("/v1/settle", &serde_json::json!({}))?,
        None => runtime.block_on(async {
            // No daemon: run the node just for this settlement, joining through the
            // configured bootstrap peers (and mDNS if enabled).
            let node = Node::builder(Local::open(home)?).settle_every(std::time::Duration::ZERO).spawn().await?;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let r = node.settle().await;
            node.shutdown().await;
            Ok::<_, anyhow::Error>(r?)
        })?,
    };
    for s in &report.settled {
        let totals: Vec<String> = s.totals.iter().map(fmt_money).collect();
        println!(
            "settled with {}: settlement {}, {} play(s) reported, tips to date {}",
            s.artist,
            s.n,
            s.plays,
            if totals.is_empty() { "none".into() } else { totals.join(", ") }
        );
    }
    for (artist, why) in &report.pending {
        println!("pending {artist}: {why}");
    }
    if report.settled.is_empty() && report.pending.is_empty() {
        println!("nothing to settle");
    }
    Ok(())
}

pub fn report(remote: Option<Remote>, home: &Home, json: bool, csv: bool) -> anyhow::Result<()> {
    let r: Report = match remote {
        Some(r) => r.get("/v1/report")?,
        None => busker::api::artist_report(&Local::open(home)?).context("the report is for an artist's node")?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    if csv {
        println!("date,track,title,plays,ms,listeners");
        for row in &r.plays {
            let title = row.title.clone().unwrap_or_default().replace('"', "\"\"");
            println!("{},{},\"{}\",{},{},{}", row.date, row.track, title, row.plays, row.ms, row.listeners);
        }
        return Ok(());
    }
    println!(
        "plays per track per day ({} listener pseudonyms in all, {} countersigned settlements):",
        r.listeners, r.receipts
    );
    for row in &r.plays {
        println!(
            "  {}  {:<32} {:>5} plays {:>8.1} min  {:>4} listeners",
            row.date,
            row.title.clone().unwrap_or_else(|| row.track.short()),
            row.plays,
            row.ms as f64 / 60_000.0,
            row.listeners
        );
    }
    for (sharer, n) in &r.passes {
        println!("passes credited to sharer {}: {n}", short(sharer));
    }
    for u in &r.tips {
        println!("tips: {} {} in all", u.total, u.unit);
        for (k, v) in &u.recipients {
            println!("  owed to {}: {v} {}", short(k), u.unit);
        }
        for (k, v) in &u.referral {
            println!("  owed to sharer {}: {v} {}", short(k), u.unit);
        }
    }
    Ok(())
}
