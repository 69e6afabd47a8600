//! A camera that replays recorded RTP packets: a minimal RTSP server on loopback for one
//! client, answering OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER and TEARDOWN (RFC 2326
//! §10) and, after PLAY, sending the packets interleaved in the connection (§10.12: `$`,
//! channel 0, a two-byte length, the packet). The tests choose which packets go, so a lost
//! fragment or a stream joined mid-GOP are exact, repeatable cases.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the server waits for its client and for each request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bounds a request's head.
const MAX_HEADER_LINES: usize = 64;

/// The session description: one H.264 video stream whose parameter sets come in band.
const SDP: &str = "v=0\r\n\
                   o=- 0 0 IN IP4 127.0.0.1\r\n\
                   s=recorded\r\n\
                   t=0 0\r\n\
                   m=video 0 RTP/AVP 96\r\n\
                   c=IN IP4 0.0.0.0\r\n\
                   a=rtpmap:96 H264/90000\r\n\
                   a=fmtp:96 packetization-mode=1\r\n\
                   a=control:stream=0\r\n";

/// The RTP packets of a file of RFC 4571 frames (a two-byte length before each).
pub fn read_rfc4571(data: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut at = 0;
    while at + 2 <= data.len() {
        let len = usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
        let end = (at + 2 + len).min(data.len());
        packets.push(data[at + 2..end].to_vec());
        at = end;
    }
    packets
}

/// The replaying camera; it serves one client, then stops.
pub struct RtspReplay {
    pub port: u16,
    thread: Option<JoinHandle<()>>,
}

impl RtspReplay {
    /// Listens on 127.0.0.1 and, to the first client, plays `packets` once, in order.
    pub fn start(packets: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let thread = std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                let _ = serve(stream, port, &packets);
            }
        });
        Self {
            port,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/recorded", self.port)
    }
}

impl Drop for RtspReplay {
    fn drop(&mut self) {
        // The thread ends when its client leaves or its reads time out.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, port: u16, packets: &[Vec<u8>]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some((method, cseq)) = read_request(&mut reader)? else {
            return Ok(());
        };
        let head = |extra: &str| format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}");
        let response = match method.as_str() {
            "OPTIONS" => {
                head("Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n\r\n")
            }
            "DESCRIBE" => head(&format!(
                "Content-Base: rtsp://127.0.0.1:{port}/recorded/\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
                SDP.len()
            )),
            "SETUP" => head(
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678;timeout=60\r\n\r\n",
            ),
            "PLAY" => head("Session: 12345678\r\n\r\n"),
            "GET_PARAMETER" => head("Session: 12345678\r\n\r\n"),
            "TEARDOWN" => {
                writer.write_all(head("Session: 12345678\r\n\r\n").as_bytes())?;
                return Ok(());
            }
            _ => format!("RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n"),
        };
        writer.write_all(response.as_bytes())?;
        if method == "PLAY" {
            for packet in packets {
                let len = u16::try_from(packet.len()).expect("an RTP packet fits");
                let mut frame = vec![b'$', 0];
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(packet);
                writer.write_all(&frame)?;
            }
        }
    }
}

/// The next request's method and CSeq; `None` once the client has gone.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<(String, String)>> {
    let mut method = None;
    let mut cseq = String::new();
    let mut content_length = 0;
    for _ in 0..MAX_HEADER_LINES {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            if method.is_none() {
                continue;
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body)?;
            return Ok(method.map(|m| (m, cseq)));
        }
        if method.is_none() {
            method = line.split(' ').next().map(str::to_owned);
        } else if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "cseq" => cseq = value.trim().to_owned(),
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    Ok(None)
}
