//! Race geometry in local metres: a race definition compiled once, so the
//! per-point work is plane arithmetic.
//!
//! Positions are projected onto a plane tangent at the race's first point
//! (equirectangular; under a centimetre of error per kilometre over the few
//! kilometres a course spans).

use std::collections::HashMap;

use schemas::{Clock, LatLon, RaceDefinition, RaceKind};

use super::{Listed, Listing};

/// A point on the race plane, metres east and north of the origin.
pub type Xy = (f64, f64);

/// Plane projection around an origin.
#[derive(Clone, Copy, Debug)]
pub struct Projection {
    origin: LatLon,
    m_per_deg_lat: f64,
    m_per_deg_lon: f64,
}

impl Projection {
    /// The projection tangent at `origin`.
    pub fn at(origin: LatLon) -> Self {
        let m = schemas::records::EARTH_RADIUS_M.to_radians();
        Self {
            origin,
            m_per_deg_lat: m,
            m_per_deg_lon: m * origin.lat.to_radians().cos(),
        }
    }

    /// `p` on the plane.
    pub fn xy(&self, p: LatLon) -> Xy {
        (
            (p.lon - self.origin.lon) * self.m_per_deg_lon,
            (p.lat - self.origin.lat) * self.m_per_deg_lat,
        )
    }

    /// A fixed-point position (1e-7 degrees) on the plane.
    pub fn xy_e7(&self, lat_e7: i64, lon_e7: i64) -> Xy {
        self.xy(LatLon {
            lat: lat_e7 as f64 / 1e7,
            lon: lon_e7 as f64 / 1e7,
        })
    }
}

pub(crate) fn sub(a: Xy, b: Xy) -> Xy {
    (a.0 - b.0, a.1 - b.1)
}
pub(crate) fn dot(a: Xy, b: Xy) -> f64 {
    a.0 * b.0 + a.1 * b.1
}
pub(crate) fn cross(a: Xy, b: Xy) -> f64 {
    a.0 * b.1 - a.1 * b.0
}
pub(crate) fn dist(a: Xy, b: Xy) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}
fn unit(v: Xy) -> Xy {
    let l = v.0.hypot(v.1);
    if l == 0.0 {
        (1.0, 0.0)
    } else {
        (v.0 / l, v.1 / l)
    }
}
fn centroid(points: &[Xy]) -> Xy {
    let n = points.len().max(1) as f64;
    let (x, y) = points
        .iter()
        .fold((0.0, 0.0), |acc, p| (acc.0 + p.0, acc.1 + p.1));
    (x / n, y / n)
}

/// Where, as a fraction of the step `p → q`, the step crosses the segment
/// `a → b` (`None` if it does not).
pub fn segment_crossing(p: Xy, q: Xy, a: Xy, b: Xy) -> Option<f64> {
    let (d, e) = (sub(q, p), sub(b, a));
    let den = cross(d, e);
    if den == 0.0 {
        return None;
    }
    let u = cross(sub(a, p), e) / den;
    let v = cross(sub(a, p), d) / den;
    ((0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v)).then_some(u)
}

/// A compiled race.
#[derive(Clone, Debug)]
pub struct Race {
    /// The gun, ms.
    pub start_ms: i64,
    /// Laps to race.
    pub laps: u32,
    /// No lap starts after this, ms.
    pub cutoff_ms: Option<i64>,
    /// Plausible top speed, m/s.
    pub max_speed_mps: f64,
    /// Shortest possible lap, ms.
    pub min_lap_ms: i64,
    /// A participant unseen this long while others are seen is retired, ms.
    pub retire_after_ms: i64,
    /// How late a point may arrive behind the participant's latest one, ms.
    pub allowed_lateness_ms: i64,
    /// How far short of a finish line a participant may stop and count as finished, metres.
    pub line_tolerance_m: f64,
    /// The plane.
    pub projection: Projection,
    /// Course, marks or timing lines.
    pub geometry: Geometry,
    /// The participants the definition lists, by id.
    pub listed: HashMap<String, Listed>,
}

impl Race {
    /// What the definition lists of `participant`.
    pub fn listing(&self, participant: &str) -> Listing {
        self.listed.get(participant).cloned()
    }
}

/// The compiled shape of a race.
#[derive(Clone, Debug)]
pub enum Geometry {
    /// A polyline raced point to point or in laps.
    Course(Course),
    /// Start line, marks and gates, finish line.
    Marks(Marks),
    /// Timing lines, the start/finish line first.
    Timing(Timing),
    /// Chip-timing mats, the start mat first and the finish last.
    Mats(Mats),
}

/// A course polyline with cumulative distances.
#[derive(Clone, Debug)]
pub struct Course {
    points: Vec<Xy>,
    /// `cum[i]`: distance from the start to `points[i]`, metres.
    cum: Vec<f64>,
    /// One lap (or the whole course), metres.
    pub length: f64,
    /// Whether laps repeat the polyline.
    pub is_loop: bool,
}

