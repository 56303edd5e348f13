//! A DNS server for the tests: hickory-server on 127.0.0.1 (UDP and TCP on one port) serving
//! the zone `rollcall.test.`, counting every query, answering SERVFAIL for names that start
//! with `servfail`, and delaying MX queries for names that start with `slow` (to observe how
//! many lookups run at once). Also a nameserver that never answers. `huge` and `mx.wide` hold
//! more records than one TCP message can carry (the answer comes truncated even over TCP);
//! only [`FakeDns::start_with_oversized_answers`] serves them.
//!
//! Addresses in the zone are only ever resolved: no test connects to them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, MX, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

pub const ORIGIN: &str = "rollcall.test.";
/// MX records of `huge`: ~76 bytes each on the wire, so well over 64 KiB.
pub const HUGE_MX: usize = 1000;
/// A records of `mx.wide`: 16 bytes each, so well over 64 KiB.
pub const WIDE_A: usize = 4200;

/// The `i`-th MX host of `huge` (relative to the zone); long names so few fit.
pub fn huge_mx_host(i: usize) -> String {
    format!("mx{i:04}-{}.huge", "x".repeat(50))
}
const TTL: u32 = 300;

type Counts = Arc<Mutex<HashMap<(String, RecordType), usize>>>;

#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
}

