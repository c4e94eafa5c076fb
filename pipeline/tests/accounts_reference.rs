//! `accounts` against its sequential reference: seeded random events of a
//! few users (registrations, some twice; sessions opened, refreshed with
//! the current token or a used one, closed; events for users who never
//! registered), delivered over rounds, with 1 and 4 workers.

mod common;

use std::collections::BTreeMap;

use pace_pipeline::jobs::accounts::{AccountInput, AccountRow, accounts, reference};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::Packed;
use schemas::Timestamp;
use schemas::accounts::{AccountAction, AccountEvent};

fn sha(n: u32) -> String {
    format!("{n:064x}")
}

/// `n` events of seeded random users, in offset order.
fn random_events(seed: u64, n: usize) -> Vec<AccountInput> {
    let mut rng = StdRng::seed_from_u64(seed);
    let users = ["ann", "bob", "cy", "dee", "eve"];
    // The tokens each user's sessions were given, latest last.
    let mut given: BTreeMap<(usize, u32), Vec<u32>> = BTreeMap::new();
    let mut next_token = 0u32;
    // Up to two minutes between events: failed logins lock a user, and
    // the locks expire.
    let mut time = 1_780_000_000_000i64;
    (0..n)
        .map(|i| {
            let u = rng.random_range(0..users.len());
            let session = rng.random_range(0..6u32);
            let tokens = given.entry((u, session)).or_default();
            next_token += 1;
            time += rng.random_range(0..120_000);
            let action = match rng.random_range(0..12) {
                0 | 1 => AccountAction::Register {
                    password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt{i}$hash"),
                },
                2 | 3 => {
                    tokens.push(next_token);
                    AccountAction::Open {
                        session: format!("s{session}"),
                        token_sha256: sha(next_token),
                    }
                }
                4..=7 => {
                    // Mostly the latest token given; now and then an older one.
                    let presented = match tokens.len() {
                        0 => 0,
                        n if rng.random_bool(0.8) => tokens[n - 1],
                        n => tokens[rng.random_range(0..n)],
                    };
                    tokens.push(next_token);
                    AccountAction::Refresh {
                        session: format!("s{session}"),
                        presented_sha256: sha(presented),
                        next_sha256: sha(next_token),
                    }
                }
                8 | 9 => AccountAction::Failed,
                _ => AccountAction::Close {
                    session: format!("s{session}"),
                },
            };
            let event = AccountEvent {
                user: users[u].into(),
                request: format!("r{i}"),
                action,
                time: Timestamp(time),
            };
            (event.user.clone(), (i as i64, Packed(event)))
        })
        .collect()
}

fn counted(reference: BTreeMap<String, Vec<AccountRow>>) -> BTreeMap<(String, AccountRow), isize> {
    let mut out = BTreeMap::new();
    for (user, rows) in reference {
        for r in rows {
            *out.entry((user.clone(), r)).or_insert(0) += 1;
        }
    }
    out
}

fn run(rounds: &[Vec<AccountInput>], workers: usize) -> BTreeMap<(String, AccountRow), isize> {
    let mut out = BTreeMap::new();
    for (row, _, diff) in common::run_rounds(rounds.to_vec(), workers, accounts) {
        *out.entry(row).or_insert(0) += diff;
    }
    out.retain(|_, d| *d != 0);
    out
}

#[test]
fn accounts_equal_the_sequential_reference_one_and_four_workers() {
    for seed in [1, 2, 3] {
        let events = random_events(seed, 500);
        let expected = counted(reference(&events));
        let code = |c: &str| {
            (expected.keys())
                .filter(|(_, r)| {
                    matches!(r, AccountRow::Outcome(o) if o.refused.map(|r| format!("{r:?}")).as_deref() == Some(c))
                })
                .count()
        };
        for refusal in ["Exists", "Reused", "Revoked", "UnknownUser"] {
            assert!(
                code(refusal) > 0,
                "seed {seed}: the input is refused as {refusal}"
            );
        }
        let accounts = (expected.keys())
            .filter(|(_, r)| matches!(r, AccountRow::Account(_)))
            .count();
        assert_eq!(accounts, 5, "seed {seed}: every user registers");
        for (workers, rounds) in [(1, 1), (1, 7), (4, 7), (4, 30)] {
            let mut split = vec![Vec::new(); rounds];
            for (i, e) in events.iter().enumerate() {
                split[i * rounds / events.len()].push(e.clone());
            }
            assert_eq!(
                run(&split, workers),
                expected,
                "seed {seed}, {workers} workers, {rounds} rounds"
            );
        }
    }
}
