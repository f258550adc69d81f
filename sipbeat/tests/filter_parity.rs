//! The kernel filter (`sipbeat_common::filter`, compiled into the XDP and
//! TC programs) against user-space decoding (`sipbeat::decode`): every
//! frame of every bundled and corpus capture, bare and wrapped in each
//! tunnel the decoders know (VXLAN on IANA's and on a configured port,
//! Geneve, GRE with IP, Ethernet, ERSPAN II and III, 4in4/6in4/4in6/6in6,
//! QinQ). Wherever decode finds SIP or an IP fragment, the filter must
//! capture the frame; wherever the filter captures SIP, decode must not
//! find a plain non-SIP packet.

mod common;

use std::path::{Path, PathBuf};

use sipbeat::capture::LinkType;
use sipbeat::capture::pcap::PcapFile;
use sipbeat::decode::{self, Transport, TunnelPorts};
use sipbeat_common::filter::{self, Lookup, UdpTunnel, Verdict};
use sipbeat_common::{FilterConfig, transport};
use sipbeat_testkit::tunnel;

const SIP_PORTS: [u16; 6] = [5060, 5061, 5062, 5080, 5090, 6060];
/// A VXLAN port other than IANA's, as AWS VPC mirroring and Linux default to.
const EXTRA_VXLAN_PORT: u16 = 8472;

struct Ports {
    sip: Vec<u16>,
    tunnels: TunnelPorts,
}

impl Lookup for Ports {
    fn sip_port(&self, port: u16) -> bool {
        self.sip.contains(&port)
    }
    fn udp_tunnel(&self, port: u16) -> Option<UdpTunnel> {
        self.tunnels.get(port)
    }
}

/// What decode says the filter should decide, when decode gets that far.
fn expected(ports: &Ports, link: LinkType, frame: &[u8]) -> Option<Verdict> {
    let packet = decode::decode_with(link, frame, &ports.tunnels).ok()?;
    Some(match packet.transport {
        Transport::Udp(udp) if ports.sip_port(udp.src_port) || ports.sip_port(udp.dst_port) => {
            Verdict::Sip
        }
        Transport::Tcp(tcp) if ports.sip_port(tcp.src_port) || ports.sip_port(tcp.dst_port) => {
            Verdict::Sip
        }
        Transport::Fragment { .. } => Verdict::Fragment,
        _ => Verdict::Other,
    })
}

#[derive(Default)]
struct Tally {
    frames: usize,
    sip: usize,
    fragments: usize,
    mismatches: Vec<String>,
}

impl Tally {
    fn check(&mut self, ports: &Ports, what: &str, link: LinkType, frame: &[u8]) {
        let config = FilterConfig {
            transports: transport::UDP | transport::TCP,
            capture_fragments: 1,
            link: match link {
                LinkType::Ethernet => filter::link::ETHERNET,
                _ => filter::link::RAW_IP,
            },
            max_copy: 0,
        };
        let verdict = filter::classify(frame, ports, &config);
        let expected = expected(ports, link, frame);
        self.frames += 1;
        match expected {
            Some(Verdict::Sip) => self.sip += 1,
            Some(Verdict::Fragment) => self.fragments += 1,
            _ => {}
        }
        let agree = match expected {
            Some(wanted @ (Verdict::Sip | Verdict::Fragment)) => verdict == wanted,
            Some(Verdict::Other) => verdict != Verdict::Sip,
            _ => true,
        };
        if !agree && self.mismatches.len() < 20 {
            self.mismatches
                .push(format!("{what}: filter {verdict:?}, decode {expected:?}"));
        }
    }
}

fn captures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut roots = vec![common::testdata().join("pcaps")];
    match common::shared_corpus() {
        Some(corpus) => roots.push(corpus),
        None => common::missing("../shared/corpus"),
    }
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else if path
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng")
            {
                files.push(path);
            }
        }
    }
    for root in roots {
        walk(&root, &mut files);
    }
    files.sort();
    files
}

