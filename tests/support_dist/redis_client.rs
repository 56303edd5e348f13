//! A minimal blocking Redis client (RESP2 over std's TcpStream) for the tests' own reads of
//! the store: progress, leases, `CLIENT LIST` / `CLIENT KILL`, and deleting a test's keys.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    /// A simple or bulk string (bulk bytes read lossily as UTF-8).
    Text(String),
    Array(Vec<Reply>),
    Error(String),
}

/// A connection to the tests' Redis on 127.0.0.1:6379.
pub struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Redis {
    pub fn connect() -> io::Result<Redis> {
        let stream = TcpStream::connect(("127.0.0.1", 6379))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Redis {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and reads its reply; an error reply is an `Err`.
    pub fn cmd(&mut self, args: &[&str]) -> io::Result<Reply> {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg.as_bytes());
            frame.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&frame)?;
        match read_reply(&mut self.reader)? {
            Reply::Error(e) => Err(io::Error::other(format!("{}: {e}", args.join(" ")))),
            reply => Ok(reply),
        }
    }

    /// A command whose reply is a list of strings (empty on any other reply).
    pub fn strings(&mut self, args: &[&str]) -> Vec<String> {
        match self.cmd(args) {
            Ok(Reply::Array(items)) => items
                .into_iter()
                .filter_map(|item| match item {
                    Reply::Text(s) => Some(s),
                    _ => None,
                })
                .collect(),
            Ok(other) => panic!("{}: not a list: {other:?}", args.join(" ")),
            Err(e) => panic!("{e}"),
        }
    }

    /// A command whose reply is an integer.
    pub fn int(&mut self, args: &[&str]) -> u64 {
        match self.cmd(args) {
            Ok(Reply::Int(n)) => u64::try_from(n).unwrap_or(0),
            Ok(other) => panic!("{}: not an integer: {other:?}", args.join(" ")),
            Err(e) => panic!("{e}"),
        }
    }

    /// A hash field holding an integer; `None` when absent.
    pub fn int_field(&mut self, key: &str, field: &str) -> Option<u64> {
        match self.cmd(&["HGET", key, field]) {
            Ok(Reply::Text(s)) => s.parse().ok(),
            Ok(Reply::Nil) => None,
            Ok(other) => panic!("HGET {key} {field}: {other:?}"),
            Err(e) => panic!("{e}"),
        }
    }

    /// Every key matching `pattern` (SCAN, so the server is not blocked).
    pub fn scan(&mut self, pattern: &str) -> Vec<String> {
        let mut keys = HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let reply = self
                .cmd(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])
                .unwrap_or_else(|e| panic!("{e}"));
            let Reply::Array(parts) = reply else {
                panic!("SCAN: {reply:?}");
            };
            let [Reply::Text(next), Reply::Array(found)] = parts.as_slice() else {
                panic!("SCAN: {parts:?}");
            };
            keys.extend(found.iter().filter_map(|k| match k {
                Reply::Text(s) => Some(s.clone()),
                _ => None,
            }));
            if next == "0" {
                let mut keys: Vec<String> = keys.into_iter().collect();
                keys.sort();
                return keys;
            }
            cursor = next.clone();
        }
    }

    /// `CLIENT LIST` as (id, client address) pairs.
    pub fn clients(&mut self) -> Vec<(String, String)> {
        let Ok(Reply::Text(list)) = self.cmd(&["CLIENT", "LIST"]) else {
            panic!("CLIENT LIST did not answer with text");
        };
        list.lines()
            .filter_map(|line| {
                let field = |name: &str| {
                    line.split(' ')
                        .find_map(|kv| kv.strip_prefix(name))
                        .map(str::to_string)
                };
                Some((field("id=")?, field("addr=")?))
            })
            .collect()
    }
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "Redis closed the connection",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad RESP: {what}"))
}

fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad("empty line"))?;
    let number = || rest.parse::<i64>().map_err(|_| bad(&line));
    match kind {
        "+" => Ok(Reply::Text(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Int(number()?)),
        "$" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Nil);
            };
            let mut bytes = vec![0; len + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(len);
            Ok(Reply::Text(String::from_utf8_lossy(&bytes).into_owned()))
        }
        "*" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Nil);
            };
            (0..len)
                .map(|_| read_reply(reader))
                .collect::<io::Result<Vec<_>>>()
                .map(Reply::Array)
        }
        _ => Err(bad(&line)),
    }
}
