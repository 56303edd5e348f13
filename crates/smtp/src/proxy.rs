//! SOCKS5 (RFC 1928) as the way out: the proxy's address and credentials, parsed from a
//! `socks5://` URL, and the handshake that turns a TCP connection to the proxy into a tunnel to
//! the MX host.
//!
//! Owns the URL syntax, keeping the password out of every printed form, and the translation of
//! the proxy's failures into [`Error::Proxy`]. Does not own timeouts (the caller's connect
//! timeout bounds the whole of [`tunnel`]) or what travels through the tunnel afterwards
//! (`connection`: SMTP and STARTTLS run over the returned `TcpStream` as over a direct one).
//!
//! Names are never resolved here: the proxy is an IP literal, and the target is always a
//! `SocketAddr` (ATYP 1 or 4, never 3), so the MX host is the one our own DNS chose.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use tokio::net::{TcpSocket, TcpStream};
use tokio_socks::tcp::Socks5Stream;

use crate::error::Error;

/// A SOCKS5 proxy to connect through: an IP address and optional RFC 1929 username/password.
///
/// `Debug` and `Display` show the password as `***`. Build one with [`Socks5Proxy::parse`]
/// (or `str::parse`), or directly.
#[derive(Clone, PartialEq, Eq)]
pub struct Socks5Proxy {
    pub addr: SocketAddr,
    /// Username and password (RFC 1929: 1 to 255 bytes each).
    pub auth: Option<(String, String)>,
}

impl Socks5Proxy {
    /// Parses `socks5://host:port` or `socks5://user:pass@host:port`, where host is an IPv4
    /// literal or a bracketed IPv6 literal (`[::1]`). A host name is refused: the proxy is never
    /// resolved implicitly. User and password may be percent-encoded (`%40` for `@`, `%3A` for
    /// `:`). One trailing `/` is accepted; a path, query or fragment is not.
    ///
    /// The error names what is wrong and never repeats the password.
    pub fn parse(url: &str) -> Result<Self, String> {
        const WHAT: &str = "SOCKS5 proxy URL";
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{WHAT}: expected socks5://[user:pass@]IP:port"))?;
        if scheme.eq_ignore_ascii_case("socks5h") {
            return Err(format!(
                "{WHAT}: socks5h:// asks the proxy to resolve host names; rollcall connects to \
                 the IP addresses it resolved itself: use socks5://"
            ));
        }
        if !scheme.eq_ignore_ascii_case("socks5") {
            return Err(format!(
                "{WHAT}: scheme must be socks5:// (got {scheme}://); only SOCKS5 is supported"
            ));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(format!(
                "{WHAT}: nothing may follow host:port (no path, query or fragment)"
            ));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let auth = userinfo.map(parse_userinfo).transpose()?;
        let addr = parse_hostport(hostport)?;
        Ok(Self { addr, auth })
    }
}

fn parse_userinfo(userinfo: &str) -> Result<(String, String), String> {
    const WHAT: &str = "SOCKS5 proxy URL";
    let (user, pass) = userinfo
        .split_once(':')
        .ok_or_else(|| format!("{WHAT}: user without a password (write user:pass@)"))?;
    let user = percent_decode(user).map_err(|e| format!("{WHAT}: user: {e}"))?;
    let pass = percent_decode(pass).map_err(|e| format!("{WHAT}: password: {e}"))?;
    // RFC 1929 2: ULEN and PLEN are one byte each, and at least 1.
    if user.is_empty() || user.len() > 255 {
        return Err(format!("{WHAT}: user must be 1 to 255 bytes"));
    }
    if pass.is_empty() || pass.len() > 255 {
        return Err(format!("{WHAT}: password must be 1 to 255 bytes"));
    }
    Ok((user, pass))
}

fn parse_hostport(hostport: &str) -> Result<SocketAddr, String> {
    const WHAT: &str = "SOCKS5 proxy URL";
    if hostport.is_empty() {
        return Err(format!("{WHAT}: missing host and port"));
    }
    let (ip, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{WHAT}: '[' without ']' around the IPv6 address"))?;
        let ip = Ipv6Addr::from_str(host)
            .map_err(|_| format!("{WHAT}: '{host}' in brackets is not an IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => return Err(format!("{WHAT}: missing port after ]")),
            None => return Err(format!("{WHAT}: expected :port after ]")),
        };
        (IpAddr::V6(ip), port)
    } else {
        let Some((host, port)) = hostport.rsplit_once(':') else {
            return Err(format!(
                "{WHAT}: missing port (socks5://{hostport}:PORT; there is no default)"
            ));
        };
        if host.contains(':') {
            return Err(format!(
                "{WHAT}: an IPv6 address must be in brackets: socks5://[{host}]:{port}"
            ));
        }
        if host.is_empty() {
            return Err(format!("{WHAT}: missing host"));
        }
        let ip = Ipv4Addr::from_str(host).map_err(|_| {
            format!(
                "{WHAT}: host '{host}' is not an IP address; host names are refused because \
                 rollcall never resolves the proxy's name implicitly: give its IP address"
            )
        })?;
        (IpAddr::V4(ip), port)
    };
    if port.is_empty() {
        return Err(format!("{WHAT}: missing port"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{WHAT}: port '{port}' is not a number from 1 to 65535"))?;
    Ok(SocketAddr::new(ip, port))
}

/// `%XX` escapes to bytes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("'%' must be followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent escapes do not decode to UTF-8")
}

impl FromStr for Socks5Proxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Socks5Proxy {
    /// `socks5://user:***@127.0.0.1:1080`: the URL with the password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.auth {
            Some((user, _)) => write!(f, "socks5://{user}:***@{}", self.addr),
            None => write!(f, "socks5://{}", self.addr),
        }
    }
}

impl fmt::Debug for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Proxy")
            .field("addr", &self.addr)
            .field("auth", &self.auth.as_ref().map(|(user, _)| (user, "***")))
            .finish()
    }
}

