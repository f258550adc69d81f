//! RFC 4475 and RFC 5118 torture messages, as UDP datagrams would carry them.
//!
//! Every valid message parses with the right Call-ID, method, CSeq and
//! From/To URIs (expected values read off the RFC texts); every invalid one
//! is rejected, with the reason the RFC gives; none panics.

mod common;

use sipbeat::sip::{Error, Framing, HeaderSlots, Message, StartLine, Status};

/// One torture file as `testdata/torture/INDEX.tsv` lists it.
struct Case {
    file: String,
    class: String,
}

fn cases() -> Vec<Case> {
    let index = std::fs::read_to_string(common::testdata().join("torture/INDEX.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Case {
                file: cols[0].to_string(),
                class: cols[4].to_string(),
            }
        })
        .collect()
}

/// The bytes a UDP datagram would carry. RFC 5118's archive uses bare LF,
/// leaves two messages without the blank line ending the headers and gets
/// two Content-Lengths wrong (SOURCES.md); a sender would put CRLF, the blank
/// line and the body's real length on the wire, so this does too.
fn wire_bytes(case: &Case) -> Vec<u8> {
    let raw = std::fs::read(common::testdata().join("torture").join(&case.file)).unwrap();
    if !case.file.starts_with("rfc5118/") {
        return raw;
    }
    let text = String::from_utf8(raw).unwrap().replace('\n', "\r\n");
    let (head, body) = match text.split_once("\r\n\r\n") {
        Some((head, body)) => (head.to_string(), body.to_string()),
        None => (text.trim_end().to_string(), String::new()),
    };
    let head: Vec<String> = head
        .split("\r\n")
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}", body.len())
            } else {
                line.to_string()
            }
        })
        .collect();
    format!("{}\r\n\r\n{}", head.join("\r\n"), body).into_bytes()
}

