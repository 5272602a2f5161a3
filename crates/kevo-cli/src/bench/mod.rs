//! `kevo bench`: LevelDB's db_bench workloads, with latency percentiles, write and space
//! amplification, and a JSON report for machines.
//!
//! The engine sits behind [`engine::Engine`] so other engines can be measured the same way.

mod data;
mod engine;
mod peers;
mod progress;
mod report;
mod timeline;
mod workloads;

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use kevo::{Error, Result};
use serde::Serialize;

use data::{Values, digits};
use engine::{Engine, EngineConfig, EngineKind};
use report::{Amplification, Outcome};
use workloads::{Ctx, KeyState, Kind, Workload};

const DEFAULT_BENCHMARKS: &str = "fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,readreverse,seekrandom,deleterandom,fillsync,readwhilewriting";

/// Largest value accepted (kevo's default `max_value_size`).
const MAX_VALUE_SIZE: usize = 64 << 20;

/// `kevo bench` flags, named as db_bench's.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Comma-separated workloads, run in order: fillseq, fillrandom, overwrite, fillsync,
    /// fill100K, readrandom, readmissing, readseq, readreverse, seekrandom, prefixscan,
    /// prefixmissing, deleterandom, readwhilewriting.
    #[arg(long, default_value = DEFAULT_BENCHMARKS)]
    benchmarks: String,
    /// Keys (as db_bench's default; every default workload together takes about 35 s on two
    /// cores).
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Reads per read workload (default: --num).
    #[arg(long)]
    reads: Option<u64>,
    /// Bytes per value.
    #[arg(long = "value_size", alias = "value-size", default_value_t = 100)]
    value_size: usize,
    /// Bytes per key: the key index in zero-padded decimal.
    #[arg(long = "key_size", alias = "key-size", default_value_t = 16)]
    key_size: usize,
    /// Threads sharing each workload's operations (readwhilewriting: readers, plus one
    /// writer).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Database directory (default: a temporary one, removed at the end). Fills delete the
    /// database in it first; anything that is not the engine's files is never deleted.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Work on the database already in --db: fills write into it instead of starting over.
    #[arg(long = "use_existing_db", alias = "use-existing-db")]
    use_existing_db: bool,
    /// How far values compress (db_bench's: random bytes, repeated), in (0, 1].
    #[arg(
        long = "compression_ratio",
        alias = "compression-ratio",
        default_value_t = 0.5
    )]
    compression_ratio: f64,
    /// Sync every write of the workloads other than fillsync (which always does).
    #[arg(long)]
    sync: bool,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the results as one SVG picture into FILE: ops/s per workload, and p50,
    /// p99, p99.9 latency per workload (log scale).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Seed of the key and value generators.
    #[arg(long, default_value_t = 301)]
    seed: u64,
    /// The engine to measure.
    #[arg(long, value_enum, default_value_t = EngineKind::Kevo)]
    engine: EngineKind,
    /// Memtable bytes (default: the engine's).
    #[arg(long = "write_buffer_size", alias = "write-buffer-size")]
    write_buffer_size: Option<usize>,
    /// Block cache bytes (default: the engine's).
    #[arg(long = "cache_size", alias = "cache-size")]
    cache_size: Option<usize>,
    /// Bloom filter bits per key, 0 for none (default: the engine's).
    #[arg(long = "bloom_bits", alias = "bloom-bits")]
    bloom_bits: Option<u32>,
    /// Compaction output table bytes (default: the engine's).
    #[arg(long = "target_file_size", alias = "target-file-size")]
    target_file_size: Option<u64>,
    /// Data block bytes (default: the engine's; kevo and RocksDB).
    #[arg(long = "block_size", alias = "block-size")]
    block_size: Option<usize>,
    /// Compaction style (default: the engine's).
    #[arg(long = "compaction_style", alias = "compaction-style", value_enum)]
    compaction_style: Option<engine::StyleArg>,
    /// kevo's filter policy: none, bits:B, fp:RATE or optimized:B (overrides --bloom_bits;
    /// default: the engine's).
    #[arg(long = "filter_policy", alias = "filter-policy", value_parser = parse_filter_policy)]
    filter_policy: Option<kevo::FilterPolicy>,
    /// Give kevo a fixed-length prefix extractor of this many bytes, and scan prefixes of
    /// this length in prefixscan and prefixmissing (default for those: --key_size - 2, with
    /// no extractor).
    #[arg(long = "prefix_len", alias = "prefix-len")]
    prefix_len: Option<usize>,
}

