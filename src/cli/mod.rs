//! The command line: argument parsing and printing only. Every command is a library call.

mod show;

use std::path::PathBuf;

use anyhow::{Context, bail};
use busker::catalog::model::{KNOWN_LICENCES, Split, Splits};
use busker::catalog::publish::{PublishEvent, PublishOptions};
use busker::catalog::{ArtistKey, Licence, Uses};
use busker::{Home, Local};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

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
    Id,
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
    /// Run the guided tour: an artist publishes, verifies and exports an album.
    Demo {
        /// Keep the demo's data in this folder instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Demo { keep } = &cli.command {
        return demo(keep.clone());
    }
    let home = Home::locate(cli.data_dir.clone())?;
    match cli.command {
        Command::Init { artist } => {
            let (node, report) = Local::init(&home, artist.as_deref())?;
            show::init(&node, &report);
        }
        Command::Id => show::id(&Local::open(&home)?),
        Command::Publish { dir, title, licence, uses, date, splits, referral, skip_bad } => {
            let node = Local::open(&home)?;
            let licence_id = licence.unwrap_or_else(|| node.config.publish.default_license.clone());
            let opts = PublishOptions {
                title,
                date,
                licence: licence_for(&licence_id, uses.as_deref())?,
                splits: parse_splits(&node, &splits, referral)?,
                skip_bad,
            };
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let report = node.publish(&dir, &opts, &|e| match e {
                PublishEvent::Scanned { bytes, .. } => {
                    bar.set_length(bytes);
                    bar.set_message("checking");
                }
                PublishEvent::Checked(_) => bar.set_message("storing"),
                PublishEvent::Stored(n) => bar.inc(n),
            });
            bar.finish_and_clear();
            show::published(&report?);
        }
        Command::Export { id, out_dir } => {
            let files = Local::open(&home)?.export(&id, &out_dir)?;
            for f in &files {
                println!("{}", f.display());
            }
            eprintln!("exported {} file(s), each verified against its BLAKE3 hash", files.len());
        }
        Command::Catalog { artist, json } => {
            let node = Local::open(&home)?;
            let key = match artist {
                Some(a) => a.parse::<ArtistKey>().with_context(|| format!("artist key {a:?}"))?,
                None => node
                    .identity
                    .artist_key()
                    .context("this node has no artist key; name an artist: busker catalog KEY")?,
            };
            let signed = node.store.catalog(&key)?.with_context(|| format!("no catalog stored for artist {key}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(signed.catalog())?);
            } else {
                show::catalog(&signed);
            }
        }
        Command::Verify => {
            let report = Local::open(&home)?.verify(&|_| {})?;
            show::verify(&report);
            if !report.is_ok() {
                bail!("store verification failed");
            }
        }
        Command::Demo { .. } => {}
    }
    Ok(())
}

fn demo(keep: Option<PathBuf>) -> anyhow::Result<()> {
    let tmp;
    let root = match keep {
        Some(dir) => dir,
        None => {
            tmp = tempfile::Builder::new().prefix("busker-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!("busker demo: an artist node publishes an album, on this machine only.\n");
    busker::demo::run(&root, &mut |line| println!("{line}"))?;
    Ok(())
}

fn licence_for(id: &str, uses: Option<&[String]>) -> anyhow::Result<Licence> {
    let known = Licence::known(id);
    let uses = match (uses, &known) {
        (Some(list), _) => {
            let mut u = Uses { stream: false, download: false, embed: false, remix: false, commercial: false };
            for item in list {
                match item.trim() {
                    "stream" => u.stream = true,
                    "download" => u.download = true,
                    "embed" => u.embed = true,
                    "remix" => u.remix = true,
                    "commercial" => u.commercial = true,
                    other => bail!("unknown use {other:?} (expected stream, download, embed, remix, commercial)"),
                }
            }
            u
        }
        (None, Some(l)) => l.uses,
        (None, None) => bail!("unknown licence {id:?}: use one of {} or give --uses", KNOWN_LICENCES.join(", ")),
    };
    Ok(Licence { id: known.map(|l| l.id).unwrap_or_else(|| id.to_string()), uses })
}

fn parse_splits(node: &Local, args: &[String], referral: u16) -> anyhow::Result<Option<Splits>> {
    if args.is_empty() && referral == 0 {
        return Ok(None);
    }
    let me = node.identity.artist_key().context("this node has no artist key")?;
    let recipients = if args.is_empty() {
        vec![Split { key: me, bps: 10_000 }]
    } else {
        args.iter()
            .map(|a| {
                let (k, b) = a.split_once('=').with_context(|| format!("split {a:?} is not KEY=BPS"))?;
                let key = if k == "me" { me } else { k.parse().with_context(|| format!("split key {k:?}"))? };
                let bps = b.parse().with_context(|| format!("split share {b:?} is not a number of basis points"))?;
                Ok(Split { key, bps })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let splits = Splits { recipients, referral_bps: referral };
    splits.validate()?;
    Ok(Some(splits))
}
