//! SDP session descriptions (RFC 8866) as carried in SIP bodies: version,
//! origin, session name, connection, timing, and each media section with its
//! `a=rtpmap` lines. Lines are read leniently (LF or CRLF, unknown types
//! skipped): a sensor reports what was offered, it does not negotiate.

use super::text::{line_ends, trim};

/// Media sections kept per body; more are counted in [`Sdp::media_dropped`].
pub const MAX_MEDIA: usize = 8;

/// `o=` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin<'a> {
    /// `None` when the username is `-`.
    pub username: Option<&'a [u8]>,
    pub session_id: &'a [u8],
    pub session_version: &'a [u8],
    pub address: &'a [u8],
}

/// `c=` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connection<'a> {
    /// The whole value, `IN IP4 192.0.2.1`.
    pub info: &'a [u8],
    /// The address (last field).
    pub address: &'a [u8],
}

/// One `m=` section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Media<'a> {
    /// `audio`, `video`, `image`, ...
    pub kind: &'a [u8],
    pub port: Option<u16>,
    /// `RTP/AVP`, `udptl`, ...
    pub protocol: &'a [u8],
    /// Format list as written (`0 8 101`).
    pub formats: &'a [u8],
    /// Media-level `c=`.
    pub connection: Option<Connection<'a>>,
    /// The section's lines after `m=`, read again by [`Media::rtpmaps`]
    /// rather than copied out: a parse stays small and has no limit on them.
    lines: &'a [u8],
}

impl<'a> Media<'a> {
    /// The section's lines after `m=` (its attributes and `c=`), as written.
    pub fn lines(&self) -> &'a [u8] {
        self.lines
    }

    /// `a=rtpmap` values (`8 PCMA/8000`) of this section.
    pub fn rtpmaps(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        lines(self.lines).filter_map(|line| {
            (line.kind == b'a')
                .then(|| line.value.strip_prefix(b"rtpmap:"))
                .flatten()
                .map(trim)
        })
    }
}

/// One `type=value` line.
struct Line<'a> {
    /// Where the line starts in the text.
    start: usize,
    /// Where the next line starts.
    next: usize,
    kind: u8,
    /// The value, trimmed.
    value: &'a [u8],
}

/// The `type=value` lines of `text` (LF or CRLF); other lines are skipped.
fn lines(text: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut start = 0;
    line_ends(text)
        .chain((!text.ends_with(b"\n")).then_some(text.len()))
        .filter_map(move |end| {
            let line = &text[start..end];
            let line_start = std::mem::replace(&mut start, end + 1);
            match line.strip_suffix(b"\r").unwrap_or(line) {
                [kind, b'=', value @ ..] => Some(Line {
                    start: line_start,
                    next: (end + 1).min(text.len()),
                    kind: *kind,
                    value: trim(value),
                }),
                _ => None,
            }
        })
}

/// A parsed session description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sdp<'a> {
    pub version: Option<&'a [u8]>,
    pub origin: Option<Origin<'a>>,
    /// `None` when absent or `-`.
    pub session_name: Option<&'a [u8]>,
    /// Session-level `c=` (before the first `m=`).
    pub connection: Option<Connection<'a>>,
    /// `t=` start and stop times as written.
    pub time: Option<&'a [u8]>,
    media: [Media<'a>; MAX_MEDIA],
    media_count: usize,
    /// Media sections beyond [`MAX_MEDIA`], not kept.
    pub media_dropped: usize,
}

impl<'a> Sdp<'a> {
    /// Reads every line of `body`; never fails.
    pub fn parse(body: &'a [u8]) -> Sdp<'a> {
        let mut sdp = Sdp::default();
        let mut in_media = false;
        for Line {
            start,
            next,
            kind,
            value,
        } in lines(body)
        {
            match kind {
                b'v' => sdp.version = Some(value),
                b'o' => sdp.origin = parse_origin(value),
                b's' => sdp.session_name = Some(value).filter(|s| *s != b"-" && !s.is_empty()),
                b't' => sdp.time = Some(value),
                b'c' => {
                    let connection = parse_connection(value);
                    match sdp.current_media() {
                        Some(media) if in_media => media.connection = Some(connection),
                        _ => sdp.connection = Some(connection),
                    }
                }
                b'm' => {
                    in_media = true;
                    // The previous section's lines end where this one starts.
                    if let Some(previous) = sdp.current_media() {
                        let len = previous.lines.len() - (body.len() - start);
                        previous.lines = &previous.lines[..len];
                    }
                    if sdp.media_count == MAX_MEDIA {
                        sdp.media_dropped += 1;
                        continue;
                    }
                    sdp.media[sdp.media_count] = Media {
                        lines: &body[next..],
                        ..parse_media(value)
                    };
                    sdp.media_count += 1;
                }
                _ => {}
            }
        }
        sdp
    }

    /// The media sections, in order.
    pub fn media(&self) -> &[Media<'a>] {
        &self.media[..self.media_count]
    }

    fn current_media(&mut self) -> Option<&mut Media<'a>> {
        // After MAX_MEDIA sections, lines belong to a dropped section.
        if self.media_dropped > 0 {
            return None;
        }
        self.media[..self.media_count].last_mut()
    }
}

