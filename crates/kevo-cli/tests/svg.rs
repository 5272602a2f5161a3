//! `kevo inspect DIR --svg FILE` and `kevo bench ... --svg FILE`: well-formed SVG with one
//! rectangle per table (id, level, key range as `inspect --json` reports them), read-only
//! on a database another handle holds open, and one bar per benchmark workload.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use kevo::{Db, Options, SyncMode};

fn kevo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(args)
        .output()
        .expect("run kevo")
}

fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Small tables, so a few hundred keys make several tables over two levels.
fn options() -> Options {
    Options::default()
        .sync_mode(SyncMode::None)
        .memtable_size(4 << 10)
        .target_file_size(4 << 10)
        .block_size(512)
        .l0_compaction_trigger(2)
}

fn fill(db: &Db, keys: u64) {
    for n in 0..keys {
        let i = (n * 7919) % keys;
        db.put(format!("key{i:04}"), format!("value {i} ").repeat(4))
            .expect("put");
    }
    db.flush().expect("flush");
}

// ---------------------------------------------------------------------------------------
// A minimal XML reader: enough to check well-formedness (balanced tags, quoted
// attributes, no raw `<` or stray `&` in text) and to list the elements.

#[derive(Debug)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
}

fn check_entities(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        let tail = &rest[at..];
        let end = tail
            .find(';')
            .ok_or(format!("unterminated entity in {s:?}"))?;
        let name = &tail[1..end];
        let known = ["amp", "lt", "gt", "quot", "apos"].contains(&name)
            || name.starts_with('#') && name.len() > 1;
        if !known {
            return Err(format!("unknown entity &{name}; in {s:?}"));
        }
        rest = &tail[end + 1..];
    }
    if s.contains('<') {
        return Err(format!("raw < in {s:?}"));
    }
    Ok(())
}

fn parse_tag(tag: &str) -> Result<Element, String> {
    let tag = tag.trim();
    let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
    let name = tag[..name_end].to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || ":-_".contains(c))
    {
        return Err(format!("bad element name in <{tag}>"));
    }
    let mut attrs = BTreeMap::new();
    let mut rest = tag[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or(format!("attribute without value in <{tag}>"))?;
        let key = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().ok_or("attribute value missing")?;
        if quote != '"' && quote != '\'' {
            return Err(format!("unquoted attribute {key} in <{tag}>"));
        }
        let close = after[1..]
            .find(quote)
            .ok_or(format!("unterminated attribute {key}"))?;
        let value = &after[1..=close];
        check_entities(value)?;
        if attrs.insert(key.clone(), value.to_string()).is_some() {
            return Err(format!("duplicate attribute {key} in <{tag}>"));
        }
        rest = after[close + 2..].trim_start();
    }
    Ok(Element { name, attrs })
}

