"""Scenarios against a real cluster, run by cluster-tests/tests/sdk_python.rs in a venv where
the wheel is installed: python scenarios.py <scenario> <host:port,...>

Each scenario asserts what a program sees and prints its progress, one line at a time, for the
Rust side: "HELD <handle>" when it holds a seat and waits for a line on stdin before going on
(the Rust side kills or pauses nodes meanwhile), and "OK" at the end. Any exception is a
traceback and a non-zero exit.
"""

import getpass
import socket
import sys
import threading
import time

import quorumlm


def say(*words):
    print(*words, flush=True)


def wait_for_go():
    line = sys.stdin.readline()
    assert line.strip() == "go", f"expected go, read {line!r}"


def grant_through_any_node(servers):
    for server in servers:
        with quorumlm.Client(servers=[server], ttl=10.0) as client:
            with client.checkout("vhdl-editor", version="4.0") as seat:
                assert seat.feature == "vhdl-editor", seat
                assert seat.version == "4.0", seat
                assert seat.count == 1, seat
                assert seat.handle > 0, seat
                assert not seat.node_locked, seat
                assert not seat.checked_in
                say("GRANTED", server, seat.handle)
            assert seat.checked_in
    say("OK")


def denial_with_reason_and_holders(servers):
    with quorumlm.Client(servers=servers) as holder, quorumlm.Client(servers=servers) as other:
        held = holder.checkout("synthesis")  # count=1 in the test license
        try:
            other.checkout("synthesis")
            raise AssertionError("a second seat of a one-seat feature was granted")
        except quorumlm.Denied as denied:
            assert denied.reason == "ALL_IN_USE", denied
            assert denied.message, denied
            assert len(denied.holders) == 1, denied.holders
            first = denied.holders[0]
            assert first.user == getpass.getuser(), first
            assert first.host == socket.gethostname(), first
            assert first.count == 1, first
            assert first.handle == held.handle, (first, held)
            say("DENIED", denied.reason, first.user, first.host, first.count)
        for feature, version, reason in (("no-such-feature", None, "NO_SUCH_FEATURE"),
                                         ("vhdl-editor", "9.0", "VERSION_TOO_HIGH")):
            try:
                other.checkout(feature, version=version)
                raise AssertionError(f"{feature} {version} was granted")
            except quorumlm.Denied as denied:
                assert denied.reason == reason, denied
                assert denied.holders == [], denied
        held.checkin()
        other.checkout("synthesis").checkin()
    say("OK")


def queued_wait_granted_when_a_seat_frees(servers):
    with quorumlm.Client(servers=servers) as holder, quorumlm.Client(servers=servers) as waiter:
        held = holder.checkout("synthesis")
        # Denied at once without wait; a short wait runs out.
        try:
            waiter.checkout("synthesis")
            raise AssertionError("granted while held")
        except quorumlm.Denied as denied:
            assert denied.reason == "ALL_IN_USE", denied
        started = time.monotonic()
        try:
            waiter.checkout("synthesis", wait=1.0)
            raise AssertionError("granted while held")
        except quorumlm.WaitTimeout:
            waited = time.monotonic() - started
            assert 0.9 <= waited < 5.0, waited
        # A long wait, granted when the holder checks in 1.5 s later; the GIL is released
        # while it waits, so this thread runs meanwhile.
        got = {}

        def wait():
            started = time.monotonic()
            got["seat"] = waiter.checkout("synthesis", wait=30.0)
            got["after"] = time.monotonic() - started

        thread = threading.Thread(target=wait)
        thread.start()
        ticks = 0
        release_at = time.monotonic() + 1.5
        while time.monotonic() < release_at:
            ticks += 1
            time.sleep(0.01)
        assert ticks > 10, f"the main thread ran {ticks} times while the other waited"
        assert thread.is_alive(), got
        held.checkin()
        thread.join(20)
        assert "seat" in got, "the queued wait was not granted"
        assert 1.0 < got["after"] < 15.0, got
        say("QUEUED-GRANTED", got["seat"].handle, round(got["after"], 2))
        got["seat"].checkin()
        # The timed-out request left the queue: the seat is free now.
        holder.checkout("synthesis").checkin()
    say("OK")


def leader_killed_while_held(servers):
    lost = []
    with quorumlm.Client(servers=servers, ttl=5.0) as client:
        client.on_lost(lost.append)
        seat = client.checkout("vhdl-editor")
        say("HELD", seat.handle)
        wait_for_go()  # meanwhile the leader is killed and a new one elected
        assert not client.lost, client.lost_reason
        second = client.checkout("vhdl-editor")
        say("GRANTED", second.handle)
        assert second.handle != seat.handle
        second.checkin()
        seat.checkin()
    assert lost == [], lost
    say("OK")


def retry_never_grants_twice(servers):
    with quorumlm.Client(servers=servers, ttl=30.0) as client:
        # Opens the session and learns the leader.
        client.checkout("simulator").checkin()
        say("READY")
        wait_for_go()  # the leader is paused: the next request times out there, then retries
        seat = client.checkout("vhdl-editor")
        say("HELD", seat.handle)
        wait_for_go()
        seat.checkin()
    say("OK")


def session_lost_then_renewed(servers):
    lost = []
    with quorumlm.Client(servers=servers, ttl=2.0) as client:
        client.on_lost(lost.append)
        seat = client.checkout("vhdl-editor")
        say("HELD", seat.handle)
        wait_for_go()  # meanwhile every node was paused for longer than the TTL
        assert client.lost, "no server answered for longer than the TTL, yet not lost"
        assert client.lost_reason == "unreachable", client.lost_reason
        try:
            client.checkout("vhdl-editor")
        except quorumlm.SessionLost as error:
            assert error.reason == "unreachable", error.reason
            say("SESSION-LOST", error.reason)
        else:
            raise AssertionError("a checkout in a lost session was granted")
        # Still lost until a checkout opens the next session.
        assert client.lost and client.lost_reason == "unreachable"
        again = client.checkout("vhdl-editor")
        assert not client.lost, client.lost_reason
        assert client.lost_reason is None
        assert again.handle != seat.handle
        say("RENEWED", again.handle)
        again.checkin()
        try:
            seat.checkin()  # the lost session's seat: it may be gone already
        except quorumlm.Error:
            pass
    assert lost == ["unreachable"], lost
    say("OK")


def holder_sigkilled(servers):
    client = quorumlm.Client(servers=servers, ttl=2.0)
    seat = client.checkout("synthesis")
    say("HELD", seat.handle)
    time.sleep(600)  # until SIGKILL


def grant_once(servers):
    with quorumlm.Client(servers=servers) as client:
        with client.checkout("synthesis") as seat:
            say("GRANTED", seat.handle)
    say("OK")


SCENARIOS = {f.__name__: f for f in (
    grant_through_any_node, denial_with_reason_and_holders,
    queued_wait_granted_when_a_seat_frees, leader_killed_while_held,
    retry_never_grants_twice, session_lost_then_renewed, holder_sigkilled, grant_once,
)}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](sys.argv[2].split(","))
