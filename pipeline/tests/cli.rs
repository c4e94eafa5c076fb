//! The `pace` command line: every command and flag is described, and
//! `pace run` (embedded broker, built-in race and chat) serves standings that move and a chat,
//! over HTTP and WebSocket, then stops cleanly on SIGTERM; `pace run
//! --replay f1:DIR` replays a recorded season through the broker into the
//! splits view.

#![allow(clippy::print_stdout)] // what the test saw is worth seeing
mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, get_json, next_frame};
use serde_json::{Value, json};

/// Starts `pace run` with `args`; the child and the base URL it serves.
fn start_pace_run(args: &[&str], dir: &std::path::Path) -> (std::process::Child, String) {
    let mut all: Vec<&std::ffi::OsStr> = ["run", "--listen", "127.0.0.1:0", "--data-dir"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    all.push(dir.as_os_str());
    all.extend(args.iter().map(std::ffi::OsStr::new));
    common::spawn_pace(&all)
}

/// SIGTERM, and a clean exit.
async fn stop(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Every `--flag` in a long help text is followed by a description.
fn assert_every_flag_described(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("--") || (t.starts_with('-') && t.contains(", --")) {
            // The description follows the flag after two spaces, or on the next line.
            let same_line = t
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty());
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            let next_describes = !next.is_empty() && !next.starts_with('-');
            assert!(
                same_line || next_describes,
                "flag without a description: {line}\n{text}"
            );
        }
    }
}

#[test]
fn help_describes_every_command_and_flag() {
    let top = help(&["--help"]);
    // Each command shows the settings it uses, with their variables, and
    // none it does not use.
    let pipeline = [
        "--workers",
        "--data-dir",
        "--tick-ms",
        "--snapshot-every-ms",
    ];
    let edge = [
        "--token-secret",
        "--jwks",
        "--max-connections",
        "--requests-per-address",
    ];
    let uses: [(&str, Vec<&str>, Vec<&str>); 4] = [
        (
            "run",
            [&["--brokers", "--listen"][..], &pipeline, &edge].concat(),
            vec![],
        ),
        (
            "pipeline",
            [
                &["--brokers", "--listen", "--archive-roll-ms"][..],
                &pipeline,
            ]
            .concat(),
            edge.to_vec(),
        ),
        (
            "edge",
            [&["--brokers", "--listen"][..], &edge].concat(),
            [&["--partitions", "--archive-roll-ms"][..], &pipeline].concat(),
        ),
        (
            "replay",
            vec!["--brokers", "--partitions"],
            [&["--listen", "--archive-roll-ms"][..], &pipeline, &edge].concat(),
        ),
    ];
    for (cmd, with, without) in uses {
        assert!(top.contains(cmd), "{cmd} missing from --help");
        let text = help(&[cmd, "--help"]);
        assert_every_flag_described(&text);
        for flag in with.iter().chain(&["--log"]) {
            assert!(text.contains(flag), "{cmd} --help lacks {flag}");
            let env = format!("PACE_{}", flag[2..].replace('-', "_").to_uppercase());
            assert!(text.contains(&env), "{cmd} --help lacks {env}");
        }
        for flag in without {
            let flag = format!("{flag} <");
            assert!(
                !text.contains(&flag),
                "{cmd} --help offers {flag}, which it does not use"
            );
        }
    }
    let replay = help(&["replay", "--help"]);
    for flag in ["--dataset", "--path", "--speed", "--topic"] {
        assert!(replay.contains(flag));
    }
}

