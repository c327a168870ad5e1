//! The journal: recorded market data, byte for byte, in a compact versioned binary file.
//!
//! Owns: the file format (below), `JournalWriter` (used by the side thread only) and
//! `JournalReader` (replay, backtest, the local exchange). The hot thread never touches the
//! file: it copies each frame into a bounded byte ring (`FrameRing`) that the side thread
//! drains; a full ring drops and counts, never blocks.
//!
//! Format (all integers little-endian):
//! ```text
//! header  (32 bytes): magic "MMJRNL01" | version u16 = 1 | reserved u16 = 0
//!                     | created_wall_ns u64 | symbol [u8; 12] (ASCII, zero padded)
//! record  (17 + len): len u32 | kind u8 | local_ts_ns u64 | payload [len] | crc32 u32
//!                     crc32 (IEEE) covers kind, local_ts_ns and payload
//! kinds:  1 market frame — the WebSocket text payload exactly as received
//!         2 depth snapshot — the REST /api/v3/depth body exactly as received
//!         3 marker — a UTF-8 note (connect, disconnect, resync), for humans and audits
//! ```
//! `local_ts_ns` is the receive time: monotonic-derived wall-clock nanoseconds since the Unix
//! epoch (the engine's clock at the moment the frame left the WebSocket layer).
//!
//! Crash safety: records are appended and flushed by the side thread; after a crash the
//! last record may be torn. The reader treats a truncated or checksum-failing **last**
//! record as a torn tail — it stops there and reports how many bytes it skipped; so is a
//! bad record followed only by zero bytes (after a power loss the file can be extended with
//! zeros the data never reached). A bad record followed by anything else is corruption and
//! an error naming the byte offset.
//!
//! Never: allocates per record on the read path (`next_record` lends a view into its
//! buffer), or reorders records.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// File magic, 8 bytes.
pub const MAGIC: &[u8; 8] = b"MMJRNL01";
/// Format version written by this build.
pub const VERSION: u16 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 32;
/// Record overhead: len + kind + ts + crc.
pub const RECORD_OVERHEAD: usize = 4 + 1 + 8 + 4;
/// Largest payload accepted (a 5000-level snapshot is ~250 KiB).
pub const PAYLOAD_MAX: usize = 4 << 20;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A market-data WebSocket message, as received.
    Frame = 1,
    /// A REST depth snapshot body, as received.
    Snapshot = 2,
    /// A human-readable note.
    Marker = 3,
}

impl RecordKind {
    fn from_u8(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Frame),
            2 => Some(RecordKind::Snapshot),
            3 => Some(RecordKind::Marker),
            _ => None,
        }
    }
}

/// A record borrowed from the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// What it is.
    pub kind: RecordKind,
    /// Receive time, ns since the Unix epoch.
    pub local_ts_ns: u64,
    /// The bytes.
    pub payload: &'a [u8],
}

/// The journal's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// When the file was created, ns since the Unix epoch.
    pub created_wall_ns: u64,
    /// Symbol, ASCII, zero padded.
    pub symbol: [u8; 12],
}

impl Header {
    /// The symbol as text.
    pub fn symbol_str(&self) -> &str {
        let end = self.symbol.iter().position(|&b| b == 0).unwrap_or(12);
        std::str::from_utf8(&self.symbol[..end]).unwrap_or("?")
    }
}

