"""`k3sc cargo-lock`: argument handling, the lock file's place, exit codes, and two cargos never
running at once (real processes racing for the real OS lock)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k3sc.services import cargo_lock
from tests.cli_helpers import invoke

M = Path("/r/Cargo.toml")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["build"], ["build", "--manifest-path", "/r/Cargo.toml"], id="appended when there is no --"
        ),
        pytest.param(
            ["run", "--release", "--", "--level", "3"],
            ["run", "--release", "--manifest-path", "/r/Cargo.toml", "--", "--level", "3"],
            id="inserted before the first --",
        ),
        pytest.param(
            ["build", "--manifest-path", "x/Cargo.toml"],
            ["build", "--manifest-path", "x/Cargo.toml"],
            id="kept when given",
        ),
        pytest.param(
            ["build", "--manifest-path=x/Cargo.toml"],
            ["build", "--manifest-path=x/Cargo.toml"],
            id="kept when given with =",
        ),
        pytest.param(
            ["run", "--", "--manifest-path", "a"],
            ["run", "--manifest-path", "/r/Cargo.toml", "--", "--manifest-path", "a"],
            id="a --manifest-path after -- belongs to the program",
        ),
    ],
)
def test_manifest_path(args: list[str], expected: list[str]) -> None:
    assert cargo_lock.with_manifest(args, M) == expected


@pytest.mark.parametrize(
    ("args", "build"),
    [
        pytest.param(
            ["test", "--release", "--", "--nocapture"],
            ["build", "--release"],
            id="test builds its flags first",
        ),
        pytest.param(["run", "--bin", "x"], ["build", "--bin", "x"], id="run builds first"),
        pytest.param(["check"], None, id="other subcommands do not"),
    ],
)
def test_build_first(args: list[str], build: list[str] | None) -> None:
    assert cargo_lock.build_first(args) == build


def test_lock_file_place(tmp_path: Path) -> None:
    assert cargo_lock.lock_path({"CARGO_TARGET_DIR": "/t"}, tmp_path) == Path("/t/.cargo-build.lock")
    assert cargo_lock.lock_path({}, tmp_path) == tmp_path / ".cargo-build.lock"
    (tmp_path / "rust" / "target").mkdir(parents=True)
    assert cargo_lock.lock_path({}, tmp_path) == tmp_path / "rust" / "target" / ".cargo-build.lock"
    (tmp_path / "target").mkdir()
    assert cargo_lock.lock_path({}, tmp_path) == tmp_path / "target" / ".cargo-build.lock"


def test_manifest_is_found_upwards(tmp_path: Path) -> None:
    (tmp_path / "rust").mkdir()
    (tmp_path / "rust" / "Cargo.toml").write_text("")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert cargo_lock.find_manifest(deep) == tmp_path / "rust" / "Cargo.toml"


def test_a_failed_build_stops_before_run_and_passes_its_code(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake(argv: list[str]) -> int:
        calls.append(argv[1:])
        return 101

    err = io.StringIO()
    code = cargo_lock.run(["run", "--", "x"], environ={}, cwd=tmp_path, err=err, execute=fake)
    assert (code, calls) == (101, [["build"]])
    assert "released lock" in err.getvalue()


FAKE_CARGO = """#!{python}
import os, sys, time
log = os.environ["CARGO_LOG"]
with open(log, "a") as f: f.write(f"start {{os.getpid()}} {{time.time()}} {{' '.join(sys.argv[1:])}}\\n")
time.sleep(float(os.environ.get("CARGO_SLEEP", "0")))
with open(log, "a") as f: f.write(f"end {{os.getpid()}} {{time.time()}}\\n")
sys.exit(int(os.environ.get("CARGO_EXIT", "0")))
"""


@pytest.fixture
def fake_cargo(tmp_path: Path) -> dict[str, str]:
    """A `cargo` first on PATH that logs when it starts and ends, then exits with $CARGO_EXIT."""
    if sys.platform == "win32":
        pytest.skip("the fake cargo is a POSIX script")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cargo = bin_dir / "cargo"
    cargo.write_text(FAKE_CARGO.format(python=sys.executable))
    cargo.chmod(cargo.stat().st_mode | stat.S_IEXEC)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CARGO_LOG": str(tmp_path / "cargo.log"),
        "CARGO_TARGET_DIR": str(tmp_path / "target"),
    }


def test_exit_code_is_passed_through(fake_cargo: dict[str, str], tmp_path: Path) -> None:
    result = invoke(
        ["cargo-lock", "check", "--workspace"],
        code=3,
        env={**fake_cargo, "CARGO_EXIT": "3"},
        contains=["acquired lock, running: cargo check --workspace"],
    )
    assert "released lock" in result.stderr
    assert (tmp_path / "target" / ".cargo-build.lock").exists()


def test_cargo_help_after_the_subcommand_goes_to_cargo(fake_cargo: dict[str, str], tmp_path: Path) -> None:
    invoke(["cargo-lock", "test", "--help"], env=fake_cargo)
    log = (tmp_path / "cargo.log").read_text()
    assert "start" in log and "test --help" in log


def test_two_cargos_never_overlap(fake_cargo: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, **fake_cargo, "CARGO_SLEEP": "1.0"}
    k3sc = str(Path(sys.executable).with_name("k3sc"))
    racers = [
        subprocess.Popen([k3sc, "cargo-lock", "build"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [racer.communicate(timeout=60)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], errors
    events = [line.split() for line in (tmp_path / "cargo.log").read_text().splitlines()]
    assert [event[0] for event in events] == ["start", "end", "start", "end"]  # serialised, never interleaved
    assert float(events[2][2]) >= float(events[1][2])
    assert any("waiting for build lock" in e for e in errors)


def test_no_arguments_is_a_usage_error() -> None:
    invoke(["cargo-lock"], code=2, contains=["usage: k3sc cargo-lock <cargo subcommand> [args...]"])


def test_missing_cargo_is_an_operational_error(tmp_path: Path) -> None:
    invoke(["cargo-lock", "build"], code=1, env={"PATH": str(tmp_path)}, contains=["cargo is not on PATH"])


def test_the_lock_is_released_when_cargo_is_killed(fake_cargo: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, **fake_cargo, "CARGO_SLEEP": "30"}
    k3sc = str(Path(sys.executable).with_name("k3sc"))
    first = subprocess.Popen(
        [k3sc, "cargo-lock", "build"], env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )
    log = tmp_path / "cargo.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "start" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, 9)  # k3sc and its cargo die without releasing anything themselves
    first.wait()
    done = subprocess.run(
        [k3sc, "cargo-lock", "build"],
        env={**env, "CARGO_SLEEP": "0"},
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
