//! Playing music from the swarm in your own program: an artist node and a fan node on
//! 127.0.0.1; the fan plays the artist's release as it streams (nothing is downloaded first),
//! into a WAV file, then reads the player's measurements and its ledger.
//!
//! ```sh
//! cargo run --example fetch_and_play
//! ```

use std::time::Duration;

use busker::catalog::Licence;
use busker::catalog::publish::PublishOptions;
use busker::player::{PlayOptions, WavSink};
use busker::{Event, Home, Local, Node};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let (local, _) = Local::init(&Home::at(tmp.path().join("artist")), Some("Streaming Quartet"))?;
    let artist = Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).spawn().await?;
    let album = tmp.path().join("album");
    std::fs::create_dir_all(&album)?;
    for i in 1..=3u64 {
        std::fs::write(album.join(format!("{i:02}-movement.wav")), busker::synth::song_wav(i, 4.0))?;
    }
    let opts = PublishOptions {
        title: Some("Three Movements".into()),
        date: None,
        licence: Licence::known("CC-BY-4.0").ok_or("unknown licence")?,
        splits: None,
        skip_bad: false,
        copy: false,
    };
    let published = artist.publish(&album, opts).await?;

    let (local, _) = Local::init(&Home::at(tmp.path().join("fan")), None)?;
    let addr = artist.wait_listening(Duration::from_secs(10)).await?;
    let fan = Node::builder(local).listen("/ip4/127.0.0.1/tcp/0").mdns(false).bootstrap(addr).spawn().await?;
    let mut events = fan.subscribe();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(event) = events.recv().await {
            if matches!(event, Event::CatalogUpdated { seq, .. } if seq >= published.seq) {
                break;
            }
        }
    })
    .await?;

    // Resolve what to play (an id, a prefix or search words), then play it to any sink.
    let queue = fan.resolve("three movements")?;
    let wav = tmp.path().join("three-movements.wav");
    let player = fan.play(queue, Box::new(WavSink::create(&wav)?), PlayOptions::default())?;
    // The player runs on its own thread; `wait` blocks, so call it off the async runtime.
    let status = tokio::task::spawn_blocking(move || player.wait()).await??;
    println!("first audio after {:.1} ms, {} stutters", status.ttfa_ms.unwrap_or(f64::NAN), status.stutters);
    for t in &status.tracks {
        println!("  {} played {:.1} s (counted in the ledger: {})", t.title, t.played_ms as f64 / 1000.0, t.counted);
    }
    println!("wrote {} ({} bytes)", wav.display(), std::fs::metadata(&wav)?.len());
    println!("the fan's ledger holds {} signed entries", fan.local().ledger.len());
    fan.shutdown().await;
    artist.shutdown().await;
    Ok(())
}
