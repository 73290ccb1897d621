//! Throughput floor of the network stack busker must use, with none of busker on top.
//!
//! Moves `BUSKER_FLOOR_MB` MB (default 200, MB = 10^6 bytes, rounded up to whole 256 KiB writes)
//! from one sender to one receiver and to four receivers (four connections, each receiver gets
//! the full amount), all in one process on a tokio multi-thread runtime (default workers), over
//! 127.0.0.1. For each case it prints MB/s (bytes delivered to all receivers ÷ wall time until
//! the last one has everything) and the process CPU seconds used meanwhile. Cases:
//!
//! 1. plain TCP: tokio `TcpStream`, nodelay, no crypto, no muxer;
//! 2. libp2p TCP+noise+yamux built exactly as busker's swarm builds it, but bare: no `Swarm`, no
//!    behaviours, one raw yamux substream per connection (no multistream-select), with a task
//!    driving each connection's muxer as the swarm's connection task would;
//! 3. libp2p TCP+TLS+yamux, bare in the same way (TLS from the patched `vendor/libp2p-tls`,
//!    so AES-GCM on a CPU with AES instructions);
//! 4. libp2p QUIC, bare in the same way;
//! 5. single-thread arithmetic: CPU ms per MB of ring's ChaCha20-Poly1305 seal and open, done as
//!    snow (noise) does them (copy into the output buffer, then seal/open in place) on noise's
//!    largest frame, and of `blake3::hash` on 256 KiB chunks.
//!
//! Every write is stamped with its index at both ends and every 16th is compared byte for byte
//! on arrival; receivers also check the byte count and the end of stream, so a run that loses,
//! repeats or corrupts data panics instead of reporting a figure.
//!
//! Run by hand: `cargo bench --bench stack_floor`. Env: `BUSKER_FLOOR_MB` (default 200),
//! `BUSKER_FLOOR_CASES` (comma-separated subset of `tcp,noise,tls,quic,crypto`; default all).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt, SubstreamBox};
use libp2p::core::transport::{Boxed, DialOpts, ListenerId, PortUse, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::core::{Endpoint, Transport};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, noise, quic, tcp, tls, yamux};
use ring::aead;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Bytes per application write, as the task asks (and near busker's chunk reads).
const CHUNK: usize = 256 * 1024;
/// Every `SAMPLE`-th chunk is compared with what was sent byte for byte.
const SAMPLE: u64 = 16;
/// Largest plaintext noise seals into one frame (libp2p-noise `MAX_FRAME_LEN`: 65535 − 1024).
const NOISE_FRAME: usize = 65535 - 1024;
/// A full-size QUIC packet payload on loopback, roughly (quinn's default MTU ceiling is 1452).
const QUIC_PACKET: usize = 1400;
/// Fan-out of the 1 → N cases.
const FANS: usize = 4;

type Conn = (PeerId, StreamMuxerBox);
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// CPU seconds (user + system) used by this process, or by this thread with `thread-self`;
/// 10 ms resolution (clock ticks).
fn cpu_secs_of(stat: &str) -> f64 {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

fn cpu_secs() -> f64 {
    cpu_secs_of("/proc/self/stat")
}

fn thread_cpu_secs() -> f64 {
    cpu_secs_of("/proc/thread-self/stat")
}

/// The bytes of every write before stamping: deterministic, incompressible-looking.
fn payload() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Marks chunk `i` at both ends, so a lost, repeated or reordered write cannot go unnoticed.
fn stamp(chunk: &mut [u8], i: u64) {
    chunk[..8].copy_from_slice(&i.to_le_bytes());
    chunk[CHUNK - 8..].copy_from_slice(&(!i).to_le_bytes());
}

/// Sends an 8-byte chunk count at once (so the receiver sees the stream before the clock
/// starts), then, once `go` turns true, `chunks` stamped writes of `CHUNK` bytes, then closes.
async fn send<W: AsyncWrite + Unpin>(mut w: W, chunks: u64, mut go: watch::Receiver<bool>) {
    w.write_all(&chunks.to_le_bytes()).await.unwrap();
    w.flush().await.unwrap();
    let mut buf = payload();
    go.wait_for(|go| *go).await.unwrap();
    for i in 0..chunks {
        stamp(&mut buf, i);
        w.write_all(&buf).await.unwrap();
    }
    w.close().await.unwrap();
}

/// What one receiver got.
struct Received {
    /// When the last byte arrived.
    done: Instant,
    bytes: u64,
    compared: u64,
}

/// Reads the count, says it is ready, then reads and checks every chunk and the end of stream.
async fn receive<R: AsyncRead + Unpin>(r: BoxFuture<R>, ready: oneshot::Sender<()>) -> Received {
    let mut r = r.await;
    let mut count = [0u8; 8];
    r.read_exact(&mut count).await.unwrap();
    let chunks = u64::from_le_bytes(count);
    ready.send(()).unwrap();
    let (mut buf, mut expected) = (vec![0u8; CHUNK], payload());
    let (mut bytes, mut compared) = (0, 0);
    for i in 0..chunks {
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf[..8], i.to_le_bytes(), "chunk {i}: wrong head stamp");
        assert_eq!(buf[CHUNK - 8..], (!i).to_le_bytes(), "chunk {i}: wrong tail stamp");
        if i % SAMPLE == 0 {
            stamp(&mut expected, i);
            assert!(buf == expected, "chunk {i}: corrupted");
            compared += 1;
        }
        bytes += CHUNK as u64;
    }
    let done = Instant::now();
    assert_eq!(r.read(&mut buf).await.unwrap(), 0, "bytes after the last chunk");
    Received { done, bytes, compared }
}

/// One case's result over all receivers.
struct Outcome {
    secs: f64,
    cpu: f64,
    bytes: u64,
    compared: u64,
}

/// Moves `chunks` chunks over each (writer, reader) pair at once; times from the go signal to
/// the last receiver's last byte. Readers are futures: a muxed inbound substream only exists
/// once the sender has written to it.
async fn run<W, R>(pairs: Vec<(W, BoxFuture<R>)>, chunks: u64) -> Outcome
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let (go, go_rx) = watch::channel(false);
    let (mut senders, mut receivers, mut ready) = (Vec::new(), Vec::new(), Vec::new());
    for (w, r) in pairs {
        senders.push(tokio::spawn(send(w, chunks, go_rx.clone())));
        let (tx, rx) = oneshot::channel();
        receivers.push(tokio::spawn(receive(r, tx)));
        ready.push(rx);
    }
    for r in ready {
        r.await.unwrap();
    }
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    go.send(true).unwrap();
    let mut got = Vec::new();
    for r in receivers {
        got.push(r.await.unwrap());
    }
    let cpu = cpu_secs() - cpu0;
    for s in senders {
        s.await.unwrap();
    }
    let last = got.iter().map(|r| r.done).max().unwrap();
    let bytes = got.iter().map(|r| r.bytes).sum();
    assert_eq!(bytes, chunks * CHUNK as u64 * got.len() as u64, "short delivery");
    Outcome { secs: (last - t0).as_secs_f64(), cpu, bytes, compared: got.iter().map(|r| r.compared).sum() }
}

