//! The client library against the real client services over an in-process node
//! (`qlm_server::testkit`) on a real port: what an application linking `qlm_client` sees when
//! it checks out, is denied, fails over, retries, drops a guard, waits in a queue and
//! heartbeats.

use std::time::Duration;

use qlm_client::{
    CheckoutOptions, Client, ClientError, RemoveTarget, ServerAddr, Session, SessionOptions,
    parse_servers,
};
use qlm_proto::v1;
use qlm_server::testkit::{ADMIN_TOKEN, InProcessNode, closed_port, serve};

fn client_of(servers: &str) -> Client {
    Client::connect(parse_servers(servers).unwrap()).unwrap()
}

fn user(name: &str) -> SessionOptions {
    SessionOptions {
        user: name.into(),
        host: "ws1".into(),
        pid: 4242,
        display: ":0".into(),
        ttl: None,
    }
}

async fn session(client: &Client, name: &str) -> Session {
    client.open_session(user(name)).await.unwrap()
}

/// Polls `condition` for up to two seconds.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

#[tokio::test]
async fn a_checkout_is_granted_and_checked_in() {
    let node = serve(InProcessNode::with_seats("vhdl", 25)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;

    let seat = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap();
    assert_eq!((seat.granted().feature.as_str(), seat.granted().count), ("vhdl", 1));
    assert_eq!(node.node.held(), [seat.handle()]);
    let listed = client.checkouts(false).await.unwrap();
    assert_eq!(listed.checkouts[0].user, "ann");

    seat.checkin().await.unwrap();
    assert!(node.node.held().is_empty());
    assert!(ann.close().await.unwrap().is_empty());
    assert_eq!(node.node.live_sessions(), 0);
    assert_eq!(
        client.leader(),
        Some(ServerAddr { host: "127.0.0.1".into(), port: node.addr.port() })
    );
}

#[tokio::test]
async fn the_twenty_sixth_of_twenty_five_seats_is_denied_with_the_holders() {
    let node = serve(InProcessNode::with_seats("vhdl", 25)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    let mut seats = Vec::new();
    for _ in 0..25 {
        seats.push(ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap());
    }
    let bob = session(&client, "bob").await;

    let denied = bob.checkout("vhdl", CheckoutOptions::default()).await.unwrap_err();
    let ClientError::Denied { reason, message, holders } = denied else { panic!("{denied:?}") };
    assert_eq!(reason, v1::DenialReason::AllInUse);
    assert!(message.contains("vhdl"), "{message}");
    assert!(!holders.is_empty() && holders.iter().all(|h| h.user == "ann"));
    assert_eq!(node.node.held().len(), 25);
}

#[tokio::test]
async fn a_call_fails_over_from_a_dead_server_to_a_live_one() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&format!("127.0.0.1:{},{}", closed_port(), node.servers()));

    let ann = session(&client, "ann").await;
    let seat = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap();
    assert_eq!(node.node.held(), [seat.handle()]);
}

#[tokio::test]
async fn no_live_server_is_unreachable_naming_every_server_tried() {
    let (a, b) = (closed_port(), closed_port());
    let client = client_of(&format!("127.0.0.1:{a},127.0.0.1:{b}"));
    let error = client.features(true).await.unwrap_err();
    let ClientError::Unreachable { tried, .. } = &error else { panic!("{error:?}") };
    assert!(tried.contains(&format!("127.0.0.1:{a}")) && tried.contains(&format!("127.0.0.1:{b}")));
    assert!(error.is_unreachable());
}

#[tokio::test]
async fn a_checkout_whose_answer_was_lost_is_retried_and_granted_once() {
    let node = serve(InProcessNode::with_seats("vhdl", 5)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    node.node.lose_checkout_answers(1);

    let seat = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap();
    assert_eq!(node.node.checkout_proposals(), 2, "one retry");
    assert_eq!(node.node.held(), [seat.handle()], "one grant");
}

#[tokio::test]
async fn dropping_the_guard_checks_the_seat_in() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    {
        let _seat = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap();
        assert_eq!(node.node.held().len(), 1);
    }
    assert!(eventually(|| node.node.held().is_empty()).await);
    let again = ann.checkout("vhdl", CheckoutOptions::default()).await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn dropping_the_session_closes_it() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let seat = {
        let ann = session(&client, "ann").await;
        ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap().keep()
    };
    assert!(eventually(|| node.node.live_sessions() == 0).await);
    assert!(!node.node.held().contains(&seat.handle));
}

#[tokio::test]
async fn the_session_heartbeats_at_the_interval_the_server_gives() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let ann =
        client.open_session(user("ann").with_ttl(Duration::from_millis(1_200))).await.unwrap();
    assert_eq!(ann.heartbeat_interval(), Duration::from_millis(400));

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let sent = node.node.heartbeats();
    assert!((2..=4).contains(&sent), "{sent} heartbeats in 1.3 s at 400 ms");
    assert_eq!(ann.heartbeats_sent(), sent);
    ann.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node.node.heartbeats(), sent, "no heartbeat after close");
}

