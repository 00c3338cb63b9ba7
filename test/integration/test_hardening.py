"""
Hardening beyond nginx (issue 11, point 9), as root: the workers' user cannot turn the
root master against other files, nor read what the workers hold.

- On USR1 the master reopens logs without following a link planted in a log directory
  the workers' user can write, never chowns a file it did not just create, and says why
  in the error log; a link of root's (access.log -> /dev/stdout, say) is still followed.
- Shared-memory zones are memfds of mode 0600, and workers and the helper are not
  dumpable: another process of their uid can list neither their descriptors nor open a
  zone through /proc.
- `portier -s` signals only a portier master: a stale pid file naming another process
  gives an error and signals nothing.
"""

import os
import pwd
import signal
import stat
import subprocess
import time
import unittest

import harness
from harness import location, server, upstream

ROOT = os.geteuid() == 0


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def as_nobody(fn):
    """Runs <fn>() in a child process switched to nobody (the workers' user, here the
    attacker); returns its exit status (fn's return value, 99 if it raised)."""
    uid, gid = nobody()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def secret(path, text):
    """A root-owned file outside the log directory that nobody must not get."""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


@unittest.skipUnless(ROOT, "needs root: the master must switch to nobody")
class LogReopen(harness.TestCase):

    def start_with_log_dir(self, access_name="access.log"):
        """portier with its error and access logs in a directory owned by nobody."""
        p = self.start_portier(start=False)
        logs = os.path.join(p.dir, "logs")
        os.mkdir(logs, 0o755)
        os.chown(logs, *nobody())
        p.error_log = os.path.join(logs, "error.log")
        p.access_log = os.path.join(logs, access_name)
        port = harness.free_port()
        p.write_config({"access_log": "%s combined" % p.access_log,
                        "server": [server(port, [location("/", ret="200 ok")])]},
                       main={"error_log": "%s info" % p.error_log})
        p.start()
        self.assertEqual(p.get("/?before").status, 200)
        harness.wait_for_line(p.access_log, r"before")
        return p, logs

    def assertUntouched(self, path, text):
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0), "%s was chowned" % path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(harness.read_file(path), text, "%s was written into" % path)

    def test_usr1_does_not_follow_a_link_planted_by_the_workers_user(self):
        p, logs = self.start_with_log_dir()
        targets = {name: secret(os.path.join(p.dir, "secret-" + name), "secret of %s\n" % name)
                   for name in ("access.log", "error.log")}

        def plant():
            # Rotate the logs away as logrotate would, and put links in their place.
            for name, target in targets.items():
                os.rename(os.path.join(logs, name), os.path.join(logs, name + ".1"))
                os.symlink(target, os.path.join(logs, name))
            return 0
        self.assertEqual(as_nobody(plant), 0)
        p.signal(signal.SIGUSR1)
        old_error_log = os.path.join(logs, "error.log.1")
        harness.wait_for_line(old_error_log, r"reopening logs")

        def done():
            # The reopen refused the links (said below), or went through them.
            refused = harness.read_file(old_error_log).count("cannot reopen") >= 2
            return refused or any(os.stat(t).st_uid != 0 for t in targets.values())
        harness.wait_until(done, 5, 0.05, "the master's reopen")
        self.assertEqual(p.get("/?after").status, 200)
        for name, target in targets.items():
            self.assertUntouched(target, "secret of %s\n" % name)

        # The master cannot reopen its error log, so it says why in the one it keeps.
        harness.wait_for_line(
            old_error_log, r'cannot reopen error log .*error\.log: ".*error\.log" is a symbolic '
            r'link owned by uid %d, not root: portier does not follow it' % nobody()[0])
        harness.wait_for_line(
            old_error_log, r'cannot reopen ".*access\.log": ".*access\.log" is a symbolic link '
            r'owned by uid %d, not root' % nobody()[0])
        # The workers keep their files too: the request after USR1 is in the old log.
        harness.wait_for_line(os.path.join(logs, "access.log.1"), r"after")
        for name, target in targets.items():
            self.assertUntouched(target, "secret of %s\n" % name)
        self.assertTrue(p.alive())

    def test_usr1_does_not_write_into_a_hard_link_to_another_file(self):
        # With fs.protected_hardlinks off, nobody could link any file of the same
        # filesystem into its directory; the test plants the link as root.
        p, logs = self.start_with_log_dir()
        target = secret(os.path.join(p.dir, "secret-hard"), "hard secret\n")
        access = os.path.join(logs, "access.log")
        os.rename(access, access + ".1")
        os.link(target, access)
        p.signal(signal.SIGUSR1)
        harness.wait_until(lambda: "cannot reopen" in harness.read_file(p.error_log) or
                           os.stat(target).st_uid != 0, 5, 0.05, "the master's reopen")
        self.assertUntouched(target, "hard secret\n")
        harness.wait_for_line(p.error_log, r'cannot reopen ".*access\.log": ".*access\.log" has 2 '
                              r'hard links: portier does not write into a file that is also '
                              r'elsewhere')
        self.assertEqual(p.get("/?after").status, 200)
        harness.wait_for_line(access + ".1", r"after")
        self.assertUntouched(target, "hard secret\n")

    def test_usr1_is_not_hung_by_a_fifo_planted_at_a_log_path(self):
        p, logs = self.start_with_log_dir()
        access = os.path.join(logs, "access.log")

        def plant():
            os.rename(access, access + ".1")
            os.mkfifo(access, 0o666)
            return 0
        self.assertEqual(as_nobody(plant), 0)
        p.signal(signal.SIGUSR1)
        harness.wait_for_line(p.error_log, r'cannot reopen ".*access\.log": No such device')
        # The master still answers signals: with the FIFO gone, a reload goes through.
        os.unlink(access)
        p.reload()
        self.assertEqual(p.get("/").status, 200)

    def test_rotated_log_is_created_for_the_workers_and_nothing_else_is_chowned(self):
        p, logs = self.start_with_log_dir()
        access = os.path.join(logs, "access.log")
        os.rename(access, access + ".1")
        p.signal(signal.SIGUSR1)

        def marker_in_new_log():
            p.get("/?after-usr1")
            return "after-usr1" in harness.read_file(access)
        harness.wait_until(marker_in_new_log, 5, 0.1, "requests logged to a fresh access.log")
        # Created by the master on USR1, given to the workers' user.
        self.assertEqual(os.stat(access).st_uid, nobody()[0])
        # The error log was not rotated: left as it was (root's), not chowned.
        self.assertEqual(os.stat(p.error_log).st_uid, 0)
        self.assertEqual(os.stat(access + ".1").st_uid, 0)

    def test_pid_file_is_not_written_through_a_planted_link(self):
        # The default pid file lives in the logs directory.
        p = self.start_portier(start=False)
        logs = os.path.join(p.dir, "logs")
        os.mkdir(logs, 0o755)
        os.chown(logs, *nobody())
        target = secret(os.path.join(p.dir, "secret-pid"), "pid secret\n")
        pid_path = os.path.join(logs, "portier.pid")
        self.assertEqual(as_nobody(lambda: os.symlink(target, pid_path) or 0), 0)
        p.write_config({"server": [server(harness.free_port(), [location("/", ret="200 ok")])]},
                       main={"pid": pid_path})
        with self.assertRaises(harness.StartError):
            p.start(timeout=5)
        self.assertEqual(p.wait_exit(5), 1)
        self.assertRegex(harness.read_file(p.error_log),
                         r"pid file .*portier\.pid is a symbolic link, not followed: remove it")
        self.assertUntouched(target, "pid secret\n")

    def test_a_link_of_roots_is_followed(self):
        # The container habit: access.log is root's link to the real destination.
        p = self.start_portier(start=False)
        logs = os.path.join(p.dir, "logs")
        os.mkdir(logs, 0o755)
        real = os.path.join(p.dir, "real-access.log")
        os.symlink(real, os.path.join(logs, "access.log"))
        p.access_log = real
        port = harness.free_port()
        p.write_config({"access_log": "%s combined" % os.path.join(logs, "access.log"),
                        "server": [server(port, [location("/", ret="200 ok")])]})
        p.start()
        self.assertEqual(p.get("/?through-link").status, 200)
        harness.wait_for_line(real, r"through-link")
        p.signal(signal.SIGUSR1)
        harness.wait_for_line(p.error_log, r"reopening logs")
        self.assertEqual(p.get("/?after-usr1").status, 200)
        harness.wait_for_line(real, r"after-usr1")
        self.assertNotIn("cannot reopen", harness.read_file(p.error_log))


