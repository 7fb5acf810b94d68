//! Classic libpcap capture files, and a [`FrameIo`] that replays one and
//! records into another.
//!
//! The format: a 24-byte file header (magic, version 2.4, time zone, sigfigs,
//! snaplen, link type) and then records, each a 16-byte header (seconds,
//! micro- or nanoseconds, captured length, original length) followed by the
//! captured bytes. [`PcapWriter`] writes little-endian files with microsecond
//! timestamps, snaplen 65535 and link type 1 (Ethernet). [`PcapReader`] reads
//! either byte order and either timestamp resolution, and refuses other link
//! types, malformed headers and oversized or truncated records with an
//! [`io::ErrorKind::InvalidData`] error naming the file, the record and its
//! offset. No input makes it panic.

use crate::frameio::FrameIo;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Magic of a file with microsecond timestamps, in the writer's byte order.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic of a file with nanosecond timestamps, in the writer's byte order.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Snaplen of the files [`PcapWriter`] writes: longer frames are cut to it.
pub const SNAPLEN: u32 = 65535;
/// Link type of Ethernet frames (LINKTYPE_ETHERNET), the only one accepted.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest captured length a record may have, whatever the file's snaplen.
pub const MAX_RECORD: u32 = 256 * 1024;

/// Block type of a pcapng section header, which shares the magic's position.
const PCAPNG_MAGIC: u32 = 0x0a0d_0d0a;
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Field offsets, in bytes.
mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION_MAJOR: usize = 4;
    pub const VERSION_MINOR: usize = 6;
    pub const SNAPLEN: usize = 16;
    pub const LINKTYPE: usize = 20;
    pub const INCL_LEN: usize = 8;
}

/// Appends frames to a new capture file; safe to share between threads.
#[derive(Debug)]
pub struct PcapWriter {
    out: Mutex<BufWriter<File>>,
    name: String,
}

impl PcapWriter {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(path: impl AsRef<Path>) -> io::Result<PcapWriter> {
        let name = path.as_ref().display().to_string();
        let file = File::create(path.as_ref()).map_err(|e| annotate(&name, "create", e))?;
        let mut out = BufWriter::new(file);
        out.write_all(&file_header()).and_then(|()| out.flush()).map_err(|e| annotate(&name, "write header", e))?;
        Ok(PcapWriter { out: Mutex::new(out), name })
    }

    /// Appends `frame`, stamped with the current time. Frames longer than
    /// [`SNAPLEN`] are cut to it; the record keeps their original length.
    pub fn write(&self, frame: &[u8]) -> io::Result<()> {
        self.write_at(frame, SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default())
    }

    /// Appends `frame` stamped `since_epoch` (seconds saturate at u32::MAX).
    pub fn write_at(&self, frame: &[u8], since_epoch: Duration) -> io::Result<()> {
        let incl = frame.len().min(SNAPLEN as usize);
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        let secs = u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX);
        hdr[0..4].copy_from_slice(&secs.to_le_bytes());
        hdr[4..8].copy_from_slice(&since_epoch.subsec_micros().to_le_bytes());
        hdr[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        hdr[12..16].copy_from_slice(&u32::try_from(frame.len()).unwrap_or(u32::MAX).to_le_bytes());
        let mut out = self.lock()?;
        out.write_all(&hdr).and_then(|()| out.write_all(&frame[..incl])).map_err(|e| annotate(&self.name, "write", e))
    }

