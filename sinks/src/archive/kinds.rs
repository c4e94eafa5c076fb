//! How the records of each archived topic become rows of its datasets
//! ([`Kind`]).

use std::path::Path;

use ingest::source::RawRecord;
use schemas::topics::{
    DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER, DLQ_SOURCE_HEADER,
    DLQ_TOPIC_HEADER, DLQ_TRUNCATED_HEADER,
};
use schemas::tournament::{TournamentChange, TournamentEvent};
use schemas::{
    CalcTask, ChatEvent, GpsPoint, RaceDefinition, RoomChange, RoomMessage, StandingsChange,
    TaskResult, TimingCrossing,
};

use super::table::{AnyTable, Origin, Table};
use crate::SinkError;
use crate::parquet::{
    DeadLetterRow, LeaderChange, MemberChange, RankRow, Row, SplitChange, StandingChange,
};

/// How the records of one topic become rows.
pub(super) trait Kind: Send + Sized + 'static {
    type Decoded;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError>;
    /// The record, or `None` if it is not archived here (a record the
    /// pipeline refuses: its dead letter is archived instead).
    fn decode(raw: &RawRecord) -> Option<Self::Decoded>;
    /// The time whose UTC date partitions the rows, if not the Kafka timestamp.
    fn time_ms(d: &Self::Decoded) -> Option<i64>;
    /// Buffers the record's rows; how many were new.
    fn push(&mut self, origin: Origin, d: Self::Decoded) -> usize;
    fn tables(&mut self) -> Vec<&mut dyn AnyTable>;
    fn tables_ref(&self) -> Vec<&dyn AnyTable>;
}

/// A record that is one row of one dataset.
pub(super) trait Single: Row {
    fn decode(raw: &RawRecord) -> Option<Self>;
    fn time_ms(&self) -> Option<i64>;
}

macro_rules! input {
    ($t:ty, $time:expr) => {
        impl Single for $t {
            fn decode(raw: &RawRecord) -> Option<Self> {
                schemas::decode::<$t>(&raw.payload).ok()
            }
            fn time_ms(&self) -> Option<i64> {
                let f: fn(&$t) -> i64 = $time;
                Some(f(self))
            }
        }
    };
}

input!(GpsPoint, |p| p.time.0);
input!(TimingCrossing, |c| c.time.0);
input!(RaceDefinition, |d| d.start.0);
input!(ChatEvent, |c| c.time.0);
input!(CalcTask, |t| t.time.0);
input!(TournamentEvent, |e| e.time.0);

impl Single for TournamentChange {
    fn decode(raw: &RawRecord) -> Option<Self> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(&self) -> Option<i64> {
        None
    }
}

impl Single for TaskResult {
    fn decode(raw: &RawRecord) -> Option<Self> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(&self) -> Option<i64> {
        Some(self.submitted_at.0)
    }
}

impl Single for DeadLetterRow {
    fn decode(raw: &RawRecord) -> Option<Self> {
        let number = |h| raw.header(h).and_then(|v| v.parse().ok());
        Some(DeadLetterRow {
            source_topic: raw.header(DLQ_TOPIC_HEADER).unwrap_or_default().to_owned(),
            source_partition: number(DLQ_PARTITION_HEADER).unwrap_or(-1) as i32,
            source_offset: number(DLQ_OFFSET_HEADER).unwrap_or(-1),
            reason: raw.header(DLQ_REASON_HEADER).unwrap_or_default().to_owned(),
            refused_by: raw.header(DLQ_SOURCE_HEADER).map(str::to_owned),
            truncated_from: number(DLQ_TRUNCATED_HEADER),
            key: raw.key.clone(),
            payload: raw.payload.clone(),
        })
    }
    fn time_ms(&self) -> Option<i64> {
        None
    }
}

/// A topic of one dataset.
pub(super) struct One<R>(Table<R>);

impl<R: Single> Kind for One<R> {
    type Decoded = R;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
        Table::open(archive).map(One)
    }
    fn decode(raw: &RawRecord) -> Option<R> {
        R::decode(raw)
    }
    fn time_ms(d: &R) -> Option<i64> {
        d.time_ms()
    }
    fn push(&mut self, origin: Origin, d: R) -> usize {
        usize::from(self.0.push(origin.wrap(d)))
    }
    fn tables(&mut self) -> Vec<&mut dyn AnyTable> {
        vec![&mut self.0]
    }
    fn tables_ref(&self) -> Vec<&dyn AnyTable> {
        vec![&self.0]
    }
}