@unittest.skipUnless(ROOT, "needs root: the workers must run as another uid than the master")
class ProcessMemory(harness.TestCase):

    def start_with_zone_and_helper(self):
        b = self.start_backend()
        port = harness.free_port()
        p = self.start_portier({
            "upstream": {"app": upstream(b.addr, health_check="interval=200ms")},
            "server": [server(port, [location("/", proxy_pass="http://app")])],
        })
        self.assertEqual(p.get("/").status, 200)
        return p

    @staticmethod
    def zone_fds(pid):
        fd_dir = "/proc/%d/fd" % pid
        out = []
        for n in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, n))
            except OSError:
                continue
            if target.startswith("/memfd:portier:"):
                out.append((int(n), target))
        return out

    def helper_pid(self, p):
        def probe():
            return [k for k in harness.children(p.pid) if "helper" in harness.proc_title(k)]
        return harness.wait_until(probe, 5, 0.05, "the helper process")[0]

    def test_zones_are_mode_0600(self):
        p = self.start_with_zone_and_helper()
        zones = self.zone_fds(p.pid)
        self.assertTrue(zones, "no shared-memory zone in the master")
        for n, name in zones:
            mode = stat.S_IMODE(os.stat("/proc/%d/fd/%d" % (p.pid, n)).st_mode)
            self.assertEqual(mode, 0o600, "%s is mode %o" % (name, mode))
        # ...and they stay so across a reload (taken over) and in use by the new workers.
        p.reload()
        self.assertEqual(p.get("/").status, 200)
        for n, name in self.zone_fds(p.pid):
            self.assertEqual(stat.S_IMODE(os.stat("/proc/%d/fd/%d" % (p.pid, n)).st_mode), 0o600)

    def test_workers_and_helper_are_not_readable_by_their_own_uid(self):
        p = self.start_with_zone_and_helper()
        procs = {"worker": p.worker(), "helper": self.helper_pid(p)}
        zone_fd, _ = self.zone_fds(p.pid)[0]
        for role, pid in procs.items():
            self.assertEqual(harness.proc_uids(pid)[0], nobody()[0], role)
            # Non-dumpable: /proc/PID belongs to root, not to the process's uid.
            self.assertEqual(os.stat("/proc/%d/fd" % pid).st_uid, 0, "%s is dumpable" % role)

            def snoop(pid=pid):
                tried = 0
                for what in ("/proc/%d/fd" % pid, "/proc/%d/mem" % pid):
                    try:
                        if what.endswith("/fd"):
                            fds = os.listdir(what)
                            # Readable: the zone's memfd would be open for the taking.
                            for n in fds:
                                if os.readlink("%s/%s" % (what, n)).startswith("/memfd:"):
                                    open("%s/%s" % (what, n), "rb").close()
                                    return 1
                        else:
                            open(what, "rb").close()
                        return 1
                    except PermissionError:
                        tried += 1
                return 0 if tried == 2 else 2
            self.assertEqual(as_nobody(snoop), 0,
                             "a process of nobody reached the %s's descriptors or memory" % role)
        self.assertGreaterEqual(zone_fd, 0)


