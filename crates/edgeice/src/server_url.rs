//! STUN and TURN server URIs (RFC 7064, RFC 7065): `stun:host[:port]`,
//! `stuns:`, `turn:host[:port][?transport=udp|tcp]`, `turns:`; also a bare
//! `HOST:PORT` or IP, taken as `stun:`.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Which kind of server, and whether over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `stun:`
    Stun,
    /// `stuns:` (STUN over TLS)
    Stuns,
    /// `turn:`
    Turn,
    /// `turns:` (TURN over TLS)
    Turns,
}

/// The transport to reach the server over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlTransport {
    /// UDP.
    Udp,
    /// TCP (TLS for `stuns:`/`turns:`).
    Tcp,
}

/// A parsed server URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    /// The scheme.
    pub scheme: Scheme,
    /// The host as written (a name or an IP literal, without brackets).
    pub host: String,
    /// The port (3478, or 5349 for the TLS schemes, when not written).
    pub port: u16,
    /// The transport (`?transport=`; TCP for the TLS schemes).
    pub transport: UrlTransport,
}

impl ServerUrl {
    /// Parses a URI, or a bare `HOST[:PORT]` as a `stun:` one.
    pub fn parse(s: &str) -> Result<ServerUrl, String> {
        let (scheme, rest) = match s.split_once(':') {
            Some(("stun", rest)) => (Scheme::Stun, rest),
            Some(("stuns", rest)) => (Scheme::Stuns, rest),
            Some(("turn", rest)) => (Scheme::Turn, rest),
            Some(("turns", rest)) => (Scheme::Turns, rest),
            _ => (Scheme::Stun, s),
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut transport = match scheme {
            Scheme::Stuns | Scheme::Turns => UrlTransport::Tcp,
            Scheme::Stun | Scheme::Turn => UrlTransport::Udp,
        };
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            match parameter {
                "transport=udp" if matches!(scheme, Scheme::Turn) => transport = UrlTransport::Udp,
                "transport=tcp" if matches!(scheme, Scheme::Turn | Scheme::Turns) => {
                    transport = UrlTransport::Tcp
                }
                other => return Err(format!("{s}: unsupported parameter {other:?}")),
            }
        }
        let default_port = match scheme {
            Scheme::Stuns | Scheme::Turns => 5349,
            Scheme::Stun | Scheme::Turn => 3478,
        };
        let (host, port) =
            split_host_port(authority, default_port).map_err(|e| format!("{s}: {e}"))?;
        Ok(ServerUrl {
            scheme,
            host,
            port,
            transport,
        })
    }

    /// Resolves the host (an IP literal needs no lookup).
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{}: the name has no address", self.host))
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    if authority.is_empty() {
        return Err("no host".into());
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("unclosed '['")?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| format!("bad port {port:?}"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("unexpected {after:?} after the address")),
        };
        return Ok((host.to_string(), port));
    }
    // An IPv6 literal without brackets has no port.
    if authority.parse::<IpAddr>().is_ok() {
        return Ok((authority.to_string(), default_port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
            Ok((host.to_string(), port))
        }
        None => Ok((authority.to_string(), default_port)),
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Stun => "stun",
            Scheme::Stuns => "stuns",
            Scheme::Turn => "turn",
            Scheme::Turns => "turns",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}:{host}:{}", self.port)?;
        if self.scheme == Scheme::Turn {
            let transport = match self.transport {
                UrlTransport::Udp => "udp",
                UrlTransport::Tcp => "tcp",
            };
            write!(f, "?transport={transport}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc_7064_and_7065_uris() {
        let url = ServerUrl::parse("turn:192.0.2.1?transport=tcp").unwrap();
        assert_eq!(
            (url.scheme, url.port, url.transport),
            (Scheme::Turn, 3478, UrlTransport::Tcp)
        );
        assert_eq!(url.to_string(), "turn:192.0.2.1:3478?transport=tcp");
        let url = ServerUrl::parse("turns:[2001:db8::1]").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("2001:db8::1", 5349));
        let url = ServerUrl::parse("192.0.2.1:19302").unwrap();
        assert_eq!((url.scheme, url.port), (Scheme::Stun, 19302));
        assert!(ServerUrl::parse("stun:").is_err());
        assert!(ServerUrl::parse("turn:h?transport=sctp").is_err());
    }
}
