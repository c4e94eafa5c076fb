//! Where the pipeline's time goes in a latency run, stage by stage: the
//! pipeline runs with `--operator-seconds`, and its
//! `pace_pipeline_operator_seconds_total{operator}` is read when the
//! measurement opens and when it closes. With the points read and the
//! epochs closed in between, each stage's time is a cost per point and per
//! epoch; over several loads, a straight line through the cost of an epoch
//! against the points it carried splits it into a fixed part (paid by every
//! epoch, whatever it carries) and a part per point.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::process::values_by_label;

/// The stages a breakdown shows, in this order; every operator falls in one.
pub const STAGES: &[&str] = &[
    "Track",
    "Rank",
    "changelog sink",
    "points' source",
    "other sources",
    "scope",
    "rest",
];

/// The stage of the operator named `op` (a job's stage, a Kafka source by
/// its topic, the dataflow scope itself, or the rest: timely's and
/// differential's own operators).
pub fn stage(op: &str) -> &'static str {
    match op {
        "Track" => "Track",
        "Rank" => "Rank",
        "Changelog(standings)" => "changelog sink",
        "Dataflow" => "scope",
        _ if op.starts_with("Kafka(") && op.ends_with("pace.gps)") => "points' source",
        _ if op.starts_with("Kafka(") => "other sources",
        _ => "rest",
    }
}

/// The pipeline's counters at one moment of a run.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Operator seconds by stage, in [`STAGES`] order.
    seconds: Vec<f64>,
    /// Epochs the workers' sources of the points closed, summed over workers.
    epochs: f64,
    /// Points the pipeline read.
    points: f64,
}

impl Counters {
    /// The counters on `metrics`, the pipeline's `/metrics` page.
    pub fn read(metrics: &str) -> Self {
        let mut seconds = vec![0.0; STAGES.len()];
        for (op, s) in values_by_label(metrics, "pace_pipeline_operator_seconds_total", "operator")
        {
            let at = STAGES.iter().position(|st| *st == stage(&op));
            seconds[at.expect("every stage is listed")] += s;
        }
        let gps = |name| -> f64 {
            values_by_label(metrics, name, "topic")
                .into_iter()
                .filter(|(t, _)| t.ends_with("pace.gps"))
                .map(|(_, v)| v)
                .sum()
        };
        Self {
            seconds,
            epochs: gps("pace_pipeline_epoch_records_count"),
            points: gps("pace_ingest_records_total"),
        }
    }
}

/// The pipeline's time over one measurement, by stage.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stages {
    /// Operator seconds by stage, in [`STAGES`] order (all workers).
    pub seconds: Vec<f64>,
    /// Epochs that carried points: each worker's source of the points
    /// counts the epochs it closed with points in them, averaged over the
    /// workers.
    pub epochs: f64,
    /// Points the pipeline read.
    pub points: f64,
    /// Seconds measured.
    pub wall_s: f64,
}

impl Stages {
    /// What happened between `before` and `after`, `wall_s` seconds apart,
    /// with `workers` workers; `None` if the pipeline counted no operator
    /// time (it ran without `--operator-seconds`).
    pub fn between(
        before: &Counters,
        after: &Counters,
        workers: usize,
        wall_s: f64,
    ) -> Option<Self> {
        let seconds: Vec<f64> = (after.seconds.iter().zip(&before.seconds))
            .map(|(a, b)| (a - b).max(0.0))
            .collect();
        (seconds.iter().sum::<f64>() > 0.0).then(|| Self {
            seconds,
            epochs: (after.epochs - before.epochs) / workers.max(1) as f64,
            points: after.points - before.points,
            wall_s,
        })
    }

    fn total(&self) -> f64 {
        self.seconds.iter().sum()
    }

    /// Whether it carried points in epochs: else no cost per point or epoch.
    fn measured(&self) -> bool {
        self.points > 0.0 && self.epochs > 0.0
    }

    fn points_per_epoch(&self) -> f64 {
        self.points / self.epochs
    }

