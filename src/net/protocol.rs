//! The exchange protocol (`/busker/exchange/1.0.0`): catalogs, manifests and chunks.
//!
//! One request, one response, each a small binary frame (not CBOR: a 256 KiB chunk must not
//! be re-encoded as an array of integers). Every length is bounded before anything is
//! allocated, and an unknown tag is an error, never a panic.
//!
//! ```text
//! request  := tag u8 | body            (body ≤ 1 + 32 × MAX_HAVES bytes)
//! response := status u8 | len u32 LE | payload (len ≤ limit for the request kind)
//!           | 5 | n u32 LE | n × (status u8 | len u32 LE | payload)   (chunks, have: n = ids asked)
//! ```
//!
//! Over request-response each request has a substream of its own. Chunk and availability
//! requests normally travel on lanes instead (`lane.rs`): long-lived streams carrying the same
//! frames one after another, answers in request order.
//!
//! A chunk request names up to [`MAX_BATCH`] chunks, answered in one response with one entry
//! each: a bulk fetch pays the per-request costs (two trips through the event loop and the
//! blocking pool) once per four chunks. A player's stream asks one at a time, so the chunk
//! the decoder waits for never waits behind others. Likewise an availability request names up
//! to [`MAX_HAVES`] pieces of content: a fan fetching a release polls each fellow fan once for
//! all its tracks, not once per track.

pub use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::catalog::buffers::Buffer;
use crate::catalog::chunk::{CHUNK, MAX_FILE_BYTES, chunk_count};
use crate::catalog::ids::{ArtistKey, ContentId};
use crate::catalog::signed::MAX_CATALOG_BYTES;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/busker/exchange/1.0.0");
/// Most chunks one request may name.
pub const MAX_BATCH: usize = 4;
/// Most pieces of content one availability request may name.
pub const MAX_HAVES: usize = 16;
/// Most announcements in one catalog list.
pub const MAX_LISTED: usize = 4096;
const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// What one peer asks another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The newest catalog envelope of an artist.
    Catalog(ArtistKey),
    /// Every catalog the peer holds, as (artist, sequence) pairs.
    ListCatalogs,
    /// A manifest by content id.
    Manifest(ContentId),
    /// Chunks by hash: 1 to [`MAX_BATCH`] of them.
    Chunks(Vec<ContentId>),
    /// Which chunks of each of 1 to [`MAX_HAVES`] pieces of content the peer holds: one
    /// bitfield per content id (chunk 0 in the lowest bit of byte 0), in one [`Response::Each`].
    /// A node fetching a release asks each peer about all its tracks at once.
    Have(Vec<ContentId>),
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The requested bytes (catalog envelope, manifest or chunk). The receiver verifies them.
    /// Shared: a chunk kept in memory goes to several peers without a copy.
    Bytes(Bytes),
    /// The catalog list.
    Catalogs(Vec<(ArtistKey, u64)>),
    /// The peer does not have it.
    NotFound,
    /// The peer refuses (busy, or the request was not acceptable).
    Refused,
    /// The peer just sent this chunk to another connected peer; ask that one, or again later.
    Declined,
    /// One answer per id asked by a [`Request::Chunks`] or [`Request::Have`], in order (each
    /// `Bytes`, `NotFound`, `Refused` or `Declined`).
    Each(Vec<Response>),
}

impl Response {
    /// The answer for each of `n` ids asked in one request: the entries of an `Each`
    /// response, or a whole-request answer (not found, refused) applied to each. An answer of
    /// the wrong shape counts as refused for every id.
    pub fn each(self, n: usize) -> Vec<Response> {
        match self {
            Response::Each(v) if v.len() == n => v,
            Response::NotFound => (0..n).map(|_| Response::NotFound).collect(),
            _ => (0..n).map(|_| Response::Refused).collect(),
        }
    }
}

impl Request {
    fn tag(&self) -> u8 {
        match self {
            Request::Catalog(_) => 1,
            Request::ListCatalogs => 2,
            Request::Manifest(_) => 3,
            Request::Chunks(_) => 4,
            Request::Have(_) => 5,
        }
    }

    /// The largest response payload this request may receive.
    fn limit(&self) -> usize {
        match self {
            Request::Catalog(_) => MAX_CATALOG_BYTES,
            Request::ListCatalogs => MAX_LISTED * 40,
            Request::Manifest(_) => MAX_MANIFEST_BYTES,
            Request::Chunks(_) | Request::Have(_) => 0,
        }
    }

