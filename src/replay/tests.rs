//! Unit tests of the replay inputs: formats, errors, merging, tapes and windows.

use super::inputs::*;
use super::merge::*;
use super::reader::*;
use super::tape::*;
use super::*;
use std::io::Write;
use std::path::PathBuf;

use crate::feed::{Event, Level};
use crate::journal::RecordKind;
use crate::types::{Symbol, SymbolSpec};

fn spec() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("mm-replay-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn frames(reader: FrameReader) -> Result<Vec<(u64, RecordKind, String)>, ReplayError> {
    let mut merger = Merger::new(vec![reader]);
    let mut out = Vec::new();
    while let Some((_, f)) = merger.next_frame()? {
        out.push((
            f.local_ts_ns,
            f.kind,
            String::from_utf8(f.payload.to_vec()).unwrap(),
        ));
    }
    Ok(out)
}

const BT: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":5,"s":"BTCUSDT","b":"100.00","B":"1.0","a":"100.01","A":"2.0"}}"#;

#[test]
fn capture_units_are_told_by_magnitude() {
    let dir = Dir::new("units");
    let text = format!("1723161253937085768 {BT}\n\n1723161253938000 {BT}\n1723161253939 {BT}\n");
    let path = dir.write("cap.txt", text.as_bytes());
    let got = frames(FrameReader::open(&path, "BTCUSDT").unwrap()).unwrap();
    let ts: Vec<u64> = got.iter().map(|f| f.0).collect();
    assert_eq!(
        ts,
        vec![
            1_723_161_253_937_085_768,
            1_723_161_253_938_000_000,
            1_723_161_253_939_000_000
        ]
    );
    assert!(got.iter().all(|f| f.1 == RecordKind::Frame && f.2 == BT));
}

#[test]
fn malformed_and_out_of_order_lines_name_file_and_line() {
    let dir = Dir::new("bad");
    let cases: &[(&str, &str)] = &[
        ("1723161253937085768 {}\nnot-a-time {}\n", "line 2"),
        ("1723161253937085768 {}\n1723161253937085768\n", "line 2"),
        ("1723161253937085768 {}\n12 {}\n", "line 2"),
        (
            "1723161253937085768 {}\n1723161253937085768 [1]\n",
            "line 2",
        ),
        (
            "1723161253937085768 {}\n1723161253937085767 {}\n",
            "line 2: time 1723161253937085767 ns is earlier",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.write("bad.txt", text.as_bytes());
        let e = frames(FrameReader::open(&path, "BTCUSDT").unwrap()).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("bad.txt"), "{shown}");
        assert!(shown.contains(expected), "{shown}");
    }
    // A frame the decoder refuses is an error at its line too.
    let path = dir.write(
        "refused.txt",
        format!("1723161253937085768 {BT}\n1723161253937085769 {{\"stream\":1}}\n").as_bytes(),
    );
    let e = Tape::load(vec![FrameReader::open(&path, "BTCUSDT").unwrap()], spec())
        .err()
        .unwrap();
    assert_eq!(e.location, Location::Line(2), "{e}");
    assert!(e.problem.contains("decoder refused"), "{e}");
    // Off-grid prices say which settings to check.
    let off = BT.replace("100.00", "100.001");
    let path = dir.write(
        "offgrid.txt",
        format!("1723161253937085768 {off}\n").as_bytes(),
    );
    let e = Tape::load(vec![FrameReader::open(&path, "BTCUSDT").unwrap()], spec())
        .err()
        .unwrap();
    assert!(e.fix.contains("market.tick_size"), "{e}");
}

