//! Tests of `changelog.rs`.

use super::*;

fn row(participant: &str, name: &str) -> StandingRow {
    StandingRow {
        race: "race-3".into(),
        rank: None,
        participant: participant.into(),
        name: name.into(),
        gender: Some("F".into()),
        category: None,
        distance_m: 12_345.678,
        laps: None,
        leg: None,
        gap_s: Some(1.5),
        speed_mps: Some(3.25),
        last_lap_s: None,
        last_seen: Timestamp(1_765_000_000_123),
        status: Status::Racing,
        eta: Some(Timestamp(1_765_000_999_000)),
        position: Some(LatLon {
            lat: 51.123_456_7,
            lon: -0.123_456_7,
        }),
    }
}

fn change() -> StandingsChange {
    let mut bare = row("r-3-000124", "r-3-000124");
    (bare.gender, bare.eta, bare.position, bare.gap_s) = (None, None, None, None);
    bare.status = Status::DidNotStart;
    bare.rank = Some(4);
    StandingsChange {
        race: "race-3".into(),
        seq: 42,
        ranks: vec![
            RankChange {
                participant: "r-3-000123".into(),
                rank: 7,
            },
            RankChange {
                participant: "r-3-000099".into(),
                rank: 8,
            },
        ],
        upserts: vec![row("r-3-000123", "Ann Lee"), bare],
        removes: vec!["r-3-000001".into()],
        splits: vec![Split {
            race: "race-3".into(),
            participant: "r-3-000123".into(),
            split: 2,
            time: Timestamp(1_765_000_000_500),
            position: 3,
            gender_position: Some(1),
            category_position: None,
        }],
        split_removes: vec![SplitKey {
            participant: "r-3-000002".into(),
            split: 1,
        }],
        leader: Some(Leader {
            participant: "r-3-000050".into(),
            distance_m: Some(20_000.5),
        }),
    }
}

/// Asserts that `c`, written, reads back as `c`.
fn reads_back(c: &StandingsChange) {
    let json = serde_json::to_vec(c).unwrap();
    assert_eq!(
        &serde_json::from_slice::<StandingsChange>(&json).unwrap(),
        c
    );
}

/// `c` with no ranks, rows, removals, splits or leader.
fn bare(c: StandingsChange) -> StandingsChange {
    StandingsChange {
        ranks: vec![],
        upserts: vec![],
        removes: vec![],
        splits: vec![],
        split_removes: vec![],
        leader: None,
        ..c
    }
}