    /// For a request answered with one entry per id: the ids asked and the largest entry.
    fn each(&self) -> Option<(usize, usize)> {
        match self {
            Request::Chunks(ids) => Some((ids.len(), CHUNK as usize)),
            Request::Have(ids) => Some((ids.len(), chunk_count(MAX_FILE_BYTES).div_ceil(8))),
            _ => None,
        }
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// The request-response codec. Remembers nothing between messages except which request kind
/// each response answers, which request-response keeps for us by calling per stream.
#[derive(Clone, Debug, Default)]
pub struct Codec {
    /// Kind of the last request written on this codec instance, for response bounds.
    last: Option<Request>,
}

async fn read_id<T: AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<[u8; 32]> {
    let mut id = [0u8; 32];
    io.read_exact(&mut id).await?;
    Ok(id)
}

/// Reads a count (1 to `max`) and that many content ids, for a `what` request.
async fn read_ids<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize, what: &str) -> std::io::Result<Vec<ContentId>> {
    let mut n = [0u8; 1];
    io.read_exact(&mut n).await?;
    let n = usize::from(n[0]);
    if n == 0 || n > max {
        return Err(invalid(format!("a {what} request names {n} ids (1 to {max} allowed)")));
    }
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(ContentId(read_id(io).await?));
    }
    Ok(ids)
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Request> {
        read_request(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Response> {
        read_response(io, self.last.as_ref()).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> std::io::Result<()> {
        write_request(io, &req).await?;
        self.last = Some(req);
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> std::io::Result<()> {
        write_response(io, res).await?;
        io.close().await
    }
}

/// Reads one request. Also the request frame of a lane (see [`super::lane`]).
pub(super) async fn read_request<T: AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<Request> {
    let mut tag = [0u8; 1];
    io.read_exact(&mut tag).await?;
    Ok(match tag[0] {
        1 => Request::Catalog(ArtistKey(read_id(io).await?)),
        2 => Request::ListCatalogs,
        3 => Request::Manifest(ContentId(read_id(io).await?)),
        4 => Request::Chunks(read_ids(io, MAX_BATCH, "chunk").await?),
        5 => Request::Have(read_ids(io, MAX_HAVES, "availability").await?),
        t => return Err(invalid(format!("unknown request tag {t}"))),
    })
}

/// Reads the response to `asked` (bounded by what that request may receive; `None`: the
/// catalog limit).
pub(super) async fn read_response<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    asked: Option<&Request>,
) -> std::io::Result<Response> {
    let mut head = [0u8; 5];
    io.read_exact(&mut head).await?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if head[0] == 5 {
        return read_each(io, len, asked).await;
    }
    let limit = asked.map_or(MAX_CATALOG_BYTES, Request::limit);
    if len > limit {
        return Err(invalid(format!("response of {len} bytes exceeds the {limit}-byte limit")));
    }
    let payload = read_payload(io, len).await?;
    Ok(match head[0] {
        0 => Response::Bytes(payload),
        1 => {
            if !len.is_multiple_of(40) {
                return Err(invalid("catalog list is not a whole number of entries"));
            }
            Response::Catalogs(
                payload
                    .chunks_exact(40)
                    .map(|e| {
                        let mut k = [0u8; 32];
                        k.copy_from_slice(&e[..32]);
                        let mut s = [0u8; 8];
                        s.copy_from_slice(&e[32..]);
                        (ArtistKey(k), u64::from_le_bytes(s))
                    })
                    .collect(),
            )
        }
        s => without_bytes(s).ok_or_else(|| invalid(format!("unknown response status {s}")))?,
    })
}

/// Writes one request, without closing the stream.
pub(super) async fn write_request<T: AsyncWrite + Unpin + Send>(io: &mut T, req: &Request) -> std::io::Result<()> {
    let mut buf = vec![req.tag()];
    match req {
        Request::Catalog(k) => buf.extend_from_slice(&k.0),
        Request::Manifest(id) => buf.extend_from_slice(&id.0),
        Request::Chunks(ids) | Request::Have(ids) => {
            let max = if matches!(req, Request::Chunks(_)) { MAX_BATCH } else { MAX_HAVES };
            let ids = &ids[..ids.len().min(max)];
            buf.push(ids.len() as u8);
            ids.iter().for_each(|id| buf.extend_from_slice(&id.0));
        }
        Request::ListCatalogs => {}
    }
    io.write_all(&buf).await?;
    io.flush().await
}

/// Writes one response and flushes it, without closing the stream.
pub(super) async fn write_response<T: AsyncWrite + Unpin + Send>(io: &mut T, res: Response) -> std::io::Result<()> {
    let mut out = Joined::default();
    match res {
        Response::Each(entries) => {
            out.head(5, entries.len());
            for e in entries {
                let (status, payload) = frame(e);
                out.head(status, payload.len());
                out.body(io, &payload).await?;
            }
        }
        res => {
            let (status, payload) = frame(res);
            out.head(status, payload.len());
            out.body(io, &payload).await?;
        }
    }
    out.flush(io).await?;
    io.flush().await
}

/// The status byte and payload of a single answer (a chunk list is framed by its entries).
fn frame(res: Response) -> (u8, Bytes) {
    match res {
        Response::Bytes(b) => (0, b),
        Response::Catalogs(list) => {
            let mut b = Vec::with_capacity(list.len().min(MAX_LISTED) * 40);
            for (k, seq) in list.into_iter().take(MAX_LISTED) {
                b.extend_from_slice(&k.0);
                b.extend_from_slice(&seq.to_le_bytes());
            }
            (1, b.into())
        }
        Response::NotFound => (2, Bytes::new()),
        Response::Refused | Response::Each(_) => (3, Bytes::new()),
        Response::Declined => (4, Bytes::new()),
    }
}

/// Bytes of a response gathered into as few substream writes as possible. yamux sends every
/// write as its own frame, each with its own header and handling at the receiver. So headers
/// are joined with each other and with the start of the payload that follows, up to [`JOIN`]
/// bytes, and the rest of a payload is written straight from its buffer.
#[derive(Default)]
struct Joined {
    buf: Vec<u8>,
}

/// Most bytes joined into one write: yamux's default frame size (`split_send_size`; busker
/// sends frames of up to 64 KiB, see `behaviour.rs`). Small enough that the copy stays cheap.
const JOIN: usize = 16 * 1024;

impl Joined {
    /// Queues a frame header: status and length (or count, for a chunk list).
    fn head(&mut self, status: u8, len: usize) {
        self.buf.push(status);
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
    }

    /// Queues `payload`, writing out what is queued once a frame's worth has gathered.
    async fn body<T: AsyncWrite + Unpin + Send>(&mut self, io: &mut T, payload: &[u8]) -> std::io::Result<()> {
        let take = payload.len().min(JOIN.saturating_sub(self.buf.len()));
        self.buf.extend_from_slice(&payload[..take]);
        if take < payload.len() {
            self.flush(io).await?;
            io.write_all(&payload[take..]).await?;
        }
        Ok(())
    }

    /// Writes out whatever is queued.
    async fn flush<T: AsyncWrite + Unpin + Send>(&mut self, io: &mut T) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Reads a payload of `len` bytes (already checked against its limit).
async fn read_payload<T: AsyncRead + Unpin + Send>(io: &mut T, len: usize) -> std::io::Result<Bytes> {
    let mut payload = Buffer::new(len);
    io.read_exact(payload.as_mut_slice()).await?;
    Ok(payload.freeze())
}

fn without_bytes(status: u8) -> Option<Response> {
    match status {
        2 => Some(Response::NotFound),
        3 => Some(Response::Refused),
        4 => Some(Response::Declined),
        _ => None,
    }
}

/// Reads the `n` entries of a per-id response to `asked` (which must be a chunk or
/// availability request naming exactly `n` ids), each within that request's entry limit.
async fn read_each<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    n: usize,
    asked: Option<&Request>,
) -> std::io::Result<Response> {
    let Some((expected, limit)) = asked.and_then(Request::each) else {
        return Err(invalid("a per-id response to a request for something else"));
    };
    if n != expected {
        return Err(invalid(format!("{n} answers to a request naming {expected} ids")));
    }
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let mut head = [0u8; 5];
        io.read_exact(&mut head).await?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > limit {
            return Err(invalid(format!("an answer of {len} bytes exceeds the {limit}-byte limit")));
        }
        entries.push(match head[0] {
            0 => Response::Bytes(read_payload(io, len).await?),
            s => match without_bytes(s) {
                Some(_) if len != 0 => return Err(invalid("an answer without bytes has a length")),
                Some(answer) => answer,
                None => return Err(invalid(format!("unknown answer status {s}"))),
            },
        });
    }
    Ok(Response::Each(entries))
}

/// Packs booleans into a bitfield, index 0 in the lowest bit of byte 0.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        out[i / 8] |= 1 << (i % 8);
    }
    out
}