class SignalOption(harness.TestCase):

    def test_s_refuses_a_pid_file_naming_another_process(self):
        p = self.start_portier(start=False)
        port = harness.free_port()
        p.write_config({"server": [server(port, [location("/", ret="200 ok")])]})
        sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
        self.addCleanup(lambda: (sleeper.kill(), sleeper.wait()))
        with open(p.pid_path, "w") as f:
            f.write("%d\n" % sleeper.pid)
        for sig in ("reload", "reopen", "quit", "stop"):
            res = p.run("-c", p.conf_path, "-s", sig)
            self.assertEqual(res.returncode, 1, res)
            self.assertIn(b'process %d is "sleep 30", not a portier master; nothing signalled'
                          % sleeper.pid, res.stderr)
            # Every one of these signals would have ended sleep.
            time.sleep(0.05)
            self.assertIsNone(sleeper.poll(), "-s %s signalled sleep" % sig)

    def test_s_reports_a_pid_of_no_process(self):
        p = self.start_portier(start=False)
        port = harness.free_port()
        p.write_config({"server": [server(port, [location("/", ret="200 ok")])]})
        gone = subprocess.Popen(["true"])
        gone.wait()
        with open(p.pid_path, "w") as f:
            f.write("%d\n" % gone.pid)
        res = p.run("-c", p.conf_path, "-s", "reload")
        self.assertEqual(res.returncode, 1, res)
        self.assertIn(b"no process %d" % gone.pid, res.stderr)

    def test_s_reopen_reaches_the_master(self):
        p = self.start_portier({"server": [server(harness.free_port(),
                                                  [location("/", ret="200 ok")])]})
        res = p.run("-c", p.conf_path, "-s", "reopen")
        self.assertEqual(res.returncode, 0, res.stderr)
        harness.wait_for_line(p.error_log, r"reopening logs")


if __name__ == "__main__":
    harness.main()
