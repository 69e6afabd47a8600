//! Writes an endless body straight to the connection's socket: each batch of shared buffers
//! goes out with vectored writes, framed as one HTTP/1.1 chunk (RFC 9112 §7.1) or bare for
//! HTTP/1.0, so no byte of it is copied in user space. (`/stream.mjpg` viewers have a writer of
//! their own, `mjpeg_sender`, which this module's framing helpers serve too.)

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::time::Duration;

use tokio::sync::watch;

use super::connection::ConnectionSocket;
use super::endless::{Batch, ChunkSource, shutdown_requested};

/// Buffers gathered into one write: a part's headers, JPEG and boundary with room to spare.
pub const MAX_BATCH_CHUNKS: usize = 6;

/// Chunk-size line (hex, at most 16 digits for a 64-bit length) and its CRLF.
pub const CHUNK_LINE_BYTES: usize = 18;

/// Writes `viewer`'s body to `socket` until the viewer ends, the socket fails or the server
/// shuts down. A shutdown between batches ends the body cleanly (actix then writes the last
/// chunk); one in the middle of a batch, only possible for a viewer that stopped reading, is
/// an error, which closes the connection. A client that went away ends it quietly, as when
/// actix writes.
pub async fn write_body<V: ChunkSource>(
    socket: ConnectionSocket,
    chunked: bool,
    mut viewer: V,
    mut shutdown: watch::Receiver<bool>,
    stall: Duration,
) -> io::Result<()> {
    let stalled = Stall(stall);
    match run(&socket, chunked, &mut viewer, &mut shutdown, stalled).await {
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(())
        }
        result => result,
    }
}

/// How long one write may wait for the socket to take a byte: a viewer that stopped reading is
/// dropped with a `TimedOut` error after it.
#[derive(Debug, Clone, Copy)]
struct Stall(Duration);

impl Stall {
    async fn guard<T>(self, write: impl Future<Output = io::Result<T>>) -> io::Result<T> {
        tokio::time::timeout(self.0, write).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the viewer took nothing for {} s", self.0.as_secs()),
            )
        })?
    }
}

async fn run<V: ChunkSource>(
    socket: &ConnectionSocket,
    chunked: bool,
    viewer: &mut V,
    shutdown: &mut watch::Receiver<bool>,
    stall: Stall,
) -> io::Result<()> {
    tokio::select! {
        biased;
        _ = shutdown_requested(shutdown) => return Ok(()),
        flushed = stall.guard(async { socket.actix_flushed().await; Ok(()) }) => flushed?,
    }
    loop {
        let batch = tokio::select! {
            biased;
            _ = shutdown_requested(shutdown) => None,
            batch = viewer.next_batch() => batch,
        };
        let Some(batch) = batch else {
            return Ok(());
        };
        tokio::select! {
            biased;
            _ = shutdown_requested(shutdown) => {
                return Err(io::Error::other("server shutting down in the middle of a write"));
            }
            written = write_batch(socket, chunked, &batch, stall) => written?,
        }
    }
}

/// Writes every byte of `batch`, as one chunk if `chunked`.
async fn write_batch(
    socket: &ConnectionSocket,
    chunked: bool,
    batch: &Batch,
    stall: Stall,
) -> io::Result<()> {
    let chunks = &batch.chunks[..batch.chunks.len().min(MAX_BATCH_CHUNKS)];
    let payload_len = chunks.iter().map(|c| c.len()).sum::<usize>();
    let mut line = [0u8; CHUNK_LINE_BYTES];
    let mut line_len = 0;
    // A zero-size chunk would end the body.
    let framed = chunked && payload_len > 0;
    if framed {
        line_len = chunk_size_line(payload_len, &mut line);
    }
    let trailer: &[u8] = if framed { b"\r\n" } else { b"" };
    let mut pieces: [&[u8]; MAX_BATCH_CHUNKS + 2] = [&[]; MAX_BATCH_CHUNKS + 2];
    pieces[0] = &line[..line_len];
    for (piece, chunk) in pieces[1..].iter_mut().zip(chunks) {
        *piece = chunk;
    }
    pieces[chunks.len() + 1] = trailer;
    let pieces = &pieces[..chunks.len() + 2];
    let total: usize = pieces.iter().map(|p| p.len()).sum();

    let mut written = 0;
    while written < total {
        let n = stall
            .guard(poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_BATCH_CHUNKS + 2];
                let count = remaining_slices(pieces, written, &mut slices);
                socket.poll_write_vectored(cx, &slices[..count])
            }))
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    Ok(())
}

