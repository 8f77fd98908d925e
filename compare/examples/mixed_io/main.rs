//! The main job: lock entries against whole-file locks on the standard scenarios.
//!
//! ```text
//! cargo run --release --example mixed_io                      # every scenario, ~30 s, a table
//! cargo run --release --example mixed_io -- --json            # the same as a JSON array
//! cargo run --release --example mixed_io -- --scenario a --threads 1,2,4,8,16 --duration 2
//! cargo run --release --example mixed_io -- --scenario b --strategy rangelock,naive
//! cargo run --release --example mixed_io -- --scenario a,b,c,d --threads 1,2,4,8,16 --svg scaling.svg
//! cargo run --release --example mixed_io -- --scenario a --io-bytes 4194304 --hit-ratio 0.5
//! cargo run --release --example mixed_io -- --scenario d --spin --latency-us 5
//! cargo run --release --example mixed_io -- --device file:target/mixed_io.dev
//! ```
//!
//! `--device file:PATH` runs on a real file opened with `O_DIRECT` (created, sized and
//! removed by each run; a file system that refuses `O_DIRECT`, such as tmpfs, is an error
//! that names a directory that works), `--io-bytes` sets every direct IO and hole punch (the file and its regions grow to fit
//! them), `--hit-ratio` the share of reads that find their page cached, `--latency-us`
//! the device's time per transfer (plus 200 µs per MiB), `--spin` makes the device spin
//! instead of sleep.
//!
//! Each scenario (see `rangelock_compare::workload` for what each does and why) runs
//! against each strategy for `--duration` seconds, with the consistency oracle checking
//! every read. Columns: completed calls per second (all operations), the ratio to the
//! whole-file rw lock at the same thread count, the 99th percentile latency of all
//! calls, the worst time any call waited (its latency less its own device time), the
//! worst wait of a direct IO, stale reads and lost writes (completed writes missing
//! after the final write-back, or right after a checked fsync; both must be 0, except
//! for the `naive` control). Scenario e reports per file size the direct writes per second
//! over the whole empty file and the bytes allocated per lock (a counting allocator).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use rangelock_compare::workload::{self, empty_file_sweep, Report, Strategy, SCENARIOS};
use rangelock_testkit::counting_alloc::{allocated, Counting};

mod plot;

/// Counts the bytes allocated, per thread: scenario e runs alone on the main thread.
#[global_allocator]
static GLOBAL: Counting = Counting;

/// The file sizes of scenario e.
const SWEEP_SIZES: [u64; 4] = [4 << 10, 1 << 20, 1 << 30, 1 << 40];

struct Options {
    json: bool,
    scenarios: Vec<&'static workload::Scenario>,
    threads: Option<Vec<usize>>,
    duration: Duration,
    strategies: Vec<Strategy>,
    svg: Option<String>,
    /// Overrides of the scenarios' workloads.
    io_bytes: Option<u64>,
    hit_ratio: Option<f64>,
    latency_us: Option<f64>,
    spin: bool,
    /// `--device file:PATH`: a real file with O_DIRECT instead of the simulated device.
    device: workload::DeviceSpec,
}

