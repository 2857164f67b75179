"""Node-locked license files from Python, with no server.

    python node_locked.py FEATURE MINE OTHER PUBLIC_KEY

MINE holds a node-locked line of FEATURE bound to this machine, OTHER one bound to another
machine (both on line 2, after a comment), both signed by the vendor whose public key file is
PUBLIC_KEY. cluster-tests/tests/sdk_python.rs writes them (signing needs the Rust side) and
runs this script in a venv where the wheel is installed; it prints what it saw and `OK`.
"""

import sys

import quorumlm


def say(*words):
    print(*words, flush=True)


def main(feature, mine, other, public_key_file):
    with open(public_key_file, encoding="utf-8") as f:
        public_key = f.read()

    with quorumlm.Client(search_path=mine) as client:
        client.trust_vendor_key(public_key)
        with client.checkout(feature, version="1.5") as seat:
            assert seat.node_locked, seat
            assert seat.feature == feature, seat
            assert seat.version == "2.0", seat
            assert seat.count == 1, seat
            assert seat.handle == 0, seat
            assert seat.source == f"node-locked {mine} line 2", seat.source
            say("GRANTED", seat.source)
        assert seat.checked_in, seat
        # Nothing is held on a server: no session was opened on a cluster.
        status = client.status()
        assert status is not None and status["session_id"] == "", status
        assert not client.lost

    with quorumlm.Client(search_path=other) as client:
        client.trust_vendor_key(public_key)
        try:
            client.checkout(feature)
        except quorumlm.NodeLockedRefused as refused:
            message = str(refused)
            assert f"{other}:2: feature `{feature}`" in message, message
            assert "hostid" in message, message
            say("REFUSED", message)
        else:
            raise AssertionError("a line bound to another machine granted")

    # The line that grants above, but without its vendor's key: refused for the signature.
    with quorumlm.Client(search_path=mine) as client:
        try:
            client.checkout(feature)
        except quorumlm.NodeLockedRefused as refused:
            assert f"{mine}:2: feature `{feature}`" in str(refused), str(refused)
            say("UNTRUSTED", refused)
        else:
            raise AssertionError("a line granted with no vendor key trusted")

    say("OK")


if __name__ == "__main__":
    main(*sys.argv[1:])
