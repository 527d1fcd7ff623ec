//! The lease index: `<network dir>/.cni-rs.index`, a cache of the lease files that makes ADD,
//! DEL and CHECK cost independent of the number of leases.
//!
//! It answers two questions without reading the lease files:
//!
//! * **who**: the addresses whose lease file holds a given owner (`<id>\r\n<ifname>`, or a
//!   legacy `<id>`) — an open-addressing hash table keyed by a hash of the file's trimmed
//!   content. Every positive answer is checked against the lease file before it is used, so a
//!   hash collision or a damaged index can never make us release or report a foreign lease;
//! * **where**: the first free address at or after a given one — a sparse bitmap of occupied
//!   addresses in blocks of 64, plus three levels of "this child block is full" bitmaps, stored
//!   in the same table, so a run of any length of taken addresses is skipped in a few lookups.
//!
//! # Layout
//!
//! One 4096-byte header, then `capacity` (a power of two) slots of 32 bytes, read and written in
//! place with `pread`/`pwrite` (a few slots per operation):
//!
//! ```text
//! header   magic "cni-rs host-local index\0", format, state (clean/dirty), generation,
//!          boot id, capacity, counters, garbage samples, zeros, SHA-256 of the fields (8 bytes)
//! slot     kind (empty, lease, garbage lease, bits, tombstone), level, check (FNV-1a of the
//!          slot and its position), owner hash or bitmap (u64), address or block (u128)
//! ```
//!
//! The magic holds a NUL, so the file's trimmed content never equals a lease owner: Go's
//! host-local, which reads every file of the directory, never matches or deletes it.
//!
//! # Why it cannot lie
//!
//! The index is trusted only when its header is intact (magic, format, checksum, size), says
//! `clean`, carries the current boot ID, **and the network directory's mtime equals the stamp
//! of the header's generation**: a time before 1970 that only we ever set (`futimens`), as the
//! last step of every change, under the `flock` that Go's host-local takes too. Every change Go
//! (or anyone) makes to the leases creates, removes or renames a directory entry, which sets
//! the directory's mtime to the current time — never before 1970, as the real-time clock cannot
//! be set there. Lease files are never rewritten in place (Go creates them with `O_EXCL`, we by
//! linking a complete file). So "mtime = stamp" proves that no lease appeared or vanished since
//! we last wrote the index, whatever ran in between; anything else rebuilds it from the lease
//! files. A crash between a change and its stamp leaves the directory's mtime at the change
//! (and the header `dirty`), so the next operation rebuilds. A stale copy written back in place
//! carries an older generation (generations grow with every commit; every rebuild starts a new
//! chain at a random one); one renamed into place changes the mtime; a reboot changes the boot
//! ID (writes since the last sync may be lost on power failure).

use std::collections::HashMap;
use std::fs::{self, File, FileTimes};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::fault;
use super::store::replace_file;

/// The index file in the network directory.
pub(crate) const INDEX_NAME: &str = ".cni-rs.index";

const MAGIC: &[u8; 24] = b"cni-rs host-local index\0";
const FORMAT: u32 = 1;
const HEADER_LEN: usize = 4096;
/// The header's fields end here; the rest of the page is zero.
const HEADER_USED: usize = 96 + 16 * SAMPLES;
const SLOT_LEN: usize = 32;
const PAGE_LEN: usize = 4096;
const SLOTS_PER_PAGE: u64 = (PAGE_LEN / SLOT_LEN) as u64;
const MIN_CAPACITY: u64 = 128;
/// Bitmap levels: level `l` bit `b` of block `k` covers the 64^l addresses starting at
/// `(k * 64 + b) * 64^l`; above level 0 a set bit means "that child block is full".
const LEVELS: usize = 4;
const SAMPLES: usize = 8;
/// Generations are stamped modulo this (seconds before 1970).
const STAMP_SPAN: u64 = 1 << 31;

const KIND_EMPTY: u8 = 0;
const KIND_LEASE: u8 = 1;
const KIND_GARBAGE: u8 = 2;
const KIND_BITS: u8 = 3;
const KIND_TOMBSTONE: u8 = 4;

/// An address as a 128-bit number: IPv4 as IPv4-mapped IPv6, so both families share one space
/// without overlapping.
pub(crate) fn addr_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`addr_key`] (IPv4-mapped keys are IPv4 addresses).
pub(crate) fn key_addr(key: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(key)).to_canonical()
}