    /// Operator µs per epoch of stage `i` (`None`: all stages).
    fn us_per_epoch(&self, i: Option<usize>) -> f64 {
        let s = i.map_or_else(|| self.total(), |i| self.seconds[i]);
        s * 1e6 / self.epochs
    }
}

/// A least-squares line `y = fixed + per_x · x` through `points`; `None`
/// for fewer than two distinct x.
pub fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let var: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if points.len() < 2 || var <= f64::EPSILON * mx.abs().max(1.0) {
        return None;
    }
    let cov: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let per_x = cov / var;
    Some((my - per_x * mx, per_x))
}

/// The breakdown of `runs` (offered points/s, its stages) as Markdown:
/// a row per run (µs per point by stage, the epochs and what one cost),
/// then the fitted fixed cost of an epoch and cost of a point, by stage.
pub fn table(runs: &[(f64, Option<&Stages>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| offered points/s | epochs/s | points / epoch | operator µs / point | {} | operator ms / epoch |",
        STAGES.join(" | ")
    );
    let _ = writeln!(s, "|{}", " ---: |".repeat(STAGES.len() + 5));
    let mut line = Vec::new();
    for (offered, st) in runs {
        let Some(st) = st.filter(|st| st.measured()) else {
            let _ = writeln!(
                s,
                "| {offered:.0} | none measured (no operator time or no points counted) |{}",
                " |".repeat(STAGES.len() + 3)
            );
            continue;
        };
        let per_point: Vec<String> = (st.seconds.iter())
            .map(|sec| format!("{:.2}", sec * 1e6 / st.points))
            .collect();
        let _ = writeln!(
            s,
            "| {offered:.0} | {:.1} | {:.0} | {:.2} | {} | {:.2} |",
            st.epochs / st.wall_s,
            st.points_per_epoch(),
            st.total() * 1e6 / st.points,
            per_point.join(" | "),
            st.us_per_epoch(None) / 1e3
        );
        line.push(st);
    }
    let xy = |i: Option<usize>| -> Vec<(f64, f64)> {
        (line.iter())
            .map(|st| (st.points_per_epoch(), st.us_per_epoch(i)))
            .collect()
    };
    // The stages that carry no points cost every epoch the same.
    let idle = |st: &Stages| -> Vec<String> {
        ["other sources", "scope"]
            .iter()
            .map(|name| {
                let i = STAGES.iter().position(|s| s == name).expect("listed");
                format!("{name} {:.0} µs", st.us_per_epoch(Some(i)))
            })
            .collect()
    };
    if let Some(first) = line.first() {
        let _ = writeln!(
            s,
            "\nPaid by every epoch whatever it carries, at the lowest load: {} (all workers).",
            idle(first).join(", ")
        );
    }
    match fit(&xy(None)) {
        None => {
            let _ = writeln!(
                s,
                "A line through the epochs: none measured (fewer than two runs with different epochs)."
            );
        }
        Some((fixed, _)) if fixed < 0.0 => {
            let _ = writeln!(
                s,
                "A line through the epochs (operator time per epoch against the points in it) finds no fixed part ({fixed:.0} µs): a point costs more at a higher load, where each race has more runners and the state is bigger."
            );
        }
        Some((fixed, per_point)) => {
            let by: Vec<String> = (0..STAGES.len())
                .filter_map(|i| {
                    let (f, p) = fit(&xy(Some(i)))?;
                    Some(format!("{} {f:.0} µs + {p:.2} µs/point", STAGES[i]))
                })
                .collect();
            let _ = writeln!(
                s,
                "A line through the epochs (least squares, operator time per epoch against the points in it; all workers): an epoch costs {fixed:.0} µs whatever it carries, plus {per_point:.2} µs a point. By stage: {}.",
                by.join("; ")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(track: f64, rank: f64, idle: f64, epochs: f64, points: f64) -> String {
        format!(
            "pace_pipeline_operator_seconds_total{{operator=\"Track\"}} {track}\n\
             pace_pipeline_operator_seconds_total{{operator=\"Rank\"}} {rank}\n\
             pace_pipeline_operator_seconds_total{{operator=\"Kafka(b.pace.chat)\"}} {idle}\n\
             pace_pipeline_epoch_records_count{{topic=\"b.pace.gps\"}} {epochs}\n\
             pace_pipeline_epoch_records_count{{topic=\"b.pace.chat\"}} 7\n\
             pace_ingest_records_total{{topic=\"b.pace.gps\"}} {points}\n"
        )
    }

    #[test]
    fn operators_fall_into_their_stages() {
        assert_eq!(stage("Kafka(bench-x.pace.gps)"), "points' source");
        assert_eq!(stage("Kafka(bench-x.pace.timing)"), "other sources");
        assert_eq!(stage("Changelog(standings)"), "changelog sink");
        assert_eq!(stage("Changelog(rooms)"), "rest");
        assert_eq!(stage("Dataflow"), "scope");
    }

    #[test]
    fn a_run_costs_per_point_and_per_epoch_what_its_counters_moved() {
        let before = Counters::read(&page(1.0, 1.0, 1.0, 100.0, 1000.0));
        let after = Counters::read(&page(1.5, 2.0, 1.2, 300.0, 101_000.0));
        let st = Stages::between(&before, &after, 2, 10.0).unwrap();
        assert_eq!(st.epochs, 100.0);
        assert_eq!(st.points, 100_000.0);
        assert!((st.us_per_epoch(None) - 17_000.0).abs() < 1e-6);
        assert!((st.seconds[0] - 0.5).abs() < 1e-9);
        assert!((st.seconds[4] - 0.2).abs() < 1e-9, "the idle source");
        let t = table(&[(10_000.0, Some(&st))]);
        assert!(
            t.contains("| 10000 | 10.0 | 1000 | 17.00 | 5.00 | 10.00 |"),
            "{t}"
        );
        assert!(t.contains("none measured (fewer than two runs"), "{t}");
        assert!(t.contains("other sources 2000 µs, scope 0 µs"), "{t}");
    }

    #[test]
    fn without_operator_seconds_nothing_is_measured() {
        let c = Counters::read("pace_ingest_records_total{topic=\"b.pace.gps\"} 5\n");
        assert!(Stages::between(&c, &c, 2, 1.0).is_none());
        let t = table(&[(50_000.0, None)]);
        assert!(t.contains("| 50000 | none measured"), "{t}");
        assert!(!t.contains("| 0.00 |"), "{t}");
    }

    #[test]
    fn a_cost_that_grows_faster_than_the_points_has_no_fixed_part() {
        let st = |epochs: f64, points: f64, track: f64| Stages {
            seconds: vec![track, 0.0, 0.0, 0.0, 0.1, 0.1, 0.0],
            epochs,
            points,
            wall_s: 10.0,
        };
        let (low, high) = (st(200.0, 100_000.0, 1.0), st(200.0, 500_000.0, 10.0));
        let t = table(&[(10_000.0, Some(&low)), (50_000.0, Some(&high))]);
        assert!(t.contains("finds no fixed part"), "{t}");
        let (low, high) = (st(200.0, 100_000.0, 1.0), st(200.0, 500_000.0, 3.0));
        let t = table(&[(10_000.0, Some(&low)), (50_000.0, Some(&high))]);
        assert!(
            t.contains("an epoch costs 3500 µs whatever it carries, plus 5.00 µs a point"),
            "{t}"
        );
    }

    #[test]
    fn a_line_through_the_epochs_splits_the_fixed_cost_from_the_cost_of_a_point() {
        let (fixed, per) = fit(&[(100.0, 1200.0), (300.0, 1600.0), (500.0, 2000.0)]).unwrap();
        assert!((fixed - 1000.0).abs() < 1e-6 && (per - 2.0).abs() < 1e-9);
        assert_eq!(fit(&[(100.0, 1.0)]), None);
        assert_eq!(fit(&[(100.0, 1.0), (100.0, 2.0)]), None);
    }
}
