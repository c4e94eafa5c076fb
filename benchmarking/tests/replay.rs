//! `pace-bench`'s replay against a real `pace` (the debug build beside this
//! test) and the real broker: the recorded SailGP day goes through the
//! pipeline and the edge, every boat's last point reaches the standings,
//! and the spectators' frames and the changelog give latency samples.
#![allow(clippy::print_stdout)]
mod common;

use std::path::Path;

use common::{brokers, pace_bin};
use pace_benchmarking::latency::Setup;
use pace_benchmarking::report::replay_table;
use pace_benchmarking::workload::Source;

#[test]
fn the_sailgp_day_replays_through_pace_with_spectators() {
    let brokers = brokers();
    let out = tempfile::tempdir().unwrap();
    let pace = pace_bin();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/sailgp-auckland-2025");
    let source = Source::Recorded(ingest::datasets::Recorded::SailGp(dir));
    let expected = source.read().unwrap();
    let setup = Setup::processes(&pace, out.path(), &brokers, 2, 20, 50);
    let r = pace_benchmarking::replay::run(&setup, &source, 0.0, &|_| {}).unwrap();
    println!("{}", replay_table(std::slice::from_ref(&r)));
    assert_eq!(r.records, expected.gps.len());
    assert_eq!(
        r.participants, 36,
        "11 boats over four races, Canada in one"
    );
    assert_eq!(
        r.participants_complete, r.participants,
        "every boat's last point shows in the standings"
    );
    assert!(r.records_per_s > 0.0 && r.seconds > 0.0);
    // Every view change of a new last point is a sample.
    assert!(r.produce_to_view_ms.count >= r.participants as u64);
    assert!(r.frames > 0 && r.produce_to_frame_ms.count > 0);
    assert!(r.produce_to_frame_ms.p50 <= r.produce_to_frame_ms.max);
    assert!(r.pipeline_peak_rss > 0 && r.edge_peak_rss > 0);
}
