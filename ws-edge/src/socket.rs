//! One spectator's WebSocket connection: any number of subscriptions (a
//! race, one participant, a room, a task) over one socket, the room actions
//! (join, leave, post), and pings. The protocol is in `PROTOCOL.md`.
//!
//! Memory per connection is bounded: frames wait in a queue of at most
//! [`EdgeLimits::client_queue`] (each an `Arc` of a frame shared with every
//! other subscriber), and a subscription whose client does not keep up falls
//! behind the view's broadcast ring and is sent one fresh snapshot instead
//! of the backlog. A client that accepts nothing for
//! [`EdgeLimits::write_timeout`] is disconnected. Replies go through the same
//! queue, so a client that does not read also stops being read. What the
//! client sends counts against its connection's frame budget, and it is
//! pinged; both are in `upgrade.rs`. Posts take from the user's budget,
//! shared by all their connections (`gossip.rs`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use schemas::ChatKind;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tracing::Instrument;

use crate::auth::AuthError;
use crate::limits::EdgeLimits;
use crate::post::{EdgeInput, SendError};
pub(crate) use crate::shared::{Shared, stopped};
use crate::upgrade::{Inbound, Incoming, Keepalive, WsStream};
use crate::views::{Frame, Snapshot, Subscribed, Views, error_frame};

/// Which view a subscription is to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ViewKind {
    Race,
    Participant,
    Room,
    Task,
}

impl ViewKind {
    fn name(self) -> &'static str {
        match self {
            ViewKind::Race => "race",
            ViewKind::Participant => "participant",
            ViewKind::Room => "room",
            ViewKind::Task => "task",
        }
    }
}

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum In {
    Subscribe {
        view: ViewKind,
        id: String,
        #[serde(default)]
        participant: Option<String>,
        #[serde(default)]
        since: Option<u64>,
    },
    Unsubscribe {
        view: ViewKind,
        id: String,
        #[serde(default)]
        participant: Option<String>,
    },
    Ping {
        #[serde(default)]
        nonce: Option<u64>,
    },
    Join {
        #[serde(default)]
        room: Option<String>,
    },
    Leave {
        #[serde(default)]
        room: Option<String>,
    },
    Post {
        #[serde(default)]
        room: Option<String>,
        text: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
}

/// What goes to the writer.
enum Out {
    Frame(Frame),
    /// A frame with a view change whose oldest input record was produced at
    /// this Unix ms: its end-to-end latency is observed once written.
    Change(Frame, i64, &'static str),
    Close(u16, &'static str),
}

type Key = (ViewKind, String, Option<String>);

/// How a connection starts.
pub(crate) struct Start {
    /// The user its token names (`Err`: a bad token).
    pub user: Result<Option<String>, AuthError>,
    /// A subscription made by the URL (`/ws/races/{id}`, `/ws/rooms/{id}`);
    /// if it fails the connection closes.
    pub first: Option<In>,
    /// The room room actions without a `room` go to.
    pub room: Option<String>,
}

/// Runs one connection until the client goes, the edge shuts down, the
/// client stops taking frames or answering pings, or it sends more than its
/// frame budget.
pub(crate) async fn run(socket: WsStream, shared: Arc<Shared>, start: Start) {
    let (sink, stream) = socket.split();
    let keepalive = Arc::new(Keepalive::default());
    let mut inbound = Inbound::new(stream, &shared.limits, keepalive.clone());
    let (queue, outbox) = mpsc::channel::<Out>(shared.limits.client_queue);
    let writer =
        tokio::spawn(write(sink, outbox, shared.limits.clone(), keepalive).in_current_span());
    tracing::debug!("connected");
    let mut c = Conn {
        shared: shared.clone(),
        queue: queue.clone(),
        user: None,
        room: start.room,
        subs: HashMap::new(),
        online: BTreeSet::new(),
        joined: BTreeSet::new(),
    };
    let mut close = (1000u16, "bye");
    match start.user {
        Err(e) => {
            let _ = queue
                .send(Out::Frame(
                    error_frame("unauthorized", &e.to_string()).into(),
                ))
                .await;
            close = (1008, "unauthorized");
        }
        Ok(user) => {
            c.user = user;
            let first_ok = match start.first {
                Some(first) => match c.handle(first).await {
                    Reply::Error(code, message) => {
                        let _ = queue
                            .send(Out::Frame(error_frame(code, &message).into()))
                            .await;
                        close = (1008, code);
                        false
                    }
                    _ => true,
                },
                None => true,
            };
            if first_ok {
                close = c.serve(&mut inbound).await;
            }
        }
    }
    // The close goes out first; the user going offline (one event per
    // room, each acked by the broker) does not hold it back.
    c.unsubscribe_all();
    let _ = tokio::time::timeout(
        shared.limits.drain,
        queue.send(Out::Close(close.0, close.1)),
    )
    .await;
    drop(queue);
    let _ = tokio::join!(
        writer,
        inbound.drain(crate::upgrade::CLOSE_WAIT),
        c.offline_everywhere()
    );
    tracing::debug!(code = close.0, "disconnected");
}

/// A close frame.
pub(crate) fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }))
}