    /// Writes buffered records to the file.
    pub fn flush(&self) -> io::Result<()> {
        self.lock()?.flush().map_err(|e| annotate(&self.name, "flush", e))
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, BufWriter<File>>> {
        // A panic while writing may have left half a record: refuse to go on.
        self.out.lock().map_err(|_| io::Error::other(format!("pcap {}: a writer panicked mid-record", self.name)))
    }
}

/// Reads the records of a capture file, in order.
#[derive(Debug)]
pub struct PcapReader<R> {
    inner: R,
    name: String,
    big_endian: bool,
    nanos: bool,
    snaplen: u32,
    /// Largest captured length accepted: the snaplen, at most [`MAX_RECORD`].
    limit: u32,
    /// Records returned so far.
    records: u64,
    /// Offset of the next record header.
    offset: u64,
    /// At the end, or after an error: no more records are read.
    done: bool,
}

impl PcapReader<BufReader<File>> {
    /// Opens `path` and checks its file header.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let name = path.as_ref().display().to_string();
        let file = File::open(path.as_ref()).map_err(|e| annotate(&name, "open", e))?;
        PcapReader::new(BufReader::new(file), name)
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the file header from `inner`; `name` appears in errors.
    pub fn new(mut inner: R, name: impl Into<String>) -> io::Result<Self> {
        let name = name.into();
        let mut hdr = [0u8; FILE_HEADER_LEN];
        let got = read_full(&mut inner, &mut hdr).map_err(|e| annotate(&name, "read header", e))?;
        if got < FILE_HEADER_LEN {
            return Err(invalid(&name, format!("too short for a pcap file header ({got} of {FILE_HEADER_LEN} bytes)")));
        }
        let (big_endian, nanos) = match get_u32(&hdr, field::MAGIC, false) {
            MAGIC_MICROS => (false, false),
            MAGIC_NANOS => (false, true),
            m if m == MAGIC_MICROS.swap_bytes() => (true, false),
            m if m == MAGIC_NANOS.swap_bytes() => (true, true),
            PCAPNG_MAGIC => return Err(invalid(&name, "a pcapng file; only classic pcap is read".into())),
            m => return Err(invalid(&name, format!("bad magic 0x{m:08x}: not a pcap file"))),
        };
        let major = get_u16(&hdr, field::VERSION_MAJOR, big_endian);
        let minor = get_u16(&hdr, field::VERSION_MINOR, big_endian);
        if major != VERSION_MAJOR {
            return Err(invalid(&name, format!("unsupported version {major}.{minor} (want 2.x)")));
        }
        let linktype = get_u32(&hdr, field::LINKTYPE, big_endian);
        if linktype != LINKTYPE_ETHERNET {
            return Err(invalid(&name, format!("link type {linktype} is not Ethernet ({LINKTYPE_ETHERNET})")));
        }
        let snaplen = get_u32(&hdr, field::SNAPLEN, big_endian);
        // Some writers leave the snaplen 0 ("unknown"), as libpcap tolerates.
        let limit = if snaplen == 0 { MAX_RECORD } else { snaplen.min(MAX_RECORD) };
        Ok(PcapReader {
            inner,
            name,
            big_endian,
            nanos,
            snaplen,
            limit,
            records: 0,
            offset: FILE_HEADER_LEN as u64,
            done: false,
        })
    }

    /// Reads the next record's frame into `buf`: Ok(Some(captured length)),
    /// of which the first buf.len() bytes are copied, or Ok(None) at the end.
    /// A malformed record is an error, after which Ok(None) follows.
    pub fn next_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.done {
            return Ok(None);
        }
        let r = self.read_record(buf);
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    /// The file's snaplen, as its header says.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Largest captured length a record of this file may have.
    pub fn max_frame(&self) -> usize {
        self.limit as usize
    }

    /// Whether timestamps are in nanoseconds (magic 0xa1b23c4d).
    pub fn nanosecond(&self) -> bool {
        self.nanos
    }