/// Plain TCP: `fans` loopback connections, nodelay, no crypto, no muxer. libp2p's tokio
/// `TcpStream` wrapper (the raw layer under noise) adapts tokio's stream to futures-io.
async fn plain_tcp(fans: usize, chunks: u64) -> Outcome {
    let mut pairs = Vec::new();
    for _ in 0..fans {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let out = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (inc, _) = listener.accept().await.unwrap();
        out.set_nodelay(true).unwrap();
        inc.set_nodelay(true).unwrap();
        let reader: BoxFuture<_> = Box::pin(futures::future::ready(tcp::tokio::TcpStream(inc)));
        pairs.push((tcp::tokio::TcpStream(out), reader));
    }
    run(pairs, chunks).await
}

/// TCP + noise + yamux, exactly as `libp2p::SwarmBuilder::with_tcp` assembles it for busker
/// (`src/net/behaviour.rs`), muxer boxed as the swarm boxes it.
fn noise_transport(key: &Keypair) -> Boxed<Conn> {
    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key).unwrap())
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed()
}

/// TCP + TLS 1.3 (libp2p-tls, rustls) + yamux.
fn tls_transport(key: &Keypair) -> Boxed<Conn> {
    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(tls::Config::new(key).unwrap())
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed()
}

/// QUIC as `SwarmBuilder::with_quic` builds it.
fn quic_transport(key: &Keypair) -> Boxed<Conn> {
    quic::tokio::Transport::new(quic::Config::new(key)).map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn))).boxed()
}

