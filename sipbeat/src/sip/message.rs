//! A SIP message: start line, header lines, framing of the body.
//!
//! [`Message::parse`] walks the bytes once (a vectorised newline scan), fills the caller's
//! [`Header`] slots, then reads the headers sipbeat interprets (validating
//! them as it goes) and frames the body by Content-Length. Datagrams and
//! streams differ only in framing ([`Framing`]): a datagram must hold the
//! whole message, a stream may return [`Status::Partial`].

use std::borrow::Cow;
use std::mem::MaybeUninit;

use memchr::memchr;

use super::Error;
use super::header::{self, CSeq, HeaderName, NameAddr};
use super::text::{self, is_token, parse_decimal, trim};
use super::uri::Uri;

/// Header slots a parse may fill; a message with more header lines is rejected.
pub const MAX_HEADERS: usize = 128;

/// One header line (with its continuation lines), borrowed from the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'b> {
    pub name: HeaderName,
    /// The value, LWS trimmed; unfolded into its own buffer only if it was folded.
    pub value: Cow<'b, [u8]>,
}

/// Storage for a message's header lines, lent to [`Message::parse`].
///
/// Making one costs nothing: the slots start uninitialised and a parse
/// writes only as many as the message has (a per-message array of
/// initialised headers cost more than parsing a short message). Dropping it
/// drops just those.
pub struct HeaderSlots<'b> {
    slots: [MaybeUninit<Header<'b>>; MAX_HEADERS],
    /// Slots `..len` are initialised.
    len: usize,
}

impl Default for HeaderSlots<'_> {
    fn default() -> Self {
        HeaderSlots::new()
    }
}

impl<'b> HeaderSlots<'b> {
    pub fn new() -> Self {
        HeaderSlots {
            slots: [const { MaybeUninit::uninit() }; MAX_HEADERS],
            len: 0,
        }
    }

    fn clear(&mut self) {
        let len = std::mem::take(&mut self.len);
        for slot in &mut self.slots[..len] {
            // SAFETY: slots below the old `len` were written by `push` and
            // are dropped once: `len` is already 0.
            unsafe { slot.assume_init_drop() };
        }
    }

    fn push(&mut self, header: Header<'b>) -> Result<(), Error> {
        let slot = self.slots.get_mut(self.len).ok_or(Error::TooManyHeaders)?;
        slot.write(header);
        self.len += 1;
        Ok(())
    }

    fn as_slice(&self) -> &[Header<'b>] {
        // SAFETY: the first `len` slots are initialised (see `push`), and
        // MaybeUninit<T> has the layout of T.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast(), self.len) }
    }
}

impl Drop for HeaderSlots<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `sip.type`: what a message's start line makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipType {
    Request,
    Response,
}

impl SipType {
    /// Its name in events.
    pub fn name(self) -> &'static str {
        match self {
            SipType::Request => "request",
            SipType::Response => "response",
        }
    }
}

/// Request line or status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: &'a [u8], uri: Uri<'a> },
    Response { code: u16, reason: &'a [u8] },
}

/// Outcome of parsing bytes that may not hold a whole message yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole message.
    Complete(T),
    /// Valid so far; more bytes are needed (streams only).
    Partial,
}

/// How a message's end is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// UDP (RFC 3261 §18.3): the datagram holds one message; Content-Length,
    /// when present, may cut trailing bytes but never exceed the datagram.
    Datagram,
    /// TCP: Content-Length ends the body; without it the body is empty.
    Stream,
}

/// A parsed, validated SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    pub headers: &'a [Header<'a>],
    /// The message from its start line to the end of its body.
    pub raw: &'a [u8],
    pub body: &'a [u8],
    /// Bytes of the input this message used, leading CRLFs included.
    pub consumed: usize,
    pub call_id: Option<&'a [u8]>,
    pub cseq: Option<CSeq<'a>>,
    pub from: Option<NameAddr<'a>>,
    pub to: Option<NameAddr<'a>>,
    /// The first Contact value that is not `*`.
    pub contact: Option<NameAddr<'a>>,
    pub max_forwards: Option<u8>,
    pub content_length: Option<usize>,
    pub content_type: Option<&'a [u8]>,
    /// Whether a Via header holds more than one via-parm (comma-separated):
    /// only then do Via values need splitting (see [`Message::via_lists`]).
    via_lists: bool,
    /// Index of the first header of each [`HeaderName`], `NONE` if absent.
    first: [u8; HeaderName::COUNT],
    /// Index of the last header of each [`HeaderName`] (valid where `first`
    /// is), so a search for one name stops there rather than at the end.
    last: [u8; HeaderName::COUNT],
}

