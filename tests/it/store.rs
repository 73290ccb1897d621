//! Where the store keeps bytes: fetched content in one file per content (chunks at their
//! offsets), published files in place; eviction frees the former and never touches the latter.

use busker::catalog::Manifest;
use busker::catalog::chunk::chunk_ranges;

use crate::common::{album, artist_node, fixtures, options};

#[test]
fn fetched_chunks_fill_one_file_and_eviction_frees_it_but_never_published_files() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", &["01-sunrise.flac"]);
    let published = node.publish(&src, &options(), &|_| {}).unwrap();
    let store = &node.store;

    // Content "fetched from a peer": its chunks arrive out of order, each checked.
    let bytes = std::fs::read(fixtures().join("02-tidewater.mp3")).unwrap();
    let m = Manifest::build(&bytes);
    let id = m.id();
    store.put_manifest(&id, &m.encode()).unwrap();
    let plan: Vec<_> = m.chunk_plan().collect();
    let size = m.size;
    let (first, r0) = plan[0].clone();
    let slice = |r: &std::ops::Range<u64>| &bytes[r.start as usize..r.end as usize];
    assert!(
        !store.put_verified_chunk(&id, size, &first, 32 * 1024, slice(&r0).to_vec(), true).unwrap(),
        "wrong offset"
    );
    assert!(
        !store.put_verified_chunk(&id, size, &plan[1].0, r0.start, slice(&r0).to_vec(), true).unwrap(),
        "wrong bytes"
    );
    for (chunk, r) in plan.iter().rev() {
        assert!(store.put_verified_chunk(&id, size, chunk, r.start, slice(r).to_vec(), true).unwrap());
    }
    // Kept in memory for fellow fans' requests, served without a disk read.
    let kept = store.chunk_in_memory(&first).unwrap().expect("a chunk just stored with keep is in memory");
    assert_eq!(&kept[..], slice(&r0));
    let pack = node.home.store_dir().join("chunks/packs").join(id.to_string());
    assert_eq!(std::fs::read(&pack).unwrap(), bytes, "the chunks sit at their offsets in one file");
    assert!(store.is_complete(&id).unwrap());
    assert_eq!(store.usage().unwrap().1, size, "only fetched bytes count against the cap");
    assert_eq!(chunk_ranges(size).count(), plan.len());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    store.export_content(&id, &out.join("t.mp3")).unwrap();
    assert_eq!(std::fs::read(out.join("t.mp3")).unwrap(), bytes);
    busker::demo::corrupt_chunk(store, &plan[2].0).unwrap();
    assert_eq!(node.verify(&|_| {}).unwrap().corrupt, vec![plan[2].0], "a flipped byte in a content file is named");

    // A content file left by an interrupted fetch (nothing of it indexed) is an orphan.
    let stray = Manifest::build(b"bytes of a fetch that never stored a chunk");
    store.put_manifest(&stray.id(), &stray.encode()).unwrap();
    let stray_file = pack.with_file_name(stray.id().to_string());
    std::fs::write(&stray_file, b"partial").unwrap();
    assert_eq!(node.verify(&|_| {}).unwrap().orphans, 1);
    assert_eq!(store.remove_orphans().unwrap(), 1);
    assert!(!stray_file.exists() && pack.exists());

    let (evicted, freed) = store.enforce_cap(0).unwrap();
    assert_eq!((evicted, freed), (plan.len(), size));
    assert!(!pack.exists(), "the file goes with its last chunk");
    assert!(store.chunk_in_memory(&first).unwrap().is_none(), "an evicted chunk is not served from memory");
    assert!(!store.is_complete(&id).unwrap());
    let track = published.release.tracks[0].id;
    assert!(store.is_complete(&track).unwrap(), "published files are never evicted");
    assert!(src.join("01-sunrise.flac").exists());
    assert!(node.verify(&|_| {}).unwrap().is_ok());
}

#[test]
fn a_finished_fetch_counts_as_used_and_outlasts_chunks_no_fetch_finished() {
    let (_dir, node) = artist_node();
    let store = &node.store;
    let put_all = |name: &str| {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let m = Manifest::build(&bytes);
        store.put_manifest(&m.id(), &m.encode()).unwrap();
        for (chunk, r) in m.chunk_plan() {
            let slice = bytes[r.start as usize..r.end as usize].to_vec();
            assert!(store.put_verified_chunk(&m.id(), m.size, &chunk, r.start, slice, false).unwrap());
            assert!(store.chunk_in_memory(&chunk).unwrap().is_none(), "kept in memory though nobody asks");
        }
        m
    };
    let finished = put_all("02-tidewater.mp3");
    store.finish_fetch(&finished.id(), false).unwrap();
    // Chunks of a fetch that never finished (and is no longer wanted) carry no use mark.
    let stray = put_all("03-lanterns.ogg");
    assert_eq!(store.usage().unwrap().1, finished.size + stray.size);

    let (evicted, freed) = store.enforce_cap(finished.size).unwrap();
    assert_eq!((evicted, freed), (stray.chunks.len(), stray.size), "the unmarked chunks go first");
    assert!(store.is_complete(&finished.id()).unwrap());
    assert!(!store.is_complete(&stray.id()).unwrap());
}