/// Farthest a point may lie from the course and still be matched to it, metres.
pub const MAX_OFF_COURSE_M: f64 = 100.0;
/// How far behind its last matched position a point may be matched (GPS noise), metres.
const MATCH_BACK_M: f64 = 30.0;
/// Slack on the forward window: GPS noise, metres.
pub const NOISE_M: f64 = 20.0;
/// Of stretches of course about as near as the nearest (within this, metres),
/// the least advanced is taken: the nearest plausible position ahead.
const MATCH_AMBIGUITY_M: f64 = 20.0;
/// Candidates closer than this along the course are one stretch of road, metres.
const STRETCH_GAP_M: f64 = 60.0;

impl Course {
    fn new(points: Vec<Xy>, is_loop: bool) -> Self {
        let mut points = points;
        if is_loop && points.first() != points.last() {
            points.push(points[0]);
        }
        let mut cum = Vec::with_capacity(points.len());
        let mut total = 0.0;
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                total += dist(points[i - 1], *p);
            }
            cum.push(total);
        }
        Self {
            points,
            cum,
            length: total,
            is_loop,
        }
    }

    /// The position along the (unrolled) course nearest `p` within
    /// `[lo, hi]` metres: `(distance, metres off course)`. Of candidates about
    /// as near as the nearest, the least advanced wins.
    pub fn match_point(&self, p: Xy, lo: f64, hi: f64) -> Option<(f64, f64)> {
        if self.length <= 0.0 {
            return None;
        }
        let lo = lo.max(0.0);
        let mut candidates: Vec<(f64, f64)> = Vec::new();
        let first_lap = (lo / self.length).floor() as i64;
        let last_lap = if self.is_loop {
            (hi / self.length).floor() as i64
        } else {
            0
        };
        // A window longer than a lap is ambiguous anyway: look at most two laps ahead.
        for lap in first_lap..=last_lap.min(first_lap + 2) {
            let base = lap as f64 * self.length;
            let start = self
                .cum
                .partition_point(|c| base + c < lo)
                .saturating_sub(1);
            for i in start..self.points.len().saturating_sub(1) {
                let (s0, s1) = (base + self.cum[i], base + self.cum[i + 1]);
                if s0 > hi {
                    break;
                }
                let (a, b) = (self.points[i], self.points[i + 1]);
                let seg = sub(b, a);
                let len2 = dot(seg, seg);
                let u = if len2 == 0.0 {
                    0.0
                } else {
                    (dot(sub(p, a), seg) / len2).clamp(0.0, 1.0)
                };
                let s = (s0 + u * (s1 - s0)).clamp(lo, hi);
                // The point of the segment at the clamped distance.
                let f = if s1 > s0 { (s - s0) / (s1 - s0) } else { 0.0 };
                let at = (a.0 + f * seg.0, a.1 + f * seg.1);
                candidates.push((s, dist(p, at)));
            }
        }
        let best = candidates.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
        if best > MAX_OFF_COURSE_M {
            return None;
        }
        // Candidates come per segment, in course order. Runs of them that are
        // close along the course are one stretch of road: take the nearest of
        // each. Of stretches about as near as the nearest (an out-and-back,
        // the same spot on two laps), the least advanced wins.
        let mut stretches: Vec<(f64, f64)> = Vec::new();
        let mut previous: Option<f64> = None;
        for c in candidates {
            match stretches.last_mut() {
                Some(last) if previous.is_some_and(|p| c.0 - p <= STRETCH_GAP_M) => {
                    if c.1 < last.1 {
                        *last = c;
                    }
                }
                _ => stretches.push(c),
            }
            previous = Some(c.0);
        }
        stretches
            .into_iter()
            .filter(|c| c.1 <= best + MATCH_AMBIGUITY_M)
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// The window of distances a point `dt_ms` after one matched at `d` may be matched in.
    pub fn window(&self, d: f64, dt_ms: i64, max_speed_mps: f64) -> (f64, f64) {
        let ahead = max_speed_mps * dt_ms.max(0) as f64 / 1000.0 + NOISE_M;
        (d - MATCH_BACK_M, d + ahead)
    }
}

/// A mark race: the corners to pass, start line first and finish line last.
#[derive(Clone, Debug)]
pub struct Marks {
    /// The start line.
    pub start: (Xy, Xy),
    /// The side of the start line the course is on (sign of the cross product).
    pub course_side: f64,
    /// Marks and gates, in order.
    pub corners: Vec<Corner>,
    /// The finish line.
    pub finish: (Xy, Xy),
    /// Sign that makes the distance to the finish line positive on the approach side.
    pub finish_side: f64,
    /// Line tolerance for the finish, metres.
    pub finish_tolerance_m: f64,
    /// `legs[i]`: length of leg `i + 1` (corner centre to corner centre), metres.
    pub legs: Vec<f64>,
    /// Where each leg heads: the centre of corner `i + 1`, or of the finish line.
    pub targets: Vec<Xy>,
}

