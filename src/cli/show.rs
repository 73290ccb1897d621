//! Human-readable output for the CLI.

use busker::Node;
use busker::api::GetResponse;
use busker::catalog::publish::PublishReport;
use busker::catalog::search::Hit;
use busker::catalog::{Catalog, Uses, VerifyReport};
use busker::daemon::Started;
use busker::identity::Identity;
use busker::local::InitReport;
use busker::net::{PeerInfo, Status};
use indicatif::{ProgressBar, ProgressStyle};

fn secs(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn init(identity: &Identity, r: &InitReport) {
    println!("data dir     {}", r.home.display());
    println!("config       {}", if r.wrote_config { "written (config.toml)" } else { "kept (config.toml exists)" });
    if r.created_keys.is_empty() {
        println!("keys         kept (all keys exist)");
    } else {
        println!("keys         created: {}", r.created_keys.join(", "));
    }
    if let Some(seq) = r.created_catalog {
        println!("catalog      created, version {seq}");
    }
    id(identity);
}

pub fn id(identity: &Identity) {
    match identity.artist_key() {
        Some(k) => println!("artist key   {k}"),
        None => println!("artist key   (none: this is a listening node)"),
    }
    println!("fan key      {}  (never sent to peers; artists see per-artist pseudonyms)", hex(&identity.fan_public()));
    println!("node key     {}", hex(&identity.node_public()));
    println!("peer id      {}", busker::net::peer_id(identity));
}

/// `busker id`: text, or JSON for scripts.
pub fn id_as(identity: &Identity, json: bool) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({
            "artist_key": identity.artist_key().map(|k| k.to_string()),
            "fan_key": hex(&identity.fan_public()),
            "node_key": hex(&identity.node_public()),
            "peer_id": busker::net::peer_id(identity).to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        id(identity);
    }
    Ok(())
}

pub fn daemon_started(s: &Started, node: &Node) {
    println!("busker daemon running");
    println!("peer id      {}", s.peer_id);
    println!("control API  http://{} (token in api.token)", s.api);
    if let Some(k) = node.local().identity.artist_key() {
        println!("artist key   {k}");
    }
    println!("stop with Ctrl-C or `busker stop`");
}

pub fn status(s: &Status, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("peer id      {}", s.peer_id);
    for a in &s.listen {
        println!("listening    {a}");
    }
    println!("peers        {} connected, {} in the gossip mesh", s.peers, s.gossip_peers);
    println!("catalogs     {}", s.catalogs);
    println!("store        {} chunks, {} bytes", s.chunks, s.bytes);
    println!("downloads    {} in progress", s.downloads);
    println!("served       {} chunks, {} bytes to peers", s.served_chunks, s.served_bytes);
    Ok(())
}

pub fn peers(list: &[PeerInfo], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    for p in list {
        println!("{}  {}", p.peer, p.addr);
    }
    eprintln!("{} peer(s)", list.len());
    Ok(())
}

pub fn hits(hits: &[Hit], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(hits)?);
    } else {
        for h in hits {
            println!("{h}");
        }
        eprintln!("{} result(s)", hits.len());
    }
    Ok(())
}

pub fn fetched(a: &GetResponse) {
    let r = &a.report;
    for f in &a.files {
        println!("{}", f.display());
    }
    let from: Vec<String> =
        r.per_peer.iter().map(|(p, n)| format!("{n} from …{}", &p[p.len().saturating_sub(8)..])).collect();
    let from = if from.is_empty() { String::new() } else { format!(" ({})", from.join(", ")) };
    eprintln!(
        "fetched {} of {} chunks, {} bytes{from}; every chunk verified, content pinned",
        r.fetched_chunks, r.total_chunks, r.fetched_bytes
    );
}

pub fn catalog(c: &Catalog) {
    println!("{}  (artist {}, version {}, signature valid)", c.profile.name, c.artist, c.seq);
    if !c.profile.bio.is_empty() {
        println!("  {}", c.profile.bio);
    }
    if let Some(p) = &c.profile.payment {
        println!("  tips paid via {p}");
    }
    for r in &c.releases {
        println!("\n{} ({})  {}  {}", r.title, r.date, secs(r.duration_ms()), r.id());
        println!("  licence {}{}", r.licence.id, uses(&r.licence.uses));
        let splits: Vec<String> = r
            .splits
            .recipients
            .iter()
            .map(|s| format!("{}… {}%", &s.key.to_string()[..8], f64::from(s.bps) / 100.0))
            .collect();
        let referral = r.splits.referral_bps;
        let referral =
            if referral > 0 { format!(" (referral {}%)", f64::from(referral) / 100.0) } else { String::new() };
        println!("  tips    {}{referral}", splits.join(", "));
        for t in &r.tracks {
            println!(
                "  {:>3}. {:<32} {:>6}  {:<9} {:>6} Hz {} ch {:>4} kbit/s  {}",
                t.position,
                t.title,
                secs(t.duration_ms),
                t.codec,
                t.sample_rate,
                t.channels,
                t.bit_rate / 1000,
                t.id.short()
            );
        }
    }
    for d in &c.tour {
        println!("\non tour {}  {}, {}", d.date, d.city, d.venue);
    }
}

fn uses(u: &Uses) -> String {
    let all = [
        ("stream", u.stream),
        ("download", u.download),
        ("embed", u.embed),
        ("remix", u.remix),
        ("commercial", u.commercial),
    ];
    let yes: Vec<&str> = all.iter().filter(|(_, v)| *v).map(|(n, _)| *n).collect();
    format!(" (allows: {})", if yes.is_empty() { "nothing".into() } else { yes.join(", ") })
}

pub fn published(r: &PublishReport) {
    for t in &r.release.tracks {
        println!("{:>3}. {:<32} {:>6}  {:<6} {}", t.position, t.title, secs(t.duration_ms), t.codec, t.id.short());
    }
    for b in &r.skipped {
        eprintln!("skipped {}: {}", b.path.display(), b.reason);
    }
    if r.already_published {
        eprintln!("already published: this release is in catalog version {}; nothing new was signed", r.seq);
    } else {
        eprintln!(
            "signed catalog version {}; {} new chunks ({} of {} bytes were new)",
            r.seq, r.new_chunks, r.new_bytes, r.total_bytes
        );
    }
    println!("release {}", r.release_id);
}
pub fn verify(r: &VerifyReport) {
    println!("checked {} chunks ({} bytes)", r.chunks_checked, r.bytes_checked);
    for c in &r.corrupt {
        println!("CORRUPT chunk {c}");
    }
    for c in &r.missing {
        println!("MISSING chunk {c}");
    }
    for (m, why) in &r.bad_manifests {
        println!("BAD manifest {m}: {why}");
    }
    for (a, why) in &r.bad_catalogs {
        println!("BAD catalog of {a}: {why}");
    }
    for p in &r.changed_sources {
        println!("CHANGED published file {}: restore it, or publish it again", p.display());
    }
    if r.orphans > 0 {
        println!("{} orphan chunk file(s) from an interrupted import (harmless)", r.orphans);
    }
    if r.is_ok() {
        println!("store OK");
    }
}

/// A progress bar on stderr counting bytes (hidden when stderr is not a terminal).
pub fn byte_bar(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}