/// Fills `out` with the parts of `pieces` after the first `skip` bytes; returns how many.
pub fn remaining_slices<'a>(pieces: &[&'a [u8]], skip: usize, out: &mut [IoSlice<'a>]) -> usize {
    slices_between(pieces, skip, usize::MAX, out)
}

/// Fills `out` with the parts of `pieces` from byte `from` up to byte `to` of them all;
/// returns how many.
pub fn slices_between<'a>(
    pieces: &[&'a [u8]],
    from: usize,
    to: usize,
    out: &mut [IoSlice<'a>],
) -> usize {
    let mut count = 0;
    let mut piece_start = 0;
    for piece in pieces {
        let piece_end = piece_start + piece.len();
        let start = from.max(piece_start);
        let end = to.min(piece_end);
        if start < end
            && let Some(slot) = out.get_mut(count)
        {
            *slot = IoSlice::new(&piece[start - piece_start..end - piece_start]);
            count += 1;
        }
        piece_start = piece_end;
    }
    count
}

/// Writes `len` in hex and CRLF into `out` (RFC 9112 §7.1: chunk-size CRLF); returns the length.
pub fn chunk_size_line(len: usize, out: &mut [u8; CHUNK_LINE_BYTES]) -> usize {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, digit) in out.iter_mut().take(digits).enumerate() {
        let shift = 4 * (digits - 1 - i);
        *digit = HEX[(len >> shift) & 0xF];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(len: usize) -> String {
        let mut out = [0u8; CHUNK_LINE_BYTES];
        let n = chunk_size_line(len, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn chunk_size_lines_are_hex_with_crlf() {
        assert_eq!(line(0), "0\r\n");
        assert_eq!(line(1), "1\r\n");
        assert_eq!(line(15), "F\r\n");
        assert_eq!(line(16), "10\r\n");
        assert_eq!(line(0x1_2345), "12345\r\n");
        assert_eq!(line(usize::MAX), format!("{:X}\r\n", usize::MAX));
    }

    #[test]
    fn remaining_slices_skip_what_was_written() {
        let pieces: [&[u8]; 3] = [b"ab", b"", b"cde"];
        let mut out = [IoSlice::new(&[]); 4];
        let collect = |out: &[IoSlice<'_>], n: usize| -> Vec<Vec<u8>> {
            out[..n].iter().map(|s| s.to_vec()).collect()
        };
        let n = remaining_slices(&pieces, 0, &mut out);
        assert_eq!(collect(&out, n), vec![b"ab".to_vec(), b"cde".to_vec()]);
        let n = remaining_slices(&pieces, 1, &mut out);
        assert_eq!(collect(&out, n), vec![b"b".to_vec(), b"cde".to_vec()]);
        let n = remaining_slices(&pieces, 2, &mut out);
        assert_eq!(collect(&out, n), vec![b"cde".to_vec()]);
        let n = remaining_slices(&pieces, 4, &mut out);
        assert_eq!(collect(&out, n), vec![b"e".to_vec()]);
        assert_eq!(remaining_slices(&pieces, 5, &mut out), 0);
        // Up to a byte: the pieces it cuts through end there.
        let n = slices_between(&pieces, 1, 4, &mut out);
        assert_eq!(collect(&out, n), vec![b"b".to_vec(), b"cd".to_vec()]);
        let n = slices_between(&pieces, 2, 4, &mut out);
        assert_eq!(collect(&out, n), vec![b"cd".to_vec()]);
        assert_eq!(slices_between(&pieces, 2, 2, &mut out), 0);
    }
}
