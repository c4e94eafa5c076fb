//! The deployment files under `pipeline/deploy`, checked offline as
//! `make test` runs:
//!
//! - every Kubernetes manifest against the Kubernetes schemas (strict),
//!   the compose file against the Compose specification, the Dockerfile
//!   against the image's rules, the compose stack's Prometheus config
//!   with promtool; and a broken copy of each is refused, saying why;
//! - the pipeline StatefulSet, rendered the way its pods will see it
//!   (ordinal → `--process`, the hosts file its ConfigMap mounts, its
//!   environment), starts a two-process cluster on loopback that answers
//!   the image's health check and computes every task.
//!
//! The checks are `pipeline/deploy/validate.py`, run with the Python of
//! `make tools` (kubernetes-validate brings the Kubernetes schemas) and
//! the Compose schema `make tools` takes from compose-go
//! (`PACE_TEST_COMPOSE_SCHEMA`). No Docker or Kubernetes runs here: the
//! cluster test runs the pods' command lines as processes, with each pod's
//! DNS name read as a loopback address of its own (127.0.0.1, 127.0.0.2).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn compose_schema() -> PathBuf {
    std::env::var_os("PACE_TEST_COMPOSE_SCHEMA")
        .map(PathBuf::from)
        .expect("PACE_TEST_COMPOSE_SCHEMA: the Compose schema (`make test` sets it)")
}

