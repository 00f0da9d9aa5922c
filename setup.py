"""Builds pcc through CMake (the only build description), in the pybind11 cmake_example pattern.

The extension pcc._C and the pcc-compile binary land inside the package (pcc/_C*.so, pcc/bin/);
the console script `pcc-compile` runs that binary. The CMake build tree is kept under build/ so
re-installs rebuild incrementally; PCC_CUDA=AUTO|ON|OFF and PCC_BUILD_TYPE pass through from the
environment.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        tag = f"py{sys.version_info.major}{sys.version_info.minor}"
        build_dir = ROOT / "build" / tag
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = os.environ.get("PCC_BUILD_TYPE", "Release")
        args = [
            f"-DPCC_PYTHON=ON",
            f"-DPCC_PYTHON_OUTPUT_DIR={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_BUILD_TYPE={cfg}",
            f"-DPCC_CUDA={os.environ.get('PCC_CUDA', 'AUTO')}",
            f"-DPCC_TESTS={os.environ.get('PCC_TESTS', 'ON')}",
        ]
        try:
            import pybind11

            args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass
        ninja = _tool("ninja")
        if not (build_dir / "CMakeCache.txt").exists() and ninja:
            args += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
        cmake = _tool("cmake") or "cmake"
        subprocess.run([cmake, "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run([cmake, "--build", str(build_dir), "-j", jobs], check=True)
        # The CLI binary goes next to the extension (wheel) and into the source tree (editable).
        for dest in (out_dir / "bin", ROOT / "src" / "pcc" / "bin"):
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(build_dir / "pcc-compile", dest / "pcc-compile")


def _tool(name):
    """cmake / ninja from the Python environment's packages (not necessarily on PATH), else PATH."""
    try:
        mod = __import__(name)
        exe = Path(getattr(mod, "CMAKE_BIN_DIR", None) or getattr(mod, "BIN_DIR")) / name
        if exe.exists():
            return str(exe)
    except (ImportError, AttributeError):
        pass
    return shutil.which(name)


setup(
    ext_modules=[CMakeExtension("pcc._C")],
    cmdclass={"build_ext": CMakeBuild},
)
