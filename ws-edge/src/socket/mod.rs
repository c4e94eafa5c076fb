//! One spectator's WebSocket connection: any number of subscriptions (a
//! race, one participant, a room, a task) over one socket, the room actions
//! (join, leave, post), and pings. The protocol is in `PROTOCOL.md`.
//!
//! Memory per connection is bounded: frames wait in a queue of at most
//! [`client_queue`](crate::EdgeLimits::client_queue) (each an `Arc` of a frame shared with every
//! other subscriber), and a subscription whose client does not keep up falls
//! behind the view's broadcast ring and is sent one fresh snapshot instead
//! of the backlog. A client that accepts nothing for
//! [`write_timeout`](crate::EdgeLimits::write_timeout) is disconnected. Replies go through the same
//! queue, so a client that does not read also stops being read. What the
//! client sends counts against its connection's frame budget, and it is
//! pinged; both are in `transport/upgrade.rs`. The writer task is in
//! `writer.rs`, each subscription's forwarder in `forward.rs`. Posts take from the user's budget,
//! shared by all their connections (`transport/gossip.rs`).

mod forward;
mod writer;

use self::forward::{Sub, forward};
pub(crate) use self::writer::close_message;
use self::writer::{Out, write};

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use schemas::ChatKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::auth::AuthError;
use crate::input::{EdgeInput, SendError};
use crate::protocol::{
    ClientFrame, ErrorCode, Frame, Refused, RoomOp, ServerFrame, ViewKind, error_frame,
};
pub(crate) use crate::shared::{Shared, stopped};
use crate::transport::upgrade::{Inbound, Incoming, Keepalive, Outbound, WsStream};
use crate::views::live::{First, Key};
use crate::views::race::window::WindowSpec;

/// History reads (`LiveView::history`) running at once on this edge.
static HISTORY_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// How a connection starts.
pub(crate) struct Start {
    /// The user its token names (`Err`: a bad token).
    pub user: Result<Option<String>, AuthError>,
    /// A subscription made by the URL (`/ws/races/{id}`, `/ws/rooms/{id}`);
    /// if it fails the connection closes.
    pub first: Option<ClientFrame>,
    /// The room room actions without a `room` go to.
    pub room: Option<String>,
    /// The token it presented: checked again every ping interval, and the
    /// connection closed once the login session it names has ended.
    pub token: Option<String>,
}