/// `--filter_policy`: none, bits:B, fp:RATE, optimized:B.
fn parse_filter_policy(text: &str) -> std::result::Result<kevo::FilterPolicy, String> {
    use kevo::FilterPolicy;
    let number = |s: &str| s.parse::<f64>().map_err(|e| format!("`{s}`: {e}"));
    let policy = match text.split_once(':') {
        None if text == "none" => FilterPolicy::None,
        Some(("bits", b)) => FilterPolicy::BitsPerKey(number(b)?),
        Some(("fp", r)) => FilterPolicy::FalsePositiveRate(number(r)?),
        Some(("optimized", b)) => FilterPolicy::Optimized {
            bits_per_key: number(b)?,
        },
        _ => return Err("expected none, bits:B, fp:RATE or optimized:B".into()),
    };
    kevo::Options::default()
        .filter_policy(policy)
        .validate()
        .map_err(|e| e.to_string())?;
    Ok(policy)
}

/// The settings every workload reads.
#[derive(Debug, Serialize)]
pub struct Params {
    pub num: u64,
    pub reads: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub threads: usize,
    pub sync: bool,
    pub seed: u64,
    pub compression_ratio: f64,
    /// Bytes of the prefixes prefixscan and prefixmissing scan.
    pub prefix_len: usize,
    /// Show a live operation count on stderr (a terminal, and not --json).
    #[serde(skip)]
    pub show_progress: bool,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    engine: &'a str,
    benchmarks: Vec<&'static str>,
    params: &'a Params,
    db: Option<&'a Path>,
    use_existing_db: bool,
    workloads: &'a [Outcome],
    /// Fills run first because a workload needed data; not part of the results.
    setup: &'a [Outcome],
    engine_stats: serde_json::Value,
    peak_rss_bytes: Option<u64>,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let benchmarks = parse_benchmarks(&args.benchmarks)?;
    let params = validate(args)?;
    let temp;
    let (main_dir, side_parent) = match &args.db {
        Some(db) => {
            let parent = db
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (db.clone(), parent.to_path_buf())
        }
        None => {
            temp =
                tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
            (temp.path().join("db"), temp.path().to_path_buf())
        }
    };
    let max_value = benchmarks
        .iter()
        .map(|w| w.value_size(&params))
        .max()
        .unwrap_or(params.value_size);
    let values = Values::new(params.seed, params.compression_ratio, max_value);
    let mut bench = Bench {
        kind: args.engine,
        config: engine_config(args),
        params: &params,
        values: &values,
        use_existing: args.use_existing_db,
        main_dir,
        side_parent,
        main: None,
        stream: 0,
        setup: Vec::new(),
    };
    if !args.json {
        print_header(args, &params, &bench.main_dir);
    }
    let (mut outcomes, mut setups_shown) = (Vec::new(), 0);
    for &w in &benchmarks {
        let outcome = bench.workload(w)?;
        if !args.json {
            for setup in &bench.setup[setups_shown..] {
                println!(
                    "{}  (setup for {}: not a result)",
                    report::table_row(setup),
                    w.name()
                );
            }
            setups_shown = bench.setup.len();
            println!("{}", report::table_row(&outcome));
            // Rows appear as workloads finish; a failed flush of stdout is not worth failing for.
            let _ = std::io::stdout().flush();
        }
        outcomes.push(outcome);
    }
    let engine_stats = bench
        .main
        .as_ref()
        .map_or(serde_json::Value::Null, |(e, _)| e.stats());
    if let Some((engine, _)) = bench.main.take() {
        engine.close()?;
    }
    let peak_rss_bytes = report::peak_rss();
    if let Some(path) = &args.svg {
        crate::svg::write(path, &chart(args, &params, &outcomes))?;
    }
    if args.json {
        let doc = JsonReport {
            engine: args.engine.name(),
            benchmarks: benchmarks.iter().map(|w| w.name()).collect(),
            params: &params,
            db: args.db.as_deref(),
            use_existing_db: args.use_existing_db,
            workloads: &outcomes,
            setup: &bench.setup,
            engine_stats,
            peak_rss_bytes,
        };
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::new(kevo::ErrorKind::Io, "encoding JSON").with_source(e))?;
        println!("{text}");
    } else {
        print_footer(&outcomes, peak_rss_bytes);
    }
    // Wrong answers make the figures meaningless: say so, and fail the run.
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|o| o.mismatches.is_some_and(|m| m > 0))
        .map(|o| format!("{}: {}", o.name, o.mismatches.unwrap_or(0)))
        .collect();
    if wrong.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "kevo bench: reads disagreed with what was written ({})",
            wrong.join(", ")
        );
        Ok(ExitCode::from(1))
    }
}

