//! The spool: requests the exporter could not deliver, kept on disk until a
//! replay (by this process once the server answers again, or by the next
//! one to open the same directory) gets them stored.
//!
//! # On disk
//!
//! A directory holds a `lock` file and segment files, `<n>.seg`, each
//! appended to by one process and never rewritten, with an `<n>.ack` file
//! beside it listing (by offset, little-endian `u64`s) the records the
//! server has since taken. A record is
//! `VSP1`, its payload's length and CRC-32 (little-endian `u32`s), then the
//! payload: the request's kind (`0` ingest, `1` PATCH), its attempts so
//! far, its spans, when it was written (Unix seconds, all little-endian),
//! its trace id (16 bytes) and its JSON body. A record whose length or
//! checksum is wrong (a write torn by `kill -9` or power loss, a damaged
//! file) is skipped and counted, and reading goes on at the next record
//! that checks out; a record is only ever acknowledged after the server
//! stored it or refused it for good.
//!
//! # One process at a time
//!
//! The process that opens a spool holds an exclusive lock on its `lock`
//! file until it exits: a second process with the same directory gets no
//! spool (logged once), so no record is ever replayed by two processes.
//!
//! # Bounds
//!
//! The segments together stay under the size cap: before a record would
//! pass it, the oldest segments are deleted, their records counted as
//! dropped for size. Records older than the age cap are dropped when they
//! come up for replay. Only the exporter thread reads and writes the spool;
//! a full disk, a read-only directory or a corrupt file is logged once and
//! counted, never a panic or a stall.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_core::export::{Replay, Settled};
use vigil_core::transport::{Request, RequestKind};
use vigil_core::{Counters, SpoolDrop, TraceId};

const MAGIC: &[u8; 4] = b"VSP1";
/// Magic, length and checksum.
const HEADER: usize = 12;
/// Kind, attempts, spans, time written and trace id.
const FIXED: usize = 1 + 4 + 4 + 8 + 16;
/// A segment is closed for appends past this size (or an eighth of the
/// cap, whichever is smaller), so that the oldest can be deleted whole.
const SEGMENT_BYTES: u64 = 4 << 20;
/// How long a replay that used up its attempts waits before the next.
const REPLAY_AGAIN: Duration = Duration::from_secs(30);

/// The spool's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpoolSettings {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) max_age: Duration,
}

/// Smallest spool size cap accepted.
pub(crate) const MIN_SPOOL_BYTES: u64 = 1024;

impl SpoolSettings {
    /// The spool in `dir`, 64 MiB and 7 days at most.
    pub(crate) fn new(dir: PathBuf) -> Self {
        SpoolSettings {
            dir,
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(7 * 86_400),
        }
    }
}

/// One record's place and what it says about itself.
#[derive(Clone, Copy, Debug)]
struct Entry {
    offset: u64,
    len: u32,
    kind: RequestKind,
    attempts: u32,
    spans: u32,
    written_at: u64,
    trace_id: TraceId,
    done: bool,
}

struct Segment {
    seq: u32,
    file: File,
    bytes: u64,
    entries: Vec<Entry>,
    /// Records not yet acknowledged.
    live: usize,
    ack: Option<File>,
}

/// A spool directory opened by this process (see the module docs).
pub(crate) struct Spool {
    settings: SpoolSettings,
    _lock: File,
    /// Oldest first; the last may be this process's own, appended to.
    segments: VecDeque<Segment>,
    /// Whether the last segment is this process's, open for appends.
    appending: bool,
    /// The number of the next segment: past every one seen in the directory.
    next_seq: u32,
    bytes: u64,
    /// Records to replay, in order, by ticket.
    pending: VecDeque<u64>,
    /// Records whose replay used up its attempts, and when to try again.
    later: Vec<(Instant, u64)>,
    /// Records handed to the exporter and not settled.
    in_flight: HashSet<u64>,
    /// Records in flight whose segment was dropped for size, with their
    /// spans: counted as dropped if their replay does not go through.
    orphans: HashMap<u64, u32>,
    warned: bool,
}

