//! The accounts job as the runtime runs it: events from `pace.accounts`
//! in, one [`AccountChange`] per user and epoch out to `pace.users` (a
//! compacted topic: the latest record of a user is their whole account).

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use ingest::source::Envelope;
use schemas::accounts::{Account, AccountChange, AccountEvent};
use schemas::{Packed, Topics};

use super::{AccountRow, accounts_durable};
use crate::job::Job;
use crate::runtime::{Dataflow, Inputs, Time};

/// Every user's account and the outcome of each of their events.
pub struct Accounts;

impl Job for Accounts {
    const NAME: &'static str = "accounts";
    type Row = AccountRow;
    type Change = AccountChange;
    /// Every account, as the changelog last said: a record is a user's
    /// whole account, also when only a refused event touched it.
    type Encoder = BTreeMap<String, Packed<Account>>;

    fn changelog(topics: &Topics) -> &str {
        &topics.users
    }

    /// One record per user whose account changed or who had an event: the
    /// account as it is now, and the outcomes. Accounts are only ever
    /// replaced, never removed, so retractions carry nothing.
    fn encode(
        updates: Vec<((String, AccountRow), isize)>,
        accounts: &mut BTreeMap<String, Packed<Account>>,
    ) -> Vec<(String, AccountChange)> {
        let mut by_user: BTreeMap<String, AccountChange> = BTreeMap::new();
        for ((user, row), _) in updates.into_iter().filter(|(_, d)| *d > 0) {
            let change = by_user
                .entry(user.clone())
                .or_insert_with(|| AccountChange {
                    user,
                    account: None,
                    outcomes: Vec::new(),
                });
            match row {
                AccountRow::Account(Packed(a)) => change.account = Some(a),
                AccountRow::Outcome(Packed(o)) => change.outcomes.push(o),
            }
        }
        for (user, change) in &mut by_user {
            if let Some(a) = &change.account {
                accounts.insert(user.clone(), Packed(a.clone()));
            }
            change.account = accounts.get(user).map(|a| a.0.clone());
        }
        by_user.into_iter().collect()
    }
}

impl Dataflow for Accounts {
    fn dataflow<'s>(inputs: &mut Inputs<'s>) -> VecCollection<'s, Time, (String, AccountRow)> {
        let topic = inputs.topics().accounts.clone();
        let events = inputs.read(&topic, |e: Envelope<AccountEvent>| {
            (e.record.user.clone(), (e.offset, Packed(e.record)))
        });
        accounts_durable(events, inputs.checkpoint("state"))
    }
}
