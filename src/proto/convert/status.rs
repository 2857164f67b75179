//! StatusService: engine views into wire messages.
//!
//! The functions that take the [`Engine`] read one replica as it is; whether that replica
//! is fresh enough (a linearizable read, or `stale`) is the caller's business. The Cluster
//! rpc reads Raft, not the engine, and is built where Raft is.

use crate::v1;
use qlm_engine::{CheckoutView, Engine, FeatureView, PoolView, QueuedView, ReservationView};
use qlm_license::{DupGroup, SeatUnit, Timestamp};

/// Features' status, by name: every feature when `only` is empty, else that one (or none
/// when the engine does not know it). The leader hint is the caller's to fill in.
pub fn features_response(engine: &Engine, only: &str) -> v1::FeaturesResponse {
    let views = if only.is_empty() {
        engine.features()
    } else {
        engine.feature(only).into_iter().collect()
    };
    v1::FeaturesResponse {
        features: views.into_iter().map(|view| feature_status(engine, view)).collect(),
        now_unix_ms: engine.now().0,
        leader: None,
    }
}

/// One feature's status, with its queue and reservations read from the engine.
pub fn feature_status(engine: &Engine, view: FeatureView) -> v1::FeatureStatus {
    let now = engine.now();
    v1::FeatureStatus {
        queue: engine.queued_requests(&view.name).into_iter().map(queue_entry).collect(),
        reservations: engine.reservations(&view.name).into_iter().map(reservation_status).collect(),
        pools: view.pools.into_iter().map(|pool| pool_status(pool, now)).collect(),
        seats_serving: view.seats_serving,
        seats_in_use: view.seats_in_use,
        queued: view.queued,
        name: view.name,
    }
}

/// One pool with its use; `now` (the engine's time) decides whether it serves.
pub fn pool_status(view: PoolView, now: Timestamp) -> v1::PoolStatus {
    let pool = view.pool;
    let serving = view.current && pool.is_started(now) && !pool.is_expired(now);
    v1::PoolStatus {
        id: pool.id.0,
        feature: pool.feature,
        vendor: pool.vendor,
        version: pool.version.to_string(),
        seats: pool.seats,
        unit: seat_unit(pool.unit).into(),
        start: pool.start.map(|date| date.to_string()).unwrap_or_default(),
        expires: pool.expires.to_string(),
        hostid: pool.hostid.to_string(),
        dup_group: dup_group(pool.dup_group).into(),
        customer: pool.customer.unwrap_or_default(),
        max_borrow_hours: pool.max_borrow_hours,
        in_use: view.in_use,
        lingering: view.lingering,
        current: view.current,
        serving,
    }
}

/// One queued request.
pub fn queue_entry(view: QueuedView) -> v1::QueueEntry {
    v1::QueueEntry {
        position: view.position,
        handle: view.handle.0,
        session_id: view.session_id.to_string(),
        user: view.user.to_string(),
        host: view.host.to_string(),
        display: view.display.to_string(),
        count: view.count,
        version: view.version.to_string(),
        since_unix_ms: view.since.0,
    }
}

/// One RESERVE rule and its use.
pub fn reservation_status(view: ReservationView) -> v1::ReservationStatus {
    v1::ReservationStatus {
        who_kind: view.who.kind.as_str().to_owned(),
        who_name: view.who.name,
        seats: view.seats,
        held: view.held,
    }
}

/// The checkouts a Checkouts request selects (empty filters select all), by handle.
pub fn checkouts_response(
    engine: &Engine,
    request: &v1::CheckoutsRequest,
) -> v1::CheckoutsResponse {
    let selected = |c: &CheckoutView| {
        (request.feature.is_empty() || *c.feature == *request.feature)
            && (request.user.is_empty() || *c.user == *request.user)
            && (request.session_id.is_empty() || *c.session_id == *request.session_id)
    };
    v1::CheckoutsResponse {
        checkouts: engine.checkouts().into_iter().filter(selected).map(checkout_status).collect(),
        now_unix_ms: engine.now().0,
        leader: None,
    }
}