fn fields(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b' ').filter(|f| !f.is_empty())
}

fn parse_origin(value: &[u8]) -> Option<Origin<'_>> {
    let mut parts = fields(value);
    let username = parts.next()?;
    let session_id = parts.next()?;
    let session_version = parts.next()?;
    let address = parts.last()?;
    Some(Origin {
        username: (username != b"-").then_some(username),
        session_id,
        session_version,
        address,
    })
}

fn parse_connection(value: &[u8]) -> Connection<'_> {
    Connection {
        info: value,
        address: fields(value).last().unwrap_or_default(),
    }
}

fn parse_media(value: &[u8]) -> Media<'_> {
    let mut parts = value.splitn(4, |&b| b == b' ');
    let kind = parts.next().unwrap_or_default();
    let port_field = parts.next().unwrap_or_default();
    // `port/count` announces several ports; the first is the one to watch.
    let port_text = port_field.split(|&b| b == b'/').next().unwrap_or_default();
    let port = super::text::parse_decimal(port_text, u64::from(u16::MAX)).map(|p| p as u16);
    Media {
        kind,
        port,
        protocol: parts.next().unwrap_or_default(),
        formats: trim(parts.next().unwrap_or_default()),
        ..Media::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"v=0\r\no=IPP 1589356486 1589356361 IN IP4 10.33.6.100\r\ns=Phone-Call\r\nc=IN IP4 10.33.6.100\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 13 101\r\nc=IN IP4 10.0.0.9\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\nm=video 0 RTP/AVP 31\r\n";

    #[test]
    fn session_and_media() {
        let sdp = Sdp::parse(BODY);
        assert_eq!(sdp.version, Some(&b"0"[..]));
        let origin = sdp.origin.unwrap();
        assert_eq!(origin.username, Some(&b"IPP"[..]));
        assert_eq!(origin.session_id, b"1589356486");
        assert_eq!(origin.session_version, b"1589356361");
        assert_eq!(origin.address, b"10.33.6.100");
        assert_eq!(sdp.session_name, Some(&b"Phone-Call"[..]));
        assert_eq!(sdp.connection.unwrap().address, b"10.33.6.100");
        assert_eq!(sdp.time, Some(&b"0 0"[..]));
        let media = sdp.media();
        assert_eq!(media.len(), 2);
        assert_eq!(media[0].kind, b"audio");
        assert_eq!(media[0].port, Some(6000));
        assert_eq!(media[0].protocol, b"RTP/AVP");
        assert_eq!(media[0].formats, b"8 13 101");
        assert_eq!(media[0].connection.unwrap().address, b"10.0.0.9");
        assert_eq!(
            media[0].rtpmaps().collect::<Vec<_>>(),
            [&b"8 PCMA/8000"[..], b"101 telephone-event/8000"]
        );
        assert_eq!(media[1].port, Some(0));
        assert_eq!(media[1].rtpmaps().count(), 0);
    }

    #[test]
    fn anonymous_origin_and_garbage() {
        let sdp = Sdp::parse(b"o=- 42 42 IN IP4 10.0.2.20\ns=-\nx\n=\nm=\n");
        assert_eq!(sdp.origin.unwrap().username, None);
        assert_eq!(sdp.session_name, None);
        assert_eq!(sdp.media().len(), 1);
        assert_eq!(sdp.media()[0].port, None);
    }

    #[test]
    fn media_beyond_the_limit_are_counted() {
        let body = b"m=audio 1 RTP/AVP 0\n".repeat(MAX_MEDIA + 3);
        let sdp = Sdp::parse(&body);
        assert_eq!(sdp.media().len(), MAX_MEDIA);
        assert_eq!(sdp.media_dropped, 3);
    }
}
