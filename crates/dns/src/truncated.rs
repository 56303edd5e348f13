//! Answers too big even for TCP, used as far as they go.
//!
//! A DNS message over TCP carries at most 65535 bytes (RFC 1035 4.2.2), and a zone can publish
//! more MX or address records than that holds (or so many addresses that the MX answer's
//! additional section overflows). The server then sends the records that fit with TC set
//! (RFC 2181 9: a truncated answer's complete records may be used). hickory tries UDP, then
//! TCP, then gives up with `NetError::Truncated` and keeps nothing, which would defer every
//! address of the domain. This module asks once more over TCP itself (`direct`) and keeps the complete
//! records of the queried name and type: the partial MX list is then sorted, de-duplicated and
//! probed like a whole one. It does not follow CNAMEs or retry beyond one try per nameserver.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, Record, RecordType};

use crate::direct;

/// Asks each nameserver in turn over TCP, within `timeout` each, and returns the answer
/// records for `name`/`kind` of the first usable response, truncated or not.
pub(crate) async fn tcp_answers(
    servers: &[SocketAddr],
    name: &Name,
    kind: RecordType,
    timeout: Duration,
) -> Result<Vec<Record>, String> {
    direct::ask_each(servers, name, kind, timeout, |code| {
        code == ResponseCode::NoError
    })
    .await
    .map(|response| response.records)
}