/// `validate.py` with `args`, from `dir` (a copy of pipeline/deploy).
fn validate(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::python())
        .arg(dir.join("validate.py"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The checks of `dir`, each with whether it passed and what it printed.
fn checks(dir: &Path) -> Vec<(&'static str, bool, String)> {
    let schema = compose_schema();
    let schema = schema.to_str().unwrap();
    [
        ("k8s", validate(dir, &["k8s", "k8s"])),
        (
            "compose",
            validate(dir, &["compose", "compose.yml", schema]),
        ),
        ("dockerfile", validate(dir, &["dockerfile", "Dockerfile"])),
        ("render", validate(dir, &["render", "k8s"])),
    ]
    .into_iter()
    .map(|(what, out)| (what, out.status.success(), text(&out)))
    .collect()
}

/// A copy of pipeline/deploy (with observability/ beside it, as the
/// compose file mounts it) to break.
fn copy() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::create_dir(top.path().join("pipeline")).unwrap();
    copy(&deploy(), &top.path().join("pipeline/deploy"));
    copy(
        &root.join("observability"),
        &top.path().join("observability"),
    );
    let dir = top.path().join("pipeline/deploy");
    (top, dir)
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn every_deployment_file_is_valid() {
    for (what, ok, out) in checks(&deploy()) {
        assert!(ok, "{what}: {out}");
    }
    // The compose stack's Prometheus, with the rules it mounts beside it.
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::copy(
        deploy().join("compose/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .unwrap();
    std::fs::copy(
        root.join("observability/prometheus/rules.yml"),
        dir.path().join("rules.yml"),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(dir.path().join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// Each break, made on a fresh copy: the check that must refuse it, and
/// what its complaint must name.
#[test]
fn a_broken_deployment_file_is_refused_and_says_why() {
    type Break = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );
    let breaks: [Break; 7] = [
        // A misspelt field: strict schemas refuse what Kubernetes would drop.
        (
            "k8s/pipeline.yaml",
            "  podManagementPolicy: Parallel\n",
            "  podManagementPolicy: Parallel\n  contianers: []\n",
            "k8s",
            "contianers",
        ),
        (
            "k8s/edge.yaml",
            "averageUtilization: 60",
            "averageUtilization: sixty",
            "k8s",
            "sixty",
        ),
        // Three pipeline pods, but a hosts file and PACE_PROCESSES of two.
        (
            "k8s/pipeline.yaml",
            "  replicas: 2\n",
            "  replicas: 3\n",
            "render",
            "replicas 3",
        ),
        (
            "k8s/pipeline.yaml",
            "  publishNotReadyAddresses: true\n",
            "",
            "render",
            "publish",
        ),
        (
            "compose.yml",
            "  lb:\n    image: nginx:1.29-alpine\n",
            "  lb:\n    image: nginx:1.29-alpine\n    portz: [8080]\n",
            "compose",
            "portz",
        ),
        (
            "compose.yml",
            "      - pipeline-1:/var/lib/pace",
            "      - pipeline-2:/var/lib/pace",
            "compose",
            "pipeline-2",
        ),
        ("Dockerfile", "USER 10001:10001\n", "", "dockerfile", "root"),
    ];
    for (file, from, to, check, named) in breaks {
        let (_top, dir) = copy();
        for (what, ok, out) in checks(&dir) {
            assert!(ok, "the copy, before {file} is broken: {what}: {out}");
        }
        edit(&dir.join(file), from, to);
        for (what, ok, out) in checks(&dir) {
            if what == check {
                assert!(!ok, "{file} with {to:?} passed {what}: {out}");
                assert!(out.contains(named), "{what} on {file}: {out}");
            }
        }
    }
}

/// The pipeline StatefulSet's pods, started as processes on loopback the
/// way Kubernetes would start them: same arguments, same environment,
/// process index from the ordinal, the hosts file its ConfigMap mounts
/// (each pod's DNS name read as 127.0.0.(ordinal + 1), same port).
#[test]
fn the_statefulset_starts_a_cluster() {
    let out = validate(&deploy(), &["render", "k8s"]);
    assert!(out.status.success(), "{}", text(&out));
    let cluster: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = cluster["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "{cluster}");
    let hosts: String = (cluster["hosts"].as_array().unwrap().iter())
        .enumerate()
        .map(|(i, line)| {
            let (_dns, port) = line.as_str().unwrap().rsplit_once(':').unwrap();
            format!("127.0.0.{}:{port}\n", i + 1)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts"), &hosts).unwrap();

    let (prefix, kafka) = common::views::fresh_topics("deploy");
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for pod in pods {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pace"));
        for arg in pod["args"].as_array().unwrap() {
            cmd.arg(arg.as_str().unwrap());
        }
        for (name, value) in pod["env"].as_object().unwrap() {
            cmd.env(name, value.as_str().unwrap());
        }
        // Here rather than in the cluster: this broker, these topics, a
        // directory for the volume, a free port for HTTP, and the hosts
        // file with loopback addresses.
        let data = dir.path().join(format!("pod-{}", pod["process"]));
        cmd.env("PACE_HOSTS", dir.path().join("hosts"))
            .env("PACE_DATA_DIR", &data)
            .env("PACE_LISTEN", "127.0.0.1:0")
            .env("PACE_TOPIC_PREFIX", &prefix)
            .args(["--brokers", &kafka.brokers, "--tick-ms", "20"])
            .stderr(std::process::Stdio::null());
        let (child, url) = common::spawn_serving(cmd);
        children.push(child);
        urls.push(url);
    }

    let tasks = common::views::tasks();
    let stop = Arc::new(AtomicBool::new(false));
    ingest::jsonl::replay(&kafka, &kafka.topics.calc, &tasks, 0.0, &stop).unwrap();
    common::views::wait_committed(&kafka, Duration::from_secs(300));
    let views = common::views::final_views(&kafka, &[], true);
    assert_eq!(views.results.len(), 300, "one result per task id");
    for url in &urls {
        let read = common::views::records_read(url, |t| t.ends_with("calc"));
        assert!(read > 0, "{url} read no task: not one cluster");
        // The image's health check, on each process.
        let port = url.rsplit_once(':').unwrap().1;
        let ok = Command::new(env!("CARGO_BIN_EXE_pace"))
            .args(["healthz", "--listen", &format!("0.0.0.0:{port}")])
            .status()
            .unwrap();
        assert!(ok.success(), "pace healthz on {url}");
    }

    for c in &children {
        let _ = Command::new("kill").arg(c.id().to_string()).status();
    }
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "pace pipeline exited with {status}");
    }
    // Nobody there any more: the health check says so.
    let port = urls[0].rsplit_once(':').unwrap().1;
    let down = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["healthz", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!down.success());
}