/// A mark or gate: passed when a boat near it crosses the line through its
/// centre square to the next leg.
#[derive(Clone, Debug)]
pub struct Corner {
    /// The mark's points (one, or two for a gate).
    pub points: Vec<Xy>,
    /// The centre.
    pub centre: Xy,
    /// Unit direction of the next leg.
    pub axis: Xy,
}

/// A boat must be this near a corner's nearest mark when it crosses the
/// corner's line, metres: a crossing far from the mark is a boat on the leg,
/// not rounding it.
pub const MARK_ZONE_M: f64 = 300.0;

/// Timing lines: ids in order, with optional geometry for GPS-derived crossings.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Line ids; index 0 is the start/finish line.
    pub ids: Vec<String>,
    /// Each line's ends on the plane, when given.
    pub ends: Vec<Option<(Xy, Xy)>>,
}

/// A chip-timed race's `retire_after_s` when its rules give none, ms.
pub const MATS_RETIRE_AFTER_MS: i64 = 2 * 3600 * 1000;

/// A chip-timed race: its mats and how its times are taken.
#[derive(Clone, Debug)]
pub struct Mats {
    /// Mat ids in course order; index 0 is the start mat, the last the finish.
    pub ids: Vec<String>,
    /// Each mat's distance from the start mat, metres.
    pub distance_m: Vec<f64>,
    /// Each mat's cutoff after the runner's start, ms.
    pub cutoff_ms: Vec<Option<i64>>,
    /// Net time (from the runner's own start) rather than gun time.
    pub net: bool,
    /// Each wave's start after the gun, ms.
    pub wave_ms: HashMap<String, i64>,
    /// The route, when the definition gives one: GPS fixes are matched
    /// along it, and a distance along it times [`Mats::scale`] is a
    /// distance in the mats' metres.
    pub course: Option<Course>,
    /// The finish mat's distance over the route's length (1 without a route).
    pub scale: f64,
}

impl Mats {
    /// When `wave` started (the gun, for no wave or one the rules do not give).
    pub fn wave_start(&self, gun_ms: i64, wave: Option<&str>) -> i64 {
        gun_ms + wave.and_then(|w| self.wave_ms.get(w)).copied().unwrap_or(0)
    }
}

