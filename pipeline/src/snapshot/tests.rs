//! The snapshots' unit tests: points, writing, finishing, restoring.

use super::*;

/// A test's part: one value, in the section.
#[derive(Debug, Default, PartialEq)]
struct Whole<T>(T);

impl<T> Part for Whole<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Default + 'static,
{
    fn write_part(&self, out: &mut Out<'_>) -> bincode::Result<()> {
        out.section(&self.0)
    }

    fn read_part(&mut self, part: &mut In<'_>) -> bincode::Result<()> {
        self.0 = part.section()?;
        Ok(())
    }
}

#[test]
fn points_fall_on_multiples_of_the_interval_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    let mut last = 0;
    assert_eq!(s.due(&mut last, 999), None);
    assert_eq!(s.due(&mut last, 1000), Some(1000));
    assert_eq!(s.due(&mut last, 1999), None);
    assert_eq!(
        s.due(&mut last, 5500),
        Some(5000),
        "a jump takes the latest"
    );
    assert_eq!(s.due(&mut last, 5999), None);
}

#[test]
fn writing_and_finishing_a_point_shows_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // A worker index no other test uses: the registry is global.
    let s = Snapshots::new(dir.path(), 1000, 7, 8, 7..8);
    s.parts.borrow_mut().insert("metered".into());
    s.write_value((2000, 3000), "metered", &Whole(vec![1u8; 100]));
    s.drain();
    assert_eq!(s.finish(4000), vec![3000]);
    let m = observability::metrics();
    assert_eq!(m.snapshot_last_point.with_label_values(&["7"]).get(), 3.0);
    assert!(m.snapshot_bytes.with_label_values(&["7", "metered"]).get() >= 100);
    assert!(
        m.snapshot_write
            .with_label_values(&["metered"])
            .get_sample_count()
            >= 1
    );
}

#[test]
fn the_worker_hands_a_part_over_and_its_point_waits_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    s.parts.borrow_mut().extend(["a".into(), "b".into()]);
    s.write_value((0, 1000), "a", &Whole(1u32));
    s.write_value((0, 1000), "b", &Whole(2u32));
    s.drain();
    s.writer.hold(true);
    // The worker returns at once: the part is not on disk yet, and
    // neither its point nor any later one finishes.
    s.write_value((1000, 2000), "a", &Whole(String::from("held")));
    s.write_value((1000, 2000), "b", &Whole(String::from("not held")));
    s.write_value((2000, 3000), "a", &Whole(3u32));
    s.write_value((2000, 3000), "b", &Whole(3u32));
    assert!(!s.part_path(2000, "a").exists());
    assert_eq!(s.finish(Time::MAX), vec![1000]);
    assert_eq!(s.finish(Time::MAX), Vec::<Time>::new());
    s.writer.hold(false);
    s.drain();
    assert_eq!(s.finish(2500), vec![2000], "the probe has not passed 3000");
    assert_eq!(s.finish(Time::MAX), vec![3000]);
    let mut r = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    r.restore_from(Some(2000));
    assert_eq!(
        r.read::<Whole<String>>("a").unwrap(),
        Some(Whole("held".into()))
    );
}

#[test]
fn a_part_written_once_over_several_points_holds_for_each_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    s.parts
        .borrow_mut()
        .extend(["a".into(), "b".into(), "c".into()]);
    for p in [1000, 2000, 3000, 4000] {
        s.write_value((p - 1000, p), "a", &Whole(p));
    }
    // The frontier carried b's operator from before 1000 past 3000.
    s.write_value((0, 3000), "b", &Whole(3000u64));
    // c wrote at 1000, then nothing until 4000: it holds for 2000 and
    // 3000 only once it is written.
    s.write_value((0, 1000), "c", &Whole(1000u64));
    s.drain();
    assert_eq!(s.finish(3500), vec![1000]);
    s.write_value((1000, 4000), "c", &Whole(4000u64));
    s.drain();
    assert_eq!(s.finish(3500), vec![2000, 3000], "b and c hold for them");
    assert_eq!(
        s.finish(4500),
        Vec::<Time>::new(),
        "b holds for 3000 at most"
    );
    assert_eq!(s.finish(10), Vec::<Time>::new(), "a frontier behind");
    let mut r = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    r.restore_from(Some(2000));
    assert_eq!(r.read::<Whole<u64>>("a").unwrap(), Some(Whole(2000)));
    assert_eq!(r.read::<Whole<u64>>("b").unwrap(), Some(Whole(3000)));
    assert_eq!(r.read::<Whole<u64>>("c").unwrap(), Some(Whole(4000)));
}

#[test]
fn a_shared_state_is_written_as_it_was_handed_over() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let s = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    s.parts.borrow_mut().insert("shared".into());
    let mut state: Vec<Arc<String>> = vec![Arc::new("one".into()), Arc::new("two".into())];
    s.writer.hold(true);
    s.write_shared(Instant::now(), (0, 1000), "shared", Whole(state.clone()));
    // The worker goes on while the thread has not serialized it: what
    // it changes is copied, not seen by the snapshot.
    Arc::make_mut(&mut state[0]).push_str(" changed");
    state.push(Arc::new("three".into()));
    assert!(!s.part_path(1000, "shared").exists());
    s.writer.hold(false);
    s.drain();
    assert_eq!(s.finish(Time::MAX), vec![1000]);
    assert_eq!(
        Arc::strong_count(&state[1]),
        1,
        "the thread let go of what it shared"
    );
    let mut r = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    r.restore_from(Some(1000));
    let read: Whole<Vec<String>> = r.read("shared").unwrap().unwrap();
    assert_eq!(read.0, ["one", "two"]);
    assert_eq!(*state[0], "one changed");
}