/// Listens on `addr`; returns the bound address and a task yielding the first inbound
/// connection, upgraded, with the transport (kept alive for the connection's sake).
async fn listen(mut t: Boxed<Conn>, addr: &str) -> (Multiaddr, JoinHandle<(Boxed<Conn>, Conn)>) {
    t.listen_on(ListenerId::next(), addr.parse().unwrap()).unwrap();
    let bound = loop {
        if let TransportEvent::NewAddress { listen_addr, .. } = t.select_next_some().await {
            break listen_addr;
        }
    };
    let accept = tokio::spawn(async move {
        loop {
            if let TransportEvent::Incoming { upgrade, .. } = t.select_next_some().await {
                let conn = upgrade.await.unwrap();
                return (t, conn);
            }
        }
    });
    (bound, accept)
}

/// Drives a connection's muxer until the connection ends, as the swarm's connection task does
/// (yamux reads, decrypts, encrypts and writes frames only while `poll`/`poll_inbound` run).
/// Hands out the first outbound (`outbound`) or inbound substream; holds `keep` (the listening
/// transport) as long as the connection lives.
fn drive(
    mut muxer: StreamMuxerBox,
    outbound: bool,
    keep: impl Send + 'static,
) -> (oneshot::Receiver<SubstreamBox>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let _keep = keep;
        let mut tx = Some(tx);
        poll_fn(|cx| {
            if tx.is_some() {
                let opened = if outbound { muxer.poll_outbound_unpin(cx) } else { muxer.poll_inbound_unpin(cx) };
                if let Poll::Ready(s) = opened {
                    let _ = tx.take().unwrap().send(s.unwrap());
                }
            }
            loop {
                match muxer.poll_unpin(cx) {
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(_)) => return Poll::Ready(()), // connection closed
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
    });
    (rx, task)
}

/// A bare libp2p stack: `fans` receivers, each its own identity and listener; one sender
/// identity dials them all and opens one raw substream per connection. With `V1Lazy` the
/// listener's upgrade only completes once the dialer's yamux writes, so the inbound side is
/// accepted inside the reader future, after the sender has started.
async fn bare_libp2p(make: fn(&Keypair) -> Boxed<Conn>, listen_on: &str, fans: usize, chunks: u64) -> Outcome {
    let mut sender = make(&Keypair::generate_ed25519());
    let (mut pairs, mut drivers) = (Vec::new(), Vec::new());
    for _ in 0..fans {
        let (addr, accept) = listen(make(&Keypair::generate_ed25519()), listen_on).await;
        let opts = DialOpts { role: Endpoint::Dialer, port_use: PortUse::New };
        let (_, muxer) = sender.dial(addr, opts).unwrap().await.unwrap();
        let (out, driver) = drive(muxer, true, ());
        drivers.push(driver);
        let reader: BoxFuture<SubstreamBox> = Box::pin(async move {
            let (listener, (_, muxer)) = accept.await.unwrap();
            // Ends by itself when the sender's side of the connection is dropped.
            let (inc, _driver) = drive(muxer, false, listener);
            inc.await.unwrap()
        });
        pairs.push((out.await.unwrap(), reader));
    }
    let outcome = run(pairs, chunks).await;
    for d in drivers {
        d.abort(); // drops the sender's muxer: closes the connection
    }
    outcome
}

/// Single-thread CPU cost of `work` on `bytes` bytes, repeated until at least a second of
/// thread CPU has gone by (the clock ticks at 10 ms): (CPU ms per MB, MB/s wall).
fn per_mb(bytes: usize, mut work: impl FnMut()) -> (f64, f64) {
    let (cpu0, t0) = (thread_cpu_secs(), Instant::now());
    let mut done = 0;
    while thread_cpu_secs() - cpu0 < 1.0 {
        for _ in 0..64 {
            work();
        }
        done += 64 * bytes;
    }
    let mb = done as f64 / 1e6;
    ((thread_cpu_secs() - cpu0) * 1e3 / mb, mb / t0.elapsed().as_secs_f64())
}

/// ChaCha20-Poly1305 seal then open of `frame`-byte frames, each as snow's ring resolver does
/// it: copy into the output buffer, then seal (open) in place.
fn chacha(frame: usize) -> [(f64, f64); 2] {
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &[7; 32]).unwrap());
    let nonce = |n: u64| {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_le_bytes());
        aead::Nonce::assume_unique_for_key(b)
    };
    let plain = &payload()[..frame];
    let mut out = vec![0u8; frame + 16];
    let mut n = 0;
    let seal = per_mb(frame, || {
        n += 1;
        out[..frame].copy_from_slice(plain);
        let tag = key.seal_in_place_separate_tag(nonce(n), aead::Aad::empty(), &mut out[..frame]).unwrap();
        out[frame..].copy_from_slice(tag.as_ref());
    });
    // One sealed frame opened again and again (same nonce) and checked to be the plaintext.
    let sealed = out.clone();
    let open = per_mb(frame, || {
        out.copy_from_slice(&sealed);
        let opened = key.open_in_place(nonce(n), aead::Aad::empty(), &mut out).unwrap();
        assert_eq!(opened[..8], plain[..8]);
    });
    [seal, open]
}

