//! Where a process sits in a cluster of pipeline processes (timely's cluster
//! mode), and what it does when it loses one of the others.

/// Where one process sits in a cluster of pipeline processes (timely's
/// cluster mode): each runs [`super::PipelineConfig::workers`] workers, and
/// the input partitions are spread over all processes × workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This process's index, from 0.
    pub process: usize,
    /// `host:port` of every process, by index; this process listens on its own.
    pub addresses: Vec<String>,
}

/// Why the cluster flags or hosts file do not describe a cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// `--process` is out of range.
    #[error("--process {process} is not below --processes {processes}")]
    ProcessOutOfRange {
        /// The index given.
        process: usize,
        /// The process count given.
        processes: usize,
    },
    /// The hosts file names fewer processes than there are.
    #[error("the hosts file names {named} process(es), --processes is {processes}")]
    TooFewHosts {
        /// Processes the file names.
        named: usize,
        /// The process count given.
        processes: usize,
    },
    /// A line of the hosts file is not `host:port`.
    #[error("{0:?} in the hosts file is not host:port")]
    NotHostPort(String),
}

/// The first port of the default addresses (`127.0.0.1:2101`, `:2102`, …).
pub const DEFAULT_FIRST_PORT: u16 = 2101;

impl Cluster {
    /// The cluster of `processes` processes at the addresses of `hosts`
    /// (one `host:port` a line; blank lines and `#` comments are skipped;
    /// lines past the first `processes` are ignored), or at
    /// `127.0.0.1:2101`, `:2102`, … without a file. `None` for one process.
    pub fn new(
        processes: usize,
        process: usize,
        hosts: Option<&str>,
    ) -> Result<Option<Self>, ClusterError> {
        if process >= processes.max(1) {
            return Err(ClusterError::ProcessOutOfRange { process, processes });
        }
        if processes <= 1 {
            return Ok(None);
        }
        let addresses: Vec<String> = match hosts {
            Some(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .take(processes)
                .map(str::to_owned)
                .collect(),
            None => (0..processes)
                .map(|i| format!("127.0.0.1:{}", usize::from(DEFAULT_FIRST_PORT) + i))
                .collect(),
        };
        if addresses.len() < processes {
            return Err(ClusterError::TooFewHosts {
                named: addresses.len(),
                processes,
            });
        }
        for a in &addresses {
            let port = a.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                return Err(ClusterError::NotHostPort(a.clone()));
            }
        }
        Ok(Some(Self { process, addresses }))
    }

    /// Timely's communication settings for this process with `threads` workers.
    pub(super) fn communication(&self, threads: usize) -> timely::CommunicationConfig {
        timely::CommunicationConfig::Cluster {
            threads,
            process: self.process,
            addresses: self.addresses.clone(),
            report: false,
            zerocopy: false,
        }
    }
}

/// The exit status of a cluster process whose peer was lost: the cluster
/// has to be restarted as a whole (see [`exit_when_a_peer_is_lost`]).
pub const EXIT_PEER_LOST: i32 = 75;

/// Makes the process exit with [`EXIT_PEER_LOST`] when timely's network
/// thread loses the connection to another process of the cluster (it panics
/// with "timely communication error"). Timely cannot take a process back,
/// and this process's workers would otherwise wait for the lost one forever;
/// exiting lets a supervisor restart every process, and each resumes from
/// what was durable (commits, archive) as after any crash.
pub(super) fn exit_when_a_peer_is_lost() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("timely communication error") {
            tracing::error!(
                %message,
                status = EXIT_PEER_LOST,
                "lost a process of the cluster; exiting so that every process restarts"
            );
            std::process::exit(EXIT_PEER_LOST);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_comes_from_the_flags_and_bad_ones_say_why() {
        assert_eq!(Cluster::new(1, 0, None), Ok(None));
        let hosts = "# pace\n10.0.0.1:2101\n\n10.0.0.2:2101\n10.0.0.3:2101\n";
        assert_eq!(
            Cluster::new(2, 1, Some(hosts)),
            Ok(Some(Cluster {
                process: 1,
                addresses: vec!["10.0.0.1:2101".into(), "10.0.0.2:2101".into()],
            }))
        );
        assert_eq!(
            Cluster::new(2, 0, None).unwrap().unwrap().addresses,
            ["127.0.0.1:2101", "127.0.0.1:2102"]
        );
        for (n, i, hosts, says) in [
            (2, 2, None, "not below"),
            (1, 1, None, "not below"),
            (4, 0, Some(hosts), "names 3"),
            (2, 0, Some("a:1\nb\n"), "\"b\""),
            (2, 0, Some("a:1\nb:0\n"), "host:port"),
        ] {
            let e = Cluster::new(n, i, hosts).unwrap_err().to_string();
            assert!(e.contains(says), "{n} {i} {hosts:?}: {e}");
        }
    }
}