#[test]
fn a_point_is_complete_when_every_local_worker_finished_it() {
    let dir = tempfile::tempdir().unwrap();
    let w0 = Snapshots::new(dir.path(), 1000, 0, 2, 0..2);
    let w1 = Snapshots::new(dir.path(), 1000, 1, 2, 0..2);
    for s in [1000, 2000, 3000, 4000] {
        w0.write_value((s - 1000, s), "a", &Whole((s, String::from("zero"))));
        w1.write_value((s - 1000, s), "a", &Whole((s, String::from("one"))));
        if s != 4000 {
            w1.write_value((s - 1000, s), "b", &Whole(s));
        }
    }
    w0.parts.borrow_mut().insert("a".into());
    w1.parts.borrow_mut().extend(["a".into(), "b".into()]);
    w0.drain();
    w1.drain();
    // Not durable yet: nothing finishes.
    assert!(w0.finish(999).is_empty());
    assert_eq!(w0.finish(4000), vec![1000, 2000, 3000, 4000]);
    assert_eq!(
        w0.complete(),
        Vec::<Time>::new(),
        "worker 1 has not finished"
    );
    assert_eq!(w1.finish(4000), vec![1000, 2000, 3000]);
    assert_eq!(w1.complete(), vec![2000, 3000], "older ones are pruned");
    // Another worker count sees those every worker finished.
    let other = Snapshots::new(dir.path(), 1000, 0, 3, 0..3);
    assert_eq!(other.complete(), vec![2000, 3000]);
    // Nor does a pace of another format.
    let point = w1.point_dir(3000);
    let mark = std::fs::read_to_string(point.join("w0.done")).unwrap();
    std::fs::write(point.join("w0.done"), "2").unwrap();
    assert_eq!(
        w1.complete(),
        vec![2000],
        "an older pace's point is not complete"
    );
    std::fs::write(point.join("w0.done"), mark).unwrap();
    let mut r = Snapshots::new(dir.path(), 1000, 1, 2, 0..2);
    r.restore_from(Some(3000));
    assert_eq!(
        r.read::<Whole<(Time, String)>>("a").unwrap(),
        Some(Whole((3000, "one".into())))
    );
    assert!(r.read::<Whole<Time>>("missing").is_err());
    assert!(!dir.path().join("snapshots").read_dir().unwrap().any(|e| {
        e.unwrap()
            .path()
            .read_dir()
            .unwrap()
            .any(|f| f.unwrap().path().extension().is_some_and(|x| x == "tmp"))
    }));
}

#[test]
fn a_point_taken_with_two_workers_is_restored_into_three_or_one() {
    let dir = tempfile::tempdir().unwrap();
    let all: BTreeMap<String, u64> = (0..100).map(|i| (format!("race-{i}"), i)).collect();
    let owned = |w: u64, peers: u64| -> BTreeMap<String, u64> {
        let mut m = all.clone();
        m.retain(|k, _| crate::route::hash(k) % peers == w);
        m
    };
    for w in 0..2 {
        let s = Snapshots::new(dir.path(), 1000, w, 2, w..w + 1);
        s.parts.borrow_mut().insert("seqs".into());
        s.write_value((0, 1000), "seqs", &owned(w as u64, 2));
        s.drain();
        assert_eq!(s.finish(2000), vec![1000]);
    }
    // A process of worker 2 of 3 holds both parts: it restores.
    let mut three = Snapshots::new(dir.path(), 1000, 2, 3, 2..3);
    assert_eq!(three.complete(), vec![1000]);
    three.restore_from(Some(1000));
    assert_eq!(three.restored(), Some((1000, 2)));
    let got: BTreeMap<String, u64> = three.read("seqs").unwrap().unwrap();
    assert_eq!(got, owned(2, 3));
    let mut one = Snapshots::new(dir.path(), 1000, 0, 1, 0..1);
    one.restore_from(Some(1000));
    assert_eq!(
        one.read::<BTreeMap<String, u64>>("seqs").unwrap(),
        Some(all)
    );
    // Without worker 1's parts (its process's directory was not
    // brought here) the point is not complete for another layout.
    std::fs::remove_file(one.point_dir(1000).join("w1.done")).unwrap();
    assert!(one.complete().is_empty());
    let same = Snapshots::new(dir.path(), 1000, 0, 2, 0..1);
    assert_eq!(same.complete(), vec![1000], "worker 0's own parts are");
}

#[test]
fn workers_agree_on_the_latest_point_they_all_have() {
    assert_eq!(
        latest_common(&[vec![1, 2, 3], vec![2, 3], vec![1, 2]]),
        Some(2)
    );
    assert_eq!(latest_common(&[vec![1], vec![]]), None);
    let got = timely::execute(timely::Config::process(3), |worker| {
        let mine = match worker.index() {
            0 => vec![10, 20, 30],
            1 => vec![20, 30],
            _ => vec![10, 20],
        };
        agree(worker, mine)
    })
    .unwrap()
    .join();
    for r in got {
        assert_eq!(r.unwrap(), Some(20));
    }
}