const USAGE: &str = "usage: mixed_io [--json] [--scenario a,b,..] [--threads 1,2,..] \
[--duration SECONDS] [--strategy rangelock,rwlock,two-state,interval,dio-count,naive] [--svg FILE] \
[--io-bytes N] [--hit-ratio F] [--latency-us US] [--spin] [--device sim|file:PATH]";

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        json: false,
        scenarios: SCENARIOS.iter().collect(),
        threads: None,
        duration: Duration::from_millis(1200),
        strategies: Strategy::COMPARED.to_vec(),
        svg: None,
        io_bytes: None,
        hit_ratio: None,
        latency_us: None,
        spin: false,
        device: workload::DeviceSpec::Simulated,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--json" => options.json = true,
            "--scenario" => {
                options.scenarios = list(&value()?, |s| {
                    workload::Scenario::find(s).ok_or_else(|| format!("no scenario {s:?} (a..f)"))
                })?;
            }
            "--threads" => {
                options.threads = Some(list(&value()?, |s| match s.parse() {
                    Ok(n) if (1..=1024).contains(&n) => Ok(n),
                    _ => Err(format!("--threads: {s:?} is not a count from 1 to 1024")),
                })?);
            }
            "--duration" => {
                let v = value()?;
                options.duration = match v.parse::<f64>() {
                    Ok(s) if s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
                    _ => {
                        return Err(format!(
                            "--duration: {v:?} is not a number of seconds in (0, 3600]"
                        ))
                    }
                };
            }
            "--strategy" => {
                options.strategies = list(&value()?, |s| {
                    Strategy::from_name(s).ok_or_else(|| format!("no strategy {s:?}"))
                })?;
            }
            "--svg" => options.svg = Some(value()?),
            "--io-bytes" => {
                let v = value()?;
                options.io_bytes = match v.parse::<u64>() {
                    Ok(n) if n >= 512 && n % 512 == 0 && n <= 1 << 30 => Some(n),
                    _ => {
                        return Err(format!(
                            "--io-bytes: {v:?} is not a multiple of 512 from 512 to 1 GiB"
                        ))
                    }
                };
            }
            "--hit-ratio" => {
                let v = value()?;
                options.hit_ratio = match v.parse::<f64>() {
                    Ok(h) if (0.0..=1.0).contains(&h) => Some(h),
                    _ => return Err(format!("--hit-ratio: {v:?} is not a number from 0 to 1")),
                };
            }
            "--latency-us" => {
                let v = value()?;
                options.latency_us = match v.parse::<f64>() {
                    Ok(us) if (0.0..=1e6).contains(&us) => Some(us),
                    _ => {
                        return Err(format!(
                            "--latency-us: {v:?} is not a number of microseconds up to 1e6"
                        ))
                    }
                };
            }
            "--spin" => options.spin = true,
            "--device" => options.device = workload::DeviceSpec::parse(&value()?)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn list<T>(value: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    value.split(',').map(|s| item(s.trim())).collect()
}

/// One row of the output.
struct Row {
    scenario: String,
    strategy: &'static str,
    threads: usize,
    ops_per_sec: f64,
    p99_us: f64,
    worst_wait_us: f64,
    direct_wait_us: Option<f64>,
    stale_reads: u64,
    lost_writes: u64,
    fsync_lost: u64,
    bytes_per_lock: Option<u64>,
    errors: Vec<String>,
    detail: Option<Report>,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn workload_row(scenario: &str, report: Report) -> Row {
    let total = report.total();
    let direct = ["direct-read", "direct-write"]
        .iter()
        .filter_map(|op| report.op(op))
        .map(|s| us(s.worst_wait))
        .reduce(f64::max);
    Row {
        scenario: scenario.to_string(),
        strategy: report.strategy,
        threads: report.threads,
        ops_per_sec: report.ops_per_sec(),
        p99_us: us(total.latency.quantile(0.99)),
        worst_wait_us: us(total.worst_wait),
        direct_wait_us: direct,
        stale_reads: report.stale_reads,
        lost_writes: report.lost_writes,
        fsync_lost: report.fsync_lost,
        bytes_per_lock: None,
        errors: report.errors.clone(),
        detail: Some(report),
    }
}

fn size_name(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut v = bytes;
    while v >= 1024 && v % 1024 == 0 && unit + 1 < UNITS.len() {
        v /= 1024;
        unit += 1;
    }
    format!("{v}{}", UNITS[unit])
}

fn progress(options: &Options, what: &str) {
    if !options.json && std::io::stderr().is_terminal() {
        eprint!("\r{what:<60}\r");
    }
}

fn sweep_rows(strategy: Strategy, scenario: &str) -> Result<Vec<Row>, String> {
    let allocated = || allocated() as u64;
    let rows = empty_file_sweep(strategy, &SWEEP_SIZES, 200, &allocated)?;
    Ok(rows
        .into_iter()
        .map(|r| Row {
            scenario: format!("{scenario}-{}", size_name(r.file_bytes)),
            strategy: strategy.name(),
            threads: 1,
            ops_per_sec: r.ops_per_sec,
            p99_us: us(r.worst),
            worst_wait_us: us(r.worst),
            direct_wait_us: Some(us(r.worst)),
            stale_reads: 0,
            lost_writes: 0,
            fsync_lost: 0,
            bytes_per_lock: Some(r.bytes_per_lock),
            errors: Vec::new(),
            detail: None,
        })
        .collect())
}

fn run(options: &Options) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for scenario in &options.scenarios {
        let thread_counts = options
            .threads
            .clone()
            .unwrap_or_else(|| vec![scenario.default_threads]);
        if scenario.is_sweep() {
            // The sweep: one thread; rows grouped by file size.
            let mut by_strategy = Vec::new();
            for &strategy in &options.strategies {
                progress(options, &format!("{} {}", scenario.name, strategy.name()));
                by_strategy.push(sweep_rows(strategy, scenario.name)?.into_iter());
            }
            for _ in SWEEP_SIZES {
                rows.extend(by_strategy.iter_mut().filter_map(Iterator::next));
            }
            continue;
        }
        for &threads in &thread_counts {
            for &strategy in &options.strategies {
                progress(
                    options,
                    &format!("{} {} x{threads}", scenario.name, strategy.name()),
                );
                let work = customise(
                    options,
                    scenario
                        .workload(threads, options.duration)
                        .expect("not the sweep"),
                );
                let report = workload::run_on(strategy.build().as_ref(), &work, &options.device)?;
                rows.push(workload_row(scenario.name, report));
            }
        }
    }
    progress(options, "");
    Ok(rows)
}

