//! The built-in generated race, so that `pace run` has something that moves.
//!
//! A loop course of about 2.5 km raced over 4 laps by a few hundred runners of
//! varied pace, with GPS noise of a few metres and occasional dropouts. Each
//! call of [`DemoRace::tick`] advances the race by one second. When everyone
//! has finished, [`run_demo`] starts the next race.
//!
//! And the built-in chat ([`DemoChat`], [`run_chat_demo`]): a public room
//! `lobby` where a handful of spectators join, talk about the race, and now
//! and then leave and come back. And a chip-timed road race beside the
//! loop ([`road`], [`run_road_demo`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::{
    ChatEvent, ChatKind, GpsPoint, LatLon, Participant, RaceDefinition, RaceKind, Timestamp,
    Visibility,
};

pub mod road;

use crate::jsonl::send_record;
use crate::producer::TrackedProducer;
use crate::{IngestError, KafkaConfig};

/// A course as a polyline with cumulative distances.
#[derive(Clone, Debug)]
pub struct Course {
    points: Vec<LatLon>,
    cumulative: Vec<f64>,
}

impl Course {
    /// The course through `points`.
    pub fn new(points: Vec<LatLon>) -> Self {
        let mut cumulative = vec![0.0];
        for w in points.windows(2) {
            let last = *cumulative.last().expect("non-empty");
            cumulative.push(last + w[0].distance_m(w[1]));
        }
        Self { points, cumulative }
    }

    /// Length, metres.
    pub fn length_m(&self) -> f64 {
        *self.cumulative.last().expect("non-empty")
    }

    /// The point `d` metres along the course (clamped to its ends).
    pub fn at(&self, d: f64) -> LatLon {
        let d = d.clamp(0.0, self.length_m());
        let i = self
            .cumulative
            .partition_point(|c| *c <= d)
            .clamp(1, self.points.len() - 1);
        let (a, b) = (self.points[i - 1], self.points[i]);
        let seg = self.cumulative[i] - self.cumulative[i - 1];
        let f = if seg > 0.0 {
            (d - self.cumulative[i - 1]) / seg
        } else {
            0.0
        };
        LatLon {
            lat: a.lat + (b.lat - a.lat) * f,
            lon: a.lon + (b.lon - a.lon) * f,
        }
    }

    /// The polyline.
    pub fn points(&self) -> &[LatLon] {
        &self.points
    }
}

struct Runner {
    id: String,
    speed_mps: f64,
    /// Speed lost per kilometre run (negative: a negative split).
    fade_per_km: f64,
    covered_m: f64,
    /// Where the runner drops out of the race, if they do.
    retires_at_m: Option<f64>,
    /// No points until this tick (a tunnel, a flat battery).
    silent_until: u64,
}

/// A generated race in progress.
pub struct DemoRace {
    /// Its definition, for `pace.races`.
    pub definition: RaceDefinition,
    course: Course,
    runners: Vec<Runner>,
    rng: StdRng,
    now: Timestamp,
    ticks: u64,
}

/// Laps of the demo course.
pub const DEMO_LAPS: u32 = 4;