struct Handler {
    catalog: Catalog,
    counts: Counts,
    slow: Arc<Concurrency>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let (name, kind) = match request.queries.queries().first() {
            Some(q) => (
                q.name().to_string().trim_end_matches('.').to_string(),
                q.query_type(),
            ),
            None => (String::new(), RecordType::NULL),
        };
        *self
            .counts
            .lock()
            .unwrap()
            .entry((name.clone(), kind))
            .or_default() += 1;
        if name.starts_with("servfail") {
            let response = MessageResponseBuilder::new(&request.queries, None)
                .error_msg(&request.metadata, ResponseCode::ServFail);
            return response_handle.send_response(response).await.unwrap();
        }
        if name.starts_with("slow") && kind == RecordType::MX {
            let now = self.slow.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.slow.max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.slow.now.fetch_sub(1, Ordering::SeqCst);
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

pub struct FakeDns {
    pub addr: SocketAddr,
    counts: Counts,
    slow: Arc<Concurrency>,
    _server: Server<Handler>,
}

impl FakeDns {
    pub async fn start() -> Self {
        Self::start_zone(false).await
    }

    /// Also serves `huge` and `wide`, whose answers do not fit in a TCP message (slow to
    /// build, so only for the tests that need them).
    pub async fn start_with_oversized_answers() -> Self {
        Self::start_zone(true).await
    }

    async fn start_zone(big: bool) -> Self {
        let mut catalog = Catalog::new();
        let origin = Name::from_ascii(ORIGIN).unwrap();
        catalog.upsert(LowerName::from(&origin), vec![Arc::new(zone(origin, big))]);
        let counts = Counts::default();
        let slow = Arc::new(Concurrency::default());
        let mut server = Server::new(Handler {
            catalog,
            counts: counts.clone(),
            slow: slow.clone(),
        });
        // UDP and TCP on the same port (TCP is used for truncated answers).
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        Self {
            addr,
            counts,
            slow,
            _server: server,
        }
    }

    /// Queries received for `name` (relative to the zone, or absolute with a trailing dot).
    pub fn count(&self, name: &str, kind: RecordType) -> usize {
        let key = (fqdn(name).trim_end_matches('.').to_string(), kind);
        self.counts.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    /// The most `slow*` MX queries that were being answered at the same time.
    pub fn max_concurrent_slow(&self) -> usize {
        self.slow.max.load(Ordering::SeqCst)
    }
}

/// A UDP socket on 127.0.0.1 that reads queries and never answers; counts datagrams.
pub struct SilentDns {
    pub addr: SocketAddr,
    received: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentDns {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while socket.recv_from(&mut buf).await.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for SilentDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `name` made absolute under the test zone unless it already ends with a dot.
pub fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.{ORIGIN}")
    }
}

fn n(name: &str) -> Name {
    Name::from_ascii(fqdn(name)).unwrap()
}

struct Zone(InMemoryZoneHandler);

impl Zone {
    fn add(&mut self, name: &str, data: RData) -> &mut Self {
        self.0.upsert_mut(Record::from_rdata(n(name), TTL, data), 1);
        self
    }
    fn mx(&mut self, name: &str, preference: u16, exchange: &str) -> &mut Self {
        self.add(name, RData::MX(MX::new(preference, n(exchange))))
    }
    fn a(&mut self, name: &str, ip: &str) -> &mut Self {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => self.add(name, RData::A(A(v4))),
            IpAddr::V6(v6) => self.add(name, RData::AAAA(AAAA(v6))),
        }
    }
}

/// The test zone. Public-looking addresses here are only resolved, never contacted.
fn zone(origin: Name, big: bool) -> InMemoryZoneHandler {
    let mut z = Zone(InMemoryZoneHandler::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    ));
    z.add(
        ORIGIN,
        RData::SOA(SOA::new(
            n("ns."),
            n("hostmaster"),
            1,
            3600,
            600,
            86_400,
            120,
        )),
    );
    // Several preferences, published out of order.
    z.mx("prefs", 20, "mx-b.prefs")
        .mx("prefs", 10, "mx-a.prefs")
        .mx("prefs", 30, "mx-c.prefs")
        .a("mx-a.prefs", "1.2.3.10")
        .a("mx-b.prefs", "1.2.3.20")
        .a("mx-b.prefs", "2a00:1450:4001::20")
        .a("mx-c.prefs", "1.2.3.30");
    // Five hosts of equal preference behind a lower-preference one.
    z.mx("equal", 5, "first.equal").a("first.equal", "1.2.4.1");
    for host in ["e1", "e2", "e3", "e4", "e5"] {
        let name = format!("{host}.equal");
        z.mx("equal", 10, &name).a(&name, "1.2.4.10");
    }
    // RFC 7505 null MX; and a root target next to a real MX (malformed, ignored).
    z.add("nullmx", RData::MX(MX::new(0, Name::root())));
    z.add("dotmix", RData::MX(MX::new(0, Name::root())))
        .mx("dotmix", 10, "mx.dotmix")
        .a("mx.dotmix", "1.2.5.1");
    // No MX: implicit MX on the domain's own address (RFC 5321 5.1).
    z.a("aonly", "1.2.6.1");
    z.a("aaaaonly", "2606:4700::6");
    z.a("unspecified", "0.0.0.0");
    // Neither MX nor address: NODATA.
    z.add("nodata", RData::TXT(TXT::new(vec!["v=spf1 -all".into()])));
    // An MX host that does not exist, and a backup that does.
    z.mx("deadmx", 10, "missing.deadmx")
        .mx("deadmx", 20, "backup.deadmx")
        .a("backup.deadmx", "1.2.7.1");
    z.mx("allmissing", 10, "gone1.allmissing")
        .mx("allmissing", 20, "gone2.allmissing");
    // MX hosts on loopback, in private ranges, and a mix of private and public.
    z.mx("loop", 10, "mx.loop")
        .a("mx.loop", "127.0.0.1")
        .a("mx.loop", "::1");
    z.mx("tolocalhost", 10, "localhost.");
    z.mx("private", 10, "mx10.private")
        .mx("private", 20, "mx192.private")
        .a("mx10.private", "10.1.2.3")
        .a("mx192.private", "192.168.1.1");
    z.mx("mixed", 10, "inside.mixed")
        .mx("mixed", 20, "outside.mixed")
        .a("inside.mixed", "10.0.0.1")
        .a("outside.mixed", "1.2.8.1");
    // MX hosts whose address lookup fails (SERVFAIL) - alone, and next to a good backup.
    z.mx("tempmx", 10, "servfail-host.tempmx");
    z.mx("partial", 10, "servfail-primary.partial")
        .mx("partial", 20, "backup.partial")
        .a("backup.partial", "1.2.9.1");
    // Mixed-case exchange names.
    z.add(
        "mixedcase",
        RData::MX(MX::new(
            10,
            Name::from_ascii("MX1.MixedCase.Rollcall.Test.").unwrap(),
        )),
    );
    z.a("mx1.mixedcase", "1.2.10.1");
    // One MX host with 40 addresses (more than a worker may try).
    z.mx("many", 10, "mx.many");
    for i in 0..40 {
        z.a("mx.many", &format!("1.4.0.{}", 1 + i));
    }
    if big {
        // More MX records than fit in one TCP message (65535 bytes, RFC 1035 4.2.2): the
        // server sends what fits with TC set. Every host has an address; preference i for
        // host i.
        for i in 0..HUGE_MX {
            let host = huge_mx_host(i);
            z.mx("huge", i as u16, &host).a(&host, "1.2.11.1");
        }
        // One MX host with more A records than fit in one TCP message (even the MX answer
        // comes truncated: its additional section carries them).
        z.mx("wide", 10, "mx.wide");
        for i in 0..WIDE_A {
            z.a("mx.wide", &format!("1.3.{}.{}", i / 250, 1 + i % 250));
        }
    }
    // Slow MX answers, for the in-flight bound.
    for i in 0..4 {
        let domain = format!("slow{i}");
        let host = format!("mx.slow{i}");
        z.mx(&domain, 10, &host).a(&host, "127.0.0.2");
    }
    z.0
}
