//! `accounts`: users and their sessions, from `pace.accounts` events (see
//! [`schemas::accounts`] for what each does).
//!
//! A user's events are keyed by user, so one partition holds them and
//! their offsets order them. The job folds each user's events in that
//! order ([`Account::apply`]): the first registration of a name wins, a
//! refresh must present its session's current token, and a used one
//! revokes the session. The view of a user is their account (one row,
//! replaced as it changes) and the outcome of every event (once, never
//! retracted), which the edge that sent it waits for.
//!
//! Batches are applied once the frontier has passed their time, in order,
//! so the view depends only on the events and their order: the same after
//! a replay and for any worker count. Each user's account is what a
//! snapshot keeps.

mod job;

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use differential_dataflow::lattice::Lattice;
use schemas::Packed;
use schemas::accounts::{Account, AccountEvent, AccountOutcome};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

pub use job::Accounts;

use super::fold::{changed_rows, fold_in_order, in_order_by_key};
use crate::snapshot::Checkpoint;

/// An account event in the dataflow: user, and (order, event); the order
/// is its Kafka offset.
pub type AccountInput = (String, (i64, Packed<AccountEvent>));

/// A row of a user's view.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum AccountRow {
    /// The account, once registered.
    Account(Packed<Account>),
    /// What became of an event (appears once, never retracted).
    Outcome(Packed<AccountOutcome>),
}

/// The accounts on one worker, as a snapshot holds them: each user's
/// account (`None`: events came, but no registration yet).
pub type AccountsState = BTreeMap<String, Packed<Option<Account>>>;

fn rows(account: &Option<Account>) -> Vec<AccountRow> {
    (account.iter().cloned())
        .map(|a| AccountRow::Account(Packed(a)))
        .collect()
}

/// Every user's view, as `(user, row)`.
pub fn accounts<'s, T>(
    events: VecCollection<'s, T, AccountInput>,
) -> VecCollection<'s, T, (String, AccountRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    accounts_durable(events, Checkpoint::none())
}

/// [`accounts`] that writes its state at snapshot points through
/// `checkpoint` and starts from what it restored; a restored account emits
/// nothing until its next event (its record is in the changelog).
pub fn accounts_durable<'s, T>(
    events: VecCollection<'s, T, AccountInput>,
    checkpoint: Checkpoint<AccountsState>,
) -> VecCollection<'s, T, (String, AccountRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    fold_in_order(
        events,
        "Accounts",
        checkpoint,
        |all: &mut AccountsState, batch, out| {
            let mut touched: BTreeMap<String, Vec<AccountRow>> = BTreeMap::new();
            for (user, (_order, event)) in batch {
                let Packed(account) = all.entry(user.clone()).or_default();
                touched.entry(user.clone()).or_insert_with(|| rows(account));
                let outcome = Account::apply(account, &event);
                out.push(((user, AccountRow::Outcome(Packed(outcome))), 1));
            }
            for (user, before) in touched {
                changed_rows(&user, &before, &rows(&all[&user].0), out);
            }
        },
    )
}

/// The views, the plain way: each user's events sorted by order and
/// applied one by one; their account and every outcome.
pub fn reference(events: &[AccountInput]) -> BTreeMap<String, Vec<AccountRow>> {
    in_order_by_key(events)
        .into_iter()
        .map(|(user, list)| {
            let mut account = None;
            let mut out: Vec<AccountRow> = list
                .into_iter()
                .map(|(_, e)| AccountRow::Outcome(Packed(Account::apply(&mut account, e))))
                .collect();
            out.extend(rows(&account));
            out.sort();
            (user.to_owned(), out)
        })
        .collect()
}