#[test]
fn csv_layouts_become_frames_the_decoder_reads() {
    let dir = Dir::new("csv");
    let trades = dir.write(
        "BTCUSDT-trades-2024-08-08.csv",
        b"3071245454,61837.63000000,0.00056000,34.629,1723161600000,True,True\n\
              3071245455,61837.64000000,0.00100000,61.837,1723161600001,False,True\n",
    );
    let agg = dir.write(
        "agg.csv",
        b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n\
              26129,61837.63,0.01,27781,27790,1723161600000500,true\n",
    );
    let book = dir.write(
            "BTCUSDT-bookTicker-2024-08-08.csv",
            b"update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n\
              9001,61837.63,1.5,61837.64,2.0,1723161600000,1723161600002\n",
        );
    let readers = vec![
        FrameReader::open(&trades, "BTCUSDT").unwrap(),
        FrameReader::open(&agg, "BTCUSDT").unwrap(),
        FrameReader::open(&book, "BTCUSDT").unwrap(),
    ];
    assert!(!readers[0].has_receive_times());
    let tape = Tape::load(readers, spec()).unwrap();
    let stats = tape.stats();
    assert_eq!((stats.trades, stats.book_tickers), (3, 1));
    assert_eq!(stats.feed_delay_samples, 0, "CSV times are exchange times");
    let kinds: Vec<(u64, &str)> = tape
        .events()
        .iter()
        .map(|e| {
            let kind = match e.event {
                Event::Trade(t) if t.kind == crate::feed::TradeKind::AggTrade => "agg",
                Event::Trade(_) => "trade",
                Event::BookTicker(_) => "book",
                _ => "other",
            };
            (e.local_ts_ns, kind)
        })
        .collect();
    // Merged by time; equal times keep the order the files were given in.
    assert_eq!(
        kinds,
        vec![
            (1_723_161_600_000_000_000, "trade"),
            (1_723_161_600_000_500_000, "agg"),
            (1_723_161_600_001_000_000, "trade"),
            (1_723_161_600_002_000_000, "book"),
        ]
    );
    match tape.events()[0].event {
        Event::Trade(t) => {
            assert_eq!(t.price.0, 6_183_763);
            assert_eq!(t.qty.0, 56);
            assert_eq!(t.aggressor, crate::types::Side::Sell, "buyer was maker");
            assert_eq!(t.trade_id, 3_071_245_454);
        }
        other => panic!("{other:?}"),
    }
    match tape.events()[3].event {
        Event::BookTicker(b) => {
            assert_eq!((b.update_id, b.exch_ts_ms), (9001, 1_723_161_600_002));
            assert_eq!((b.bid_qty.0, b.ask_qty.0), (150_000, 200_000));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_problems_name_file_and_line() {
    let dir = Dir::new("csvbad");
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "BTCUSDT-trades-x.csv",
            b"1,2.0,3.0,4.0,1723161600000,maybe,True\n",
            "line 1",
        ),
        ("BTCUSDT-trades-x.csv", b"1,2.0,3.0\n", "line 1: 3 fields"),
        (
            "BTCUSDT-trades-x.csv",
            b"1,2.0,3.0,4.0,1723161600001,true,true\n1,2.0,3.0,4.0,1723161600000,true,true\n",
            "line 2: time",
        ),
        (
            "BTCUSDT-trades-x.csv",
            b"1,-2.0,3.0,4.0,1723161600000,true,true\n",
            "line 1: field 2",
        ),
        (
            "mystery.csv",
            b"1,2,3\n",
            "cannot tell which Binance CSV layout",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.write(name, text);
        let e = frames(FrameReader::open(&path, "BTCUSDT").unwrap()).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains(name), "{shown}");
        assert!(shown.contains(expected), "{shown}");
    }
}

#[test]
fn zip_members_are_read_stored_and_deflated() {
    let csv = b"update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n\
                    1,100.00,1,100.01,2,1723161600000,1723161600001\n";
    let dir = Dir::new("zip");
    for method in [0u16, 8] {
        let zip = build_zip("BTCUSDT-bookTicker-2024-08-08.csv", csv, method);
        let path = dir.write("BTCUSDT-bookTicker-2024-08-08.zip", &zip);
        let got = frames(FrameReader::open(&path, "ETHUSDT").unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            got[0].2.contains("\"s\":\"BTCUSDT\""),
            "symbol from the member name: {got:?}"
        );
    }
    let mut zip = build_zip("a.csv", csv, 8);
    let last = zip.len() - 30;
    zip[last] ^= 0xff; // damage the central directory
    let path = dir.write("damaged.zip", &zip);
    assert!(FrameReader::open(&path, "BTCUSDT").is_err());
}

/// A one-member zip archive (test helper; the reader above is what is tested).
pub(crate) fn build_zip(name: &str, data: &[u8], method: u16) -> Vec<u8> {
    let body = if method == 8 {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    } else {
        data.to_vec()
    };
    let crc = crc32fast::hash(data);
    let mut out = Vec::new();
    let header = |out: &mut Vec<u8>, sig: u32, central: bool| {
        out.extend_from_slice(&sig.to_le_bytes());
        if central {
            out.extend_from_slice(&20u16.to_le_bytes());
        }
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
    };
    header(&mut out, 0x0403_4b50, false);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&body);
    let central = out.len();
    header(&mut out, 0x0201_4b50, true);
    out.extend_from_slice(&[0; 10]); // comment len, disk, attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name.as_bytes());
    let central_len = out.len() - central;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(central_len as u32).to_le_bytes());
    out.extend_from_slice(&(central as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn journals_replay_and_convert_round_trips() {
    let dir = Dir::new("journal");
    let capture = dir.write(
            "cap.txt",
            format!(
                "1723161253937085768 {{\"lastUpdateId\":4,\"bids\":[[\"100.00\",\"1\"]],\"asks\":[[\"100.01\",\"1\"]]}}\n\
                 1723161253937085769 {BT}\n"
            )
            .as_bytes(),
        );
    let out = dir.0.join("out.mmj");
    let (records, _) = convert_to_journal(
        vec![FrameReader::open(&capture, "BTCUSDT").unwrap()],
        &out,
        "BTCUSDT",
        1,
    )
    .unwrap();
    assert_eq!(records, 2);
    let reader = FrameReader::open(&out, "BTCUSDT").unwrap();
    assert_eq!(reader.format(), SourceFormat::Journal);
    let got = frames(reader).unwrap();
    let original = frames(FrameReader::open(&capture, "BTCUSDT").unwrap()).unwrap();
    assert_eq!(got, original);
    assert_eq!(got[0].1, RecordKind::Snapshot);
    // Never overwritten.
    assert!(convert_to_journal(vec![], &out, "BTCUSDT", 1).is_err());
}

#[test]
fn streams_the_engine_does_not_read_are_skipped() {
    assert!(stream_is_used(BT.as_bytes()));
    assert!(stream_is_used(
        br#"{"stream":"btcusdt@depth@100ms","data":{}}"#
    ));
    assert!(stream_is_used(br#"{"stream":"btcusdt@trade","data":{}}"#));
    assert!(stream_is_used(
        br#"{"stream":"btcusdt@aggTrade","data":{}}"#
    ));
    assert!(stream_is_used(br#"{"lastUpdateId":1}"#));
    assert!(!stream_is_used(
        br#"{"stream":"btcusdt@markPrice@1s","data":{"p":"1.234567"}}"#
    ));
    assert!(!stream_is_used(
        br#"{"stream":"btcusdt@kline_1m","data":{}}"#
    ));
    let dir = Dir::new("skip");
    let mark = r#"{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"28147.27373413"}}"#;
    let path = dir.write(
        "mixed.txt",
        format!("1723161253937085768 {mark}\n1723161253937085769 {BT}\n").as_bytes(),
    );
    let tape = Tape::load(vec![FrameReader::open(&path, "BTCUSDT").unwrap()], spec()).unwrap();
    assert_eq!(tape.stats().skipped_unknown_kind, 1);
    assert_eq!(tape.stats().book_tickers, 1);
}

#[test]
fn inputs_resolve_from_files_folders_and_globs() {
    let dir = Dir::new("resolve");
    dir.write("b_2.gz", b"");
    dir.write("b_1.gz", b"");
    dir.write("LICENSE.txt", b"");
    dir.write("c.csv", b"");
    let folder = dir.0.display().to_string();
    let names = |args: &[String]| -> Vec<String> {
        resolve_inputs(args)
            .unwrap()
            .iter()
            .map(|p| file_base_name(p))
            .collect()
    };
    assert_eq!(
        names(std::slice::from_ref(&folder)),
        vec!["b_1.gz", "b_2.gz", "c.csv"]
    );
    assert_eq!(
        names(&[format!("{folder}/b_*.gz")]),
        vec!["b_1.gz", "b_2.gz"]
    );
    assert_eq!(names(&[format!("{folder}/?_2.gz")]), vec!["b_2.gz"]);
    assert!(resolve_inputs(&[format!("{folder}/z*")]).is_err());
    assert!(resolve_inputs(&[format!("{folder}/nope.gz")]).is_err());
    assert!(glob_match(b"*", b""));
    assert!(!glob_match(b"a*c", b"ab"));
}

#[test]
fn the_built_in_slice_decodes_with_its_snapshot() {
    let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), spec()).unwrap();
    let stats = tape.stats();
    assert_eq!(stats.snapshots, 1);
    assert!(stats.depth_diffs > 1000 && stats.book_tickers > 10_000 && stats.trades > 1000);
    assert_eq!(stats.skipped_unknown_kind + stats.skipped_other_symbol, 0);
    // The 2024 recorder's clock ran ~1.27 s behind the exchange's.
    let delay = stats.feed_delay_ns_median.unwrap();
    assert!((-1_400_000_000..-1_100_000_000).contains(&delay), "{delay}");
    let snapshot = tape
        .events()
        .iter()
        .find(|e| matches!(e.event, Event::Snapshot(_)))
        .unwrap();
    let levels = tape.levels(snapshot);
    assert_eq!((levels.bids.len(), levels.asks.len()), (1000, 1000));
    assert!(tape
        .events()
        .windows(2)
        .all(|w| w[0].local_ts_ns <= w[1].local_ts_ns));
}

/// The book a replay of a window ends with is the book the whole tape ends with: the
/// synthetic snapshot carries the book across the cut exactly.
#[test]
fn a_window_opens_with_the_book_at_its_start() {
    use crate::book::{SyncState, SyncedBook};
    let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), spec()).unwrap();
    let stats = tape.stats();
    let middle = stats.first_ts_ns + (stats.last_ts_ns - stats.first_ts_ns) / 2;
    let end = stats.last_ts_ns + 1;
    let window = tape.window(middle, end, 1000).unwrap();
    assert!(window.starts_with_snapshot());
    assert!(!tape.starts_with_snapshot(), "the capture opens with diffs");
    let inside = tape
        .events()
        .iter()
        .filter(|e| e.local_ts_ns >= middle)
        .count();
    assert_eq!(window.events().len(), inside + 1);
    assert_eq!(window.stats().first_ts_ns, middle);
    // The window's feed latency is its own events' median, not the whole tape's.
    let mut own: Vec<i64> = tape
        .events()
        .iter()
        .filter(|e| e.local_ts_ns >= middle && e.event.exch_ts_ms() > 0)
        .map(|e| e.local_ts_ns as i64 - e.event.exch_ts_ms() as i64 * 1_000_000)
        .collect();
    let mid = own.len() / 2;
    let median = *own.select_nth_unstable(mid).1;
    assert_eq!(window.stats().feed_delay_ns_median, Some(median));
    assert_eq!(window.stats().feed_delay_samples, own.len() as u64);
    let replay = |t: &Tape| {
        let mut book = SyncedBook::new(1000);
        for e in t.events() {
            match &e.event {
                Event::Depth(d) => {
                    let _ = book.on_diff(d, t.levels(e));
                }
                Event::Snapshot(s) => {
                    let _ = book.on_snapshot(s, t.levels(e));
                }
                _ => {}
            }
        }
        let held = book.book_any_state();
        let bids: Vec<Level> = held.levels(crate::types::Side::Buy).collect();
        let asks: Vec<Level> = held.levels(crate::types::Side::Sell).collect();
        (book.state(), bids, asks)
    };
    let (state_all, bids_all, asks_all) = replay(&tape);
    let (state_win, bids_win, asks_win) = replay(&window);
    assert!(matches!(state_all, SyncState::Live { .. }));
    assert_eq!(state_win, state_all);
    assert_eq!(bids_win, bids_all);
    assert_eq!(asks_win, asks_all);
    // Before the recording's snapshot there is no book to carry.
    let early = tape.window(stats.first_ts_ns, middle, 1000).unwrap();
    assert!(!early.starts_with_snapshot());
}

/// The built-in slice's lines, split into `parts` consecutive pieces written as gzip
/// captures `part_1.gz` … into `dir`; returns their paths.
fn slice_in_parts(dir: &Dir, parts: usize) -> Vec<PathBuf> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(DEFAULT_SLICE)
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let per = lines.len().div_ceil(parts);
    lines
        .chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for line in chunk {
                writeln!(gz, "{line}").unwrap();
            }
            dir.write(&format!("part_{}.gz", i + 1), &gz.finish().unwrap())
        })
        .collect()
}

