//! URIs in SIP: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any
//! other absolute URI kept opaque. Parsing never fails on a header's URI —
//! a sensor reports what it saw — but [`Uri::is_valid_request_uri`] applies
//! the stricter rules of a Request-URI.

use super::text;

/// The parts of a URI, borrowed from the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The URI as written.
    pub original: &'a [u8],
    /// Scheme as written (`sip`, `SIPS`, `tel`, ...); empty when there is none.
    pub scheme: &'a [u8],
    /// `user` of `user:password@host`, or a tel URI's number.
    pub user: Option<&'a [u8]>,
    /// Password of the userinfo. Parsed so it is never mistaken for the
    /// user; sipbeat does not publish it.
    pub password: Option<&'a [u8]>,
    /// Host name or address, IPv6 without brackets.
    pub host: Option<&'a [u8]>,
    pub port: Option<u16>,
    /// `;name=value` parameters, without the leading `;`.
    pub params: &'a [u8],
    /// `?name=value&...` headers, without the leading `?`.
    pub headers: &'a [u8],
    /// A sip/sips URI whose host or port did not parse (an unclosed IPv6
    /// reference, a port that is not a number below 65536).
    pub malformed: bool,
}

/// Which family a scheme belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Tel,
    Other,
}

impl<'a> Uri<'a> {
    /// Splits `original` into its parts; unknown schemes keep only the scheme.
    pub fn parse(original: &'a [u8]) -> Uri<'a> {
        let mut uri = Uri {
            original,
            ..Uri::default()
        };
        let Some(colon) = text::find(original, b':') else {
            return uri;
        };
        uri.scheme = &original[..colon];
        let rest = &original[colon + 1..];
        match uri.scheme_kind() {
            Scheme::Sip => uri.parse_sip(rest),
            Scheme::Tel => {
                let end = text::find(rest, b';').unwrap_or(rest.len());
                uri.user = Some(&rest[..end]).filter(|u| !u.is_empty());
                uri.params = rest.get(end + 1..).unwrap_or_default();
            }
            Scheme::Other => {}
        }
        uri
    }

    /// The scheme's family, compared case-insensitively.
    pub fn scheme_kind(&self) -> Scheme {
        if self.scheme.eq_ignore_ascii_case(b"sip") || self.scheme.eq_ignore_ascii_case(b"sips") {
            Scheme::Sip
        } else if self.scheme.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        }
    }

    fn parse_sip(&mut self, rest: &'a [u8]) {
        // '@' cannot appear in host, params or headers, so the first one ends
        // the userinfo even when the user part holds ';', '?' or ':'.
        let hostport_start = match text::find(rest, b'@') {
            Some(at) => {
                let userinfo = &rest[..at];
                match text::find(userinfo, b':') {
                    Some(colon) => {
                        self.user = Some(&userinfo[..colon]);
                        self.password = Some(&userinfo[colon + 1..]);
                    }
                    None => self.user = Some(userinfo),
                }
                at + 1
            }
            None => 0,
        };
        let hostport = &rest[hostport_start..];
        let host_end = if hostport.first() == Some(&b'[') {
            match text::find(hostport, b']') {
                Some(close) => {
                    self.host = Some(&hostport[1..close]);
                    close + 1
                }
                None => {
                    self.host = Some(hostport);
                    self.malformed = true;
                    return;
                }
            }
        } else {
            let mut end = text::find_any(hostport, [b':', b';', b'?']).unwrap_or(hostport.len());
            // Only a second colon before any `;` or `?` can make the host
            // a bare IPv6 address: the common `host:port` skips the check.
            let second_colon = hostport.get(end) == Some(&b':')
                && text::find_any(&hostport[end + 1..], [b':', b';', b'?'])
                    .is_some_and(|at| hostport[end + 1 + at] == b':');
            if second_colon && let Some(ipv6_end) = bare_ipv6_end(hostport) {
                end = ipv6_end;
            }
            self.host = Some(&hostport[..end]);
            end
        };
        let mut after = &hostport[host_end..];
        if let Some(port_text) = after.strip_prefix(b":") {
            let end = text::find_any(port_text, [b';', b'?']).unwrap_or(port_text.len());
            self.port =
                text::parse_decimal(&port_text[..end], u64::from(u16::MAX)).map(|p| p as u16);
            self.malformed |= self.port.is_none();
            after = &port_text[end..];
        }
        let headers_at = text::find(after, b'?');
        let params_end = headers_at.unwrap_or(after.len());
        self.params = after[..params_end]
            .strip_prefix(b";")
            .unwrap_or(&after[..0]);
        if let Some(q) = headers_at {
            self.headers = &after[q + 1..];
        }
        if self.host == Some(b"") {
            self.host = None;
        }
    }

