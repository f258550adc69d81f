//! Realistic SIP call traffic as a pcap, for benchmarks.
//!
//! Each call is the seven messages of a basic INVITE dialog (INVITE with SDP,
//! 100, 180, 200 with SDP, ACK, BYE, 200) between randomised carrier-style
//! endpoints, with the headers an SBC really adds (two Vias, Record-Route,
//! P-Asserted-Identity, Session-Expires, Allow, Supported). Every tenth call
//! is preceded by a REGISTER challenge (REGISTER, 401, REGISTER with Digest
//! credentials, 200). Deterministic: the same count and seed give the same file.

use std::io::Write;

/// A small xorshift generator: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hex(&mut self, digits: usize) -> String {
        format!("{:016x}", self.next())[..digits].to_string()
    }
}

struct Endpoint {
    ip: [u8; 4],
    port: u16,
    number: String,
}

/// The benchmark capture's seed.
pub const BENCH_SEED: u64 = 0x5eed_5eed_5eed_5eed;

/// Writes `messages` SIP messages (rounded up to whole calls) as a
/// nanosecond pcap to `out`; returns how many were written. Calls, numbers
/// and addresses follow from `seed`.
pub fn write_pcap(out: &mut impl Write, messages: usize, seed: u64) -> std::io::Result<usize> {
    // Nanosecond-resolution pcap, Ethernet.
    out.write_all(&0xa1b2_3c4du32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&[0; 8])?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    let mut rng = Rng(seed);
    let mut clock_ns: u64 = 1_764_000_000_000_000_000;
    let mut written = 0;
    let mut call = 0u64;
    while written < messages {
        let caller = Endpoint {
            ip: [
                10,
                1 + rng.below(8) as u8,
                rng.below(256) as u8,
                1 + rng.below(250) as u8,
            ],
            port: 5060,
            number: format!("+4930{:08}", rng.below(100_000_000)),
        };
        let callee = Endpoint {
            ip: [172, 16, rng.below(16) as u8, 1 + rng.below(250) as u8],
            port: 5060,
            number: format!("+4989{:08}", rng.below(100_000_000)),
        };
        let mut dialog = Vec::new();
        if call.is_multiple_of(10) {
            dialog.extend(register(&mut rng, &caller, &callee));
        }
        dialog.extend(invite_dialog(&mut rng, &caller, &callee));
        for (from_caller, payload) in dialog {
            let (src, dst) = if from_caller {
                (&caller, &callee)
            } else {
                (&callee, &caller)
            };
            clock_ns += 20_000 + rng.below(200_000);
            write_frame(out, clock_ns, src, dst, payload.as_bytes())?;
            written += 1;
        }
        call += 1;
    }
    Ok(written)
}

/// One UDP datagram of `payload` as an Ethernet/IPv4 frame record.
fn write_frame(
    out: &mut impl Write,
    ns: u64,
    src: &Endpoint,
    dst: &Endpoint,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut datagram = Vec::with_capacity(8 + payload.len());
    datagram.extend_from_slice(&src.port.to_be_bytes());
    datagram.extend_from_slice(&dst.port.to_be_bytes());
    datagram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    // Don't fragment; IP id 0.
    write_ipv4_frame(out, ns, src, dst, 17, (0, 0x4000), &datagram)
}

fn ip(e: &Endpoint) -> String {
    format!("{}.{}.{}.{}", e.ip[0], e.ip[1], e.ip[2], e.ip[3])
}

fn sdp(rng: &mut Rng, host: &str) -> String {
    let session = rng.below(1 << 40);
    format!(
        "v=0\r\no=- {session} {session} IN IP4 {host}\r\ns=SBC call\r\nc=IN IP4 {host}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 0 18 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        10_000 + 2 * rng.below(10_000)
    )
}

