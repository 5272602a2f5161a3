//! [`MemFs`]: an in-memory file system that models what survives a crash, and injects faults.
//!
//! The model, as a real file system behaves (and as crash-consistency tools such as ALICE
//! and CrashMonkey assume):
//! - Each file keeps its *cached* bytes (what reads see) apart from its *durable* bytes (what
//!   the medium holds). [`FsFile::sync`] makes the cached bytes durable.
//! - Each namespace change (create, rename, remove) is *pending* until [`Fs::sync_dir`] of its
//!   directory; pending changes survive a crash only as an in-order prefix (a journal).
//! - A crash ([`MemFs::crash`]) keeps, drops or garbles what was not durable, per
//!   [`CrashMode`]; handles opened before it fail afterwards, and locks are released.
//! - A failed sync leaves its data non-durable; under [`SyncFailure::KeepCached`] (ext4, XFS)
//!   the cache still shows the bytes and a later successful sync does *not* make them durable,
//!   under [`SyncFailure::RevertCached`] (Btrfs) the cache falls back to the durable bytes.
//!
//! Simplification: directories are durable as soon as they are created.
//!
//! Thread safety: one mutex guards the whole state; every method may be called from any
//! thread. Operations are numbered in the order they take that mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Fs, FsFile, FsLock};

/// Pages are the unit a crash keeps, drops or garbles.
const PAGE: usize = 4096;

/// The kinds of operation [`MemFs`] counts, traces and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each names the Fs / FsFile method of the same name
pub enum OpKind {
    CreateDir,
    Create,
    Open,
    OpenAppend,
    Exists,
    List,
    Rename,
    Remove,
    SyncDir,
    Lock,
    ReadAt,
    Append,
    Len,
    Truncate,
    Allocate,
    Sync,
}

impl OpKind {
    /// Whether the operation can change what is (or will be) on the medium.
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            OpKind::CreateDir
                | OpKind::Create
                | OpKind::Rename
                | OpKind::Remove
                | OpKind::SyncDir
                | OpKind::Append
                | OpKind::Truncate
                | OpKind::Allocate
                | OpKind::Sync
        )
    }
}

/// One operation, as fault filters and the trace see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Position of the operation in the order of all operations (0-based).
    pub index: u64,
    /// What the operation is.
    pub kind: OpKind,
    /// The path it names (for file-handle operations: the path the file was opened by).
    pub path: PathBuf,
    /// The renamed-to path of a rename.
    pub to: Option<PathBuf>,
    /// The file (inode) a handle operation touches, stable across renames.
    pub file_id: Option<u64>,
    /// Bytes appended or read, or the length truncated or allocated to.
    pub len: u64,
}

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with EIO and has no effect (a failed sync: see [`SyncFailure`]).
    Eio,
    /// The operation fails with ENOSPC and has no effect.
    Enospc,
    /// An append writes only its first `keep` bytes, then fails with EIO (an indeterminate
    /// write). On other operations, as [`Fault::Eio`].
    Torn {
        /// Bytes of the append that reach the file.
        keep: usize,
    },
    /// The machine stops: this operation and every later one fail with EIO and have no
    /// effect, until [`MemFs::crash`].
    Halt,
}

impl Fault {
    fn error(self) -> io::Error {
        let errno = match self {
            Fault::Enospc => rustix::io::Errno::NOSPC,
            Fault::Eio | Fault::Torn { .. } | Fault::Halt => rustix::io::Errno::IO,
        };
        io::Error::from_raw_os_error(errno.raw_os_error())
    }
}

/// What a failed sync does to the data it did not make durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncFailure {
    /// The cache keeps the bytes and marks them clean (ext4, XFS): reads still see them, but
    /// they are not durable and a later successful sync will not write them. The default.
    #[default]
    KeepCached,
    /// The cache drops the bytes (Btrfs): reads see the durable content again.
    RevertCached,
}