impl DemoRace {
    /// A race `id` of `participants` runners starting at `start`; `seed` fixes everything random.
    pub fn new(id: &str, participants: usize, seed: u64, start: Timestamp) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let centre = LatLon {
            lat: 59.3293,
            lon: 18.0686,
        };
        // A wobbly ellipse: 60 vertices, about 2.5 km round.
        let mut pts: Vec<LatLon> = (0..60)
            .map(|i| {
                let a = i as f64 / 60.0 * std::f64::consts::TAU;
                let r = 1.0 + 0.08 * (3.0 * a).sin();
                centre.offset_m(520.0 * r * a.cos(), 300.0 * r * a.sin())
            })
            .collect();
        pts.push(pts[0]);
        let course = Course::new(pts);
        let course_m = course.length_m();
        let runners: Vec<Runner> = (1..=participants)
            .map(|i| Runner {
                id: format!("bib-{i:04}"),
                speed_mps: rng.random_range(2.6..5.2),
                fade_per_km: rng.random_range(-0.02..0.06),
                covered_m: 0.0,
                // About one in fifty drops out somewhere on the course.
                retires_at_m: rng
                    .random_bool(0.02)
                    .then(|| rng.random_range(500.0..course_m * f64::from(DEMO_LAPS))),
                silent_until: 0,
            })
            .collect();
        let definition = RaceDefinition {
            id: id.to_owned(),
            name: format!("pace demo loop ({} laps)", DEMO_LAPS),
            start,
            kind: RaceKind::Course {
                polyline: course.points().to_vec(),
                is_loop: true,
            },
            laps: DEMO_LAPS,
            cutoff: None,
            participants: runners
                .iter()
                .map(|r| Participant {
                    id: r.id.clone(),
                    name: format!("Runner {}", &r.id[4..]),
                    wave: None,
                    ..Default::default()
                })
                .collect(),
            rules: schemas::RaceRules {
                max_speed_mps: Some(12.0),
                // Watches stop on the line, give or take their noise.
                line_tolerance_m: Some(10.0),
                retire_after_s: Some(300.0),
                ..Default::default()
            },
        };
        Self {
            definition,
            course,
            runners,
            rng,
            now: start,
            ticks: 0,
        }
    }

    /// Total race distance, metres.
    pub fn distance_m(&self) -> f64 {
        self.course.length_m() * f64::from(DEMO_LAPS)
    }

    /// Advances one second; the GPS points of that second. Finished and
    /// retired runners send none; others sometimes go silent for up to a
    /// minute, and about one point in five hundred is a multipath outlier
    /// hundreds of metres off.
    pub fn tick(&mut self) -> Vec<GpsPoint> {
        self.now = Timestamp(self.now.0 + 1000);
        self.ticks += 1;
        let total = self.distance_m();
        let lap = self.course.length_m();
        let mut out = Vec::with_capacity(self.runners.len());
        for r in &mut self.runners {
            if r.covered_m >= total || r.retires_at_m.is_some_and(|at| r.covered_m >= at) {
                continue;
            }
            let effort = self.rng.random_range(0.9..1.1);
            let speed = (r.speed_mps - r.fade_per_km * r.covered_m / 1000.0).max(1.0);
            r.covered_m = (r.covered_m + speed * effort).min(total);
            if r.silent_until > self.ticks {
                continue;
            }
            if self.rng.random_bool(0.002) {
                r.silent_until = self.ticks + self.rng.random_range(10..60);
            }
            if self.rng.random_bool(0.03) {
                continue; // a lost point
            }
            let (mut east, mut north) = (
                self.rng.random_range(-4.0..4.0),
                self.rng.random_range(-4.0..4.0),
            );
            if self.rng.random_bool(0.002) {
                east += self.rng.random_range(200.0..600.0);
                north -= self.rng.random_range(200.0..600.0);
            }
            let p = self.course.at(r.covered_m % lap).offset_m(east, north);
            out.push(fix(&self.definition.id, &r.id, self.now, p));
        }
        out
    }

    /// Whether every runner has finished or retired.
    pub fn finished(&self) -> bool {
        let total = self.distance_m();
        self.runners
            .iter()
            .all(|r| r.covered_m >= total || r.retires_at_m.is_some_and(|at| r.covered_m >= at))
    }
}

/// A generated runner's GPS fix at `at`, with a watch's 5 m accuracy.
fn fix(race: &str, participant: &str, time: Timestamp, at: LatLon) -> GpsPoint {
    GpsPoint {
        race: race.to_owned(),
        participant: participant.to_owned(),
        time,
        lat: at.lat,
        lon: at.lon,
        elevation: None,
        accuracy: Some(5.0),
    }
}

/// Produces demo races in real time (one tick a second) until `stop` is set.
pub fn run_demo(
    config: KafkaConfig,
    participants: usize,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<(), IngestError>> {
    let mut race: Option<DemoRace> = None;
    let mut n = 0u64;
    every_second("pace-demo", config, stop, move |producer, topics| {
        let current = match race.take() {
            Some(r) if !r.finished() => race.insert(r),
            _ => {
                n += 1;
                let r = DemoRace::new(&format!("demo-{n}"), participants, n, Timestamp::now());
                send_record(producer, &topics.races, &r.definition)?;
                tracing::info!(race = %r.definition.id, participants, "demo race started");
                race.insert(r)
            }
        };
        current
            .tick()
            .iter()
            .try_for_each(|p| send_record(producer, &topics.gps, p))
    })
}

/// Produces the built-in chip-timed road races ([`road::DemoRoadRace`],
/// `city-5k-N`) until `stop` is set: mat reads, and the GPS points of the
/// runners who carry a tracker. Each race is joined
/// [`road::JOINED_AFTER_S`] after its gun, then runs in real time.
pub fn run_road_demo(
    config: KafkaConfig,
    runners: usize,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<(), IngestError>> {
    let mut race: Option<road::DemoRoadRace> = None;
    let mut n = 0u64;
    every_second("pace-road-demo", config, stop, move |producer, topics| {
        let current = match race.take() {
            Some(r) if !r.finished() => race.insert(r),
            _ => {
                n += 1;
                let joined_ms = road::JOINED_AFTER_S as i64 * 1000;
                let mut r = road::DemoRoadRace::new(
                    &format!("city-5k-{n}"),
                    runners,
                    n,
                    Timestamp(Timestamp::now().0 - joined_ms),
                );
                send_record(producer, &topics.races, &r.definition)?;
                tracing::info!(race = %r.definition.id, runners, "demo road race started");
                for _ in 1..road::JOINED_AFTER_S {
                    send_road_tick(producer, topics, r.tick())?;
                }
                race.insert(r)
            }
        };
        send_road_tick(producer, topics, current.tick())
    })
}

fn send_road_tick(
    producer: &TrackedProducer,
    topics: &schemas::Topics,
    tick: road::RoadTick,
) -> Result<(), IngestError> {
    (tick.reads.iter()).try_for_each(|c| send_record(producer, &topics.timing, c))?;
    (tick.points.iter()).try_for_each(|p| send_record(producer, &topics.gps, p))
}

/// Runs `tick` once a second on a thread of its own, with a producer, until
/// `stop`; then flushes.
fn every_second(
    name: &str,
    config: KafkaConfig,
    stop: Arc<AtomicBool>,
    mut tick: impl FnMut(&TrackedProducer, &schemas::Topics) -> Result<(), IngestError> + Send + 'static,
) -> JoinHandle<Result<(), IngestError>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let producer = TrackedProducer::new(&config)?;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                tick(&producer, &config.topics)?;
                next += Duration::from_secs(1);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            producer.flush(Duration::from_secs(10))
        })
        .expect("spawn a generator thread")
}

