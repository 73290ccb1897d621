//! Published files are served where they are: no copy in the store, every local read
//! re-hashed, a chunk sent to a peer re-hashed unless its file is provably untouched since
//! publishing, and a file changed after publishing is named by `verify` and never served.

use busker::catalog::StoreError;
use busker::catalog::chunk::chunk_index;

use crate::common::{album, artist_node, busker, files_under, options};

#[test]
fn a_published_file_is_served_in_place_and_a_changed_one_is_named() {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", &["01-sunrise.flac", "03-lanterns.ogg"]);
    let report = node.publish(&src, &options(), &|_| {}).unwrap();
    assert!(report.new_bytes > 0);
    let chunk_files = files_under(&node.home.store_dir().join("chunks"));
    assert!(chunk_files.is_empty(), "nothing was copied: {chunk_files:?}");
    assert_eq!(node.store.usage().unwrap().1, 0, "in-place bytes are not the store's disk");
    let (flac, ogg) = (&report.release.tracks[0], &report.release.tracks[1]);
    let out = dir.path().join("out");
    node.export(&flac.id.to_string(), &out).unwrap();
    let original = std::fs::read(src.join("01-sunrise.flac")).unwrap();
    assert_eq!(std::fs::read(out.join("01-sunrise.flac")).unwrap(), original);

    // Someone edits the published file in place: same size, one byte different.
    let mut edited = original.clone();
    let at = edited.len() * 2 / 3;
    edited[at] ^= 0x20;
    std::fs::write(src.join("01-sunrise.flac"), &edited).unwrap();
    let manifest = node.store.manifest(&flac.id).unwrap().unwrap();
    let victim = manifest.chunks[chunk_index(at as u64)];
    assert!(!node.store.has_intact_chunk(&manifest.chunks[0]).unwrap(), "a changed file's chunks count as missing");
    match node.store.read_chunk(&victim) {
        Err(e @ StoreError::SourceChanged { .. }) => {
            assert!(e.to_string().contains("01-sunrise.flac"), "{e}");
        }
        other => panic!("read of a changed chunk: {other:?}"),
    }
    let home = node.home.clone();
    drop(node);
    let v = busker(home.root(), &["verify"]);
    let stdout = String::from_utf8_lossy(&v.stdout);
    assert!(!v.status.success());
    assert_eq!(stdout.matches("CORRUPT").count(), 1, "only the edited chunk: {stdout}");
    assert!(stdout.contains(&format!("CORRUPT chunk {victim}")), "{stdout}");
    assert!(stdout.contains("CHANGED published file") && stdout.contains("01-sunrise.flac"), "{stdout}");
    let x = busker(home.root(), &["export", &flac.id.to_string(), dir.path().join("x").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&x.stderr);
    assert!(!x.status.success());
    assert!(stderr.contains("01-sunrise.flac") && stderr.contains("changed, moved or deleted"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    // The other file is untouched and still exports.
    let y = busker(home.root(), &["export", &ogg.id.to_string(), dir.path().join("y").to_str().unwrap()]);
    assert!(y.status.success(), "{}", String::from_utf8_lossy(&y.stderr));

    // Restoring the file and publishing again records it anew.
    std::fs::write(src.join("01-sunrise.flac"), &original).unwrap();
    let node = busker::Local::open(&home).unwrap();
    let again = node.publish(&src, &options(), &|_| {}).unwrap();
    assert!(again.already_published);
    assert_eq!(again.new_chunks, manifest.chunks.len(), "the restored file's chunks are recorded again");
    assert!(node.verify(&|_| {}).unwrap().is_ok());

    // A deleted file: its chunks are reported, and nothing of it is served.
    std::fs::remove_file(src.join("03-lanterns.ogg")).unwrap();
    let v = node.verify(&|_| {}).unwrap();
    assert!(!v.is_ok());
    assert_eq!(v.changed_sources.len(), 1);
    assert!(v.changed_sources[0].ends_with("03-lanterns.ogg"));
    assert!(!node.store.is_complete(&ogg.id).unwrap());
    assert_eq!(node.store.progress(&ogg.id).unwrap(), Some((0, ogg.size)), "nothing of it is there");
    assert_eq!(node.store.progress(&flac.id).unwrap(), Some((flac.size, flac.size)));
    assert!(node.store.is_complete(&flac.id).unwrap());
}

/// A published file that has settled is served without hashing its chunks again; an edit
/// that keeps its size and puts its modification time back still moves its change time, so
/// the edited chunk is hashed, found changed and not served.
#[test]
fn an_edit_that_puts_the_mtime_back_is_still_never_served() {
    use busker::catalog::chunk::chunk_ranges;
    let (dir, node) = artist_node();
    let src = album(dir.path(), "album", &["01-sunrise.flac"]);
    let path = src.join("01-sunrise.flac");
    std::thread::sleep(std::time::Duration::from_millis(300)); // the file's last change settles
    let report = node.publish(&src, &options(), &|_| {}).unwrap();
    let manifest = node.store.manifest(&report.release.tracks[0].id).unwrap().unwrap();
    let original = std::fs::read(&path).unwrap();
    let at = original.len() * 2 / 3;
    let victim = manifest.chunks[chunk_index(at as u64)];
    let range = chunk_ranges(original.len() as u64).nth(chunk_index(at as u64)).unwrap();
    let served = node.store.read_chunk_to_serve(&victim).unwrap();
    assert_eq!(&served[..], &original[range.start as usize..range.end as usize]);

    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut edited = original.clone();
    edited[at] ^= 0x20;
    std::fs::write(&path, &edited).unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    assert!(node.store.has_intact_chunk(&victim).unwrap(), "size and mtime alone look unchanged");
    match node.store.read_chunk_to_serve(&victim) {
        Err(e @ StoreError::SourceChanged { .. }) => assert!(e.to_string().contains("01-sunrise.flac"), "{e}"),
        other => panic!("serving an edited chunk: {other:?}"),
    }
    // Chunks the edit did not touch are still served, hashed now that the file changed.
    let first = node.store.read_chunk_to_serve(&manifest.chunks[0]).unwrap();
    assert_eq!(&first[..], &original[..first.len()]);
}