    /// Whether the file is big-endian.
    pub fn big_endian(&self) -> bool {
        self.big_endian
    }

    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.inner, &mut hdr).map_err(|e| self.record_err("read", e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            let msg = format!("truncated record header ({got} of {RECORD_HEADER_LEN} bytes)");
            return Err(self.record_err("read", io::Error::new(io::ErrorKind::InvalidData, msg)));
        }
        let incl = get_u32(&hdr, field::INCL_LEN, self.big_endian);
        if incl > self.limit {
            let msg = if incl > MAX_RECORD {
                format!("captured length {incl} exceeds the {MAX_RECORD}-byte limit")
            } else {
                format!("captured length {incl} exceeds the file's snaplen {}", self.snaplen)
            };
            return Err(self.record_err("read", io::Error::new(io::ErrorKind::InvalidData, msg)));
        }
        // incl <= MAX_RECORD, so it fits a usize.
        let incl = incl as usize;
        let keep = incl.min(buf.len());
        let mut got = read_full(&mut self.inner, &mut buf[..keep]).map_err(|e| self.record_err("read", e))?;
        if got == keep && incl > keep {
            let rest = (incl - keep) as u64;
            let skipped =
                io::copy(&mut (&mut self.inner).take(rest), &mut io::sink()).map_err(|e| self.record_err("read", e))?;
            got += skipped as usize;
        }
        if got < incl {
            let msg = format!("truncated record data ({got} of {incl} bytes)");
            return Err(self.record_err("read", io::Error::new(io::ErrorKind::InvalidData, msg)));
        }
        self.records += 1;
        self.offset += (RECORD_HEADER_LEN + incl) as u64;
        Ok(Some(incl))
    }

    /// `err` naming the file, the record being read and its offset.
    fn record_err(&self, what: &str, err: io::Error) -> io::Error {
        let msg = format!("pcap {}: {what} record {} at offset {}: {err}", self.name, self.records + 1, self.offset);
        io::Error::new(err.kind(), msg)
    }
}

/// A [`FrameIo`] over capture files: `recv` replays the input's frames in
/// order, `send` appends to the output. Either may be absent: without input
/// nothing is ever received, without output sent frames are dropped.
#[derive(Debug)]
pub struct PcapIo {
    input: Option<Mutex<Replay>>,
    output: Option<PcapWriter>,
    desc: String,
}

/// The input, read one frame ahead so `wait` knows whether one remains.
#[derive(Debug)]
struct Replay {
    reader: PcapReader<BufReader<File>>,
    frame: Vec<u8>,
    /// The result of reading the next record; an error is reported once.
    next: Option<io::Result<Option<usize>>>,
}

impl Replay {
    fn advance(&mut self) {
        self.next = Some(self.reader.next_frame(&mut self.frame));
    }

    fn at_end(&self) -> bool {
        matches!(self.next, Some(Ok(None)) | None)
    }
}

impl PcapIo {
    /// Opens `input` (checking its header) and creates `output`.
    pub fn new(input: Option<PathBuf>, output: Option<PathBuf>) -> io::Result<PcapIo> {
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let desc = format!("pcap:{}>{}", show(&input), show(&output));
        let input = match input {
            Some(path) => {
                let reader = PcapReader::open(path)?;
                let mut replay = Replay { frame: vec![0; reader.max_frame()], reader, next: None };
                replay.advance();
                Some(Mutex::new(replay))
            }
            None => None,
        };
        let output = output.map(PcapWriter::create).transpose()?;
        Ok(PcapIo { input, output, desc })
    }

    /// Writes the output's buffered records to its file.
    pub fn flush(&self) -> io::Result<()> {
        self.output.as_ref().map_or(Ok(()), PcapWriter::flush)
    }

    /// The input, locked; None without one.
    fn replay(&self) -> io::Result<Option<MutexGuard<'_, Replay>>> {
        let Some(input) = &self.input else { return Ok(None) };
        input.lock().map(Some).map_err(|_| io::Error::other(format!("{}: a reader panicked", self.desc)))
    }
}