/// Every frame of `readers` merged, as (reader, time, payload), and the most files open at
/// once.
fn merged(readers: Vec<FrameReader>) -> (Vec<(usize, u64, Vec<u8>)>, usize) {
    let mut merger = Merger::new(readers);
    let mut out = Vec::new();
    while let Some((i, f)) = merger.next_frame().unwrap() {
        out.push((i, f.local_ts_ns, f.payload.to_vec()));
    }
    (out, merger.open_max())
}

/// A folder of consecutive files (days, say) is read one file at a time — each opened
/// when the previous is exhausted — with the same frames, in the same order, as the whole
/// file and as all of them opened at once; files that overlap in time are open together.
#[test]
fn consecutive_files_are_open_one_at_a_time() {
    let dir = Dir::new("lazy");
    let parts = slice_in_parts(&dir, 4);
    let folder = dir.0.display().to_string();
    let Inputs::Frames(lazy) = open_sources(std::slice::from_ref(&folder), &spec()).unwrap() else {
        panic!("frames expected");
    };
    assert_eq!(lazy.len(), 4);
    assert!(lazy.iter().all(|r| r.parked_first_ts().is_some()));
    let (frames, open_max) = merged(lazy);
    assert_eq!(open_max, 1, "consecutive files: one open at a time");
    let eager: Vec<FrameReader> = parts
        .iter()
        .map(|p| FrameReader::open(p, "BTCUSDT").unwrap())
        .collect();
    let (all_open, eager_max) = merged(eager);
    assert_eq!(eager_max, 4);
    assert_eq!(frames, all_open);
    let (whole, _) = merged(vec![FrameReader::from_gzip_capture(
        DEFAULT_SLICE_NAME,
        DEFAULT_SLICE,
    )]);
    assert_eq!(frames.len(), whole.len());
    assert!(frames
        .iter()
        .zip(&whole)
        .all(|(a, b)| (a.1, &a.2) == (b.1, &b.2)));
    // The decoded tape of the folder is the slice's.
    let whole_tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), spec()).unwrap();
    let folder_tape = Tape::load(open_inputs(&[folder], "BTCUSDT").unwrap(), spec()).unwrap();
    assert_eq!(whole_tape.stats(), folder_tape.stats());

    // A file overlapping part 3 only (its every 7th line): parts 1, 2 and 4 are alone,
    // part 3 and the overlap are open together.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&parts[2]).unwrap()),
        &mut text,
    )
    .unwrap();
    let every_7th: String = text.lines().step_by(7).map(|l| format!("{l}\n")).collect();
    let overlap = dir.write("part_3_overlap.txt", every_7th.as_bytes());
    let mut args: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
    args.push(overlap.display().to_string());
    let lazy = open_inputs(&args, "BTCUSDT").unwrap();
    let (frames, open_max) = merged(lazy);
    assert_eq!(open_max, 2, "the overlapping pair");
    let eager: Vec<FrameReader> = args
        .iter()
        .map(|p| FrameReader::open(std::path::Path::new(p), "BTCUSDT").unwrap())
        .collect();
    let (all_open, _) = merged(eager);
    assert_eq!(frames, all_open);
    assert_eq!(frames.len(), whole.len() + every_7th.lines().count());
}
