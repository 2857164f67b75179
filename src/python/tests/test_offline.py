"""quorumlm without a server: the exceptions, and the arguments refused before anything is sent.

Run in a venv where the wheel is installed: python -m unittest test_offline.py
"""

import datetime
import time
import unittest

import quorumlm

# A loopback port nothing listens on: the client is made without connecting, and every
# refusal below must come before the first connection attempt.
NOWHERE = "127.0.0.1:9"


class Exceptions(unittest.TestCase):
    def test_every_error_is_a_quorumlm_error(self):
        for kind in (quorumlm.Denied, quorumlm.Unreachable, quorumlm.WaitTimeout,
                     quorumlm.InvalidArgument, quorumlm.NoServers,
                     quorumlm.NodeLockedRefused, quorumlm.SessionLost):
            self.assertTrue(issubclass(kind, quorumlm.Error), kind)
        self.assertTrue(issubclass(quorumlm.InvalidArgument, ValueError))
        self.assertFalse(issubclass(quorumlm.WaitTimeout, quorumlm.Denied))

    def test_a_denial_carries_reason_message_and_holders(self):
        holder = quorumlm.Holder(user="ann", host="ws1", count=2)
        denied = quorumlm.Denied("ALL_IN_USE", "all 25 seats are in use", [holder])
        self.assertEqual(denied.reason, "ALL_IN_USE")
        self.assertEqual(denied.message, "all 25 seats are in use")
        self.assertEqual(denied.holders, [holder])
        self.assertEqual(denied.holders[0].user, "ann")
        self.assertEqual(str(denied), "denied (ALL_IN_USE): all 25 seats are in use")
        with self.assertRaises(quorumlm.Error):
            raise denied

    def test_unreachable_lists_the_servers_tried(self):
        error = quorumlm.Unreachable("no server answered", ["a:7400", "b:7400"])
        self.assertEqual(error.tried, ["a:7400", "b:7400"])

    def test_a_lost_session_says_why(self):
        lost = quorumlm.SessionLost("the license session was lost: ...", "unreachable")
        self.assertEqual(lost.reason, "unreachable")
        self.assertEqual(str(lost), "the license session was lost: ...")
        self.assertIsNone(quorumlm.SessionLost("lost").reason)


class Arguments(unittest.TestCase):
    def setUp(self):
        self.client = quorumlm.Client(servers=[NOWHERE], ttl=5.0)

    def tearDown(self):
        self.client.close()

    def refused(self, naming, **arguments):
        feature = arguments.pop("feature", "vhdl-editor")
        started = time.monotonic()
        with self.assertRaises(quorumlm.InvalidArgument) as caught:
            self.client.checkout(feature, **arguments)
        self.assertIn(naming, str(caught.exception))
        # Refused here, not after failing over between servers for seconds.
        self.assertLess(time.monotonic() - started, 0.5)

    def test_bad_counts(self):
        for count in (0, -1, 1_000_001):
            self.refused("count", count=count)

    def test_bad_features(self):
        for feature in ("", "a b", "tab\there", "nul\0", "x" * 65, "new\nline"):
            self.refused("feature", feature=feature)

    def test_bad_versions(self):
        for version in ("", "4 0", "9" * 33):
            self.refused("version", version=version)

    def test_bad_waits(self):
        for wait in (-1.0, float("nan"), float("inf")):
            self.refused("wait", wait=wait)

    def test_borrow_until_must_be_a_datetime(self):
        self.refused("borrow_until", borrow_until="tomorrow")
        self.refused("borrow_until", borrow_until=datetime.datetime(1960, 1, 1))

    def test_wrong_types_are_type_errors(self):
        with self.assertRaises(TypeError):
            self.client.checkout(42)
        with self.assertRaises(TypeError):
            self.client.checkout("vhdl-editor", count="many")


class Construction(unittest.TestCase):
    def test_servers_as_a_list_or_a_string(self):
        quorumlm.Client(servers=["127.0.0.1:9", "127.0.0.1:10"]).close()
        quorumlm.Client(servers="127.0.0.1:9,127.0.0.1:10").close()

    def test_bad_server_lists(self):
        for servers in ([], [""], ["a:1,b:2"], "", 42):
            with self.assertRaises(quorumlm.InvalidArgument, msg=repr(servers)):
                quorumlm.Client(servers=servers)

    def test_servers_and_search_path_exclude_each_other(self):
        with self.assertRaises(quorumlm.InvalidArgument):
            quorumlm.Client(servers=[NOWHERE], search_path=NOWHERE)

    def test_bad_ttls(self):
        for ttl in (0.0, -3.0, float("nan")):
            with self.assertRaises(quorumlm.InvalidArgument, msg=repr(ttl)):
                quorumlm.Client(servers=[NOWHERE], ttl=ttl)

    def test_bad_failover_budgets(self):
        for budget in (0.0, -1.0, float("inf")):
            with self.assertRaises(quorumlm.InvalidArgument) as caught:
                quorumlm.Client(servers=[NOWHERE], failover_budget=budget)
            self.assertIn("failover_budget", str(caught.exception))

    def test_an_empty_search_path_is_refused(self):
        for path in ("", ":", " "):
            with self.assertRaises(quorumlm.NoServers, msg=repr(path)):
                quorumlm.Client(search_path=path)

    def test_a_bad_vendor_key_is_refused(self):
        with quorumlm.Client(servers=[NOWHERE]) as client:
            with self.assertRaises(quorumlm.InvalidArgument):
                client.trust_vendor_key("ed25519-public:not base64!")

    def test_on_lost_takes_a_callable(self):
        with quorumlm.Client(servers=[NOWHERE]) as client:
            with self.assertRaises(quorumlm.InvalidArgument):
                client.on_lost("not callable")
            client.on_lost(lambda reason: None)
            self.assertFalse(client.lost)
            self.assertIsNone(client.lost_reason)
            self.assertIsNone(client.status())

    def test_a_closed_client_refuses_checkouts(self):
        client = quorumlm.Client(servers=[NOWHERE])
        client.close()
        client.close()
        with self.assertRaises(quorumlm.Error) as caught:
            client.checkout("vhdl-editor")
        self.assertIn("closed", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