/// Every element of a well-formed document with a single root, in document order.
fn parse_xml(doc: &str) -> Result<Vec<Element>, String> {
    let mut elements = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = doc;
    if let Some(stripped) = rest.strip_prefix("<?xml") {
        let end = stripped.find("?>").ok_or("unterminated XML declaration")?;
        rest = &stripped[end + 2..];
    }
    loop {
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..lt];
        check_entities(text)?;
        if open.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment.find("-->").ok_or("unterminated comment")?;
            rest = &comment[end + 3..];
            continue;
        }
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let expected = open.pop().ok_or(format!("stray </{name}>"))?;
            if expected != name.trim() {
                return Err(format!("</{name}> closes <{expected}>"));
            }
        } else if let Some(body) = tag.strip_suffix('/') {
            if open.is_empty() {
                roots += 1;
            }
            elements.push(parse_tag(body)?);
        } else {
            if open.is_empty() {
                roots += 1;
            }
            let element = parse_tag(tag)?;
            open.push(element.name.clone());
            elements.push(element);
        }
    }
    if let Some(name) = open.pop() {
        return Err(format!("<{name}> never closed"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(elements)
}

#[test]
fn the_xml_checker_refuses_broken_documents() {
    assert!(parse_xml("<svg><rect a=\"1\"/><text>a &amp; b</text></svg>").is_ok());
    for bad in [
        "<svg><g></svg>",
        "<svg><text>a < b</text></svg>",
        "<svg><text>a & b</text></svg>",
        "<svg a=1></svg>",
        "<svg></svg><svg></svg>",
    ] {
        assert!(parse_xml(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------

/// The bytes an escaped key (as `inspect --json` prints it) stands for, in hex.
fn hex_of_escaped(escaped: &str) -> String {
    let bytes = escaped.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn svg_elements(file: &Path) -> Vec<Element> {
    let text = std::fs::read_to_string(file).expect("read the SVG");
    parse_xml(&text).unwrap_or_else(|e| panic!("not well-formed: {e}\n{text}"))
}

#[test]
fn inspect_svg_draws_one_rectangle_per_table_with_its_level_and_key_range() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("db");
    let db = Db::open(&dir, options()).expect("open");
    fill(&db, 600);
    // Where background compaction got to varies: make sure of a compacted last level of
    // several tables and a newer L0 table above it.
    db.compact().expect("compact");
    for i in 0..30 {
        db.put(format!("late{i:02}"), "v").expect("put");
    }
    db.flush().expect("flush");
    db.put("zz-in-the-wal", "<&>").expect("put");
    db.close().expect("close");

    let file = tmp.path().join("shape.svg");
    ok(&kevo(&["inspect", path(&dir), "--svg", path(&file)]));
    let elements = svg_elements(&file);
    assert_eq!(elements[0].name, "svg");
    let rects: BTreeMap<&str, &Element> = elements
        .iter()
        .filter(|e| e.name == "rect")
        .filter_map(|e| {
            e.attrs
                .get("id")
                .filter(|id| id.starts_with("table-"))
                .map(|id| (id.as_str(), e))
        })
        .collect();
    let table_rects = elements
        .iter()
        .filter(|e| e.attrs.get("id").is_some_and(|id| id.starts_with("table-")))
        .count();

    let inspection: serde_json::Value =
        serde_json::from_slice(&ok(&kevo(&["inspect", path(&dir), "--json"])).stdout)
            .expect("JSON");
    let tables: Vec<&serde_json::Value> = inspection["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .flat_map(|l| l["tables"].as_array().expect("tables"))
        .collect();
    let levels_with_tables = inspection["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .filter(|l| !l["tables"].as_array().expect("tables").is_empty())
        .count();
    assert!(
        levels_with_tables >= 2,
        "the test wants several levels: {inspection}"
    );
    assert!(tables.len() >= 4, "{inspection}");
    assert_eq!(table_rects, tables.len(), "one rectangle per table");
    assert_eq!(rects.len(), tables.len(), "ids are unique");
    for t in &tables {
        let id = format!("table-{:06}", t["number"].as_u64().expect("number"));
        let rect = rects
            .get(id.as_str())
            .unwrap_or_else(|| panic!("no rectangle {id}"));
        assert_eq!(rect.attrs["data-level"], t["level"].to_string(), "{id}");
        assert_eq!(
            rect.attrs["data-smallest"],
            hex_of_escaped(t["smallest"]["user_key"].as_str().expect("key")),
            "{id}"
        );
        assert_eq!(
            rect.attrs["data-largest"],
            hex_of_escaped(t["largest"]["user_key"].as_str().expect("key")),
            "{id}"
        );
        let width: f64 = rect.attrs["width"].parse().expect("width");
        assert!(width >= 3.0, "{id}: tiny tables stay visible ({width})");
    }
    // Below L0 a level's tables do not overlap: their rectangles follow each other.
    for level in inspection["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .skip(1)
    {
        let mut last_end = f64::NEG_INFINITY;
        for t in level["tables"].as_array().expect("tables") {
            let rect = rects[format!("table-{:06}", t["number"].as_u64().expect("n")).as_str()];
            let x: f64 = rect.attrs["x"].parse().expect("x");
            assert!(x + 0.01 >= last_end, "{level}");
            last_end = x;
        }
    }

    // `--svg -`: the same picture on stdout, and no report.
    let out = ok(&kevo(&["inspect", path(&dir), "--svg", "-"]))
        .stdout
        .clone();
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        std::fs::read_to_string(&file).expect("read")
    );
    // The WAL is listed beside.
    let text = std::fs::read_to_string(&file).expect("read");
    let wal = inspection["wals"][0]["name"].as_str().expect("a live WAL");
    assert!(text.contains(wal), "{text}");
}

fn attr<'a>(e: &'a Element, name: &str) -> &'a str {
    e.attrs
        .get(name)
        .unwrap_or_else(|| panic!("<{} ...> without {name}: {:?}", e.name, e.attrs))
}

fn number(e: &Element, name: &str) -> f64 {
    attr(e, name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {:?}", e.attrs))
}

#[test]
fn inspect_svg_marks_each_tables_tombstones_and_age_and_draws_a_memtable_per_live_wal() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("db");
    let opts = options()
        .memtable_size(1 << 20)
        .disable_auto_compactions(true);
    let db = Db::open(&dir, opts).expect("open");
    // One table of 40 puts and 15 tombstones, one of puts only.
    for i in 0..40 {
        db.put(format!("key{i:04}"), "value").expect("put");
    }
    for i in 100..115 {
        db.delete(format!("key{i:04}")).expect("delete");
    }
    db.flush().expect("flush");
    for i in 200..220 {
        db.put(format!("key{i:04}"), "value").expect("put");
    }
    db.flush().expect("flush");
    // Closed without a flush: 6 puts and 3 deletes stay in the WAL.
    for i in 300..306 {
        db.put(format!("key{i:04}"), "v").expect("put");
    }
    for i in 0..3 {
        db.delete(format!("key{i:04}")).expect("delete");
    }
    db.close().expect("close");

    let file = tmp.path().join("tombstones.svg");
    ok(&kevo(&["inspect", path(&dir), "--svg", path(&file)]));
    let elements = svg_elements(&file);
    let tables: Vec<&Element> = elements
        .iter()
        .filter(|e| e.attrs.get("id").is_some_and(|id| id.starts_with("table-")))
        .collect();
    assert_eq!(tables.len(), 2);
    let mut tombstones: Vec<(&str, &str)> = tables
        .iter()
        .map(|t| (attr(t, "data-entries"), attr(t, "data-tombstones")))
        .collect();
    tombstones.sort_unstable();
    assert_eq!(tombstones, [("20", "0"), ("55", "15")]);
    for t in &tables {
        let age = number(t, "data-age-secs");
        assert!((0.0..3600.0).contains(&age), "written just now: {age}");
        assert!(attr(t, "data-created-at").parse::<u64>().is_ok());
    }
    // The table with tombstones has a band 15/55 of its height; the other has none.
    let bands: Vec<&Element> = elements
        .iter()
        .filter(|e| e.attrs.get("class").is_some_and(|c| c == "tombstones"))
        .collect();
    assert_eq!(bands.len(), 1);
    let marked = tables
        .iter()
        .find(|t| attr(t, "data-tombstones") == "15")
        .expect("the table with tombstones");
    assert_eq!(
        format!("table-{}", attr(bands[0], "data-table")),
        attr(marked, "id")
    );
    let share = number(bands[0], "height") / number(marked, "height");
    assert!((share - 15.0 / 55.0).abs() < 0.02, "{share}");

    let memtables: Vec<&Element> = elements
        .iter()
        .filter(|e| e.attrs.get("class").is_some_and(|c| c == "memtable"))
        .collect();
    let inspection: serde_json::Value =
        serde_json::from_slice(&ok(&kevo(&["inspect", path(&dir), "--json"])).stdout)
            .expect("JSON");
    let wals = inspection["wals"].as_array().expect("wals");
    assert_eq!(memtables.len(), wals.len(), "a memtable box per live WAL");
    let held: Vec<(&str, &str)> = memtables
        .iter()
        .filter(|m| attr(m, "data-entries") != "0")
        .map(|m| (attr(m, "data-entries"), attr(m, "data-tombstones")))
        .collect();
    assert_eq!(held, [("9", "3")], "the writes left in the WAL");
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("15 tombstones"), "the title totals them");
}

/// Every file in `dir` and its content.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().into_string().expect("utf-8 name");
            let content = if e.file_type().expect("type").is_file() {
                std::fs::read(e.path()).expect("read")
            } else {
                Vec::new()
            };
            (name, content)
        })
        .collect()
}

#[test]
fn inspect_svg_works_on_an_open_database_and_changes_no_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("db");
    let db = Db::open(&dir, options().disable_auto_compactions(true)).expect("open");
    fill(&db, 300);
    db.put("pending", "in the WAL only").expect("put");

    let before = snapshot(&dir);
    let file = tmp.path().join("open.svg");
    ok(&kevo(&["inspect", path(&dir), "--svg", path(&file)]));
    assert_eq!(
        snapshot(&dir),
        before,
        "inspect --svg changed the directory"
    );
    let rects = svg_elements(&file)
        .into_iter()
        .filter(|e| e.attrs.get("id").is_some_and(|id| id.starts_with("table-")))
        .count();
    assert!(rects >= 2, "{rects}");
    // The open database's memtable, read from its WAL.
    let pending = svg_elements(&file)
        .into_iter()
        .filter(|e| e.attrs.get("class").is_some_and(|c| c == "memtable"))
        .map(|e| number(&e, "data-entries"))
        .sum::<f64>();
    assert!(pending >= 1.0, "{pending}");
    db.close().expect("close");
}

#[test]
fn bench_svg_has_one_throughput_bar_per_workload() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("bench.svg");
    ok(&kevo(&[
        "bench",
        "--num",
        "2000",
        "--benchmarks",
        "fillrandom,readrandom",
        "--svg",
        path(&file),
    ]));
    let elements = svg_elements(&file);
    let bars: Vec<&str> = elements
        .iter()
        .filter(|e| e.attrs.get("class").is_some_and(|c| c == "ops-bar"))
        .map(|e| e.attrs["data-workload"].as_str())
        .collect();
    assert_eq!(bars, ["fillrandom", "readrandom"]);
    let latency = elements
        .iter()
        .filter(|e| e.attrs.get("class").is_some_and(|c| c == "latency-bar"))
        .count();
    assert_eq!(latency, 6, "p50, p99, p99.9 per workload");
}