/// Runs one connection until the client goes, the edge shuts down, the
/// client stops taking frames or answering pings, or it sends more than its
/// frame budget.
pub(crate) async fn run(reading: WsStream, writing: Outbound, shared: Arc<Shared>, start: Start) {
    let keepalive = Arc::new(Keepalive::default());
    let mut inbound = Inbound::new(reading, &shared.limits, keepalive.clone());
    let (queue, outbox) = mpsc::channel::<Out>(shared.limits.client_queue);
    let writer =
        tokio::spawn(write(writing, outbox, shared.limits.clone(), keepalive).in_current_span());
    tracing::debug!("connected");
    let mut c = Conn {
        shared: shared.clone(),
        queue: queue.clone(),
        user: None,
        token: start.token,
        room: start.room,
        subs: HashMap::new(),
        online: BTreeSet::new(),
        joined: BTreeSet::new(),
    };
    let mut close = (1000u16, "bye");
    match start.user {
        Err(e) => {
            let _ = queue
                .send(Out::Frame(error_frame(
                    ErrorCode::Unauthorized,
                    &e.to_string(),
                )))
                .await;
            close = (1008, "unauthorized");
        }
        Ok(user) => {
            c.user = user;
            let first_ok = match start.first {
                Some(first) => match Box::pin(c.handle(first)).await {
                    Reply::Error(Refused(code, message)) => {
                        let _ = queue.send(Out::Frame(error_frame(code, &message))).await;
                        close = (1008, code.name());
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
        inbound.drain(crate::transport::upgrade::CLOSE_WAIT),
        Box::pin(c.offline_everywhere())
    );
    tracing::debug!(code = close.0, "disconnected");
}

enum Reply {
    /// Nothing more to say (a subscription answers with its first frames).
    None,
    Frame(Frame),
    Error(Refused),
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
    /// The token it presented.
    token: Option<String>,
}

impl Conn {
    /// Whether the login session its token names has ended (a logout, a
    /// reused refresh token). An expired token does not end a connection
    /// opened with it.
    fn session_ended(&self) -> bool {
        let token = self.token.as_deref();
        token.is_some_and(|t| matches!(self.shared.chat.user(Some(t)), Err(AuthError::Revoked)))
    }

    /// Reads the client's messages until it goes or the edge stops; returns
    /// the close code to send.
    async fn serve(&mut self, inbound: &mut Inbound) -> (u16, &'static str) {
        let stop = stopped(self.shared.shutdown.clone());
        tokio::pin!(stop);
        let every = self.shared.limits.ping_interval;
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            let msg = tokio::select! {
                _ = recheck.tick() => {
                    if self.session_ended() {
                        let _ = self.queue.try_send(Out::Frame(error_frame(
                            ErrorCode::Unauthorized,
                            &AuthError::Revoked.to_string(),
                        )));
                        return (1008, "session ended");
                    }
                    continue;
                }
                () = &mut stop => {
                    let frame = ServerFrame::Reconnect { reason: "shutdown", after_ms: 1000 }.encode();
                    let _ = tokio::time::timeout(
                        self.shared.limits.drain,
                        self.queue.send(Out::Frame(frame)),
                    )
                    .await;
                    return (1012, "restarting");
                }
                () = self.queue.closed() => return (1000, "bye"),
                msg = inbound.next() => msg,
            };
            let reply = match msg {
                Incoming::Text(t) => match serde_json::from_str::<ClientFrame>(&t) {
                    // Boxed: a connection waits in this loop for hours, and
                    // its task would otherwise keep room for the largest
                    // frame's handling (a subscribe, a post to Kafka).
                    Ok(frame) => Box::pin(self.handle(frame)).await,
                    Err(e) => bad_frame(e.to_string()),
                },
                Incoming::Binary(_) => bad_frame("frames are JSON text".to_owned()),
                Incoming::Closed => return (1000, "bye"),
                Incoming::OverBudget => {
                    let _ = self.queue.try_send(Out::Frame(error_frame(
                        ErrorCode::RateLimited,
                        "too many frames; closing",
                    )));
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
                Reply::Error(Refused(code, message)) => error_frame(code, &message),
            };
            if self.queue.send(Out::Frame(frame)).await.is_err() {
                return (1000, "bye");
            }
        }
    }

    async fn handle(&mut self, frame: ClientFrame) -> Reply {
        match frame {
            ClientFrame::Ping { nonce } => Reply::Frame(ServerFrame::Pong { nonce }.encode()),
            ClientFrame::Subscribe {
                view,
                id,
                participant,
                since,
                window,
            } => {
                let window = match window.map(WindowSpec::window).transpose() {
                    Ok(w) => w,
                    Err(refused) => return Reply::Error(refused),
                };
                let key = Key {
                    view,
                    id,
                    participant,
                    window,
                };
                self.subscribe(key, since).await
            }
            ClientFrame::Unsubscribe {
                view,
                id,
                participant,
            } => {
                let key = Key {
                    view,
                    id,
                    participant,
                    window: None,
                };
                match self.subs.remove(&key) {
                    Some(task) => {
                        // Nothing of it may follow the `unsubscribed` frame.
                        task.abort();
                        let _ = task.await;
                        if view == ViewKind::Room {
                            self.offline(&key.id).await;
                        }
                        Reply::Frame(
                            ServerFrame::Unsubscribed {
                                view,
                                id: &key.id,
                                participant: key.participant.as_deref(),
                            }
                            .encode(),
                        )
                    }
                    None => Reply::Error(Refused(
                        ErrorCode::NotSubscribed,
                        format!("no subscription to {} {:?}", view.name(), key.id),
                    )),
                }
            }
            ClientFrame::Join { room } => {
                self.room_action(RoomOp::Join, room, RoomArgs::default())
                    .await
            }
            ClientFrame::Leave { room } => {
                self.room_action(RoomOp::Leave, room, RoomArgs::default())
                    .await
            }
            ClientFrame::Post {
                room,
                text,
                client_msg_id,
            } => {
                let args = RoomArgs {
                    text: Some(text),
                    client_msg_id,
                    seq: None,
                };
                self.room_action(RoomOp::Post, room, args).await
            }
            ClientFrame::Read { room, seq } => {
                let args = RoomArgs {
                    seq: Some(seq),
                    ..RoomArgs::default()
                };
                self.room_action(RoomOp::Read, room, args).await
            }
        }
    }

    async fn subscribe(&mut self, key: Key, since: Option<u64>) -> Reply {
        if (key.view == ViewKind::Participant) != key.participant.is_some() {
            return bad_frame(
                "`participant` is given with view \"participant\", and only then".to_owned(),
            );
        }
        if key.window.is_some() && key.view != ViewKind::Race {
            return bad_frame("`window` is given with view \"race\", and only then".to_owned());
        }
        // A race's window and the race as a whole share one slot: a new
        // window moves it, whatever it was (once the new one is granted).
        let slot = key.slot();
        let moves = key.window.is_some() && self.subs.contains_key(&slot);
        if !moves && self.subs.get(&slot).is_some_and(|t| !t.is_finished()) {
            return Reply::Error(Refused(
                ErrorCode::AlreadySubscribed,
                format!("already subscribed to {} {:?}", key.view.name(), key.id),
            ));
        }
        self.subs.retain(|_, t| !t.is_finished());
        if !moves && self.subs.len() >= self.shared.limits.max_subscriptions {
            return Reply::Error(Refused(
                ErrorCode::TooManySubscriptions,
                format!(
                    "at most {} subscriptions per connection",
                    self.shared.limits.max_subscriptions
                ),
            ));
        }
        let Some(live) = self.shared.views.live(key.view) else {
            return Reply::Error(Refused(
                ErrorCode::BadFrame,
                format!("no view {:?} here", key.view.name()),
            ));
        };
        // A client that missed more than the view holds: the older changes
        // are read back from its changelog first, a few reads at a time
        // per edge (past that, and if the read fails, a snapshot).
        let mut older = None;
        if let Some(since) = since
            && let Some(read) = live.history(&key, since, self.shared.chat.kafka())
            && let Ok(_reading) = HISTORY_READS.try_acquire()
            && let Ok(Some((frames, reached))) = tokio::task::spawn_blocking(read).await
        {
            older = Some((since, frames, reached));
        }
        let resume_at = older
            .as_ref()
            .map_or(since, |(_, _, reached)| Some(*reached));
        let mut s = match live.subscribe(&key, self.user.as_deref(), resume_at) {
            Ok(s) => s,
            Err(refused) => return Reply::Error(refused),
        };
        // Resumed where the read ended: one `resumed` frame from the
        // client's own `since`, the deltas read back, then those held.
        if let (First::Resumed(frames), Some((since, old, _))) = (&mut s.first, older)
            && !frames.is_empty()
        {
            frames[0] = ServerFrame::Resumed {
                view: key.view,
                id: &key.id,
                since,
                seq: s.seq,
            }
            .encode();
            frames.splice(1..1, old);
        }
        if let Some(old) = self.subs.remove(&slot) {
            // The window moved: nothing of the old one may follow the new
            // one's snapshot, so wait until its forwarder is gone.
            old.abort();
            let _ = old.await;
        }
        if key.view == ViewKind::Room {
            self.online(&key.id).await;
        }
        let (frames, kind) = s.first.into_frames();
        let m = observability::metrics();
        for f in frames {
            if self.queue.send(Out::Frame(f)).await.is_err() {
                return Reply::None;
            }
            m.edge_frames.with_label_values(&[kind]).inc();
        }
        let Some(changes) = s.changes else {
            return Reply::None; // the view will not change again
        };
        let sub = Sub {
            live,
            key: key.clone(),
            user: self.user.clone(),
            version: s.version,
            seq: s.seq,
        };
        let task = tokio::spawn(forward(sub, changes, self.queue.clone()).in_current_span());
        self.subs.insert(slot, task);
        Reply::None
    }

    /// The user counts as online in `room` on this connection. Going online
    /// writes an event, which takes from the user's budget; with none left
    /// the user still reads the room, but this connection does not count
    /// them online.
    async fn online(&mut self, room: &str) {
        if let Some(user) = &self.user
            && !self.online.contains(room)
            && self.room_budget(user)
            && self.online.insert(room.to_owned())
        {
            let event = self.shared.chat.presence().connect(room, user);
            let _ = self.shared.chat.send(&event).await;
        }
    }

    /// The user leaves `room`'s online count, if this connection was in it.
    async fn offline(&mut self, room: &str) {
        if let Some(user) = &self.user
            && self.online.remove(room)
        {
            let event = self.shared.chat.presence().disconnect(room, user);
            let _ = self.shared.chat.send(&event).await;
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

    /// A join, leave, post or read marker: acknowledged once the broker has
    /// it. A refused event never reaches Kafka.
    async fn room_action(&mut self, op: RoomOp, room: Option<String>, args: RoomArgs) -> Reply {
        let RoomArgs {
            text,
            client_msg_id,
            seq,
        } = args;
        let Some(room) = room.or_else(|| self.room.clone()) else {
            return bad_frame(format!("{} needs a `room`", op.name()));
        };
        let Some(user) = self.user.clone() else {
            return Reply::Error(Refused(
                ErrorCode::Unauthorized,
                AuthError::Missing.to_string(),
            ));
        };
        let rooms = self.shared.views.get::<crate::views::rooms::Rooms>();
        // A room that does not exist here, or is invite-only and the user
        // is neither invited nor a member: the same answer for both (and a
        // direct conversation not theirs is forbidden, existing or not).
        if !rooms.may_join(&room, &user) {
            return Reply::Error(crate::views::rooms::unseen(&room));
        }
        let member_only = matches!(op, RoomOp::Post | RoomOp::Read);
        if member_only && !(self.joined.contains(&room) || rooms.is_member(&room, &user)) {
            return Reply::Error(Refused(
                ErrorCode::NotMember,
                format!("{user} is not a member of {room:?}; join first"),
            ));
        }
        // Every event that reaches Kafka takes from the user's budget.
        if !self.room_budget(&user) {
            return too_many_room_events();
        }
        let event = match op {
            RoomOp::Join => EdgeInput::event(&room, &user, ChatKind::Join),
            RoomOp::Leave => EdgeInput::event(&room, &user, ChatKind::Leave),
            RoomOp::Post => schemas::ChatEvent {
                text,
                client_msg_id: client_msg_id.clone(),
                ..EdgeInput::event(&room, &user, ChatKind::Message)
            },
            RoomOp::Read => schemas::ChatEvent {
                seq,
                ..EdgeInput::event(&room, &user, ChatKind::Read)
            },
        };
        // Each frame that writes is a span (a trace of its own), whose
        // context goes with the event into Kafka.
        let span = tracing::info_span!(
            "ws.frame",
            otel.name = %format_args!("ws {:?}", event.kind),
            otel.kind = "server",
            pace.room = %room,
        );
        match self.shared.chat.send(&event).instrument(span).await {
            Ok(()) => {
                // The join is in the room's partition before any later post,
                // so the job has it first: this connection may post now.
                match op {
                    RoomOp::Join => {
                        self.joined.insert(room.clone());
                    }
                    RoomOp::Leave => {
                        self.joined.remove(&room);
                    }
                    RoomOp::Post | RoomOp::Read => {}
                }
                Reply::Frame(
                    ServerFrame::Ack {
                        op,
                        room: &room,
                        client_msg_id: client_msg_id.as_deref(),
                    }
                    .encode(),
                )
            }
            Err(SendError::Invalid(m)) => Reply::Error(Refused(ErrorCode::Invalid, m)),
            Err(SendError::Unavailable(m)) => Reply::Error(Refused(ErrorCode::Unavailable, m)),
        }
    }
}

/// What a room action carries besides the room.
#[derive(Default)]
struct RoomArgs {
    /// A post's text.
    text: Option<String>,
    /// A post's client id.
    client_msg_id: Option<String>,
    /// A read marker's seq.
    seq: Option<u64>,
}

fn too_many_room_events() -> Reply {
    Reply::Error(Refused(
        ErrorCode::RateLimited,
        "too many posts, joins or room connections; slow down".to_owned(),
    ))
}

fn bad_frame(message: String) -> Reply {
    Reply::Error(Refused(ErrorCode::BadFrame, message))
}
