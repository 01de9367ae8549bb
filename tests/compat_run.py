"""``make test-compat``: build proxy_ext's wheel, install it into a throwaway environment per LiteLLM
version (oldest, middle and newest supported by default), and run the compatibility subset
(tests/test_compat.py) there — proxy_ext imported from the installed wheel, the proxy started with
that environment's ``litellm``.

    .venv/bin/python -m tests.compat_run [--versions 1.100.0,1.108.7] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".tools" / "bin" / "uv"
COMPAT_VERSIONS = ("1.100.0", "1.104.2", "1.108.7")
"""Oldest, a middle one, newest: the range pyproject.toml declares is what these prove."""
OUTSIDE_VERSION = "1.99.4"
"""Below the range: only the start-up and /ready checks run (the extension must load and say so)."""
COPIED = ("__init__.py", "conftest.py", "harness", "test_compat.py")
PYTEST_INI = """[pytest]
addopts = -ra -p no:cacheprovider
markers =
    integration: starts a real proxy
    live: the live tier
"""


def _run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def build_wheel(out: Path) -> Path:
    _run([str(UV), "build", "--quiet", "--wheel", "--out-dir", str(out), str(REPO)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return next(out.glob("proxy_ext-*.whl"))


def _requirements_besides_litellm(wheel: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    wanted = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in wanted if "extra ==" not in r and not r.lower().startswith("litellm")]


def environment(root: Path, version: str, wheel: Path) -> Path:
    """A fresh virtualenv with ``litellm[proxy]==version`` and the wheel: resolved with the wheel's
    declared range inside it, ``--no-deps`` for the wheel outside it (as an operator would force it)."""
    venv = root / f"litellm-{version}"
    _run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    env = {**os.environ, "UV_COMPILE_BYTECODE": "1"}  # else every proxy start recompiles LiteLLM
    from proxy_ext.litellm_adapter import version_problem

    if version_problem(version) is None:
        _run([str(UV), "pip", "install", "--quiet", "--python", str(python), f"{wheel}", f"litellm[proxy]=={version}", "pytest"], env=env)
    else:
        _run([str(UV), "pip", "install", "--quiet", "--python", str(python), f"litellm[proxy]=={version}", "pytest",
              *_requirements_besides_litellm(wheel)], env=env)
        _run([str(UV), "pip", "install", "--quiet", "--no-deps", "--python", str(python), str(wheel)], env=env)
    return python


def run_subset(python: Path, work: Path, extra: list[str]) -> int:
    tests = work / "tests"
    tests.mkdir(parents=True)
    for name in COPIED:
        source = REPO / "tests" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tests / name)
    (work / "pytest.ini").write_text(PYTEST_INI)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", PROXY_EXT_COMPAT_SITE=site, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([str(python), "-m", "pytest", "-q", "tests/test_compat.py", *extra], cwd=work, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", default=",".join(COMPAT_VERSIONS), help="comma-separated LiteLLM versions")
    parser.add_argument("--outside", default=OUTSIDE_VERSION, help="a LiteLLM outside the range ('' to skip)")
    parser.add_argument("--keep", action="store_true", help="keep the environments (printed)")
    args, extra = parser.parse_known_args(argv)
    root = Path(tempfile.mkdtemp(prefix="proxy-ext-compat-"))
    results: dict[str, tuple[int, float]] = {}
    try:
        wheel = build_wheel(root / "dist")
        plan = [(v, extra) for v in filter(None, args.versions.split(","))]
        if args.outside:
            plan.append((args.outside, [*extra, "-k", "ready_and_the_version_check"]))
        for version, selection in plan:
            started = time.monotonic()
            print(f"\n=== LiteLLM {version} ===", flush=True)
            try:
                python = environment(root, version, wheel)
                code = run_subset(python, root / f"work-{version}", selection)
            except subprocess.CalledProcessError as exc:
                print(f"environment for LiteLLM {version} failed: {exc}", flush=True)
                code = 2
            results[version] = (code, time.monotonic() - started)
    finally:
        if args.keep:
            print(f"environments kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("\ncompatibility:", flush=True)
    for version, (code, seconds) in results.items():
        print(f"  litellm {version:10} {'ok' if code == 0 else f'FAILED ({code})':12} {seconds:6.1f} s")
    return 0 if results and all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
