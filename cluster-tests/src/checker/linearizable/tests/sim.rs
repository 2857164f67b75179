//! A sequential semaphore server driven by random clients, recording a history whose
//! operations overlap in real time but always keep a valid linearization: each operation
//! takes effect at one instant `p` (strictly increasing), and its window is drawn around `p`
//! without overlapping its client's previous operation. Answers are lost at random, after
//! the effect or instead of it. Sessions expire one TTL after their last renewal's effect.

use std::collections::{BTreeMap, HashMap};

use crate::history::{Answer, Call, History, Millis, Op};
use crate::rng::Rng;

pub struct SimOptions {
    pub clients: u64,
    pub ops: usize,
    pub seats: u32,
    /// Percent of answers lost.
    pub unknown_percent: u64,
    pub ttl: Millis,
}

#[derive(Default)]
struct Client {
    free_at: Millis,
    session: Option<String>,
    held: Vec<u64>,
    released: Vec<u64>,
    /// A checkout's answer was lost: close the session next, as the workload does.
    must_close: bool,
}

#[derive(Default)]
struct Server {
    /// handle -> (session, seats)
    held: BTreeMap<u64, (String, u32)>,
    /// session -> deadline (alive sessions only)
    sessions: HashMap<String, Millis>,
    next_handle: u64,
    seats: u32,
    ttl: Millis,
}

impl Server {
    fn used(&self) -> u32 {
        self.held.values().map(|(_, n)| n).sum()
    }
    fn end(&mut self, session: &str) {
        self.sessions.remove(session);
        self.held.retain(|_, (s, _)| s != session);
    }
    fn expire(&mut self, now: Millis) {
        let gone: Vec<String> =
            self.sessions.iter().filter(|(_, d)| **d < now).map(|(s, _)| s.clone()).collect();
        gone.iter().for_each(|s| self.end(s));
    }
    fn alive(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }
}

/// A history of `options.ops` operations from seed `seed`, on feature `f`.
pub fn simulate(seed: u64, options: &SimOptions) -> History {
    let mut rng = Rng::new(seed);
    let mut server = Server { seats: options.seats, ttl: options.ttl, ..Server::default() };
    let mut clients: Vec<Client> = (0..options.clients).map(|_| Client::default()).collect();
    let mut ops = Vec::new();
    let (mut p, mut opened) = (0, 0);
    while ops.len() < options.ops {
        p += rng.range(1, 15);
        server.expire(p);
        let c = rng.range(0, options.clients) as usize;
        if clients[c].free_at > p {
            continue;
        }
        let invoked = rng.range(clients[c].free_at.max(p.saturating_sub(40)), p + 1);
        let completed = p + rng.range(0, 40);
        let lost = rng.chance(options.unknown_percent);
        let applies = !lost || rng.chance(50);
        let client = &mut clients[c];
        let Some(session) = client.session.clone() else {
            opened += 1;
            let id = format!("s{opened}");
            server.sessions.insert(id.clone(), p + options.ttl);
            client.session = Some(id.clone());
            let (call, answer) = (
                Call::OpenSession { ttl_ms: options.ttl },
                Answer::Opened { session: id.clone(), ttl_ms: options.ttl },
            );
            client.free_at = completed + 1;
            ops.push(Op { client: c as u64, session: Some(id), call, invoked, completed, answer });
            continue;
        };
        let (call, answer) = act(&mut rng, &mut server, client, &session, (applies, p));
        if let (true, Answer::Granted { handle, .. }) = (lost, &answer) {
            // The client never learns a handle whose answer was lost.
            client.held.retain(|h| h != handle);
        }
        let answer = if lost { Answer::Unknown("lost".into()) } else { answer };
        if lost && matches!(call, Call::Checkout { .. }) {
            client.must_close = true;
        }
        let completed = if call == Call::Abandon { invoked } else { completed };
        client.free_at = completed + 1;
        ops.push(Op { client: c as u64, session: Some(session), call, invoked, completed, answer });
    }
    History { ops, pools: BTreeMap::from([("f".to_owned(), options.seats)]), ..History::default() }
}

/// One request of `client` in `session`, applied to `server` when `applies`.
fn act(
    rng: &mut Rng,
    server: &mut Server,
    client: &mut Client,
    session: &str,
    (applies, now): (bool, Millis),
) -> (Call, Answer) {
    let gone = || Answer::NotFound("session gone".into());
    let roll = if client.must_close { 90 } else { rng.range(0, 100) };
    match roll {
        0..35 => {
            let count = if rng.chance(20) { 2 } else { 1 };
            let call = Call::Checkout { feature: "f".into(), count, wait: false };
            if !server.alive(session) {
                client.session = None;
                return (call, gone());
            }
            // Denied when full; a lost answer that did not apply is recorded as unknown.
            if server.used() + count > server.seats || !applies {
                return (call, Answer::Denied);
            }
            server.next_handle += 1;
            let handle = server.next_handle;
            server.held.insert(handle, (session.to_owned(), count));
            client.held.push(handle);
            (call, Answer::Granted { handle, count })
        }
        35..62 => {
            let released = rng.chance(8) && !client.released.is_empty();
            let handle = if released {
                rng.pick(&client.released)
            } else if let Some(handle) = client.held.pop() {
                client.released.push(handle);
                handle
            } else {
                return heartbeat(server, client, session, applies, now);
            };
            let held = server.held.contains_key(&handle);
            if held && applies {
                server.held.remove(&handle);
            }
            let answer =
                if held { Answer::Done } else { Answer::NotFound("no such handle".into()) };
            (Call::Checkin { handle }, answer)
        }
        62..85 => heartbeat(server, client, session, applies, now),
        85..95 => {
            let alive = server.alive(session);
            if applies {
                server.end(session);
            }
            client.session = None;
            client.must_close = false;
            client.held.clear();
            (Call::CloseSession, if alive { Answer::Done } else { gone() })
        }
        _ => {
            client.session = None;
            client.held.clear();
            (Call::Abandon, Answer::Done)
        }
    }
}

fn heartbeat(
    server: &mut Server,
    client: &mut Client,
    session: &str,
    applies: bool,
    now: Millis,
) -> (Call, Answer) {
    let ttl = server.ttl;
    match server.sessions.get_mut(session) {
        Some(deadline) => {
            if applies {
                *deadline = now + ttl;
            }
            (Call::Heartbeat, Answer::Done)
        }
        None => {
            client.session = None;
            client.held.clear();
            (Call::Heartbeat, Answer::NotFound("session gone".into()))
        }
    }
}
