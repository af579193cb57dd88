//! The whole check on a capture the test writes: Ethernet/IPv4/TCP frames of two connections,
//! read back, followed, paired with records and measured, against figures worked out by hand.

use inferbench_core::{Outcome, RequestRecord, TokenSource};
use inferbench_load::Backend;
use inferbench_wire::capture::write_pcap_ns;
use inferbench_wire::{compare, read_segments, Follower};

const T0: u64 = 1_764_000_000_000_000_000;
const MS: u64 = 1_000_000;

struct Link {
    frames: Vec<(u64, Vec<u8>)>,
}

impl Link {
    fn packet(&mut self, ts: u64, sport: u16, dport: u16, seq: u32, syn: bool, payload: &[u8]) {
        let b = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6]).ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64);
        let tcp = b.tcp(sport, dport, seq, 65535);
        let tcp = if syn { tcp.syn() } else { tcp.ack(1) };
        let mut out = Vec::new();
        tcp.write(&mut out, payload).unwrap();
        self.frames.push((ts, out));
    }
}

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

fn token(t: &str) -> String {
    chunk(&format!("data: {{\"choices\":[{{\"text\":\"{t}\"}}]}}\n\n"))
}

fn record(id: u64, sent: u64, connect: u64, first: u64, itl: &[u64], reused: bool) -> RequestRecord {
    RequestRecord {
        id,
        scheduled_ns: sent - connect,
        gate_ns: sent - connect,
        sent_ns: sent,
        connect_ns: connect,
        reused: Some(reused),
        first_token_ns: Some(first),
        end_ns: first + itl.iter().sum::<u64>(),
        itl_ns: itl.to_vec(),
        input_tokens: 4,
        output_tokens: itl.len() as u64 + 1,
        token_source: TokenSource::Server,
        cached_tokens: None,
        client_count: None,
        requested_output_tokens: None,
        outcome: Outcome::Success,
        category: None,
        turn: None,
        generated_text: None,
    }
}

#[test]
fn a_written_capture_pairs_with_its_records_to_the_nanosecond() {
    let mut l = Link { frames: Vec::new() };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    let req = |id: u64| format!("POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: ib-{id}\r\nContent-Length: 2\r\n\r\n{{}}");
    let done = format!("{}0\r\n\r\n", chunk("data: [DONE]\n\n"));
    // Connection A (port 41000): SYN at 0; request 0 at 1.0 ms; head at 3 ms; tokens at 10, 12
    // (its event split over two packets, completed at 12), 15 ms; then request 1 on it at 20 ms,
    // one packet with head and first token at 25 ms, next at 26 ms.
    l.packet(T0, 41000, 8000, 99, true, b"");
    let (mut up, mut down) = (100u32, 700u32);
    let mut send = |l: &mut Link, ts: u64, client: bool, bytes: String| {
        let (sp, dp, seq) = if client { (41000, 8000, &mut up) } else { (8000, 41000, &mut down) };
        l.packet(T0 + ts, sp, dp, *seq, false, bytes.as_bytes());
        *seq += bytes.len() as u32;
    };
    send(&mut l, MS, true, req(0));
    send(&mut l, 3 * MS, false, head.into());
    send(&mut l, 10 * MS, false, token("a"));
    let b = token("b");
    send(&mut l, 11 * MS, false, b[..9].into());
    send(&mut l, 12 * MS, false, b[9..].into());
    send(&mut l, 15 * MS, false, format!("{}{done}", token("c")));
    send(&mut l, 20 * MS, true, req(1));
    send(&mut l, 25 * MS, false, format!("{head}{}", token("d")));
    send(&mut l, 26 * MS, false, format!("{}{done}", token("e")));
    // Traffic of another port is not followed.
    l.packet(T0 + 30 * MS, 5000, 6000, 1, false, b"noise");

    let pcap = write_pcap_ns(&l.frames);
    let mut follower = Follower::new(8000, Backend::OpenAi);
    let counts = read_segments(&pcap, |s| follower.segment(s)).unwrap();
    assert_eq!((counts.packets, counts.tcp, counts.truncated), (11, 11, 0));
    let wire = follower.finish();
    assert_eq!(wire.broken_connections, 0);
    let got: Vec<_> = wire
        .exchanges
        .iter()
        .map(|e| (e.request_id.clone().unwrap(), e.nth, e.request_ns - T0, e.tokens_ns.iter().map(|t| t - T0).collect::<Vec<_>>()))
        .collect();
    assert_eq!(got, vec![("ib-0".into(), 0, MS, vec![10 * MS, 12 * MS, 15 * MS]), ("ib-1".into(), 1, 20 * MS, vec![25 * MS, 26 * MS])]);

    // The client, on its own clock: request 0 started at 500 us, connected by 1.0 ms (its
    // write), saw the first token at 9.25 ms after the write (+0.25 ms late), gaps 2.0 and 3.1 ms.
    // Request 1 went out on the kept-alive connection: TTFT 5.05 ms (+0.05), gap 1.0 ms.
    let records = vec![
        record(0, 1_000_000, 500_000, 1_000_000 + 9_250_000, &[2_000_000, 3_100_000], false),
        record(1, 40_000_000, 0, 45_050_000, &[1_000_000], true),
    ];
    let t = compare(&records, &wire.exchanges, "ib-");
    let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert_eq!((t.matched, t.unmatched), (2, 0));
    assert!(near(t.ttft_reused.mean_ms, 0.05), "{t:?}");
    // All, connect out: 0.25 - ... request 0 wire TTFT is 9.0 ms: 9.25 - 9.0 = +0.25.
    assert!(near(t.ttft_all_no_connect.mean_ms, (0.25 + 0.05) / 2.0), "{t:?}");
    // Connect included: request 0 is 9.75 - 9.0 = +0.75.
    assert!(near(t.ttft_all_with_connect.mean_ms, (0.75 + 0.05) / 2.0), "{t:?}");
    // ITL: 2.0 vs 2.0, 3.1 vs 3.0, 1.0 vs 1.0.
    assert_eq!(t.itl.n, 3);
    assert!(near(t.itl.mean_ms, 0.1 / 3.0), "{t:?}");
    assert!(near(t.itl.median_ms, 0.0));
}