/// The seven messages of a basic call; `true` marks caller → callee.
fn invite_dialog(rng: &mut Rng, caller: &Endpoint, callee: &Endpoint) -> Vec<(bool, String)> {
    let (a, b) = (ip(caller), ip(callee));
    let call_id = format!("{}-{}@{a}", rng.hex(16), rng.hex(8));
    let from_tag = rng.hex(10);
    let to_tag = rng.hex(10);
    let branch = format!("z9hG4bK{}", rng.hex(16));
    let proxy_branch = format!("z9hG4bK{}", rng.hex(16));
    let bye_branch = format!("z9hG4bK{}", rng.hex(16));
    let (from_user, to_user) = (&caller.number, &callee.number);
    let vias = format!(
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch={proxy_branch}\r\nVia: SIP/2.0/UDP {a}:5060;rport;branch={branch}\r\n"
    );
    let dialog_headers = |to_tagged: bool, cseq: &str| {
        let to_tag = if to_tagged {
            format!(";tag={to_tag}")
        } else {
            String::new()
        };
        format!(
            "From: \"{from_user}\" <sip:{from_user}@{a};user=phone>;tag={from_tag}\r\n\
             To: <sip:{to_user}@{b};user=phone>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"
        )
    };
    let common = "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,PRACK,UPDATE,INFO,REFER,NOTIFY\r\n\
                  Supported: timer,100rel,replaces\r\n";
    let offer = sdp(rng, &a);
    let answer = sdp(rng, &b);
    let invite = format!(
        "INVITE sip:{to_user}@{b}:5060;user=phone SIP/2.0\r\n{vias}Max-Forwards: 69\r\n{}\
         Contact: <sip:{from_user}@{a}:5060;transport=udp>\r\nRecord-Route: <sip:192.0.2.10;lr>\r\n\
         P-Asserted-Identity: <sip:{from_user}@carrier.example.net;user=phone>\r\n{common}\
         Session-Expires: 1800;refresher=uac\r\nUser-Agent: CarrierSBC/7.2\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        dialog_headers(false, "1 INVITE"),
        offer.len()
    );
    let response = |code: &str, with_tag: bool, body: Option<&str>| {
        let body_headers = match body {
            Some(body) => format!(
                "Contact: <sip:{to_user}@{b}:5060>\r\n{common}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            None => "Content-Length: 0\r\n\r\n".to_string(),
        };
        format!(
            "SIP/2.0 {code}\r\n{vias}{}Record-Route: <sip:192.0.2.10;lr>\r\nServer: CoreSwitch/11\r\n{body_headers}",
            dialog_headers(with_tag, "1 INVITE")
        )
    };
    let in_dialog = |method: &str, cseq: u32, branch: &str| {
        format!(
            "{method} sip:{to_user}@{b}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {a}:5060;rport;branch={branch}\r\n\
             Max-Forwards: 70\r\n{}Route: <sip:192.0.2.10;lr>\r\nUser-Agent: CarrierSBC/7.2\r\nContent-Length: 0\r\n\r\n",
            dialog_headers(true, &format!("{cseq} {method}"))
        )
    };
    let ack_branch = format!("z9hG4bK{}", rng.hex(16));
    let bye_ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {a}:5060;rport;branch={bye_branch}\r\n{}Content-Length: 0\r\n\r\n",
        dialog_headers(true, "2 BYE")
    );
    vec![
        (true, invite),
        (false, response("100 Trying", false, None)),
        (false, response("180 Ringing", true, None)),
        (false, response("200 OK", true, Some(&answer))),
        (true, in_dialog("ACK", 1, &ack_branch)),
        (true, in_dialog("BYE", 2, &bye_branch)),
        (false, bye_ok),
    ]
}

/// REGISTER, 401 challenge, REGISTER with Digest credentials, 200.
fn register(rng: &mut Rng, caller: &Endpoint, registrar: &Endpoint) -> Vec<(bool, String)> {
    let (a, b) = (ip(caller), ip(registrar));
    let user = &caller.number;
    let call_id = format!("{}@{a}", rng.hex(16));
    let tag = rng.hex(8);
    let nonce = rng.hex(16);
    let request = |cseq: u32, auth: &str, branch: String| {
        format!(
            "REGISTER sip:carrier.example.net SIP/2.0\r\nVia: SIP/2.0/UDP {a}:5060;rport;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@carrier.example.net>;tag={tag}\r\nTo: <sip:{user}@carrier.example.net>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{a}:5060>;expires=3600\r\n{auth}\
             User-Agent: CarrierSBC/7.2\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let challenge = format!(
        "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP {a}:5060;rport=5060;branch=z9hG4bK0\r\n\
         From: <sip:{user}@carrier.example.net>;tag={tag}\r\nTo: <sip:{user}@carrier.example.net>;tag={}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 REGISTER\r\n\
         WWW-Authenticate: Digest realm=\"carrier.example.net\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"\r\n\
         Content-Length: 0\r\n\r\n",
        rng.hex(8)
    );
    let credentials = format!(
        "Authorization: Digest username=\"{user}\",realm=\"carrier.example.net\",nonce=\"{nonce}\",\
         uri=\"sip:carrier.example.net\",response=\"{}{}\",algorithm=MD5,qop=auth,nc=00000001,cnonce=\"{}\"\r\n",
        rng.hex(16),
        rng.hex(16),
        rng.hex(8)
    );
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {a}:5060;rport=5060;branch=z9hG4bK1\r\n\
         From: <sip:{user}@carrier.example.net>;tag={tag}\r\nTo: <sip:{user}@carrier.example.net>;tag={}\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 REGISTER\r\nContact: <sip:{user}@{a}:5060>;expires=3600\r\n\
         Server: Registrar {b}\r\nContent-Length: 0\r\n\r\n",
        rng.hex(8)
    );
    let first = request(1, "", rng.hex(12));
    let second = request(2, &credentials, rng.hex(12));
    vec![
        (true, first),
        (false, challenge),
        (true, second),
        (false, ok),
    ]
}