/// Why a journal could not be read.
#[derive(Debug)]
pub enum JournalError {
    /// The file could not be opened or read.
    Io(PathBuf, io::Error),
    /// Not a journal (wrong magic) or a version this build does not read.
    BadHeader(PathBuf, String),
    /// A damaged record with more data after it.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        problem: &'static str,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            JournalError::BadHeader(path, why) => {
                write!(f, "{}: not an mm journal ({why})", path.display())
            }
            JournalError::Corrupt {
                path,
                offset,
                problem,
            } => write!(
                f,
                "{}: corrupt record at byte {offset}: {problem} (the file was damaged after \
                 it was written; records before it are readable)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for JournalError {}

/// Appends records to a journal file. Side thread only (it allocates and blocks on I/O).
pub struct JournalWriter {
    out: BufWriter<File>,
    path: PathBuf,
    records: u64,
    bytes: u64,
}

impl JournalWriter {
    /// Creates `path` (and its folder) and writes the header. Refuses to overwrite.
    pub fn create(path: &Path, symbol: &str, created_wall_ns: u64) -> io::Result<JournalWriter> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..10].copy_from_slice(&VERSION.to_le_bytes());
        header[12..20].copy_from_slice(&created_wall_ns.to_le_bytes());
        for (dst, src) in header[20..32].iter_mut().zip(symbol.bytes()) {
            *dst = src;
        }
        out.write_all(&header)?;
        Ok(JournalWriter {
            out,
            path: path.to_path_buf(),
            records: 0,
            bytes: HEADER_LEN as u64,
        })
    }

    /// Appends one record.
    pub fn append(&mut self, kind: RecordKind, local_ts_ns: u64, payload: &[u8]) -> io::Result<()> {
        if payload.len() > PAYLOAD_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "journal payload of {} bytes exceeds {PAYLOAD_MAX}",
                    payload.len()
                ),
            ));
        }
        let kind_byte = [kind as u8];
        let ts = local_ts_ns.to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&kind_byte);
        crc.update(&ts);
        crc.update(payload);
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out.write_all(&kind_byte)?;
        self.out.write_all(&ts)?;
        self.out.write_all(payload)?;
        self.out.write_all(&crc.finalize().to_le_bytes())?;
        self.records += 1;
        self.bytes += (RECORD_OVERHEAD + payload.len()) as u64;
        Ok(())
    }

    /// Pushes buffered records to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and syncs to disk, then closes.
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok((self.records, self.bytes))
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads a journal record by record.
pub struct JournalReader {
    path: PathBuf,
    input: std::io::BufReader<File>,
    header: Header,
    buf: Vec<u8>,
    offset: u64,
    torn_tail_bytes: u64,
    zero_tail: bool,
}

