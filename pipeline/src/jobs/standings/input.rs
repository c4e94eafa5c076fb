//! What the standings job reads, as the dataflow carries it: an
//! [`Observation`] per GPS fix or timing crossing, each race's
//! [`Definition`], decoded once where it is read ([`Spec`]), and each
//! entrant's [`Entry`].

use std::sync::Arc;

use schemas::{Entrant, GpsPoint, Participant, RaceDefinition, TimingCrossing};
use serde::{Deserialize, Serialize};

use super::Obs;

/// An observation of a participant: a GPS fix or a timing crossing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Observation {
    /// Race id.
    pub race: String,
    /// Participant id.
    pub participant: String,
    /// When, Unix ms.
    pub time_ms: i64,
    /// What was seen.
    pub what: Obs,
    /// Where it was read: Kafka partition and offset (none when it was not
    /// read from Kafka), for the dead letter of a point that came too late.
    pub origin: Option<(i32, i64)>,
}

impl Observation {
    /// This observation, read at `offset` of `partition`.
    pub fn read_at(self, partition: i32, offset: i64) -> Self {
        Self {
            origin: Some((partition, offset)),
            ..self
        }
    }
}

/// A race definition in the dataflow, decoded once where it is read and
/// shared from then on (workers of a process get the same `Arc`; another
/// process decodes the JSON it is sent once). Compared, ordered and hashed
/// by its JSON, which is how it travels and how a snapshot keeps it.
#[derive(Clone, Debug)]
pub struct Spec {
    json: Arc<str>,
    def: Arc<RaceDefinition>,
}

impl Spec {
    /// The definition, with its JSON.
    pub fn new(def: RaceDefinition) -> Self {
        let json = serde_json::to_string(&def).expect("definitions serialise");
        Self {
            json: json.into(),
            def: Arc::new(def),
        }
    }

    /// The definition.
    pub fn get(&self) -> &RaceDefinition {
        &self.def
    }
}

impl PartialEq for Spec {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Eq for Spec {}

impl PartialOrd for Spec {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Spec {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.json.cmp(&other.json)
    }
}

impl std::hash::Hash for Spec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.json.hash(state);
    }
}

impl Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.json)
    }
}

impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = String::deserialize(d)?;
        let def = serde_json::from_str(&json).map_err(serde::de::Error::custom)?;
        Ok(Self {
            json: json.into(),
            def: Arc::new(def),
        })
    }
}

/// A race definition in the dataflow: race id, and (order, definition).
/// Of a race's definitions the one with the greatest order (its Kafka offset)
/// holds.
pub type Definition = (String, (i64, Spec));

/// What a race says of one participant (name, wave, gender, category):
/// from an [`Entrant`] record, or else from the definition's
/// `participants`.
pub type Listing = Option<Listed>;

/// A participant's listing in the dataflow, shared (every row of the
/// participant carries it). It crosses workers and snapshots as all of its
/// fields in order: bincode cannot skip the absent ones as JSON does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listed(Arc<Participant>);

impl From<Participant> for Listed {
    fn from(p: Participant) -> Self {
        Listed(Arc::new(p))
    }
}

impl std::ops::Deref for Listed {
    type Target = Participant;
    fn deref(&self) -> &Participant {
        &self.0
    }
}

type ListedFields = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Serialize for Listed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &*self.0;
        (&p.id, &p.name, &p.wave, &p.gender, &p.category).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Listed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (id, name, wave, gender, category) = ListedFields::deserialize(d)?;
        Ok(Participant {
            id,
            name,
            wave,
            gender,
            category,
        }
        .into())
    }
}

/// An entrant in the dataflow: (race, participant), and (order, listing).
/// Of a participant's entries the one with the greatest order (its Kafka
/// offset) holds, and overrides what the race's definition lists.
pub type Entry = ((String, String), (i64, Listed));

/// An entrant record as the job sees it, ordered by `order`.
pub fn entry(e: &Entrant, order: i64) -> Entry {
    (
        (e.race.clone(), e.participant.clone()),
        (order, e.listing().into()),
    )
}

/// A GPS point as the job sees it.
pub fn fix(p: GpsPoint) -> Observation {
    Observation {
        race: p.race,
        participant: p.participant,
        time_ms: p.time.0,
        what: Obs::Fix {
            lat_e7: to_e7(p.lat),
            lon_e7: to_e7(p.lon),
        },
        origin: None,
    }
}

/// A timing crossing as the job sees it.
pub fn crossing(c: TimingCrossing) -> Observation {
    Observation {
        race: c.race,
        participant: c.participant,
        time_ms: c.time.0,
        what: Obs::Cross { line: c.line },
        origin: None,
    }
}

/// A race definition as the job sees it, ordered by `order`.
pub fn definition(d: &RaceDefinition, order: i64) -> Definition {
    (d.id.clone(), (order, Spec::new(d.clone())))
}

/// Converts degrees to the dataflow's fixed point (1e-7 degrees, about 1 cm).
pub fn to_e7(deg: f64) -> i64 {
    (deg * 1e7).round() as i64
}
