//! Answers too big even for TCP, used as far as they go.
//!
//! A DNS message over TCP carries at most 65535 bytes (RFC 1035 4.2.2), and a zone can publish
//! more MX or address records than that holds (or so many addresses that the MX answer's
//! additional section overflows). The server then sends the records that fit with TC set
//! (RFC 2181 9: a truncated answer's complete records may be used). hickory tries UDP, then
//! TCP, then gives up with `NetError::Truncated` and keeps nothing, which would defer every
//! address of the domain. This module asks once more over TCP itself and keeps the complete
//! records of the queried name and type: the partial MX list is then sorted, de-duplicated and
//! probed like a whole one. It does not follow CNAMEs or retry beyond one try per nameserver.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Asks each nameserver in turn over TCP, within `timeout` each, and returns the answer
/// records for `name`/`kind` of the first usable response, truncated or not.
pub(crate) async fn tcp_answers(
    servers: &[SocketAddr],
    name: &Name,
    kind: RecordType,
    timeout: Duration,
) -> Result<Vec<Record>, String> {
    let mut last = "no nameserver".to_string();
    for &server in servers {
        match tokio::time::timeout(timeout, ask(server, name, kind)).await {
            Ok(Ok(records)) => return Ok(records),
            Ok(Err(reason)) => last = format!("{server} over TCP: {reason}"),
            Err(_) => last = format!("{server} over TCP: timed out"),
        }
    }
    Err(last)
}

async fn ask(server: SocketAddr, name: &Name, kind: RecordType) -> Result<Vec<Record>, String> {
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
    if response.metadata.response_code != ResponseCode::NoError {
        return Err(response.metadata.response_code.to_string());
    }
    Ok(response
        .answers
        .into_iter()
        .filter(|r| r.record_type() == kind && r.name == *name)
        .collect())
}