    /// The value of URI parameter `name` (case-insensitive); `Some(b"")` for
    /// a parameter without a value.
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.params.split(|&b| b == b';').find_map(|param| {
            let (key, value) = match text::find(param, b'=') {
                Some(eq) => (&param[..eq], &param[eq + 1..]),
                None => (param, &param[param.len()..]),
            };
            key.eq_ignore_ascii_case(name).then_some(value)
        })
    }

    /// Request-URI rules: an absolute URI (`scheme ":" ...` with an RFC 3986
    /// scheme), and for SIP URIs a host and no headers (RFC 3261 §19.1.1).
    pub fn is_valid_request_uri(&self) -> bool {
        let scheme_ok = self.scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && self
                .scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok || self.original.len() == self.scheme.len() + 1 {
            return false;
        }
        match self.scheme_kind() {
            Scheme::Sip => self.host.is_some() && self.headers.is_empty() && !self.malformed,
            Scheme::Tel | Scheme::Other => true,
        }
    }
}

/// Leniency: an IPv6 address without brackets (RFC 5118 §4.2 calls it
/// invalid; real phones send `sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060`).
/// Returns where the address ends when the host part is one: the whole part
/// if it parses as IPv6, or all but a trailing `:port` if that does.
fn bare_ipv6_end(hostport: &[u8]) -> Option<usize> {
    let end = text::find_any(hostport, [b';', b'?']).unwrap_or(hostport.len());
    let candidate = &hostport[..end];
    let two_colons = text::find(candidate, b':')
        .is_some_and(|first| text::find(&candidate[first + 1..], b':').is_some());
    if !two_colons {
        return None;
    }
    let is_ipv6 = |bytes: &[u8]| {
        std::str::from_utf8(bytes).is_ok_and(|t| t.parse::<std::net::Ipv6Addr>().is_ok())
    };
    if is_ipv6(candidate) {
        return Some(end);
    }
    let last_colon = text::rfind(candidate, b':')?;
    is_ipv6(&candidate[..last_colon]).then_some(last_colon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_with_everything() {
        let uri = Uri::parse(b"sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=x");
        assert_eq!(uri.scheme, b"sips");
        assert_eq!(uri.user, Some(&b"alice"[..]));
        assert_eq!(uri.password, Some(&b"secret"[..]));
        assert_eq!(uri.host, Some(&b"2001:db8::1"[..]));
        assert_eq!(uri.port, Some(5061));
        assert_eq!(uri.params, b"transport=tcp;lr");
        assert_eq!(uri.param(b"TRANSPORT"), Some(&b"tcp"[..]));
        assert_eq!(uri.param(b"lr"), Some(&b""[..]));
        assert_eq!(uri.headers, b"subject=x");
    }

    #[test]
    fn user_part_may_hold_separators() {
        let uri = Uri::parse(b"sip:user;par=u%40example.net@example.com");
        assert_eq!(uri.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(uri.host, Some(&b"example.com"[..]));
        assert!(uri.is_valid_request_uri());
        let crazy = Uri::parse(b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(crazy.host, Some(&b"example.com"[..]));
        assert!(crazy.is_valid_request_uri());
    }

    #[test]
    fn host_only_and_tel() {
        let uri = Uri::parse(b"sip:sip.cybercity.dk");
        assert_eq!(
            (uri.user, uri.host, uri.port),
            (None, Some(&b"sip.cybercity.dk"[..]), None)
        );
        let tel = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(tel.user, Some(&b"+1-201-555-0123"[..]));
        assert_eq!(tel.host, None);
        assert_eq!(tel.param(b"phone-context"), Some(&b"example.com"[..]));
    }

    #[test]
    fn request_uri_rules() {
        assert!(!Uri::parse(b"<sip:user@example.com>").is_valid_request_uri());
        assert!(
            !Uri::parse(b"sip:user@example.com?Route=%3Csip:example.com%3E").is_valid_request_uri()
        );
        assert!(Uri::parse(b"nobodyKnowsThisScheme:totallyopaquecontent").is_valid_request_uri());
        assert!(!Uri::parse(b"sip:").is_valid_request_uri());
        assert!(!Uri::parse(b"noscheme").is_valid_request_uri());
    }

    #[test]
    fn bad_port_is_dropped_not_fatal() {
        let uri = Uri::parse(b"sip:bob@example.com:99999");
        assert_eq!(uri.host, Some(&b"example.com"[..]));
        assert_eq!(uri.port, None);
        assert!(uri.malformed);
        assert!(Uri::parse(b"sip:[2001:db8::10]").is_valid_request_uri());
    }

    #[test]
    fn ipv6_without_brackets_is_read_leniently() {
        let uri = Uri::parse(b"sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060;user=phone");
        assert_eq!(uri.host, Some(&b"fec0:0:0:0:216:d3ff:fe0d:22c"[..]));
        assert_eq!(uri.port, Some(5060));
        assert_eq!(uri.params, b"user=phone");
        let whole = Uri::parse(b"sip:2001:db8::10");
        assert_eq!((whole.host, whole.port), (Some(&b"2001:db8::10"[..]), None));
        assert!(whole.is_valid_request_uri());
        // Not IPv6 either way: a host with a bad port.
        assert!(!Uri::parse(b"sip:a:b:c").is_valid_request_uri());
    }
}