/// No header of that name ([`MAX_HEADERS`] fits in a `u8`).
const NONE: u8 = u8::MAX;
const _: () = assert!(MAX_HEADERS < NONE as usize);

const SIP_VERSION: &[u8] = b"SIP/2.0";

impl<'a> Message<'a> {
    /// Parses one message at the start of `buf`.
    ///
    /// `slots` lends the storage for header lines; the returned message
    /// borrows both. Leading CRLFs (keep-alives, RFC 3261 §7.5) are skipped.
    // Inlined into its callers (datagrams, stream framing) so the message
    // (over 800 bytes) is built where it is used rather than copied out:
    // 1.5–2.4 % less CPU time (benchmarks/history.md).
    #[inline(always)]
    pub fn parse<'b: 'a>(
        buf: &'b [u8],
        slots: &'a mut HeaderSlots<'b>,
        framing: Framing,
    ) -> Result<Status<Message<'a>>, Error> {
        slots.clear();
        let start = buf
            .iter()
            .position(|&b| !matches!(b, b'\r' | b'\n' | 0))
            .unwrap_or(buf.len());
        if start == buf.len() {
            return match framing {
                Framing::Datagram => Err(Error::KeepAlive),
                Framing::Stream => Ok(Status::Partial),
            };
        }
        let Some(line_end) = memchr(b'\n', &buf[start..]).map(|i| start + i) else {
            return match framing {
                Framing::Stream if buf.len() - start < 8 * 1024 => Ok(Status::Partial),
                _ => Err(classify_unterminated_start(&buf[start..])),
            };
        };
        let start_line = parse_start_line(strip_cr(&buf[start..line_end]))?;
        let Some(body_start) = split_headers(buf, line_end + 1, &mut *slots)? else {
            return match framing {
                Framing::Datagram => Err(Error::HeadersUnterminated),
                Framing::Stream => Ok(Status::Partial),
            };
        };
        let slots: &'a HeaderSlots<'b> = slots;
        let headers: &'a [Header<'a>] = slots.as_slice();
        let mut message = Message {
            start: start_line,
            headers,
            raw: &buf[start..body_start],
            body: &buf[body_start..body_start],
            consumed: body_start,
            call_id: None,
            cseq: None,
            from: None,
            to: None,
            contact: None,
            max_forwards: None,
            content_length: None,
            content_type: None,
            via_lists: false,
            first: [NONE; HeaderName::COUNT],
            last: [NONE; HeaderName::COUNT],
        };
        message.interpret_headers()?;
        let available = buf.len() - body_start;
        let body_len = match (framing, message.content_length) {
            (Framing::Datagram, Some(len)) if len > available => {
                return Err(Error::ContentLengthExceedsDatagram);
            }
            (Framing::Datagram, None) => available,
            (Framing::Stream, Some(len)) if len > available => return Ok(Status::Partial),
            (Framing::Stream, None) => 0,
            (_, Some(len)) => len,
        };
        let end = body_start + body_len;
        message.body = &buf[body_start..end];
        message.raw = &buf[start..end];
        message.consumed = end;
        Ok(Status::Complete(message))
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Request or response.
    pub fn sip_type(&self) -> SipType {
        match self.start {
            StartLine::Request { .. } => SipType::Request,
            StartLine::Response { .. } => SipType::Response,
        }
    }

    /// Values of every header called `name`, in order, each comma-separated
    /// element apart (empty elements skipped).
    pub fn list_values(&self, name: HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.headers_named(name)
            .flat_map(|h| text::split_list(&h.value))
            .filter(|v| !v.is_empty())
    }

    /// Whether a Via header holds more than one via-parm: only then do Via
    /// values need splitting at commas into via-parms (parsing counted them).
    pub fn via_lists(&self) -> bool {
        self.via_lists
    }

    /// Every header called `name`, in order.
    pub fn headers_named(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = &'a Header<'a>> + use<'a> {
        let named = match self.first[name as usize] {
            NONE => &[][..],
            first => &self.headers[usize::from(first)..=usize::from(self.last[name as usize])],
        };
        named.iter().filter(move |h| h.name == name)
    }

    /// The first value of header `name`.
    pub fn first_value(&self, name: HeaderName) -> Option<&'a [u8]> {
        match self.first[name as usize] {
            NONE => None,
            index => Some(&self.headers[usize::from(index)].value),
        }
    }

    /// Every header line after the start line as (name as written, value
    /// trimmed), read from the raw text: for headers that have no
    /// [`HeaderName`] of their own (a folded value gives its first line).
    pub fn raw_headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        let head = &self.raw[..self.raw.len() - self.body.len()];
        head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((line[..colon].trim_ascii(), line[colon + 1..].trim_ascii()))
        })
    }

    /// The first value of the header `name` (any case) that has no
    /// [`HeaderName`] of its own, read as [`Message::raw_headers`] does.
    pub fn other_header(&self, name: &[u8]) -> Option<&'a [u8]> {
        let head = &self.raw[..self.raw.len() - self.body.len()];
        // Only lines that start with the name are split at their colon.
        memchr::memchr_iter(b'\n', head).find_map(|nl| {
            let line = &head[nl + 1..];
            let line = &line[..memchr(b'\n', line).unwrap_or(line.len())];
            let rest = line
                .get(..name.len())
                .filter(|start| start.eq_ignore_ascii_case(name))
                .map(|_| line[name.len()..].trim_ascii_start())?;
            rest.strip_prefix(b":").map(<[u8]>::trim_ascii)
        })
    }

    /// Reads and checks the headers sipbeat interprets, in header order, so
    /// the first offending header names the error.
    fn interpret_headers(&mut self) -> Result<(), Error> {
        for (index, header) in self.headers.iter().enumerate() {
            let first = &mut self.first[header.name as usize];
            if *first == NONE {
                *first = index as u8;
            }
            self.last[header.name as usize] = index as u8;
            let value: &'a [u8] = &header.value;
            match header.name {
                HeaderName::CallId => {
                    self.call_id.get_or_insert(value);
                }
                HeaderName::CSeq => {
                    let cseq = CSeq::parse(value).ok_or(Error::InvalidCSeq)?;
                    self.cseq.get_or_insert(cseq);
                }
                HeaderName::From => keep_first(&mut self.from, value, Error::InvalidFrom)?,
                HeaderName::To => keep_first(&mut self.to, value, Error::InvalidTo)?,
                HeaderName::Contact => {
                    for contact in text::split_list(value) {
                        if contact != b"*" {
                            keep_first(&mut self.contact, contact, Error::InvalidContact)?;
                        }
                    }
                }
                HeaderName::MaxForwards => {
                    let hops = parse_decimal(value, 255).ok_or(Error::InvalidMaxForwards)?;
                    self.max_forwards.get_or_insert(hops as u8);
                }
                HeaderName::ContentLength => {
                    let len = parse_decimal(value, u64::from(u32::MAX))
                        .ok_or(Error::InvalidContentLength)? as usize;
                    if self.content_length.is_some_and(|seen| seen != len) {
                        return Err(Error::ConflictingContentLength);
                    }
                    self.content_length = Some(len);
                }
                HeaderName::ContentType => {
                    self.content_type.get_or_insert(value);
                }
                HeaderName::Via => match header::via_count(value) {
                    None => return Err(Error::InvalidVia),
                    Some(count) => self.via_lists |= count > 1,
                },
                // RFC 3261 §25.1: SIP-date is an RFC 1123 date, always GMT.
                HeaderName::Date if !value.ends_with(b" GMT") => return Err(Error::InvalidDate),
                _ => {}
            }
        }
        if let (StartLine::Request { method, .. }, Some(cseq)) = (self.start, self.cseq)
            && method != cseq.method
        {
            return Err(Error::CSeqMethodMismatch);
        }
        Ok(())
    }
}