#[test]
fn bench_svg_draws_a_throughput_line_per_workload_and_the_events_the_report_lists() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("timeline.svg");
    // A 64 KiB memtable: the fill's 1.2 MB of writes go through many flushes.
    let out = ok(&kevo(&[
        "bench",
        "--num",
        "10000",
        "--benchmarks",
        "fillrandom,readrandom",
        "--write_buffer_size",
        "65536",
        "--svg",
        path(&file),
        "--json",
    ]))
    .stdout
    .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    let elements = svg_elements(&file);
    let lines: Vec<&Element> = elements
        .iter()
        .filter(|e| e.attrs.get("class").is_some_and(|c| c == "throughput-line"))
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| attr(l, "data-workload")).collect();
    assert_eq!(names, ["fillrandom", "readrandom"], "one line per workload");
    for line in &lines {
        let points: Vec<(f64, f64)> = attr(line, "points")
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect();
        assert!(!points.is_empty(), "{:?}", line.attrs);
        assert!(
            points.windows(2).all(|w| w[0].0 <= w[1].0),
            "time runs left to right: {points:?}"
        );
    }

    let marks = |class: &str, workload: &str| {
        elements
            .iter()
            .filter(|e| {
                e.attrs.get("class").is_some_and(|c| c == class)
                    && e.attrs.get("data-workload").is_some_and(|w| w == workload)
            })
            .count()
    };
    for w in doc["workloads"].as_array().expect("workloads") {
        let name = w["name"].as_str().expect("name");
        let timeline = &w["timeline"];
        let samples = timeline["samples"].as_array().expect("samples");
        let last = samples.last().expect("at least the last sample");
        assert_eq!(last["ops"], w["ops"], "{name}: every op is counted");
        let events = timeline["events"].as_array().expect("events");
        for kind in ["flush", "compaction", "stall"] {
            let listed = events.iter().filter(|e| e["kind"] == kind).count();
            assert_eq!(
                marks(&format!("{kind}-mark"), name),
                listed,
                "{name}: a mark per {kind} the report lists"
            );
        }
    }
    // Of the run's flushes, at most max_memtables (2) + 1 began after the fill ended: the
    // frozen memtables not yet flushing, and the flush the bench asks for after a writing
    // workload. Any other began during the fill, and the bench waited for it to end (and
    // be logged) before reading the events: it must be marked.
    let flushes = doc["engine_stats"]["flushes"].as_u64().expect("flushes");
    if flushes > 3 {
        assert!(
            marks("flush-mark", "fillrandom") >= 1,
            "{flushes} flushes, none during the fill?"
        );
    }
}