/// The picture of a run's results (setup fills left out: they are not results).
fn chart(args: &BenchArgs, p: &Params, outcomes: &[Outcome]) -> String {
    let bars: Vec<crate::svg::BenchBar> = outcomes
        .iter()
        .map(|o| crate::svg::BenchBar {
            name: o.name.clone(),
            ops_per_sec: o.ops_per_sec,
            p50: o.latency_us.p50,
            p99: o.latency_us.p99,
            p999: o.latency_us.p999,
            series: o.timeline.as_ref().map(series),
        })
        .collect();
    let mut subtitle = format!(
        "{} keys of {} bytes, values of {} bytes; {} thread{}; writes {}; seed {}",
        p.num,
        p.key_size,
        p.value_size,
        p.threads,
        if p.threads == 1 { "" } else { "s" },
        if p.sync { "synced" } else { "not synced" },
        p.seed
    );
    // The engine settings that are not its defaults.
    let c = engine_config(args);
    for (flag, value) in [
        (
            "write_buffer_size",
            c.write_buffer_size.map(|v| v.to_string()),
        ),
        ("cache_size", c.cache_size.map(|v| v.to_string())),
        ("bloom_bits", c.bloom_bits.map(|v| v.to_string())),
        (
            "target_file_size",
            c.target_file_size.map(|v| v.to_string()),
        ),
        ("block_size", c.block_size.map(|v| v.to_string())),
        (
            "compaction_style",
            c.compaction_style.map(|v| format!("{v:?}").to_lowercase()),
        ),
    ] {
        if let Some(value) = value {
            let _ = write!(subtitle, "; --{flag} {value}");
        }
    }
    crate::svg::bench_chart(args.engine.name(), &subtitle, &bars)
}

/// A workload's timeline as the picture draws it.
fn series(t: &timeline::Timeline) -> crate::svg::Series {
    use crate::svg::{Mark, MarkKind};
    crate::svg::Series {
        interval: t.interval_secs,
        samples: t.samples.iter().map(|s| (s.secs, s.ops)).collect(),
        marks: t
            .events
            .iter()
            .map(|e| Mark {
                kind: match e.kind {
                    timeline::EventKind::Flush => MarkKind::Flush,
                    timeline::EventKind::Compaction => MarkKind::Compaction,
                    timeline::EventKind::Stall => MarkKind::Stall,
                },
                start: e.start_secs,
                end: e.end_secs,
                label: e.detail.clone(),
            })
            .collect(),
    }
}

fn engine_config(args: &BenchArgs) -> EngineConfig {
    EngineConfig {
        write_buffer_size: args.write_buffer_size,
        cache_size: args.cache_size,
        bloom_bits: args.bloom_bits,
        target_file_size: args.target_file_size,
        compaction_style: args.compaction_style,
        block_size: args.block_size,
        filter_policy: args.filter_policy,
        prefix_len: args.prefix_len,
    }
}