/// What a crash keeps of the state that was not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Power loss, worst case: every unsynced byte and every pending directory change is lost.
    DropUnsynced,
    /// A process crash: the operating system keeps everything written (still unsynced: a
    /// later power loss can lose it); only open handles and locks go.
    KeepUnsynced,
    /// Power loss, one of the legal outcomes chosen by `seed`: each unsynced page is kept,
    /// dropped or garbled (bytes that were durable stay intact), a file's length lands
    /// between its durable and cached lengths, and an in-order prefix of the pending
    /// directory changes survives.
    Random(u64),
}

/// One traced operation and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// The operation.
    pub op: Op,
    /// The fault injected into it, if any.
    pub fault: Option<Fault>,
    /// Whether it returned `Ok`.
    pub ok: bool,
}

/// An in-memory [`Fs`] for tests: crash simulation, fault injection and an operation trace.
///
/// Cloning gives another handle on the same file system.
///
/// ```
/// use kevo::fs::{CrashMode, Fs, MemFs};
/// use std::path::Path;
///
/// let fs = MemFs::new();
/// fs.create_dir_all(Path::new("/db")).unwrap();
/// let f = fs.create(Path::new("/db/a")).unwrap();
/// f.append(b"synced").unwrap();
/// f.sync().unwrap();
/// fs.sync_dir(Path::new("/db")).unwrap();
/// f.append(b" and not").unwrap();
/// fs.crash(CrashMode::DropUnsynced);
/// let f = fs.open(Path::new("/db/a")).unwrap();
/// assert_eq!(f.len().unwrap(), 6);
/// ```
#[derive(Clone, Default)]
pub struct MemFs {
    shared: Arc<Mutex<State>>,
}

type OpFilter = Box<dyn Fn(&Op) -> bool + Send + Sync>;

enum Trigger {
    Nth(u64),
    Matching(OpFilter),
}

struct FaultRule {
    trigger: Trigger,
    fault: Fault,
}