impl FrameIo for PcapIo {
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.output.as_ref().map_or(Ok(()), |out| out.write(frame))
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(mut replay) = self.replay()? else { return Ok(None) };
        match replay.next.take() {
            Some(Ok(Some(len))) => {
                let n = len.min(buf.len());
                buf[..n].copy_from_slice(&replay.frame[..n]);
                replay.advance();
                Ok(Some(len))
            }
            Some(Err(e)) => {
                // The reader is done: every later call returns Ok(None).
                replay.advance();
                Err(e)
            }
            Some(Ok(None)) | None => {
                replay.next = Some(Ok(None));
                Ok(None)
            }
        }
    }

    /// True at once while input frames (or an error) remain; otherwise
    /// sleeps `timeout`, as an idle wire would, and returns false.
    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        if self.replay()?.is_some_and(|r| !r.at_end()) {
            return Ok(true);
        }
        std::thread::sleep(timeout);
        Ok(false)
    }

    fn describe(&self) -> String {
        self.desc.clone()
    }
}

/// The header [`PcapWriter`] writes.
fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
    h[4..6].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    h[6..8].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            // min(): a reader that claims more than it was given cannot make us overrun.
            Ok(k) => n += k.min(buf.len() - n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn get_u32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    if big_endian {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

fn get_u16(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let mut v = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        v.copy_from_slice(s);
    }
    if big_endian {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn annotate(name: &str, what: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("pcap {name}: {what}: {err}"))
}

fn invalid(name: &str, msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("pcap {name}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::time::Instant;

    /// A file path under the temp dir, removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> TempPath {
            TempPath(std::env::temp_dir().join(format!("frameio-{}-{tag}.pcap", std::process::id())))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn test_frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// A file header in the given byte order.
    fn header(magic: u32, snaplen: u32, linktype: u32, big: bool) -> Vec<u8> {
        let mut h = Vec::new();
        let u32b = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let u16b = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        h.extend_from_slice(&u32b(magic));
        h.extend_from_slice(&u16b(2));
        h.extend_from_slice(&u16b(4));
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&u32b(snaplen));
        h.extend_from_slice(&u32b(linktype));
        h
    }

    /// A record in the given byte order.
    fn record(data: &[u8], incl: u32, big: bool) -> Vec<u8> {
        let u32b = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut r = Vec::new();
        r.extend_from_slice(&u32b(1));
        r.extend_from_slice(&u32b(2));
        r.extend_from_slice(&u32b(incl));
        r.extend_from_slice(&u32b(data.len() as u32));
        r.extend_from_slice(data);
        r
    }

    fn reader(bytes: Vec<u8>) -> io::Result<PcapReader<Cursor<Vec<u8>>>> {
        PcapReader::new(Cursor::new(bytes), "test.pcap")
    }

    /// Reads every frame; the error of the first bad record ends it.
    fn read_all<R: Read>(r: &mut PcapReader<R>) -> io::Result<Vec<Vec<u8>>> {
        let mut frames = Vec::new();
        let mut buf = vec![0u8; MAX_RECORD as usize];
        while let Some(n) = r.next_frame(&mut buf)? {
            frames.push(buf[..n].to_vec());
        }
        Ok(frames)
    }

    #[test]
    fn write_then_read_three_frames() {
        let path = TempPath::new("three");
        let frames = [test_frame(60, 1), test_frame(1514, 2), test_frame(14, 3)];
        let w = PcapWriter::create(&path.0).expect("create");
        for f in &frames {
            w.write(f).expect("write");
        }
        w.flush().expect("flush");
        let mut r = PcapReader::open(&path.0).expect("open");
        assert_eq!(read_all(&mut r).expect("read"), frames);
        assert!(!r.big_endian() && !r.nanosecond());
        assert_eq!(r.next_frame(&mut [0u8; 64]).expect("end"), None);
    }

    #[test]
    fn golden_file_and_record_header() {
        let path = TempPath::new("golden");
        let w = PcapWriter::create(&path.0).expect("create");
        w.write_at(&[0xab; 14], Duration::new(1_700_000_000, 123_456_789)).expect("write");
        drop(w);
        let bytes = std::fs::read(&path.0).expect("read back");
        #[rustfmt::skip]
        let golden: [u8; 40] = [
            0xd4, 0xc3, 0xb2, 0xa1, // magic
            0x02, 0x00, 0x04, 0x00, // version 2.4
            0x00, 0x00, 0x00, 0x00, // thiszone
            0x00, 0x00, 0x00, 0x00, // sigfigs
            0xff, 0xff, 0x00, 0x00, // snaplen 65535
            0x01, 0x00, 0x00, 0x00, // Ethernet
            0x00, 0xf1, 0x53, 0x65, // 1_700_000_000 s
            0x40, 0xe2, 0x01, 0x00, // 123_456 us
            0x0e, 0x00, 0x00, 0x00, // incl_len 14
            0x0e, 0x00, 0x00, 0x00, // orig_len 14
        ];
        assert_eq!(bytes[..40], golden);
        assert_eq!(bytes[40..], [0xab; 14]);
    }

    #[test]
    fn writer_cuts_frames_to_snaplen() {
        let path = TempPath::new("snap");
        let w = PcapWriter::create(&path.0).expect("create");
        let big = test_frame(70_000, 9);
        w.write_at(&big, Duration::ZERO).expect("write");
        w.flush().expect("flush");
        let bytes = std::fs::read(&path.0).expect("read back");
        assert_eq!(get_u32(&bytes, 24 + 8, false), SNAPLEN);
        assert_eq!(get_u32(&bytes, 24 + 12, false), 70_000);
        let mut r = PcapReader::open(&path.0).expect("open");
        assert_eq!(read_all(&mut r).expect("read"), [big[..SNAPLEN as usize].to_vec()]);
    }

    #[test]
    fn big_endian_file() {
        let mut bytes = vec![
            0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
            0x00, 0x01,
        ];
        bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x05]);
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x40]);
        bytes.extend_from_slice(b"abc");
        let mut r = reader(bytes).expect("header");
        assert!(r.big_endian());
        assert_eq!(r.snaplen(), 65535);
        assert_eq!(read_all(&mut r).expect("read"), [b"hello".to_vec(), b"abc".to_vec()]);
    }

    #[test]
    fn nanosecond_magic_in_both_orders() {
        for big in [false, true] {
            let mut bytes = header(MAGIC_NANOS, 65535, 1, big);
            bytes.extend(record(b"frame", 5, big));
            let mut r = reader(bytes).expect("header");
            assert!(r.nanosecond());
            assert_eq!(r.big_endian(), big);
            assert_eq!(read_all(&mut r).expect("read"), [b"frame".to_vec()]);
        }
    }

    #[test]
    fn bad_file_headers_rejected() {
        let cases: [(Vec<u8>, &str); 6] = [
            (header(MAGIC_MICROS, 65535, 101, false), "link type 101 is not Ethernet"),
            (header(MAGIC_MICROS, 65535, 1, false)[..23].to_vec(), "too short"),
            (Vec::new(), "too short"),
            (header(0x1234_5678, 65535, 1, false), "bad magic 0x12345678"),
            (header(PCAPNG_MAGIC, 65535, 1, false), "pcapng"),
            (
                {
                    let mut h = header(MAGIC_MICROS, 65535, 1, false);
                    h[4] = 1;
                    h
                },
                "unsupported version 1.4",
            ),
        ];
        for (bytes, want) in cases {
            let err = reader(bytes).expect_err(want);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let msg = err.to_string();
            assert!(msg.contains(want) && msg.contains("test.pcap"), "{msg}");
        }
    }

    #[test]
    fn missing_file_error_names_it() {
        let err = PcapReader::open("/nonexistent-dir/in.pcap").expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("/nonexistent-dir/in.pcap"), "{err}");
        let err = PcapWriter::create("/nonexistent-dir/out.pcap").expect_err("missing dir");
        assert!(err.to_string().contains("/nonexistent-dir/out.pcap"), "{err}");
    }

    #[test]
    fn truncated_records_are_errors() {
        let mut good = header(MAGIC_MICROS, 65535, 1, false);
        good.extend(record(&test_frame(40, 1), 40, false));
        let whole = good.len();
        // Cut inside the second record's header, and inside its data.
        good.extend(record(&test_frame(40, 2), 40, false));
        for cut in [whole + 7, whole + 16 + 39] {
            let mut r = reader(good[..cut].to_vec()).expect("header");
            let mut buf = [0u8; 128];
            assert_eq!(r.next_frame(&mut buf).expect("first record"), Some(40));
            let err = r.next_frame(&mut buf).expect_err("truncated");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains("truncated record"), "{err}");
            assert!(err.to_string().contains(&format!("record 2 at offset {whole}")), "{err}");
            assert_eq!(r.next_frame(&mut buf).expect("after error"), None);
        }
    }

    #[test]
    fn oversize_records_are_errors() {
        // Above the file's snaplen.
        let mut bytes = header(MAGIC_MICROS, 100, 1, false);
        bytes.extend(record(&test_frame(101, 0), 101, false));
        let err = reader(bytes).expect("header").next_frame(&mut [0u8; 200]).expect_err("over snaplen");
        assert!(err.to_string().contains("exceeds the file's snaplen 100"), "{err}");

        // Above 256 KiB, though the header promises more; no data need follow.
        let mut bytes = header(MAGIC_MICROS, u32::MAX, 1, false);
        bytes.extend(record(&[], MAX_RECORD + 1, false));
        let err = reader(bytes).expect("header").next_frame(&mut [0u8; 200]).expect_err("over limit");
        assert!(err.to_string().contains("exceeds the 262144-byte limit"), "{err}");

        // Snaplen 0 means unknown: records up to the limit are read.
        let mut bytes = header(MAGIC_MICROS, 0, 1, false);
        bytes.extend(record(&test_frame(1000, 5), 1000, false));
        assert_eq!(read_all(&mut reader(bytes).expect("header")).expect("read"), [test_frame(1000, 5)]);
    }

    #[test]
    fn short_buffer_gets_prefix_and_real_length() {
        let mut bytes = header(MAGIC_MICROS, 65535, 1, false);
        bytes.extend(record(&test_frame(100, 1), 100, false));
        bytes.extend(record(&test_frame(50, 2), 50, false));
        let mut r = reader(bytes).expect("header");
        let mut small = [0u8; 10];
        assert_eq!(r.next_frame(&mut small).expect("first"), Some(100));
        assert_eq!(small[..], test_frame(100, 1)[..10]);
        assert_eq!(r.next_frame(&mut []).expect("second"), Some(50));
        assert_eq!(r.next_frame(&mut small).expect("end"), None);
    }

    #[test]
    fn pcap_io_replays_and_records() {
        let input = TempPath::new("io-in");
        let output = TempPath::new("io-out");
        let frames = [test_frame(60, 1), test_frame(200, 2), test_frame(1514, 3)];
        let w = PcapWriter::create(&input.0).expect("create input");
        for f in &frames {
            w.write(f).expect("write");
        }
        drop(w);

        let io = PcapIo::new(Some(input.0.clone()), Some(output.0.clone())).expect("open");
        assert_eq!(io.describe(), format!("pcap:{}>{}", input.0.display(), output.0.display()));
        let mut buf = [0u8; 2048];
        let mut small = [0u8; 8];
        assert!(io.wait(Duration::from_secs(5)).expect("wait"));
        assert_eq!(io.recv(&mut buf).expect("recv"), Some(60));
        assert_eq!(buf[..60], frames[0][..]);
        assert_eq!(io.recv(&mut small).expect("recv short"), Some(200));
        assert_eq!(small[..], frames[1][..8]);
        assert!(io.wait(Duration::from_secs(5)).expect("wait"));
        assert_eq!(io.recv(&mut buf).expect("recv"), Some(1514));
        assert_eq!(buf[..1514], frames[2][..]);
        let start = Instant::now();
        assert!(!io.wait(Duration::from_millis(20)).expect("wait at end"));
        assert!(start.elapsed() >= Duration::from_millis(20));
        for _ in 0..3 {
            assert_eq!(io.recv(&mut buf).expect("recv at end"), None);
        }

        io.send(&frames[2]).expect("send");
        io.send(&frames[0]).expect("send");
        io.flush().expect("flush");
        let mut r = PcapReader::open(&output.0).expect("open output");
        assert_eq!(read_all(&mut r).expect("read output"), [frames[2].clone(), frames[0].clone()]);
    }

    #[test]
    fn pcap_io_without_files() {
        let io = PcapIo::new(None, None).expect("open");
        assert_eq!(io.describe(), "pcap:>");
        io.send(&[0u8; 60]).expect("send is dropped");
        assert_eq!(io.recv(&mut [0u8; 64]).expect("recv"), None);
        assert!(!io.wait(Duration::from_millis(1)).expect("wait"));
    }

    #[test]
    fn pcap_io_reports_a_bad_record_once() {
        let input = TempPath::new("io-bad");
        let mut bytes = header(MAGIC_MICROS, 65535, 1, false);
        bytes.extend(record(&test_frame(60, 1), 60, false));
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&input.0, bytes).expect("write input");
        let io = PcapIo::new(Some(input.0.clone()), None).expect("open");
        let mut buf = [0u8; 128];
        assert_eq!(io.recv(&mut buf).expect("good record"), Some(60));
        assert!(io.wait(Duration::ZERO).expect("wait"), "the error is still to be received");
        let err = io.recv(&mut buf).expect_err("bad record");
        assert!(err.to_string().contains(&input.0.display().to_string()), "{err}");
        assert!(!io.wait(Duration::ZERO).expect("wait"));
        assert_eq!(io.recv(&mut buf).expect("after error"), None);
    }

    /// Deterministic 64-bit LCG (Knuth's MMIX constants).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
    }

    #[test]
    fn fuzz_reader_never_panics() {
        let mut rng = Lcg(0x5eed);
        let mut valid = header(MAGIC_MICROS, 65535, 1, false);
        for i in 0..4 {
            valid.extend(record(&test_frame(20 + i * 7, i as u8), (20 + i * 7) as u32, false));
        }
        let mut buf = vec![0u8; 64];
        for round in 0..20_000 {
            let bytes: Vec<u8> = match round % 3 {
                // Random bytes behind a valid header of either order.
                0 => {
                    let magic = [MAGIC_MICROS, MAGIC_NANOS][rng.next() as usize % 2];
                    let mut b = header(magic, rng.next() % 300, 1, rng.next() & 1 == 0);
                    b.extend((0..rng.next() % 200).map(|_| rng.next() as u8));
                    b
                }
                // A valid file with a few bytes changed and its end cut.
                1 => {
                    let mut b = valid.clone();
                    for _ in 0..1 + rng.next() % 4 {
                        let at = rng.next() as usize % b.len();
                        b[at] = rng.next() as u8;
                    }
                    b.truncate(rng.next() as usize % (b.len() + 1));
                    b
                }
                // Pure noise.
                _ => (0..rng.next() % 64).map(|_| rng.next() as u8).collect(),
            };
            buf.resize(rng.next() as usize % 80, 0);
            if let Ok(mut r) = reader(bytes) {
                // Every record consumes at least 16 bytes, so this ends.
                while let Ok(Some(n)) = r.next_frame(&mut buf) {
                    assert!(n <= r.max_frame());
                }
                assert_eq!(r.next_frame(&mut buf).ok(), Some(None), "done after the end or an error");
            }
        }
    }
}
