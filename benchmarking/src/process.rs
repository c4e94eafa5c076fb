//! A `pace` process under test: started with chosen flags, measured through
//! `/proc` (CPU time, resident and peak memory) and its own `/metrics`,
//! stopped with SIGTERM.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running `pace` process; killed if dropped while running.
pub struct Pace {
    child: Child,
    /// Its HTTP base, `http://127.0.0.1:PORT`.
    pub base: String,
    /// When it said where it serves.
    pub ready: Instant,
}

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

impl Pace {
    /// Starts `bin` with `args` plus `--listen 127.0.0.1:0 --log warn`, its
    /// log appended to `log`; returns once it serves.
    pub fn start(bin: &Path, args: &[String], log: &Path) -> anyhow::Result<Pace> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--log", "warn"])
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().context("stdout")?);
        out.read_line(&mut line)?;
        // Keep reading what else it prints, so no write of it fails on a
        // closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let Some(base) = line.trim().strip_prefix("pace: serving ") else {
            let _ = child.kill();
            anyhow::bail!(
                "{} {args:?} did not start (see {})",
                bin.display(),
                log.display()
            );
        };
        Ok(Pace {
            base: base.trim_end_matches('/').to_owned(),
            child,
            ready: Instant::now(),
        })
    }

    fn status_kib(&self, field: &str) -> u64 {
        proc_kib(&format!("/proc/{}/status", self.child.id()), field)
    }

    /// Resident memory now, bytes.
    pub fn rss(&self) -> u64 {
        self.status_kib("VmRSS:") * 1024
    }

    /// Peak resident memory so far, bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_kib("VmHWM:") * 1024
    }

    /// CPU time used so far (user + system), seconds.
    pub fn cpu_s(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat; 12 and 13 here.
        (ticks(11) + ticks(12)) / USER_HZ
    }

    /// Its `/metrics` page now (Prometheus text format).
    pub fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("{}/metrics", self.base);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?;
            let response = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            Ok(response.error_for_status()?.text().await?)
        })
    }

    /// Stops it with SIGTERM and waits (at most 60 s) for it to exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "pace exited with {status}");
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "pace did not stop within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pace {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `field: N kB` line of a `/proc` file (`VmRSS:` of `/proc/PID/status`,
/// `MemTotal:` of `/proc/meminfo`), in KiB; 0 if absent.
pub fn proc_kib(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The values of every sample of metric `name` (any labels) in `text`, a
/// `/metrics` page.
pub fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = f64> + 'a {
    text.lines().filter_map(move |l| {
        let rest = l.strip_prefix(name)?;
        let rest = match rest.strip_prefix('{') {
            Some(labels) => labels.split_once('}')?.1,
            None => rest,
        };
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The samples of counter `name` by the value of its one `label`, from
/// Prometheus text: `(label value, count)`, the largest first.
pub fn by_label(text: &str, name: &str, label: &str) -> Vec<(String, u64)> {
    most_first(
        values_by_label(text, name, label)
            .into_iter()
            .map(|(v, n)| (v, n as u64))
            .filter(|(_, n)| *n > 0),
    )
}

/// Counts by what they count, the largest first (then by name).
pub fn most_first(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The samples of metric `name` by the value of its `label`, in the order
/// of the page (samples without the label are left out).
pub fn values_by_label(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|l| {
            let labels = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = labels.split_once('}')?;
            let at = labels.find(&key)? + key.len();
            let v = labels[at..].split('"').next()?.to_owned();
            Some((v, value.split_whitespace().next()?.parse::<f64>().ok()?))
        })
        .collect()
}

/// The arguments of `pace CMD` on `kafka`'s topics with `workers` workers
/// and its data under `data`.
pub fn pace_args(
    cmd: &str,
    kafka: &ingest::KafkaConfig,
    workers: usize,
    data: &Path,
) -> Vec<String> {
    let prefix = kafka
        .topics
        .gps
        .strip_suffix(&schemas::Topics::default().gps)
        .unwrap_or_default();
    let mut args: Vec<String> = [cmd, "--brokers", &kafka.brokers, "--topic-prefix", prefix]
        .map(String::from)
        .to_vec();
    // The edge keeps no state and runs no dataflow.
    if cmd != "edge" {
        args.extend(
            [
                "--workers",
                &workers.to_string(),
                "--data-dir",
                &data.display().to_string(),
            ]
            .map(String::from),
        );
    }
    args
}

/// A topic prefix of its own for one run.
pub fn run_prefix(what: &str) -> String {
    let ms = schemas::Timestamp::now().0;
    format!("bench-{what}-{}-{ms}.", std::process::id())
}

/// Where a run's logs go.
pub fn log_path(out: &Path, what: &str) -> PathBuf {
    out.join(format!("{what}.log"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_counter_by_its_label() {
        let text = "# HELP x\npace_x_total{reason=\"idle\"} 3\npace_x_total{reason=\"header_timeout\"} 40\npace_x_total{reason=\"none\"} 0\npace_y 1\n";
        assert_eq!(
            super::by_label(text, "pace_x_total", "reason"),
            [("header_timeout".to_owned(), 40), ("idle".to_owned(), 3)]
        );
    }
}
