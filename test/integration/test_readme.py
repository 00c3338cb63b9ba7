"""README.md's configuration reference is the one the directive tables generate."""
import os
import subprocess
import sys
import unittest


class Readme(unittest.TestCase):

    def test_configuration_reference_matches_directive_tables(self):
        root = os.environ["PT_SOURCE_DIR"]
        ref = subprocess.run([os.environ["PORTIER_BIN"], "-R"], check=True,
                             capture_output=True, text=True).stdout.strip("\n")
        with open(os.path.join(root, "README.md")) as f:
            readme = f.read()
        block = readme.split("<!-- reference:begin -->\n", 1)[1].split("<!-- reference:end -->")[0]
        self.assertEqual(block.strip("\n"), ref,
                         "README.md is out of date: run scripts/reference")


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=sys.argv[:1])
