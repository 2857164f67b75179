//! The connection's unit tests: the failover order, the pauses, and calls whose attempts the
//! tests answer themselves (on tokio's paused clock).

use std::time::Duration;

use tonic::{Response, Status};

use super::failover::Backoff;
use super::*;
use qlm_proto::v1;

#[test]
fn a_leader_hint_goes_first_and_is_not_repeated() {
    let servers = parse_servers("a:1,b:2,c:3").unwrap();
    let client = Client::connect(servers).unwrap();
    client.note_leader(Some(&v1::LeaderHint { id: 2, client_addr: "b:2".into() }));
    let order: Vec<String> = client.order().iter().map(ToString::to_string).collect();
    assert_eq!(order, ["b:2", "a:1", "c:3"]);
    client.forget_leader(&ServerAddr { host: "b".into(), port: 2 });
    assert_eq!(client.leader(), None);
}

#[test]
fn a_hint_without_a_leader_changes_nothing() {
    let client = Client::connect(parse_servers("a:1").unwrap()).unwrap();
    client.note_leader(Some(&v1::LeaderHint { id: 0, client_addr: String::new() }));
    client.note_leader(Some(&v1::LeaderHint { id: 3, client_addr: "not a host".into() }));
    assert_eq!(client.leader(), None);
}

/// A client of three servers whose calls the tests answer themselves.
fn three_servers() -> Client {
    Client::connect(parse_servers("a:1,b:2,c:3").unwrap()).unwrap()
}

/// An answer with a leader hint, as every successful rpc carries.
fn answer(leader: &str) -> Result<Response<v1::FeaturesResponse>, Status> {
    let hint = v1::LeaderHint { id: 1, client_addr: leader.into() };
    Ok(Response::new(v1::FeaturesResponse { leader: Some(hint), ..Default::default() }))
}

/// UNAVAILABLE naming `leader` in the metadata, as a follower that knows the leader answers.
fn not_leader(leader: &str) -> Status {
    let mut status = Status::unavailable("not the leader");
    status.metadata_mut().insert(LEADER_ADDR_METADATA, leader.parse().unwrap());
    status
}

#[test]
fn the_pauses_start_small_and_double_up_to_the_cap_with_jitter() {
    let mut pauses = Backoff::new();
    let steps = [25, 50, 100, 200, 200, 200, 200, 200];
    let taken: Vec<Duration> = steps.iter().map(|_| pauses.pause()).collect();
    for (pause, step) in taken.iter().zip(steps) {
        let step = Duration::from_millis(step);
        assert!(*pause >= step / 2 && *pause <= step, "{pause:?} for a step of {step:?}");
    }
    assert!(taken[3..].windows(2).any(|w| w[0] != w[1]), "jitter: {taken:?}");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_no_server_answers_fails_over_until_its_budget_is_spent() {
    let client = three_servers();
    let started = tokio::time::Instant::now();
    let mut attempts = 0;
    let error = client
        .call_servers("Features", |_, _| {
            attempts += 1;
            async { answer_never() }
        })
        .await
        .unwrap_err();
    let spent = started.elapsed();
    let ClientError::Unreachable { tried, last } = &error else { panic!("{error:?}") };
    assert_eq!(tried, &["a:1", "b:2", "c:3"], "every server, each named once");
    assert!(last.contains("c:3") && last.contains(&format!("{attempts} attempts")), "{last}");
    assert!(spent <= FAILOVER_BUDGET, "no pass starts after the budget: {spent:?}");
    assert!(spent + RETRY_BACKOFF_MAX >= FAILOVER_BUDGET, "the budget is used: {spent:?}");
    assert_eq!(attempts % 3, 0, "whole passes");
    assert!(attempts >= 3 * 10, "many passes, not three: {attempts}");
}

fn answer_never() -> Result<Response<v1::FeaturesResponse>, Status> {
    Err(Status::unavailable("connection refused"))
}

#[tokio::test(start_paused = true)]
async fn a_call_rides_out_an_election_shorter_than_its_budget() {
    let client = three_servers();
    let started = tokio::time::Instant::now();
    let elected = Duration::from_millis(1_700);
    let answered = client
        .call_servers("Features", |server, _| {
            let up = started.elapsed() >= elected && server.port == 2;
            async move { if up { answer("b:2") } else { answer_never() } }
        })
        .await
        .unwrap();
    assert!(answered.leader.is_some());
    let late = started.elapsed() - elected;
    assert!(late <= RETRY_BACKOFF_MAX, "the next pass comes soon after: {late:?}");
    assert_eq!(client.leader().map(|l| l.to_string()).as_deref(), Some("b:2"));
}

#[tokio::test(start_paused = true)]
async fn a_refusal_that_is_an_answer_is_returned_at_once() {
    let client = three_servers();
    let mut attempts = 0;
    let error = client
        .call_servers("Features", |_, _| {
            attempts += 1;
            async { Err::<Response<v1::FeaturesResponse>, _>(Status::not_found("no session")) }
        })
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Rejected { code: tonic::Code::NotFound, .. }));
    assert_eq!(attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn the_leader_is_tried_first_and_a_hint_next() {
    let client = three_servers();
    client.note_leader(Some(&v1::LeaderHint { id: 3, client_addr: "c:3".into() }));
    let mut order = Vec::new();
    let answered = client
        .call_servers("Features", |server, _| {
            order.push(server.to_string());
            let reply = match server.port {
                3 => Err(Status::unavailable("connection refused")),
                1 => Err(not_leader("b:2")),
                _ => answer("b:2"),
            };
            async move { reply }
        })
        .await;
    assert!(answered.is_ok());
    assert_eq!(order, ["c:3", "a:1", "b:2"], "the known leader, the list, the hint");
    assert_eq!(client.leader().map(|l| l.to_string()).as_deref(), Some("b:2"));
}

#[tokio::test(start_paused = true)]
async fn two_nodes_that_name_each_other_end_the_pass() {
    let client = Client::connect(parse_servers("a:1,b:2").unwrap()).unwrap();
    let mut order = Vec::new();
    let error = client
        .with_failover_budget(Duration::ZERO)
        .call_servers("Features", |server, _| {
            order.push(server.to_string());
            let other = if server.port == 1 { "b:2" } else { "a:1" };
            let status = not_leader(other);
            async move { Err::<Response<v1::FeaturesResponse>, _>(status) }
        })
        .await
        .unwrap_err();
    assert!(error.is_unreachable());
    assert_eq!(order, ["a:1", "b:2"], "one pass, each server once");
}

#[test]
fn an_empty_list_is_refused() {
    assert!(matches!(Client::connect(Vec::new()), Err(ClientError::NoServers(_))));
}