impl Race {
    /// Compiles a (validated) definition.
    pub fn compile(def: &RaceDefinition) -> Race {
        let origin = match &def.kind {
            RaceKind::Course { polyline, .. } => polyline[0],
            RaceKind::Marks { start, .. } => start[0],
            RaceKind::TimingLines { lines } => lines
                .iter()
                .find_map(|l| l.ends.map(|e| e[0]))
                .unwrap_or(LatLon { lat: 0.0, lon: 0.0 }),
            RaceKind::Mats { course, .. } => {
                (course.as_ref()).map_or(LatLon { lat: 0.0, lon: 0.0 }, |c| c[0])
            }
        };
        let projection = Projection::at(origin);
        let xy = |p: LatLon| projection.xy(p);
        let geometry = match &def.kind {
            RaceKind::Course { polyline, is_loop } => Geometry::Course(Course::new(
                polyline.iter().map(|p| xy(*p)).collect(),
                *is_loop,
            )),
            RaceKind::Marks {
                start,
                marks,
                finish,
            } => {
                let start = (xy(start[0]), xy(start[1]));
                let finish = (xy(finish[0]), xy(finish[1]));
                let mut centres: Vec<Xy> = vec![centroid(&[start.0, start.1])];
                let points: Vec<Vec<Xy>> = marks
                    .iter()
                    .map(|m| m.points.iter().map(|p| xy(*p)).collect())
                    .collect();
                centres.extend(points.iter().map(|p| centroid(p)));
                centres.push(centroid(&[finish.0, finish.1]));
                let corners = points
                    .into_iter()
                    .enumerate()
                    .map(|(i, points)| Corner {
                        centre: centres[i + 1],
                        axis: unit(sub(centres[i + 2], centres[i + 1])),
                        points,
                    })
                    .collect();
                let course_side = cross(sub(start.1, start.0), sub(centres[1], start.0)).signum();
                let last = centres[centres.len() - 2];
                let finish_side = cross(sub(finish.1, finish.0), sub(last, finish.0)).signum();
                let legs = centres.windows(2).map(|w| dist(w[0], w[1])).collect();
                Geometry::Marks(Marks {
                    start,
                    course_side: if course_side == 0.0 { 1.0 } else { course_side },
                    corners,
                    finish,
                    finish_side: if finish_side == 0.0 { 1.0 } else { finish_side },
                    finish_tolerance_m: def.rules.line_tolerance_m(),
                    legs,
                    targets: centres[1..].to_vec(),
                })
            }
            RaceKind::TimingLines { lines } => Geometry::Timing(Timing {
                ids: lines.iter().map(|l| l.id.clone()).collect(),
                ends: lines
                    .iter()
                    .map(|l| l.ends.map(|e| (xy(e[0]), xy(e[1]))))
                    .collect(),
            }),
            RaceKind::Mats { mats, course } => {
                let course = (course.as_ref())
                    .map(|c| Course::new(c.iter().map(|p| xy(*p)).collect(), false))
                    .filter(|c| c.length > 0.0);
                let finish_m = mats.last().map_or(0.0, |m| m.distance_m);
                Geometry::Mats(Mats {
                    ids: mats.iter().map(|m| m.id.clone()).collect(),
                    distance_m: mats.iter().map(|m| m.distance_m).collect(),
                    cutoff_ms: (mats.iter())
                        .map(|m| m.cutoff_s.map(|c| (c * 1000.0).round() as i64))
                        .collect(),
                    net: def.rules.clock.unwrap_or_default() == Clock::Net,
                    wave_ms: (def.rules.waves.iter())
                        .map(|w| (w.id.clone(), (w.offset_s * 1000.0).round() as i64))
                        .collect(),
                    scale: course.as_ref().map_or(1.0, |c| finish_m / c.length),
                    course,
                })
            }
        };
        Race {
            start_ms: def.start.0,
            laps: match &def.kind {
                RaceKind::Course { is_loop: false, .. } | RaceKind::Mats { .. } => 1,
                _ => def.laps,
            },
            cutoff_ms: def.cutoff.map(|c| c.0),
            max_speed_mps: def.rules.max_speed_mps(),
            min_lap_ms: def.rules.min_lap_ms(),
            retire_after_ms: match (&def.kind, def.rules.retire_after_s) {
                // Runners are seen only at mats, which may be half an hour
                // apart: retired after two hours unseen, unless the rules say.
                (RaceKind::Mats { .. }, None) => MATS_RETIRE_AFTER_MS,
                _ => def.rules.retire_after_ms(),
            },
            allowed_lateness_ms: def.rules.allowed_lateness_ms(),
            line_tolerance_m: def.rules.line_tolerance_m(),
            projection,
            geometry,
            listed: (def.participants.iter())
                .map(|p| (p.id.clone(), p.clone().into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn course(points: &[Xy], is_loop: bool) -> Course {
        Course::new(points.to_vec(), is_loop)
    }

    #[test]
    fn out_and_back_matches_the_leg_being_run() {
        // Out 1 km east along y = 0, back along y = 10 (the same road, two sides).
        let c = course(
            &[(0.0, 0.0), (1000.0, 0.0), (1000.0, 10.0), (0.0, 10.0)],
            false,
        );
        assert_eq!(c.length, 2010.0);
        // At x = 300 on the way out: the out leg, not the back leg at ~1710.
        let (d, off) = c.match_point((300.0, 4.0), 250.0, 400.0).unwrap();
        assert!((d - 300.0).abs() < 1e-9 && (off - 4.0).abs() < 1e-9);
        // The same place on the way back.
        let (d, _) = c.match_point((300.0, 6.0), 1650.0, 1800.0).unwrap();
        assert!((d - 1710.0).abs() < 1e-9, "{d}");
        // Far off the course: no match.
        assert!(c.match_point((300.0, 500.0), 0.0, 2010.0).is_none());
    }

    #[test]
    fn loops_unroll_into_laps() {
        let c = course(
            &[(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)],
            true,
        );
        assert_eq!(c.length, 400.0);
        // Near the start/finish corner, just after a lap: the end of lap 1
        // (400), within a few metres of lap 2's start, never lap 1's start.
        let (d, _) = c.match_point((3.0, 0.0), 380.0, 450.0).unwrap();
        assert!((400.0..=403.0).contains(&d), "{d}");
        let (d, _) = c.match_point((30.0, 0.0), 380.0, 450.0).unwrap();
        assert!((d - 430.0).abs() < 1e-9, "{d}");
        // With a wide window the least advanced plausible position wins.
        let (d, _) = c.match_point((50.0, 1.0), 0.0, 2000.0).unwrap();
        assert!((d - 50.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn crossings() {
        let u = segment_crossing((0.0, -1.0), (0.0, 3.0), (-1.0, 0.0), (1.0, 0.0)).unwrap();
        assert!((u - 0.25).abs() < 1e-12);
        assert!(segment_crossing((5.0, -1.0), (5.0, 3.0), (-1.0, 0.0), (1.0, 0.0)).is_none());
    }
}