/// Writes a hostile capture for memory bounds: `streams` TCP connections
/// that each open (SYN) and send the first 300 bytes of an INVITE and never
/// more, then `chains` UDP datagrams of which only the first fragment ever
/// arrives. Every one of them would be held forever without limits.
pub fn write_flood_pcap(
    out: &mut impl Write,
    streams: usize,
    chains: usize,
) -> std::io::Result<()> {
    write_nanosecond_pcap_header(out)?;
    let mut rng = Rng(0xf100_d5ee_d000_0001);
    let mut clock_ns: u64 = 1_764_000_000_000_000_000;
    let callee = Endpoint {
        ip: [172, 16, 0, 1],
        port: 5060,
        number: "+498900000000".into(),
    };
    for i in 0..streams {
        let caller = Endpoint {
            ip: [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            port: 1024 + (i % 60_000) as u16,
            number: format!("+4930{i:08}"),
        };
        let invite = invite_dialog(&mut rng, &caller, &callee).swap_remove(0).1;
        let seq = rng.next() as u32;
        clock_ns += 1_000;
        write_tcp_frame(out, clock_ns, &caller, &callee, seq, 0x02, &[])?;
        clock_ns += 1_000;
        write_tcp_frame(
            out,
            clock_ns,
            &caller,
            &callee,
            seq.wrapping_add(1),
            0x18,
            &invite.as_bytes()[..300],
        )?;
    }
    for i in 0..chains {
        let caller = Endpoint {
            ip: [10, 128 | (i >> 16) as u8, (i >> 8) as u8, i as u8],
            port: 5060,
            number: String::new(),
        };
        clock_ns += 1_000;
        // 576 bytes of a larger UDP datagram, more fragments to follow (never).
        write_ipv4_frame(
            out,
            clock_ns,
            &caller,
            &callee,
            17,
            (i as u16, 0x2000),
            &[0x5a; 576],
        )?;
    }
    Ok(())
}

/// Hostile traffic for `cargo xtask bench-flood`, each pattern a few lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flood {
    /// `count` non-final IPv4 fragments without payload, all of one
    /// datagram, at spread offsets (after one real first fragment).
    EmptyFragments,
    /// `count` ordinary 8-byte first fragments of distinct datagrams: the
    /// yardstick for [`Flood::EmptyFragments`].
    OrdinaryFragments,
    /// `count` TCP streams, each carrying one whole 250 KB message in
    /// 1,460-byte segments: buffers that grow, then are consumed.
    RetainedBuffers,
    /// `count` TCP streams, each with 63 one-byte segments ahead of a hole.
    OutOfOrder,
    /// `count` UDP INVITEs of as many calls, none ever answered: a
    /// transaction each, within one second (no timer expires).
    Invites,
}

impl Flood {
    pub fn name(self) -> &'static str {
        match self {
            Flood::EmptyFragments => "empty-fragments",
            Flood::OrdinaryFragments => "ordinary-fragments",
            Flood::RetainedBuffers => "retained-buffers",
            Flood::OutOfOrder => "out-of-order",
            Flood::Invites => "invites",
        }
    }
}