/// Applies the command line's overrides to a scenario's workload.
fn customise(options: &Options, mut work: workload::Workload) -> workload::Workload {
    if let Some(io) = options.io_bytes {
        work = work.with_io_bytes(io, 4096);
    }
    if let Some(hit) = options.hit_ratio {
        work = work.with_hit_ratio(hit);
    }
    if let Some(us) = options.latency_us {
        work.latency.base = Duration::from_secs_f64(us / 1e6);
    }
    if options.spin {
        work.latency.mode = workload::LatencyMode::Spin;
    }
    work
}

/// The rw lock's ops/s for the same scenario and thread count.
fn baseline(rows: &[Row], row: &Row) -> Option<f64> {
    rows.iter()
        .find(|r| r.scenario == row.scenario && r.threads == row.threads && r.strategy == "rwlock")
        .map(|r| r.ops_per_sec)
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<20} {:<10} {:>7} {:>12} {:>8} {:>10} {:>12} {:>12} {:>6} {:>5} {:>10}",
        "scenario",
        "strategy",
        "threads",
        "ops/s",
        "/rwlock",
        "p99 us",
        "worst wait",
        "dio wait",
        "stale",
        "lost",
        "B/lock"
    );
    for row in rows {
        let ratio =
            baseline(rows, row).map_or("-".into(), |b| format!("{:.2}x", row.ops_per_sec / b));
        println!(
            "{:<20} {:<10} {:>7} {:>12.0} {:>8} {:>10.1} {:>12.1} {:>12} {:>6} {:>5} {:>10}",
            row.scenario,
            row.strategy,
            row.threads,
            row.ops_per_sec,
            ratio,
            row.p99_us,
            row.worst_wait_us,
            row.direct_wait_us.map_or("-".into(), |w| format!("{w:.1}")),
            row.stale_reads,
            row.lost_writes + row.fsync_lost,
            row.bytes_per_lock.map_or("-".into(), |b| b.to_string()),
        );
        for error in &row.errors {
            println!("    ! {error}");
        }
    }
    println!(
        "(2-core machines: scenarios a-d sleep in the device, so threads beyond the cores \
         measure lock waits; ratios compare strategies within this run)"
    );
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".into()
    }
}