#[test]
fn bad_flags_are_refused_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["run", "--workers", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
    let out = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["pipeline"])
        .env_remove("PACE_BROKERS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--brokers (or PACE_BROKERS) is needed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pace_run_serves_moving_standings_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = start_pace_run(&["--demo-participants", "40"], dir.path());
    let http = reqwest::Client::new();

    let health: Value = get_json(&http, &format!("{base}/healthz")).await.unwrap();
    assert_eq!(health["status"], "ok");
    // The loop (the road race beside it has its own test).
    let race = eventually("the demo race", Duration::from_secs(30), || async {
        let races: Vec<Value> = get_json(&http, &format!("{base}/api/races")).await?;
        let r = races.into_iter().find(|r| r["kind"] == "course")?;
        Some(r["id"].as_str()?.to_owned())
    })
    .await;
    let seq_of = |r: reqwest::Response| {
        r.headers()["x-pace-seq"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let url = format!("{base}/api/races/{race}/standings");
    let first = eventually("standings", Duration::from_secs(10), || async {
        let r = http.get(&url).send().await.ok()?;
        let seq = seq_of(r);
        (seq > 0).then_some(seq)
    })
    .await;
    // The standings change within 10 s.
    eventually("standings to change", Duration::from_secs(10), || async {
        let seq = seq_of(http.get(&url).send().await.ok()?);
        (seq > first).then_some(())
    })
    .await;
    let rows: Vec<Value> = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(!rows.is_empty() && rows[0]["rank"] == 1);
    let ranks: Vec<u64> = rows.iter().map(|r| r["rank"].as_u64().unwrap()).collect();
    assert_eq!(ranks, (1..=rows.len() as u64).collect::<Vec<_>>());

    // A spectator gets a snapshot, then deltas in sequence.
    let ws_url = format!("ws{}/ws/races/{race}", &base[4..]);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let snap = next_frame(&mut ws).await;
    assert_eq!(snap["type"], "snapshot");
    let seq = snap["seq"].as_u64().unwrap();
    for expected in seq + 1..=seq + 2 {
        let d = next_frame(&mut ws).await;
        assert_eq!(d["type"], "delta");
        assert_eq!(d["seq"].as_u64().unwrap(), expected);
    }

    // Unknown race: 404 with a JSON error; unknown route too.
    let r = http
        .get(format!("{base}/api/races/nope/standings"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("nope"));
    assert_eq!(
        http.get(format!("{base}/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // The built-in chat talks in its lobby.
    eventually("the built-in chat", Duration::from_secs(60), || async {
        let rooms: Vec<Value> = get_json(&http, &format!("{base}/api/rooms")).await?;
        rooms
            .iter()
            .any(|r| r["id"] == "lobby" && r["last_seq"].as_u64() > Some(0))
            .then_some(())
    })
    .await;

    // SIGTERM: a clean exit.
    stop(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pace_run_replays_recorded_f1_laps_into_the_splits_view() {
    let data = common::shared_data().join("f1-laps-2020");
    let (_, laps) = ingest::datasets::f1::read(&data).unwrap();
    let want: Vec<(String, u32, u32)> = laps
        .iter()
        .filter(|l| l.race == "f1-1031")
        .map(|l| (l.driver.clone(), l.lap, l.position))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let replay = format!("f1:{}", data.display());
    let (child, base) = start_pace_run(&["--replay", &replay, "--speed", "0"], dir.path());
    let http = reqwest::Client::new();
    let url = format!("{base}/api/races/f1-1031/splits");
    let mut want = want;
    want.sort();
    // A change bigger than a changelog record goes out in pieces, so the
    // view can hold every split before the last piece has moved positions:
    // wait for the settled view, then compare it whole.
    let mut last = Vec::new();
    let settled = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            if let Some(splits) = get_json::<Vec<Value>>(&http, &url).await {
                let mut got: Vec<(String, u32, u32)> = splits
                    .iter()
                    .map(|s| {
                        (
                            s["participant"].as_str().unwrap().to_owned(),
                            s["split"].as_u64().unwrap() as u32,
                            s["position"].as_u64().unwrap() as u32,
                        )
                    })
                    .collect();
                got.sort();
                if got == want {
                    return;
                }
                last = got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if settled.is_err() {
        assert_eq!(last, want, "the Austrian GP's splits never settled");
    }
    let standings: Vec<Value> = eventually(
        "the Austrian GP's finish",
        Duration::from_secs(60),
        || async {
            let standings: Vec<Value> =
                get_json(&http, &format!("{base}/api/races/f1-1031/standings")).await?;
            (standings.first()?["status"] == "finished").then_some(standings)
        },
    )
    .await;
    // Bottas won the 2020 Austrian Grand Prix.
    assert_eq!(standings[0]["participant"], "BOT");
    assert_eq!(standings[0]["status"], "finished");
    stop(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pace_run_replays_an_irc_log_into_a_room() {
    let path = common::shared_data().join("chat-irc/ubuntu_irc_2005-07-06_14.raw.txt");
    let events = ingest::datasets::irc::read(&path, "irc").unwrap().chat;
    let said: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.kind == schemas::ChatKind::Message)
        .map(|e| (e.user.clone(), e.text.clone().unwrap()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let replay = format!("irc:{}", path.display());
    let (child, base) = start_pace_run(&["--replay", &replay, "--speed", "0"], dir.path());
    let http = reqwest::Client::new();
    let rooms_url = format!("{base}/api/rooms");
    eventually(
        "the whole log in room irc",
        Duration::from_secs(120),
        || async {
            let rooms: Vec<Value> = get_json(&http, &rooms_url).await?;
            (rooms.first()?["last_seq"].as_u64()? == said.len() as u64).then_some(())
        },
    )
    .await;
    // Every message, in pages of 500, numbered 1..N in log order.
    let mut got = Vec::new();
    while got.len() < said.len() {
        let page: Vec<Value> = http
            .get(format!(
                "{base}/api/rooms/irc/messages?since={}&limit=500",
                got.len()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!page.is_empty());
        for m in page {
            assert_eq!(m["seq"].as_u64().unwrap(), got.len() as u64 + 1);
            got.push((
                m["user"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(got, said);
    // A client resuming from seq N - 3 gets exactly the last three.
    let n = said.len() as u64;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws{}/ws/rooms/irc?since={}", &base[4..], n - 3))
            .await
            .unwrap();
    let snapshot = next_frame(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    let seqs: Vec<u64> = snapshot["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [n - 2, n - 1, n]);
    assert!(snapshot["members"].as_array().unwrap().len() > 50);
    // Unknown rooms are refused clearly.
    let r = http
        .get(format!("{base}/api/rooms/nope/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    stop(child).await;
}

#[test]
fn pace_token_issues_a_token_the_edge_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["token", "--user", "ann", "--ttl-hours", "1"])
        .env("PACE_TOKEN_SECRET", "cli secret")
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        ws_edge::auth::verify(Some("cli secret"), Some(token.trim())),
        Ok("ann".to_string())
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["token", "--user", "ann"])
        .env_remove("PACE_TOKEN_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-secret"));
}

/// One page test at a time: each runs a `pace run` and a Chromium, and
/// on 2 cores side by side they starved each other past their waits (a
/// tournament's decision past the edge's 10 s, a post past a minute).
static PAGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `tests/browser/{name}.py URL OUT` (OUT a directory of its own
/// under the test output); what it printed as JSON, or what it said when
/// it failed, and OUT.
async fn browser(name: &str, url: String) -> (Result<Value, String>, std::path::PathBuf) {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&out).unwrap();
    let script = format!("{}/tests/browser/{name}.py", env!("CARGO_MANIFEST_DIR"));
    let run = tokio::task::spawn_blocking({
        let out = out.clone();
        move || {
            Command::new(common::python())
                .arg(script)
                .arg(url)
                .arg(&out)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let saw = if run.status.success() {
        Ok(serde_json::from_slice(&run.stdout).unwrap())
    } else {
        Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        ))
    };
    (saw, out)
}

/// The spectator page of `pace run` in headless Chromium (Debian's, driven
/// by Playwright from the test venv): the leaderboard changes, the runners
/// move on the map, the chat takes a post, a task gets its result, and a
/// dropped connection resumes. The screenshot is under the test's output
/// directory.
#[tokio::test]
async fn the_page_in_chromium() {
    let _page = PAGES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "page-secret";
    let (child, base) = start_pace_run(
        &["--demo-participants", "60", "--token-secret", secret],
        dir.path(),
    );
    let token = ws_edge::auth::issue(secret, "chromium", ws_edge::auth::now_s(), 3600);
    let (saw, out) = browser("page", format!("{base}/#token={token}")).await;
    stop(child).await;
    let saw = saw.unwrap_or_else(|e| panic!("the page test failed:\n{e}"));
    println!("page: {saw}");
    assert_ne!(saw["rows_before"], saw["rows_after"]);
    assert!(saw["task"].as_str().unwrap().ends_with("= 27"), "{saw}");
    let shot = out.join("page.png");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    println!("screenshot: {}", shot.display());
}

/// A race too big to send whole, in the page: `pace run` with 3,000
/// runners, and the page watches it through a window of the ranking
/// (protocol v2). Scrolling the leaderboard moves the window to the middle
/// and to the last rank; no frame carries more than a window's rows and
/// the page never holds more; a runner clicked in the middle stays in view,
/// followed, back at the top.
#[tokio::test]
async fn the_page_watches_a_big_race_through_a_window() {
    let _page = PAGES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = start_pace_run(&["--demo-participants", "3000"], dir.path());
    let (saw, _) = browser("window", format!("{base}/")).await;
    stop(child).await;
    let saw = saw.unwrap_or_else(|e| panic!("the window page test failed:\n{e}"));
    println!("window: {saw}");
    assert!(saw["total"].as_u64().unwrap() >= 2000, "{saw}");
    assert!(saw["most_rows"].as_u64().unwrap() <= 500, "{saw}");
    assert!(saw["held"].as_u64().unwrap() <= 500, "{saw}");
}

/// The Boston Marathon 2015 replayed by `pace run` at 90 times real time,
/// on the page in headless Chromium: a runner's bib typed into the search
/// box follows them, and the page shows their splits (mat, net time,
/// position overall, in their gender and in their division) and, while they
/// race, their projected finish and where they are between mats; the
/// women's winner is found by name; the leaderboard filtered to women, or
/// to the F40-44 division, places them 1, 2, 3…
/// (`tests/browser/boston.py`).
#[tokio::test]
async fn a_marathon_runner_is_found_and_followed_in_chromium() {
    let _page = PAGES.lock().await;
    let file = common::shared_data().join("boston-marathon-2015/marathon_results_2015.csv");
    let (_, finishers) = ingest::datasets::boston::read(&file).unwrap();
    // A runner of about six hours, read at every mat: at 90 times real
    // time they pass 10K about 48 s into the replay and race for four
    // minutes, so the page sees them racing even on a busy machine.
    let runner = (finishers.iter())
        .find(|f| {
            f.official_ms
                .is_some_and(|t| (21_000_000..22_200_000).contains(&t))
                && f.splits.iter().all(Option::is_some)
        })
        .expect("a 6:00 runner");
    let dir = tempfile::tempdir().unwrap();
    let replay = format!("boston:{}", file.display());
    let (child, base) = start_pace_run(
        &[
            "--demo-participants",
            "0",
            "--replay",
            &replay,
            "--speed",
            "90",
        ],
        dir.path(),
    );
    // The women's winner, found by name.
    let winner = (finishers.iter())
        .find(|f| f.gender == "F" && f.gender_place == 1)
        .expect("a women's winner");
    let url = format!(
        "{base}/#bib={}&name={}",
        runner.bib,
        winner.name.replace(' ', "%20").replace(',', "%2C")
    );
    let (saw, out) = browser("boston", url).await;
    stop(child).await;
    let saw = saw.unwrap_or_else(|e| panic!("the Boston page test failed:\n{e}"));
    println!("boston: {saw}");
    let splits: Vec<&str> = (saw["splits"].as_array().unwrap().iter())
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(splits.len() >= 2, "{saw}");
    assert!(splits[0].starts_with("5K "), "{saw}");
    assert!(splits[1].starts_with("10K "), "{saw}");
    // Each split's position overall, in the runner's gender and division.
    let within = format!("{} #", runner.division());
    assert!(splits[1].contains(&within), "{within:?} in {saw}");
    assert_eq!(saw["found"], winner.bib.as_str(), "{saw}");
    // Where they are between mats: past their last mat, short of the finish.
    let now = saw["now"].as_str().unwrap();
    let km: f64 = (now
        .strip_prefix("about ")
        .and_then(|s| s.strip_suffix(" km now")))
    .and_then(|s| s.parse().ok())
    .unwrap_or_else(|| panic!("{now:?}"));
    let last_mat_km = saw["last_mat_m"].as_f64().unwrap() / 1000.0;
    assert!(km > last_mat_km && km < 42.2, "{saw}");
    assert!(saw["women_total"].as_u64().unwrap() > 10_000, "{saw}");
    assert!(saw["division_rows"].as_u64().unwrap() >= 20, "{saw}");
    assert!(
        saw["eta"]
            .as_str()
            .unwrap()
            .starts_with("projected finish "),
        "{saw}"
    );
    assert!(out.join("boston.png").exists());
}

/// The built-in chip-timed road race on the page of `pace run` in
/// headless Chromium: its route and mats on the map, GPS-tracked runners at
/// their fixes and between mats in their rows, the others placed on the
/// route by their distance projected between mats, moving on between
/// their reads (`tests/browser/road.py`).
#[tokio::test]
async fn the_road_race_moves_on_the_map_between_mats_in_chromium() {
    let _page = PAGES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = start_pace_run(
        &["--demo-participants", "0", "--demo-road-runners", "200"],
        dir.path(),
    );
    let (saw, out) = browser("road", format!("{base}/")).await;
    stop(child).await;
    let saw = saw.unwrap_or_else(|e| panic!("the road race page test failed:\n{e}"));
    println!("road: {saw}");
    assert_eq!(saw["mats"], 4, "{saw}");
    assert!(saw["gps_rows"].as_u64().unwrap() >= 10, "{saw}");
    assert!(saw["projected_dots"].as_u64().unwrap() >= 20, "{saw}");
    assert!(out.join("road.png").exists());
}

/// Accounts on the page of `pace run` in headless Chromium, two browser
/// contexts and no tokens handed out: Ann signs up and posts in the lobby;
/// Bob is refused with a wrong password, signs up, reads Ann and answers;
/// Ann reads him, sends him a direct message that his page receives, and
/// logs out (`tests/browser/account.py`).
#[tokio::test]
async fn two_people_sign_up_and_send_a_direct_message_in_chromium() {
    let _page = PAGES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = start_pace_run(
        &[
            "--demo-participants",
            "5",
            "--demo-road-runners",
            "0",
            "--token-secret",
            "account page secret",
        ],
        dir.path(),
    );
    let (saw, out) = browser("account", base).await;
    stop(child).await;
    let saw = saw.unwrap_or_else(|e| panic!("the account page test failed:\n{e}"));
    println!("account: {saw}");
    assert_eq!(saw["refresh_after_wrong_password"], Value::Null, "{saw}");
    assert_eq!(saw["tokens_after_logout"], json!([null, null]), "{saw}");
    let sees = |key: &str| -> Vec<String> {
        (saw[key].as_array().unwrap().iter())
            .filter_map(|m| Some(m.as_str()?.to_owned()))
            .collect()
    };
    assert!(
        sees("bob_sees_in_lobby").contains(&"ann: hello from ann".to_owned()),
        "{saw}"
    );
    assert_eq!(sees("bob_sees_in_dm"), ["ann: psst, bob"], "{saw}");
    assert_eq!(
        saw["dm"],
        schemas::direct_room("ann", "bob").as_str(),
        "{saw}"
    );
    assert!(out.join("account-bob.png").exists());
}

/// The tournament draw on the page of `pace run` in headless Chromium, with
/// two browser contexts: one creates a tournament and shows its QR code,
/// the other joins from the link; a taken team is refused; both pages show
/// the same draw live (`tests/browser/tournament.py`).
#[tokio::test]
async fn two_people_draw_a_tournament_in_chromium() {
    let _page = PAGES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "tournament-secret";
    let (child, base) = start_pace_run(
        &["--demo-participants", "20", "--token-secret", secret],
        dir.path(),
    );
    let token = |user| ws_edge::auth::issue(secret, user, ws_edge::auth::now_s(), 3600);
    let (ann, bob) = (token("ann"), token("bob"));
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tournament");
    std::fs::create_dir_all(&out).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/tournament.py");
    let run = tokio::task::spawn_blocking({
        let (out, base) = (out.clone(), base.clone());
        move || {
            Command::new(common::python())
                .arg(script)
                .arg(base)
                .arg(&out)
                .arg(ann)
                .arg(bob)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    // The draw the pages showed is the edge's.
    let view: Value = reqwest::get(format!("{base}/api/tournaments/friday"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stop(child).await;
    assert!(
        run.status.success(),
        "the tournament page test failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let saw: Value = serde_json::from_slice(&run.stdout).unwrap();
    println!("tournament page: {saw}");
    assert_eq!(saw["seed"], view["draw"]["seed"], "{view}");
    let dealt: Vec<Value> = view["draw"]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!([a["user"], a["team"]]))
        .collect();
    assert_eq!(saw["draw"], json!(dealt));
    for who in ["ann", "bob"] {
        let shot = out.join(format!("tournament-{who}.png"));
        assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    }
}