/// Writes `count` units of `pattern` as a nanosecond pcap.
pub fn write_flood_pattern(
    out: &mut impl Write,
    pattern: Flood,
    count: usize,
) -> std::io::Result<()> {
    write_nanosecond_pcap_header(out)?;
    let mut clock_ns: u64 = 1_764_000_000_000_000_000;
    let callee = Endpoint {
        ip: [172, 16, 0, 1],
        port: 5060,
        number: String::new(),
    };
    let caller = |i: usize| Endpoint {
        ip: [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
        port: 1024 + (i % 60_000) as u16,
        number: String::new(),
    };
    match pattern {
        Flood::EmptyFragments => {
            let from = caller(1);
            write_ipv4_frame(out, clock_ns, &from, &callee, 17, (7, 0x2000), &[0x5a; 8])?;
            for i in 0..count {
                clock_ns += 1_000;
                let offset = (1 + i % 8000) as u16;
                write_ipv4_frame(out, clock_ns, &from, &callee, 17, (7, 0x2000 | offset), &[])?;
            }
        }
        Flood::OrdinaryFragments => {
            let from = caller(1);
            for i in 0..count {
                clock_ns += 1_000;
                write_ipv4_frame(
                    out,
                    clock_ns,
                    &from,
                    &callee,
                    17,
                    (i as u16, 0x2000),
                    &[0x5a; 8],
                )?;
            }
        }
        Flood::RetainedBuffers => {
            const BODY: usize = 250_000;
            let head = format!(
                "MESSAGE sip:b@172.16.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKf\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: flood\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {BODY}\r\n\r\n"
            );
            let message = [head.as_bytes(), &[b'x'; BODY]].concat();
            for i in 0..count {
                let from = caller(i);
                clock_ns += 1_000;
                write_tcp_frame(out, clock_ns, &from, &callee, 0, 0x02, &[])?;
                for (n, chunk) in message.chunks(1460).enumerate() {
                    clock_ns += 1_000;
                    write_tcp_frame(
                        out,
                        clock_ns,
                        &from,
                        &callee,
                        1 + (n * 1460) as u32,
                        0x18,
                        chunk,
                    )?;
                }
            }
        }
        Flood::Invites => {
            for i in 0..count {
                let from = caller(i);
                clock_ns += 1_000;
                let invite = format!(
                    "INVITE sip:b@172.16.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:{};branch=z9hG4bKflood{i}\r\nFrom: <sip:a@x>;tag={i}\r\nTo: <sip:b@y>\r\nCall-ID: flood-{i}@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                    from.port
                );
                write_frame(out, clock_ns, &from, &callee, invite.as_bytes())?;
            }
        }
        Flood::OutOfOrder => {
            for i in 0..count {
                let from = caller(i);
                clock_ns += 1_000;
                write_tcp_frame(out, clock_ns, &from, &callee, 0, 0x02, &[])?;
                for n in 0..63u32 {
                    clock_ns += 1_000;
                    write_tcp_frame(out, clock_ns, &from, &callee, 100 + 2 * n, 0x18, b"x")?;
                }
            }
        }
    }
    Ok(())
}

/// The header of a little-endian, nanosecond, Ethernet pcap.
fn write_nanosecond_pcap_header(out: &mut impl Write) -> std::io::Result<()> {
    out.write_all(&0xa1b2_3c4du32.to_le_bytes())?;
    out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    out.write_all(&262_144u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())
}

fn write_tcp_frame(
    out: &mut impl Write,
    ns: u64,
    src: &Endpoint,
    dst: &Endpoint,
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut segment = Vec::with_capacity(20 + payload.len());
    segment.extend_from_slice(&src.port.to_be_bytes());
    segment.extend_from_slice(&dst.port.to_be_bytes());
    segment.extend_from_slice(&seq.to_be_bytes());
    segment.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    segment.extend_from_slice(payload);
    write_ipv4_frame(out, ns, src, dst, 6, (1, 0x4000), &segment)
}

fn write_ipv4_frame(
    out: &mut impl Write,
    ns: u64,
    src: &Endpoint,
    dst: &Endpoint,
    protocol: u8,
    (id, flags_offset): (u16, u16),
    payload: &[u8],
) -> std::io::Result<()> {
    let ip_len = 20 + payload.len();
    let frame_len = 14 + ip_len;
    out.write_all(&((ns / 1_000_000_000) as u32).to_le_bytes())?;
    out.write_all(&((ns % 1_000_000_000) as u32).to_le_bytes())?;
    out.write_all(&(frame_len as u32).to_le_bytes())?;
    out.write_all(&(frame_len as u32).to_le_bytes())?;
    out.write_all(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00])?;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    ip[8] = 64;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&src.ip);
    ip[16..20].copy_from_slice(&dst.ip);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!((folded & 0xffff) + (folded >> 16)) as u16).to_be_bytes());
    out.write_all(&ip)?;
    out.write_all(payload)
}