#[tokio::test]
async fn a_waiting_checkout_is_granted_when_the_seat_comes_back() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    let bob = session(&client, "bob").await;
    let held = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap();

    let waiting = tokio::spawn(async move {
        let options = CheckoutOptions { wait: true, ..Default::default() };
        let seat = bob.checkout("vhdl", options).await;
        (bob, seat)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    held.checkin().await.unwrap();

    let (_bob, seat) =
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    let seat = seat.unwrap();
    assert_eq!(node.node.held(), [seat.handle()]);
}

#[tokio::test]
async fn admin_calls_send_the_token_and_remove_releases_a_checkout() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    let seat = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap().keep();

    let without = client.remove(RemoveTarget::Handle(seat.handle)).await.unwrap_err();
    assert!(matches!(without, ClientError::AdminToken(_)), "{without:?}");
    let wrong = client.with_admin_token("guess").remove(RemoveTarget::Handle(seat.handle)).await;
    assert!(
        matches!(wrong, Err(ClientError::Rejected { code: tonic::Code::Unauthenticated, .. })),
        "{wrong:?}"
    );
    let admin = client.with_admin_token(ADMIN_TOKEN);
    let target = RemoveTarget::Holder { user: "ann".into(), host: None, feature: None };
    assert_eq!(admin.remove(target).await.unwrap(), [seat.handle]);
    assert!(node.node.held().is_empty());
    assert!(admin.reload().await.unwrap().applied);
}

#[tokio::test]
async fn a_bad_version_is_an_invalid_argument() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    let options = CheckoutOptions { version: Some("four".into()), ..Default::default() };
    let error = ann.checkout("vhdl", options).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::InvalidArgument(m) if m.contains("version")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_wait_given_up_leaves_the_queue() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    let bob = session(&client, "bob").await;
    let held = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap();

    // Bob waits, then gives up: his application wraps the checkout in a timeout.
    let options = CheckoutOptions { wait: true, ..Default::default() };
    let gave_up =
        tokio::time::timeout(Duration::from_millis(300), bob.checkout("vhdl", options)).await;
    assert!(gave_up.is_err(), "the seat is taken: the wait cannot end by itself");

    // The seat that comes back goes to the next one who asks, not to Bob's abandoned wait.
    held.checkin().await.unwrap();
    let carl = session(&client, "carl").await;
    let mut seat = None;
    for _ in 0..50 {
        match carl.checkout("vhdl", CheckoutOptions::default()).await {
            Ok(granted) => {
                seat = Some(granted);
                break;
            }
            Err(ClientError::Denied { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(other) => panic!("{other:?}"),
        }
    }
    let seat = seat.expect("the seat Ann gave back, within a second");
    assert_eq!(node.node.held(), [seat.handle()], "Bob holds nothing");
    drop(bob);
}

#[tokio::test]
async fn a_checkout_given_up_before_its_answer_gives_back_what_it_was_granted() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers());
    let ann = session(&client, "ann").await;
    // The server grants the seat, then holds its answer back; Ann's application gives up first.
    node.node.delay_next_checkout_answer(Duration::from_millis(1_000));
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), ann.checkout("vhdl", Default::default()))
            .await;
    assert!(gave_up.is_err(), "the answer is held back: the checkout cannot end by itself");
    assert_eq!(node.node.held().len(), 1, "the cluster did grant it");
    // The library asks again under the same request id and checks the grant in.
    assert!(eventually(|| node.node.held().is_empty()).await, "the seat comes back");
    assert_eq!(node.node.checkout_proposals(), 2, "one follow-up");
    let bob = session(&client, "bob").await;
    let seat = bob.checkout("vhdl", CheckoutOptions::default()).await.unwrap();
    assert_eq!(node.node.held(), [seat.handle()]);
}

#[tokio::test]
async fn a_checkout_that_failed_unreachable_gives_back_what_it_was_granted() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let client = client_of(&node.servers()).with_failover_budget(Duration::from_millis(300));
    let ann = session(&client, "ann").await;
    // Every answer is lost while the call tries: the application is told "unreachable", though
    // the cluster granted the seat at the first attempt.
    node.node.lose_checkout_answers(1_000);
    let error = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap_err();
    assert!(error.is_unreachable(), "{error:?}");
    assert_eq!(node.node.held().len(), 1, "the cluster did grant it");
    // The cluster answers again: the library learns the grant and gives the seat back.
    node.node.lose_checkout_answers(0);
    assert!(eventually(|| node.node.held().is_empty()).await, "the seat comes back");
    let seat = ann.checkout("vhdl", CheckoutOptions::default()).await.unwrap();
    assert_eq!(node.node.held(), [seat.handle()], "one seat, handed to the application");
}
