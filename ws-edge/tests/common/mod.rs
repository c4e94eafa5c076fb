//! What the edge's socket tests share: an edge serving views fed
//! directly (no Kafka), a race definition, generated changes, and reading
//! frames.
#![allow(dead_code)] // each test binary uses its part

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pace_ws_edge::views::Views;
use pace_ws_edge::views::race::Races;
use pace_ws_edge::{EdgeConfig, EdgeLimits};
use schemas::{
    Participant, RaceDefinition, RaceKind, StandingRow, StandingsChange, Status, Timestamp,
};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One test at a time: the memory check reads the whole process's RSS.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Edge {
    pub addr: std::net::SocketAddr,
    pub views: Arc<Views>,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), pace_ws_edge::EdgeError>>,
}

impl Edge {
    pub async fn start(limits: EdgeLimits) -> Edge {
        let views = Arc::new(Views::default());
        views.get::<Races>().apply_race(definition());
        let mut config = EdgeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ingest::KafkaConfig::new("127.0.0.1:9"),
        );
        config.limits = limits;
        config.allowed_origins = vec!["https://race.example".into()];
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(pace_ws_edge::serve_views(
            config,
            views.clone(),
            move |a| addr_tx.send(a).unwrap(),
            async move {
                let _ = stopped.await;
            },
        ));
        Edge {
            addr: addr_rx.await.unwrap(),
            views,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

pub fn definition() -> RaceDefinition {
    RaceDefinition {
        id: "r".into(),
        name: "R".into(),
        start: Timestamp(1_780_000_000_000),
        kind: RaceKind::TimingLines {
            lines: vec![schemas::TimingLine {
                id: "l".into(),
                name: String::new(),
                ends: None,
            }],
        },
        laps: 1,
        cutoff: None,
        // No names: the rows' own (padded) names stay.
        participants: Vec::<Participant>::new(),
        rules: Default::default(),
    }
}

/// Change `seq`: `rows` participants move, with `pad` bytes of name each.
pub fn change(seq: u64, rows: usize, pad: usize) -> StandingsChange {
    let upserts = (0..rows)
        .map(|i| {
            let p = (seq as usize + i) % 20;
            StandingRow {
                race: "r".into(),
                rank: Some(p as u32 + 1),
                participant: format!("p{p}"),
                name: "x".repeat(pad),
                distance_m: seq as f64 * 10.0 + i as f64,
                laps: None,
                leg: None,
                gap_s: None,
                speed_mps: Some(4.5),
                last_lap_s: None,
                last_seen: Timestamp(1_780_000_000_000 + seq as i64 * 1000),
                status: Status::Racing,
                eta: None,
                position: None,
                gender: None,
                category: None,
            }
        })
        .collect();
    StandingsChange {
        race: "r".into(),
        seq,
        ranks: vec![],
        upserts,
        removes: vec![],
        splits: vec![],
        split_removes: vec![],
        leader: None,
    }
}

pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("the socket is open")
            .expect("a good frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The frames that arrive within `wait` (none expected, usually).
pub async fn quiet(ws: &mut Ws, wait: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(wait, ws.next()).await {
        out.push(serde_json::from_str(&t).unwrap());
    }
    out
}
