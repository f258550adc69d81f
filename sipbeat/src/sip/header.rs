//! Header names (long and compact forms) and the structured header values
//! sipbeat reads: CSeq, name-addr (From, To, Contact, P-Associated-URI), Via.

use std::borrow::Cow;

use super::text::{self, Class, LWS, is_lws, is_token, is_token_byte, quoted_len, trim, unquote};
use super::uri::Uri;

/// The headers sipbeat interprets; every other name is [`HeaderName::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderName {
    Accept,
    Allow,
    Authorization,
    CallId,
    Contact,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    From,
    MaxForwards,
    PAssociatedUri,
    ProxyAuthorization,
    Supported,
    To,
    UserAgent,
    Via,
    Other,
}

impl HeaderName {
    /// Number of names, [`HeaderName::Other`] included.
    pub const COUNT: usize = HeaderName::Other as usize + 1;

    /// Resolves a header name, ASCII case-insensitively, compact forms included.
    ///
    /// Every message has a dozen header lines, so this compares whole
    /// words: the name is loaded as two 8-byte words, lower-cased in
    /// registers, and compared with the one candidate its length and first
    /// letter select (a byte-by-byte case-insensitive compare cost about a
    /// hundred instructions per header).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        use HeaderName::*;
        if name.len() > 16 {
            return if name.eq_ignore_ascii_case(b"proxy-authorization") {
                ProxyAuthorization
            } else {
                Other
            };
        }
        let (low, high) = crate::simd::load_words(name);
        let name_words = (lower_ascii(low), lower_ascii(high));
        let first = name_words.0 as u8;
        if name.len() == 1 {
            // RFC 3261 §7.3.3 and the IANA registry's compact forms; those
            // not listed (a, b, d, j, o, r, s, u, x, y) name headers sipbeat
            // does not interpret.
            return match first {
                b'c' => ContentType,
                b'e' => ContentEncoding,
                b'f' => From,
                b'i' => CallId,
                b'k' => Supported,
                b'l' => ContentLength,
                b'm' => Contact,
                b't' => To,
                b'v' => Via,
                _ => Other,
            };
        }
        // Length and first letter pick at most one candidate to compare.
        let (candidate, header) = match (name.len(), first) {
            (2, b't') => (const { words(b"to") }, To),
            (3, b'v') => (const { words(b"via") }, Via),
            (4, b'c') => (const { words(b"cseq") }, CSeq),
            (4, b'f') => (const { words(b"from") }, From),
            (4, b'd') => (const { words(b"date") }, Date),
            (5, b'a') => (const { words(b"allow") }, Allow),
            (6, b'a') => (const { words(b"accept") }, Accept),
            (7, b'c') if name_words.0 >> 8 & 0xff == u64::from(b'a') => {
                (const { words(b"call-id") }, CallId)
            }
            (7, b'c') => (const { words(b"contact") }, Contact),
            (9, b's') => (const { words(b"supported") }, Supported),
            (10, b'u') => (const { words(b"user-agent") }, UserAgent),
            (12, b'c') => (const { words(b"content-type") }, ContentType),
            (12, b'm') => (const { words(b"max-forwards") }, MaxForwards),
            (13, b'a') => (const { words(b"authorization") }, Authorization),
            (14, b'c') => (const { words(b"content-length") }, ContentLength),
            (16, b'c') => (const { words(b"content-encoding") }, ContentEncoding),
            (16, b'p') => (const { words(b"p-associated-uri") }, PAssociatedUri),
            _ => return Other,
        };
        if name_words == candidate {
            header
        } else {
            Other
        }
    }
}

/// The (up to 16) bytes of a lower-case name as [`crate::simd::load_words`]
/// loads them: little-endian, zero beyond the end.
const fn words(name: &[u8]) -> (u64, u64) {
    let mut bytes = [0u8; 16];
    let mut i = 0;
    while i < name.len() {
        bytes[i] = name[i];
        i += 1;
    }
    let (low, high) = bytes.split_at(8);
    (
        u64::from_le_bytes(*low.first_chunk().expect("8 bytes")),
        u64::from_le_bytes(*high.first_chunk().expect("8 bytes")),
    )
}

