"""
cmake --install: from the build directory of the portier under test (PORTIER_BIN's
directory), `cmake --install BUILD --prefix P` with DESTDIR set puts the binary, the
example configuration, the systemd unit and the logrotate file under DESTDIR/P, and
nothing else.
"""

import filecmp
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

PREFIX = "/opt/portier-test"
INSTALLED = {
    "bin/portier",
    "etc/portier/portier.conf",
    "etc/portier/modsecurity.conf",
    "lib/systemd/system/portier.service",
    "etc/logrotate.d/portier",
}


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build = os.path.dirname(os.path.abspath(harness.PORTIER_BIN))
        if not os.path.exists(os.path.join(cls.build, "cmake_install.cmake")):
            raise AssertionError("%s is not a CMake build directory (no cmake_install.cmake): "
                                 "set PORTIER_BIN to the portier of a build" % cls.build)
        cmake = shutil.which("cmake")
        if cmake is None:
            raise AssertionError("cmake is not on PATH (scripts/deps installs it)")
        cls.tmp = tempfile.mkdtemp(prefix="pt-install-")
        cls.root = os.path.join(cls.tmp, "destdir")
        env = dict(os.environ, DESTDIR=cls.root)
        cls.result = subprocess.run([cmake, "--install", cls.build, "--prefix", PREFIX],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, timeout=60)
        cls.base = cls.root + PREFIX

    @classmethod
    def tearDownClass(cls):
        if not harness.KEEP_TMP:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.base, rel)

    def test_install_succeeds_into_destdir(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout)

    def test_installs_exactly_its_files_under_the_prefix(self):
        found = set()
        for d, _, files in os.walk(self.root):
            for f in files:
                found.add(os.path.relpath(os.path.join(d, f), self.base))
        self.assertEqual(found, INSTALLED, self.result.stdout)

    def test_binary_is_the_built_one(self):
        p = self.path("bin/portier")
        self.assertTrue(os.access(p, os.X_OK), p)
        built = subprocess.run([harness.PORTIER_BIN, "-V"], stdout=subprocess.PIPE, text=True,
                               timeout=10).stdout
        installed = subprocess.run([p, "-V"], stdout=subprocess.PIPE, text=True,
                                   timeout=10).stdout
        self.assertIn("modules:", installed)
        self.assertEqual(installed, built)

    def test_unit_and_logrotate_are_the_shipped_files(self):
        src = os.path.join(harness.SOURCE_DIR, "config")
        self.assertTrue(filecmp.cmp(self.path("lib/systemd/system/portier.service"),
                                    os.path.join(src, "portier.service"), shallow=False))
        self.assertTrue(filecmp.cmp(self.path("etc/logrotate.d/portier"),
                                    os.path.join(src, "portier.logrotate"), shallow=False))

    def test_example_configuration_has_system_paths_and_passes_dash_t(self):
        with open(self.path("etc/portier/portier.conf")) as f:
            conf = f.read()
        self.assertNotIn("@", conf, "a placeholder of the demo template was left")
        self.assertIn('pid = "/run/portier.pid";', conf)
        self.assertIn('"/var/log/portier/error.log', conf)
        self.assertIn('"/var/log/portier/access.log', conf)
        # Checked by portier -t with the system paths moved into the temporary directory
        # (the test may not write /run or /var/log) and without a user change.
        logs = os.path.join(self.tmp, "log")
        os.makedirs(logs, exist_ok=True)
        checked = conf.replace("/var/log/portier", logs).replace("/run/", logs + "/")
        checked = re.sub(r'^user = .*$', "", checked, flags=re.M)
        test_conf = os.path.join(self.tmp, "check.conf")
        with open(test_conf, "w") as f:
            f.write(checked)
        # The waf's rules go beside it, their audit log moved as the other logs.
        with open(self.path("etc/portier/modsecurity.conf")) as f:
            rules = f.read()
        self.assertNotIn("@", rules.replace("@eq", "").replace("@rx", ""))
        self.assertIn("SecAuditLog /var/log/portier/modsec_audit.log", rules)
        with open(os.path.join(self.tmp, "modsecurity.conf"), "w") as f:
            f.write(rules.replace("/var/log/portier", logs))
        r = subprocess.run([harness.PORTIER_BIN, "-t", "-c", test_conf], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    harness.main()
