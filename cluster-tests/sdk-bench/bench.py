"""One Python client's closed loop for `make bench-sdk`: checkout + checkin of FEATURE
through the quorumlm wheel, with no think time, for a warm-up and then a measured window.

    python bench.py SERVERS FEATURE WARMUP_SECONDS SECONDS  ->  "ops N seconds S errors E"
"""
import sys
import time

import quorumlm


def loop(client, feature, until):
    ops = errors = 0
    while time.monotonic() < until:
        try:
            seat = client.checkout(feature)
            seat.checkin()
            ops += 1
        except quorumlm.Error:
            errors += 1
    return ops, errors


def main():
    servers, feature, warmup, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    with quorumlm.Client(servers=servers) as client:
        loop(client, feature, time.monotonic() + warmup)
        start = time.monotonic()
        ops, errors = loop(client, feature, start + seconds)
        print(f"ops {ops} seconds {time.monotonic() - start:.3f} errors {errors}")


if __name__ == "__main__":
    main()
