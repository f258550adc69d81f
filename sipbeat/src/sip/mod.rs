//! SIP messages, parsed in place.
//!
//! Modelled on `httparse`: the caller lends the bytes and an array of
//! [`Header`] slots, the parser fills the slots with borrowed slices and
//! returns `Partial` when it needs more bytes (TCP) or a [`Error`] naming the
//! place it failed. Nothing is allocated per message except when a header
//! value is folded over several lines (it is unfolded into its own buffer).
//!
//! The parser is strict where RFC 4475 §3.1.2 calls a message invalid (its
//! start line, scalar fields, name-addr syntax, Via, CSeq/method agreement)
//! and tolerant of everything RFC 3261 allows (compact forms, folding, LWS
//! around separators, odd but legal characters, unknown headers and schemes).
//!
//! - [`message`]: start line, header lines, framing ([`Message`]).
//! - [`header`]: header names, lists, CSeq, name-addr, Via.
//! - [`uri`]: sip, sips and tel URIs.
//! - [`auth`]: Digest credentials in (Proxy-)Authorization.
//! - [`sdp`]: SDP session descriptions in bodies.

pub mod auth;
pub mod header;
pub mod message;
pub mod sdp;
pub mod text;
pub mod uri;

pub use header::HeaderName;
pub use message::{
    Framing, Header, HeaderSlots, MAX_HEADERS, Message, SipType, StartLine, Status, find_start_line,
};

crate::reasons! {
    /// Why bytes on a SIP port were not turned into a SIP message.
    pub enum Error {
        /// The first line is neither a SIP request line nor a SIP status line.
        NotSip => "not_sip",
        /// Only CRLFs or NULs: a keep-alive, not a message.
        KeepAlive => "keepalive",
        /// Request line not `Method SP Request-URI SP SIP-Version` exactly.
        InvalidRequestLine => "invalid_request_line",
        /// Method is not a token.
        InvalidMethod => "invalid_method",
        /// Request-URI is not an absolute URI, or a SIP URI with headers.
        InvalidRequestUri => "invalid_request_uri",
        /// Status line not `SIP-Version SP Status-Code SP Reason-Phrase`.
        InvalidStatusLine => "invalid_status_line",
        /// Status code not three digits from 100 to 699.
        InvalidStatusCode => "invalid_status_code",
        /// A SIP version other than 2.0.
        UnsupportedVersion => "unsupported_version",
        /// A header line without a colon, or whose name is not a token.
        InvalidHeader => "invalid_header",
        /// More header lines than the parser's slots.
        TooManyHeaders => "too_many_headers",
        /// The header section never ends (no empty line) within the datagram.
        HeadersUnterminated => "headers_unterminated",
        /// Content-Length is not a decimal number.
        InvalidContentLength => "invalid_content_length",
        /// Several Content-Length headers that disagree: framing is ambiguous.
        ConflictingContentLength => "conflicting_content_length",
        /// Content-Length claims more bytes than the datagram carries.
        ContentLengthExceedsDatagram => "content_length_exceeds_datagram",
        /// CSeq is not `number method` with a number below 2^31.
        InvalidCSeq => "invalid_cseq",
        /// A request's CSeq method differs from its request line's.
        CSeqMethodMismatch => "cseq_method_mismatch",
        /// Max-Forwards is not a number from 0 to 255.
        InvalidMaxForwards => "invalid_max_forwards",
        /// A Via value is not `SIP/2.0/transport sent-by;params`.
        InvalidVia => "invalid_via",
        /// From is not a valid name-addr or addr-spec.
        InvalidFrom => "invalid_from",
        /// To is not a valid name-addr or addr-spec.
        InvalidTo => "invalid_to",
        /// A Contact value is not `*`, a name-addr or an addr-spec.
        InvalidContact => "invalid_contact",
        /// Date is not an RFC 1123 date in GMT.
        InvalidDate => "invalid_date",
    }
}