/// Eight bytes with the ASCII capitals lower-cased and every other byte
/// kept, all at once: bit 7 of `byte + 0x3f` says `byte >= 'A'`, of
/// `byte + 0x25` that `byte > 'Z'` (on the low seven bits, so no carry
/// crosses bytes; bytes with bit 7 set are no capitals).
const fn lower_ascii(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let seven = word & LOW7;
    let at_least_a = seven + 0x3f3f_3f3f_3f3f_3f3f;
    let above_z = seven + 0x2525_2525_2525_2525;
    let capital = at_least_a & !above_z & !word & HIGH;
    word | capital >> 2
}

/// `CSeq: number method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub number: u32,
    pub method: &'a [u8],
}

/// RFC 3261 §8.1.1.5: the sequence number is below 2^31.
const MAX_CSEQ: u64 = (1 << 31) - 1;

impl<'a> CSeq<'a> {
    /// Parses `1*DIGIT LWS Method`; `None` when malformed or out of range.
    pub fn parse(value: &'a [u8]) -> Option<CSeq<'a>> {
        let value = trim(value);
        let digits_end = value.iter().position(|b| !b.is_ascii_digit())?;
        let number = text::parse_decimal(&value[..digits_end], MAX_CSEQ)? as u32;
        let rest = &value[digits_end..];
        let method = trim(rest);
        (rest.first().is_some_and(|&b| is_lws(b)) && is_token(method))
            .then_some(CSeq { number, method })
    }
}

/// A name-addr (`"Display" <uri>;params`) or addr-spec (`uri;params`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name: unquoted, escapes resolved; `None` when absent or empty.
    pub display: Option<Cow<'a, [u8]>>,
    pub uri: Uri<'a>,
    /// Header parameters after the URI, without the leading `;`.
    pub params: &'a [u8],
    /// The first `tag` parameter's value, found while the parameters are
    /// validated (From and To have one in most messages).
    pub tag: Option<&'a [u8]>,
}

impl<'a> NameAddr<'a> {
    /// Parses one name-addr or addr-spec, enforcing RFC 3261 §20.10: quoted
    /// strings close, unquoted display names are tokens, no white space
    /// inside `<>`, and an addr-spec holds no `,`, `;` or `?` of its own.
    pub fn parse(value: &'a [u8]) -> Option<NameAddr<'a>> {
        let value = trim(value);
        let (display, rest) = if value.first() == Some(&b'"') {
            let len = quoted_len(value)?;
            let rest = text::trim_start(&value[len..]);
            if rest.first() != Some(&b'<') {
                return None;
            }
            let display = unquote(&value[..len]);
            (Some(display).filter(|d| !d.is_empty()), rest)
        } else {
            match text::find(value, b'<') {
                Some(angle) => {
                    // RFC 3261 wants tokens here. Leniency: phones send other
                    // bytes (Nero SIPPS writes `\"name\"`), which are harmless;
                    // ',' and ';' are not, as they would split the header.
                    let display = trim(&value[..angle]);
                    if text::find_any(display, [b',', b';']).is_some() {
                        return None;
                    }
                    let display = strip_stray_quotes(display);
                    let display = (!display.is_empty()).then_some(Cow::Borrowed(display));
                    (display, &value[angle..])
                }
                None => (None, value),
            }
        };
        let (uri, params) = if let Some(inside) = rest.strip_prefix(b"<") {
            let close = text::find(inside, b'>')?;
            let uri = &inside[..close];
            if uri.is_empty() || text::find_any(uri, LWS).is_some() {
                return None;
            }
            (uri, text::trim_start(&inside[close + 1..]))
        } else {
            let end = text::find_any(rest, [b';', b' ', b'\t', b'\r', b'\n']).unwrap_or(rest.len());
            let uri = &rest[..end];
            if uri.is_empty() || text::find_any(uri, [b'?', b',']).is_some() {
                return None;
            }
            (uri, text::trim_start(&rest[end..]))
        };
        let mut tag = None;
        let mut find_tag = |key: &'a [u8], value| {
            if tag.is_none() && key.eq_ignore_ascii_case(b"tag") {
                tag = Some(value);
            }
        };
        let params = match params {
            [] => params,
            [b';', tail @ ..] if scan_params(tail, &mut find_tag) => tail,
            _ => return None,
        };
        Some(NameAddr {
            display,
            uri: Uri::parse(uri),
            params,
            tag,
        })
    }

