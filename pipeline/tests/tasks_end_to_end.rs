//! Calculation tasks through the whole stack on a real Apache Kafka broker:
//! submitted over HTTP, evaluated by `calc_results` in the pipeline, fetched
//! and pushed by the edge, archived to Parquet (read back by DuckDB); bad
//! requests get 4xx JSON errors and nothing is enqueued.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_submit_fetch_push_and_refuse() {
    let stack = Stack::start("tasks", "tasks secret").await;
    let base = stack.base.clone();
    let http = reqwest::Client::new();
    let post = |body: String| {
        let (http, url) = (http.clone(), format!("{base}/api/tasks"));
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // A task with our id, and one with an id the edge makes up.
    let (status, body) = post(json!({"id": "sum", "expression": "1 + 1"}).to_string()).await;
    assert_eq!((status, body), (202, json!({"id": "sum"})));
    let (status, body) = post(json!({"expression": "2^3^2 / 0"}).to_string()).await;
    assert_eq!(status, 202);
    let made_up = body["id"].as_str().unwrap().to_owned();
    // A push subscriber for a task not submitted yet.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws{}/ws/tasks/later", &base[4..]))
        .await
        .unwrap();
    let unknown = next_frame(&mut ws).await;
    assert_eq!(
        unknown,
        json!({"type": "snapshot", "view": "task", "id": "later", "seq": 0, "result": null})
    );
    let (status, _) = post(json!({"id": "later", "expression": "-2^2"}).to_string()).await;
    assert_eq!(status, 202);
    let pushed = next_frame(&mut ws).await;
    assert_eq!(
        (&pushed["type"], &pushed["seq"]),
        (&json!("delta"), &json!(1))
    );
    assert_eq!(
        (
            pushed["result"]["status"].as_str(),
            pushed["result"]["result"].as_str()
        ),
        (Some("SUCCESSFUL"), Some("-4"))
    );

    let result = |id: String| {
        let (http, url) = (http.clone(), format!("{base}/api/tasks/{id}"));
        async move {
            eventually("a result", Duration::from_secs(60), || async {
                let r: Value = get_json(&http, &url).await?;
                (r["status"] != "PENDING").then_some(r)
            })
            .await
        }
    };
    let sum = result("sum".into()).await;
    assert_eq!(
        (sum["status"].as_str(), sum["result"].as_str()),
        (Some("SUCCESSFUL"), Some("2"))
    );
    assert!(sum["completed_at"].is_string());
    let failed = result(made_up.clone()).await;
    assert_eq!(failed["status"], "FAILED");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("division by zero"),
        "{failed}"
    );

    // The same id again is the same task, with the first expression.
    let (status, body) = post(json!({"id": "sum", "expression": "40 + 2"}).to_string()).await;
    assert_eq!((status, body), (202, json!({"id": "sum"})));
    assert_eq!(result("sum".into()).await["result"], "2");

    // Lists, filtered by status.
    let list: Vec<Value> = get_json(&http, &format!("{base}/api/tasks?status=FAILED&limit=10"))
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], made_up.as_str());

    // Bad requests: 4xx with a JSON error, nothing enqueued.
    for (body, want) in [
        ("{\"expression\": ".to_string(), 400),
        (json!({"id": "x"}).to_string(), 400),
        (json!({"expression": 42}).to_string(), 400),
        (json!({"expression": "1", "colour": "red"}).to_string(), 400),
        (json!({"expression": ""}).to_string(), 400),
        (json!({"expression": "1+".repeat(3000)}).to_string(), 400),
        (
            json!({"expression": "1", "pad": "x".repeat(20_000)}).to_string(),
            413,
        ),
    ] {
        let (status, err) = post(body.clone()).await;
        assert_eq!(status, want, "{}", &body[..body.len().min(60)]);
        assert!(err["error"].is_string(), "{err}");
    }
    // Invalid UTF-8 in the expression.
    let r = http
        .post(format!("{base}/api/tasks"))
        .body(b"{\"expression\": \"1+\xff\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    let r = http
        .get(format!("{base}/api/tasks/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let topic = stack.kafka.topics.calc.clone();
    let enqueued = tokio::task::block_in_place(|| stack.read_topic(&topic));
    // The three good tasks; the repeat of "sum" was known here and not sent
    // again (an edge that did not know it would send it; the job keeps the first).
    assert_eq!(enqueued.len(), 3, "only the good submissions: {enqueued:?}");
    // DuckDB reads the archive: each task, and each result (with its place in pace.results).
    let root = stack.data_dir().join("archive");
    let query = |dataset: &str, columns: &str| {
        format!(
            "select {columns} from read_parquet('{}/{dataset}/*/*.parquet', hive_partitioning = true) order by id",
            root.display()
        )
    };
    let out = eventually("the archive", Duration::from_secs(30), || async {
        let code = format!(
            r#"
import duckdb
con = duckdb.connect()
try:
    t = con.execute("{}").fetchall()
    r = con.execute("{}").fetchall()
except Exception:
    t, r = [], []
print(len(t), len(r), [row for row in r])
"#,
            query("tasks", "id, expression, kafka_offset"),
            query("results", "id, status, result, kafka_offset")
        );
        let out = run_python(&code);
        out.starts_with("3 3").then_some(out)
    })
    .await;
    assert!(out.contains("('sum', 'SUCCESSFUL', '2'"), "{out}");
    assert!(out.contains("('later', 'SUCCESSFUL', '-4'"), "{out}");
    assert!(out.contains("'FAILED', None"), "{out}");
    stack.stop().await;
}

/// Every edge follows `pace.calc` too: a task posted through one edge is
/// pending on another (200 `PENDING`, not 404), before any pipeline has
/// answered it (none runs here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_posted_through_one_edge_is_pending_on_another() {
    let (_, kafka) =
        tokio::task::block_in_place(|| common::views::fresh_topics("tasks-across-edges"));
    let (one, one_base) = pace_edge(&kafka, None);
    let _one = Killed(one);
    let (other, other_base) = pace_edge(&kafka, None);
    let _other = Killed(other);
    let http = reqwest::Client::new();
    let posted = http
        .post(format!("{one_base}/api/tasks"))
        .json(&json!({"id": "elsewhere", "expression": "2 * 21"}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let url = format!("{other_base}/api/tasks/elsewhere");
    // 404 until the other edge has read the task.
    let pending: Value = eventually(
        "the task on the other edge",
        Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r: Value = get_json(&http, &url).await?;
                (r["status"] == "PENDING").then_some(r)
            }
        },
    )
    .await;
    assert_eq!(pending["expression"], "2 * 21");
}

/// More results than an edge holds (10,000): those no longer held are
/// read back from `pace.results` when asked for, not 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_no_longer_held_is_read_from_the_changelog() {
    let stack = Stack::start("old-results", "tasks secret").await;
    let n = ws_edge::views::tasks::RESULTS_HELD + 50;
    let tasks: Vec<schemas::CalcTask> = (0..n)
        .map(|i| schemas::CalcTask {
            id: format!("t-{i}"),
            expression: format!("{i} * 2"),
            time: schemas::Timestamp::now(),
        })
        .collect();
    let http = reqwest::Client::new();
    let url = |id: &str| format!("{}/api/tasks/{id}", stack.base);
    let done = |id: String| {
        let (http, url) = (http.clone(), url(&id));
        async move {
            eventually("a result at the edge", Duration::from_secs(120), || async {
                let r: Value = get_json(&http, &url).await?;
                (r["status"] == "SUCCESSFUL").then_some(())
            })
            .await
        }
    };
    // The first 50, answered before the 10,000 after them: the oldest
    // results the edge has, so the ones it no longer holds after.
    let kafka = stack.kafka.clone();
    let send = |tasks: &[schemas::CalcTask]| {
        tokio::task::block_in_place(|| {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            ingest::jsonl::replay(&kafka, &kafka.topics.calc, tasks, 0.0, &stop).unwrap();
        })
    };
    send(&tasks[..50]);
    for i in 0..50 {
        done(format!("t-{i}")).await;
    }
    send(&tasks[50..]);
    // Once the edge holds the 10,000 after them, each of the first 50 is
    // read back from the changelog (it says so), with its result.
    for i in 0..50 {
        let (http, url) = (http.clone(), url(&format!("t-{i}")));
        let r: Value = eventually("read from the changelog", Duration::from_secs(120), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http.get(url).send().await.ok()?;
                let from = r.headers().get("x-pace-from")?.to_str().ok()? == "changelog";
                let body: Value = r.json().await.ok()?;
                from.then_some(body)
            }
        })
        .await;
        assert_eq!(r["result"], (i * 2).to_string(), "{r}");
    }
    stack.stop().await;
}