/// `pace.standings`: standings rows, ranks, splits and leaders.
pub(super) struct Standings {
    rows: Table<StandingChange>,
    ranks: Table<RankRow>,
    splits: Table<SplitChange>,
    leaders: Table<LeaderChange>,
}

impl Kind for Standings {
    type Decoded = StandingsChange;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
        Ok(Self {
            rows: Table::open(archive)?,
            ranks: Table::open(archive)?,
            splits: Table::open(archive)?,
            leaders: Table::open(archive)?,
        })
    }
    fn decode(raw: &RawRecord) -> Option<StandingsChange> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(_: &StandingsChange) -> Option<i64> {
        None
    }
    fn push(&mut self, o: Origin, c: StandingsChange) -> usize {
        let (race, seq) = (&c.race, c.seq);
        let mut n = 0;
        for rank in c.ranks {
            n += usize::from(self.ranks.push(o.wrap(RankRow {
                race: race.clone(),
                seq,
                rank,
            })));
        }
        for row in c.upserts {
            n += usize::from(self.rows.push(o.wrap(StandingChange {
                race: race.clone(),
                seq,
                participant: row.participant.clone(),
                row: Some(row),
            })));
        }
        for participant in c.removes {
            n += usize::from(self.rows.push(o.wrap(StandingChange {
                race: race.clone(),
                seq,
                participant,
                row: None,
            })));
        }
        for split in c.splits {
            n += usize::from(self.splits.push(o.wrap(SplitChange {
                race: race.clone(),
                seq,
                key: schemas::SplitKey {
                    participant: split.participant.clone(),
                    split: split.split,
                },
                split: Some(split),
            })));
        }
        for key in c.split_removes {
            n += usize::from(self.splits.push(o.wrap(SplitChange {
                race: race.clone(),
                seq,
                key,
                split: None,
            })));
        }
        if let Some(leader) = c.leader {
            n += usize::from(self.leaders.push(o.wrap(LeaderChange {
                race: race.clone(),
                seq,
                leader,
            })));
        }
        n
    }
    fn tables(&mut self) -> Vec<&mut dyn AnyTable> {
        vec![
            &mut self.rows,
            &mut self.ranks,
            &mut self.splits,
            &mut self.leaders,
        ]
    }
    fn tables_ref(&self) -> Vec<&dyn AnyTable> {
        vec![&self.rows, &self.ranks, &self.splits, &self.leaders]
    }
}

/// `pace.rooms`: membership changes and messages.
pub(super) struct Rooms {
    members: Table<MemberChange>,
    messages: Table<RoomMessage>,
}

impl Kind for Rooms {
    type Decoded = RoomChange;
    fn open(archive: Option<&Path>) -> Result<Self, SinkError> {
        Ok(Self {
            members: Table::open(archive)?,
            messages: Table::open(archive)?,
        })
    }
    fn decode(raw: &RawRecord) -> Option<RoomChange> {
        serde_json::from_slice(&raw.payload).ok()
    }
    fn time_ms(_: &RoomChange) -> Option<i64> {
        None
    }
    fn push(&mut self, o: Origin, c: RoomChange) -> usize {
        let mut n = 0;
        for m in c.members {
            n += usize::from(self.members.push(o.wrap(MemberChange {
                room: c.room.clone(),
                user: m.user.clone(),
                member: Some(m),
            })));
        }
        for user in c.removes {
            n += usize::from(self.members.push(o.wrap(MemberChange {
                room: c.room.clone(),
                user,
                member: None,
            })));
        }
        for m in c.messages {
            n += usize::from(self.messages.push(o.wrap(m)));
        }
        n
    }
    fn tables(&mut self) -> Vec<&mut dyn AnyTable> {
        vec![&mut self.members, &mut self.messages]
    }
    fn tables_ref(&self) -> Vec<&dyn AnyTable> {
        vec![&self.members, &self.messages]
    }
}