#[derive(Default)]
struct Inode {
    cached: Vec<u8>,
    durable: Vec<u8>,
    /// Pages a failed sync marked clean although they are not durable (SyncFailure::KeepCached).
    lost_pages: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link { path: PathBuf, ino: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirOp {
    fn touches(&self, dir: &Path) -> bool {
        let in_dir = |p: &Path| parent(p) == dir;
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } => in_dir(path),
            DirOp::Rename { from, to } => in_dir(from) || in_dir(to),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link { path, ino } => {
                names.insert(path.clone(), *ino);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to } => {
                if let Some(ino) = names.remove(from) {
                    names.insert(to.clone(), ino);
                }
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// Bumped by every crash; handles of an older generation are dead.
    generation: u64,
    next_ino: u64,
    inodes: HashMap<u64, Inode>,
    dirs: BTreeSet<PathBuf>,
    /// The namespace as the running system sees it.
    names: BTreeMap<PathBuf, u64>,
    /// The namespace on the medium: what a crash returns to, before pending changes.
    durable_names: BTreeMap<PathBuf, u64>,
    /// Namespace changes not yet durable, oldest first.
    pending: Vec<DirOp>,
    locks: BTreeSet<PathBuf>,
    op_count: u64,
    faults: Vec<FaultRule>,
    faults_injected: u64,
    halted: bool,
    sync_failure: SyncFailure,
    trace: Option<Vec<TraceEntry>>,
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

impl State {
    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty() || dir == Path::new("/") || self.dirs.contains(dir)
    }

    /// Numbers the operation, records it, and decides whether a fault hits it.
    fn begin(&mut self, mut op: Op) -> Result<Option<Fault>, io::Error> {
        op.index = self.op_count;
        self.op_count += 1;
        let fault = if self.halted {
            Some(Fault::Halt)
        } else {
            let hit = self.faults.iter().position(|rule| match &rule.trigger {
                Trigger::Nth(n) => *n == op.index,
                Trigger::Matching(filter) => filter(&op),
            });
            hit.map(|i| {
                let fault = self.faults[i].fault;
                if matches!(self.faults[i].trigger, Trigger::Nth(_)) {
                    self.faults.remove(i);
                }
                fault
            })
        };
        if fault.is_some() {
            self.faults_injected += 1;
        }
        if let Some(trace) = &mut self.trace {
            // A halted operation fails right here; others report their outcome in `finish`.
            trace.push(TraceEntry {
                op,
                fault,
                ok: fault != Some(Fault::Halt),
            });
        }
        match fault {
            Some(Fault::Halt) => {
                self.halted = true;
                Err(Fault::Halt.error())
            }
            other => Ok(other),
        }
    }

    /// Records the outcome of the operation `begin` started.
    fn finish<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if result.is_err()
            && let Some(last) = self.trace.as_mut().and_then(|t| t.last_mut())
        {
            last.ok = false;
        }
        result
    }

    fn new_inode(&mut self) -> u64 {
        self.next_ino += 1;
        self.inodes.insert(self.next_ino, Inode::default());
        self.next_ino
    }

    fn sync_file(&mut self, ino: u64) {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        let mut durable = inode.cached.clone();
        for &page in &inode.lost_pages {
            // These bytes were dropped by a failed sync: the medium holds the old content,
            // or zeros where there was none.
            let start = (page * PAGE).min(durable.len());
            let end = ((page + 1) * PAGE).min(durable.len());
            for (i, byte) in durable[start..end].iter_mut().enumerate() {
                *byte = inode.durable.get(start + i).copied().unwrap_or(0);
            }
        }
        inode.durable = durable;
    }

    fn fail_sync(&mut self, ino: u64) {
        let mode = self.sync_failure;
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        match mode {
            SyncFailure::KeepCached => {
                let pages = differing_pages(&inode.durable, &inode.cached);
                inode.lost_pages.extend(pages);
            }
            SyncFailure::RevertCached => inode.cached = inode.durable.clone(),
        }
    }

    fn sync_dir(&mut self, dir: &Path) {
        let (now, later): (Vec<DirOp>, Vec<DirOp>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|op| op.touches(dir));
        for op in &now {
            op.apply(&mut self.durable_names);
        }
        self.pending = later;
    }

    fn crash(&mut self, mode: CrashMode) {
        self.generation += 1;
        self.locks.clear();
        self.halted = false;
        match mode {
            // The process died, the machine did not: the OS cache still holds every unsynced
            // byte and directory change, and a later power loss can still lose them.
            CrashMode::KeepUnsynced => return,
            CrashMode::DropUnsynced => {
                self.names = self.durable_names.clone();
                for inode in self.inodes.values_mut() {
                    inode.cached = inode.durable.clone();
                }
            }
            CrashMode::Random(seed) => {
                let mut rng = SplitMix64(seed);
                let keep = rng.below(self.pending.len() as u64 + 1) as usize;
                let mut names = self.durable_names.clone();
                for op in &self.pending[..keep] {
                    op.apply(&mut names);
                }
                self.names = names;
                for inode in self.inodes.values_mut() {
                    inode.cached = random_image(&inode.durable, &inode.cached, &mut rng);
                }
            }
        }
        // After the reboot, what is on the medium is all there is.
        self.pending.clear();
        self.durable_names = self.names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        for inode in self.inodes.values_mut() {
            inode.durable = inode.cached.clone();
            inode.lost_pages.clear();
        }
    }
}

/// Indexes of the pages where `a` and `b` differ (lengths included).
fn differing_pages(a: &[u8], b: &[u8]) -> Vec<usize> {
    let len = a.len().max(b.len());
    (0..len.div_ceil(PAGE))
        .filter(|&p| page_of(a, p) != page_of(b, p))
        .collect()
}

/// The bytes of page `p` of `v` (shorter or empty past its end).
fn page_of(v: &[u8], p: usize) -> &[u8] {
    &v[(p * PAGE).min(v.len())..((p + 1) * PAGE).min(v.len())]
}

/// One legal post-crash content of a file whose durable bytes are `durable` and whose
/// cached (unsynced) bytes are `cached`.
fn random_image(durable: &[u8], cached: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    if durable == cached {
        return durable.to_vec();
    }
    let (lo, hi) = (
        durable.len().min(cached.len()),
        durable.len().max(cached.len()),
    );
    // The length lands on one of the two, or on a page boundary between them.
    let boundaries: Vec<usize> = std::iter::once(lo)
        .chain(
            (lo.div_ceil(PAGE)..hi.div_ceil(PAGE))
                .map(|p| p * PAGE)
                .filter(|&b| b > lo && b < hi),
        )
        .chain(std::iter::once(hi))
        .collect();
    let len = boundaries[rng.below(boundaries.len() as u64) as usize];
    let mut out = vec![0u8; len];
    for page in 0..len.div_ceil(PAGE) {
        let range = page * PAGE..((page + 1) * PAGE).min(len);
        let choice = rng.below(3);
        for i in range {
            let (d, c) = (durable.get(i).copied(), cached.get(i).copied());
            out[i] = match (d, c) {
                // A byte both images agree on was durable all along: never garbled.
                (Some(d), Some(c)) if d == c => d,
                _ => match choice {
                    0 => c.unwrap_or(0),
                    1 => d.unwrap_or(0),
                    _ => rng.next() as u8,
                },
            };
        }
    }
    out
}

/// A small deterministic generator, so crash images are reproducible from a seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

impl MemFs {
    /// An empty file system.
    pub fn new() -> Self {
        MemFs::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way the
        // next operation cannot handle; tests that panic must still be able to inspect it.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Simulates a crash and reboot: see [`CrashMode`]. Every handle opened before fails
    /// afterwards with EIO, every lock is released, a [`Fault::Halt`] is lifted.
    pub fn crash(&self, mode: CrashMode) {
        self.state().crash(mode);
    }

    /// Makes operation number `index` (see [`MemFs::op_count`]) fail with `fault`, once.
    pub fn fail_nth(&self, index: u64, fault: Fault) {
        self.state().faults.push(FaultRule {
            trigger: Trigger::Nth(index),
            fault,
        });
    }

    /// Makes every operation for which `filter` returns true fail with `fault`, until
    /// [`MemFs::clear_faults`].
    pub fn fail_matching(
        &self,
        fault: Fault,
        filter: impl Fn(&Op) -> bool + Send + Sync + 'static,
    ) {
        self.state().faults.push(FaultRule {
            trigger: Trigger::Matching(Box::new(filter)),
            fault,
        });
    }

    /// Removes every pending fault rule (a [`Fault::Halt`] that fired stays until a crash).
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Operations performed so far; the next operation gets this index.
    pub fn op_count(&self) -> u64 {
        self.state().op_count
    }

    /// Faults injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.state().faults_injected
    }

    /// Chooses what a failed sync does (default [`SyncFailure::KeepCached`]).
    pub fn set_sync_failure(&self, mode: SyncFailure) {
        self.state().sync_failure = mode;
    }

    /// Starts recording every operation (clearing an earlier trace).
    pub fn start_trace(&self) {
        self.state().trace = Some(Vec::new());
    }

    /// Stops recording and returns the trace.
    pub fn take_trace(&self) -> Vec<TraceEntry> {
        self.state().trace.take().unwrap_or_default()
    }

    /// The durable content of `path`: what it would hold after a power loss now (`None` if
    /// its name would not survive).
    pub fn durable_content(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state();
        let ino = st.durable_names.get(path)?;
        st.inodes.get(ino).map(|i| i.durable.clone())
    }

    fn op(kind: OpKind, path: &Path) -> Op {
        Op {
            index: 0,
            kind,
            path: path.to_path_buf(),
            to: None,
            file_id: None,
            len: 0,
        }
    }

    fn open_file(&self, kind: OpKind, path: &Path, writable: bool) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.state();
        if let Some(fault) = st.begin(Self::op(kind, path))? {
            return st.finish(Err(fault.error()));
        }
        let result = match st.names.get(path) {
            Some(&ino) => Ok(self.handle(&st, ino, path, writable)),
            None => Err(not_found(path)),
        };
        st.finish(result)
    }

    fn handle(&self, st: &State, ino: u64, path: &Path, writable: bool) -> Box<dyn FsFile> {
        Box::new(MemFile {
            fs: self.clone(),
            ino,
            path: path.to_path_buf(),
            writable,
            generation: st.generation,
        })
    }

    /// Runs a simple namespace operation: numbered, fault-checked, traced.
    fn run<T>(&self, op: Op, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.state();
        if let Some(fault) = st.begin(op)? {
            return st.finish(Err(fault.error()));
        }
        let result = f(&mut st);
        st.finish(result)
    }
}

impl fmt::Debug for MemFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("MemFs")
            .field("files", &st.names.len())
            .field("pending_dir_changes", &st.pending.len())
            .field("op_count", &st.op_count)
            .finish_non_exhaustive()
    }
}