    /// The value of header parameter `name` (case-insensitive), LWS trimmed.
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        param(self.params, name)
    }
}

/// An unquoted display name without the quotes and backslashes some
/// senders wrap around it (`\"arik\"` → `arik`).
fn strip_stray_quotes(display: &[u8]) -> &[u8] {
    let is_stray = |b: &u8| matches!(b, b'"' | b'\\' | b'\'') || is_lws(*b);
    let start = display
        .iter()
        .position(|b| !is_stray(b))
        .unwrap_or(display.len());
    let end = display
        .iter()
        .rposition(|b| !is_stray(b))
        .map_or(start, |i| i + 1);
    &display[start..end]
}

/// Finds parameter `name` in a `;`-separated parameter list.
pub fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    text::split_params(params).find_map(|param| {
        let (key, value) = match text::find(param, b'=') {
            Some(eq) => (trim(&param[..eq]), trim(&param[eq + 1..])),
            None => (param, &param[param.len()..]),
        };
        key.eq_ignore_ascii_case(name).then_some(value)
    })
}

/// Checks `generic-param *(SEMI generic-param)` — each a token, optionally
/// `= value` where value is a token, host or quoted string, LWS fine around
/// separators — calling `on_param` with each parameter's name and value
/// (LWS trimmed, quotes kept, empty without `=`) as it goes, so a caller
/// picks out what it needs in the pass that validates.
#[inline(always)]
fn scan_params<'a>(params: &'a [u8], on_param: impl FnMut(&'a [u8], &'a [u8])) -> bool {
    params_end(params, on_param) == Some(params.len())
}

/// Reads `generic-param *(SEMI generic-param)` from the start of `params`
/// (see [`scan_params`]); returns where it ends, trailing LWS skipped: the
/// end of `params` or a byte no parameter takes (a Via list's comma).
/// `None` when a parameter is malformed.
#[inline(always)]
fn params_end<'a>(params: &'a [u8], mut on_param: impl FnMut(&'a [u8], &'a [u8])) -> Option<usize> {
    // One pass, no splitting: this runs on every From, To, Contact and Via.
    let skip_lws = |mut at: usize| {
        while params.get(at).is_some_and(|&b| is_lws(b)) {
            at += 1;
        }
        at
    };
    let mut at = 0;
    loop {
        // Names are short (`tag`, `branch`): a byte at a time measured
        // faster here than `run_len`.
        let key_start = skip_lws(at);
        at = key_start;
        while params.get(at).is_some_and(|&b| is_token_byte(b)) {
            at += 1;
        }
        if at == key_start {
            return None;
        }
        let key = &params[key_start..at];
        let mut value = &params[at..at];
        at = skip_lws(at);
        if params.get(at) == Some(&b'=') {
            at = skip_lws(at + 1);
            let value_start = at;
            at = match params.get(at) {
                Some(b'"') => at + quoted_len(&params[at..])?,
                _ => {
                    at += text::run_len(&params[at..], Class::ParamValue);
                    if at == value_start {
                        return None;
                    }
                    at
                }
            };
            value = &params[value_start..at];
            at = skip_lws(at);
        }
        on_param(key, value);
        match params.get(at) {
            Some(b';') => at += 1,
            _ => return Some(at),
        }
    }
}

/// Counts the via-parms of a Via header value, `via-parm *(COMMA
/// via-parm)`, each `protocol SLASH version SLASH transport LWS sent-by
/// *(SEMI via-param)` with LWS allowed around slashes and commas (RFC 3261
/// §20.42); `None` when one is malformed. One pass over the value: the
/// commas end via-parms as they are read, rather than splitting first.
pub fn via_count(value: &[u8]) -> Option<usize> {
    let mut rest = text::trim_start(value);
    let mut count = 0;
    loop {
        rest = after_via_parm(rest)?;
        count += 1;
        match rest {
            [] => return Some(count),
            [b',', tail @ ..] => rest = text::trim_start(tail),
            _ => return None,
        }
    }
}

