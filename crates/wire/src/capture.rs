//! Packets out of a pcap file: the TCP segments, with the kernel's capture timestamp of each.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::{LegacyPcapSlice, Linktype, PcapBlockOwned};
use std::net::{IpAddr, SocketAddr};

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Not a pcap file (pcapng included: write the capture with `tcpdump -w`).
    #[error("not a pcap capture (expected tcpdump -w output): {0}")]
    NotPcap(String),
    /// The link layer is one this reader does not decode.
    #[error("link type {0} is not supported (capture on a Linux interface: Ethernet, cooked or raw IP)")]
    Linktype(i32),
    /// A record header is corrupt.
    #[error("the capture is corrupt after {packets} packets: {reason}")]
    Corrupt {
        /// Packets read before the corruption.
        packets: u64,
        /// The parser's complaint.
        reason: String,
    },
}

/// One TCP segment as captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Capture time, in ns since the Unix epoch (the kernel's clock, not the client's).
    pub ts_ns: u64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (of the SYN itself on a SYN).
    pub seq: u32,
    /// A SYN: the sequence starts here.
    pub syn: bool,
    /// The TCP payload.
    pub payload: &'a [u8],
}

/// What the reader saw besides TCP segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    /// Records in the file.
    pub packets: u64,
    /// TCP segments handed on.
    pub tcp: u64,
    /// Records cut short by the snap length (their payload is unknown, so their stream is lost).
    pub truncated: u64,
}

/// Calls `on_segment` with every TCP segment of a legacy pcap capture (`tcpdump -w`, either
/// timestamp precision), in file order.
pub fn read_segments(bytes: &[u8], mut on_segment: impl FnMut(&Segment<'_>)) -> Result<CaptureCounts, CaptureError> {
    let capture = LegacyPcapSlice::from_slice(bytes).map_err(|e| CaptureError::NotPcap(format!("{e:?}")))?;
    let nano = capture.header.is_nanosecond_precision();
    let link = capture.header.network;
    if ![Linktype::ETHERNET, Linktype::LINUX_SLL, Linktype::RAW, Linktype::IPV4, Linktype::IPV6].contains(&link) {
        return Err(CaptureError::Linktype(link.0));
    }
    let mut counts = CaptureCounts::default();
    for block in capture {
        let block = block.map_err(|e| CaptureError::Corrupt { packets: counts.packets, reason: format!("{e:?}") })?;
        let PcapBlockOwned::Legacy(b) = block else { continue };
        counts.packets += 1;
        if b.caplen < b.origlen {
            counts.truncated += 1;
            continue;
        }
        let ts_ns = u64::from(b.ts_sec) * 1_000_000_000 + u64::from(b.ts_usec) * if nano { 1 } else { 1000 };
        let sliced = match link {
            Linktype::ETHERNET => SlicedPacket::from_ethernet(b.data),
            Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(b.data),
            _ => SlicedPacket::from_ip(b.data),
        };
        let Ok(p) = sliced else { continue };
        let (src_ip, dst_ip): (IpAddr, IpAddr) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => (ip.header().source_addr().into(), ip.header().destination_addr().into()),
            Some(NetSlice::Ipv6(ip)) => (ip.header().source_addr().into(), ip.header().destination_addr().into()),
            _ => continue,
        };
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else { continue };
        counts.tcp += 1;
        on_segment(&Segment {
            ts_ns,
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            seq: tcp.sequence_number(),
            syn: tcp.syn(),
            payload: tcp.payload(),
        });
    }
    Ok(counts)
}

/// Writes a legacy pcap file with nanosecond timestamps: what `tcpdump -w
/// --time-stamp-precision=nano` writes, for tests that build their own capture.
pub fn write_pcap_ns(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet, as tcpdump writes for `-i lo`
    for (ts, frame) in frames {
        out.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(sport: u16, dport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(sport, dport, seq, 65535)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn segments_come_out_with_nanosecond_times_and_their_payloads() {
        let pcap = write_pcap_ns(&[
            (1_700_000_000_123_456_789, frame(40000, 8000, 7, b"POST")),
            (1_700_000_000_123_456_999, frame(8000, 40000, 9, b"")),
        ]);
        let mut seen = Vec::new();
        let counts = read_segments(&pcap, |s| seen.push((s.ts_ns, s.src.port(), s.seq, s.payload.to_vec()))).unwrap();
        assert_eq!(counts, CaptureCounts { packets: 2, tcp: 2, truncated: 0 });
        assert_eq!(seen, vec![(1_700_000_000_123_456_789, 40000, 7, b"POST".to_vec()), (1_700_000_000_123_456_999, 8000, 9, vec![])]);
    }

    #[test]
    fn microsecond_captures_are_scaled_and_junk_is_refused() {
        let mut pcap = write_pcap_ns(&[(5_000_001_000, frame(1, 2, 0, b"x"))]);
        pcap[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        // The record's fraction field now counts microseconds: 1000 us.
        let mut ts = 0;
        read_segments(&pcap, |s| ts = s.ts_ns).unwrap();
        assert_eq!(ts, 5_001_000_000);
        assert!(matches!(read_segments(b"not a capture at all, really", |_| ()), Err(CaptureError::NotPcap(_))));
    }
}
