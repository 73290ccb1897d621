//! The ledger end to end: settlement between real nodes on 127.0.0.1 through an artist's
//! absence and restarts, hostile settlements, privacy of what the artist stores, and
//! `kill -9` during appends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use busker::catalog::ids::Pseudonym;
use busker::catalog::model::Split;
use busker::catalog::publish::PublishOptions;
use busker::catalog::{ArtistKey, ContentId, Splits};
use busker::ledger::settle::{DayPlays, Terms, TipTotal};
use busker::ledger::split::split_tip;
use busker::ledger::{LedgerError, Money, SettleError, Settlement};
use busker::{Event, Home, Node};
use ed25519_dalek::SigningKey;

use crate::common::{artist_node, options};
use crate::nodes::{addr, event, noise_album, open_when_free, spawn, within};

fn usd(minor: u64) -> Money {
    Money { minor, unit: "USD".into() }
}

fn today() -> u32 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400) as u32
}

/// An exact time, deliberately not on an hour boundary.
const T: u64 = 1_763_726_461;

async fn wait_catalog(fan: &Node, artist: &ArtistKey) {
    within("the artist's catalog", async {
        while fan.local().store.catalog(artist).unwrap().is_none_or(|c| c.catalog().releases.is_empty()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn tracks(node: &Node, artist: &ArtistKey) -> Vec<ContentId> {
    let c = node.local().store.catalog(artist).unwrap().unwrap();
    c.catalog().releases.iter().flat_map(|r| r.tracks.iter().map(|t| t.id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_waits_out_an_offline_artist_and_lands_once_after_both_restart() {
    let dir = tempfile::tempdir().unwrap();
    let artist = spawn(dir.path(), "artist", true).await;
    let me = artist.local().identity.artist_key().unwrap();
    let (bandmate, producer) = (ArtistKey([0x22; 32]), ArtistKey([0x33; 32]));
    let splits = Splits {
        recipients: vec![
            Split { key: me, bps: 5_000 },
            Split { key: bandmate, bps: 3_000 },
            Split { key: producer, bps: 2_000 },
        ],
        referral_bps: 1_000,
    };
    let album = noise_album(&dir.path().join("album"), 2, 0.5);
    artist.publish(&album, PublishOptions { splits: Some(splits), ..options() }).await.unwrap();
    let fan = spawn(dir.path(), "fan", false).await;
    fan.dial(&addr(&artist).await).await.unwrap();
    wait_catalog(&fan, &me).await;

    // Three plays (one passed on by a sharer) and a tip.
    let t = tracks(&fan, &me);
    let sharer = Pseudonym([0x44; 32]);
    let ledger = &fan.local().ledger;
    ledger.record_play(t[0], me, 45_000, T, None).unwrap();
    ledger.record_play(t[1], me, 60_000, T + 100, Some(sharer)).unwrap();
    ledger.record_play(t[0], me, 30_000, T + 86_400, None).unwrap();
    fan.local().tip(&me.to_string()[..10], usd(1_001)).unwrap();

    // The artist goes offline: the settlement is kept, not lost.
    artist.shutdown().await;
    drop(artist);
    let r = fan.settle().await.unwrap();
    assert!(r.settled.is_empty(), "{r:?}");
    assert_eq!(r.pending.len(), 1, "{r:?}");
    assert!(r.pending[0].1.contains("not reachable"), "{}", r.pending[0].1);
    assert_eq!(fan.local().ledger.pending().unwrap().len(), 1);
    fan.shutdown().await;
    drop(fan);

    // Both restart, the artist on a new port. The fan retries on its own every 200 ms.
    let artist = spawn(dir.path(), "artist", true).await;
    let fan_local = open_when_free(&Home::at(dir.path().join("fan"))).await;
    let fan = Node::builder(fan_local)
        .listen("/ip4/127.0.0.1/tcp/0")
        .mdns(false)
        .bootstrap(addr(&artist).await)
        .settle_every(Duration::from_millis(200))
        .spawn()
        .await
        .unwrap();
    let mut rx = fan.subscribe();
    event(&mut rx, "the artist's receipt", |e| matches!(e, Event::Settled { n: 1, .. })).await;

    // Exactly one receipt, with the right totals, on both sides.
    let settled = fan.local().ledger.settled(&me).unwrap().unwrap();
    assert_eq!(settled.receipt.n, 1);
    settled.receipt.verify(&settled.doc).unwrap();
    assert!(fan.local().ledger.pending().unwrap().is_empty());
    let report = artist.local().ledger.report(None).unwrap();
    assert_eq!(report.receipts, 1);
    assert_eq!(report.listeners, 1);
    assert_eq!(report.tips.len(), 1);
    assert_eq!((report.tips[0].unit.as_str(), report.tips[0].total), ("USD", 1_001));
    // 10% referral off the top (100), the rest 50/30/20 with largest-remainder rounding.
    let mut owed = report.tips[0].recipients.clone();
    owed.sort();
    let mut expect = vec![(me, 451), (bandmate, 270), (producer, 180)];
    expect.sort();
    assert_eq!(owed, expect);
    assert_eq!(report.tips[0].referral, vec![(sharer, 100)]);
    assert_eq!(report.passes, vec![(sharer, 1)]);
    assert_eq!(report.plays.iter().map(|r| r.plays).sum::<u64>(), 3);
    assert_eq!(report.plays.iter().map(|r| r.ms).sum::<u64>(), 135_000);
    assert_eq!(report.plays.len(), 3, "two days, two tracks on the first: {:?}", report.plays);

    // A resent settlement gets the same receipt and changes nothing.
    let catalog = artist.local().own_catalog().unwrap().unwrap();
    let key = artist.local().identity.artist().unwrap();
    let same = artist.local().ledger.accept_settlement(&settled.doc, &catalog, key, today()).unwrap();
    assert_eq!(same, settled.receipt);
    assert_eq!(artist.local().ledger.report(None).unwrap().receipts, 1);

    // A new tip makes settlement 2, cumulative.
    fan.local().tip("Artist", usd(500)).unwrap();
    fan.settle().await.unwrap();
    within("settlement 2", async {
        while fan.local().ledger.settled(&me).unwrap().is_none_or(|s| s.receipt.n < 2) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let report = artist.local().ledger.report(None).unwrap();
    assert_eq!((report.receipts, report.tips[0].total), (2, 1_501));
    assert_eq!(report.plays.iter().map(|r| r.plays).sum::<u64>(), 3, "no play is counted twice");
    let entries = fan.local().ledger.verify().unwrap();
    assert!(entries >= 8, "4 recorded + states and receipts: {entries}");
    fan.shutdown().await;
    artist.shutdown().await;
}

fn terms(artist: ArtistKey, fan: Pseudonym, n: u64, total: u64, splits: &Splits) -> Terms {
    Terms {
        artist,
        fan,
        n,
        catalog_seq: 1,
        tips: vec![TipTotal { unit: "USD".into(), total, parts: split_tip(total, splits, &[]) }],
        passes: Vec::new(),
        plays: vec![DayPlays { day: today() - 1, track: ContentId([1; 32]), plays: 2, ms: 80_000 }],
    }
}

#[test]
fn artist_rejects_forged_replayed_lower_and_miscalculated_tip_states() {
    let (_dir, artist) = artist_node();
    let me = artist.identity.artist_key().unwrap();
    let key = artist.identity.artist().unwrap();
    let catalog = artist.own_catalog().unwrap().unwrap();
    let splits = catalog.catalog().tip_splits();
    let fan_key = SigningKey::from_bytes(&[9; 32]);
    let fan = Pseudonym(fan_key.verifying_key().to_bytes());
    let signed = |t: Terms| Settlement::sign(t, &fan_key).unwrap();
    let accept = |d: &Settlement| artist.ledger.accept_settlement(d, &catalog, key, today());
    let rejected = |d: &Settlement| match accept(d) {
        Err(LedgerError::Settle(e)) => e,
        other => panic!("expected a rejection, got {other:?}"),
    };

    let first = signed(terms(me, fan, 1, 1_000, &splits));
    let receipt = accept(&first).unwrap();
    receipt.verify(&first).unwrap();

    // Forged: changed after signing, or signed by another key.
    let mut forged = signed(terms(me, fan, 2, 2_000, &splits));
    forged.terms.tips[0].total = 3_000;
    assert_eq!(rejected(&forged), SettleError::Signature(2));
    let other = SigningKey::from_bytes(&[10; 32]);
    let mut impostor =
        Settlement::sign(terms(me, Pseudonym(other.verifying_key().to_bytes()), 2, 2_000, &splits), &other).unwrap();
    impostor.terms.fan = fan;
    assert_eq!(rejected(&impostor), SettleError::Signature(2));

    // Replayed with other content, skipping ahead, and a lower total.
    assert_eq!(rejected(&signed(terms(me, fan, 1, 1_500, &splits))), SettleError::Replay { n: 1, last: 1 });
    assert_eq!(rejected(&signed(terms(me, fan, 3, 1_500, &splits))), SettleError::Gap { n: 3, expected: 2 });
    assert!(matches!(rejected(&signed(terms(me, fan, 2, 999, &splits))), SettleError::Decrease(2, _)));

    // Parts that do not add up, and parts that add up but ignore the artist's splits.
    let mut short = terms(me, fan, 2, 2_000, &splits);
    short.tips[0].parts.recipients[0].1 -= 1;
    assert!(matches!(rejected(&signed(short)), SettleError::Splits(2, m) if m.contains("add up")));
    let mut diverted = terms(me, fan, 2, 2_000, &splits);
    diverted.tips[0].parts.recipients = vec![(ArtistKey([0x66; 32]), 2_000)];
    assert!(matches!(rejected(&signed(diverted)), SettleError::Splits(2, m) if m.contains("splits")));

    // Addressed to someone else; out-of-range plays.
    assert_eq!(rejected(&signed(terms(ArtistKey([1; 32]), fan, 2, 2_000, &splits))), SettleError::WrongArtist(2));
    let mut future = terms(me, fan, 2, 2_000, &splits);
    future.plays[0].day = today() + 30;
    assert!(matches!(rejected(&signed(future)), SettleError::Invalid(2, _)));

    // None of that was stored; the retry of the first gets the same receipt; 2 still fits.
    assert_eq!(accept(&first).unwrap(), receipt);
    assert_eq!(artist.ledger.report(None).unwrap().receipts, 1);
    accept(&signed(terms(me, fan, 2, 2_000, &splits))).unwrap();
    assert_eq!(artist.ledger.report(None).unwrap().tips[0].total, 2_000);
}

/// Every file under `dir` with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    crate::common::files_under(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artists_store_no_master_key_address_or_exact_time_and_see_different_pseudonyms() {
    let dir = tempfile::tempdir().unwrap();
    let a1 = spawn(dir.path(), "one", true).await;
    let a2 = spawn(dir.path(), "two", true).await;
    for (i, a) in [&a1, &a2].into_iter().enumerate() {
        a.publish(&noise_album(&dir.path().join(format!("album{i}")), 1, 0.5), options()).await.unwrap();
    }
    let (k1, k2) = (a1.local().identity.artist_key().unwrap(), a2.local().identity.artist_key().unwrap());
    let fan = spawn(dir.path(), "fan", false).await;
    fan.dial(&addr(&a1).await).await.unwrap();
    fan.dial(&addr(&a2).await).await.unwrap();
    wait_catalog(&fan, &k1).await;
    wait_catalog(&fan, &k2).await;
    for k in [k1, k2] {
        let t = tracks(&fan, &k);
        fan.local().ledger.record_play(t[0], k, 50_000, T, None).unwrap();
        fan.local().ledger.tip(k, usd(250)).unwrap();
    }
    let r = fan.settle().await.unwrap();
    assert_eq!(r.settled.len(), 2, "{r:?}");

    // Two artists, two unlinkable pseudonyms, neither the master key.
    let id = &fan.local().identity;
    let master = id.fan_public();
    let (f1, f2) = (a1.local().ledger.fans().unwrap(), a2.local().ledger.fans().unwrap());
    assert_eq!(f1, vec![Pseudonym(id.pseudonym_for(&k1).verifying_key().to_bytes())]);
    assert_eq!(f2, vec![Pseudonym(id.pseudonym_for(&k2).verifying_key().to_bytes())]);
    assert_ne!(f1, f2);
    assert!(f1[0].0 != master && f2[0].0 != master);

    // Nothing identifying reached the artists' disks.
    let fan_peer: libp2p_identity_bytes::PeerBytes = libp2p_identity_bytes::of(fan.peer_id());
    let fan_addrs = fan.listen_addrs().await.unwrap();
    let secret_file = std::fs::read_to_string(dir.path().join("fan/keys/fan.key")).unwrap();
    let secret_hex = secret_file.lines().nth(1).unwrap().to_string();
    let secret = busker::catalog::ids::parse_hex32(&secret_hex).unwrap();
    for n in [&a1, &a2, &fan] {
        n.shutdown().await;
    }
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("fan master public key".into(), master.to_vec()),
        ("fan master secret".into(), secret.to_vec()),
        ("fan master secret (hex)".into(), secret_hex.into_bytes()),
        ("fan peer id".into(), fan.peer_id().as_bytes().to_vec()),
        ("fan peer id (bytes)".into(), fan_peer.0),
        ("exact play time (LE)".into(), T.to_le_bytes().to_vec()),
        ("exact play time (BE)".into(), T.to_be_bytes().to_vec()),
        ("exact play time (text)".into(), T.to_string().into_bytes()),
        ("exact play time (varint)".into(), postcard::to_stdvec(&T).unwrap()),
        ("play hour (varint)".into(), postcard::to_stdvec(&(T - T % 3600)).unwrap()),
    ];
    for a in &fan_addrs {
        needles.push((format!("fan address {a}"), a.as_bytes().to_vec()));
        let plain = a.split("/p2p/").next().unwrap().to_string();
        needles.push((format!("fan address {plain}"), plain.into_bytes()));
    }
    // Controls: the scan does see inside sled's files (the fan's ledger keeps the hour, the
    // artist keeps the pseudonym).
    let hour = postcard::to_stdvec(&(T - T % 3600)).unwrap();
    assert!(files_under(&dir.path().join("fan")).iter().any(|(_, b)| contains(b, &hour)));
    assert!(files_under(&dir.path().join("one")).iter().any(|(_, b)| contains(b, &f1[0].0)));
    for home in ["one", "two"] {
        for (path, bytes) in files_under(&dir.path().join(home)) {
            for (what, needle) in &needles {
                assert!(!contains(&bytes, needle), "{what} found in {}", path.display());
            }
        }
    }
}

/// Peer-id bytes from the string form, without depending on libp2p in the tests.
mod libp2p_identity_bytes {
    pub struct PeerBytes(pub Vec<u8>);
    /// Decodes base58btc.
    pub fn of(peer: &str) -> PeerBytes {
        const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut out: Vec<u8> = Vec::new();
        for c in peer.bytes() {
            let mut carry = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
            for b in out.iter_mut().rev() {
                carry += u32::from(*b) * 58;
                *b = (carry & 0xff) as u8;
                carry >>= 8;
            }
            while carry > 0 {
                out.insert(0, (carry & 0xff) as u8);
                carry >>= 8;
            }
        }
        let zeros = peer.bytes().take_while(|&c| c == b'1').count();
        PeerBytes([vec![0; zeros], out].concat())
    }
}

#[test]
fn kill_9_during_appends_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("ledger");
    let mut killed_mid_way = 0;
    for round in 0..20u64 {
        let mode = ["single", "concurrent", "batched"][(round % 3) as usize];
        let mut child = Command::new(env!("CARGO_BIN_EXE_busker"))
            .args(["ledger", "bench", "--entries", "100000", "--acks", "--mode", mode, "--dir"])
            .arg(&scratch)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a different number of acknowledgements each round.
        let target = 1 + (round * 37) % 120;
        let mut acked = 0u64;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < target {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(n) = l.strip_prefix("acked ") {
                        acked = acked.max(n.parse().unwrap());
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap_or(()); // SIGKILL
        child.wait().unwrap();
        killed_mid_way += usize::from(!finished);
        let ledger = busker::ledger::bench::scratch(&scratch).unwrap();
        let n = ledger.verify().unwrap_or_else(|e| panic!("round {round} ({mode}): {e}"));
        assert!(n >= acked, "round {round} ({mode}): {acked} acknowledged, {n} on disk");
    }
    assert!(killed_mid_way >= 15, "only {killed_mid_way} of 20 runs were killed mid-way");
}

#[test]
fn ledger_commands_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (artist_home, fan_home) = (dir.path().join("artist"), dir.path().join("fan"));
    {
        let (artist, _) = busker::Local::init(&Home::at(&artist_home), Some("Solo Artist")).unwrap();
        let (fan, _) = busker::Local::init(&Home::at(&fan_home), None).unwrap();
        fan.store.put_catalog(artist.own_catalog().unwrap().unwrap()).unwrap();
    }
    let run = |home: &Path, args: &[&str]| {
        let out = crate::common::busker(home, args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, _, err) = run(&fan_home, &["tip", "solo artist", "2.50", "EUR"]);
    assert!(!ok && err.contains("whole minor units"), "{err}");
    let (ok, _, err) = run(&fan_home, &["tip", "nobody", "250", "EUR"]);
    assert!(!ok && err.contains("no known artist"), "{err}");
    let (ok, out, err) = run(&fan_home, &["tip", "solo artist", "250", "eur"]);
    assert!(ok && out.contains("tip of 250 EUR to Solo Artist"), "{out}{err}");
    let (ok, out, _) = run(&fan_home, &["ledger", "show"]);
    assert!(ok && out.contains("tip    250 EUR"), "{out}");
    let (ok, out, _) = run(&fan_home, &["ledger", "verify"]);
    assert!(ok && out.contains("ledger OK: 1 entries"), "{out}");
    let (ok, out, _) = run(&fan_home, &["ledger", "export", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && v["entries"][0]["body"]["Tip"]["amount"]["minor"] == 250);
    let (ok, out, err) = run(&fan_home, &["budget", "set", "1000", "USD", "--per", "week"]);
    assert!(ok && out.contains("1000 USD per week"), "{out}{err}");
    let (ok, _, err) = run(&fan_home, &["budget", "set", "10", "USD", "--per", "fortnight"]);
    assert!(!ok && err.contains("day, week or month"), "{err}");
    let (ok, _, err) = run(&fan_home, &["report"]);
    assert!(!ok && err.contains("no artist key"), "{err}");
    let (ok, out, _) = run(&artist_home, &["report", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && report["receipts"] == 0);
}