/// What a valid message must parse to.
struct Expected {
    call_id: &'static str,
    /// Request method, or the status code of a response.
    start: Start,
    cseq: (u32, &'static str),
    from: &'static str,
    /// Prefix of the To URI (longreq's runs to hundreds of bytes).
    to_prefix: &'static str,
}

enum Start {
    Method(&'static str),
    Code(u16),
}

fn expected(file: &str) -> Option<Expected> {
    use Start::*;
    let e = |call_id, start, cseq, from, to_prefix| {
        Some(Expected {
            call_id,
            start,
            cseq,
            from,
            to_prefix,
        })
    };
    match file {
        "rfc4475/wsinv.dat" => e(
            "wsinv.ndaksdj@192.0.2.1",
            Method("INVITE"),
            (9, "INVITE"),
            "sip:jdrosen@example.com",
            "sip:vivekg@chair-dnrc.example.com",
        ),
        "rfc4475/intmeth.dat" => e(
            "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
            Method("!interesting-Method0123456789_*+`.%indeed'~"),
            (139122385, "!interesting-Method0123456789_*+`.%indeed'~"),
            "sip:mundane@example.com",
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com",
        ),
        "rfc4475/esc01.dat" => e(
            "esc01.239409asdfakjkn23onasd0-3234",
            Method("INVITE"),
            (234234, "INVITE"),
            "sip:I%20have%20spaces@example.net",
            "sip:%75se%72@example.com",
        ),
        "rfc4475/escnull.dat" => e(
            "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
            Method("REGISTER"),
            (14398234, "REGISTER"),
            "sip:null-%00-null@example.com",
            "sip:null-%00-null@example.com",
        ),
        "rfc4475/esc02.dat" => e(
            "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
            Method("RE%47IST%45R"),
            (29344, "RE%47IST%45R"),
            "sip:resource@example.com",
            "sip:resource@example.com",
        ),
        "rfc4475/lwsdisp.dat" => e(
            "lwsdisp.1234abcd@funky.example.com",
            Method("OPTIONS"),
            (60, "OPTIONS"),
            "sip:caller@example.com",
            "sip:user@example.com",
        ),
        "rfc4475/longreq.dat" => e(
            "longreq.onereallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallyreallylongcallid",
            Method("INVITE"),
            (3882340, "INVITE"),
            "sip:amazinglylongcallernameamazinglylongcallernameamazinglylongcallernameamazinglylongcallernameamazinglylongcallername@example.net",
            "sip:user@example.com:6000;unknownparam1=verylonglong",
        ),
        "rfc4475/dblreq.dat" => e(
            "dblreq.0ha0isndaksdj99sdfafnl3lk233412",
            Method("REGISTER"),
            (8, "REGISTER"),
            "sip:j.user@example.com",
            "sip:j.user@example.com",
        ),
        "rfc4475/semiuri.dat" => e(
            "semiuri.0ha0isndaksdj",
            Method("OPTIONS"),
            (8, "OPTIONS"),
            "sip:caller@example.org",
            "sip:j_user@example.com",
        ),
        "rfc4475/transports.dat" => e(
            "transports.kijh4akdnaqjkwendsasfdj",
            Method("OPTIONS"),
            (60, "OPTIONS"),
            "sip:caller@example.com",
            "sip:user@example.com",
        ),
        "rfc4475/mpart01.dat" => e(
            "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
            Method("MESSAGE"),
            (1, "MESSAGE"),
            "sip:fluffy@example.com",
            "sip:kumiko@example.org",
        ),
        "rfc4475/unreason.dat" => e(
            "unreason.1234ksdfak3j2erwedfsASdf",
            Code(200),
            (35, "INVITE"),
            "sip:user@example.com",
            "sip:user@example.edu",
        ),
        "rfc4475/noreason.dat" => e(
            "noreason.asndj203insdf99223ndf",
            Code(100),
            (35, "INVITE"),
            "sip:user@example.com",
            "sip:user@example.edu",
        ),
        "rfc5118/ipv6-good" => e(
            "SSG9559905523997077@hlau_4100",
            Method("REGISTER"),
            (98176, "REGISTER"),
            "sip:user@example.com",
            "sip:user@example.com",
        ),
        "rfc5118/port-ambiguous" => e(
            "SSG9559905523997077@hlau_4100",
            Method("REGISTER"),
            (98176, "REGISTER"),
            "sip:user@example.com",
            "sip:user@example.com",
        ),
        "rfc5118/port-unambiguous" => e(
            "SSG9559905523997077@hlau_4100",
            Method("REGISTER"),
            (98176, "REGISTER"),
            "sip:user@example.com",
            "sip:user@example.com",
        ),
        "rfc5118/via-received-param-with-delim" => e(
            "SSG9559905523997077@hlau_4100",
            Method("BYE"),
            (321, "BYE"),
            "sip:user@example.com",
            "sip:user@example.com",
        ),
        "rfc5118/via-received-param-no-delim" => e(
            "SSG95523997077@hlau_4100",
            Method("OPTIONS"),
            (921, "OPTIONS"),
            "sip:user@example.com",
            "sip:user@example.com",
        ),
        "rfc5118/ipv6-in-sdp" => e(
            "SSG9559905523997077@hlau_4100",
            Method("INVITE"),
            (8612, "INVITE"),
            "sip:user@example.com",
            "sip:user@[2001:db8::10]",
        ),
        "rfc5118/mult-ip-in-header" => e(
            "997077@lau_4100",
            Method("BYE"),
            (89187, "BYE"),
            "sip:user@example.com",
            "sip:user@example.net",
        ),
        "rfc5118/mult-ip-in-sdp" => e(
            "SSG9559905523997077@hlau_4100",
            Method("INVITE"),
            (8912, "INVITE"),
            "sip:user@example.com",
            "sip:user@[2001:db8::10]",
        ),
        "rfc5118/ipv4-mapped-ipv6" => e(
            "SSG9559905523997077@hlau_4100",
            Method("INVITE"),
            (612, "INVITE"),
            "sip:user@east.example.com",
            "sip:user@example.com",
        ),
        "rfc5118/ipv6-correct-abnf-2-colons" => e(
            "G9559905523997077@hlau_4100",
            Method("OPTIONS"),
            (689, "OPTIONS"),
            "sip:user@example.com",
            "sip:user@[2001:db8::192.0.2.1]",
        ),
        // RFC 5118 §4.2 calls an unbracketed IPv6 Request-URI invalid, but
        // real phones send it (heplify's sip_ipv6_udp.pcap): sipbeat reads
        // it as the address it evidently is rather than lose the event.
        "rfc5118/ipv6-bad" => e(
            "SSG9559905523997077@hlau_4100",
            Method("REGISTER"),
            (98176, "REGISTER"),
            "sip:user@example.com",
            "sip:user@example.com",
        ),
        "rfc5118/ipv6-bug-abnf-3-colons" => e(
            "G9559905523997077@hlau_4100",
            Method("OPTIONS"),
            (689, "OPTIONS"),
            "sip:user@example.com",
            "sip:user@[2001:db8:::192.0.2.1]",
        ),
        _ => None,
    }
}

/// Why each syntactically invalid message must be refused.
fn expected_error(file: &str) -> Option<Error> {
    Some(match file {
        "rfc4475/badinv01.dat" => Error::InvalidVia,
        "rfc4475/clerr.dat" => Error::ContentLengthExceedsDatagram,
        "rfc4475/ncl.dat" => Error::InvalidContentLength,
        "rfc4475/scalar02.dat" | "rfc4475/scalarlg.dat" => Error::InvalidCSeq,
        "rfc4475/quotbal.dat" => Error::InvalidTo,
        "rfc4475/ltgtruri.dat" | "rfc4475/escruri.dat" => Error::InvalidRequestUri,
        "rfc4475/lwsruri.dat" | "rfc4475/lwsstart.dat" | "rfc4475/trws.dat" => {
            Error::InvalidRequestLine
        }
        "rfc4475/baddate.dat" => Error::InvalidDate,
        "rfc4475/regbadct.dat" => Error::InvalidContact,
        "rfc4475/badaspec.dat" => Error::InvalidTo,
        // The archive's baddn.dat ends without the blank line closing the
        // headers, so as a datagram it is cut short before its bad display
        // name counts; `header::tests::invalid_name_addrs` rejects that From.
        "rfc4475/baddn.dat" => Error::HeadersUnterminated,
        "rfc4475/badvers.dat" => Error::UnsupportedVersion,
        "rfc4475/mismatch01.dat" | "rfc4475/mismatch02.dat" => Error::CSeqMethodMismatch,
        "rfc4475/bigcode.dat" => Error::InvalidStatusCode,
        // RFC 4475 §3.3.9 expects a 400: two Content-Lengths leave the
        // body's end unknowable, so sipbeat cannot frame it either.
        "rfc4475/mcl01.dat" => Error::ConflictingContentLength,
        _ => return None,
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn torture_messages() {
    let cases = cases();
    assert_eq!(cases.len(), 49 + 12, "INDEX.tsv lists every torture file");
    let (mut parsed, mut rejected) = (0, 0);
    for case in &cases {
        let bytes = wire_bytes(case);
        let mut slots = HeaderSlots::new();
        let result = Message::parse(&bytes, &mut slots, Framing::Datagram);
        match (expected_error(&case.file), result) {
            (Some(want), Err(got)) => {
                assert_eq!(got, want, "{}: rejected for the wrong reason", case.file);
                rejected += 1;
            }
            (Some(want), Ok(_)) => {
                panic!("{} ({}) must be rejected as {want}", case.file, case.class)
            }
            (None, Err(error)) => panic!("{} ({}) must parse, got {error}", case.file, case.class),
            (None, Ok(Status::Partial)) => panic!("{}: a datagram is never partial", case.file),
            (None, Ok(Status::Complete(message))) => {
                parsed += 1;
                let Some(want) = expected(&case.file) else {
                    // §3.2–3.4: well-formed, with transaction or application
                    // layer problems a sensor reports rather than judges.
                    assert!(
                        !case.class.starts_with("valid"),
                        "{}: no expectations written",
                        case.file
                    );
                    continue;
                };
                assert_eq!(
                    message.call_id.map(text).as_deref(),
                    Some(want.call_id),
                    "{}: Call-ID",
                    case.file
                );
                match (want.start, message.start) {
                    (Start::Method(m), StartLine::Request { method, .. }) => {
                        assert_eq!(text(method), m, "{}", case.file)
                    }
                    (Start::Code(c), StartLine::Response { code, .. }) => {
                        assert_eq!(code, c, "{}", case.file)
                    }
                    _ => panic!("{}: request/response mix-up", case.file),
                }
                let cseq = message.cseq.expect("CSeq");
                assert_eq!(
                    (cseq.number, text(cseq.method).as_str()),
                    want.cseq,
                    "{}: CSeq",
                    case.file
                );
                assert_eq!(
                    text(message.from.as_ref().expect("From").uri.original),
                    want.from,
                    "{}: From",
                    case.file
                );
                let to = text(message.to.as_ref().expect("To").uri.original);
                assert!(to.starts_with(want.to_prefix), "{}: To {to}", case.file);
            }
        }
    }
    assert_eq!(rejected, 20, "the 19 RFC 4475 §3.1.2 messages and mcl01");
    assert_eq!(parsed, cases.len() - rejected);
}

#[test]
fn extra_octets_after_a_datagram_message_are_ignored() {
    // RFC 4475 §3.1.1.8: the REGISTER ends at its Content-Length of 0; the
    // INVITE after it in the same datagram is not a second message.
    let bytes = std::fs::read(common::testdata().join("torture/rfc4475/dblreq.dat")).unwrap();
    let mut slots = HeaderSlots::new();
    let Ok(Status::Complete(message)) = Message::parse(&bytes, &mut slots, Framing::Datagram)
    else {
        panic!("dblreq parses");
    };
    assert!(message.body.is_empty());
    assert!(message.raw.ends_with(b"Content-Length: 0\r\n\r\n"));
    assert!(bytes.len() > message.raw.len() + 100);
}

/// Every prefix of every torture message, and each with one byte flipped,
/// parses or fails cleanly (no panic, no out-of-bounds).
#[test]
fn truncations_and_corruptions_never_panic() {
    for case in cases() {
        let bytes = wire_bytes(&case);
        for end in 0..bytes.len() {
            for framing in [Framing::Datagram, Framing::Stream] {
                let mut slots = HeaderSlots::new();
                let _ = Message::parse(&bytes[..end], &mut slots, framing);
            }
        }
        let mut corrupt = bytes.clone();
        for i in (0..corrupt.len()).step_by(7) {
            let saved = corrupt[i];
            for replacement in [0u8, b'\r', b'\n', b':', b'"', b'<', b';', 0xff] {
                corrupt[i] = replacement;
                let mut slots = HeaderSlots::new();
                let _ = Message::parse(&corrupt, &mut slots, Framing::Datagram);
            }
            corrupt[i] = saved;
        }
    }
}
