//! Credentials of `Authorization` and `Proxy-Authorization` (RFC 3261 §22,
//! RFC 7616 Digest): the scheme and its `name=value` parameters.

use super::text::{self, quoted_len, trim};

/// A credentials header value: `scheme param=value, param="value", ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub scheme: &'a [u8],
    params: &'a [u8],
}

impl<'a> Credentials<'a> {
    /// Splits the scheme from its parameters; `None` without a scheme token.
    pub fn parse(value: &'a [u8]) -> Option<Credentials<'a>> {
        let value = trim(value);
        let end = value
            .iter()
            .position(|&b| text::is_lws(b))
            .unwrap_or(value.len());
        let scheme = &value[..end];
        text::is_token(scheme).then(|| Credentials {
            scheme,
            params: trim(&value[end..]),
        })
    }

    /// The value of parameter `name` (case-insensitive), quotes removed.
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        text::split_list(self.params).find_map(|param| {
            let eq = text::find(param, b'=')?;
            if !trim(&param[..eq]).eq_ignore_ascii_case(name) {
                return None;
            }
            let value = trim(&param[eq + 1..]);
            Some(match value.first() {
                Some(b'"') if quoted_len(value) == Some(value.len()) => &value[1..value.len() - 1],
                _ => value,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_params() {
        let value = br#"Digest username="voi18062",realm="sip.cybercity.dk",uri="sip:192.168.1.2",nonce="1701b22972b90f440c3e4eb250842bb",nc=00000001, response="79a0""#;
        let creds = Credentials::parse(value).unwrap();
        assert_eq!(creds.scheme, b"Digest");
        assert_eq!(creds.param(b"username"), Some(&b"voi18062"[..]));
        assert_eq!(creds.param(b"REALM"), Some(&b"sip.cybercity.dk"[..]));
        assert_eq!(creds.param(b"uri"), Some(&b"sip:192.168.1.2"[..]));
        assert_eq!(creds.param(b"nc"), Some(&b"00000001"[..]));
        assert_eq!(creds.param(b"opaque"), None);
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let creds = Credentials::parse(br#"Digest realm="a,b", username="u""#).unwrap();
        assert_eq!(creds.param(b"realm"), Some(&b"a,b"[..]));
        assert_eq!(creds.param(b"username"), Some(&b"u"[..]));
    }

    #[test]
    fn scheme_is_required() {
        assert!(Credentials::parse(b"").is_none());
        assert!(Credentials::parse(b"=x").is_none());
    }
}
