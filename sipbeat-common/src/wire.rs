//! Wire constants both the kernel filter ([`crate::filter`]) and user-space
//! decoding (`sipbeat::decode`) read frames by, so the two agree on what a
//! VLAN tag, an IPv6 extension header or a tunnel header is.

/// Ethernet header: destination, source, EtherType.
pub const ETHERNET_LEN: usize = 14;
/// An 802.1Q/802.1ad tag: TCI then the inner EtherType.
pub const VLAN_TAG_LEN: usize = 4;
/// The VLAN identifier's bits of a tag's TCI (the rest: priority, DEI).
pub const VLAN_ID_MASK: u16 = 0x0fff;
/// At most this many stacked VLAN tags are skipped (QinQ and then some).
pub const MAX_VLAN_TAGS: usize = 4;
/// IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;
/// IPv6 fixed header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Bound on the IPv6 extension header walk, so a crafted chain cannot spin.
pub const MAX_IPV6_EXTENSIONS: usize = 8;
/// UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Tunnels looked through before giving up (a crafted packet could nest forever).
pub const MAX_ENCAPSULATIONS: usize = 4;

/// EtherTypes.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ tag still seen on older switches.
    pub const QINQ_LEGACY: u16 = 0x9100;

    /// Whether `ethertype` announces a VLAN tag to skip.
    pub const fn is_vlan_tag(ethertype: u16) -> bool {
        matches!(ethertype, VLAN | QINQ | QINQ_LEGACY)
    }
}

/// IPv4 header fields (byte offsets).
pub mod ipv4 {
    pub const TOTAL_LEN: usize = 2;
    pub const IDENTIFICATION: usize = 4;
    pub const FLAGS_FRAGMENT: usize = 6;
    pub const PROTOCOL: usize = 9;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    /// More-fragments flag in the flags/fragment-offset field.
    pub const MORE_FRAGMENTS: u16 = 0x2000;
    /// Fragment offset (in 8-byte units) in the same field.
    pub const OFFSET_MASK: u16 = 0x1fff;
}

/// IP protocol numbers (IPv4 protocol, IPv6 next header).
pub mod ip_protocol {
    pub const IPV4_IN_IP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_IN_IP: u8 = 41;
    pub const GRE: u8 = 47;
}

/// IPv6 extension headers.
pub mod ipv6_next {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTIONS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    /// The fragment header's length.
    pub const FRAGMENT_LEN: usize = 8;

    /// The length of extension header `kind` whose length byte is `units`:
    /// 8-byte units beyond the first 8, except AH's 4-byte units beyond 8.
    pub const fn extension_len(kind: u8, units: u8) -> usize {
        if kind == AUTH {
            (units as usize + 2) * 4
        } else {
            (units as usize + 1) * 8
        }
    }
}

/// GRE (RFC 2784/2890) and what it carries for monitoring.
pub mod gre {
    /// Flags, version, protocol type.
    pub const HEADER_LEN: usize = 4;
    pub const CHECKSUM_PRESENT: u8 = 0x80;
    pub const KEY_PRESENT: u8 = 0x20;
    pub const SEQUENCE_PRESENT: u8 = 0x10;
    /// Each optional field (checksum+reserved, key, sequence) is 4 bytes.
    pub const OPTION_LEN: usize = 4;
    /// Enhanced GRE (PPTP, version 1): its acknowledgment-present flag in
    /// the version byte adds 4 bytes.
    pub const ENHANCED_VERSION: u8 = 1;
    pub const ACK_PRESENT: u8 = 0x80;

    /// Protocol types carried.
    pub mod protocol {
        pub const IPV4: u16 = 0x0800;
        pub const IPV6: u16 = 0x86dd;
        /// Transparent Ethernet bridging.
        pub const TRANSPARENT_ETHERNET: u16 = 0x6558;
        pub const ERSPAN_II: u16 = 0x88be;
        pub const ERSPAN_III: u16 = 0x22eb;
        pub const PPP: u16 = 0x880b;
    }

    /// The length of the GRE header with the options `flags` and
    /// `version` announce.
    pub const fn header_len(flags: u8, version: u8) -> usize {
        let mut len = HEADER_LEN;
        if flags & CHECKSUM_PRESENT != 0 {
            len += OPTION_LEN;
        }
        if flags & KEY_PRESENT != 0 {
            len += OPTION_LEN;
        }
        if flags & SEQUENCE_PRESENT != 0 {
            len += OPTION_LEN;
        }
        if version & 0x07 == ENHANCED_VERSION && version & ACK_PRESENT != 0 {
            len += OPTION_LEN;
        }
        len
    }
}

/// ERSPAN headers behind GRE.
pub mod erspan {
    /// Type II header (present when GRE has a sequence number; type I has none).
    pub const TYPE_II_LEN: usize = 8;
    /// Type III header.
    pub const TYPE_III_LEN: usize = 12;
    /// Type III with the optional 8-byte platform sub-header.
    pub const TYPE_III_PLATFORM_LEN: usize = 20;
    /// Byte of the type III header holding the O (sub-header present) flag.
    pub const TYPE_III_FLAGS_BYTE: usize = 11;
    pub const TYPE_III_O_FLAG: u8 = 0x01;
}

/// PPP inside GRE (PPTP): HDLC-like framing, then a 1- or 2-byte protocol.
pub mod ppp {
    /// Optional address and control bytes.
    pub const HDLC_PREFIX: [u8; 2] = [0xff, 0x03];
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// VXLAN (RFC 7348).
pub mod vxlan {
    /// IANA's port.
    pub const PORT: u16 = 4789;
    pub const HEADER_LEN: usize = 8;
    /// The I flag: the VNI is valid.
    pub const FLAG_VNI: u8 = 0x08;
}

/// Geneve (RFC 8926).
pub mod geneve {
    /// IANA's port.
    pub const PORT: u16 = 6081;
    /// Fixed header; options follow.
    pub const HEADER_LEN: usize = 8;
    /// Options length, in 4-byte words, in the first byte.
    pub const OPTIONS_LEN_MASK: u8 = 0x3f;
    pub const OPTION_UNIT: usize = 4;
    /// Protocol types: an Ethernet frame, or IP directly.
    pub const PROTOCOL_ETHERNET: u16 = 0x6558;
}