/// Parses a name-addr header value; the first valid one is kept, and every
/// one must be valid. Parsed straight into `first` when it is the first, so
/// the (large) result is not copied.
fn keep_first<'a>(
    first: &mut Option<NameAddr<'a>>,
    value: &'a [u8],
    invalid: Error,
) -> Result<(), Error> {
    if first.is_none() {
        *first = NameAddr::parse(value);
        first.as_ref().map(|_| ()).ok_or(invalid)
    } else {
        NameAddr::parse(value).map(|_| ()).ok_or(invalid)
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A first line with no line end: SIP that was cut, or something else.
fn classify_unterminated_start(bytes: &[u8]) -> Error {
    let looks_like_sip = text::starts_with_ignore_case(bytes, b"SIP/")
        || memchr::memmem::find(bytes, b" SIP/").is_some();
    if looks_like_sip {
        Error::HeadersUnterminated
    } else {
        Error::NotSip
    }
}

/// Offset of the first valid SIP request or status line in `bytes`: where a
/// stream picks up again after a gap or a broken message. A start line is
/// found at the start of a line, or at the end of one: a body without a
/// trailing CRLF (a rejected message's, or one cut by a gap) runs straight
/// into the next message's start line.
pub fn find_start_line(bytes: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for line_end in memchr::memchr_iter(b'\n', bytes) {
        let line = strip_cr(&bytes[line_start..line_end]);
        if parse_start_line(line).is_ok() {
            return Some(line_start);
        }
        if let Some(offset) = glued_start_line(line) {
            return Some(line_start + offset);
        }
        line_start = line_end + 1;
    }
    None
}

/// Methods recognised where a start line follows other bytes on its line
/// (RFC 3261 and the extensions in common use).
const GLUED_METHODS: [&[u8]; 14] = [
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"OPTIONS",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
];

/// Offset of a valid start line that ends `line` after other bytes: a
/// status line from its `SIP/2.0 `, a request from a known method that
/// ends the line's first word.
fn glued_start_line(line: &[u8]) -> Option<usize> {
    if let Some(at) = memchr::memmem::rfind(line, b"SIP/2.0 ")
        && at > 0
        && parse_start_line(&line[at..]).is_ok()
    {
        return Some(at);
    }
    // METHOD SP Request-URI SP SIP/2.0, the URI without spaces: the method
    // ends the word before the URI.
    let version_space = line.len().checked_sub(b" SIP/2.0".len())?;
    if !text::ends_with_ignore_case(line, b" SIP/2.0") {
        return None;
    }
    let uri_space = text::rfind(&line[..version_space], b' ')?;
    let word_start = text::rfind(&line[..uri_space], b' ').map_or(0, |space| space + 1);
    let word = &line[word_start..uri_space];
    GLUED_METHODS
        .iter()
        .filter(|method| word.len() > method.len() && word.ends_with(method))
        .map(|method| uri_space - method.len())
        .find(|&at| parse_start_line(&line[at..]).is_ok())
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, Error> {
    if text::starts_with_ignore_case(line, b"SIP/") {
        return parse_status_line(line);
    }
    let (Some(first_space), Some(last_space)) = (text::find(line, b' '), text::rfind(line, b' '))
    else {
        return Err(Error::NotSip);
    };
    let version = &line[last_space + 1..];
    if !text::starts_with_ignore_case(version, b"SIP/") {
        // Trailing white space after a SIP version is a broken request line;
        // anything else (HTTP, SSDP, binary) is simply not SIP.
        let trimmed = trim(line);
        let last_word = trimmed.rsplit(|&b| b == b' ').next().unwrap_or_default();
        return Err(if text::starts_with_ignore_case(last_word, b"SIP/") {
            Error::InvalidRequestLine
        } else {
            Error::NotSip
        });
    }
    let method = &line[..first_space];
    let uri = line.get(first_space + 1..last_space).unwrap_or_default();
    if uri.is_empty() || text::find_any(uri, text::LWS).is_some() {
        return Err(Error::InvalidRequestLine);
    }
    if !is_token(method) {
        return Err(Error::InvalidMethod);
    }
    check_version(version, Error::InvalidRequestLine)?;
    let uri = Uri::parse(uri);
    if !uri.is_valid_request_uri() {
        return Err(Error::InvalidRequestUri);
    }
    Ok(StartLine::Request { method, uri })
}

fn parse_status_line(line: &[u8]) -> Result<StartLine<'_>, Error> {
    let version_end = text::find(line, b' ').ok_or(Error::InvalidStatusLine)?;
    check_version(&line[..version_end], Error::InvalidStatusLine)?;
    let rest = &line[version_end + 1..];
    let code_end = text::find(rest, b' ').unwrap_or(rest.len());
    let code = &rest[..code_end];
    if code.len() != 3 {
        return Err(Error::InvalidStatusCode);
    }
    let code = parse_decimal(code, 699)
        .filter(|&c| c >= 100)
        .ok_or(Error::InvalidStatusCode)? as u16;
    let reason = rest.get(code_end + 1..).unwrap_or_default();
    Ok(StartLine::Response { code, reason })
}

/// `SIP/2.0` passes; another `SIP/x.y` is unsupported; anything else is `otherwise`.
fn check_version(version: &[u8], otherwise: Error) -> Result<(), Error> {
    if version.eq_ignore_ascii_case(SIP_VERSION) {
        Ok(())
    } else if text::starts_with_ignore_case(version, b"SIP/")
        && version[4..]
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b'.')
    {
        Err(Error::UnsupportedVersion)
    } else {
        Err(otherwise)
    }
}

/// Fills `slots` with the header lines that start at `pos`. Returns where
/// the body starts, or `None` when the header section does not end within `buf`.
fn split_headers<'b>(
    buf: &'b [u8],
    mut pos: usize,
    slots: &mut HeaderSlots<'b>,
) -> Result<Option<usize>, Error> {
    // The header being read: (name, value start, value end, folded).
    let mut open: Option<(HeaderName, usize, usize, bool)> = None;
    let start = pos;
    // One iterator over the line ends: no search set-up per line.
    for line_end in text::line_ends(&buf[start..]).map(|i| start + i) {
        let line = strip_cr(&buf[pos..line_end]);
        let next = line_end + 1;
        match line.first() {
            None => {
                if let Some(header) = open.take() {
                    close_header(buf, header, slots)?;
                }
                return Ok(Some(next));
            }
            Some(b' ' | b'\t') => match open.as_mut() {
                Some((_, _, value_end, folded)) => {
                    *value_end = pos + line.len();
                    *folded = true;
                }
                None => return Err(Error::InvalidHeader),
            },
            Some(_) => {
                if let Some(header) = open.take() {
                    close_header(buf, header, slots)?;
                }
                // `token *LWS ":"`. Neither a token nor LWS holds a colon,
                // so the first one ends the name; a name sipbeat knows is a
                // token, so only the others are checked byte by byte.
                let colon = text::find(line, b':').ok_or(Error::InvalidHeader)?;
                let name_bytes = text::trim_end(&line[..colon]);
                let name = HeaderName::from_bytes(name_bytes);
                if name == HeaderName::Other && !is_token(name_bytes) {
                    return Err(Error::InvalidHeader);
                }
                open = Some((name, pos + colon + 1, pos + line.len(), false));
            }
        }
        pos = next;
    }
    Ok(None)
}

