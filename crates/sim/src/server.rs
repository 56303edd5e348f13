//! The SMTP side of a fleet: binding every live host on one port, and the accept loops (what
//! every connection shares is `shared`'s). Down hosts get a bound but never listening socket,
//! so their address:port is reserved and refuses connections.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Error;
use crate::shared::Shared;
use crate::world::World;

/// Sockets of every host on one port: listeners for live hosts, reservations for down ones.
pub(crate) struct Bound {
    pub port: u16,
    pub listeners: Vec<(u32, TcpListener)>,
    pub reserved: Vec<TcpSocket>,
}

const RANDOM_ATTEMPTS: u32 = 64;

/// Binds every host on `port`, or on a random high port (retrying on EADDRINUSE).
pub(crate) fn bind_all(world: &World, port: Option<u16>) -> Result<Bound, Error> {
    match port {
        Some(p) => bind_on(world, p).map_err(|(addr, source)| Error::Bind {
            what: "SMTP",
            addr,
            source,
        }),
        None => {
            for _ in 0..RANDOM_ATTEMPTS {
                let p = rand::random_range(20_000..61_000u16);
                match bind_on(world, p) {
                    Ok(b) => return Ok(b),
                    Err((_, e))
                        if matches!(
                            e.kind(),
                            io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                        ) => {}
                    Err((addr, source)) => {
                        return Err(Error::Bind {
                            what: "SMTP",
                            addr,
                            source,
                        });
                    }
                }
            }
            Err(Error::NoFreePort {
                attempts: RANDOM_ATTEMPTS,
            })
        }
    }
}

fn bind_on(world: &World, port: u16) -> Result<Bound, (SocketAddr, io::Error)> {
    let mut bound = Bound {
        port,
        listeners: Vec::new(),
        reserved: Vec::new(),
    };
    for (i, h) in world.hosts.iter().enumerate() {
        let addr = SocketAddr::new(IpAddr::V4(h.ip), port);
        if h.external {
            continue;
        }
        let socket = TcpSocket::new_v4().map_err(|e| (addr, e))?;
        if h.down {
            // No SO_REUSEADDR: a parallel fleet cannot take this address:port either.
            socket.bind(addr).map_err(|e| (addr, e))?;
            bound.reserved.push(socket);
        } else {
            socket.set_reuseaddr(true).map_err(|e| (addr, e))?;
            socket.bind(addr).map_err(|e| (addr, e))?;
            let listener = socket.listen(1024).map_err(|e| (addr, e))?;
            bound.listeners.push((i as u32, listener));
        }
    }
    Ok(bound)
}

/// Spawns one accept loop per listener; each connection runs until it ends or the fleet
/// shuts down.
pub(crate) fn spawn_accept_loops(
    bound: Vec<(u32, TcpListener)>,
    shared: &Arc<Shared>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    for (host, listener) in bound {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "sim: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut shutdown = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = crate::connection::serve(stream, peer, host, shared) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {}
                    }
                });
            }
        });
    }
}
