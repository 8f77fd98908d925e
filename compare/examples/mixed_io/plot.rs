//! An SVG plot of throughput against thread count, for `mixed_io`.
//!
//! [`svg`] draws the title, one legend for every strategy, then one panel per scenario
//! that was measured at two or more thread counts: panels in order of first appearance,
//! two a row. In a panel the x axis is the thread count on a log2 scale, ticked at the
//! counts measured in that scenario; the y axis is calls per second on a log10 scale,
//! ticked at each decade (1k, 10k, 100k, 1M) that covers the scenario's points. Each
//! strategy is a polyline with a dot per point, in a fixed colour per strategy name
//! (`rangelock` red and thicker, unknown names grey). Points with a thread count of 0 or
//! a rate that is not a positive finite number are left out. The output depends only on
//! the input and its order; it is plain SVG 1.1 with no scripts or external resources.

use std::fmt::{self, Write};

/// One measured point.
pub struct Point<'a> {
    pub scenario: &'a str,
    pub strategy: &'a str,
    pub threads: usize,
    pub ops_per_sec: f64,
}

const WIDTH: f64 = 900.0;
const PANEL_W: f64 = WIDTH / 2.0;
const PANEL_H: f64 = 300.0;
/// Margins of the plot area inside a panel.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 46.0;
/// Space between the frame and the first and last thread counts.
const PAD: f64 = 10.0;

/// The colour of a strategy's line: fixed per name, grey for names not known here.
fn colour(strategy: &str) -> &'static str {
    match strategy {
        "rangelock" => "#d62728",
        "rwlock" => "#1f77b4",
        "two-state" => "#2ca02c",
        "interval" => "#9467bd",
        "naive" => "#ff7f0e",
        _ => "#7f7f7f",
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The label of 10^`exp`: 0.1, 1, 10, 100, 1k, ..., 100M, 1G, ..., then 1e15 and up.
fn decade_label(exp: i32) -> String {
    const SUFFIX: [&str; 5] = ["", "k", "M", "G", "T"];
    match usize::try_from(exp) {
        Err(_) => format!("0.{}1", "0".repeat(exp.unsigned_abs() as usize - 1)),
        Ok(e) if e / 3 < SUFFIX.len() => format!("1{}{}", "0".repeat(e % 3), SUFFIX[e / 3]),
        Ok(_) => format!("1e{exp}"),
    }
}

/// Distinct values in ascending order.
fn distinct<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort_unstable();
    values.dedup();
    values
}

const MIDDLE: &str = r#"text-anchor="middle""#;
const END: &str = r#"text-anchor="end""#;

/// Writes a line from (`x1`, `y1`) to (`x2`, `y2`) with the attributes `style`.
fn line(out: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) -> fmt::Result {
    writeln!(
        out,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#
    )
}

/// Writes `body` (escaped here) at (`x`, `y`) with the attributes `style`.
fn text(out: &mut String, (x, y): (f64, f64), style: &str, body: &str) -> fmt::Result {
    writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" {style}>{}</text>"#,
        escape(body)
    )
}

fn dot(out: &mut String, (x, y): (f64, f64), colour: &str) -> fmt::Result {
    writeln!(
        out,
        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"#
    )
}