impl Fs for MemFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.run(Self::op(OpKind::CreateDir, dir), |st| {
            for ancestor in dir.ancestors() {
                if st.names.contains_key(ancestor) {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        ancestor.display().to_string(),
                    ));
                }
                if !ancestor.as_os_str().is_empty() {
                    st.dirs.insert(ancestor.to_path_buf());
                }
            }
            Ok(())
        })
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.state();
        if let Some(fault) = st.begin(Self::op(OpKind::Create, path))? {
            return st.finish(Err(fault.error()));
        }
        if !st.dir_exists(parent(path)) || st.dirs.contains(path) {
            return st.finish(Err(not_found(parent(path))));
        }
        let ino = if let Some(&ino) = st.names.get(path) {
            // Truncating an existing file: the name stays, the data goes (unsynced).
            if let Some(inode) = st.inodes.get_mut(&ino) {
                inode.cached.clear();
            }
            ino
        } else {
            let ino = st.new_inode();
            st.names.insert(path.to_path_buf(), ino);
            st.pending.push(DirOp::Link {
                path: path.to_path_buf(),
                ino,
            });
            ino
        };
        let handle = self.handle(&st, ino, path, true);
        st.finish(Ok(handle))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open_file(OpKind::Open, path, false)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open_file(OpKind::OpenAppend, path, true)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.run(Self::op(OpKind::Exists, path), |st| {
            Ok(st.names.contains_key(path) || st.dirs.contains(path))
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.run(Self::op(OpKind::List, dir), |st| {
            if !st.dir_exists(dir) {
                return Err(not_found(dir));
            }
            let files = st.names.keys().map(PathBuf::as_path);
            let subdirs = st.dirs.iter().map(PathBuf::as_path);
            let mut names: Vec<String> = files
                .chain(subdirs)
                .filter(|p| parent(p) == dir)
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            Ok(names)
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut op = Self::op(OpKind::Rename, from);
        op.to = Some(to.to_path_buf());
        self.run(op, |st| {
            if !st.dir_exists(parent(to)) {
                return Err(not_found(parent(to)));
            }
            let ino = st.names.remove(from).ok_or_else(|| not_found(from))?;
            st.names.insert(to.to_path_buf(), ino);
            st.pending.push(DirOp::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
            });
            Ok(())
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.run(Self::op(OpKind::Remove, path), |st| {
            st.names.remove(path).ok_or_else(|| not_found(path))?;
            st.pending.push(DirOp::Unlink {
                path: path.to_path_buf(),
            });
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.run(Self::op(OpKind::SyncDir, dir), |st| {
            if !st.dir_exists(dir) {
                return Err(not_found(dir));
            }
            st.sync_dir(dir);
            Ok(())
        })
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let mut st = self.state();
        if let Some(fault) = st.begin(Self::op(OpKind::Lock, path))? {
            return st.finish(Err(fault.error()));
        }
        if !st.dir_exists(parent(path)) {
            return st.finish(Err(not_found(parent(path))));
        }
        if !st.locks.insert(path.to_path_buf()) {
            let err = io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another opener", path.display()),
            );
            return st.finish(Err(err));
        }
        if !st.names.contains_key(path) {
            let ino = st.new_inode();
            st.names.insert(path.to_path_buf(), ino);
            st.pending.push(DirOp::Link {
                path: path.to_path_buf(),
                ino,
            });
        }
        let lock = MemLock {
            fs: self.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        };
        st.finish(Ok(Box::new(lock)))
    }
}

/// A handle on one MemFs file.
struct MemFile {
    fs: MemFs,
    ino: u64,
    path: PathBuf,
    writable: bool,
    generation: u64,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile")
            .field("path", &self.path)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl MemFile {
    /// Runs a handle operation: numbered, fault-checked, traced, refused on a stale handle
    /// or (for writes) a read-only one. `f` gets the injected fault, if any, to apply its
    /// partial effect (torn append, failed sync).
    fn run<T>(
        &self,
        kind: OpKind,
        len: u64,
        f: impl FnOnce(&mut State, Option<Fault>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut st = self.fs.state();
        let op = Op {
            file_id: Some(self.ino),
            len,
            ..MemFs::op(kind, &self.path)
        };
        let fault = st.begin(op)?;
        let result = if st.generation != self.generation {
            Err(io::Error::other(
                "stale handle: the file system crashed since this file was opened",
            ))
        } else if kind.is_mutation() && !self.writable {
            Err(io::Error::from_raw_os_error(
                rustix::io::Errno::BADF.raw_os_error(),
            ))
        } else {
            f(&mut st, fault)
        };
        st.finish(result)
    }
}

fn inode(st: &mut State, ino: u64) -> io::Result<&mut Inode> {
    // Inodes are removed only by a crash, which also kills every handle on them.
    st.inodes
        .get_mut(&ino)
        .ok_or_else(|| io::Error::other("inode vanished"))
}

impl FsFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.run(OpKind::ReadAt, buf.len() as u64, |st, fault| {
            if let Some(fault) = fault {
                return Err(fault.error());
            }
            let data = &inode(st, self.ino)?.cached;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        })
    }

    fn append(&self, data: &[u8]) -> io::Result<()> {
        self.run(OpKind::Append, data.len() as u64, |st, fault| {
            let keep = match fault {
                None => data.len(),
                Some(Fault::Torn { keep }) => keep.min(data.len()),
                Some(other) => return Err(other.error()),
            };
            let inode = inode(st, self.ino)?;
            let start = inode.cached.len();
            inode.cached.extend_from_slice(&data[..keep]);
            // Rewritten pages are dirty again: a later sync writes them.
            let pages = start / PAGE..(start + keep).div_ceil(PAGE);
            inode.lost_pages.retain(|p| !pages.contains(p));
            match fault {
                None => Ok(()),
                Some(f) => Err(f.error()),
            }
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.run(OpKind::Len, 0, |st, fault| match fault {
            Some(f) => Err(f.error()),
            None => Ok(inode(st, self.ino)?.cached.len() as u64),
        })
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.run(OpKind::Truncate, len, |st, fault| {
            if let Some(f) = fault {
                return Err(f.error());
            }
            let len =
                usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            inode(st, self.ino)?.cached.resize(len, 0);
            Ok(())
        })
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.run(OpKind::Allocate, len, |_, fault| {
            fault.map_or(Ok(()), |f| Err(f.error()))
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.run(OpKind::Sync, 0, |st, fault| match fault {
            None => {
                st.sync_file(self.ino);
                Ok(())
            }
            Some(f) => {
                st.fail_sync(self.ino);
                Err(f.error())
            }
        })
    }
}

/// A held MemFs lock; released on drop unless a crash released it already.
#[derive(Debug)]
struct MemLock {
    fs: MemFs,
    path: PathBuf,
    generation: u64,
}

impl FsLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        let mut st = self.fs.state();
        if st.generation == self.generation {
            st.locks.remove(&self.path);
        }
    }
}
