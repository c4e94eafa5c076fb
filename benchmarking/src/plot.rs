//! The suite's plot: produce→view and produce→frame percentiles against
//! offered load, as an SVG line plot (`latency.svg`).

use std::fmt::Write;

use crate::latency::{Percentiles, Run};
use crate::report::Report;

/// Picks one latency figure of a run (`None`: the run measured nothing).
type Pick = fn(&Run) -> Option<u64>;

/// `p`, if it measured anything.
fn measured(p: &Percentiles) -> Option<&Percentiles> {
    (p.count > 0).then_some(p)
}

/// The plot's series: name, colour, and the figure each run gives it.
const SERIES: [(&str, &str, Pick); 4] = [
    ("frame p99", "#d62728", |r| {
        Some(measured(&r.produce_to_frame_ms)?.p99)
    }),
    ("frame p50", "#ff9896", |r| {
        Some(measured(&r.produce_to_frame_ms)?.p50)
    }),
    ("view p99", "#1f77b4", |r| {
        Some(measured(&r.produce_to_view_ms)?.p99)
    }),
    ("view p50", "#aec7e8", |r| {
        Some(measured(&r.produce_to_view_ms)?.p50)
    }),
];

/// One series' points: each run's offered load and the figure `pick`
/// gives it. A run that measured nothing has no point (not one at 0 ms).
fn plotted(runs: &[Run], pick: Pick) -> Vec<(f64, u64)> {
    runs.iter()
        .filter_map(|r| Some((r.offered_per_s, pick(r)?)))
        .collect()
}

impl Report {
    /// Latency percentiles against offered load, as an SVG line plot.
    pub fn svg(&self) -> String {
        let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 180.0, 30.0, 50.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let xs: Vec<f64> = self.latency.iter().map(|r| r.offered_per_s).collect();
        let series = SERIES;
        let x_max = xs.iter().copied().fold(1.0, f64::max) * 1.05;
        let y_max = self
            .latency
            .iter()
            .flat_map(|r| series.iter().filter_map(move |(_, _, f)| f(r)))
            .max()
            .unwrap_or(1)
            .max(10) as f64
            * 1.1;
        let x = |v: f64| left + v / x_max * pw;
        let y = |v: f64| top + ph - v / y_max * ph;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="18" text-anchor="middle" font-size="14">pace: latency against offered load ({} spectators)</text>"#,
            left + pw / 2.0,
            self.latency.first().map_or(0, |r| r.spectators)
        );
        for i in 0..=5 {
            let v = y_max * f64::from(i) / 5.0;
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.0}</text>"##,
                left + pw,
                left - 6.0,
                y(v) + 4.0,
                y = y(v)
            );
            let u = x_max * f64::from(i) / 5.0;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">{:.0}k</text>"#,
                x(u),
                top + ph + 18.0,
                u / 1000.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">offered load, points/s</text>"#,
            left + pw / 2.0,
            h - 8.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">latency, ms</text>"#,
            top + ph / 2.0
        );
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
        for (i, (name, colour, f)) in series.iter().enumerate() {
            let points: Vec<String> = plotted(&self.latency, *f)
                .into_iter()
                .map(|(load, ms)| format!("{:.1},{:.1}", x(load), y(ms as f64)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                points.join(" ")
            );
            for p in &points {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#);
            }
            let ly = top + 20.0 + 20.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
                left + pw + 15.0,
                left + pw + 40.0,
                left + pw + 46.0,
                ly + 4.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::run;

    #[test]
    fn a_run_that_measured_nothing_has_no_point_not_one_at_0_ms() {
        let runs = [
            run(10_000.0, 5, 80),
            run(50_000.0, 0, 0),
            run(100_000.0, 5, 900),
        ];
        for (name, _, pick) in SERIES {
            let points = plotted(&runs, pick);
            let loads: Vec<f64> = points.iter().map(|p| p.0).collect();
            assert_eq!(loads, [10_000.0, 100_000.0], "{name}");
            assert!(points.iter().all(|p| p.1 > 0), "{name}: {points:?}");
        }
        assert_eq!(
            plotted(&runs, SERIES[0].2),
            [(10_000.0, 80), (100_000.0, 900)]
        );
    }
}