/// A record to replay, read back.
pub(crate) struct Spooled {
    pub(crate) ticket: u64,
    kind: RequestKind,
    trace_id: TraceId,
    spans: usize,
    attempts: u32,
    body: String,
}

impl Spooled {
    pub(crate) fn as_replay(&self) -> Replay<'_> {
        Replay {
            kind: self.kind,
            trace_id: self.trace_id,
            body: &self.body,
            spans: self.spans,
            attempts: self.attempts,
            ticket: self.ticket,
        }
    }
}

fn ticket(seq: u32, index: usize) -> u64 {
    (u64::from(seq) << 32) | index as u64
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Spool {
    /// Opens (creating it if need be) the spool in `settings.dir`, reading
    /// what earlier processes left there; corrupt records are counted in
    /// `counters`. `None` (logged) when the directory cannot be used or
    /// another process holds it.
    pub(crate) fn open(settings: SpoolSettings, counters: &Counters) -> Option<Spool> {
        match Spool::try_open(settings.clone(), counters) {
            Ok(spool) => Some(spool),
            Err(e) => {
                log::warn!(
                    "vigil: cannot use the spool directory {}: {e}; spans the server cannot take are dropped and counted",
                    settings.dir.display()
                );
                None
            }
        }
    }

    fn try_open(settings: SpoolSettings, counters: &Counters) -> io::Result<Spool> {
        fs::create_dir_all(&settings.dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(settings.dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(io::Error::other("another process is using it"));
        }
        let names: Vec<String> = fs::read_dir(&settings.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let numbered = |ext: &str| -> Vec<u32> {
            let suffix = format!(".{ext}");
            names
                .iter()
                .filter_map(|n| n.strip_suffix(&suffix)?.parse().ok())
                .collect()
        };
        let mut seqs = numbered("seg");
        seqs.sort_unstable();
        // Past any number in use, an acknowledgement file left alone included.
        let next_seq = seqs
            .iter()
            .chain(&numbered("ack"))
            .max()
            .map_or(1, |last| last + 1);
        let mut spool = Spool {
            settings,
            _lock: lock,
            segments: VecDeque::new(),
            appending: false,
            next_seq,
            bytes: 0,
            pending: VecDeque::new(),
            later: Vec::new(),
            in_flight: HashSet::new(),
            orphans: HashMap::new(),
            warned: false,
        };
        for seq in seqs {
            match spool.read_segment(seq, counters) {
                Ok(segment) => {
                    spool.bytes += segment.bytes;
                    spool.pending.extend(
                        (segment.entries.iter().enumerate())
                            .filter(|(_, e)| !e.done)
                            .map(|(i, _)| ticket(seq, i)),
                    );
                    spool.segments.push_back(segment);
                }
                Err(e) => log::warn!("vigil: cannot read spool segment {seq}: {e}"),
            }
        }
        Ok(spool)
    }

    fn path(&self, seq: u32, ext: &str) -> PathBuf {
        self.settings.dir.join(format!("{seq:010}.{ext}"))
    }

    /// Reads segment `seq` and its acknowledgements.
    fn read_segment(&self, seq: u32, counters: &Counters) -> io::Result<Segment> {
        let path = self.path(seq, "seg");
        let data = fs::read(&path)?;
        let (entries, corrupt) = scan(&data);
        if corrupt > 0 {
            counters.count_spool_dropped(SpoolDrop::Corrupt, corrupt);
            log::warn!(
                "vigil: skipped {corrupt} corrupt record(s) in {}",
                path.display()
            );
        }
        let mut entries = entries;
        if let Ok(acks) = fs::read(self.path(seq, "ack")) {
            // A torn last acknowledgement is ignored: its record is replayed
            // again, and found stored.
            let done: HashSet<u64> = acks
                .chunks_exact(8)
                .map(|offset| u64::from_le_bytes(offset.try_into().unwrap_or_default()))
                .collect();
            for e in &mut entries {
                e.done = done.contains(&e.offset);
            }
        }
        let live = entries.iter().filter(|e| !e.done).count();
        Ok(Segment {
            seq,
            file: File::open(&path)?,
            bytes: data.len() as u64,
            entries,
            live,
            ack: None,
        })
    }

    /// Appends `request` (after `attempts` attempts); false, and logged
    /// once, when it could not be kept.
    pub(crate) fn put(
        &mut self,
        request: &Request<'_>,
        attempts: u32,
        counters: &Counters,
    ) -> bool {
        match self.try_put(request, attempts, counters) {
            Ok(()) => true,
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    log::warn!(
                        "vigil: cannot write to the spool directory {}: {e}; what does not fit is dropped and counted",
                        self.settings.dir.display()
                    );
                }
                false
            }
        }
    }

    fn try_put(
        &mut self,
        request: &Request<'_>,
        attempts: u32,
        counters: &Counters,
    ) -> io::Result<()> {
        let written_at = unix_now();
        let record = encode(request, attempts, written_at);
        let len = record.len() as u64;
        if len > self.settings.max_bytes {
            return Err(io::Error::other(
                "a request is larger than the spool's size cap",
            ));
        }
        // Room under the cap, made by dropping the oldest segments whole.
        while self.bytes + len > self.settings.max_bytes
            && self.segments.len() > usize::from(self.appending)
        {
            self.drop_oldest(counters);
        }
        if self.bytes + len > self.settings.max_bytes {
            // Only this process's own segment is left: start another.
            self.appending = false;
            while self.bytes + len > self.settings.max_bytes && !self.segments.is_empty() {
                self.drop_oldest(counters);
            }
        }
        let segment_cap = SEGMENT_BYTES.min(self.settings.max_bytes / 8).max(1);
        if !self.appending || self.segments.back().is_none_or(|s| s.bytes >= segment_cap) {
            self.start_segment()?;
        }
        let segment = self
            .segments
            .back_mut()
            .expect("a segment was just started");
        let mut file = &segment.file;
        if let Err(e) = file.write_all(&record) {
            // Nothing half-written is left behind.
            let _ = segment.file.set_len(segment.bytes);
            return Err(e);
        }
        let index = segment.entries.len();
        segment.entries.push(Entry {
            offset: segment.bytes,
            len: (record.len() - HEADER) as u32,
            kind: request.kind,
            attempts,
            spans: request.spans as u32,
            written_at,
            trace_id: request.trace_id,
            done: false,
        });
        segment.bytes += len;
        segment.live += 1;
        self.bytes += len;
        self.pending.push_back(ticket(segment.seq, index));
        Ok(())
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let _ = fs::remove_file(self.path(seq, "ack"));
        let path = self.path(seq, "seg");
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(path)?;
        self.segments.push_back(Segment {
            seq,
            file,
            bytes: 0,
            entries: Vec::new(),
            live: 0,
            ack: None,
        });
        self.appending = true;
        Ok(())
    }

    /// Deletes the oldest segment, counting what it still held as dropped
    /// for size.
    fn drop_oldest(&mut self, counters: &Counters) {
        let Some(segment) = self.segments.pop_front() else {
            return;
        };
        self.forget(&segment);
        // Those in flight are counted when their replay settles.
        let spans: usize = (segment.entries.iter().enumerate())
            .filter(|(i, e)| !e.done && !self.orphans.contains_key(&ticket(segment.seq, *i)))
            .map(|(_, e)| e.spans as usize)
            .sum();
        counters.count_spool_dropped(SpoolDrop::Size, spans);
        self.bytes -= segment.bytes;
        self.delete(segment.seq);
        if self.segments.is_empty() {
            self.appending = false;
        }
    }

    /// Forgets the tickets of `segment`; those in flight become orphans.
    fn forget(&mut self, segment: &Segment) {
        let of = |t: &u64| (t >> 32) as u32 == segment.seq;
        self.pending.retain(|t| !of(t));
        self.later.retain(|(_, t)| !of(t));
        for t in self.in_flight.iter().filter(|t| of(t)) {
            let spans = segment.entries[(t & 0xffff_ffff) as usize].spans;
            self.orphans.insert(*t, spans);
        }
        self.in_flight.retain(|t| !of(t));
    }

    fn delete(&self, seq: u32) {
        // The acknowledgements first: alone, they could mark the records of
        // a later segment of the same number as done.
        let _ = fs::remove_file(self.path(seq, "ack"));
        let _ = fs::remove_file(self.path(seq, "seg"));
    }

    /// The next record to replay at `now`, read back, or `None`; records
    /// past the age cap are dropped (and counted) on the way. It stays
    /// waiting until [`Spool::claim`].
    pub(crate) fn next(&mut self, now: Instant, counters: &Counters) -> Option<Spooled> {
        let due = self.later.iter().position(|(at, _)| *at <= now);
        if let Some(i) = due {
            let (_, t) = self.later.swap_remove(i);
            self.pending.push_front(t);
        }
        let oldest = unix_now().saturating_sub(self.settings.max_age.as_secs());
        let mut at = 0;
        while let Some(&t) = self.pending.get(at) {
            let Some((segment, entry)) = self.entry(t) else {
                self.pending.remove(at);
                continue;
            };
            if entry.written_at < oldest {
                counters.count_spool_dropped(SpoolDrop::Age, entry.spans as usize);
                self.pending.remove(at);
                self.acknowledge(t);
                continue;
            }
            if entry.kind == RequestKind::Patch && self.ingest_out(entry.trace_id) {
                // A status goes only after its trace's spans.
                at += 1;
                continue;
            }
            let mut payload = vec![0u8; entry.len as usize];
            let read = segment
                .file
                .read_exact_at(&mut payload, entry.offset + HEADER as u64);
            let body = read
                .ok()
                .and_then(|()| String::from_utf8(payload.split_off(FIXED)).ok());
            let Some(body) = body else {
                // Changed on disk since it was read: not replayed.
                counters.count_spool_dropped(SpoolDrop::Corrupt, 1);
                self.pending.remove(at);
                self.acknowledge(t);
                continue;
            };
            return Some(Spooled {
                ticket: t,
                kind: entry.kind,
                trace_id: entry.trace_id,
                spans: entry.spans as usize,
                attempts: entry.attempts,
                body,
            });
        }
        None
    }

    /// Whether a record waits for a replay at `now`.
    pub(crate) fn has_due(&self, now: Instant) -> bool {
        !self.pending.is_empty() || self.later.iter().any(|(at, _)| *at <= now)
    }

    /// Whether an ingest of `trace_id` is out for a replay, or waits for
    /// another after one that did not go through.
    fn ingest_out(&self, trace_id: TraceId) -> bool {
        let ingest_of = |t: &u64| {
            self.entry(*t)
                .is_some_and(|(_, e)| e.kind == RequestKind::Ingest && e.trace_id == trace_id)
        };
        self.in_flight.iter().any(ingest_of) || self.later.iter().any(|(_, t)| ingest_of(t))
    }

    /// The record `ticket` (from [`Spool::next`]) is with the exporter.
    pub(crate) fn claim(&mut self, ticket: u64) {
        if let Some(at) = self.pending.iter().position(|t| *t == ticket) {
            self.pending.remove(at);
        }
        self.in_flight.insert(ticket);
    }

    /// What became of a replayed record.
    pub(crate) fn settle(&mut self, ticket: u64, settled: Settled, counters: &Counters) {
        if let Some(spans) = self.orphans.remove(&ticket) {
            // Its segment was dropped for size while it was out.
            if settled == Settled::Again {
                counters.count_spool_dropped(SpoolDrop::Size, spans as usize);
            }
            return;
        }
        if !self.in_flight.remove(&ticket) {
            return;
        }
        match settled {
            Settled::Done => self.acknowledge(ticket),
            Settled::Again => self.later.push((Instant::now() + REPLAY_AGAIN, ticket)),
        }
    }

    fn entry(&self, ticket: u64) -> Option<(&Segment, Entry)> {
        let seq = (ticket >> 32) as u32;
        let segment = self.segments.iter().find(|s| s.seq == seq)?;
        let entry = *segment.entries.get((ticket & 0xffff_ffff) as usize)?;
        (!entry.done).then_some((segment, entry))
    }

    /// Marks `ticket` done on disk; a segment with nothing left (and no
    /// more appends) is deleted.
    fn acknowledge(&mut self, ticket: u64) {
        let seq = (ticket >> 32) as u32;
        let index = (ticket & 0xffff_ffff) as u32;
        let ack_path = self.path(seq, "ack");
        let last = self.segments.back().map(|s| s.seq);
        let appending = self.appending;
        let Some(at) = self.segments.iter().position(|s| s.seq == seq) else {
            return;
        };
        let segment = &mut self.segments[at];
        let Some(entry) = segment.entries.get_mut(index as usize) else {
            return;
        };
        if entry.done {
            return;
        }
        entry.done = true;
        segment.live -= 1;
        if segment.live == 0 && !(appending && last == Some(seq)) {
            let segment = self.segments.remove(at).expect("found above");
            self.bytes -= segment.bytes;
            self.delete(seq);
            return;
        }
        let offset = entry.offset;
        if segment.ack.is_none() {
            segment.ack = open_ack(&ack_path);
        }
        if let Some(mut ack) = segment.ack.as_ref() {
            let _ = ack.write_all(&offset.to_le_bytes());
        }
    }

    /// At exit: this process's segment is made durable, or deleted if
    /// nothing in it waits; replays still out whose segment was dropped for
    /// size are counted as dropped.
    pub(crate) fn close(mut self, counters: &Counters) {
        let orphaned: u32 = self.orphans.values().sum();
        counters.count_spool_dropped(SpoolDrop::Size, orphaned as usize);
        if !self.appending {
            return;
        }
        self.appending = false;
        if let Some(segment) = self.segments.back() {
            if segment.live == 0 {
                self.delete(segment.seq);
            } else {
                let _ = segment.file.sync_data();
            }
        }
    }
}

/// A segment's acknowledgements, opened for appends after its whole entries
/// (a torn last one, from a crash, is cut off).
fn open_ack(path: &std::path::Path) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .ok()?;
    let len = file.metadata().ok()?.len();
    if len % 8 != 0 {
        file.set_len(len - len % 8).ok()?;
    }
    Some(file)
}