/// Reads one via-parm from the start of `value`; returns what follows it,
/// LWS skipped.
fn after_via_parm(value: &[u8]) -> Option<&[u8]> {
    let rest = after_sent_protocol(value)?;
    // The sent-by runs to a `;`, a `,` or LWS (none of which it holds).
    let end = text::run_len(rest, Class::SentBy);
    if end == 0
        || !matches!(
            rest.get(end),
            None | Some(b';' | b',' | b' ' | b'\t' | b'\r' | b'\n')
        )
    {
        return None;
    }
    match text::trim_start(&rest[end..]) {
        [b';', params @ ..] => Some(&params[params_end(params, |_, _| {})?..]),
        rest => Some(rest),
    }
}

/// The first via-parm of a Via header value: what a transaction is known
/// by (RFC 3261 §17.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopVia<'a> {
    /// The whole via-parm.
    pub value: &'a [u8],
    /// `host[:port]`.
    pub sent_by: &'a [u8],
    /// The `branch` parameter's value, if any.
    pub branch: Option<&'a [u8]>,
}

/// Parses the first via-parm of a Via header value; `None` when it is
/// malformed.
pub fn top_via(value: &[u8]) -> Option<TopVia<'_>> {
    let start = text::trim_start(value);
    let rest = after_sent_protocol(start)?;
    let end = text::run_len(rest, Class::SentBy);
    if end == 0 {
        return None;
    }
    let sent_by = &rest[..end];
    let mut branch = None;
    let tail = text::trim_start(&rest[end..]);
    let used = match tail {
        [b';', params @ ..] => {
            let params_len = params_end(params, |key, value| {
                if branch.is_none() && key.eq_ignore_ascii_case(b"branch") {
                    branch = Some(value);
                }
            })?;
            tail.len() - params.len() + params_len
        }
        _ => 0,
    };
    let via_len = start.len() - tail.len() + used;
    Some(TopVia {
        value: &start[..via_len],
        sent_by,
        branch,
    })
}