/// TCP to the proxy, then the SOCKS5 handshake asking for `target`. The returned stream is
/// past the proxy's reply: every byte on it from here on is the MX host's.
pub(crate) async fn tunnel(proxy: &Socks5Proxy, target: SocketAddr) -> Result<TcpStream, Error> {
    let fail = |source| Error::Proxy {
        proxy: proxy.addr,
        target,
        source,
    };
    let socket = if proxy.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(fail)?;
    let tcp = socket.connect(proxy.addr).await.map_err(|e| {
        fail(io::Error::new(
            e.kind(),
            format!("cannot reach the proxy: {e}"),
        ))
    })?;
    // The handshake and SMTP's commands are small and latency-bound.
    let _ = tcp.set_nodelay(true);
    // The target is a SocketAddr: the request carries the IP (ATYP 1/4), never a name.
    let stream = match &proxy.auth {
        None => Socks5Stream::connect_with_socket(tcp, target).await,
        Some((user, pass)) => {
            Socks5Stream::connect_with_password_and_socket(tcp, target, user, pass).await
        }
    }
    .map_err(|e| fail(handshake_failure(e)))?;
    Ok(stream.into_inner())
}

/// The proxy's refusal as an `io::Error` whose kind tells retrying apart from reconfiguring:
/// `PermissionDenied`, `InvalidData`, `Unsupported` and `InvalidInput` will fail the same way
/// next time (see `Error::is_transient`).
fn handshake_failure(e: tokio_socks::Error) -> io::Error {
    use io::ErrorKind as K;
    use tokio_socks::Error as S;
    let (kind, what) = match &e {
        S::Io(io) => {
            return io::Error::new(io.kind(), format!("SOCKS5 handshake: {io}"));
        }
        S::PasswordAuthFailure(_) => (K::PermissionDenied, "the proxy rejected the user/password"),
        S::NoAcceptableAuthMethods => (
            K::PermissionDenied,
            "the proxy accepts none of our authentication methods (does it want a user/password?)",
        ),
        S::AuthorizationRequired => (
            K::PermissionDenied,
            "the proxy requires a user/password (socks5://user:pass@...)",
        ),
        S::ConnectionNotAllowedByRuleset => (K::PermissionDenied, "the proxy's rules forbid it"),
        S::HostUnreachable => (K::HostUnreachable, "the proxy cannot reach the target"),
        S::NetworkUnreachable => (K::NetworkUnreachable, "the proxy cannot reach the target"),
        S::ConnectionRefused => (K::ConnectionRefused, "the target refused the proxy"),
        S::TtlExpired => (
            K::TimedOut,
            "the proxy's connection to the target timed out",
        ),
        S::GeneralSocksServerFailure => (K::Other, "the proxy failed"),
        S::CommandNotSupported | S::AddressTypeNotSupported => {
            (K::Unsupported, "the proxy does not support this request")
        }
        S::InvalidAuthValues(_) | S::InvalidTargetAddress(_) => {
            (K::InvalidInput, "the request cannot be sent")
        }
        S::InvalidResponseVersion
        | S::InvalidReservedByte
        | S::UnknownAddressType
        | S::UnknownAuthMethod => (K::InvalidData, "the proxy does not speak SOCKS5"),
        _ => (K::Other, "SOCKS5 handshake failed"),
    };
    io::Error::new(kind, format!("{what} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_refusals_keep_their_kind() {
        let auth = handshake_failure(tokio_socks::Error::PasswordAuthFailure(1));
        assert_eq!(auth.kind(), io::ErrorKind::PermissionDenied);
        assert!(auth.to_string().contains("user/password"), "{auth}");
        let host = handshake_failure(tokio_socks::Error::HostUnreachable);
        assert_eq!(host.kind(), io::ErrorKind::HostUnreachable);
        assert!(host.to_string().contains("Host unreachable"), "{host}");
        let eof = handshake_failure(tokio_socks::Error::Io(io::ErrorKind::UnexpectedEof.into()));
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn percent_escapes() {
        assert_eq!(percent_decode("a%40b%3Ac").unwrap(), "a@b:c");
        assert!(percent_decode("a%4").is_err());
        assert!(percent_decode("a%zz").is_err());
        assert!(percent_decode("%ff").is_err());
    }
}