/// `request` as a record.
fn encode(request: &Request<'_>, attempts: u32, written_at: u64) -> Vec<u8> {
    let mut payload = Vec::with_capacity(FIXED + request.body.len());
    payload.push(match request.kind {
        RequestKind::Ingest => 0,
        RequestKind::Patch => 1,
    });
    payload.extend_from_slice(&attempts.to_le_bytes());
    payload.extend_from_slice(&(request.spans as u32).to_le_bytes());
    payload.extend_from_slice(&written_at.to_le_bytes());
    payload.extend_from_slice(&request.trace_id.to_bytes());
    payload.extend_from_slice(request.body);
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(MAGIC);
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// The records in `data` that check out, and how many did not: after a bad
/// one, reading goes on at the next place where a record checks out.
fn scan(data: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut corrupt = 0;
    let mut at = 0;
    let mut in_bad_run = false;
    while at < data.len() {
        match parse(data, at) {
            Some((entry, next)) => {
                entries.push(entry);
                at = next;
                in_bad_run = false;
            }
            None => {
                if !in_bad_run {
                    corrupt += 1;
                    in_bad_run = true;
                }
                at += 1;
            }
        }
    }
    (entries, corrupt)
}

/// The record at `at`, and where the next starts, if it checks out.
fn parse(data: &[u8], at: usize) -> Option<(Entry, usize)> {
    let header = data.get(at..at + HEADER)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let start = at + HEADER;
    let payload = data.get(start..start.checked_add(len as usize)?)?;
    if payload.len() < FIXED || crc32fast::hash(payload) != crc {
        return None;
    }
    let kind = match payload[0] {
        0 => RequestKind::Ingest,
        1 => RequestKind::Patch,
        _ => return None,
    };
    let attempts = u32::from_le_bytes(payload[1..5].try_into().ok()?);
    let spans = u32::from_le_bytes(payload[5..9].try_into().ok()?);
    let written_at = u64::from_le_bytes(payload[9..17].try_into().ok()?);
    let trace_id = TraceId::from_bytes(payload[17..33].try_into().ok()?);
    let entry = Entry {
        offset: at as u64,
        len,
        kind,
        attempts,
        spans,
        written_at,
        trace_id,
        done: false,
    };
    Some((entry, start + len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(name: &str) -> SpoolSettings {
        let dir =
            std::env::temp_dir().join(format!("vigil-spool-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        SpoolSettings::new(dir)
    }

    fn request(body: &[u8]) -> Request<'_> {
        Request {
            kind: RequestKind::Ingest,
            trace_id: TraceId::from_bytes([1; 16]),
            body,
            spans: 1,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn an_acknowledgement_file_left_alone_never_marks_a_new_segment_done() {
        let settings = settings("orphan-ack");
        let counters = Counters::new();
        // A crash left `1.ack` without its segment.
        fs::create_dir_all(&settings.dir).unwrap();
        fs::write(
            settings.dir.join(format!("{:010}.ack", 1)),
            0u64.to_le_bytes(),
        )
        .unwrap();
        let mut spool = Spool::open(settings.clone(), &counters).unwrap();
        assert!(spool.put(&request(b"{}"), 0, &counters));
        spool.close(&counters);
        let mut spool = Spool::open(settings.clone(), &counters).unwrap();
        let record = spool
            .next(Instant::now(), &counters)
            .expect("still to replay");
        assert_eq!(record.body, "{}");
        fs::remove_dir_all(&settings.dir).unwrap();
    }

    #[test]
    fn acknowledgements_name_records_by_offset_and_a_torn_one_is_cut_off() {
        let settings = settings("acks");
        let counters = Counters::new();
        let mut spool = Spool::open(settings.clone(), &counters).unwrap();
        for body in [&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"] {
            assert!(spool.put(&request(body), 0, &counters));
        }
        let first = spool.next(Instant::now(), &counters).unwrap();
        spool.claim(first.ticket);
        spool.settle(first.ticket, Settled::Done, &counters);
        spool.close(&counters);
        // A torn write after the whole acknowledgement.
        let ack = fs::read_dir(&settings.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "ack"))
            .unwrap();
        let mut file = OpenOptions::new().append(true).open(&ack).unwrap();
        file.write_all(&[7, 7, 7]).unwrap();
        let mut spool = Spool::open(settings.clone(), &counters).unwrap();
        let next = spool.next(Instant::now(), &counters).unwrap();
        assert_eq!(next.body, r#"{"b":2}"#);
        spool.claim(next.ticket);
        spool.settle(next.ticket, Settled::Done, &counters);
        assert_eq!(
            fs::metadata(&ack).unwrap().len(),
            16,
            "cut to whole entries, then one more"
        );
        let last = spool.next(Instant::now(), &counters).unwrap();
        assert_eq!(last.body, r#"{"c":3}"#);
        fs::remove_dir_all(&settings.dir).unwrap();
    }
}