/// Sends frames until the queue closes, the client stops taking them, or it
/// stops answering pings.
async fn write(
    mut sink: futures_util::stream::SplitSink<WsStream, Message>,
    mut outbox: mpsc::Receiver<Out>,
    limits: EdgeLimits,
    keepalive: Arc<Keepalive>,
) {
    let latency = &observability::metrics().edge_frame_latency;
    let timeout = limits.write_timeout;
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + limits.ping_interval,
        limits.ping_interval,
    );
    loop {
        let out = tokio::select! {
            out = outbox.recv() => match out {
                Some(out) => out,
                None => break,
            },
            _ = pings.tick() => match keepalive.ping() {
                Some(ping) => {
                    if !matches!(tokio::time::timeout(timeout, sink.send(ping)).await, Ok(Ok(()))) {
                        break;
                    }
                    continue;
                }
                None => {
                    crate::upgrade::no_pong();
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        sink.send(close_message(1008, "no pong")),
                    )
                    .await;
                    break;
                }
            },
        };
        let (msg, last, origin) = match out {
            Out::Frame(f) => (Message::Text(f), false, None),
            Out::Change(f, ms, view) => (Message::Text(f), false, Some((ms, view))),
            Out::Close(code, reason) => (close_message(code, reason), true, None),
        };
        match tokio::time::timeout(timeout, sink.send(msg)).await {
            Ok(Ok(())) if last => break,
            Ok(Ok(())) => {
                if let Some((ms, view)) = origin {
                    let s = schemas::Timestamp(ms).elapsed_s();
                    latency.with_label_values(&[view]).observe(s);
                }
            }
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("client took no frame for {timeout:?}; disconnecting");
                observability::metrics()
                    .edge_refused
                    .with_label_values(&["write_timeout"])
                    .inc();
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

enum Reply {
    /// Nothing more to say (a subscription answers with its first frames).
    None,
    Frame(String),
    Error(&'static str, String),
}

struct Conn {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Out>,
    user: Option<String>,
    room: Option<String>,
    subs: HashMap<Key, JoinHandle<()>>,
    /// Rooms this connection counts as online in.
    online: BTreeSet<String>,
    /// Rooms joined on this connection (before the view shows it).
    joined: BTreeSet<String>,
}

impl Conn {
    /// Reads the client's messages until it goes or the edge stops; returns
    /// the close code to send.
    async fn serve(&mut self, inbound: &mut Inbound) -> (u16, &'static str) {
        let stop = stopped(self.shared.shutdown.clone());
        tokio::pin!(stop);
        loop {
            let msg = tokio::select! {
                () = &mut stop => {
                    let frame = serde_json::json!({"type": "reconnect", "reason": "shutdown", "after_ms": 1000});
                    let _ = tokio::time::timeout(
                        self.shared.limits.drain,
                        self.queue.send(Out::Frame(frame.to_string().into())),
                    )
                    .await;
                    return (1012, "restarting");
                }
                () = self.queue.closed() => return (1000, "bye"),
                msg = inbound.next() => msg,
            };
            let reply = match msg {
                Incoming::Text(t) => match serde_json::from_str::<In>(&t) {
                    Ok(frame) => self.handle(frame).await,
                    Err(e) => Reply::Error("bad_frame", e.to_string()),
                },
                Incoming::Binary(_) => Reply::Error("bad_frame", "frames are JSON text".to_owned()),
                Incoming::Closed => return (1000, "bye"),
                Incoming::OverBudget => {
                    let _ = self.queue.try_send(Out::Frame(
                        error_frame("rate_limited", "too many frames; closing").into(),
                    ));
                    return (1008, "too many frames");
                }
                Incoming::Failed(e) => {
                    tracing::debug!(error = %e, "read failed");
                    return (1002, "protocol error");
                }
            };
            let frame = match reply {
                Reply::None => continue,
                Reply::Frame(f) => f,
                Reply::Error(code, message) => error_frame(code, &message),
            };
            if self.queue.send(Out::Frame(frame.into())).await.is_err() {
                return (1000, "bye");
            }
        }
    }

    async fn handle(&mut self, frame: In) -> Reply {
        match frame {
            In::Ping { nonce } => {
                Reply::Frame(serde_json::json!({"type": "pong", "nonce": nonce}).to_string())
            }
            In::Subscribe {
                view,
                id,
                participant,
                since,
            } => self.subscribe(view, id, participant, since).await,
            In::Unsubscribe {
                view,
                id,
                participant,
            } => {
                let key = (view, id, participant);
                match self.subs.remove(&key) {
                    Some(task) => {
                        task.abort();
                        if view == ViewKind::Room {
                            self.offline(&key.1).await;
                        }
                        Reply::Frame(
                            serde_json::json!({"type": "unsubscribed", "view": view.name(), "id": key.1, "participant": key.2})
                                .to_string(),
                        )
                    }
                    None => Reply::Error(
                        "not_subscribed",
                        format!("no subscription to {} {:?}", view.name(), key.1),
                    ),
                }
            }
            In::Join { room } => self.room_action("join", room, None, None).await,
            In::Leave { room } => self.room_action("leave", room, None, None).await,
            In::Post {
                room,
                text,
                client_msg_id,
            } => {
                self.room_action("post", room, Some(text), client_msg_id)
                    .await
            }
        }
    }

    async fn subscribe(
        &mut self,
        view: ViewKind,
        id: String,
        participant: Option<String>,
        since: Option<u64>,
    ) -> Reply {
        if (view == ViewKind::Participant) != participant.is_some() {
            return Reply::Error(
                "bad_frame",
                "`participant` is given with view \"participant\", and only then".to_owned(),
            );
        }
        let key = (view, id.clone(), participant.clone());
        if self.subs.get(&key).is_some_and(|t| !t.is_finished()) {
            return Reply::Error(
                "already_subscribed",
                format!("already subscribed to {} {id:?}", view.name()),
            );
        }
        self.subs.retain(|_, t| !t.is_finished());
        if self.subs.len() >= self.shared.limits.max_subscriptions {
            return Reply::Error(
                "too_many_subscriptions",
                format!(
                    "at most {} subscriptions per connection",
                    self.shared.limits.max_subscriptions
                ),
            );
        }
        let views = self.shared.views.clone();
        let queue = self.queue.clone();
        let task = match view {
            ViewKind::Race => {
                let Some(s) = views.subscribe_race(&id, since) else {
                    return Reply::Error("unknown_race", format!("no race {id:?}"));
                };
                let s = self.send_first(s).await;
                tokio::spawn(
                    forward(s, view, queue, move |_| views.race_snapshot(&id), || true)
                        .in_current_span(),
                )
            }
            ViewKind::Participant => {
                let p = participant.unwrap_or_default();
                let Some(s) = views.subscribe_participant(&id, &p) else {
                    return Reply::Error("unknown_race", format!("no race {id:?}"));
                };
                let s = self.send_first(s).await;
                tokio::spawn(
                    forward(
                        s,
                        view,
                        queue,
                        move |_| views.participant_snapshot(&id, &p),
                        || true,
                    )
                    .in_current_span(),
                )
            }
            ViewKind::Room => {
                // An invite-only room the user may not see does not exist.
                let Some(s) = views.rooms.subscribe(&id, self.user.as_deref(), since) else {
                    return Reply::Error("unknown_room", format!("no room {id:?}"));
                };
                // Going online writes an event, which takes from the user's
                // budget; with none left the user still reads the room, but
                // this connection does not count them online.
                if let Some(user) = &self.user
                    && !self.online.contains(&id)
                    && self.room_budget(user)
                    && self.online.insert(id.clone())
                {
                    let _ = self
                        .shared
                        .chat
                        .send(&EdgeInput::event(&id, user, ChatKind::Connect))
                        .await;
                }
                let s = self.send_first(s).await;
                let (room, gate, user) = (id.clone(), views.clone(), self.user.clone());
                let visible = move || gate.rooms.visible(&id, user.as_deref());
                tokio::spawn(
                    forward(
                        s,
                        view,
                        queue,
                        move |seq| views.rooms.snapshot(&room, seq),
                        visible,
                    )
                    .in_current_span(),
                )
            }
            ViewKind::Task => {
                let (ready, results) = views.tasks.watch(&id);
                let first = ready.clone().or_else(|| views.tasks.get(&id));
                let frame = task_frame("snapshot", &id, first.as_ref());
                let _ = self.queue.send(Out::Frame(frame)).await;
                if ready.is_some() {
                    return Reply::None; // a task has no other change
                }
                tokio::spawn(forward_task(views, id.clone(), results, queue).in_current_span())
            }
        };
        self.subs.insert(key, task);
        Reply::None
    }

    /// Queues a new subscription's first frames, before anything else the
    /// client asks for is answered; the forwarder sends the rest.
    async fn send_first(&self, mut s: Subscribed) -> Subscribed {
        let m = observability::metrics();
        for f in std::mem::take(&mut s.frames) {
            let kind = if f.starts_with(r#"{"type":"snapshot""#) {
                "snapshot"
            } else {
                "delta"
            };
            if self.queue.send(Out::Frame(f)).await.is_err() {
                break;
            }
            m.edge_frames.with_label_values(&[kind]).inc();
        }
        s
    }

    /// The user leaves `room`'s online count, if this connection was in it.
    async fn offline(&mut self, room: &str) {
        if let Some(user) = &self.user
            && self.online.remove(room)
        {
            let _ = self
                .shared
                .chat
                .send(&EdgeInput::event(room, user, ChatKind::Disconnect))
                .await;
        }
    }

    /// Takes one of `user`'s room events (posts, joins, leaves, going
    /// online); `false` if their budget is spent.
    fn room_budget(&self, user: &str) -> bool {
        let took = self.shared.budgets.posts.take(&user.to_owned());
        if !took {
            observability::metrics()
                .edge_rate_limited
                .with_label_values(&["post"])
                .inc();
        }
        took
    }

    /// Ends every subscription.
    fn unsubscribe_all(&mut self) {
        for (_, task) in self.subs.drain() {
            task.abort();
        }
    }

    /// The user goes offline in every room this connection had them online in.
    async fn offline_everywhere(&mut self) {
        let online: Vec<String> = self.online.iter().cloned().collect();
        for room in online {
            self.offline(&room).await;
        }
    }

    /// A join, leave or post: acknowledged once the broker has it. A refused
    /// event never reaches Kafka.
    async fn room_action(
        &mut self,
        op: &'static str,
        room: Option<String>,
        text: Option<String>,
        client_msg_id: Option<String>,
    ) -> Reply {
        let Some(room) = room.or_else(|| self.room.clone()) else {
            return Reply::Error("bad_frame", format!("{op} needs a `room`"));
        };
        let Some(user) = self.user.clone() else {
            return Reply::Error("unauthorized", AuthError::Missing.to_string());
        };
        let views = &self.shared.views;
        // A room that does not exist here, or is invite-only and the user
        // is neither invited nor a member: the same answer for both.
        if !views.rooms.may_join(&room, &user) {
            return Reply::Error("unknown_room", format!("no room {room:?}"));
        }
        if op == "post" && !(self.joined.contains(&room) || views.rooms.is_member(&room, &user)) {
            return Reply::Error(
                "not_member",
                format!("{user} is not a member of {room:?}; join first"),
            );
        }
        // Every event that reaches Kafka takes from the user's budget.
        if !self.room_budget(&user) {
            return too_many_room_events();
        }
        let event = match op {
            "join" => EdgeInput::event(&room, &user, ChatKind::Join),
            "leave" => EdgeInput::event(&room, &user, ChatKind::Leave),
            _ => schemas::ChatEvent {
                text,
                client_msg_id: client_msg_id.clone(),
                ..EdgeInput::event(&room, &user, ChatKind::Message)
            },
        };
        match self.shared.chat.send(&event).await {
            Ok(()) => {
                // The join is in the room's partition before any later post,
                // so the job has it first: this connection may post now.
                match op {
                    "join" => {
                        self.joined.insert(room.clone());
                    }
                    "leave" => {
                        self.joined.remove(&room);
                    }
                    _ => {}
                }
                Reply::Frame(
                    serde_json::json!({"type": "ack", "op": op, "room": room, "client_msg_id": client_msg_id})
                        .to_string(),
                )
            }
            Err(SendError::Invalid(m)) => Reply::Error("invalid", m),
            Err(SendError::Unavailable(m)) => Reply::Error("unavailable", m),
        }
    }
}

fn too_many_room_events() -> Reply {
    Reply::Error(
        "rate_limited",
        "too many posts, joins or room connections; slow down".to_owned(),
    )
}

/// A task's frame: its result (or pending entry, or nothing yet known).
fn task_frame(kind: &str, id: &str, result: Option<&schemas::TaskResult>) -> Frame {
    let done = result.is_some_and(|r| r.status != schemas::TaskStatus::Pending);
    serde_json::json!({"type": kind, "view": "task", "id": id, "seq": u64::from(done), "result": result})
        .to_string()
        .into()
}

/// Feeds one task subscription, after its snapshot: the result once it
/// arrives (seq 1). A task has no other change.
async fn forward_task(
    views: Arc<Views>,
    id: String,
    mut results: tokio::sync::broadcast::Receiver<Arc<schemas::TaskResult>>,
    queue: mpsc::Sender<Out>,
) {
    let _live = Live::new("task");
    let result = loop {
        match results.recv().await {
            Ok(r) if r.id == id => break (*r).clone(),
            Ok(_) => {}
            // Missed some: look again.
            Err(RecvError::Lagged(_)) => {
                if let Some(r) = views
                    .tasks
                    .get(&id)
                    .filter(|r| r.status != schemas::TaskStatus::Pending)
                {
                    break r;
                }
            }
            Err(RecvError::Closed) => return,
        }
    };
    let _ = queue
        .send(Out::Frame(task_frame("delta", &id, Some(&result))))
        .await;
}

/// Counts a live subscription while it lives.
struct Live(&'static str);

impl Live {
    fn new(view: &'static str) -> Self {
        observability::metrics()
            .edge_subscriptions
            .with_label_values(&[view])
            .inc();
        Live(view)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        observability::metrics()
            .edge_subscriptions
            .with_label_values(&[self.0])
            .dec();
    }
}

/// Feeds one subscription into the connection's queue: its first frames,
/// then every change in order. Behind by more than the view's ring, it sends
/// `resnapshot(last seq sent)` instead of the backlog, and skips the changes
/// that snapshot already holds.
async fn forward(
    s: Subscribed,
    view: ViewKind,
    queue: mpsc::Sender<Out>,
    resnapshot: impl Fn(u64) -> Option<Snapshot> + Send + 'static,
    allowed: impl Fn() -> bool + Send + 'static,
) {
    let _live = Live::new(view.name());
    let m = observability::metrics();
    let Subscribed {
        mut version,
        mut seq,
        mut changes,
        ..
    } = s;
    loop {
        let next = changes.recv().await;
        if !allowed() {
            // No longer the user's to see (they left an invite-only room).
            let frame = error_frame("unknown_room", "no longer visible to you");
            let _ = queue.send(Out::Frame(frame.into())).await;
            return;
        }
        let (out, kind) = match next {
            Ok(c) if c.version <= version => continue,
            Ok(c) => {
                version = c.version;
                seq = c.seq;
                let out = match c.origin_ms {
                    Some(ms) => Out::Change(c.frame, ms, view.name()),
                    None => Out::Frame(c.frame),
                };
                (out, "delta")
            }
            Err(RecvError::Lagged(missed)) => {
                let Some((v, s, f)) = resnapshot(seq) else {
                    return;
                };
                tracing::info!(
                    view = view.name(),
                    missed,
                    "subscriber behind; sending a snapshot"
                );
                m.edge_lag_snapshots.with_label_values(&[view.name()]).inc();
                (version, seq) = (v, s);
                (Out::Frame(f), "snapshot")
            }
            Err(RecvError::Closed) => return,
        };
        if queue.send(out).await.is_err() {
            return;
        }
        m.edge_frames.with_label_values(&[kind]).inc();
    }
}
