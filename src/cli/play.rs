//! `busker play` and `busker player …`: parse, pick the output, print what happened.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use busker::api::{Output, PlayRequest, PlayStarted, QueueRequest, SeekRequest};
use busker::playback::{FileTracks, LedgerHook, StoredTracks};
use busker::player::{NullSink, PlayOptions, Player, RawSink, Sink, State, Status, WavSink, parse_position};
use busker::{Event, Home, Local, Node};
use clap::{Args, Subcommand};

use super::remote::Remote;

/// `busker play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// A track or release id (or unique prefix), search words, or an audio file.
    #[arg(required = true, value_name = "TRACK|RELEASE|WORDS|FILE")]
    what: Vec<String>,
    /// Start the first track here: seconds, M:SS or H:MM:SS.
    #[arg(long, value_name = "POS")]
    start: Option<String>,
    /// Play in a random order.
    #[arg(long)]
    shuffle: bool,
    /// Start again at the end.
    #[arg(long)]
    repeat: bool,
    /// Output: FILE.wav, `-` (raw s16le PCM on stdout), `null` (real time, silent) or
    /// `speakers` (the default in builds with the `speakers` feature).
    #[arg(short, long, value_name = "OUT")]
    out: Option<String>,
    /// Stop after this many seconds of audio.
    #[arg(long, value_name = "SECS")]
    seconds: Option<f64>,
    /// Print the final state as JSON: time to first audio, stutters, each track.
    #[arg(long)]
    json: bool,
    /// With a daemon: return once playback has started (control it with `busker player`).
    #[arg(long)]
    detach: bool,
}

/// `busker player …`: the daemon's player.
#[derive(Debug, Subcommand)]
pub enum PlayerAction {
    /// Now playing, position, queue, time to first audio and stutters.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// Skip to the next track.
    Next,
    /// Stop.
    Stop,
    /// Seek within the current track: seconds, M:SS or H:MM:SS.
    Seek {
        /// Position.
        pos: String,
    },
    /// Add a track or release (id or search words) to the end of the queue.
    Queue {
        /// What to add.
        #[arg(required = true)]
        what: Vec<String>,
    },
}

fn output(out: Option<&str>) -> anyhow::Result<Output> {
    match out {
        None if cfg!(feature = "speakers") => Ok(Output::Speakers),
        None => bail!(
            "this busker was built without speakers: choose --out FILE.wav, --out - (raw PCM, e.g. \
             `| aplay -f S16_LE -r 44100 -c 2`) or --out null, or build with `--features speakers`"
        ),
        Some("-") => Ok(Output::Pipe),
        Some("null") => Ok(Output::Null),
        Some("speakers") => Ok(Output::Speakers),
        Some(path) if path.to_ascii_lowercase().ends_with(".wav") => {
            Ok(Output::Wav(std::path::absolute(path).with_context(|| format!("--out {path}"))?))
        }
        Some(other) => bail!("--out {other:?}: give a FILE ending in .wav, `-` for raw PCM, `null` or `speakers`"),
    }
}

fn sink(out: &Output) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match out {
        Output::Null => Box::new(NullSink::new()),
        Output::Wav(path) => Box::new(WavSink::create(path)?),
        Output::Pipe => Box::new(RawSink::new(std::io::BufWriter::new(std::io::stdout()), "stdout")),
        #[cfg(feature = "speakers")]
        Output::Speakers => Box::new(busker::player::speakers::Speakers::open()?),
        #[cfg(not(feature = "speakers"))]
        Output::Speakers => bail!("this busker was built without speakers (cargo feature `speakers`)"),
    })
}

fn options(args: &PlayArgs) -> anyhow::Result<PlayOptions> {
    let limit_ms = match args.seconds {
        Some(s) if !(s > 0.0 && s < 1e9) => bail!("--seconds {s}: give a positive number of seconds"),
        Some(s) => Some((s * 1000.0) as u64),
        None => None,
    };
    Ok(PlayOptions {
        start_ms: args.start.as_deref().map(parse_position).transpose()?.unwrap_or(0),
        shuffle: args.shuffle,
        repeat: args.repeat,
        limit_ms,
    })
}

/// Runs `busker play`.
pub fn play(home: &Home, remote: Option<Remote>, args: PlayArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let opts = options(&args)?;
    let out = output(args.out.as_deref())?;
    let query = args.what.join(" ");
    let file = PathBuf::from(&query);
    let status = if args.what.len() == 1 && file.is_file() {
        let mut files = FileTracks::default();
        let item = files.add(file);
        let player = Player::start(Arc::new(files), sink(&out)?, vec![item], opts, None)?;
        follow_local(&player, out != Output::Pipe)?
    } else if let Some(r) = remote {
        let req = PlayRequest { query, options: opts, out: out.clone() };
        if out == Output::Pipe {
            let mut audio = r.post_reader("/v1/play", &req)?;
            eprintln!("raw PCM: signed 16-bit little-endian, interleaved, at the track's rate and channels");
            let mut stdout = std::io::stdout().lock();
            match std::io::copy(&mut audio, &mut stdout) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e).context("copying audio to stdout"),
            }
            let _ = stdout.flush();
            wait_remote(&r, false)?
        } else {
            let started: PlayStarted = r.post("/v1/play", &req)?;
            for (i, t) in started.queue.iter().enumerate() {
                eprintln!("{:>3}. {} — {} ({})", i + 1, t.title, t.artist_name, clock(t.duration_ms));
            }
            eprintln!("playing on the daemon to {}", started.output);
            if args.detach {
                return Ok(());
            }
            wait_remote(&r, true)?
        }
    } else {
        rt.block_on(play_without_daemon(home, &query, out.clone(), opts))?
    };
    report(&status, args.json && out != Output::Pipe)
}

