//! The exchange protocol (`/busker/exchange/1.0.0`): catalogs, manifests and chunks.
//!
//! One request, one response, each a small binary frame (not CBOR: a 256 KiB chunk must not
//! be re-encoded as an array of integers). Every length is bounded before anything is
//! allocated, and an unknown tag is an error, never a panic.
//!
//! ```text
//! request  := tag u8 | body            (body ≤ 64 bytes)
//! response := status u8 | len u32 LE | payload (len ≤ limit for the request kind)
//! ```

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::catalog::chunk::{CHUNK, MAX_FILE_BYTES, chunk_count};
use crate::catalog::ids::{ArtistKey, ContentId};
use crate::catalog::signed::MAX_CATALOG_BYTES;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/busker/exchange/1.0.0");
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
    /// A chunk by hash.
    Chunk(ContentId),
    /// Which chunks of a piece of content the peer holds: a bitfield, chunk 0 in the lowest
    /// bit of byte 0.
    Have(ContentId),
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The requested bytes (catalog envelope, manifest or chunk). The receiver verifies them.
    Bytes(Vec<u8>),
    /// The catalog list.
    Catalogs(Vec<(ArtistKey, u64)>),
    /// The peer does not have it.
    NotFound,
    /// The peer refuses (busy, or the request was not acceptable).
    Refused,
    /// The peer just sent this chunk to another connected peer; ask that one, or again later.
    Declined,
}

impl Request {
    fn tag(&self) -> u8 {
        match self {
            Request::Catalog(_) => 1,
            Request::ListCatalogs => 2,
            Request::Manifest(_) => 3,
            Request::Chunk(_) => 4,
            Request::Have(_) => 5,
        }
    }

    /// The largest response payload this request may receive.
    fn limit(&self) -> usize {
        match self {
            Request::Catalog(_) => MAX_CATALOG_BYTES,
            Request::ListCatalogs => MAX_LISTED * 40,
            Request::Manifest(_) => MAX_MANIFEST_BYTES,
            Request::Chunk(_) => CHUNK as usize,
            Request::Have(_) => chunk_count(MAX_FILE_BYTES).div_ceil(8),
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

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Request> {
        let mut tag = [0u8; 1];
        io.read_exact(&mut tag).await?;
        Ok(match tag[0] {
            1 => Request::Catalog(ArtistKey(read_id(io).await?)),
            2 => Request::ListCatalogs,
            3 => Request::Manifest(ContentId(read_id(io).await?)),
            4 => Request::Chunk(ContentId(read_id(io).await?)),
            5 => Request::Have(ContentId(read_id(io).await?)),
            t => return Err(invalid(format!("unknown request tag {t}"))),
        })
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Response> {
        let mut head = [0u8; 5];
        io.read_exact(&mut head).await?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let limit = self.last.as_ref().map_or(MAX_CATALOG_BYTES, Request::limit);
        if len > limit {
            return Err(invalid(format!("response of {len} bytes exceeds the {limit}-byte limit")));
        }
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await?;
        Ok(match head[0] {
            0 => Response::Bytes(payload),
            1 => {
                if len % 40 != 0 {
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
            2 => Response::NotFound,
            3 => Response::Refused,
            4 => Response::Declined,
            s => return Err(invalid(format!("unknown response status {s}"))),
        })
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> std::io::Result<()> {
        let mut buf = vec![req.tag()];
        match &req {
            Request::Catalog(k) => buf.extend_from_slice(&k.0),
            Request::Manifest(id) | Request::Chunk(id) | Request::Have(id) => buf.extend_from_slice(&id.0),
            Request::ListCatalogs => {}
        }
        self.last = Some(req);
        io.write_all(&buf).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> std::io::Result<()> {
        let (status, payload): (u8, Vec<u8>) = match res {
            Response::Bytes(b) => (0, b),
            Response::Catalogs(list) => {
                let mut b = Vec::with_capacity(list.len().min(MAX_LISTED) * 40);
                for (k, seq) in list.into_iter().take(MAX_LISTED) {
                    b.extend_from_slice(&k.0);
                    b.extend_from_slice(&seq.to_le_bytes());
                }
                (1, b)
            }
            Response::NotFound => (2, Vec::new()),
            Response::Refused => (3, Vec::new()),
            Response::Declined => (4, Vec::new()),
        };
        io.write_all(&[status]).await?;
        io.write_all(&(payload.len() as u32).to_le_bytes()).await?;
        io.write_all(&payload).await?;
        io.close().await
    }
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
    #[test]
    fn bitfields_round_trip_and_reject_wrong_lengths() {
        let bits = vec![true, false, true, true, false, false, false, false, true];
        let packed = super::pack_bits(&bits);
        assert_eq!(packed, vec![0b0000_1101, 0b1]);
        assert_eq!(super::unpack_bits(&packed, 9), Some(bits));
        assert_eq!(super::unpack_bits(&packed, 20), None);
    }
}
