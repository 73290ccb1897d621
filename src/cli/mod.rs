//! The command line: argument parsing and printing only. Every command is a library call,
//! made directly on the data directory, or through the control API when a daemon runs
//! (sled allows one process per database).

mod ledger;
mod options;
mod play;
mod remote;
mod show;

use std::path::PathBuf;

use anyhow::{Context, bail};
use busker::api::{ExportRequest, GetRequest, GetResponse, PublishRequest};
use busker::catalog::publish::{PublishEvent, PublishOptions, PublishReport};
use busker::catalog::search::Hit;
use busker::catalog::{ArtistKey, Catalog, VerifyReport};
use busker::identity::Identity;
use busker::net::{PeerInfo, Status};
use busker::{Config, Home, Local};
use clap::{Parser, Subcommand};
use remote::Remote;

/// busker: a peer-to-peer music node. Artists publish signed catalogs; fans stream, verify,
/// keep and tip, key to key.
#[derive(Debug, Parser)]
#[command(name = "busker", version, about, long_about = None)]
pub struct Cli {
    /// Data directory (default: $BUSKER_HOME, else ~/.local/share/busker).
    #[arg(long, global = true, env = "BUSKER_HOME", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// More logging (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory, config.toml and keys (add --artist to publish music).
    Init {
        /// Also create an artist key and catalog under this name.
        #[arg(long, value_name = "NAME")]
        artist: Option<String>,
    },
    /// Print this node's public keys.
    Id {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the node: join the network, seed, and serve the control API.
    Daemon {
        /// Settings file to use instead of <data dir>/config.toml.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen on this multiaddr instead of the configured ones (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Join the network through this peer (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// Turn off local-network (mDNS) discovery.
        #[arg(long)]
        no_mdns: bool,
        /// Control API address (loopback), e.g. 127.0.0.1:0.
        #[arg(long, value_name = "ADDR")]
        api: Option<String>,
    },
    /// Stop the running daemon.
    Stop,
    /// Show the running daemon's state.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the running daemon's connected peers.
    Peers {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Publish a folder of audio files as a new release.
    Publish {
        /// Folder holding the audio files (and optionally cover.jpg/png).
        dir: PathBuf,
        /// Release title (default: album tag, else folder name).
        #[arg(long)]
        title: Option<String>,
        /// Licence identifier, e.g. CC-BY-4.0 (default: from config.toml).
        #[arg(long = "license", alias = "licence", value_name = "ID")]
        licence: Option<String>,
        /// Allowed uses, overriding the licence's defaults: any of stream,download,embed,remix,commercial.
        #[arg(long, value_delimiter = ',', value_name = "USE,…")]
        uses: Option<Vec<String>>,
        /// Release date, YYYY-MM-DD (default: date tag, else today).
        #[arg(long)]
        date: Option<String>,
        /// Tip split KEY=BASIS_POINTS (repeat; must sum to 10000). KEY may be `me`.
        #[arg(long = "split", value_name = "KEY=BPS")]
        splits: Vec<String>,
        /// Share of each tip credited to the fan who passed the track on, in basis points.
        #[arg(long, default_value_t = 0, value_name = "BPS")]
        referral: u16,
        /// Publish the good files and list the bad ones instead of failing.
        #[arg(long)]
        skip_bad: bool,
        /// Copy the files into the store. By default they are served where they are, so they
        /// must stay there unchanged (`busker verify` names any that changed).
        #[arg(long)]
        copy: bool,
    },
    /// Search the catalogs this node knows for artists, releases and tracks.
    Search {
        /// Words to look for.
        #[arg(required = true)]
        words: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a release or track from the network (needs the daemon), pin it, and write it out.
    Get {
        /// Release or track id (or a unique prefix).
        id: String,
        /// Output folder (default: only fetch and pin).
        #[arg(short, long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write a release's or track's original files into a folder, byte-identical.
    Export {
        /// Release or track id (or a unique prefix of at least 4 hex digits).
        id: String,
        /// Output folder.
        out_dir: PathBuf,
    },
    /// Show a catalog (default: this node's own).
    Catalog {
        /// Artist key.
        artist: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every stored chunk and check every manifest and catalog.
    Verify,
    /// The play and tip ledger: show, verify, export, bench.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        action: ledger::LedgerAction,
    },
    /// Promise a tip to an artist, e.g. `busker tip "Loopback Trio" 500 USD` (minor units).
    Tip {
        /// Artist name or key (prefix).
        artist: String,
        /// Whole minor units, e.g. 500 for 5.00.
        amount: String,
        /// Currency or unit code, e.g. USD, EUR, SAT.
        unit: String,
    },
    /// A recurring budget split across artists by your plays.
    Budget {
        /// What to do.
        #[command(subcommand)]
        action: ledger::BudgetAction,
    },
    /// Play a track, a release or search results as they stream in (or a local audio file).
    Play(play::PlayArgs),
    /// Control the daemon's player: status, pause, resume, next, stop, seek, queue.
    Player {
        /// What to do.
        #[command(subcommand)]
        action: play::PlayerAction,
    },
    /// Settle tips and play reports with artists' nodes now.
    Settle,
    /// The artist's anonymous usage report (plays, listeners, passes, tips).
    Report {
        /// Print JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV (plays per track per day).
        #[arg(long)]
        csv: bool,
    },
    /// Run the guided tour: an artist and two fans on this machine.
    Demo {
        /// Keep the demo's data in this folder instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn absolute(p: PathBuf) -> anyhow::Result<PathBuf> {
    std::path::absolute(&p).with_context(|| format!("path {}", p.display()))
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Demo { keep } = cli.command {
        return demo(keep);
    }
    let home = Home::locate(cli.data_dir.clone())?;
    let remote = match cli.command {
        Command::Init { .. } | Command::Id { .. } | Command::Daemon { .. } => None,
        _ => Remote::detect(home.root())?,
    };
    let need_daemon =
        || anyhow::anyhow!("no daemon is running for {}: start one with `busker daemon`", home.root().display());
    match cli.command {
        Command::Init { artist } => {
            if Remote::detect(home.root())?.is_some() {
                bail!("a daemon is running for {}; stop it first (busker stop)", home.root().display());
            }
            let (node, report) = Local::init(&home, artist.as_deref())?;
            show::init(&node.identity, &report);
        }
        Command::Id { json } => show::id_as(&Identity::load(&home.keys_dir())?, json)?,
        Command::Daemon { config, listen, bootstrap, no_mdns, api } => {
            let config = match config {
                Some(path) => Config::load(&path)?,
                None => home.config()?,
            };
            let local = open_waiting(&home, config)?;
            let opts =
                busker::daemon::DaemonOptions { listen, bootstrap, mdns: no_mdns.then_some(false), api_listen: api };
            runtime()?.block_on(busker::daemon::run(local, opts, show::daemon_started))?;
            eprintln!("daemon stopped");
        }
        Command::Stop => {
            let r = remote.ok_or_else(need_daemon)?;
            let _: serde_json::Value = r.post("/v1/shutdown", &serde_json::json!({}))?;
            eprintln!("daemon stopping");
        }
        Command::Status { json } => {
            show::status(&remote.ok_or_else(need_daemon)?.get::<Status>("/v1/status")?, json)?;
        }
        Command::Peers { json } => {
            show::peers(&remote.ok_or_else(need_daemon)?.get::<Vec<PeerInfo>>("/v1/peers")?, json)?;
        }
        Command::Publish { dir, title, licence, uses, date, splits, referral, skip_bad, copy } => {
            let dir = absolute(dir)?;
            let config = home.config()?;
            let me = Identity::load(&home.keys_dir())?.artist_key();
            let licence_id = licence.unwrap_or_else(|| config.publish.default_license.clone());
            let opts = PublishOptions {
                title,
                date,
                licence: options::licence_for(&licence_id, uses.as_deref())?,
                splits: options::parse_splits(me, &splits, referral)?,
                skip_bad,
                copy,
            };
            let report: PublishReport = match remote {
                Some(r) => {
                    let req = PublishRequest {
                        dir,
                        title: opts.title,
                        date: opts.date,
                        licence: opts.licence,
                        splits: opts.splits,
                        skip_bad,
                        copy,
                    };
                    r.post("/v1/publish", &req)?
                }
                None => publish_locally(&home, &dir, &opts)?,
            };
            show::published(&report);
        }
        Command::Search { words, json } => {
            let q = words.join(" ");
            let hits: Vec<Hit> = match remote {
                Some(r) => r.get(&format!("/v1/search?q={}", remote::query(&q)))?,
                None => busker::catalog::search::search(&Local::open(&home)?.store.catalogs()?, &q),
            };
            show::hits(&hits, json)?;
        }
        Command::Get { id, out } => {
            let r = remote.ok_or_else(need_daemon)?;
            let out = out.map(absolute).transpose()?;
            eprintln!("fetching {id} …");
            let answer: GetResponse = r.with_download_bar(|| r.post("/v1/get", &GetRequest { id, out_dir: out }))?;
            show::fetched(&answer);
        }
        Command::Export { id, out_dir } => {
            let out_dir = absolute(out_dir)?;
            let files: Vec<PathBuf> = match remote {
                Some(r) => r.post("/v1/export", &ExportRequest { id, out_dir })?,
                None => Local::open(&home)?.export(&id, &out_dir)?,
            };
            for f in &files {
                println!("{}", f.display());
            }
            eprintln!("exported {} file(s), each verified against its BLAKE3 hash", files.len());
        }
        Command::Catalog { artist, json } => {
            let catalog: Catalog = match remote {
                Some(r) => r.get(&format!(
                    "/v1/catalog{}",
                    artist.map(|a| format!("?artist={}", remote::query(&a))).unwrap_or_default()
                ))?,
                None => {
                    let node = Local::open(&home)?;
                    let key = match artist {
                        Some(a) => a.parse::<ArtistKey>().with_context(|| format!("artist key {a:?}"))?,
                        None => node
                            .identity
                            .artist_key()
                            .context("this node has no artist key; name an artist: busker catalog KEY")?,
                    };
                    node.store
                        .catalog(&key)?
                        .with_context(|| format!("no catalog stored for artist {key}"))?
                        .catalog()
                        .clone()
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&catalog)?);
            } else {
                show::catalog(&catalog);
            }
        }
        Command::Verify => {
            let report: VerifyReport = match remote {
                Some(r) => r.post("/v1/verify", &serde_json::json!({}))?,
                None => Local::open(&home)?.verify(&|_| {})?,
            };
            show::verify(&report);
            if !report.is_ok() {
                bail!("store verification failed");
            }
        }
        Command::Ledger { action } => ledger::ledger(&home, remote, action)?,
        Command::Tip { artist, amount, unit } => {
            ledger::tip(remote, &home, artist, ledger::minor_units(&amount, &unit)?)?
        }
        Command::Budget { action } => ledger::budget(remote, &home, action)?,
        Command::Settle => ledger::settle(remote, &home, &runtime()?)?,
        Command::Play(args) => play::play(&home, remote, args, &runtime()?)?,
        Command::Player { action } => play::player(remote, &home, action)?,
        Command::Report { json, csv } => ledger::report(remote, &home, json, csv)?,
        Command::Demo { .. } => {}
    }
    Ok(())
}

/// Opens the data directory for the daemon, waiting up to 10 s for a short-lived CLI command
/// that holds the database lock; a second daemon still fails with a clear error.
fn open_waiting(home: &Home, config: Config) -> anyhow::Result<Local> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Local::open_with_config(home, config.clone()) {
            Ok(local) => return Ok(local),
            Err(busker::Error::Store(busker::catalog::StoreError::Db(e))) if std::time::Instant::now() < deadline => {
                tracing::info!("data directory busy ({e}); retrying");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => {
                return Err(e).context("opening the data directory (is a daemon already running? `busker status`)");
            }
        }
    }
}

fn publish_locally(home: &Home, dir: &std::path::Path, opts: &PublishOptions) -> anyhow::Result<PublishReport> {
    let node = Local::open(home)?;
    let bar = show::byte_bar("publishing");
    let report = node.publish(dir, opts, &|e| match e {
        PublishEvent::Scanned { bytes, .. } => {
            bar.set_length(bytes);
        }
        PublishEvent::Checked(_) => {}
        PublishEvent::Stored(n) => bar.inc(n),
    });
    bar.finish_and_clear();
    Ok(report?)
}

/// `dir` if given, else a fresh temporary directory named `prefix…`, deleted when the returned
/// guard drops. A directory the caller names is never created or deleted here.
fn dir_or_temp(dir: Option<PathBuf>, prefix: &str) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match dir {
        Some(dir) => (dir, None),
        None => {
            let tmp = tempfile::Builder::new().prefix(prefix).tempdir()?;
            (tmp.path().to_path_buf(), Some(tmp))
        }
    })
}

fn demo(keep: Option<PathBuf>) -> anyhow::Result<()> {
    let (root, _tmp) = dir_or_temp(keep, "busker-demo-")?;
    println!("busker demo: an artist node and two fan nodes, on this machine only (127.0.0.1).\n");
    runtime()?.block_on(busker::demo::run(&root, &mut |line| println!("{line}")))?;
    Ok(())
}
