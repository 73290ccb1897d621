//! Joins yamux's frame headers with what follows them, so each frame costs one sealed write.
//!
//! yamux writes every frame as two writes: its 12-byte header, then its body. Under yamux on
//! TCP sits TLS (or noise), which seals each write as its own record and hands it to the
//! kernel at once. A data frame therefore cost two socket writes, the first of 12 bytes, and the
//! receiver woke up for the header alone. [`Coalesce`] sits between the security layer and
//! yamux: a short write is held back (and reported written), then goes out in one vectored
//! write together with the next write, or on the flush that yamux issues after every frame.
//! [`JoinedYamux`] is yamux's connection upgrade with that layer underneath.

use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::yamux;

/// Writes of at most this many bytes are held back to join the next one (a yamux header is 12).
const HELD: usize = 64;

/// An I/O stream whose short writes wait to go out with the next write or flush.
#[derive(Debug)]
pub(crate) struct Coalesce<S> {
    inner: S,
    held: [u8; HELD],
    len: usize,
}

impl<S> Coalesce<S> {
    pub(crate) fn new(inner: S) -> Self {
        Coalesce { inner, held: [0; HELD], len: 0 }
    }

    /// Drops the first `n` held bytes (written by the inner stream).
    fn consume(&mut self, n: usize) {
        self.held.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Writes out every held byte.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.len > 0 {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[..self.len]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(n.min(self.len));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if buf.len() <= HELD - this.len {
            this.held[this.len..this.len + buf.len()].copy_from_slice(buf);
            this.len += buf.len();
            return Poll::Ready(Ok(buf.len()));
        }
        while this.len > 0 {
            let bufs = [IoSlice::new(&this.held[..this.len]), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_held = n.min(this.len);
            this.consume(from_held);
            if n > from_held {
                return Poll::Ready(Ok(n - from_held));
            }
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read_vectored(cx, bufs)
    }
}

/// yamux's connection upgrade, running yamux over [`Coalesce`].
#[derive(Clone, Debug)]
pub(crate) struct JoinedYamux(pub(crate) yamux::Config);

impl UpgradeInfo for JoinedYamux {
    type Info = <yamux::Config as UpgradeInfo>::Info;
    type InfoIter = <yamux::Config as UpgradeInfo>::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.protocol_info()
    }
}

impl<C> InboundConnectionUpgrade<C> for JoinedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = yamux::Muxer<Coalesce<C>>;
    type Error = io::Error;
    type Future = <yamux::Config as InboundConnectionUpgrade<Coalesce<C>>>::Future;

    fn upgrade_inbound(self, io: C, info: Self::Info) -> Self::Future {
        self.0.upgrade_inbound(Coalesce::new(io), info)
    }
}

impl<C> OutboundConnectionUpgrade<C> for JoinedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = yamux::Muxer<Coalesce<C>>;
    type Error = io::Error;
    type Future = <yamux::Config as OutboundConnectionUpgrade<Coalesce<C>>>::Future;

    fn upgrade_outbound(self, io: C, info: Self::Info) -> Self::Future {
        self.0.upgrade_outbound(Coalesce::new(io), info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncWriteExt;

    /// A stream that records each write call, accepting at most `max` bytes per call.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        flushes: usize,
        max: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = buf.len().min(this.max);
            this.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(this.max);
            this.writes.push(all[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn recorder(max: usize) -> Coalesce<Recorder> {
        Coalesce::new(Recorder { max, ..Recorder::default() })
    }

    #[tokio::test]
    async fn a_header_goes_out_with_the_body_that_follows_it() {
        let mut s = recorder(usize::MAX);
        let body = vec![7u8; 1000];
        s.write_all(&[1; 12]).await.unwrap();
        assert!(s.inner.writes.is_empty(), "a short write is held");
        s.write_all(&body).await.unwrap();
        assert_eq!(s.inner.writes, vec![[vec![1; 12], body].concat()], "one write for both");
    }

    #[tokio::test]
    async fn a_lone_header_goes_out_on_flush_and_close() {
        let mut s = recorder(usize::MAX);
        s.write_all(&[1; 12]).await.unwrap();
        s.write_all(&[2; 12]).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(s.inner.writes, vec![[[1; 12], [2; 12]].concat()]);
        assert_eq!(s.inner.flushes, 1);
        s.write_all(&[3; 5]).await.unwrap();
        s.close().await.unwrap();
        assert_eq!(s.inner.writes.last().unwrap(), &vec![3; 5]);
    }

    #[tokio::test]
    async fn partial_writes_lose_and_repeat_no_byte() {
        // The inner stream takes 5 bytes per call: the held header goes out in pieces first.
        let mut s = recorder(5);
        let body: Vec<u8> = (0..100).collect();
        s.write_all(&[9; 12]).await.unwrap();
        s.write_all(&body).await.unwrap();
        s.flush().await.unwrap();
        let sent: Vec<u8> = s.inner.writes.concat();
        assert_eq!(sent, [vec![9; 12], body].concat());
    }
}
