"""
Binary upgrade on the fly (nginx's signals): USR2 starts a new master, a child of
the old one, that inherits the listening sockets and the shared-memory zones;
WINCH stops the old workers; QUIT to the old master commits, HUP to the old master
then QUIT to the new one rolls back.  The last test proves the whole set of
zero-downtime operations under load: reloads, upgrades, a rollback and a killed
worker lose no request but those the killed worker held.
"""

import os
import random
import re
import signal
import sys
import time

import harness
import procs
from harness import location, server, upstream


def workers_of(master):
    """Worker processes of <master> (children titled "worker")."""
    return sorted(k for k in harness.children(master) if "worker" in harness.proc_title(k))


def others_of(master):
    """Children of <master> that are not workers (a new master during an upgrade)."""
    return sorted(k for k in harness.children(master) if "worker" not in harness.proc_title(k))


def proc_state(pid):
    """The one-letter state of <pid> from /proc/<pid>/stat ("T" when stopped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def listen_inodes(port):
    return {r["inode"] for r in harness.tcp_sockets()
            if r["lport"] == port and r["state"] == procs.TCP_LISTEN}


def client_ports_held_by(pid, port):
    """Client-side ports of the connections to <port> whose server side <pid> holds."""
    mine = harness.socket_inodes(pid)
    return {r["rport"] for r in harness.tcp_sockets() if r["lport"] == port and r["inode"] in mine}


def holders(client, pids):
    """Which of <pids> hold the server side of <client>'s connection."""
    inodes = {r["inode"] for r in harness.tcp_sockets()
              if r["rport"] == client.local_port and r["lport"] == client.port}
    return {pid for pid in pids if inodes & harness.socket_inodes(pid)}


class UpgradeCase(harness.TestCase):
    """Starting portier and driving an upgrade.  Masters started by an upgrade are
    tracked and stopped at cleanup (they are not the harness's child processes)."""

    nworkers = 1

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")

    def http(self, port, extra=()):
        return {
            "upstream": {"app": upstream(self.b1.addr, keepalive=8)},
            "server": [server(port, list(extra) + [location("/", proxy_pass="http://app")])],
        }

    def portier(self, http=None, workers=None, main=None):
        self.nworkers = workers or self.nworkers
        m = {"worker_processes": self.nworkers, "worker_shutdown_timeout": "10s"}
        m.update(main or {})
        p = self.start_portier(http or self.http(harness.free_port()), main=m, workers=self.nworkers)
        self.masters = [p.pid]
        self.addCleanup(self.stop_masters, p)
        return p

    def stop_masters(self, p):
        """Stops every master an upgrade started (TERM, then KILL of it and its children)."""
        left = [m for m in self.masters if m != p.pid and harness.pid_alive(m)]
        for m in left:
            os.kill(m, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(harness.pid_alive(m) for m in left) and time.monotonic() < deadline:
            time.sleep(0.05)
        for m in left:
            for pid in harness.children(m) + [m]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def usr2(self, p, old, timeout=10.0):
        """USR2 to <old>: waits until a new master wrote the pid file and runs its
        workers; returns its pid."""
        os.kill(old, signal.SIGUSR2)

        def new_master():
            pid = read_pid(p.pid_path)
            return pid if pid and pid != old and harness.pid_alive(pid) else None
        new = harness.wait_until(new_master, timeout, 0.02, "a new master in %s" % p.pid_path)
        self.masters.append(new)
        harness.wait_until(lambda: len(workers_of(new)) >= self.nworkers, timeout, 0.02,
                           "the new master's %d workers" % self.nworkers)
        self.assertEqual(read_pid(p.pid_path + ".oldbin"), old, "pid file of the old master")
        return new

    def winch(self, old, timeout=15.0):
        """WINCH to <old>: waits until its workers are gone."""
        os.kill(old, signal.SIGWINCH)
        harness.wait_until(lambda: not workers_of(old), timeout, 0.02,
                           "master %d's workers to exit after WINCH" % old)
        self.assertTrue(harness.pid_alive(old), "the old master exited on WINCH")

    def quit(self, p, master, timeout=15.0):
        """QUIT to <master>: waits until it exited."""
        os.kill(master, signal.SIGQUIT)
        if master == p.pid:
            self.assertIsNotNone(p.wait_exit(timeout), "master %d still running after QUIT" % master)
        else:
            harness.wait_until(lambda: not harness.pid_alive(master), timeout, 0.05,
                               "master %d to exit after QUIT" % master)

    def hup_old(self, old, timeout=10.0):
        """HUP to an old master whose workers WINCH stopped: waits for new workers."""
        os.kill(old, signal.SIGHUP)

        def back():
            w = workers_of(old)
            return w if len(w) >= self.nworkers else None
        return harness.wait_until(back, timeout, 0.02, "master %d's workers back after HUP" % old)

    def upgrade(self, p, old):
        """A committed upgrade: USR2, WINCH and QUIT to <old>; returns the new master."""
        new = self.usr2(p, old)
        self.winch(old)
        self.quit(p, old)
        harness.wait_until(lambda: not os.path.exists(p.pid_path + ".oldbin"), 5, 0.05,
                           "%s.oldbin to be removed" % p.pid_path)
        return new

    def get_ok(self, p, path="/"):
        r = p.get(path)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "b1", r)
        return r