#[test]
fn a_change_reads_back_as_it_was_written() {
    reads_back(&change());
    let empty = bare(change());
    let json = serde_json::to_string(&empty).unwrap();
    assert_eq!(json, r#"{"r":"race-3","s":42}"#);
    reads_back(&empty);
}

#[test]
fn a_racing_row_at_the_base_writes_neither_status_nor_time() {
    let mut c = bare(change());
    let mut racing = row("p", "p");
    racing.eta = None;
    racing.last_seen = Timestamp(1_765_000_000_000);
    let finished = StandingRow {
        status: Status::Finished,
        last_seen: Timestamp(1_765_000_000_250),
        ..racing.clone()
    };
    c.upserts = vec![racing, finished];
    let json = serde_json::to_string(&c).unwrap();
    assert!(
        json.contains(r#""u":[{"i":"p","g":"F","m":12345.678,"gp":1.5,"v":3.25,"y":"#),
        "{json}"
    );
    assert!(json.contains(r#""t":250,"st":"f""#), "{json}");
    reads_back(&c);
    // Written before: the status and the time of every row.
    let before = br#"{"r":"r","s":1,"b":1765000000000,"u":[{"i":"p","m":5.0,"t":0,"st":"r"}]}"#;
    let read: StandingsChange = serde_json::from_slice(before).unwrap();
    assert_eq!(read.upserts[0].status, Status::Racing);
    assert_eq!(read.upserts[0].last_seen, Timestamp(1_765_000_000_000));
}

#[test]
fn positions_are_written_from_the_changes_first_and_read_back_exactly() {
    let mut c = bare(change());
    let at = |lat_e7: i64, lon_e7: i64| {
        let mut r = row("p", "p");
        r.position = Some(LatLon {
            lat: lat_e7 as f64 / 1e7,
            lon: lon_e7 as f64 / 1e7,
        });
        r
    };
    // Around the world, near the poles and the antimeridian, and close by.
    let mut e7s = vec![(593_296_489, 180_780_133), (593_296_490, 180_780_100)];
    e7s.extend([(-899_999_999, -1_799_999_999), (899_999_999, 1_799_999_999)]);
    e7s.extend((0..200).map(|i: i64| (i * 4_500_017 - 450_000_000, i * 9_000_029)));
    c.upserts = e7s.iter().map(|&(lat, lon)| at(lat, lon)).collect();
    // One that is not on the grid is written in degrees.
    let mut off = row("q", "q");
    off.position = Some(LatLon {
        lat: 51.123_456_789_1,
        lon: 0.1,
    });
    c.upserts.push(off);
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.contains(r#""bp":[593296489,180780133]"#), "{json}");
    assert!(json.contains(r#""y":[0,0]"#), "{json}");
    assert!(json.contains(r#""y":[1,-33]"#), "{json}");
    assert!(json.contains(r#""o":[51.1234567891,0.1]"#), "{json}");
    reads_back(&c);
    // A position from a base that is not there is an error.
    let bad = br#"{"r":"r","s":1,"u":[{"i":"p","m":1.0,"y":[1,2]}]}"#;
    assert!(serde_json::from_slice::<StandingsChange>(bad).is_err());
}

/// What one point writes, about: its row and two places.
#[test]
fn a_row_and_its_places_take_under_half_the_long_forms_bytes() {
    let full = change();
    let c = StandingsChange {
        ranks: full.ranks.clone(),
        upserts: vec![full.upserts[0].clone()],
        ..bare(full)
    };
    let compact = serde_json::to_vec(&c).unwrap().len();
    let long = long_form(&c).len();
    assert!(compact * 2 < long, "compact {compact} B, long {long} B");
}

/// The long form, as pace wrote it before: field names, RFC 3339 times.
fn long_form(c: &StandingsChange) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "race": c.race, "seq": c.seq, "ranks": c.ranks, "upserts": c.upserts,
        "removes": c.removes, "splits": c.splits, "split_removes": c.split_removes,
        "leader": c.leader,
    }))
    .unwrap()
}

#[test]
fn ranks_go_in_runs_of_consecutive_ranks_and_pairs_are_read_too() {
    let ranks = |list: &[(&str, u32)]| -> Vec<RankChange> {
        (list.iter())
            .map(|&(p, rank)| RankChange {
                participant: p.into(),
                rank,
            })
            .collect()
    };
    let c = StandingsChange {
        ranks: ranks(&[("a", 3), ("b", 4), ("c", 5), ("d", 9), ("e", u32::MAX)]),
        ..bare(change())
    };
    let json = serde_json::to_string(&c).unwrap();
    assert!(
        json.contains(r#""q":[[3,"a","b","c"],[9,"d"],[4294967295,"e"]]"#),
        "{json}"
    );
    reads_back(&c);
    // Pairs, as pace wrote ranks before the runs.
    let pairs = r#"{"r":"r","s":1,"k":[["a",3],["d",9]]}"#;
    let read = serde_json::from_str::<StandingsChange>(pairs).unwrap();
    assert_eq!(read.ranks, ranks(&[("a", 3), ("d", 9)]));
    // A run past the largest rank, or without its first rank, is an error.
    for bad in [
        r#"{"r":"r","s":1,"q":[[4294967295,"a","b"]]}"#,
        r#"{"r":"r","s":1,"q":[[]]}"#,
        r#"{"r":"r","s":1,"q":[["a"]]}"#,
    ] {
        assert!(
            serde_json::from_str::<StandingsChange>(bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn times_are_written_from_the_changes_base_and_read_without_one() {
    let c = change();
    let json: serde_json::Value = serde_json::to_value(&c).unwrap();
    // The earliest of the rows' and the split's times.
    let base = (c.upserts.iter().map(|r| r.last_seen.0))
        .chain(c.splits.iter().map(|p| p.time.0))
        .min()
        .unwrap();
    assert_eq!(json["b"], base);
    for (row, wire) in c.upserts.iter().zip(json["u"].as_array().unwrap()) {
        // Absent: 0, at the base.
        let t = wire.get("t").map_or(Some(0), serde_json::Value::as_i64);
        assert_eq!(t, Some(row.last_seen.0 - base));
        assert!(t.unwrap() < 1_000_000, "{wire}");
        if let Some(eta) = row.eta {
            assert_eq!(wire["f"], eta.0 - base);
        }
    }
    assert_eq!(json["p"][0]["t"], c.splits[0].time.0 - base);
    // A change written before the base was: its times are Unix ms.
    let before = br#"{"r":"r","s":1,"u":[{"i":"p","m":5.0,"t":1765000000000,"st":"r","f":1765000600000}],"p":[{"i":"p","n":1,"t":1765000000500,"o":1}]}"#;
    let read = serde_json::from_slice::<StandingsChange>(before).unwrap();
    assert_eq!(read.upserts[0].last_seen, Timestamp(1_765_000_000_000));
    assert_eq!(read.upserts[0].eta, Some(Timestamp(1_765_000_600_000)));
    assert_eq!(read.splits[0].time, Timestamp(1_765_000_000_500));
    // Times far apart (or absurd) still read back exactly.
    let mut far = c.clone();
    far.upserts[0].last_seen = Timestamp(i64::MIN);
    far.upserts[1].eta = Some(Timestamp(i64::MAX));
    reads_back(&far);
}

#[test]
fn a_change_in_the_long_form_is_read_too() {
    let c = change();
    let long = long_form(&c);
    assert_eq!(serde_json::from_slice::<StandingsChange>(&long).unwrap(), c);
    let old = br#"{"race":"r","seq":1,"upserts":[{"race":"r","participant":"p","name":"P","distance_m":5.0,"last_seen":"2025-01-19T02:10:00Z","status":"racing"}],"removes":[]}"#;
    let read = serde_json::from_slice::<StandingsChange>(old).unwrap();
    assert_eq!(read.upserts[0].name, "P");
}

#[test]
fn a_bad_status_or_a_change_without_race_or_seq_is_an_error_not_a_panic() {
    let bad = br#"{"r":"r","s":1,"u":[{"i":"p","m":1.0,"t":5,"st":"?"}]}"#;
    assert!(serde_json::from_slice::<StandingsChange>(bad).is_err());
    for bad in [
        &br#"{"s":1}"#[..],
        br#"{"r":"x"}"#,
        br#"{"race":"x","upserts":[]}"#,
    ] {
        let e = serde_json::from_slice::<StandingsChange>(bad).unwrap_err();
        assert!(e.to_string().contains("without its"), "{e}");
    }
}