/// The built-in chat room.
pub const DEMO_ROOM: &str = "lobby";

const CHATTERS: [&str; 6] = ["ada", "bo", "chen", "dee", "eli", "fay"];
const LINES: [&str; 10] = [
    "who is leading?",
    "bib 12 is flying today",
    "that last lap was quick",
    "anyone at the finish line?",
    "gap is closing",
    "go go go!",
    "nice pacing",
    "the wind picked up",
    "what a race",
    "see you at the next one",
];

/// The built-in chat: events of room [`DEMO_ROOM`], one tick a second.
pub struct DemoChat {
    rng: StdRng,
    present: Vec<bool>,
    started: bool,
    n: u64,
}

impl DemoChat {
    /// A chat whose randomness `seed` fixes.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            present: vec![false; CHATTERS.len()],
            started: false,
            n: 0,
        }
    }

    /// The events of the next second at `now`: the room's creation first,
    /// then joins, leaves and messages of whoever is present.
    pub fn tick(&mut self, now: Timestamp) -> Vec<ChatEvent> {
        let event = |user: &str, kind: ChatKind| ChatEvent {
            room: DEMO_ROOM.into(),
            user: user.into(),
            kind,
            text: None,
            client_msg_id: None,
            visibility: None,
            invitee: None,
            seq: None,
            edge: None,
            present: None,
            time: now,
        };
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(ChatEvent {
                visibility: Some(Visibility::Public),
                ..event("pace", ChatKind::Create)
            });
        }
        let who = self.rng.random_range(0..CHATTERS.len());
        let user = CHATTERS[who];
        if !self.present[who] {
            if self.rng.random_bool(0.3) {
                self.present[who] = true;
                out.push(event(user, ChatKind::Join));
            }
        } else if self.rng.random_bool(0.03) {
            self.present[who] = false;
            out.push(event(user, ChatKind::Leave));
        } else if self.rng.random_bool(0.4) {
            self.n += 1;
            out.push(ChatEvent {
                text: Some(LINES[self.rng.random_range(0..LINES.len())].into()),
                client_msg_id: Some(format!("demo-{}", self.n)),
                ..event(user, ChatKind::Message)
            });
        }
        out
    }
}

/// Produces the built-in chat in real time (one tick a second) until `stop`.
pub fn run_chat_demo(
    config: KafkaConfig,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<(), IngestError>> {
    let mut chat = DemoChat::new(Timestamp::now().0 as u64);
    every_second("pace-chat-demo", config, stop, move |producer, topics| {
        chat.tick(Timestamp::now())
            .iter()
            .try_for_each(|e| send_record(producer, &topics.chat, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Validate;

    #[test]
    fn demo_race_is_valid_and_moves() {
        let mut race = DemoRace::new("demo-1", 50, 7, Timestamp(1_780_000_000_000));
        race.definition.validate().unwrap();
        assert!(
            (race.course.length_m() - 2_600.0).abs() < 400.0,
            "{}",
            race.course.length_m()
        );
        let first = race.tick();
        assert!(first.len() > 40, "few dropouts");
        for p in &first {
            p.validate().unwrap();
        }
        let mut ticks = 1;
        while !race.finished() {
            race.tick();
            ticks += 1;
        }
        // 10.4 km at 2.6..5.2 m/s, fading: between about 33 and 90 minutes.
        assert!((1_800..5_400).contains(&ticks), "{ticks}");
    }

    #[test]
    fn demo_chat_creates_its_room_then_talks() {
        let mut chat = DemoChat::new(5);
        let t = Timestamp(1_780_000_000_000);
        let events: Vec<ChatEvent> = (0..600).flat_map(|_| chat.tick(t)).collect();
        assert_eq!(events[0].kind, ChatKind::Create);
        for e in &events {
            e.validate().unwrap();
        }
        let said = events
            .iter()
            .filter(|e| e.kind == ChatKind::Message)
            .count();
        assert!(said > 100, "{said}");
        assert!(events.iter().any(|e| e.kind == ChatKind::Leave));
    }

    #[test]
    fn same_seed_same_race() {
        let mut a = DemoRace::new("d", 5, 3, Timestamp(1_780_000_000_000));
        let mut b = DemoRace::new("d", 5, 3, Timestamp(1_780_000_000_000));
        assert_eq!(a.tick(), b.tick());
    }
}
