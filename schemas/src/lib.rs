//! # pace-schemas
//!
//! The vocabulary every other pace crate speaks, with no I/O of its own (no
//! Kafka, no warp, no files):
//!
//! - [`records`]: the input records that arrive on the input topics (GPS point,
//!   timing crossing, race definition, chat event, calc task);
//! - [`views`]: the rows of the live views (standing row, split, room member,
//!   room message, task result) and the changelog record of the standings;
//!   [`changelog`]: that record's compact JSON on `pace.standings`;
//! - [`wire`]: the JSON wire format, [`wire::decode`] with the payload limit, and
//!   the typed [`DecodeError`];
//! - [`validate`]: strict validation; every error names the field and the reason;
//! - [`topics`]: every Kafka topic name, in one place, and which are archived
//!   as what;
//! - [`archive`]: what the archive's datasets are, described without Arrow
//!   (their column lists), and how a record becomes rows; [`datasets`]: the
//!   datasets of the race, rooms and tasks views; [`dead_letter`]: a refused
//!   record's headers and dataset;
//! - [`tournament`]: the tournament draw's events and view;
//! - [`edge`]: what edges tell each other (budget usage);
//! - [`binding`]: which input offsets each dataflow epoch covered;
//! - [`time`]: [`Timestamp`], UTC milliseconds, RFC 3339 on the wire.

pub mod accounts;
pub mod archive;
pub mod binding;
pub mod changelog;
pub mod datasets;
pub mod dead_letter;
pub mod edge;
pub mod race;
pub mod records;
pub mod time;
pub mod topics;
pub mod tournament;
pub mod validate;
pub mod views;
pub mod wire;

pub use binding::EpochBinding;
pub use edge::EdgeUsage;
pub use records::{
    CalcTask, ChatEvent, ChatKind, Clock, Entrant, GpsPoint, LatLon, Mark, Participant,
    RaceDefinition, RaceKind, RaceRules, TimingCrossing, TimingLine, TimingMat, Visibility, Wave,
    direct_room,
};
pub use time::Timestamp;
pub use topics::Topics;
pub use validate::{Validate, ValidationError};
pub use views::{
    Leader, RaceSummary, RankChange, RoomChange, RoomMember, RoomMessage, Split, SplitKey,
    StandingRow, StandingsChange, Status, TaskResult, TaskStatus,
};
pub use wire::{DecodeError, Packed, decode};
