//! Embedding a busker node in your own program: start an artist node and a fan node on
//! 127.0.0.1, let the fan join the artist, find a release by searching, and fetch it,
//! every chunk verified on arrival.
//!
//! ```sh
//! cargo run --example embed_node
//! ```

use std::time::Duration;

use busker::catalog::Licence;
use busker::catalog::publish::PublishOptions;
use busker::{Event, Home, Local, Node};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;

    // An artist node: local state (keys, config, store), then the network on top.
    let (local, _) = Local::init(&Home::at(tmp.path().join("artist")), Some("Embedded Ensemble"))?;
    let artist = Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await?;

    // The artist publishes a folder of audio (here: two synthesised tracks).
    let album = tmp.path().join("album");
    std::fs::create_dir_all(&album)?;
    for i in 1..=2u64 {
        std::fs::write(album.join(format!("{i:02}-etude.wav")), busker::synth::song_wav(i, 3.0))?;
    }
    let opts = PublishOptions {
        title: Some("Études for Loopback".into()),
        date: None,
        licence: Licence::known("CC-BY-4.0").ok_or("unknown licence")?,
        splits: None,
        skip_bad: false,
        copy: false,
    };
    let published = artist.publish(&album, opts).await?;
    println!("artist published release {}", published.release_id);

    // A fan node joins through the artist's address (a bootstrap peer).
    let (local, _) = Local::init(&Home::at(tmp.path().join("fan")), None)?;
    let addr = artist.wait_listening(Duration::from_secs(10)).await?;
    let fan = Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).bootstrap(addr).spawn().await?;

    // Domain events, not libp2p events: wait until the artist's catalog has arrived.
    let mut events = fan.subscribe();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(event) = events.recv().await {
            if let Event::CatalogUpdated { seq, via, .. } = event {
                println!("fan received catalog version {seq} via {via:?}");
                if seq >= published.seq {
                    break;
                }
            }
        }
    })
    .await?;

    // Search the catalogs the fan knows, then fetch the release it found.
    let hit = fan.search("etudes loopback")?.into_iter().next().ok_or("release not found")?;
    println!("found: {hit}");
    let id = hit.id.ok_or("hit has no id")?.to_string();
    let (report, files) = fan.get(&id, &tmp.path().join("downloads")).await?;
    println!("fetched {} chunks ({} bytes), every one verified", report.fetched_chunks, report.fetched_bytes);
    for f in files {
        println!("  {}", f.display());
    }

    fan.shutdown().await;
    artist.shutdown().await;
    Ok(())
}
