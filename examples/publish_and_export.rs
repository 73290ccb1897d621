//! Embedding busker's local node: create an artist node, publish a synthesised album, read the
//! signed catalog back, and export the files.
//!
//! ```sh
//! cargo run --example publish_and_export
//! ```

use busker::catalog::Licence;
use busker::catalog::publish::{PublishEvent, PublishOptions};
use busker::{Home, Local};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    // 1. A node is a data directory: keys, config, store.
    let (node, _) = Local::init(&Home::at(tmp.path().join("node")), Some("Example Artist"))?;

    // 2. Any folder of audio files is an album. Here: three synthesised WAV tracks.
    let album = tmp.path().join("album");
    std::fs::create_dir_all(&album)?;
    for i in 1..=3u64 {
        std::fs::write(album.join(format!("{i:02}-piece.wav")), busker::synth::song_wav(i, 2.0))?;
    }

    // 3. Publish: checked, chunked, hashed and signed in one atomic commit.
    let opts = PublishOptions {
        title: Some("Embedded".into()),
        date: Some("2026-11-21".into()),
        licence: Licence::known("CC-BY-4.0").ok_or("unknown licence")?,
        splits: None,
        skip_bad: false,
        copy: false,
    };
    let report = node.publish(&album, &opts, &|event| {
        if let PublishEvent::Scanned { files, bytes } = event {
            println!("publishing {files} files, {bytes} bytes");
        }
    })?;
    println!("release {}", report.release_id);

    // 4. The signed catalog, verified on every load.
    if let Some(signed) = node.own_catalog()? {
        let c = signed.catalog();
        println!("{} v{}: {} release(s)", c.profile.name, c.seq, c.releases.len());
    }

    // 5. Export: byte-identical files, each chunk verified against its hash.
    for f in node.export(&report.release_id.to_string(), &tmp.path().join("out"))? {
        println!("exported {}", f.display());
    }
    Ok(())
}