class Upgrade(UpgradeCase):

    def test_usr2_renames_pid_file_to_oldbin_and_new_master_writes_pid(self):
        p = self.portier()
        old = p.pid
        self.assertEqual(read_pid(p.pid_path), old)
        new = self.usr2(p, old)
        self.assertNotEqual(new, old)
        self.assertEqual(read_pid(p.pid_path), new)
        self.assertEqual(read_pid(p.pid_path + ".oldbin"), old)

    def test_new_master_is_a_child_of_the_old_running_the_same_binary(self):
        p = self.portier()
        new = self.usr2(p, p.pid)
        self.assertEqual(procs.ppid_of(new), p.pid)
        self.assertEqual(os.path.realpath("/proc/%d/exe" % new), os.path.realpath(harness.PORTIER_BIN))
        self.assertEqual(len(workers_of(p.pid)), self.nworkers, "the old workers must keep running")

    def test_new_master_inherits_the_listening_socket(self):
        p = self.portier()
        before = listen_inodes(p.port)
        self.assertEqual(len(before), 1, before)
        new = self.usr2(p, p.pid)
        self.assertEqual(listen_inodes(p.port), before, "the listener was rebound, not inherited")
        self.assertTrue(before & harness.socket_inodes(new), "the new master does not hold the listener")

    def test_old_and_new_workers_both_accept(self):
        p = self.portier()
        old_w = set(workers_of(p.pid))
        new = self.usr2(p, p.pid)
        new_w = set(workers_of(new))
        seen = set()
        for i in range(300):
            with p.client() as c:
                r = c.request("GET", "/?n=%d" % i)
                self.assertEqual(r.status, 200, r)
                seen.update(holders(c, old_w | new_w))
            if seen & old_w and seen & new_w:
                break
        self.assertTrue(seen & old_w, "no old worker accepted (served by %r)" % seen)
        self.assertTrue(seen & new_w, "no new worker accepted (served by %r)" % seen)

    def test_winch_stops_old_workers_and_the_old_master_stays(self):
        p = self.portier()
        new = self.usr2(p, p.pid)
        self.winch(p.pid)
        time.sleep(0.3)
        self.assertTrue(p.alive())
        self.assertEqual(workers_of(p.pid), [], "old workers came back")
        self.assertEqual(len(workers_of(new)), self.nworkers)
        for _ in range(5):
            self.get_ok(p)

    def test_quit_to_old_master_commits_the_upgrade(self):
        p = self.portier()
        before = listen_inodes(p.port)
        new = self.upgrade(p, p.pid)
        self.assertEqual(read_pid(p.pid_path), new)
        self.assertFalse(os.path.exists(p.pid_path + ".oldbin"))
        self.assertTrue(harness.pid_alive(new))
        self.assertEqual(listen_inodes(p.port), before)
        for _ in range(5):
            self.get_ok(p)

    def test_rollback_restores_the_old_master_without_rereading_the_config(self):
        p = self.portier()
        old = p.pid
        new = self.usr2(p, old)
        # Changed on disk after the new master read it: the old master must not apply it.
        p.write_config(self.http(p.port, [location("= /changed", ret="200 changed")]))
        self.winch(old)
        self.hup_old(old)
        self.quit(p, new)
        harness.wait_until(lambda: read_pid(p.pid_path) == old, 5, 0.05,
                           "the pid file to name the old master again")
        self.assertFalse(os.path.exists(p.pid_path + ".oldbin"))
        self.assertTrue(p.alive())
        self.assertEqual(len(workers_of(old)), self.nworkers)
        for _ in range(5):
            r = self.get_ok(p, "/changed")
            self.assertNotEqual(r.body, b"changed", "the old master reread its config")

    def test_failed_new_master_leaves_the_old_one_serving(self):
        p = self.portier()
        old_w = workers_of(p.pid)
        cfg = self.http(p.port)
        cfg["bogus_directive"] = "1"
        p.write_config(cfg)
        start = harness.file_size(p.error_log)
        os.kill(p.pid, signal.SIGUSR2)
        harness.wait_for_line(p.error_log, r"(?i)upgrade.*fail|fail.*upgrade", timeout=10, start=start)
        harness.wait_until(lambda: read_pid(p.pid_path) == p.pid and
                           not os.path.exists(p.pid_path + ".oldbin"), 5, 0.05,
                           "%s to name the old master again" % p.pid_path)
        harness.wait_until(lambda: not others_of(p.pid), 5, 0.05, "the failed new master to be gone")
        self.assertTrue(p.alive())
        self.assertEqual(workers_of(p.pid), old_w)
        for _ in range(5):
            self.get_ok(p)

    def assertSecondUsr2Refused(self, p, to_new):
        """USR2 during an upgrade (to the new master if <to_new>, else to the old
        one) is refused and logged; nothing changes."""
        old = p.pid
        new = self.usr2(p, old)
        new_w = workers_of(new)
        old_w = workers_of(old)
        start = harness.file_size(p.error_log)
        os.kill(new if to_new else old, signal.SIGUSR2)
        harness.wait_for_line(p.error_log, r"(?i)upgrade.*in progress|in progress.*upgrade",
                              timeout=5, start=start)
        time.sleep(0.5)
        self.assertEqual(read_pid(p.pid_path), new)
        self.assertEqual(read_pid(p.pid_path + ".oldbin"), old)
        self.assertEqual(others_of(old), [new], "a third master was started")
        self.assertEqual(others_of(new), [], "the new master started a master")
        self.assertEqual(workers_of(old), old_w)
        self.assertEqual(workers_of(new), new_w)

    def test_second_usr2_to_the_old_master_is_refused(self):
        self.assertSecondUsr2Refused(self.portier(), to_new=False)

    def test_usr2_to_the_new_master_during_an_upgrade_is_refused(self):
        self.assertSecondUsr2Refused(self.portier(), to_new=True)


