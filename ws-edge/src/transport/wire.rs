//! A WebSocket connection's two directions, each on its own half of the
//! TCP stream, so that a frame shared by many connections is never copied
//! into any one of them.
//!
//! - Reading ([`WsStream`]) is tungstenite's: masking, fragments, UTF-8,
//!   size limits, control frames. It reads from the socket's read half; what
//!   it would write (its automatic pong and close replies) goes nowhere,
//!   because the connection's writer answers those itself
//!   (`upgrade::Keepalive` carries the pong owed, the close is the
//!   connection's own).
//! - Writing ([`Outbound`]) is ours: a server frame is a header of 2 to 10
//!   bytes and the payload, unmasked (RFC 6455, 5.2). The two go out in one
//!   vectored write straight from the payload's `Bytes`, which every
//!   subscriber of a view shares. No per-connection write buffer exists,
//!   so a connection holds a frame only while the kernel has not taken it,
//!   and an idle one holds none.

use std::io;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The reading side of a WebSocket connection.
pub type WsStream = WebSocketStream<ReadSide>;

/// A socket's read half, for tungstenite to read frames from. Whatever
/// tungstenite writes is dropped: the connection's [`Outbound`] answers pings
/// and closes.
pub struct ReadSide(OwnedReadHalf);

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Splits an upgraded socket into its reading side (given the bytes the
/// HTTP connection read past the handshake) and its writer.
pub async fn split(
    stream: TcpStream,
    read_already: Vec<u8>,
    config: WebSocketConfig,
) -> (WsStream, Outbound) {
    let (read, write) = stream.into_split();
    let read = ReadSide(read);
    let reading = if read_already.is_empty() {
        WebSocketStream::from_raw_socket(read, Role::Server, Some(config)).await
    } else {
        WebSocketStream::from_partially_read(read, read_already, Role::Server, Some(config)).await
    };
    (reading, Outbound(write))
}

/// The writing side of a WebSocket connection: one frame at a time, each
/// from its payload where it lies.
pub struct Outbound(OwnedWriteHalf);

impl Outbound {
    /// Writes one message as one unfragmented frame. Dropping the future
    /// part way leaves the connection mid-frame: the caller then closes it.
    pub async fn send(&mut self, msg: &Message) -> io::Result<()> {
        let close;
        let (opcode, payload): (u8, &[u8]) = match msg {
            Message::Text(t) => (OP_TEXT, t.as_bytes()),
            Message::Binary(b) => (OP_BINARY, b),
            Message::Ping(b) => (OP_PING, b),
            Message::Pong(b) => (OP_PONG, b),
            Message::Close(frame) => {
                close = close_payload(frame.as_ref());
                (OP_CLOSE, &close)
            }
            Message::Frame(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "raw frames are not written here",
                ));
            }
        };
        let (head, len) = header(opcode, payload.len());
        write_both(&mut self.0, &head[..len], payload).await
    }

    /// Ends the writing direction (TCP FIN), once the close is written.
    pub async fn shutdown(&mut self) {
        let _ = self.0.shutdown().await;
    }
}

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A close frame's payload: the code, then the reason (cut to fit the 125
/// bytes of a control frame, on a character boundary).
fn close_payload(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> Vec<u8> {
    let Some(frame) = frame else {
        return Vec::new();
    };
    let mut reason: &str = &frame.reason;
    while reason.len() > 123 {
        let mut cut = 123;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason = &reason[..cut];
    }
    let mut out = Vec::with_capacity(2 + reason.len());
    out.extend_from_slice(&u16::from(frame.code).to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

/// A final, unmasked frame's header: its bytes and how many of them count.
fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// Writes `a` then `b`, in as few writes as the kernel allows.
async fn write_both<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut a: &[u8],
    mut b: &[u8],
) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = if a.is_empty() {
            w.write(b).await?
        } else {
            w.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    /// What our writer writes, tungstenite (as a client) reads back whole:
    /// each length form, a close with a reason cut on a character boundary,
    /// pings and pongs.
    #[tokio::test]
    async fn frames_read_back_as_written() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let ws = WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
            ws.collect::<Vec<_>>().await
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let (_read, mut out) = split(tcp, Vec::new(), WebSocketConfig::default()).await;
        let texts = ["", &"a".repeat(125), &"b".repeat(126), &"c".repeat(70_000)];
        for t in texts {
            out.send(&Message::text(t)).await.unwrap();
        }
        out.send(&Message::Ping(b"p".as_slice().into()))
            .await
            .unwrap();
        out.send(&Message::Pong(b"q".as_slice().into()))
            .await
            .unwrap();
        let long = "é".repeat(100);
        let close = Message::Close(Some(CloseFrame {
            code: 1008u16.into(),
            reason: long.as_str().into(),
        }));
        out.send(&close).await.unwrap();
        out.shutdown().await;
        let got = client.await.unwrap();
        let mut got = got.into_iter().map(|m| m.unwrap());
        for t in texts {
            assert_eq!(got.next(), Some(Message::text(t)));
        }
        assert_eq!(got.next(), Some(Message::Ping(b"p".as_slice().into())));
        assert_eq!(got.next(), Some(Message::Pong(b"q".as_slice().into())));
        match got.next() {
            Some(Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1008);
                assert_eq!(f.reason.as_str(), &long[..122]);
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn headers_take_the_shortest_length_form() {
        assert_eq!(&header(OP_TEXT, 5).0[..2], &[0x81, 5]);
        assert_eq!(&header(OP_TEXT, 126).0[..4], &[0x81, 126, 0, 126]);
        let (h, n) = header(OP_BINARY, 1 << 16);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