/// The hash of a lease file's trimmed content: what the owner table is keyed by.
pub(crate) fn owner_hash(content: &str) -> u64 {
    let digest = Sha256::digest(content.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// One lease file as the index records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) addr: u128,
    pub(crate) owner: u64,
    /// Empty, unreadable or malformed: occupies its address, belongs to nobody.
    pub(crate) garbage: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Empty,
    Tombstone,
    Lease(Entry),
    Bits { level: u8, block: u128, bits: u64 },
}

fn fnv1a32(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in parts {
        for b in *part {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

fn slot_check(pos: u64, raw: &[u8; SLOT_LEN]) -> u32 {
    fnv1a32(&[&pos.to_le_bytes(), &raw[0..4], &raw[8..32]])
}

impl Slot {
    fn encode(self, pos: u64) -> [u8; SLOT_LEN] {
        let mut raw = [0u8; SLOT_LEN];
        let (kind, level, word, big) = match self {
            Slot::Empty => return raw,
            Slot::Tombstone => (KIND_TOMBSTONE, 0, 0, 0),
            Slot::Lease(e) => (if e.garbage { KIND_GARBAGE } else { KIND_LEASE }, 0, e.owner, e.addr),
            Slot::Bits { level, block, bits } => (KIND_BITS, level, bits, block),
        };
        raw[0] = kind;
        raw[1] = level;
        raw[8..16].copy_from_slice(&word.to_le_bytes());
        raw[16..32].copy_from_slice(&big.to_be_bytes());
        let check = slot_check(pos, &raw);
        raw[4..8].copy_from_slice(&check.to_le_bytes());
        raw
    }

    fn decode(pos: u64, raw: &[u8; SLOT_LEN]) -> Result<Self, String> {
        if raw.iter().all(|b| *b == 0) {
            return Ok(Slot::Empty);
        }
        let check = u32::from_le_bytes(raw[4..8].try_into().expect("4 bytes"));
        if check != slot_check(pos, raw) || raw[2..4] != [0, 0] {
            return Err(format!("slot {pos} is damaged"));
        }
        let word = u64::from_le_bytes(raw[8..16].try_into().expect("8 bytes"));
        let big = u128::from_be_bytes(raw[16..32].try_into().expect("16 bytes"));
        match (raw[0], raw[1]) {
            (KIND_TOMBSTONE, 0) if word == 0 && big == 0 => Ok(Slot::Tombstone),
            (KIND_LEASE | KIND_GARBAGE, 0) => {
                Ok(Slot::Lease(Entry { addr: big, owner: word, garbage: raw[0] == KIND_GARBAGE }))
            }
            (KIND_BITS, level) if usize::from(level) < LEVELS && word != 0 => {
                Ok(Slot::Bits { level, block: big, bits: word })
            }
            _ => Err(format!("slot {pos} is damaged")),
        }
    }
}

fn mix64(mut x: u64) -> u64 {
    // splitmix64's finaliser: a fixed, well-spread permutation (the table layout must not
    // depend on the build).
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn bits_hash(level: u8, block: u128) -> u64 {
    // Truncations are intended: both halves of the block number are mixed in.
    mix64(mix64(block as u64) ^ mix64((block >> 64) as u64 ^ (u64::from(level) << 56)))
}

fn owner_pos_hash(owner: u64) -> u64 {
    mix64(owner ^ 0x5bd1_e995)
}

/// Where a lease record lives: by owner, so all leases of an owner are one probe sequence away;
/// garbage (never looked up by owner, and often sharing one: empty files) by owner and address,
/// so a crash storm does not pile up in one cluster.
fn lease_pos_hash(e: &Entry) -> u64 {
    if e.garbage {
        // Truncation is intended: both halves of the address are mixed in.
        owner_pos_hash(e.owner ^ mix64(e.addr as u64) ^ mix64((e.addr >> 64) as u64))
    } else {
        owner_pos_hash(e.owner)
    }
}

fn slot_hash(slot: &Slot) -> u64 {
    match slot {
        Slot::Lease(e) => lease_pos_hash(e),
        Slot::Bits { level, block, .. } => bits_hash(*level, *block),
        Slot::Empty | Slot::Tombstone => 0,
    }
}

/// The stamp of generation `g`: a directory mtime no kernel ever sets (before 1970).
pub(crate) fn stamp(generation: u64) -> (i64, i64) {
    // The value is below 2^31: the conversion cannot fail.
    (-1 - i64::try_from(generation % STAMP_SPAN).expect("below 2^31"), 0)
}

fn stamp_time(generation: u64) -> SystemTime {
    let (secs, _) = stamp(generation);
    UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`); all zeros when unknown, which no
/// index is ever trusted with.
pub(crate) fn boot_id() -> [u8; 16] {
    let text = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    let mut id = [0u8; 16];
    if hex.len() == 32 {
        for (i, byte) in id.iter_mut().enumerate() {
            match u8::from_str_radix(&hex[2 * i..2 * i + 2], 16) {
                Ok(b) => *byte = b,
                Err(_) => return [0; 16],
            }
        }
    }
    id
}

/// The decoded header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    clean: bool,
    generation: u64,
    boot_id: [u8; 16],
    capacity: u64,
    used: u64,
    tombstones: u64,
    leases: u64,
    garbage: u64,
    samples: [u128; SAMPLES],
}

impl Header {
    fn new(generation: u64, boot_id: [u8; 16], capacity: u64) -> Self {
        Self {
            clean: true,
            generation,
            boot_id,
            capacity,
            used: 0,
            tombstones: 0,
            leases: 0,
            garbage: 0,
            samples: [0; SAMPLES],
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0..24].copy_from_slice(MAGIC);
        b[24..28].copy_from_slice(&FORMAT.to_le_bytes());
        b[28..32].copy_from_slice(&(if self.clean { 1u32 } else { 2u32 }).to_le_bytes());
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        b[40..56].copy_from_slice(&self.boot_id);
        for (i, v) in [self.capacity, self.used, self.tombstones, self.leases, self.garbage].iter().enumerate() {
            b[56 + 8 * i..64 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        for (i, s) in self.samples.iter().enumerate() {
            b[96 + 16 * i..112 + 16 * i].copy_from_slice(&s.to_be_bytes());
        }
        let sum = Sha256::digest(&b[..HEADER_USED]);
        b[HEADER_LEN - 8..].copy_from_slice(&sum[..8]);
        b
    }

    fn decode(b: &[u8]) -> Result<Self, &'static str> {
        if b.len() < HEADER_LEN || b[0..24] != MAGIC[..] {
            return Err("not an index file");
        }
        let sum = Sha256::digest(&b[..HEADER_USED]);
        if b[HEADER_LEN - 8..HEADER_LEN] != sum[..8] || b[HEADER_USED..HEADER_LEN - 8].iter().any(|x| *x != 0) {
            return Err("damaged header");
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let generation = u64_at(32);
        if u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")) != FORMAT {
            return Err("another format version");
        }
        let clean = match u32::from_le_bytes(b[28..32].try_into().expect("4 bytes")) {
            1 => true,
            2 => false,
            _ => return Err("damaged header"),
        };
        let mut samples = [0u128; SAMPLES];
        for (i, s) in samples.iter_mut().enumerate() {
            *s = u128::from_be_bytes(b[96 + 16 * i..112 + 16 * i].try_into().expect("16 bytes"));
        }
        let h = Self {
            clean,
            generation,
            boot_id: b[40..56].try_into().expect("16 bytes"),
            capacity: u64_at(56),
            used: u64_at(64),
            tombstones: u64_at(72),
            leases: u64_at(80),
            garbage: u64_at(88),
            samples,
        };
        let sane = h.capacity.is_power_of_two()
            && (MIN_CAPACITY..=1 << 32).contains(&h.capacity)
            && h.used + h.tombstones < h.capacity
            && h.leases <= h.used
            && h.garbage <= h.leases;
        if !sane {
            return Err("damaged header");
        }
        Ok(h)
    }

    fn file_len(&self) -> u64 {
        HEADER_LEN as u64 + self.capacity * SLOT_LEN as u64
    }
}

/// Checks a decoded header against the directory it describes.
fn check_current(h: &Header, file_len: u64, dir_mtime: (i64, i64), boot: &[u8; 16]) -> Result<(), &'static str> {
    if file_len != h.file_len() {
        return Err("its size does not match its header");
    }
    if !h.clean {
        return Err("an operation was interrupted while changing it");
    }
    if *boot == [0; 16] || h.boot_id != *boot {
        return Err("it was written before the last boot");
    }
    if dir_mtime != stamp(h.generation) {
        return Err("the directory changed since it was written");
    }
    Ok(())
}

#[derive(Debug)]
enum Backing {
    File(File),
    /// Used when the index cannot be written (read-only store, full disk): this operation
    /// still gets an index; the next one rebuilds.
    Memory(Vec<u8>),
}

/// An open, trusted index (held under the store's lock).
#[derive(Debug)]
pub(crate) struct Index {
    backing: Backing,
    header: Header,
    pages: HashMap<u64, Vec<u8>>,
}

fn io_err(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The directory's mtime as (seconds, nanoseconds).
pub(crate) fn dir_mtime(dir: &File) -> io::Result<(i64, i64)> {
    let m = dir.metadata()?;
    Ok((m.mtime(), m.mtime_nsec()))
}

/// A capacity keeping the load at most one half after inserting `records`.
fn capacity_for(records: u64) -> u64 {
    (records.saturating_mul(2)).max(MIN_CAPACITY).next_power_of_two()
}

/// Places `slot` in a slot image (no header) of `capacity` slots; `false` when full.
fn place(image: &mut [u8], capacity: u64, slot: Slot) -> bool {
    let mask = capacity - 1;
    let mut pos = slot_hash(&slot) & mask;
    for _ in 0..capacity {
        // Positions are below the capacity, which fits the image: the casts are lossless.
        let off = pos as usize * SLOT_LEN;
        if image[off] == KIND_EMPTY && image[off..off + SLOT_LEN].iter().all(|b| *b == 0) {
            image[off..off + SLOT_LEN].copy_from_slice(&slot.encode(pos));
            return true;
        }
        pos = (pos + 1) & mask;
    }
    false
}

/// The bitmap records describing the occupied addresses `addrs`.
fn bitmaps(addrs: impl Iterator<Item = u128>) -> Vec<Slot> {
    let mut levels: Vec<HashMap<u128, u64>> = vec![HashMap::new(); LEVELS];
    for a in addrs {
        *levels[0].entry(a >> 6).or_default() |= 1 << (a & 63);
    }
    for l in 1..LEVELS {
        let full: Vec<u128> = levels[l - 1].iter().filter(|(_, b)| **b == u64::MAX).map(|(k, _)| *k).collect();
        for child in full {
            *levels[l].entry(child >> 6).or_default() |= 1 << (child & 63);
        }
    }
    let mut out = Vec::new();
    for (l, map) in levels.into_iter().enumerate() {
        // `l` < LEVELS = 4.
        let level = l as u8;
        out.extend(map.into_iter().map(|(block, bits)| Slot::Bits { level, block, bits }));
    }
    out
}

impl Index {
    /// Opens the index of `dir` if it can be trusted (see the module docs); else says why not.
    pub(crate) fn load(dir: &Path, dir_file: &File) -> Result<Self, String> {
        let file = match File::options().read(true).write(true).open(dir.join(INDEX_NAME)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err("there is none".into()),
            Err(e) => return Err(format!("cannot open it: {e}")),
        };
        let mut head = vec![0u8; HEADER_LEN];
        if file.read_exact_at(&mut head, 0).is_err() {
            return Err("it is truncated".into());
        }
        let header = Header::decode(&head)?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mtime = dir_mtime(dir_file).map_err(|e| e.to_string())?;
        check_current(&header, len, mtime, &boot_id())?;
        Ok(Self { backing: Backing::File(file), header, pages: HashMap::new() })
    }

    /// Builds the index of the lease files `entries` (a full scan of `dir`, under the lock),
    /// replaces the file atomically and stamps the directory.
    pub(crate) fn build(dir: &Path, dir_file: &File, generation: u64, entries: &[Entry]) -> Self {
        let mut records: Vec<Slot> = entries.iter().map(|e| Slot::Lease(*e)).collect();
        records.extend(bitmaps(entries.iter().map(|e| e.addr)));
        let mut header = Header::new(generation, boot_id(), capacity_for(records.len() as u64));
        header.used = records.len() as u64;
        header.leases = entries.len() as u64;
        for e in entries.iter().filter(|e| e.garbage) {
            header.note_garbage(e.addr);
        }
        let index = Self::from_records(dir, header, records);
        if let Backing::File(_) = index.backing
            && let Err(e) = index.stamp(dir_file)
        {
            cni_sdk::tracing::debug!("cannot stamp {}: {e}", dir.display());
        }
        index
    }

    /// Writes a fresh file holding `records` under `header` (temporary file, then rename);
    /// keeps it in memory when it cannot be written.
    fn from_records(dir: &Path, header: Header, records: Vec<Slot>) -> Self {
        let capacity = header.capacity;
        let mut image = vec![0u8; (capacity as usize) * SLOT_LEN];
        for r in records {
            // The capacity is at least twice the number of records.
            assert!(place(&mut image, capacity, r), "index capacity below its records");
        }
        let mut bytes = header.encode();
        bytes.extend_from_slice(&image);
        let backing = match replace_file(dir, INDEX_NAME, &bytes, "index")
            .and_then(|()| File::options().read(true).write(true).open(dir.join(INDEX_NAME)))
        {
            Ok(f) => Backing::File(f),
            Err(e) => {
                cni_sdk::tracing::warn!("cannot write the lease index of {}: {e}; using it in memory", dir.display());
                Backing::Memory(bytes)
            }
        };
        Self { backing, header, pages: HashMap::new() }
    }

    /// The header (for tests and logs).
    #[cfg(test)]
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        match &self.backing {
            Backing::File(f) => f.read_exact_at(buf, off),
            Backing::Memory(v) => {
                let start = usize::try_from(off).map_err(|_| io_err("offset"))?;
                let src = v.get(start..start + buf.len()).ok_or_else(|| io_err("index truncated"))?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }

    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        match &mut self.backing {
            Backing::File(f) => f.write_all_at(buf, off),
            Backing::Memory(v) => {
                let start = usize::try_from(off).map_err(|_| io_err("offset"))?;
                v.get_mut(start..start + buf.len()).ok_or_else(|| io_err("index truncated"))?.copy_from_slice(buf);
                Ok(())
            }
        }
    }

    fn slot(&mut self, pos: u64) -> io::Result<Slot> {
        let page = pos / SLOTS_PER_PAGE;
        if !self.pages.contains_key(&page) {
            let mut buf = vec![0u8; PAGE_LEN];
            self.read_at(&mut buf, HEADER_LEN as u64 + page * PAGE_LEN as u64)?;
            self.pages.insert(page, buf);
        }
        // In-page offsets are below PAGE_LEN.
        let off = (pos % SLOTS_PER_PAGE) as usize * SLOT_LEN;
        let raw: [u8; SLOT_LEN] = self.pages[&page][off..off + SLOT_LEN].try_into().expect("slot");
        Slot::decode(pos, &raw).map_err(io_err)
    }

    fn put(&mut self, pos: u64, slot: Slot) -> io::Result<()> {
        let raw = slot.encode(pos);
        self.write_at(&raw, HEADER_LEN as u64 + pos * SLOT_LEN as u64)?;
        let page = pos / SLOTS_PER_PAGE;
        let off = (pos % SLOTS_PER_PAGE) as usize * SLOT_LEN;
        if let Some(p) = self.pages.get_mut(&page) {
            p[off..off + SLOT_LEN].copy_from_slice(&raw);
        }
        Ok(())
    }

    fn write_header(&mut self) -> io::Result<()> {
        let bytes = self.header.encode();
        self.write_at(&bytes, 0)
    }

    fn stamp(&self, dir_file: &File) -> io::Result<()> {
        dir_file.set_times(FileTimes::new().set_modified(stamp_time(self.header.generation)))?;
        if dir_mtime(dir_file)? != stamp(self.header.generation) {
            return Err(io::Error::other("the file system does not keep mtimes before 1970"));
        }
        Ok(())
    }

    /// Marks the index as being changed (before the first lease is created or removed).
    pub(crate) fn begin(&mut self) -> io::Result<()> {
        if self.header.clean {
            self.header.clean = false;
            self.write_header()?;
            fault::point("index:begun");
        }
        Ok(())
    }

    /// Ends a change: compacts when needed, writes the next generation and stamps the
    /// directory with it (the last step).
    pub(crate) fn commit(&mut self, dir: &Path, dir_file: &File) -> io::Result<()> {
        if self.header.clean {
            return Ok(());
        }
        let h = &self.header;
        if (h.capacity > MIN_CAPACITY && h.used * 8 < h.capacity) || h.tombstones * 4 > h.capacity {
            self.rehash(dir, capacity_for(self.header.used))?;
        }
        self.header.clean = true;
        self.header.generation += 1;
        self.write_header()?;
        fault::point("index:committed");
        if let Backing::File(_) = self.backing
            && let Err(e) = self.stamp(dir_file)
        {
            // Correct, only slower: the next operation rebuilds the index.
            cni_sdk::tracing::debug!("cannot stamp {}: {e}", dir.display());
        }
        fault::point("index:stamped");
        Ok(())
    }

    /// Rewrites the table with `capacity` slots (growth, shrinking, dropping tombstones).
    fn rehash(&mut self, dir: &Path, capacity: u64) -> io::Result<()> {
        let mut records = Vec::with_capacity(usize::try_from(self.header.used).unwrap_or(0));
        for pos in 0..self.header.capacity {
            match self.slot(pos)? {
                Slot::Empty | Slot::Tombstone => {}
                s => records.push(s),
            }
        }
        if records.len() as u64 != self.header.used {
            return Err(io_err("the slot count does not match the header"));
        }
        let mut header = self.header.clone();
        header.capacity = capacity;
        header.tombstones = 0;
        *self = Self::from_records(dir, header, records);
        Ok(())
    }

    fn probe_start(&self, hash: u64) -> u64 {
        hash & (self.header.capacity - 1)
    }

    /// Calls `f` on every slot of the probe sequence of `hash` until an empty slot; stops early
    /// when `f` returns `true`. Returns the position where `f` stopped, and the first reusable
    /// (empty or tombstone) position seen.
    fn probe(&mut self, hash: u64, mut f: impl FnMut(u64, Slot) -> bool) -> io::Result<(Option<u64>, Option<u64>)> {
        let mask = self.header.capacity - 1;
        let mut pos = self.probe_start(hash);
        let mut free = None;
        for _ in 0..self.header.capacity {
            let slot = self.slot(pos)?;
            match slot {
                Slot::Empty => return Ok((None, free.or(Some(pos)))),
                Slot::Tombstone => {
                    free.get_or_insert(pos);
                }
                _ => {
                    if f(pos, slot) {
                        return Ok((Some(pos), free));
                    }
                }
            }
            pos = (pos + 1) & mask;
        }
        Ok((None, free))
    }

    fn insert(&mut self, dir: &Path, slot: Slot) -> io::Result<()> {
        if (self.header.used + self.header.tombstones + 1) * 4 > self.header.capacity * 3 {
            self.rehash(dir, capacity_for(self.header.used + 1))?;
        }
        let (_, free) = self.probe(slot_hash(&slot), |_, _| false)?;
        let pos = free.ok_or_else(|| io_err("the table is full"))?;
        if self.slot(pos)? == Slot::Tombstone {
            self.header.tombstones -= 1;
        }
        self.put(pos, slot)?;
        self.header.used += 1;
        Ok(())
    }

    fn delete(&mut self, pos: u64) -> io::Result<()> {
        self.put(pos, Slot::Tombstone)?;
        self.header.used -= 1;
        self.header.tombstones += 1;
        Ok(())
    }

    /// The leases recorded for an owner hash (garbage is not found this way: it has no owner).
    pub(crate) fn owned(&mut self, owner: u64) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.probe(owner_pos_hash(owner), |_, s| {
            if let Slot::Lease(e) = s
                && e.owner == owner
            {
                out.push(e);
            }
            false
        })?;
        Ok(out)
    }

    /// The position and value of the bitmap record of (level, block), if any.
    fn find_bits(&mut self, level: u8, block: u128) -> io::Result<Option<(u64, u64)>> {
        let mut bits = 0;
        let (at, _) = self.probe(bits_hash(level, block), |_, s| match s {
            Slot::Bits { level: l, block: b, bits: v } if l == level && b == block => {
                bits = v;
                true
            }
            _ => false,
        })?;
        Ok(at.map(|pos| (pos, bits)))
    }

    fn bits(&mut self, level: usize, block: u128) -> io::Result<u64> {
        // `level` < LEVELS.
        Ok(self.find_bits(level as u8, block)?.map_or(0, |(_, bits)| bits))
    }

    fn set_bits(&mut self, dir: &Path, level: usize, block: u128, bits: u64) -> io::Result<()> {
        let level = level as u8;
        match self.find_bits(level, block)? {
            Some((pos, _)) if bits == 0 => self.delete(pos),
            Some((pos, _)) => self.put(pos, Slot::Bits { level, block, bits }),
            None if bits == 0 => Ok(()),
            None => self.insert(dir, Slot::Bits { level, block, bits }),
        }
    }

    /// True when `addr` is taken by a lease file.
    pub(crate) fn is_taken(&mut self, addr: u128) -> io::Result<bool> {
        Ok(self.bits(0, addr >> 6)? & (1 << (addr & 63)) != 0)
    }

    /// Records a new lease file.
    pub(crate) fn add(&mut self, dir: &Path, e: Entry) -> io::Result<()> {
        self.insert(dir, Slot::Lease(e))?;
        self.header.leases += 1;
        if e.garbage {
            self.header.note_garbage(e.addr);
        }
        for level in 0..LEVELS {
            let shift = 6 * level;
            let block = e.addr >> (shift + 6);
            let bits = self.bits(level, block)? | 1 << ((e.addr >> shift) & 63);
            self.set_bits(dir, level, block, bits)?;
            if bits != u64::MAX {
                break;
            }
        }
        Ok(())
    }

    /// Forgets a removed lease file; `false` when the index did not record it.
    pub(crate) fn remove(&mut self, dir: &Path, e: Entry) -> io::Result<bool> {
        let mut found = None;
        let (at, _) = self.probe(lease_pos_hash(&e), |_, s| match s {
            Slot::Lease(x) if x.owner == e.owner && x.addr == e.addr => {
                found = Some(x);
                true
            }
            _ => false,
        })?;
        let (Some(pos), Some(x)) = (at, found) else { return Ok(false) };
        self.delete(pos)?;
        self.header.leases -= 1;
        if x.garbage {
            self.header.garbage -= 1;
            if let Some(s) = self.header.samples.iter_mut().find(|s| **s == e.addr) {
                *s = 0;
            }
        }
        for level in 0..LEVELS {
            let shift = 6 * level;
            let block = e.addr >> (shift + 6);
            let old = self.bits(level, block)?;
            self.set_bits(dir, level, block, old & !(1 << ((e.addr >> shift) & 63)))?;
            if old != u64::MAX {
                break;
            }
        }
        Ok(true)
    }

    /// The first address in `from..=to` not taken by a lease file.
    pub(crate) fn first_free(&mut self, from: u128, to: u128) -> io::Result<Option<u128>> {
        let mut a = from;
        let mut level = 0usize;
        while a <= to {
            let shift = 6 * level;
            let block = a >> (shift + 6);
            // Bit indices are below 64.
            let idx = ((a >> shift) & 63) as u32;
            let not_full = !self.bits(level, block)? & (u64::MAX << idx);
            if not_full != 0 {
                let i = not_full.trailing_zeros();
                if i != idx {
                    a = (block << (shift + 6)) | (u128::from(i) << shift);
                }
                if level == 0 {
                    return Ok((a <= to).then_some(a));
                }
                level -= 1;
            } else {
                // The rest of this block is taken: continue with the next one, one level up.
                let Some(next) = block.checked_add(1).and_then(|b| b.checked_mul(1u128 << (shift + 6))) else {
                    return Ok(None);
                };
                a = next;
                if level + 1 < LEVELS {
                    level += 1;
                }
            }
        }
        Ok(None)
    }

    /// How many garbage lease files the store holds, and some of their addresses.
    pub(crate) fn garbage(&self) -> (u64, Vec<IpAddr>) {
        let samples = self.header.samples.iter().filter(|s| **s != 0).map(|s| key_addr(*s)).collect();
        (self.header.garbage, samples)
    }
}

impl Header {
    fn note_garbage(&mut self, addr: u128) {
        self.garbage += 1;
        if let Some(s) = self.samples.iter_mut().find(|s| **s == 0) {
            *s = addr;
        }
    }
}

/// A random generation to start a rebuilt index from (std's `RandomState` is seeded by the
/// OS), so that no copy of an earlier index is likely to carry the generation stamped next:
/// within one chain generations only grow, across chains they match with odds of 2^-31.
pub(crate) fn fresh_generation() -> u64 {
    use std::hash::BuildHasher as _;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // Truncation is intended: the low bits of the clock are mixed in.
    std::collections::hash_map::RandomState::new().hash_one(now.as_nanos() as u64) % STAMP_SPAN
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn v4(s: &str) -> u128 {
        addr_key(s.parse().unwrap())
    }

    fn dir_file(p: &Path) -> File {
        File::open(p).unwrap()
    }

    fn lease(addr: u128, owner: &str) -> Entry {
        Entry { addr, owner: owner_hash(owner), garbage: false }
    }

    #[test]
    fn keys_round_trip_and_families_do_not_overlap() {
        for s in ["10.0.0.1", "0.0.0.0", "255.255.255.255", "fd00::1", "::", "::1.2.3.4"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(key_addr(addr_key(ip)), ip, "{s}");
        }
        assert_ne!(v4("0.0.0.1"), addr_key("::1".parse().unwrap()));
        assert_eq!(key_addr(addr_key("::ffff:10.1.2.3".parse().unwrap())).to_string(), "10.1.2.3");
    }

    #[test]
    fn slots_round_trip_and_damage_is_detected() {
        let slots = [
            Slot::Tombstone,
            Slot::Lease(lease(v4("10.0.0.1"), "a\r\neth0")),
            Slot::Lease(Entry { addr: 5, owner: 0, garbage: true }),
            Slot::Bits { level: 3, block: u128::MAX >> 24, bits: 0x8000_0000_0000_0001 },
        ];
        for s in slots {
            let raw = s.encode(77);
            assert_eq!(Slot::decode(77, &raw).unwrap(), s);
            assert!(Slot::decode(78, &raw).is_err(), "a slot moved to another position");
            for i in 0..SLOT_LEN {
                let mut bad = raw;
                bad[i] ^= 0x10;
                assert!(Slot::decode(77, &bad).is_err(), "{s:?} byte {i}");
            }
        }
        assert_eq!(Slot::decode(3, &[0; SLOT_LEN]).unwrap(), Slot::Empty);
    }

    #[test]
    fn header_round_trip_and_checks() {
        let mut h = Header::new(41, [7; 16], 256);
        h.used = 3;
        h.leases = 2;
        h.note_garbage(9);
        let b = h.encode();
        assert_eq!(Header::decode(&b).unwrap(), h);
        assert!(b.windows(5).all(|w| w != b"\r\neth"), "no owner-like content");
        let mut bad = b.clone();
        bad[60] ^= 1;
        assert_eq!(Header::decode(&bad).unwrap_err(), "damaged header");
        assert_eq!(Header::decode(&b[..100]).unwrap_err(), "not an index file");

        let boot = [7; 16];
        let ok = check_current(&h, h.file_len(), stamp(41), &boot);
        assert_eq!(ok, Ok(()));
        assert!(check_current(&h, h.file_len() - 1, stamp(41), &boot).is_err());
        assert!(check_current(&h, h.file_len(), stamp(42), &boot).is_err());
        assert!(check_current(&h, h.file_len(), (1_800_000_000, 0), &boot).is_err());
        assert!(check_current(&h, h.file_len(), stamp(41), &[8; 16]).is_err(), "another boot");
        assert!(check_current(&h, h.file_len(), stamp(41), &[0; 16]).is_err(), "unknown boot");
        let mut dirty = h.clone();
        dirty.clean = false;
        assert!(check_current(&dirty, h.file_len(), stamp(41), &boot).is_err());
        // Stamps are before 1970 and differ between consecutive generations.
        assert!(stamp(0).0 < 0 && stamp(STAMP_SPAN - 1).0 < 0);
        assert_ne!(stamp(5), stamp(6));
    }

    #[test]
    fn rebuilt_indexes_start_from_unrelated_generations() {
        let gens: BTreeSet<u64> = (0..200).map(|_| fresh_generation()).collect();
        assert!(gens.len() >= 199, "{} distinct of 200", gens.len());
        assert!(gens.iter().all(|g| *g < STAMP_SPAN));
    }

    #[test]
    fn boot_id_is_read() {
        assert_ne!(boot_id(), [0; 16]);
        assert_eq!(boot_id(), boot_id());
    }

    #[test]
    fn build_load_and_the_directory_stamp() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir_file(tmp.path());
        let entries = [lease(v4("10.0.0.2"), "a\r\neth0"), lease(v4("10.0.0.3"), "b\r\neth0")];
        let ix = Index::build(tmp.path(), &d, 10, &entries);
        assert_eq!(dir_mtime(&d).unwrap(), stamp(10));
        drop(ix);
        let mut ix = Index::load(tmp.path(), &d).unwrap();
        assert_eq!(ix.owned(owner_hash("a\r\neth0")).unwrap(), [entries[0]]);
        assert!(ix.owned(owner_hash("a\r\neth1")).unwrap().is_empty());
        // Any directory change invalidates it.
        fs::write(tmp.path().join("10.0.0.4"), "c\r\neth0").unwrap();
        assert_eq!(Index::load(tmp.path(), &d).unwrap_err(), "the directory changed since it was written");
        // Changes through the index advance the generation and restamp.
        let mut ix = Index::build(tmp.path(), &d, 11, &entries);
        ix.begin().unwrap();
        assert_eq!(Index::load(tmp.path(), &d).unwrap_err(), "an operation was interrupted while changing it");
        ix.add(tmp.path(), lease(v4("10.0.0.4"), "c\r\neth0")).unwrap();
        ix.commit(tmp.path(), &d).unwrap();
        assert_eq!(dir_mtime(&d).unwrap(), stamp(12));
        let mut ix = Index::load(tmp.path(), &d).unwrap();
        assert_eq!(ix.owned(owner_hash("c\r\neth0")).unwrap().len(), 1);
        assert!(ix.is_taken(v4("10.0.0.4")).unwrap());
        assert!(!ix.is_taken(v4("10.0.0.5")).unwrap());
        // Truncated, foreign or deleted files are not trusted.
        let f = File::options().write(true).open(tmp.path().join(INDEX_NAME)).unwrap();
        f.set_len(HEADER_LEN as u64 + 32).unwrap();
        assert_eq!(Index::load(tmp.path(), &d).unwrap_err(), "its size does not match its header");
        fs::write(tmp.path().join(INDEX_NAME), "a\r\neth0").unwrap();
        assert_eq!(Index::load(tmp.path(), &d).unwrap_err(), "it is truncated");
        fs::write(tmp.path().join(INDEX_NAME), vec![b'x'; 5000]).unwrap();
        assert_eq!(Index::load(tmp.path(), &d).unwrap_err(), "not an index file");
        fs::remove_file(tmp.path().join(INDEX_NAME)).unwrap();
        assert_eq!(Index::load(tmp.path(), &d).unwrap_err(), "there is none");
    }

    #[test]
    fn memory_backing_when_the_index_cannot_be_written() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir_file(tmp.path());
        let gone = tmp.path().join("gone");
        let mut ix = Index::build(&gone, &d, 1, &[lease(v4("10.0.0.2"), "a\r\neth0")]);
        assert!(matches!(ix.backing, Backing::Memory(_)));
        ix.begin().unwrap();
        ix.add(&gone, lease(v4("10.0.0.3"), "b\r\neth0")).unwrap();
        ix.commit(&gone, &d).unwrap();
        assert_eq!(ix.first_free(v4("10.0.0.2"), v4("10.0.0.9")).unwrap(), Some(v4("10.0.0.4")));
    }

    #[test]
    fn runs_are_skipped_through_the_levels() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir_file(tmp.path());
        let base = v4("10.0.0.0");
        // 300 000 consecutive taken addresses: more than one full level-2 unit (4096 × 64).
        let entries: Vec<Entry> =
            (0..300_000u128).map(|i| Entry { addr: base + i, owner: i as u64, garbage: false }).collect();
        let mut ix = Index::build(tmp.path(), &d, 1, &entries);
        assert_eq!(ix.first_free(base, base + 1_000_000).unwrap(), Some(base + 300_000));
        assert_eq!(ix.first_free(base + 17, base + 299_999).unwrap(), None);
        // Reading the answer touched few slots: the page cache holds what was read.
        assert!(ix.pages.len() < 40, "{} pages read", ix.pages.len());
        ix.begin().unwrap();
        ix.remove(tmp.path(), entries[123_456]).unwrap();
        assert_eq!(ix.first_free(base, base + 1_000_000).unwrap(), Some(base + 123_456));
        ix.add(tmp.path(), entries[123_456]).unwrap();
        assert_eq!(ix.first_free(base, base + 1_000_000).unwrap(), Some(base + 300_000));
        assert!(!ix.remove(tmp.path(), Entry { owner: 1, ..entries[5] }).unwrap(), "wrong owner");
    }

    #[test]
    fn tables_grow_and_shrink() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir_file(tmp.path());
        let mut ix = Index::build(tmp.path(), &d, 1, &[]);
        assert_eq!(ix.header().capacity, MIN_CAPACITY);
        let base = v4("10.9.0.0");
        let all: Vec<Entry> = (0..2000u128).map(|i| lease(base + i * 131, &format!("c{i}\r\neth0"))).collect();
        for e in &all {
            ix.begin().unwrap();
            ix.add(tmp.path(), *e).unwrap();
            ix.commit(tmp.path(), &d).unwrap();
        }
        assert!(ix.header().capacity >= 4096, "{}", ix.header().capacity);
        let mut ix = Index::load(tmp.path(), &d).unwrap();
        for e in &all[..1990] {
            ix.begin().unwrap();
            assert!(ix.remove(tmp.path(), *e).unwrap());
            ix.commit(tmp.path(), &d).unwrap();
        }
        assert!(ix.header().capacity <= 256, "{}", ix.header().capacity);
        let mut ix = Index::load(tmp.path(), &d).unwrap();
        for e in &all[1990..] {
            assert_eq!(ix.owned(e.owner).unwrap(), [*e]);
            assert!(ix.is_taken(e.addr).unwrap());
        }
        assert_eq!(ix.header().leases, 10);
    }

    #[test]
    fn garbage_is_counted_with_samples() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir_file(tmp.path());
        let g = |a: &str| Entry { addr: v4(a), owner: owner_hash(""), garbage: true };
        let mut ix = Index::build(tmp.path(), &d, 1, &[g("10.0.0.7"), lease(v4("10.0.0.8"), "a")]);
        assert_eq!(ix.garbage(), (1, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]));
        ix.begin().unwrap();
        assert!(ix.remove(tmp.path(), g("10.0.0.7")).unwrap());
        assert_eq!(ix.garbage(), (0, vec![]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// After any sequence of additions and removals, the index answers like a set.
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((0u128..12_000, any::<bool>()), 1..250),
                              queries in proptest::collection::vec((0u128..12_000, 0u128..3000), 1..40)) {
            let tmp = tempfile::tempdir().unwrap();
            let d = dir_file(tmp.path());
            let base = v4("10.128.0.0");
            let mut model = BTreeSet::new();
            // A dense start, so full blocks exist at levels 0 and 1.
            // Owners hold three leases each (as with three range sets); some are garbage.
            let owner = |off: u128| if off.is_multiple_of(11) { String::new() } else { format!("c{}", off / 3) };
            let lease = |addr: u128, o: &str| Entry { addr, owner: owner_hash(o), garbage: o.is_empty() };
            let dense: Vec<Entry> = (0..4200u128).map(|i| lease(base + i, &owner(i))).collect();
            model.extend(0..4200u128);
            let mut ix = Index::build(tmp.path(), &d, 1, &dense);
            for (off, add) in ops {
                let e = lease(base + off, &owner(off));
                ix.begin().unwrap();
                if add && model.insert(off) {
                    ix.add(tmp.path(), e).unwrap();
                } else if !add && model.remove(&off) {
                    prop_assert!(ix.remove(tmp.path(), e).unwrap());
                }
                ix.commit(tmp.path(), &d).unwrap();
            }
            let mut ix = Index::load(tmp.path(), &d).unwrap();
            for (from, len) in queries.iter().copied() {
                let want = (from..=from + len).find(|o| !model.contains(o)).map(|o| base + o);
                prop_assert_eq!(ix.first_free(base + from, base + from + len).unwrap(), want);
                prop_assert_eq!(ix.is_taken(base + from).unwrap(), model.contains(&from));
            }
            for (from, _) in queries {
                let o = owner(from);
                let mut got: Vec<u128> = ix.owned(owner_hash(&o)).unwrap().iter().map(|e| e.addr - base).collect();
                got.sort();
                let want: Vec<u128> = if o.is_empty() {
                    vec![]
                } else {
                    model.iter().copied().filter(|a| owner(*a) == o).collect()
                };
                prop_assert_eq!(got, want);
            }
        }
    }
}
