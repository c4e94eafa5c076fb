//! The edge's memory per idle WebSocket connection: a fresh `pace edge`
//! (beside its pipeline, started as the latency runs start them) is measured
//! before and while it holds `n` connections that subscribe to nothing.

use std::time::Duration;

use serde::Serialize;

use crate::latency::{Setup, client_runtime, start_pace};

/// Edge memory per idle WebSocket connection.
#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    /// Connections opened and held.
    pub connections: usize,
    /// Edge resident memory before, bytes.
    pub rss_before: u64,
    /// Edge resident memory with all of them open, bytes.
    pub rss_with: u64,
    /// `(rss_with − rss_before) / connections`.
    pub bytes_per_connection: f64,
}

/// Opens `n` WebSocket connections to a fresh `pace edge`, subscribing to
/// nothing, and measures its memory before and with them.
pub fn idle_connections(setup: &Setup<'_>, n: usize) -> anyhow::Result<Idle> {
    let (pipeline, edge, _kafka, _data) = start_pace(setup, "idle")?;
    let rt = client_runtime()?;
    let url = format!("ws{}/ws", &edge.base[4..]);
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = edge.rss();
    let held = rt.block_on(async {
        let mut held = Vec::with_capacity(n);
        // A few hundred handshakes at a time.
        for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
            let opened = futures_util::future::join_all(
                chunk
                    .iter()
                    .map(|_| tokio_tungstenite::connect_async(url.clone())),
            )
            .await;
            for c in opened {
                held.push(c?.0);
            }
        }
        anyhow::Ok(held)
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let rss_with = edge.rss();
    rt.block_on(async move { drop(held) });
    let idle = Idle {
        connections: n,
        rss_before,
        rss_with,
        bytes_per_connection: (rss_with as f64 - rss_before as f64) / n as f64,
    };
    edge.stop()?;
    pipeline.stop()?;
    Ok(idle)
}
