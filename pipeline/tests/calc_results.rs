//! `calc_results` against its sequential reference: seeded random tasks,
//! some ids submitted more than once, delivered over rounds, with 1 and 4
//! workers: one result per id, the first submission's, evaluated.

mod common;

use std::collections::BTreeMap;

use pace_pipeline::jobs::calc_results::{Submission, calc_results, result_of};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::{CalcTask, TaskResult, TaskStatus, Timestamp};

fn run(rounds: &[Vec<Submission>], workers: usize) -> BTreeMap<String, TaskResult> {
    let mut updates: Vec<_> = common::run_rounds(rounds.to_vec(), workers, calc_results)
        .into_iter()
        .map(|(d, _, r)| (d, 0u64, r))
        .collect();
    differential_dataflow::consolidation::consolidate_updates(&mut updates);
    updates
        .into_iter()
        .map(|((id, r), _, diff)| {
            assert_eq!(diff, 1);
            (id, r.record)
        })
        .collect()
}

#[test]
fn one_result_per_id_the_first_submissions() {
    let mut rng = StdRng::seed_from_u64(7);
    let exprs = [
        "1 + 1",
        "2^10",
        "1/0",
        "sqrt(2)",
        "max(3, 4, 5)",
        "(((",
        "-2^2",
        "ln(0)",
    ];
    let mut rounds: Vec<Vec<Submission>> = vec![Vec::new(); 5];
    let mut reference: BTreeMap<String, TaskResult> = BTreeMap::new();
    for i in 0..400i64 {
        let id = format!("t{}", rng.random_range(0..250));
        let task = CalcTask {
            id: id.clone(),
            expression: exprs[rng.random_range(0..exprs.len())].into(),
            time: Timestamp(1_780_000_000_000 + i),
        };
        let offset = i + 1;
        reference
            .entry(id.clone())
            .or_insert_with(|| result_of(&task));
        // An id's submissions keep their order (one partition).
        let round = (i as usize * 5) / 400;
        rounds[round].push((
            id,
            ingest::source::Envelope {
                partition: 0,
                offset,
                timestamp_ms: None,
                trace: None,
                record: task,
            },
        ));
    }
    assert!(reference.values().any(|r| r.status == TaskStatus::Failed));
    assert_eq!(reference["t0"].id, "t0");
    for workers in [1, 4] {
        assert_eq!(run(&rounds, workers), reference, "{workers} workers");
    }
}