/// No daemon: play from the store if everything is here (no network at all), else run a
/// node for the length of the play.
async fn play_without_daemon(home: &Home, query: &str, out: Output, opts: PlayOptions) -> anyhow::Result<Status> {
    let local = Local::open(home)?;
    let found = busker::player::resolve(&local.store, query);
    let all_stored =
        found.as_ref().is_ok_and(|items| items.iter().all(|i| local.store.is_complete(&i.id).unwrap_or(false)));
    let progress = out != Output::Pipe;
    if all_stored {
        let local = Arc::new(local);
        let items = found?;
        let hook = Arc::new(LedgerHook(local.clone()));
        let player = Player::start(Arc::new(StoredTracks(local)), sink(&out)?, items, opts, Some(hook))?;
        return tokio::task::spawn_blocking(move || follow_local(&player, progress)).await?;
    }
    let node = Node::builder(local).settle_every(Duration::ZERO).spawn().await?;
    let items = match found {
        Ok(items) => items,
        Err(_) => {
            // Not known here yet: give the network a moment to share catalogs.
            wait_for(&node, Duration::from_secs(5), |e| matches!(e, Event::CatalogUpdated { .. })).await;
            node.resolve(query)?
        }
    };
    if node.peers().await?.is_empty() {
        wait_for(&node, Duration::from_secs(5), |e| matches!(e, Event::PeerConnected { .. })).await;
    }
    let player = node.play(items, sink(&out)?, opts)?;
    let status = tokio::task::spawn_blocking(move || follow_local(&player, progress)).await?;
    node.shutdown().await;
    status
}

async fn wait_for(node: &Node, limit: Duration, pred: impl Fn(&Event) -> bool) {
    let mut events = node.subscribe();
    let _ = tokio::time::timeout(limit, async {
        while let Ok(e) = events.recv().await {
            if pred(&e) {
                break;
            }
        }
    })
    .await;
}

/// Follows a player in this process, printing each track as it starts.
fn follow_local(player: &Player, progress: bool) -> anyhow::Result<Status> {
    let mut shown = None;
    while !player.is_finished() {
        if progress {
            show_now(&player.status(), &mut shown);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(player.wait()?)
}

/// Follows the daemon's player until it stops.
fn wait_remote(r: &Remote, progress: bool) -> anyhow::Result<Status> {
    let mut shown = None;
    loop {
        let status: Status = r.get("/v1/player")?;
        if status.state == State::Stopped {
            if status.tracks.iter().all(|t| t.error.is_some())
                && let Some(e) = &status.error
            {
                bail!("{e}");
            }
            return Ok(status);
        }
        if progress {
            show_now(&status, &mut shown);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn show_now(status: &Status, shown: &mut Option<busker::catalog::ContentId>) {
    if let Some(now) = &status.now
        && *shown != Some(now.item.id)
    {
        *shown = Some(now.item.id);
        let by = if now.item.artist_name.is_empty() { String::new() } else { format!(" — {}", now.item.artist_name) };
        eprintln!("▶ {}{by}", now.item.title);
    }
}

fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn report(status: &Status, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(status)?);
        return Ok(());
    }
    for t in &status.tracks {
        match &t.error {
            Some(e) => eprintln!("✗ {}: {e}", t.title),
            None => eprintln!(
                "✓ {} played {}: first audio after {}, {} stutter{}{}",
                t.title,
                clock(t.played_ms),
                t.ttfa_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
                t.stutters,
                if t.stutters == 1 { "" } else { "s" },
                if t.counted { ", counted in the ledger" } else { "" }
            ),
        }
    }
    Ok(())
}

/// Runs `busker player …` against the daemon.
pub fn player(remote: Option<Remote>, home: &Home, action: PlayerAction) -> anyhow::Result<()> {
    let r = remote.with_context(|| {
        format!("no daemon is running for {}: the player lives in the daemon", home.root().display())
    })?;
    let empty = serde_json::json!({});
    let status: Status = match action {
        PlayerAction::Status { json } => {
            let s: Status = r.get("/v1/player")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            s
        }
        PlayerAction::Pause => r.post("/v1/player/pause", &empty)?,
        PlayerAction::Resume => r.post("/v1/player/resume", &empty)?,
        PlayerAction::Next => r.post("/v1/player/next", &empty)?,
        PlayerAction::Stop => r.post("/v1/player/stop", &empty)?,
        PlayerAction::Seek { pos } => r.post("/v1/player/seek", &SeekRequest { position_ms: parse_position(&pos)? })?,
        PlayerAction::Queue { what } => r.post("/v1/player/queue", &QueueRequest { query: what.join(" ") })?,
    };
    let state = format!("{:?}", status.state).to_lowercase();
    match &status.now {
        Some(now) => println!("{state}: {} — {} at {}", now.item.title, now.item.artist_name, clock(now.position_ms)),
        None => println!("{state}"),
    }
    for (i, t) in status.queue.iter().enumerate() {
        println!("{:>3}. {} — {}", i + 1, t.title, t.artist_name);
    }
    if let Some(ttfa) = status.ttfa_ms {
        println!("first audio after {ttfa:.0} ms, {} stutter(s) so far", status.stutters);
    }
    Ok(())
}