impl JournalReader {
    /// Opens `path` and checks the header.
    pub fn open(path: &Path) -> Result<JournalReader, JournalError> {
        let io_err = |e| JournalError::Io(path.to_path_buf(), e);
        let file = File::open(path).map_err(io_err)?;
        let mut input = std::io::BufReader::with_capacity(1 << 20, file);
        let mut raw = [0u8; HEADER_LEN];
        input.read_exact(&mut raw).map_err(|_| {
            JournalError::BadHeader(path.to_path_buf(), "shorter than the header".to_string())
        })?;
        if &raw[..8] != MAGIC {
            return Err(JournalError::BadHeader(
                path.to_path_buf(),
                "wrong magic bytes".to_string(),
            ));
        }
        let version = u16::from_le_bytes([raw[8], raw[9]]);
        if version != VERSION {
            return Err(JournalError::BadHeader(
                path.to_path_buf(),
                format!("version {version}, this build reads {VERSION}"),
            ));
        }
        let mut created = [0u8; 8];
        created.copy_from_slice(&raw[12..20]);
        let mut symbol = [0u8; 12];
        symbol.copy_from_slice(&raw[20..32]);
        Ok(JournalReader {
            path: path.to_path_buf(),
            input,
            header: Header {
                version,
                created_wall_ns: u64::from_le_bytes(created),
                symbol,
            },
            buf: Vec::with_capacity(64 << 10),
            offset: HEADER_LEN as u64,
            torn_tail_bytes: 0,
            zero_tail: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes skipped at the end because the last record was torn (0 for a clean file).
    pub fn torn_tail_bytes(&self) -> u64 {
        self.torn_tail_bytes
    }

    /// The torn tail ends in zero bytes (a power loss extended the file with zeros).
    pub fn zero_filled_tail(&self) -> bool {
        self.zero_tail
    }

    /// The next record, `Ok(None)` at the end (clean or torn tail).
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, JournalError> {
        let start = self.offset;
        let mut prefix = [0u8; 13];
        let got = read_up_to(&mut self.input, &mut prefix)
            .map_err(|e| JournalError::Io(self.path.clone(), e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < prefix.len() {
            self.torn_tail_bytes = got as u64;
            return Ok(None);
        }
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let kind_byte = prefix[4];
        // A zero prefix is no record (kind 0 does not exist): the start of a zero fill.
        self.zero_tail = prefix.iter().all(|&b| b == 0);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&prefix[5..13]);
        if len > PAYLOAD_MAX {
            return self.damaged(start, got as u64, "length field out of range");
        }
        self.buf.resize(len + 4, 0);
        let body = read_up_to(&mut self.input, &mut self.buf)
            .map_err(|e| JournalError::Io(self.path.clone(), e))?;
        if body < len + 4 {
            self.torn_tail_bytes = (prefix.len() + body) as u64;
            return Ok(None);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind_byte]);
        crc.update(&ts);
        crc.update(&self.buf[..len]);
        let stored = u32::from_le_bytes([
            self.buf[len],
            self.buf[len + 1],
            self.buf[len + 2],
            self.buf[len + 3],
        ]);
        let Some(kind) = RecordKind::from_u8(kind_byte) else {
            return self.damaged(
                start,
                (prefix.len() + len + 4) as u64,
                "unknown record kind",
            );
        };
        if crc.finalize() != stored {
            return self.damaged(start, (prefix.len() + len + 4) as u64, "checksum mismatch");
        }
        self.offset += (prefix.len() + len + 4) as u64;
        Ok(Some(Record {
            kind,
            local_ts_ns: u64::from_le_bytes(ts),
            payload: &self.buf[..len],
        }))
    }

    /// A bad record: a torn tail if nothing follows it, corruption otherwise.
    fn damaged(
        &mut self,
        start: u64,
        consumed: u64,
        problem: &'static str,
    ) -> Result<Option<Record<'_>>, JournalError> {
        // What follows: nothing (a torn last record) or only zero bytes (a power loss
        // leaves the file extended with zeros) is a torn tail; anything else is damage.
        let mut rest = [0u8; 4096];
        let mut zeros = 0u64;
        loop {
            let more = read_up_to(&mut self.input, &mut rest)
                .map_err(|e| JournalError::Io(self.path.clone(), e))?;
            if rest[..more].iter().any(|&b| b != 0) {
                break;
            }
            zeros += more as u64;
            if more < rest.len() {
                self.torn_tail_bytes = consumed + zeros;
                self.zero_tail |= zeros > 0;
                return Ok(None);
            }
        }
        self.zero_tail = false;
        Err(JournalError::Corrupt {
            path: self.path.clone(),
            offset: start,
            problem,
        })
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The hot thread's side of the journal: a bounded single-producer byte ring (rtrb) into
/// which each frame is copied as `len u32 | kind u8 | ts u64 | payload`. Never allocates
/// after `new`, never blocks: a frame that does not fit is dropped and counted.
pub struct FrameRing {
    tx: rtrb::Producer<u8>,
    dropped: u64,
}

/// The side thread's end of a `FrameRing`.
pub struct FrameDrain {
    rx: rtrb::Consumer<u8>,
    scratch: Vec<u8>,
}

/// A ring of `capacity_bytes` bytes.
pub fn frame_ring(capacity_bytes: usize) -> (FrameRing, FrameDrain) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity_bytes);
    (
        FrameRing { tx, dropped: 0 },
        FrameDrain {
            rx,
            scratch: Vec::with_capacity(PAYLOAD_MAX),
        },
    )
}

const RING_PREFIX: usize = 4 + 1 + 8;

impl FrameRing {
    /// Copies one record into the ring; `false` (and counted) if it does not fit now.
    #[inline]
    pub fn push(&mut self, kind: RecordKind, local_ts_ns: u64, payload: &[u8]) -> bool {
        let total = RING_PREFIX + payload.len();
        if payload.len() > PAYLOAD_MAX {
            self.dropped += 1;
            return false;
        }
        let Ok(mut chunk) = self.tx.write_chunk(total) else {
            self.dropped += 1;
            return false;
        };
        let mut prefix = [0u8; RING_PREFIX];
        prefix[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        prefix[4] = kind as u8;
        prefix[5..].copy_from_slice(&local_ts_ns.to_le_bytes());
        let (first, second) = chunk.as_mut_slices();
        copy_split(&prefix, payload, first, second);
        chunk.commit_all();
        true
    }

    /// Records dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True once the drain side is gone.
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_abandoned()
    }
}

/// Copies `a ‖ b` into `first ‖ second` (the ring's two halves; same total length) with
/// slice copies, not byte by byte.
#[inline]
fn copy_split(a: &[u8], b: &[u8], first: &mut [u8], second: &mut [u8]) {
    let mut dst_pos = 0;
    for src in [a, b] {
        let mut src_pos = 0;
        while src_pos < src.len() {
            let (dst, at) = if dst_pos < first.len() {
                (&mut *first, dst_pos)
            } else {
                (&mut *second, dst_pos - first.len())
            };
            let n = (src.len() - src_pos).min(dst.len() - at);
            dst[at..at + n].copy_from_slice(&src[src_pos..src_pos + n]);
            src_pos += n;
            dst_pos += n;
        }
    }
}

impl FrameDrain {
    /// Moves every complete record now in the ring into `writer`; returns how many.
    pub fn drain_into(&mut self, writer: &mut JournalWriter) -> io::Result<u64> {
        let mut moved = 0;
        loop {
            let available = self.rx.slots();
            if available < RING_PREFIX {
                return Ok(moved);
            }
            // Peek at the prefix without consuming it: the record is taken whole below.
            let mut prefix = [0u8; RING_PREFIX];
            {
                let Ok(head) = self.rx.read_chunk(RING_PREFIX) else {
                    return Ok(moved);
                };
                let (a, b) = head.as_slices();
                for (dst, src) in prefix.iter_mut().zip(a.iter().chain(b.iter())) {
                    *dst = *src;
                }
            }
            let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            let total = RING_PREFIX + len;
            if available < total {
                // The producer commits whole records, so this cannot happen; wait anyway.
                return Ok(moved);
            }
            let Ok(chunk) = self.rx.read_chunk(total) else {
                return Ok(moved);
            };
            self.scratch.clear();
            let (a, b) = chunk.as_slices();
            self.scratch.extend_from_slice(a);
            self.scratch.extend_from_slice(b);
            chunk.commit_all();
            let kind = RecordKind::from_u8(prefix[4]).unwrap_or(RecordKind::Marker);
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&prefix[5..13]);
            writer.append(kind, u64::from_le_bytes(ts), &self.scratch[RING_PREFIX..])?;
            moved += 1;
        }
    }

    /// True once the hot side is gone (and everything it pushed can be drained).
    pub fn is_abandoned(&self) -> bool {
        self.rx.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("mm-journal-{tag}-{}.mmj", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn write_sample(path: &Path) -> Vec<(RecordKind, u64, Vec<u8>)> {
        let records = vec![
            (RecordKind::Marker, 1, b"connected".to_vec()),
            (
                RecordKind::Snapshot,
                2,
                br#"{"lastUpdateId":1,"bids":[],"asks":[]}"#.to_vec(),
            ),
            (
                RecordKind::Frame,
                3,
                br#"{"stream":"btcusdt@trade","data":{}}"#.to_vec(),
            ),
            (RecordKind::Frame, 4, Vec::new()),
            (RecordKind::Frame, 5, vec![b'x'; 70_000]),
        ];
        let mut w = JournalWriter::create(path, "BTCUSDT", 42).unwrap();
        for (k, ts, p) in &records {
            w.append(*k, *ts, p).unwrap();
        }
        w.finish().unwrap();
        records
    }

    type Owned = Vec<(RecordKind, u64, Vec<u8>)>;

    fn read_all(path: &Path) -> Result<(Owned, u64), JournalError> {
        let mut r = JournalReader::open(path)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push((rec.kind, rec.local_ts_ns, rec.payload.to_vec()));
        }
        Ok((out, r.torn_tail_bytes()))
    }

    #[test]
    fn round_trip_is_exact() {
        let path = temp("rt");
        let written = write_sample(&path);
        let r = JournalReader::open(&path).unwrap();
        assert_eq!(r.header().symbol_str(), "BTCUSDT");
        assert_eq!(r.header().created_wall_ns, 42);
        let (read, torn) = read_all(&path).unwrap();
        assert_eq!(read, written);
        assert_eq!(torn, 0);
        assert!(
            JournalWriter::create(&path, "BTCUSDT", 0).is_err(),
            "never overwrites"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn torn_tail_at_every_cut_is_skipped_not_an_error() {
        let path = temp("torn");
        let written = write_sample(&path);
        let full = std::fs::read(&path).unwrap();
        let last_len = RECORD_OVERHEAD + written[4].2.len();
        let mut boundaries = vec![HEADER_LEN];
        for (_, _, payload) in &written {
            let last = *boundaries.last().unwrap();
            boundaries.push(last + RECORD_OVERHEAD + payload.len());
        }
        let cut_path = temp("torn-cut");
        // Every cut in the two small records before the last, the edges of the last
        // record, and a stride through its middle.
        let last_start = full.len() - last_len;
        let cuts = (last_start - 40..last_start + 64)
            .chain((last_start + 64..full.len() - 64).step_by(997))
            .chain(full.len() - 64..full.len());
        for cut in cuts {
            std::fs::write(&cut_path, &full[..cut]).unwrap();
            let (read, torn) = read_all(&cut_path).unwrap();
            assert!(read.len() >= 2, "cut {cut}");
            assert_eq!(&read[..], &written[..read.len()], "cut {cut}");
            let at_boundary = boundaries.contains(&cut);
            assert_eq!(torn == 0, at_boundary, "cut {cut}: torn {torn}");
            assert_eq!(boundaries[read.len()] + torn as usize, cut, "cut {cut}");
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&cut_path);
    }

    #[test]
    fn damage_in_the_middle_is_an_error_with_the_offset() {
        let path = temp("mid");
        write_sample(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a payload byte of the second record.
        let second = HEADER_LEN + RECORD_OVERHEAD + 9;
        bytes[second + 13 + 2] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        match read_all(&path) {
            Err(JournalError::Corrupt {
                offset, problem, ..
            }) => {
                assert_eq!(offset as usize, second);
                assert_eq!(problem, "checksum mismatch");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // And a damaged *last* record reads as a torn tail.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second + 13 + 2] ^= 0xff; // repair
        let n = bytes.len();
        bytes[n - 1] ^= 0xff; // break the last crc
        std::fs::write(&path, &bytes).unwrap();
        let (read, torn) = read_all(&path).unwrap();
        assert_eq!(read.len(), 4);
        assert!(torn > 0);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_zero_filled_tail_is_a_torn_tail_not_damage() {
        let path = temp("zeros");
        let written = write_sample(&path);
        let full = std::fs::read(&path).unwrap();
        let last_len = RECORD_OVERHEAD + written[4].2.len();
        let zeros_path = temp("zeros-cut");
        // Power loss: every record intact, then zeros (any length); or the last record
        // half written, then zeros.
        for (keep, zeros, records) in [
            (full.len(), 1, 5),
            (full.len(), 12, 5),
            (full.len(), 13, 5),
            (full.len(), 17, 5),
            (full.len(), 100_000, 5),
            (full.len() - last_len / 2, 8192, 4),
        ] {
            let mut bytes = full[..keep].to_vec();
            bytes.resize(keep + zeros, 0);
            std::fs::write(&zeros_path, &bytes).unwrap();
            let mut r = JournalReader::open(&zeros_path).unwrap();
            let mut n = 0;
            while r.next_record().unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, records, "{keep} + {zeros} zeros");
            let intact = if records == 5 {
                full.len()
            } else {
                full.len() - last_len
            };
            assert_eq!(r.torn_tail_bytes() as usize, bytes.len() - intact);
            if records == 5 && zeros >= 13 {
                assert!(r.zero_filled_tail(), "{keep} + {zeros} zeros");
            }
        }
        // Zeros, then data again: damage, with its offset.
        let mut bytes = full.clone();
        bytes.resize(full.len() + 100, 0);
        bytes.push(1);
        std::fs::write(&zeros_path, &bytes).unwrap();
        match read_all(&zeros_path) {
            Err(JournalError::Corrupt { offset, .. }) => assert_eq!(offset as usize, full.len()),
            other => panic!("expected corruption, got {other:?}"),
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&zeros_path);
    }

    #[test]
    fn not_a_journal_is_refused() {
        let path = temp("bad");
        std::fs::write(&path, b"hello, this is not a journal at all....").unwrap();
        assert!(matches!(
            JournalReader::open(&path),
            Err(JournalError::BadHeader(..))
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn ring_carries_records_and_drops_when_full() {
        let (mut ring, mut drain) = frame_ring(256);
        assert!(ring.push(RecordKind::Frame, 7, b"abc"));
        assert!(ring.push(RecordKind::Frame, 8, &[b'z'; 100]));
        assert!(
            !ring.push(RecordKind::Frame, 9, &[b'y'; 200]),
            "does not fit"
        );
        assert_eq!(ring.dropped(), 1);
        let path = temp("ring");
        let mut w = JournalWriter::create(&path, "BTCUSDT", 0).unwrap();
        assert_eq!(drain.drain_into(&mut w).unwrap(), 2);
        // Wrap around the ring end several times.
        for i in 0..50u64 {
            assert!(ring.push(RecordKind::Frame, 100 + i, &[i as u8; 90]));
            assert_eq!(drain.drain_into(&mut w).unwrap(), 1);
        }
        w.finish().unwrap();
        let (read, _) = read_all(&path).unwrap();
        assert_eq!(read.len(), 52);
        assert_eq!(read[0], (RecordKind::Frame, 7, b"abc".to_vec()));
        assert_eq!(read[51], (RecordKind::Frame, 149, vec![49u8; 90]));
        let _ = std::fs::remove_file(&path);
    }
}