// Inlined: called once per header line, a call cost the line loop its
// vector constants (reloaded after every return) and half this function's
// instructions again. PGO builds inline it by themselves.
#[inline(always)]
fn close_header<'b>(
    buf: &'b [u8],
    (name, value_start, value_end, folded): (HeaderName, usize, usize, bool),
    slots: &mut HeaderSlots<'b>,
) -> Result<(), Error> {
    let raw = trim(&buf[value_start..value_end]);
    slots.push(Header {
        name,
        value: if folded {
            Cow::Owned(text::unfold(raw))
        } else {
            Cow::Borrowed(raw)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What outlives the header slots: bytes consumed and header values.
    type Parsed = (usize, Vec<Vec<u8>>);

    fn parse(bytes: &[u8], framing: Framing) -> Result<Status<Parsed>, Error> {
        let mut slots = HeaderSlots::new();
        Message::parse(bytes, &mut slots, framing).map(|status| match status {
            Status::Complete(m) => Status::Complete((
                m.consumed,
                m.headers.iter().map(|h| h.value.to_vec()).collect(),
            )),
            Status::Partial => Status::Partial,
        })
    }

    /// Parses `bytes` as a datagram that must hold a complete message and
    /// hands the message to `check`.
    fn check_datagram(bytes: &[u8], check: impl FnOnce(&Message<'_>)) {
        let mut slots = HeaderSlots::new();
        match Message::parse(bytes, &mut slots, Framing::Datagram) {
            Ok(Status::Complete(m)) => check(&m),
            Ok(Status::Partial) => panic!("complete message expected, got a partial one"),
            Err(error) => panic!("complete message expected, got {error:?}"),
        }
    }

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\nCall-ID: a@b\r\nl: 4\r\n\r\nbodyEXTRA";

    #[test]
    fn datagram_body_is_cut_at_content_length() {
        check_datagram(OPTIONS, |m| {
            assert_eq!(m.body, b"body");
            assert_eq!(m.call_id, Some(&b"a@b"[..]));
            assert_eq!(
                m.cseq,
                Some(CSeq {
                    number: 1,
                    method: b"OPTIONS"
                })
            );
            assert_eq!(m.content_length, Some(4));
            assert!(m.raw.ends_with(b"body"));
        });
    }

    #[test]
    fn other_headers_are_found_by_name_in_any_case() {
        let text = b"BYE sip:b@h SIP/2.0\r\nReasons: no\r\nCall-ID: a@b\r\nCSeq: 2 BYE\r\nreason : Q.850;cause=16 \r\nReason: SIP;cause=200\r\nContent-Length: 9\r\n\r\nReason: x";
        check_datagram(text, |m| {
            assert_eq!(m.other_header(b"reason"), Some(&b"Q.850;cause=16"[..]));
            assert_eq!(m.other_header(b"REASONS"), Some(&b"no"[..]));
            assert_eq!(m.other_header(b"x-cid"), None);
            let lines: Vec<_> = m.raw_headers().map(|(name, _)| name).collect();
            assert_eq!(lines.len(), 6, "the body is not a header: {lines:?}");
        });
    }

    #[test]
    fn stream_waits_for_headers_and_body() {
        for cut in [10, 60, OPTIONS.len() - 10] {
            assert_eq!(
                parse(&OPTIONS[..cut], Framing::Stream),
                Ok(Status::Partial),
                "cut {cut}"
            );
        }
        let Ok(Status::Complete((consumed, _))) = parse(OPTIONS, Framing::Stream) else {
            panic!("complete");
        };
        assert_eq!(&OPTIONS[consumed..], b"EXTRA");
    }

    #[test]
    fn folded_values_are_unfolded() {
        let msg = b"SIP/2.0 200 OK\r\ncseq: 0009\r\n  INVITE\r\nX: a\r\n\tb\r\n\r\n";
        check_datagram(msg, |m| {
            assert_eq!(
                m.start,
                StartLine::Response {
                    code: 200,
                    reason: b"OK"
                }
            );
            assert_eq!(
                m.cseq,
                Some(CSeq {
                    number: 9,
                    method: b"INVITE"
                })
            );
            let values: Vec<&[u8]> = m.headers.iter().map(|h| &*h.value).collect();
            assert_eq!(values, [&b"0009 INVITE"[..], b"a b"]);
        });
    }

    #[test]
    fn headers_of_one_name_are_found_wherever_they_are() {
        let msg = b"OPTIONS sip:b@h SIP/2.0\r\nv: SIP/2.0/UDP a\r\nCSeq: 1 OPTIONS\r\nAllow: A\r\nVia: SIP/2.0/UDP b\r\nX: y\r\nVIA: SIP/2.0/UDP c\r\n\r\n";
        check_datagram(msg, |m| {
            let values =
                |name| -> Vec<&[u8]> { m.headers_named(name).map(|h| &*h.value).collect() };
            assert_eq!(
                values(HeaderName::Via),
                [&b"SIP/2.0/UDP a"[..], b"SIP/2.0/UDP b", b"SIP/2.0/UDP c"]
            );
            assert_eq!(values(HeaderName::Allow), [&b"A"[..]]);
            assert_eq!(values(HeaderName::CSeq), [&b"1 OPTIONS"[..]]);
            assert!(values(HeaderName::Contact).is_empty());
            assert_eq!(m.first_value(HeaderName::Via), Some(&b"SIP/2.0/UDP a"[..]));
        });
    }

    #[test]
    fn keepalives_and_non_sip() {
        assert_eq!(parse(b"\r\n\r\n", Framing::Datagram), Err(Error::KeepAlive));
        assert_eq!(parse(b"\r\n\r\n", Framing::Stream), Ok(Status::Partial));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Framing::Datagram),
            Err(Error::NotSip)
        );
        assert_eq!(
            parse(b"NOTIFY * HTTP/1.1\r\n\r\n", Framing::Datagram),
            Err(Error::NotSip)
        );
        assert_eq!(
            parse(b"\x00\x01binary", Framing::Datagram),
            Err(Error::NotSip)
        );
    }

    #[test]
    fn start_line_errors() {
        let cases: &[(&[u8], Error)] = &[
            (b"SIP/2.0 4294967301 big\r\n\r\n", Error::InvalidStatusCode),
            (b"SIP/2.0 99 low\r\n\r\n", Error::InvalidStatusCode),
            (b"SIP/7.0 200 OK\r\n\r\n", Error::UnsupportedVersion),
            (
                b"OPTIONS sip:a@b SIP/7.0\r\n\r\n",
                Error::UnsupportedVersion,
            ),
            (
                b"INVITE  sip:a@b  SIP/2.0\r\n\r\n",
                Error::InvalidRequestLine,
            ),
            (
                b"INVITE sip:a@b SIP/2.0  \r\n\r\n",
                Error::InvalidRequestLine,
            ),
            (
                b"INVITE <sip:a@b> SIP/2.0\r\n\r\n",
                Error::InvalidRequestUri,
            ),
            (b"INV@TE sip:a@b SIP/2.0\r\n\r\n", Error::InvalidMethod),
        ];
        for (bytes, error) in cases {
            assert_eq!(
                parse(bytes, Framing::Datagram),
                Err(*error),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn header_errors() {
        let with =
            |header: &str| format!("OPTIONS sip:a@b SIP/2.0\r\n{header}\r\n\r\n").into_bytes();
        let cases = [
            ("Content-Length: -1", Error::InvalidContentLength),
            ("Content-Length: 10", Error::ContentLengthExceedsDatagram),
            ("l: 0\r\nContent-Length: 1", Error::ConflictingContentLength),
            ("Max-Forwards: 256", Error::InvalidMaxForwards),
            ("CSeq: 1 INVITE", Error::CSeqMethodMismatch),
            ("Date: Fri, 01 Jan 2010 16:00:00 EST", Error::InvalidDate),
            ("no colon here", Error::InvalidHeader),
            (" leading fold", Error::InvalidHeader),
        ];
        for (header, error) in cases {
            assert_eq!(
                parse(&with(header), Framing::Datagram),
                Err(error),
                "{header}"
            );
        }
        assert_eq!(
            parse(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n", Framing::Datagram),
            Err(Error::HeadersUnterminated)
        );
    }

    #[test]
    fn start_lines_are_found_after_junk() {
        assert_eq!(find_start_line(b"INVITE sip:a@b SIP/2.0\r\n"), Some(0));
        assert_eq!(
            find_start_line(b"body tail\r\nmore\r\nSIP/2.0 200 OK\r\nVia: x\r\n"),
            Some(17)
        );
        assert_eq!(find_start_line(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        // A body without a trailing CRLF runs into the next start line.
        assert_eq!(
            find_start_line(b"Via: x\r\n\r\nhello thereINVITE sip:a@b SIP/2.0\r\nVia: y\r\n"),
            Some(21)
        );
        assert_eq!(
            find_start_line(b"a=sendrecvSIP/2.0 180 Ringing\r\n"),
            Some(10)
        );
        assert_eq!(find_start_line(b"xINVITE is a word SIP/2.0 \r\n"), None);
        // An unknown word glued before a URI: not a known method's end.
        assert_eq!(find_start_line(b"a=x yFOO sip:a@b SIP/2.0\r\n"), None);
        assert_eq!(
            find_start_line(b"SIP/2.0 200 OK"),
            None,
            "a line without its end may still grow"
        );
    }

    #[test]
    fn too_many_headers_is_an_error_not_a_panic() {
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            msg.extend_from_slice(b"X: y\r\n");
        }
        msg.extend_from_slice(b"\r\n");
        assert_eq!(parse(&msg, Framing::Datagram), Err(Error::TooManyHeaders));
    }
}