fn print_json(rows: &[Row]) {
    let mut out = Vec::new();
    for row in rows {
        let mut fields = vec![
            format!("\"scenario\":{}", json_string(&row.scenario)),
            format!("\"strategy\":{}", json_string(row.strategy)),
            format!("\"threads\":{}", row.threads),
            format!("\"ops_per_sec\":{}", json_number(row.ops_per_sec)),
            format!(
                "\"ratio_to_rwlock\":{}",
                baseline(rows, row).map_or("null".into(), |b| json_number(row.ops_per_sec / b))
            ),
            format!("\"p99_us\":{}", json_number(row.p99_us)),
            format!("\"worst_wait_us\":{}", json_number(row.worst_wait_us)),
            format!(
                "\"direct_io_worst_wait_us\":{}",
                row.direct_wait_us.map_or("null".into(), json_number)
            ),
            format!("\"stale_reads\":{}", row.stale_reads),
            format!("\"lost_writes\":{}", row.lost_writes),
            format!("\"fsync_lost\":{}", row.fsync_lost),
            format!(
                "\"bytes_per_lock\":{}",
                row.bytes_per_lock.map_or("null".into(), |b| b.to_string())
            ),
            format!(
                "\"errors\":[{}]",
                row.errors
                    .iter()
                    .map(|e| json_string(e))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ];
        if let Some(report) = &row.detail {
            let ops: Vec<String> = report
                .ops
                .iter()
                .map(|o| {
                    let s = &o.stats;
                    format!(
                        "{{\"op\":{},\"calls\":{},\"ops_per_sec\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"worst_wait_us\":{},\"beyond_eof\":{}}}",
                        json_string(o.op),
                        s.latency.count(),
                        json_number(s.latency.count() as f64 / report.elapsed.as_secs_f64()),
                        json_number(us(s.latency.quantile(0.5))),
                        json_number(us(s.latency.quantile(0.99))),
                        json_number(us(s.latency.max())),
                        json_number(us(s.worst_wait)),
                        s.beyond_eof,
                    )
                })
                .collect();
            fields.push(format!(
                "\"duration_s\":{}",
                json_number(report.elapsed.as_secs_f64())
            ));
            fields.push(format!("\"fsync_checks\":{}", report.fsync_checks));
            fields.push(format!("\"ops\":[{}]", ops.join(",")));
        }
        out.push(format!("{{{}}}", fields.join(",")));
    }
    println!("[\n{}\n]", out.join(",\n"));
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("mixed_io: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let workload::DeviceSpec::File(path) = &options.device {
        // Opened once before the runs: a refused O_DIRECT fails here, and the disk's own
        // latency is stated beside the table.
        match workload::FileDevice::create(path, 4096, 4096) {
            Ok(device) => eprintln!(
                "device: {} with O_DIRECT, median 4 KiB read {:.0} us",
                path.display(),
                device.latency(400).as_secs_f64() * 1e6
            ),
            Err(message) => {
                eprintln!("mixed_io: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rows = match run(&options) {
        Ok(rows) => rows,
        Err(message) => {
            eprintln!("mixed_io: {message}");
            return ExitCode::FAILURE;
        }
    };
    if options.json {
        print_json(&rows);
    } else {
        print_table(&rows);
    }
    if let Some(path) = &options.svg {
        let points: Vec<plot::Point<'_>> = rows
            .iter()
            .map(|r| plot::Point {
                scenario: &r.scenario,
                strategy: r.strategy,
                threads: r.threads,
                ops_per_sec: r.ops_per_sec,
            })
            .collect();
        let title = "mixed_io: calls per second against threads (sleeping device)";
        match plot::svg(title, &points) {
            Some(svg) => {
                if let Err(error) = std::fs::write(path, svg) {
                    eprintln!("mixed_io: cannot write {path}: {error}");
                    return ExitCode::FAILURE;
                }
            }
            None => eprintln!("mixed_io: --svg needs a scenario at two or more thread counts"),
        }
    }
    let broken = rows.iter().any(|r| {
        r.strategy != "naive"
            && (r.stale_reads > 0 || r.lost_writes > 0 || r.fsync_lost > 0 || !r.errors.is_empty())
    });
    if broken {
        eprintln!("mixed_io: a strategy other than the naive control served stale data, lost a write or failed a check");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
