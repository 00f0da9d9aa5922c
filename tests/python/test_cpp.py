"""Runs the C++ test suite (ctest: one test per compiler pass, file I/O, the CPU backend, golden
dumps of pcc-compile and the folder of inputs that must be rejected) as part of pytest, one pytest
item per ctest test, from the CMake build tree that `pip install -e .` leaves under build/."""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build", f"py{sys.version_info.major}{sys.version_info.minor}")


def _ctest():
    """The ctest of the CMake that configured the build (the tests call that same cmake)."""
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        cmake = re.search(r"^CMAKE_COMMAND:INTERNAL=(.*)$", f.read(), re.M).group(1)
    return os.path.join(os.path.dirname(cmake), "ctest")


def _ctest_names():
    if not os.path.exists(os.path.join(BUILD, "CTestTestfile.cmake")):
        return []
    out = subprocess.run([_ctest(), "--test-dir", BUILD, "-N"], capture_output=True, text=True).stdout
    return re.findall(r"Test\s+#\d+:\s+(\S+)", out)


NAMES = _ctest_names()


@pytest.mark.skipif(not NAMES, reason=f"no C++ build with tests at {BUILD} (run pip install -e . first)")
@pytest.mark.parametrize("name", NAMES or ["none"])
def test_ctest(name):
    r = subprocess.run([_ctest(), "--test-dir", BUILD, "-R", f"^{re.escape(name)}$", "--output-on-failure"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    if re.search(r"\bNot Run\b|\*\*\*Skipped", r.stdout):
        pytest.skip(f"ctest skipped {name}")