/// One checkout with its holder.
pub fn checkout_status(view: CheckoutView) -> v1::CheckoutStatus {
    v1::CheckoutStatus {
        handle: view.handle.0,
        feature: view.feature.to_string(),
        version: view.version.to_string(),
        count: view.count,
        user: view.user.to_string(),
        host: view.host.to_string(),
        display: view.display.to_string(),
        session_id: view.session_id.to_string(),
        since_unix_ms: view.since.0,
        borrow_until_unix_ms: view.borrow_until.map(|t| t.0),
        shared: view.shared,
        seats: view.seats,
    }
}

fn seat_unit(unit: SeatUnit) -> v1::SeatUnit {
    match unit {
        SeatUnit::Seats => v1::SeatUnit::Seats,
        SeatUnit::Tokens => v1::SeatUnit::Tokens,
        // Servers refuse node-locked lines when they load them, so no pool served is one.
        SeatUnit::Uncounted => v1::SeatUnit::Unspecified,
    }
}

fn dup_group(group: DupGroup) -> v1::DupGroup {
    match group {
        DupGroup::None => v1::DupGroup::None,
        DupGroup::User => v1::DupGroup::User,
        DupGroup::Host => v1::DupGroup::Host,
        DupGroup::UserHost => v1::DupGroup::UserHost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qlm_engine::{Command, Outcome};
    use qlm_license::{Date, Expiry, HostId, Policy, Pool, PoolId, SeatRule, Who, WhoKind};

    const T0: Timestamp = Timestamp(1_800_000_000_000);

    fn pool(feature: &str, seats: u32) -> Pool {
        Pool {
            id: PoolId(format!("{feature}-id")),
            feature: feature.into(),
            vendor: "sigasi".into(),
            version: "4.0".parse().unwrap(),
            seats,
            unit: SeatUnit::Seats,
            start: None,
            expires: Expiry::Permanent,
            issued: None,
            hostid: HostId::Any,
            dup_group: DupGroup::None,
            customer: Some("ACME Corp".into()),
            notes: None,
            max_borrow_hours: 0,
        }
    }

    /// An engine with one seat of `vhdl` held by ann, bob waiting for it, and a RESERVE.
    fn busy_engine() -> Engine {
        let mut engine = Engine::new();
        let policy = Policy {
            reserves: vec![SeatRule {
                seats: 1,
                feature: "vhdl".into(),
                who: Who { kind: WhoKind::User, name: "ann".into() },
                line: 1,
            }],
            ..Policy::default()
        };
        let sim = Pool { unit: SeatUnit::Tokens, ..pool("sim", 100) };
        engine.apply(Command::LoadLicenses { pools: vec![pool("vhdl", 1), sim], policy }, T0);
        for (id, user) in [("s-ann", "ann"), ("s-bob", "bob")] {
            let open = Command::OpenSession {
                session_id: id.into(),
                secret: "s3cret".into(),
                user: user.into(),
                host: "ws1".into(),
                pid: 1,
                display: String::new(),
                ttl_ms: 60_000,
            };
            engine.apply(open, T0);
        }
        for (id, wait) in [("s-ann", false), ("s-bob", true)] {
            let checkout = Command::Checkout {
                session_id: id.into(),
                request_id: "r1".into(),
                feature: "vhdl".into(),
                version: "4.0".parse().unwrap(),
                count: 1,
                wait,
                borrow_until: None,
            };
            let outcome = engine.apply(checkout, T0).outcome;
            assert!(matches!(outcome, Outcome::Granted(_) | Outcome::Queued { .. }), "{outcome:?}");
        }
        engine
    }

    #[test]
    fn features_show_pools_seats_queue_and_reservations() {
        let engine = busy_engine();
        let response = features_response(&engine, "");
        assert_eq!(response.now_unix_ms, T0.0);
        let names: Vec<&str> = response.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["sim", "vhdl"]);
        let vhdl = &response.features[1];
        assert_eq!((vhdl.seats_serving, vhdl.seats_in_use, vhdl.queued), (1, 1, 1));
        assert_eq!(vhdl.pools.len(), 1);
        let p = &vhdl.pools[0];
        assert_eq!(
            (p.id.as_str(), p.version.as_str(), p.seats, p.in_use),
            ("vhdl-id", "4.0", 1, 1)
        );
        assert_eq!(
            (p.start.as_str(), p.expires.as_str(), p.hostid.as_str()),
            ("", "permanent", "ANY")
        );
        assert_eq!((p.customer.as_str(), p.current, p.serving), ("ACME Corp", true, true));
        assert_eq!(p.unit, v1::SeatUnit::Seats as i32);
        assert_eq!(p.dup_group, v1::DupGroup::None as i32);
        assert_eq!(vhdl.queue.len(), 1);
        let q = &vhdl.queue[0];
        assert_eq!(
            (q.position, q.user.as_str(), q.count, q.version.as_str()),
            (1, "bob", 1, "4.0")
        );
        let r = &vhdl.reservations[0];
        assert_eq!(
            (r.who_kind.as_str(), r.who_name.as_str(), r.seats, r.held),
            ("USER", "ann", 1, 1)
        );
        assert_eq!(response.features[0].pools[0].unit, v1::SeatUnit::Tokens as i32);
    }

    #[test]
    fn features_of_one_name_or_of_an_unknown_one() {
        let engine = busy_engine();
        let only = features_response(&engine, "sim");
        assert_eq!(only.features.len(), 1);
        assert_eq!(only.features[0].name, "sim");
        assert!(features_response(&engine, "nope").features.is_empty());
    }

    #[test]
    fn a_pool_that_has_not_started_or_has_expired_does_not_serve() {
        let start = Date::new(2030, 1, 1).unwrap();
        let later = Pool { start: Some(start), ..pool("vhdl", 1) };
        let view = PoolView { pool: later, in_use: 0, lingering: 0, current: true };
        let status = pool_status(view.clone(), T0);
        assert_eq!((status.start.as_str(), status.serving), ("2030-01-01", false));
        assert!(pool_status(view.clone(), start.start_of_day()).serving);
        let end = Date::new(2030, 6, 30).unwrap();
        let view = PoolView { pool: Pool { expires: Expiry::On(end), ..view.pool }, ..view };
        assert_eq!(pool_status(view.clone(), end.end_of_day()).expires, "2030-06-30");
        assert!(!pool_status(view.clone(), end.end_of_day()).serving);
        let retired = PoolView { current: false, ..view };
        assert!(!pool_status(retired, start.start_of_day()).serving);
    }

    #[test]
    fn checkouts_list_holders_and_filter_by_feature_user_and_session() {
        let engine = busy_engine();
        let all = checkouts_response(&engine, &v1::CheckoutsRequest::default());
        assert_eq!(all.checkouts.len(), 1);
        let c = &all.checkouts[0];
        assert_eq!(
            (c.feature.as_str(), c.user.as_str(), c.session_id.as_str()),
            ("vhdl", "ann", "s-ann")
        );
        assert_eq!((c.count, c.seats, c.shared, c.since_unix_ms), (1, 1, false, T0.0));
        assert_eq!(c.borrow_until_unix_ms, None);
        let by = |feature: &str, user: &str, session_id: &str| {
            let request = v1::CheckoutsRequest {
                stale: false,
                feature: feature.into(),
                user: user.into(),
                session_id: session_id.into(),
            };
            checkouts_response(&engine, &request).checkouts.len()
        };
        assert_eq!(by("vhdl", "", ""), 1);
        assert_eq!(by("sim", "", ""), 0);
        assert_eq!(by("", "bob", ""), 0);
        assert_eq!(by("", "", "s-ann"), 1);
    }

    #[test]
    fn every_seat_unit_and_dup_group_has_its_wire_value() {
        assert_eq!(seat_unit(SeatUnit::Seats).as_str_name(), "SEAT_UNIT_SEATS");
        assert_eq!(seat_unit(SeatUnit::Tokens).as_str_name(), "SEAT_UNIT_TOKENS");
        for group in [DupGroup::None, DupGroup::User, DupGroup::Host, DupGroup::UserHost] {
            let wire = dup_group(group).as_str_name();
            assert_eq!(wire, format!("DUP_GROUP_{}", group.as_str().to_uppercase()));
        }
    }
}