class SharedMemoryUpgrade(UpgradeCase):

    def connect_failures(self, p, dead):
        text = harness.read_file(p.error_log)
        return len(re.findall(r"connect\(\) to 127\.0\.0\.1:%d failed" % dead, text))

    def requests(self, p, n):
        for i in range(n):
            with p.client() as c:
                r = c.request("GET", "/?n=%d" % i)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("X-Backend"), "alive")

    def test_upstream_health_crosses_the_upgrade(self):
        alive = self.start_backend("alive")
        dead = harness.dead_port()
        port = harness.free_port()
        p = self.portier({
            "upstream": {"app": upstream(alive.addr, "127.0.0.1:%d max_fails=1 fail_timeout=60s" % dead,
                                         keepalive=4)},
            "server": [server(port, [location("/", proxy_pass="http://app")])],
        }, workers=2)
        self.requests(p, 20)
        self.assertEqual(self.connect_failures(p, dead), 1)
        self.upgrade(p, p.pid)
        self.requests(p, 20)
        self.assertEqual(self.connect_failures(p, dead), 1,
                         "the new binary forgot that the server is down")
        self.assertNotRegex(harness.read_file(p.error_log), r'(?i)"upstream".*starts? empty',
                            "the upstream zone was not inherited")


class ZeroDowntime(UpgradeCase):

    def test_no_failed_request_through_reloads_upgrades_rollback_and_a_killed_worker(self):
        p = self.portier(workers=2)
        load = harness.Load(p.port, clients=32)
        load.start()
        self.addCleanup(load.stop)
        cur = p.pid
        time.sleep(0.5)
        for _ in range(20):
            os.kill(cur, signal.SIGHUP)
            time.sleep(random.uniform(0.1, 0.2))
        harness.wait_until(lambda: len(workers_of(cur)) == self.nworkers, 15, 0.05,
                           "old generations to finish draining")
        for _ in range(3):
            cur = self.upgrade(p, cur)
            time.sleep(0.3)
        new = self.usr2(p, cur)
        self.winch(cur)
        self.hup_old(cur)
        self.quit(p, new)
        harness.wait_until(lambda: read_pid(p.pid_path) == cur, 5, 0.05, "the rollback")
        time.sleep(0.3)
        # Frozen first, so that the set of connections it holds cannot change before it dies.
        victim = workers_of(cur)[0]
        os.kill(victim, signal.SIGSTOP)
        # kill() returns before the worker has stopped: until /proc says so it may still
        # accept connections that the list below would miss.
        harness.wait_until(lambda: proc_state(victim) == "T", 5, 0.001, "the worker to stop")
        held = client_ports_held_by(victim, p.port)
        os.kill(victim, signal.SIGKILL)
        harness.wait_until(lambda: len(workers_of(cur)) == self.nworkers and victim not in workers_of(cur),
                           10, 0.05, "the killed worker to be replaced")
        time.sleep(0.5)
        load.stop()
        sys.stderr.write("\n  %d ok, %d connections, %d failures (%d on the killed worker's %d connections)\n"
                         % (load.ok, load.connections, len(load.failures),
                            len(load.failures) - len(load.failures_except(held)), len(held)))
        self.assertEqual(load.failures_except(held), [], "failed requests")
        self.assertGreater(load.ok, 1000)
        self.assertTrue(harness.pid_alive(cur))
        self.get_ok(p)


if __name__ == "__main__":
    harness.main()
