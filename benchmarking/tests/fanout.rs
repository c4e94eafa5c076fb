//! `pace-bench fanout` against a real `pace` (the debug build beside this
//! test) and the real broker: 50 subscribers of one race each get every
//! delta frame the race sends while measured, and the figures are filled.
#![allow(clippy::print_stdout)]
mod common;

use common::{brokers, pace_bin};
use pace_benchmarking::fanout::{Options, run};
use pace_benchmarking::latency::Setup;
use pace_benchmarking::report::fanout_table;

#[test]
fn every_subscriber_gets_every_frame_and_the_figures_are_filled() {
    let brokers = brokers();
    let out = tempfile::tempdir().unwrap();
    let pace = pace_bin();
    let mut setup = Setup::processes(&pace, out.path(), &brokers, 1, 0, 50);
    (setup.warmup_s, setup.measure_s) = (2, 4);
    let r = run(&Options { setup, runners: 30 }, 50).unwrap();
    println!("{}", fanout_table(std::slice::from_ref(&r)));
    assert_eq!((r.asked, r.subscribers, r.cut.as_deref()), (50, 50, None));
    assert!(
        r.frames >= 2,
        "the race moved while measured: {} frames",
        r.frames
    );
    assert_eq!(r.missed, 0, "every subscriber got every frame");
    assert_eq!(r.lag_snapshots, 0);
    assert!(r.delivered_per_s > 0.0 && r.frame_bytes > 0.0);
    assert_eq!(
        r.delay_ms.count,
        r.frames * 50,
        "a delay for every delivered frame"
    );
    assert!(r.spread_ms.count == r.frames && r.spread_ms.p99 <= r.spread_ms.max);
    assert!(r.edge_us_per_frame > 0.0 && r.edge_peak_rss > 0);
}
