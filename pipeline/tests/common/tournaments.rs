//! Tournament events for the tests: one by hand, or seeded random ones.

use pace_pipeline::jobs::tournaments::TournamentInput;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::tournament::{TournamentAction, TournamentEvent};
use schemas::{Packed, Timestamp};

/// `user`'s `action` on tournament `id`.
pub fn event(
    id: &str,
    user: &str,
    action: TournamentAction,
    client: Option<String>,
) -> TournamentEvent {
    TournamentEvent {
        tournament: id.into(),
        user: user.into(),
        action,
        client_msg_id: client,
        time: Timestamp(1_780_000_000_000),
    }
}

/// Seeded random events of a few tournaments, in offset order.
pub fn random_events(seed: u64, n: usize) -> Vec<TournamentInput> {
    let mut rng = StdRng::seed_from_u64(seed);
    let users = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"];
    let teams = [
        "Ajax",
        "Benfica",
        "Celtic",
        "Dynamo",
        "Everton",
        "Fiorentina",
    ];
    let mut out: Vec<TournamentInput> = Vec::new();
    for i in 0..n {
        let id = format!("cup{}", rng.random_range(0..6));
        let user = users[rng.random_range(0..users.len())];
        let action = match rng.random_range(0..100) {
            0..8 => TournamentAction::Create {
                name: format!("Cup {i}"),
                player_limit: rng.random_range(2..6),
            },
            8..45 => TournamentAction::Join {
                display_name: user.to_uppercase(),
            },
            45..80 => TournamentAction::Choose {
                team: teams[rng.random_range(0..teams.len())].into(),
            },
            80..92 => TournamentAction::Rename {
                name: format!("Cup {i}"),
                version: rng.random_range(1..4),
            },
            _ => TournamentAction::Close {},
        };
        let client = rng
            .random_bool(0.7)
            .then(|| format!("c{}", rng.random_range(0..40)));
        let e = event(&id, user, action, client);
        out.push((id.clone(), (i as i64, Packed(e.clone()))));
        // A retry: the same request again, a little later.
        if rng.random_bool(0.1) && e.client_msg_id.is_some() {
            out.push((id, (i as i64, Packed(e))));
        }
    }
    // Offsets in order; a retry is a record of its own.
    for (i, (_, (order, _))) in out.iter_mut().enumerate() {
        *order = i as i64;
    }
    out
}
