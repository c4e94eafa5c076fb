//! The standings dataflow alone, without a broker: what an epoch and a
//! point cost in the track and rank stages and the changelog encoder.
//!
//! `pace-bench` measures pace from outside, where the broker, the
//! producer and the spectators share the machine and a run's figures move
//! by 15–30% from one run to the next. This runs the job's own dataflow
//! (`race_standings`, then `Standings::encode` and JSON, as the changelog
//! sink does) in one thread on generated races, one epoch at a time as
//! live load brings them, and prints the thread's CPU per point and per
//! epoch and the changelog bytes per point. The points are generated
//! before the clock starts. For figures that do not move at all, count
//! instructions: `valgrind --tool=callgrind --toggle-collect='*run_epochs*'`.
//!
//! ```text
//! cargo run --release -p pace-pipeline --example dataflow_cost -- \
//!     [load points/s, default 25000] [races, default 5] [seconds, default 60] \
//!     [tick ms, default 50] [warm-up seconds, default 10]
//! ```
//!
//! A load of L points/s is L runners (one point a second each) in `races`
//! races, fed in epochs of L × tick points, as the pipeline's 50 ms tick
//! cuts them. The race's first seconds (the start, where everyone
//! passes everyone) run before the clock starts and are not counted.

// A command-line tool: its output is its figures.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use differential_dataflow::input::Input;
use pace_pipeline::job::Job;
use pace_pipeline::jobs::standings::{Read, Standings, ViewRow, definition, fix, race_standings};
use pace_pipeline::jobs::stash::Stash;
use schemas::Timestamp;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::ProbeHandle;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::probe::Probe;

/// The allocator `pace` runs with (`pipeline/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (load, races, seconds, tick_ms) = (arg(1, 25_000), arg(2, 5), arg(3, 60), arg(4, 50));
    let warmup = arg(5, 10);
    let runners = (load / races).max(1) as usize;
    let per_epoch = (load * tick_ms / 1000).max(1) as usize;
    let mut generated: Vec<_> = (0..races)
        .map(|i| {
            let start = Timestamp(1_780_000_000_000);
            ingest::generate::DemoRace::new(&format!("cost-{i}"), runners, i + 1, start)
        })
        .collect();
    let definitions: Vec<_> = generated
        .iter()
        .enumerate()
        .map(|(i, r)| definition(&r.definition, i as i64))
        .collect();
    // Every point, in the order a partition would hold it, cut into epochs.
    let mut points: Vec<Read> = Vec::new();
    for _ in 0..warmup + seconds {
        for r in &mut generated {
            for p in r.tick() {
                let offset = points.len() as i64;
                points.push(Read::Observation(fix(p).read_at(0, offset)));
            }
        }
    }
    let mut epochs: Vec<Vec<Read>> = points.chunks(per_epoch).map(<[Read]>::to_vec).collect();
    drop(points);
    let measured = epochs.split_off((warmup * load / per_epoch as u64) as usize);
    let points = measured.iter().map(Vec::len).sum::<usize>() as f64;
    let n = measured.len();
    let (cpu, bytes, rows) = run_epochs(definitions, epochs, measured);
    println!(
        "load {load} points/s: {races} races of {runners} runners, {n} epochs of {per_epoch} points ({tick_ms} ms) after {warmup} s"
    );
    println!(
        "CPU {:.2} s: {:.2} µs a point, {:.2} ms an epoch; changelog {:.1} B and {:.2} rows a point",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / points,
        cpu.as_secs_f64() * 1e3 / n as f64,
        bytes as f64 / points,
        rows as f64 / points,
    );
}

/// Runs the `warmup` epochs, then the `measured` ones, through the
/// dataflow one at a time; over the measured ones, the thread's CPU time,
/// the changelog's bytes and its rows.
#[inline(never)]
fn run_epochs(
    definitions: Vec<pace_pipeline::jobs::standings::Definition>,
    warmup: Vec<Vec<Read>>,
    measured: Vec<Vec<Read>>,
) -> (Duration, usize, usize) {
    timely::execute_directly(move |worker| {
        let written = std::rc::Rc::new(std::cell::Cell::new((0usize, 0usize)));
        let out = written.clone();
        let probe = ProbeHandle::new();
        let (mut reads, mut defs) = worker.dataflow::<u64, _, _>(|scope| {
            let (reads, read_coll) = scope.new_collection::<Read, isize>();
            let (defs, def_coll) = scope.new_collection();
            race_standings(read_coll, def_coll)
                .inner
                .unary_frontier::<CapacityContainerBuilder<Vec<usize>>, _, _, _>(
                    Pipeline,
                    "Encode",
                    move |_, _| {
                        let mut seqs = Default::default();
                        // Each epoch's rows, encoded once the epoch is complete,
                        // as the changelog sink does.
                        let mut stash: Stash<u64, ((String, ViewRow), isize)> = Stash::default();
                        move |(input, frontier), output| {
                            input.for_each(|cap, data| {
                                if let Some(cap) = cap.retain_least(output.output_index()) {
                                    stash.absorb(&cap, data.drain(..), |x, r| (x, r));
                                }
                            });
                            while let Some((cap, epoch)) = stash.next_ready(&[frontier]) {
                                let changes = Standings::encode(epoch, &mut seqs);
                                let size: usize = changes
                                    .iter()
                                    .map(|(_, c)| serde_json::to_vec(c).expect("encodes").len())
                                    .sum();
                                // Rows as pace-bench counts them in the changelog.
                                let n: usize = changes
                                    .iter()
                                    .map(|(_, c)| {
                                        c.ranks.len()
                                            + c.upserts.len()
                                            + c.removes.len()
                                            + c.splits.len()
                                            + c.split_removes.len()
                                            + usize::from(c.leader.is_some())
                                    })
                                    .sum();
                                let (bytes, rows) = out.get();
                                out.set((bytes + size, rows + n));
                                output.session(&cap).give(changes.len());
                            }
                        }
                    },
                )
                .probe_with(&probe);
            (reads, defs)
        });
        for d in definitions {
            defs.insert(d);
        }
        let mut next = 0;
        let mut feed = |epochs: Vec<Vec<Read>>| {
            for epoch in epochs {
                for r in epoch {
                    reads.insert(r);
                }
                next += 1;
                reads.advance_to(next);
                defs.advance_to(next);
                reads.flush();
                defs.flush();
                worker.step_while(|| probe.less_than(&next));
            }
        };
        feed(warmup);
        written.set((0, 0));
        let start = cpu_now();
        feed(measured);
        let (bytes, rows) = written.get();
        (cpu_now() - start, bytes, rows)
    })
}

/// This thread's CPU time, ns exact (the scheduler's own count).
fn cpu_now() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the first field is the time on CPU, ns");
    Duration::from_nanos(ns)
}
