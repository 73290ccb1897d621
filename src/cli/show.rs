//! Human-readable output for the CLI.

use busker::Local;
use busker::catalog::publish::PublishReport;
use busker::catalog::{SignedCatalog, VerifyReport};
use busker::local::InitReport;

fn secs(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn init(node: &Local, r: &InitReport) {
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
    id(node);
}

pub fn id(node: &Local) {
    match node.identity.artist_key() {
        Some(k) => println!("artist key   {k}"),
        None => println!("artist key   (none: this is a listening node)"),
    }
    println!(
        "fan key      {}  (never sent to peers; artists see per-artist pseudonyms)",
        hex(&node.identity.fan_public())
    );
    println!("node key     {}", hex(&node.identity.node_public()));
    println!("peer id      {}", busker::net::peer_id(&node.identity));
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

pub fn catalog(s: &SignedCatalog) {
    let c = s.catalog();
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
        println!(
            "  tips    {}{}",
            splits.join(", "),
            if r.splits.referral_bps > 0 {
                format!(" (referral {}%)", f64::from(r.splits.referral_bps) / 100.0)
            } else {
                String::new()
            }
        );
        for t in &r.tracks {
            println!(
                "  {:>3}. {:<32} {:>6}  {:<6} {:>6} Hz {} ch {:>4} kbit/s  {}",
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

fn uses(u: &busker::catalog::Uses) -> String {
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
    if r.orphans > 0 {
        println!("{} orphan chunk file(s) from an interrupted import (harmless)", r.orphans);
    }
    if r.is_ok() {
        println!("store OK");
    }
}