fn arithmetic() {
    println!("\n--- single-thread arithmetic (CPU ms per MB; MB/s wall) ---");
    let show = |what: &str, (ms, mbs): (f64, f64)| println!("{what:<54} {ms:>6.3} ms/MB  {mbs:>6.0} MB/s");
    let [seal, open] = chacha(NOISE_FRAME);
    show(&format!("ChaCha20-Poly1305 copy+seal, {NOISE_FRAME} B frames (noise)"), seal);
    show(&format!("ChaCha20-Poly1305 copy+open, {NOISE_FRAME} B frames (noise)"), open);
    let [seal, open] = chacha(QUIC_PACKET);
    show(&format!("ChaCha20-Poly1305 copy+seal, {QUIC_PACKET} B (QUIC packets)"), seal);
    show(&format!("ChaCha20-Poly1305 copy+open, {QUIC_PACKET} B (QUIC packets)"), open);
    let chunk = payload();
    let mut sink = 0u8;
    show(&format!("blake3::hash, {CHUNK} B chunks"), per_mb(CHUNK, || sink ^= blake3::hash(&chunk).as_bytes()[0]));
    std::hint::black_box(sink);
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // cargo test --benches / criterion-style listing: nothing to do.
    }
    let mb: u64 = std::env::var("BUSKER_FLOOR_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let cases = std::env::var("BUSKER_FLOOR_CASES").unwrap_or_else(|_| "tcp,noise,tls,quic,crypto".into());
    let want = |c: &str| cases.split(',').any(|w| w.trim() == c);
    let chunks = (mb * 1_000_000).div_ceil(CHUNK as u64);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "\n=== network stack floor over loopback: {:.1} MB per receiver in {chunks} writes of {CHUNK} B ===",
        (chunks * CHUNK as u64) as f64 / 1e6
    );
    let report = |name: &str, fans: usize, o: Outcome| {
        let mb = o.bytes as f64 / 1e6;
        println!(
            "{name:<24} 1 -> {fans}: {mb:>6.1} MB in {:>5.2} s = {:>5.0} MB/s; {:>5.2} CPU s ({:.2} ms/MB); {} chunks compared",
            o.secs,
            mb / o.secs,
            o.cpu,
            o.cpu * 1e3 / mb,
            o.compared
        );
    };
    for fans in [1, FANS] {
        if want("tcp") {
            report("plain TCP", fans, rt.block_on(plain_tcp(fans, chunks)));
        }
        if want("noise") {
            let o = rt.block_on(bare_libp2p(noise_transport, "/ip4/127.0.0.1/tcp/0", fans, chunks));
            report("TCP+noise+yamux (bare)", fans, o);
        }
        if want("tls") {
            let o = rt.block_on(bare_libp2p(tls_transport, "/ip4/127.0.0.1/tcp/0", fans, chunks));
            report("TCP+TLS+yamux (bare)", fans, o);
        }
        if want("quic") {
            let o = rt.block_on(bare_libp2p(quic_transport, "/ip4/127.0.0.1/udp/0/quic-v1", fans, chunks));
            report("QUIC (bare)", fans, o);
        }
    }
    if want("crypto") {
        arithmetic();
    }
}