/// Unpacks a bitfield of exactly `n` entries; `None` if the length is wrong.
pub fn unpack_bits(bytes: &[u8], n: usize) -> Option<Vec<bool>> {
    (bytes.len() == n.div_ceil(8)).then(|| (0..n).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect())
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    use super::*;

    fn ids(n: u8) -> Vec<ContentId> {
        (0..n).map(|i| ContentId([i; 32])).collect()
    }

    /// Writes `res` as the answer to `req`, then reads it back with a codec that sent `req`.
    fn round_trip(req: Request, res: Response) -> std::io::Result<Response> {
        block_on(async {
            let mut sender = Codec::default();
            sender.write_request(&PROTOCOL, &mut Cursor::new(Vec::new()), req).await?;
            let mut wire = Cursor::new(Vec::new());
            Codec::default().write_response(&PROTOCOL, &mut wire, res).await?;
            sender.read_response(&PROTOCOL, &mut Cursor::new(wire.into_inner())).await
        })
    }

    #[test]
    fn chunk_batches_round_trip_and_bad_ones_are_rejected() {
        // A request for 1..=MAX_BATCH chunks round-trips; 0 or MAX_BATCH + 1 is refused.
        for n in [1, MAX_BATCH as u8] {
            let mut wire = Cursor::new(Vec::new());
            block_on(Codec::default().write_request(&PROTOCOL, &mut wire, Request::Chunks(ids(n)))).unwrap();
            let got = block_on(Codec::default().read_request(&PROTOCOL, &mut Cursor::new(wire.into_inner())));
            assert_eq!(got.unwrap(), Request::Chunks(ids(n)));
        }
        for n in [0u8, MAX_BATCH as u8 + 1] {
            let mut bytes = vec![4, n];
            bytes.extend(std::iter::repeat_n(7u8, 32 * usize::from(n)));
            let err = block_on(Codec::default().read_request(&PROTOCOL, &mut Cursor::new(bytes))).unwrap_err();
            assert!(err.to_string().contains("names 0 ids") || err.to_string().contains("(1 to 4 allowed)"), "{err}");
        }

        let answers = vec![Response::Bytes(vec![1; 1000].into()), Response::Declined, Response::NotFound];
        let got = round_trip(Request::Chunks(ids(3)), Response::Each(answers.clone())).unwrap();
        assert_eq!(got, Response::Each(answers));
        // A whole-request refusal still parses, and applies to each chunk.
        let got = round_trip(Request::Chunks(ids(2)), Response::Refused).unwrap();
        assert_eq!(got.each(2), vec![Response::Refused, Response::Refused]);
        // Fewer answers than chunks asked, and a chunk answer to a manifest request, are errors.
        let err = round_trip(Request::Chunks(ids(3)), Response::Each(vec![Response::NotFound])).unwrap_err();
        assert!(err.to_string().contains("1 answers to a request naming 3 ids"), "{err}");
        let err = round_trip(Request::Manifest(ContentId([0; 32])), Response::Each(vec![])).unwrap_err();
        assert!(err.to_string().contains("request for something else"), "{err}");
        // An entry longer than a chunk is refused before anything is allocated for it.
        let oversized = Response::Each(vec![Response::Bytes(vec![0; CHUNK as usize + 1].into())]);
        let err = round_trip(Request::Chunks(ids(1)), oversized).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn availability_requests_name_several_contents_and_get_a_bitfield_each() {
        let n = MAX_HAVES as u8;
        let mut wire = Cursor::new(Vec::new());
        block_on(Codec::default().write_request(&PROTOCOL, &mut wire, Request::Have(ids(n)))).unwrap();
        let got = block_on(Codec::default().read_request(&PROTOCOL, &mut Cursor::new(wire.into_inner())));
        assert_eq!(got.unwrap(), Request::Have(ids(n)));
        let mut bytes = vec![5, n + 1];
        bytes.extend(std::iter::repeat_n(7u8, 32 * usize::from(n + 1)));
        let err = block_on(Codec::default().read_request(&PROTOCOL, &mut Cursor::new(bytes))).unwrap_err();
        assert!(err.to_string().contains("availability request names 17 ids"), "{err}");

        let answers = vec![Response::Bytes(vec![0b101].into()), Response::NotFound];
        let got = round_trip(Request::Have(ids(2)), Response::Each(answers.clone())).unwrap();
        assert_eq!(got, Response::Each(answers));
        // A bitfield longer than the largest file's is refused; so is a lone bitfield.
        let big = chunk_count(MAX_FILE_BYTES).div_ceil(8) + 1;
        let err =
            round_trip(Request::Have(ids(1)), Response::Each(vec![Response::Bytes(vec![0; big].into())])).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        let err = round_trip(Request::Have(ids(1)), Response::Bytes(vec![1].into())).unwrap_err();
        assert!(err.to_string().contains("exceeds the 0-byte limit"), "{err}");
    }

    #[test]
    fn bitfields_round_trip_and_reject_wrong_lengths() {
        let bits = vec![true, false, true, true, false, false, false, false, true];
        let packed = super::pack_bits(&bits);
        assert_eq!(packed, vec![0b0000_1101, 0b1]);
        assert_eq!(super::unpack_bits(&packed, 9), Some(bits));
        assert_eq!(super::unpack_bits(&packed, 20), None);
    }
}
