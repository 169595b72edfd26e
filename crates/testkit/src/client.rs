//! A small blocking RESP2 client, so the test kit depends on nothing of ours.
//!
//! Tests use it to prepare data and read the oracle (`DEBUG DIGEST`, `INFO`, `XINFO`, `DUMP`).
//! It is deliberately independent of `redis-sync-resp`: the code under test must not be the
//! code that checks it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR …`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$3\r\nabc` (`None` for `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*2 …` (`None` for `*-1`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Panics when the reply is an error; returns it otherwise. For set-up commands.
    #[track_caller]
    pub fn ok(self) -> Reply {
        if let Reply::Error(e) = &self {
            panic!("server replied with an error: {e}");
        }
        self
    }
    /// The reply as text: status, bulk (lossy UTF-8) or integer; panics otherwise.
    #[track_caller]
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Int(i) => i.to_string(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }
    /// The integer reply; panics otherwise.
    #[track_caller]
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }
    /// The bulk bytes (`None` for nil); panics on other types.
    #[track_caller]
    pub fn bulk(&self) -> Option<Vec<u8>> {
        match self {
            Reply::Bulk(b) => b.clone(),
            other => panic!("expected a bulk reply, got {other:?}"),
        }
    }
    /// The array items; panics on other types (nil array gives an empty vector).
    #[track_caller]
    pub fn array(&self) -> Vec<Reply> {
        match self {
            Reply::Array(a) => a.clone().unwrap_or_default(),
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// The socket under a [`Client`]: plain, or TLS (rustls's blocking stream).
#[derive(Debug)]
enum Conn {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A blocking connection to one server.
#[derive(Debug)]
pub struct Client {
    /// Reads through the buffer; writes go to the socket under it (`get_mut`).
    conn: BufReader<Conn>,
}

impl Client {
    /// Connects to `127.0.0.1:port` with a 30 s read timeout (so a test never hangs forever).
    pub fn connect(port: u16) -> io::Result<Client> {
        Ok(Client {
            conn: BufReader::new(Conn::Tcp(tcp(port)?)),
        })
    }

    /// Connects over TLS (see [`crate::TestCerts`]), checking the certificate for 127.0.0.1.
    pub(crate) fn connect_tls(port: u16, config: Arc<ClientConfig>) -> io::Result<Client> {
        let tls = ClientConnection::new(config, crate::tls::server_name())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Client {
            conn: BufReader::new(Conn::Tls(Box::new(StreamOwned::new(tls, tcp(port)?)))),
        })
    }

    /// Sends one command and reads its reply. Server errors come back as [`Reply::Error`];
    /// only I/O failures are `Err`.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Sends one command without waiting for its reply (for pipelining).
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        self.send_raw(&encode(args))
    }

    /// Writes raw bytes to the socket.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let conn = self.conn.get_mut();
        conn.write_all(bytes)?;
        conn.flush()
    }

    /// Reads one reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.conn)
    }
}

fn tcp(port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Encodes a command as a RESP array of bulk strings.
pub(crate) fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(bad(format!("connection closed in a reply line: {line:?}")));
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    let num = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad length line {line:?}")))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(num()?),
        "$" => match usize::try_from(num()?) {
            Err(_) => Reply::Bulk(None),
            Ok(n) => {
                let mut buf = vec![0; n + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n);
                Reply::Bulk(Some(buf))
            }
        },
        "*" => match usize::try_from(num()?) {
            Err(_) => Reply::Array(None),
            Ok(n) => {
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(read_reply(r)?);
                }
                Reply::Array(Some(items))
            }
        },
        _ => return Err(bad(format!("unexpected reply line {line:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_replies() {
        let input = b"*3\r\n+OK\r\n$-1\r\n*2\r\n:5\r\n$2\r\nab\r\n".to_vec();
        let mut r = BufReader::new(&input[..]);
        let reply = read_reply(&mut r).expect("parse");
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Status("OK".into()),
                Reply::Bulk(None),
                Reply::Array(Some(vec![Reply::Int(5), Reply::Bulk(Some(b"ab".to_vec()))])),
            ]))
        );
    }

    #[test]
    fn truncated_reply_is_an_error() {
        let mut r = BufReader::new(&b"$5\r\nab"[..]);
        assert!(read_reply(&mut r).is_err());
    }
}