/// An SVG document: one panel per scenario that has at least two distinct thread counts
/// (see the module documentation). Returns `None` if no scenario has two thread counts.
pub fn svg(title: &str, points: &[Point<'_>]) -> Option<String> {
    let valid = |p: &&Point<'_>| p.threads > 0 && p.ops_per_sec.is_finite() && p.ops_per_sec > 0.0;
    let mut scenarios: Vec<&str> =
        distinct_in_order(points.iter().filter(valid).map(|p| p.scenario));
    scenarios.retain(|s| {
        let threads = points.iter().filter(valid).filter(|p| p.scenario == *s);
        distinct(threads.map(|p| p.threads).collect()).len() > 1
    });
    let points: Vec<&Point<'_>> = points
        .iter()
        .filter(valid)
        .filter(|p| scenarios.contains(&p.scenario))
        .collect();
    let strategies = distinct_in_order(points.iter().map(|p| p.strategy));
    if scenarios.is_empty() {
        return None;
    }
    draw(title, &scenarios, &strategies, &points).ok()
}

/// Distinct values in order of first appearance.
fn distinct_in_order<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn draw(
    title: &str,
    scenarios: &[&str],
    strategies: &[&str],
    points: &[&Point<'_>],
) -> Result<String, fmt::Error> {
    // The legend, wrapped to the width; its last row sets where the panels start.
    let mut legend = String::new();
    let (mut x, mut y) = (20.0, 54.0);
    for s in strategies {
        let w = 44.0 + 7.5 * s.chars().count() as f64;
        if x + w > WIDTH - 20.0 && x > 20.0 {
            (x, y) = (20.0, y + 20.0);
        }
        let style = format!(r#"stroke="{}" stroke-width="2.5""#, colour(s));
        line(&mut legend, (x, y), (x + 24.0, y), &style)?;
        dot(&mut legend, (x + 12.0, y), colour(s))?;
        text(&mut legend, (x + 30.0, y + 4.0), "", s)?;
        x += w;
    }
    let header = y + 14.0;
    let height = header + scenarios.len().div_ceil(2) as f64 * PANEL_H;

    let (t, mid) = (escape(title), WIDTH / 2.0);
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<title>{t}</title>
<rect width="100%" height="100%" fill="white"/>
<text x="{mid}" y="28" text-anchor="middle" font-size="17" font-weight="bold">{t}</text>
"#
    );
    out.push_str(&legend);

    for (i, scenario) in scenarios.iter().enumerate() {
        let (ox, oy) = ((i % 2) as f64 * PANEL_W, header + (i / 2) as f64 * PANEL_H);
        let (px0, px1) = (ox + LEFT, ox + PANEL_W - RIGHT);
        let (py0, py1) = (oy + TOP, oy + PANEL_H - BOTTOM);
        let mine: Vec<&Point<'_>> = points
            .iter()
            .copied()
            .filter(|p| p.scenario == *scenario)
            .collect();
        let threads = distinct(mine.iter().map(|p| p.threads).collect());
        let x0 = (threads[0] as f64).log2();
        let x1 = (threads[threads.len() - 1] as f64).log2();
        let logs = mine.iter().map(|p| p.ops_per_sec.log10());
        // A small slack so that an exact power of ten stays on its own decade line.
        let lo = (logs.clone().fold(f64::INFINITY, f64::min) + 1e-9).floor();
        let hi = (logs.fold(f64::NEG_INFINITY, f64::max) - 1e-9)
            .ceil()
            .max(lo + 1.0);
        // The first and last thread counts sit a little inside the frame.
        let sx =
            |t: usize| px0 + PAD + ((t as f64).log2() - x0) / (x1 - x0) * (px1 - px0 - 2.0 * PAD);
        let sy = |log: f64| py1 - (log - lo) / (hi - lo) * (py1 - py0);

        // Decade lines, thinned to at most about eight labels; faint lines at 2..9 times
        // each decade when every decade is shown.
        let step = ((hi - lo) / 8.0).ceil().max(1.0) as usize;
        for e in (lo as i32..hi as i32).filter(|_| step == 1) {
            for m in 2..10 {
                let y = sy(f64::from(e) + f64::from(m).log10());
                line(&mut out, (px0, y), (px1, y), r##"stroke="#f2f2f2""##)?;
            }
        }
        for e in (lo as i32..=hi as i32).step_by(step) {
            let y = sy(f64::from(e));
            line(&mut out, (px0, y), (px1, y), r##"stroke="#ddd""##)?;
            text(&mut out, (px0 - 6.0, y + 4.0), END, &decade_label(e))?;
        }
        for &t in &threads {
            line(&mut out, (sx(t), py0), (sx(t), py1), r##"stroke="#eee""##)?;
            text(&mut out, (sx(t), py1 + 16.0), MIDDLE, &t.to_string())?;
        }
        let (name, cx, cy) = (escape(scenario), (px0 + px1) / 2.0, (py0 + py1) / 2.0);
        let (w, h, ty, lx) = (px1 - px0, py1 - py0, py1 + 34.0, ox + 16.0);
        writeln!(
            out,
            r##"<rect x="{px0:.1}" y="{py0:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#999"/>
<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="14" font-weight="bold">{name}</text>
<g text-anchor="middle" fill="#444"><text x="{cx:.1}" y="{ty:.1}">threads</text>
<text x="{lx:.1}" y="{cy:.1}" transform="rotate(-90 {lx:.1} {cy:.1})">ops/s</text></g>"##,
            oy + 20.0
        )?;

        for s in strategies {
            let mut run: Vec<&Point<'_>> =
                mine.iter().copied().filter(|p| p.strategy == *s).collect();
            run.sort_by_key(|p| p.threads); // stable: repeated counts keep their order
            let mark: Vec<(f64, f64)> = run
                .iter()
                .map(|p| (sx(p.threads), sy(p.ops_per_sec.log10())))
                .collect();
            let (c, w) = (colour(s), if *s == "rangelock" { 3.0 } else { 2.0 });
            if mark.len() > 1 {
                let coords: Vec<String> =
                    mark.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                writeln!(
                    out,
                    r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="{w}" stroke-linejoin="round"/>"#,
                    coords.join(" ")
                )?;
            }
            for &m in &mark {
                dot(&mut out, m, c)?;
            }
        }
    }
    writeln!(out, "</svg>")?;
    Ok(out)
}
