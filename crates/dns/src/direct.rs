//! One question asked of the configured nameservers directly, over TCP, without hickory's
//! resolver in between: for the answers hickory will not hand over.
//!
//! Two cases need it. An answer truncated even over TCP (`truncated`), which hickory drops
//! whole. And the reverse names of loopback addresses (`127.0.0.0/8`, `::1`), which hickory
//! answers itself with `localhost` (RFC 6761 6.3) without asking anyone: a lab prober bound
//! to `127.0.1.1` must see the PTR its lab DNS serves. Owns the wire exchange only (one try
//! per nameserver, in turn, each within the timeout); what the records mean is the caller's.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A nameserver's response: its code and the answer records for the queried name and type
/// (complete records only, even from a truncated message: RFC 2181 9).
pub(crate) struct Response {
    pub(crate) code: ResponseCode,
    pub(crate) records: Vec<Record>,
}

/// Asks each nameserver in turn over TCP, within `timeout` each, and returns the first
/// response whose code `usable` accepts; otherwise why the last one failed.
pub(crate) async fn ask_each(
    servers: &[SocketAddr],
    name: &Name,
    kind: RecordType,
    timeout: Duration,
    usable: impl Fn(ResponseCode) -> bool,
) -> Result<Response, String> {
    let mut last = "no nameserver".to_string();
    for &server in servers {
        match tokio::time::timeout(timeout, ask(server, name, kind)).await {
            Ok(Ok(response)) if usable(response.code) => return Ok(response),
            Ok(Ok(response)) => last = format!("{server} over TCP: {}", response.code),
            Ok(Err(reason)) => last = format!("{server} over TCP: {reason}"),
            Err(_) => last = format!("{server} over TCP: timed out"),
        }
    }
    Err(last)
}

async fn ask(server: SocketAddr, name: &Name, kind: RecordType) -> Result<Response, String> {
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), kind));
    let id = query.metadata.id;
    let wire = query.to_vec().map_err(|e| e.to_string())?;
    let len = u16::try_from(wire.len()).map_err(|_| "query too long".to_string())?;
    let mut tcp = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    // RFC 1035 4.2.2: each message is prefixed by its length in two bytes.
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&wire);
    tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
    let mut prefix = [0u8; 2];
    tcp.read_exact(&mut prefix)
        .await
        .map_err(|e| e.to_string())?;
    // At most 65535 bytes: the length prefix bounds what is read.
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    tcp.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let response = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    let question = response.queries.first();
    if response.metadata.id != id
        || response.metadata.message_type != MessageType::Response
        || question.is_none_or(|q| q.name() != name || q.query_type() != kind)
    {
        return Err("response does not answer the query".to_string());
    }
    Ok(Response {
        code: response.metadata.response_code,
        records: response
            .answers
            .into_iter()
            .filter(|r| r.record_type() == kind && r.name == *name)
            .collect(),
    })
}