fn parse_benchmarks(list: &str) -> Result<Vec<Workload>> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Err(Error::invalid_argument("--benchmarks names no workload"));
    }
    names
        .into_iter()
        .map(|name| {
            Workload::parse(name).ok_or_else(|| {
                let known: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                Error::invalid_argument(format!(
                    "unknown benchmark `{name}` (known: {})",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

fn validate(args: &BenchArgs) -> Result<Params> {
    let bad = |msg: String| Err(Error::invalid_argument(msg));
    if args.num == 0 {
        return bad("--num must be at least 1".into());
    }
    if !(1..=1024).contains(&args.threads) {
        return bad(format!("--threads must be 1 to 1024, got {}", args.threads));
    }
    let needed = digits(args.num - 1);
    if args.key_size < needed || args.key_size > 1024 {
        return bad(format!(
            "--key_size must be {needed} to 1024 for --num {} (keys are decimal indexes), got {}",
            args.num, args.key_size
        ));
    }
    if args.value_size > MAX_VALUE_SIZE {
        return bad(format!(
            "--value_size must be at most {MAX_VALUE_SIZE}, got {}",
            args.value_size
        ));
    }
    if !(args.compression_ratio > 0.0 && args.compression_ratio <= 1.0) {
        return bad(format!(
            "--compression_ratio must be in (0, 1], got {}",
            args.compression_ratio
        ));
    }
    if args.prefix_len.is_some_and(|n| n == 0 || n > args.key_size) {
        return bad(format!(
            "--prefix_len must be 1 to --key_size ({})",
            args.key_size
        ));
    }
    if args.use_existing_db && args.db.is_none() {
        return bad("--use_existing_db needs --db".into());
    }
    if usize::try_from(args.num).is_err() {
        return bad(format!("--num {} is too large", args.num));
    }
    Ok(Params {
        num: args.num,
        reads: args.reads.unwrap_or(args.num),
        key_size: args.key_size,
        value_size: args.value_size,
        threads: args.threads,
        sync: args.sync,
        seed: args.seed,
        compression_ratio: args.compression_ratio,
        prefix_len: args
            .prefix_len
            .unwrap_or(args.key_size.saturating_sub(2).max(1)),
        show_progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    })
}

/// The database workloads share, and how to make a fresh one.
struct Bench<'a> {
    kind: EngineKind,
    config: EngineConfig,
    params: &'a Params,
    values: &'a Values,
    use_existing: bool,
    main_dir: PathBuf,
    /// Where side fills make their own databases (beside the main one: same file system).
    side_parent: PathBuf,
    main: Option<(Arc<dyn Engine>, KeyState)>,
    stream: u64,
    setup: Vec<Outcome>,
}

impl Bench<'_> {
    fn workload(&mut self, w: Workload) -> Result<Outcome> {
        match w.kind() {
            Kind::Fill if !self.use_existing => {
                if let Some((engine, _)) = self.main.take() {
                    engine.close()?;
                }
                self.kind.destroy(&self.main_dir)?;
                let engine = self.kind.open(&self.main_dir, &self.config, true)?;
                let state = KeyState::new(self.params.num, self.params.key_size);
                self.main = Some((engine, state));
            }
            Kind::SideFill if !self.use_existing => return self.side_fill(w),
            _ => {
                if self.main.is_none() {
                    self.prepare_main()?;
                }
            }
        }
        let stream = self.next_stream();
        let (engine, state) = self.main.as_ref().ok_or_else(Error::closed)?;
        measure(w, engine.as_ref(), state, self.values, self.params, stream)
    }

    /// Opens the database a workload that needs data works on: the existing one, or a
    /// fresh one filled with fillrandom first (a setup, not a result).
    fn prepare_main(&mut self) -> Result<()> {
        if self.use_existing {
            let engine = self.kind.open(&self.main_dir, &self.config, false)?;
            let state = KeyState::load(engine.as_ref(), self.params.num, self.params.key_size)?;
            self.main = Some((engine, state));
            return Ok(());
        }
        self.kind.destroy(&self.main_dir)?;
        let engine = self.kind.open(&self.main_dir, &self.config, true)?;
        let state = KeyState::new(self.params.num, self.params.key_size);
        let stream = self.next_stream();
        let fill = Workload::FillRandom;
        let outcome = measure(
            fill,
            engine.as_ref(),
            &state,
            self.values,
            self.params,
            stream,
        )?;
        self.setup.push(outcome);
        self.main = Some((engine, state));
        Ok(())
    }

    /// fillsync and fill100K in a database of their own, removed after.
    fn side_fill(&mut self, w: Workload) -> Result<Outcome> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kevo-bench-{}-", w.name()))
            .tempdir_in(&self.side_parent)
            .map_err(|e| {
                Error::io("creating a scratch database directory", e).with_file(&self.side_parent)
            })?;
        let engine = self.kind.open(dir.path(), &self.config, true)?;
        let state = KeyState::new(self.params.num, self.params.key_size);
        let stream = self.next_stream();
        let outcome = measure(w, engine.as_ref(), &state, self.values, self.params, stream)?;
        engine.close()?;
        Ok(outcome)
    }

    fn next_stream(&mut self) -> u64 {
        self.stream += 1;
        self.stream
    }
}

/// Runs one workload; after a writing one, flushes and measures amplification (not timed).
fn measure(
    w: Workload,
    engine: &dyn Engine,
    state: &KeyState,
    values: &Values,
    params: &Params,
    stream: u64,
) -> Result<Outcome> {
    let written_before = report::bytes_written();
    let tables_before = engine.table_bytes_written();
    let blocks_before = engine.block_counts();
    let ctx = Ctx {
        engine,
        state,
        values,
        params,
        stream,
    };
    let progress = progress::Progress::start(w.name(), params.show_progress);
    let outcome = workloads::run(w, &ctx);
    progress.finish();
    let mut outcome = outcome?;
    if let Some(((hits0, reads0), (hits1, reads1))) = blocks_before.zip(engine.block_counts())
        && outcome.ops > 0
    {
        let per_op = |n: u64| (n as f64 / outcome.ops as f64 * 1000.0).round() / 1000.0;
        outcome.blocks_per_op = Some(per_op((hits1 - hits0) + (reads1 - reads0)));
        outcome.block_reads_per_op = Some(per_op(reads1 - reads0));
    }
    outcome.filter_memory_bytes = engine.filter_memory();
    if w.writes() {
        engine.flush()?;
        let file_bytes = written_before
            .zip(report::bytes_written())
            .map(|(before, after)| after.saturating_sub(before));
        let table_written = tables_before
            .zip(engine.table_bytes_written())
            .map(|(before, after)| after.saturating_sub(before));
        let table_bytes = engine.table_bytes()?;
        let (_, live) = state.live();
        let ratio = |n: u64, d: u64| (d > 0).then(|| (n as f64 / d as f64 * 100.0).round() / 100.0);
        outcome.amplification = Some(Amplification {
            user_bytes: outcome.bytes,
            table_bytes_written: table_written,
            write_amp: table_written.and_then(|t| ratio(t, outcome.bytes)),
            file_bytes_written: file_bytes,
            io_write_amp: file_bytes.and_then(|f| ratio(f, outcome.bytes)),
            table_bytes,
            live_bytes: Some(live),
            space_amp: ratio(table_bytes, live),
            sorted_runs: engine.sorted_runs(),
        });
    }
    // After the flush: events that began during the workload and ended since are kept.
    if let Some(t) = &mut outcome.timeline
        && let Some((from, to)) = t.span
    {
        t.events = engine.drain_events(from, to);
    }
    Ok(outcome)
}

fn print_header(args: &BenchArgs, p: &Params, dir: &Path) {
    println!(
        "kevo bench: {} engine; {} keys of {} bytes, values of {} bytes (compression ratio {}); {} thread{}; writes {}; seed {}",
        args.engine.name(),
        p.num,
        p.key_size,
        p.value_size,
        p.compression_ratio,
        p.threads,
        if p.threads == 1 { "" } else { "s" },
        if p.sync {
            "synced"
        } else {
            "not synced (fillsync syncs each)"
        },
        p.seed,
    );
    let place = if args.db.is_some() {
        ""
    } else {
        " (temporary, removed at the end)"
    };
    println!("database: {}{place}", dir.display());
    println!();
    println!("{}", report::TABLE_HEADER);
}

fn print_footer(outcomes: &[Outcome], peak_rss: Option<u64>) {
    println!();
    for line in [
        "latency: per op, in µs; found: lookups that found their key, or entries a scan visited",
        "w-amp: bytes written to tables (flush + compaction) / key+value bytes written",
        "io-amp: bytes written to any file (WAL too) / key+value bytes written",
        "s-amp: table bytes / live key+value bytes, after a flush (below 1: compression)",
        "runs: sorted runs after the flush (L0 tables + non-empty deeper levels): what a point read may consult",
        "blk/op: data blocks each op touched, from the block cache or a file (writing workloads: compaction's reads too)",
    ] {
        println!("{line}");
    }
    for o in outcomes {
        if let Some(writes) = o.writer_ops {
            println!(
                "{}: the writer overwrote {writes} keys meanwhile ({:.0}/s)",
                o.name,
                writes as f64 / o.seconds.max(1e-9)
            );
        }
    }
    if let Some(bytes) = peak_rss {
        println!("peak RSS: {:.1} MiB", bytes as f64 / f64::from(1 << 20));
    }
}