#[test]
fn kernel_filter_captures_whatever_decode_finds_sip_in() {
    let ports = Ports {
        sip: SIP_PORTS.to_vec(),
        tunnels: TunnelPorts::new(&[4789, EXTRA_VXLAN_PORT], &[6081]),
    };
    let mut bare = Tally::default();
    let mut wrapped: Vec<(&str, Tally)> = [
        "vxlan",
        "vxlan-8472",
        "geneve",
        "gre-ethernet",
        "erspan2",
        "erspan3",
        "qinq",
        "gre-ip",
        "ip-in-ipv4",
        "ip-in-ipv6",
    ]
    .into_iter()
    .map(|name| (name, Tally::default()))
    .collect();
    let files = captures();
    assert!(files.len() >= 15, "captures found: {files:?}");
    for path in &files {
        let Ok(mut file) = PcapFile::open(path) else {
            continue;
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut index = 0;
        let _ = file.for_each_frame(|frame| {
            index += 1;
            let what = format!("{name} frame {index}");
            if !matches!(
                frame.link,
                LinkType::Ethernet | LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6
            ) {
                return;
            }
            bare.check(&ports, &what, frame.link, frame.data);
            let ip = match frame.link {
                LinkType::Ethernet => tunnel::ip_of(frame.data),
                _ => Some(frame.data),
            };
            let ethernet = match frame.link {
                LinkType::Ethernet => Some(frame.data.to_vec()),
                _ => ip.map(|ip| {
                    let ethertype = if ip.first().is_some_and(|b| b >> 4 == 6) {
                        0x86dd
                    } else {
                        0x0800
                    };
                    tunnel::ethernet(ethertype, ip)
                }),
            };
            for (kind, tally) in &mut wrapped {
                let wrapped = match (*kind, &ethernet, ip) {
                    ("vxlan", Some(e), _) => tunnel::vxlan(4789, e),
                    ("vxlan-8472", Some(e), _) => tunnel::vxlan(EXTRA_VXLAN_PORT, e),
                    ("geneve", Some(e), _) => tunnel::geneve(6081, e),
                    ("gre-ethernet", Some(e), _) => tunnel::gre_ethernet(e),
                    ("erspan2", Some(e), _) => tunnel::erspan2(e),
                    ("erspan3", Some(e), _) => tunnel::erspan3(e),
                    ("qinq", Some(e), _) if e.len() >= 14 => tunnel::qinq(e),
                    ("gre-ip", _, Some(ip)) if !ip.is_empty() => tunnel::gre_ip(ip),
                    ("ip-in-ipv4", _, Some(ip)) if !ip.is_empty() => tunnel::ip_in_ip(ip, false),
                    ("ip-in-ipv6", _, Some(ip)) if !ip.is_empty() => tunnel::ip_in_ip(ip, true),
                    _ => continue,
                };
                tally.check(
                    &ports,
                    &format!("{kind}: {what}"),
                    LinkType::Ethernet,
                    &wrapped,
                );
            }
        });
    }
    eprintln!(
        "bare: {} frames, {} SIP, {} fragments",
        bare.frames, bare.sip, bare.fragments
    );
    assert!(bare.mismatches.is_empty(), "{:#?}", bare.mismatches);
    assert!(
        bare.sip > 500 && bare.fragments > 10,
        "the corpus has SIP and fragments"
    );
    for (kind, tally) in &wrapped {
        eprintln!(
            "{kind}: {} frames, {} SIP, {} fragments",
            tally.frames, tally.sip, tally.fragments
        );
        assert!(
            tally.mismatches.is_empty(),
            "{kind}: {:#?}",
            tally.mismatches
        );
        assert!(
            tally.sip * 10 >= bare.sip * 9,
            "{kind}: decode finds SIP inside the tunnel ({} of {})",
            tally.sip,
            bare.sip
        );
    }
}

/// The filter's own edges: a VXLAN header without the I flag is plain UDP;
/// nesting beyond the bound is not followed; a transport switched off is
/// not SIP; a first byte that is not IP on a raw-IP link is not followed.
#[test]
fn filter_edges() {
    let ports = Ports {
        sip: vec![5060],
        tunnels: TunnelPorts::default(),
    };
    let both = FilterConfig {
        transports: transport::UDP | transport::TCP,
        capture_fragments: 1,
        link: filter::link::ETHERNET,
        max_copy: 0,
    };
    let sip = tunnel::ethernet(0x0800, &tunnel::ipv4(17, &tunnel::udp(5060, b"OPTIONS")));
    assert_eq!(filter::classify(&sip[..], &ports, &both), Verdict::Sip);
    let tcp_only = FilterConfig {
        transports: transport::TCP,
        ..both
    };
    assert_eq!(
        filter::classify(&sip[..], &ports, &tcp_only),
        Verdict::Other
    );
    let mut no_vni = tunnel::vxlan(4789, &sip);
    no_vni[14 + 20 + 8] = 0;
    assert_eq!(filter::classify(&no_vni[..], &ports, &both), Verdict::Other);
    let mut packet = tunnel::ip_of(&sip).unwrap().to_vec();
    for _ in 0..sipbeat_common::wire::MAX_ENCAPSULATIONS {
        packet = tunnel::ipv4(4, &packet);
    }
    let deepest = tunnel::ethernet(0x0800, &packet);
    assert_eq!(filter::classify(&deepest[..], &ports, &both), Verdict::Sip);
    let too_deep = tunnel::ethernet(0x0800, &tunnel::ipv4(4, &packet));
    assert_eq!(
        filter::classify(&too_deep[..], &ports, &both),
        Verdict::Other
    );
    assert_eq!(
        decode::decode(LinkType::Ethernet, &too_deep),
        Err(decode::DecodeError::TooManyEncapsulations)
    );
    let raw = FilterConfig {
        link: filter::link::RAW_IP,
        ..both
    };
    assert_eq!(
        filter::classify(&[0x10u8, 0, 0][..], &ports, &raw),
        Verdict::Other
    );
    assert_eq!(
        filter::classify(&sip[..10], &ports, &both),
        Verdict::Malformed
    );
}
