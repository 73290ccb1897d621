//! Signed catalogs: what is accepted and what is rejected, with which error.

use busker::catalog::model::{Catalog, Split, Splits};
use busker::catalog::{ArtistKey, CatalogError, SignedCatalog};
use ed25519_dalek::SigningKey;

use crate::common::{album, artist_node, options};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn pubkey(k: &SigningKey) -> ArtistKey {
    ArtistKey(k.verifying_key().to_bytes())
}

/// A real catalog with a published release, from a real store.
fn published_catalog() -> (SigningKey, Catalog) {
    let (dir, node) = artist_node();
    let src = album(dir.path(), "a", &["01-sunrise.flac", "03-lanterns.ogg"]);
    node.publish(&src, &options(), &|_| {}).unwrap();
    let signed = node.own_catalog().unwrap().unwrap();
    let secret = std::fs::read_to_string(dir.path().join("home/keys/artist.key")).unwrap();
    let hex = secret.lines().nth(1).unwrap();
    let k = SigningKey::from_bytes(&busker::catalog::ids::parse_hex32(hex).unwrap());
    (k, signed.catalog().clone())
}

#[test]
fn every_tampered_byte_is_rejected() {
    let (k, c) = published_catalog();
    let signed = SignedCatalog::sign(c, &k).unwrap();
    let bytes = signed.bytes();
    assert!(SignedCatalog::verify(bytes).is_ok());
    // Flip one bit at every position (stride 7 keeps the test quick but covers every region).
    for i in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x01;
        let err = SignedCatalog::verify(&bad).expect_err("tampered catalog accepted");
        let msg = err.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "error must be one line: {msg}");
    }
    // Truncation and extension are rejected too.
    assert!(SignedCatalog::verify(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(SignedCatalog::verify(&longer).is_err());
}

#[test]
fn wrong_key_is_rejected() {
    let (k, c) = published_catalog();
    // Signed by someone else, claiming to be the artist.
    assert!(matches!(SignedCatalog::sign(c.clone(), &key(9)), Err(CatalogError::WrongKey { .. })));
    // Validly signed by key 9, but we asked for the artist's catalog.
    let mut other = c.clone();
    other.artist = pubkey(&key(9));
    let forged = SignedCatalog::sign(other, &key(9)).unwrap();
    let err = SignedCatalog::verify_for(forged.bytes(), &pubkey(&k)).unwrap_err();
    assert!(matches!(err, CatalogError::WrongKey { .. }), "{err}");
    // The artist's envelope with key 9's signature spliced in.
    let good = SignedCatalog::sign(c, &k).unwrap();
    let mut spliced = good.bytes().to_vec();
    spliced[37..101].copy_from_slice(&forged.bytes()[37..101]);
    assert!(matches!(SignedCatalog::verify(&spliced), Err(CatalogError::BadSignature(_))));
}

#[test]
fn older_and_replayed_versions_are_rejected_by_the_store() {
    let (k, c) = published_catalog();
    let (_dir, node) = artist_node();
    let mut v5 = c.clone();
    v5.seq = 5;
    let v5 = SignedCatalog::sign(v5, &k).unwrap();
    node.store.put_catalog(v5.clone()).unwrap();
    let err = node.store.put_catalog(v5.clone()).unwrap_err().to_string();
    assert!(err.contains("sequence 5 is not newer than stored sequence 5"), "{err}");
    let mut v4 = c.clone();
    v4.seq = 4;
    let err = node.store.put_catalog(SignedCatalog::sign(v4, &k).unwrap()).unwrap_err().to_string();
    assert!(err.contains("sequence 4 is not newer"), "{err}");
    let mut v6 = c;
    v6.seq = 6;
    node.store.put_catalog(SignedCatalog::sign(v6, &k).unwrap()).unwrap();
    assert_eq!(node.store.catalog(&pubkey(&k)).unwrap().unwrap().seq(), 6);
}

#[test]
fn splits_that_do_not_sum_are_rejected() {
    let (k, mut c) = published_catalog();
    let me = pubkey(&k);
    c.releases[0].splits = Splits {
        recipients: vec![Split { key: me, bps: 7000 }, Split { key: pubkey(&key(2)), bps: 2999 }],
        referral_bps: 500,
    };
    let err = SignedCatalog::sign(c.clone(), &k).unwrap_err();
    assert_eq!(err.to_string(), "invalid tip splits: shares sum to 9999 basis points, not 10000");
    // A hostile peer could sign such a catalog with its own code: verification must refuse it.
    let body = postcard::to_stdvec(&c).unwrap();
    let forged = hand_sign(&body, &k);
    assert!(matches!(SignedCatalog::verify(&forged), Err(CatalogError::BadSplits(_))));
    c.releases[0].splits.recipients[1].bps = 3000;
    assert!(SignedCatalog::sign(c, &k).is_ok());
}

#[test]
fn unknown_version_and_oversize_are_rejected() {
    let (k, c) = published_catalog();
    let mut bytes = SignedCatalog::sign(c, &k).unwrap().bytes().to_vec();
    bytes[4] = 2;
    assert_eq!(SignedCatalog::verify(&bytes).unwrap_err(), CatalogError::UnknownVersion(2));
    let huge = vec![0u8; busker::catalog::signed::MAX_CATALOG_BYTES + 1];
    assert!(matches!(SignedCatalog::verify(&huge), Err(CatalogError::TooLarge { .. })));
}

/// Builds an envelope by hand, as a hostile implementation would.
fn hand_sign(body: &[u8], k: &SigningKey) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let mut msg = b"busker/catalog/v1\0".to_vec();
    msg.extend_from_slice(body);
    let sig = k.sign(&msg);
    let mut out = b"BSKC".to_vec();
    out.push(1);
    out.extend_from_slice(&k.verifying_key().to_bytes());
    out.extend_from_slice(&sig.to_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}