/// Reads `protocol SLASH version SLASH transport LWS` (LWS allowed around
/// the slashes) from the start of `value`; returns what follows.
fn after_sent_protocol(value: &[u8]) -> Option<&[u8]> {
    let mut rest = value;
    for part in 0..3 {
        // `SIP`, `2.0`, `UDP`: a byte at a time measured faster here than
        // `run_len`.
        let end = rest
            .iter()
            .position(|&b| !is_token_byte(b))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        rest = &rest[end..];
        let before = rest.len();
        rest = text::trim_start(rest);
        if part < 2 {
            rest = text::trim_start(rest.strip_prefix(b"/")?);
        } else if rest.len() == before {
            // The transport and sent-by must be apart.
            return None;
        }
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_via_parts() {
        let via =
            top_via(b"SIP/2.0/UDP pc33.example.com:5060;rport;branch=z9hG4bK776 , SIP/2.0/TCP b")
                .unwrap();
        assert_eq!(via.sent_by, b"pc33.example.com:5060");
        assert_eq!(via.branch, Some(&b"z9hG4bK776"[..]));
        assert_eq!(
            via.value,
            b"SIP/2.0/UDP pc33.example.com:5060;rport;branch=z9hG4bK776 "
        );
        let bare = top_via(b" SIP / 2.0 / UDP [2001:db8::1]").unwrap();
        assert_eq!((bare.sent_by, bare.branch), (&b"[2001:db8::1]"[..], None));
        assert!(top_via(b"SIP/2.0/UDP").is_none());
    }

    #[test]
    fn compact_and_long_names() {
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"L"), HeaderName::ContentLength);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(
            HeaderName::from_bytes(b"P-Associated-URI"),
            HeaderName::PAssociatedUri
        );
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"s"), HeaderName::Other);
        // A control byte is not a hyphen, though it is one with bit 5 set.
        assert_eq!(HeaderName::from_bytes(b"Call\x0did"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"Call-I"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"Proxy-AUTHORIZATION"),
            HeaderName::ProxyAuthorization
        );
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
    }

    #[test]
    fn every_known_name_resolves_and_nothing_near_it_does() {
        use HeaderName::*;
        let known = [
            ("Accept", Accept),
            ("Allow", Allow),
            ("Authorization", Authorization),
            ("Call-ID", CallId),
            ("Contact", Contact),
            ("Content-Encoding", ContentEncoding),
            ("Content-Length", ContentLength),
            ("Content-Type", ContentType),
            ("CSeq", CSeq),
            ("Date", Date),
            ("From", From),
            ("Max-Forwards", MaxForwards),
            ("P-Associated-URI", PAssociatedUri),
            ("Proxy-Authorization", ProxyAuthorization),
            ("Supported", Supported),
            ("To", To),
            ("User-Agent", UserAgent),
            ("Via", Via),
            ("c", ContentType),
            ("e", ContentEncoding),
            ("f", From),
            ("i", CallId),
            ("k", Supported),
            ("l", ContentLength),
            ("m", Contact),
            ("t", To),
            ("v", Via),
        ];
        for (text, name) in known {
            for spelling in [
                text.to_string(),
                text.to_ascii_lowercase(),
                text.to_ascii_uppercase(),
            ] {
                assert_eq!(
                    HeaderName::from_bytes(spelling.as_bytes()),
                    name,
                    "{spelling}"
                );
                let bytes = spelling.as_bytes();
                let near: [Vec<u8>; 4] = [
                    bytes[..bytes.len() - 1].to_vec(),
                    [bytes, b"x"].concat(),
                    [bytes, b"\0"].concat(),
                    [b"x", bytes].concat(),
                ];
                // (`To` cut short is `t`, To's compact form.)
                for other in near
                    .into_iter()
                    .filter(|other| other != b"t" && other != b"T")
                {
                    assert_ne!(HeaderName::from_bytes(&other), name, "{other:?}");
                }
            }
        }
        // The other compact forms name headers sipbeat does not interpret.
        for letter in "abdjorsuxy".bytes() {
            assert_eq!(HeaderName::from_bytes(&[letter]), Other);
        }
    }

    #[test]
    fn words_lower_case_like_bytes_do() {
        for byte in 0..=255u8 {
            for lane in 0..8 {
                // Neighbours at the edges of the capital range.
                let mut bytes = *b"A@Z[az`{";
                bytes[lane] = byte;
                let expected = bytes.map(|b| b.to_ascii_lowercase());
                assert_eq!(
                    lower_ascii(u64::from_le_bytes(bytes)).to_le_bytes(),
                    expected,
                    "byte {byte:#x} in lane {lane}"
                );
            }
        }
    }

    fn valid_params(params: &[u8]) -> bool {
        scan_params(params, |_, _| {})
    }

    /// `valid_params` as the grammar reads: split, trim, check each piece.
    fn valid_params_by_pieces(params: &[u8]) -> bool {
        text::split_params(params).all(|param| {
            let (key, value) = match text::find(param, b'=') {
                Some(eq) => (trim(&param[..eq]), Some(trim(&param[eq + 1..]))),
                None => (param, None),
            };
            is_token(key)
                && value.is_none_or(|v| match v.first() {
                    Some(b'"') => quoted_len(v) == Some(v.len()),
                    Some(_) => v
                        .iter()
                        .all(|&b| is_token_byte(b) || matches!(b, b':' | b'[' | b']')),
                    None => false,
                })
        })
    }

    #[test]
    fn valid_params_matches_the_grammar_on_every_short_string() {
        let alphabet = b"a=; \"<>:\\,";
        let mut text = Vec::new();
        let mut checked = 0;
        for len in 0..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                assert_eq!(
                    valid_params(&text),
                    valid_params_by_pieces(&text),
                    "{:?}",
                    String::from_utf8_lossy(&text)
                );
                checked += 1;
            }
        }
        assert!(checked > 1_000_000);
        assert!(valid_params(
            b"tag=1918181833n ; x = \"q;q\";lr;maddr=[2001:db8::1]"
        ));
    }

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse(b"0009 INVITE"),
            Some(CSeq {
                number: 9,
                method: b"INVITE"
            })
        );
        assert_eq!(CSeq::parse(b"36893488147419103232 REGISTER"), None);
        assert_eq!(CSeq::parse(b"2147483648 INVITE"), None);
        assert_eq!(CSeq::parse(b"1INVITE"), None);
        assert_eq!(CSeq::parse(b"1"), None);
    }

    #[test]
    fn name_addr_forms() {
        let from = NameAddr::parse(br#""DVI4/8000" <sip:sipp@10.0.2.20:5060>;tag=1"#).unwrap();
        assert_eq!(from.display.as_deref(), Some(&b"DVI4/8000"[..]));
        assert_eq!(from.uri.original, b"sip:sipp@10.0.2.20:5060");
        assert_eq!(from.param(b"tag"), Some(&b"1"[..]));

        let to =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(to.uri.original, b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(to.param(b"tag"), Some(&b"1918181833n"[..]));

        let bare = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(bare.display.as_deref(), Some(&b"caller"[..]));

        let escaped =
            NameAddr::parse(br#"\"arik\" <sip:816666@voip.brurjula.net>;tag=6433ef9"#).unwrap();
        assert_eq!(escaped.display.as_deref(), Some(&b"arik"[..]));
        assert_eq!(escaped.param(b"tag"), Some(&b"6433ef9"[..]));
    }

    #[test]
    fn tag_found_while_validating_is_the_one_param_finds() {
        for params in [
            "",
            ";tag=1",
            ";TAG = \"q;uoted\" ",
            ";x=1;tag=2;tag=3",
            ";tag",
            ";tagx=1;xtag=2",
            "; lr ; Tag=a.b-c",
        ] {
            let value = format!("<sip:a@b>{params}");
            let parsed = NameAddr::parse(value.as_bytes()).unwrap();
            assert_eq!(parsed.tag, parsed.param(b"tag"), "{params:?}");
        }
    }

    #[test]
    fn invalid_name_addrs() {
        // quotbal, baddn, badaspec, regbadct, badinv01
        assert!(NameAddr::parse(br#""Mr. J. User <sip:j.user@example.com>"#).is_none());
        assert!(NameAddr::parse(b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_none());
        assert!(NameAddr::parse(br#""Watson, Thomas" < sip:t.watson@example.org >"#).is_none());
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_none());
        assert!(NameAddr::parse(br#""Joe" <sip:joe@example.org>;;;;"#).is_none());
    }

    #[test]
    fn via_values() {
        for one in [
            &b"SIP/2.0/UDP 10.0.2.20:5060;branch=z9hG4bK-2187-1-0"[..],
            b"SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw",
            b"SIP / 2.0 / TCP spindle.example.com ; branch = z9hG4bK9ikj8",
            b"SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            br#"SIP/2.0/UDP h;x="a,b""#,
        ] {
            assert_eq!(
                via_count(one),
                Some(1),
                "{:?}",
                String::from_utf8_lossy(one)
            );
        }
        assert_eq!(
            via_count(b"SIP/2.0/UDP a:5060;branch=1 , SIP/2.0/TCP b,SIP/2.0/UDP c"),
            Some(3)
        );
        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;"[..],
            b"",
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP a,",
            b"SIP/2.0/UDP a,,SIP/2.0/UDP b",
            b",SIP/2.0/UDP a",
            b"SIP/2.0/UDP <a,b>",
        ] {
            assert_eq!(via_count(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// One via-parm as checked before `via_count` read whole lists: the
    /// value split at commas first, each piece checked on its own (the
    /// sent-protocol as the parser reads it; the rest, where lists make the
    /// difference, as it was).
    fn valid_via_piece(value: &[u8]) -> bool {
        let Some(rest) = after_sent_protocol(trim(value)) else {
            return false;
        };
        let end = text::find_any(rest, [b';', b' ', b'\t', b'\r', b'\n']).unwrap_or(rest.len());
        let sent_by = &rest[..end];
        let sent_by_ok = !sent_by.is_empty() && sent_by.iter().all(|&b| Class::SentBy.contains(b));
        let params = text::trim_start(&rest[end..]);
        sent_by_ok
            && match params {
                [] => true,
                [b';', tail @ ..] => valid_params(tail),
                _ => false,
            }
    }

    #[test]
    fn via_lists_read_in_one_pass_match_split_then_checked() {
        // Two via-parms around every string of up to five bytes over the
        // characters that matter between and after them.
        let alphabet = b",; \"=a<:";
        let mut checked = 0;
        for len in 0..=5u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut middle = Vec::new();
                for _ in 0..len {
                    middle.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                for value in [
                    [&b"SIP/2.0/UDP h"[..], &middle, b"SIP/2.0/TCP k"].concat(),
                    [&b"SIP/2.0/UDP h;b=1"[..], &middle].concat(),
                ] {
                    let expected = text::split_list(&value)
                        .all(valid_via_piece)
                        .then(|| text::split_list(&value).count());
                    assert_eq!(
                        via_count(&value),
                        expected,
                        "{:?}",
                        String::from_utf8_lossy(&value)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 70_000);
    }
}
