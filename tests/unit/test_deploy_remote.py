"""The programs `opsctl deploy` runs on the hosts and balancers (opsctl/deploy/remote/), run
here as the engine sends them (`python3 -c TEXT`, `sh -c TEXT`) against temporary directories,
with stand-in `systemctl` and `nginx` on PATH; and the engine's own calls, over a transport
that runs them locally, so that its named arguments are the ones the programs read."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsctl.deploy import engine, steps
from opsctl.deploy.plan import DeployFailed
from opsctl.transport import Result

PROBE = steps.remote_program("release_probe.py")
HEALTH = steps.remote_program("health_wait.py")
SWITCH = steps.remote_program("switch_release.sh")
SWAP = steps.remote_program("swap_backends.sh")


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `systemctl` that logs its arguments and says the unit is active unless told."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    stand_in = bin_dir / "systemctl"
    stand_in.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                        f'[ -e {tmp_path}/inactive ] && exit 3\nexit 0\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def run(argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode(), done.stderr.decode())


def artifact(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- release_probe.py ---------------------------------------------------------------------

def probe(base: Path, unit: str = "app.service") -> dict:
    done = run([sys.executable, "-c", PROBE, "--base", str(base), "--unit", unit])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_probe_names_current_previous_and_releases_newest_first(tmp_path, systemctl) -> None:
    base = tmp_path / "opt" / "app"
    for i, version in enumerate(("1.0.0", "1.1.0", "1.2.0")):
        (base / "releases" / version).mkdir(parents=True)
        os.utime(base / "releases" / version, (1_000_000 + i, 1_000_000 + i))
    (base / "releases" / ".hidden").mkdir()
    (base / "current").symlink_to("releases/1.1.0")
    (base / "previous").symlink_to("releases/1.0.0")
    assert probe(base) == {"current": "1.1.0", "previous": "1.0.0",
                           "releases": ["1.2.0", "1.1.0", "1.0.0"], "active": True}
    assert systemctl.read_text() == "is-active --quiet app.service\n"


def test_probe_of_a_component_that_is_not_there(tmp_path, systemctl) -> None:
    (tmp_path / "inactive").touch()
    assert probe(tmp_path / "opt" / "none") == {"current": None, "previous": None,
                                                "releases": [], "active": False}


def test_probe_wants_its_named_arguments(tmp_path) -> None:
    done = run([sys.executable, "-c", PROBE, str(tmp_path), "app.service"])
    assert done.returncode == 2 and "--base" in done.stderr


# --- health_wait.py -----------------------------------------------------------------------

class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 500)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def web() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def health(url: str, status: int = 200, timeout: float = 0.5) -> tuple[int, str]:
    done = run([sys.executable, "-c", HEALTH, "--url", url, "--status", str(status),
                "--timeout", str(timeout)])
    return done.returncode, done.stdout.strip()


def test_health_answers_at_once_when_healthy(web) -> None:
    assert health(f"{web}/health") == (0, f"healthy: {web}/health answered 200")


def test_health_names_the_wrong_answer_after_the_timeout(web) -> None:
    started = time.monotonic()
    assert health(f"{web}/broken", timeout=0.5) == (
        1, f"unhealthy after 0.5s: {web}/broken answered 500, expected 200")
    assert time.monotonic() - started >= 0.5
    assert health(f"{web}/broken", status=500) == (0, f"healthy: {web}/broken answered 500")


def test_health_names_why_nothing_answered() -> None:
    code, said = health("http://127.0.0.1:9/health", timeout=0)
    assert code == 1
    assert said.startswith("unhealthy after 0s: URLError: ") and "refused" in said


# --- switch_release.sh --------------------------------------------------------------------

def switch(base: Path, version: str, *, artifact_: bytes | None = None,
           previous: str = "record") -> subprocess.CompletedProcess[str]:
    return run(["sh", "-c", SWITCH, "switch_release", "--base", str(base),
                "--unit", "app.service", "--version", version,
                "--owner", f"{os.getuid()}:{os.getgid()}",
                "--artifact", "push" if artifact_ is not None else "present",
                "--previous", previous], artifact_ or b"")


def links(base: Path) -> tuple[str | None, ...]:
    return tuple(os.readlink(base / n) if (base / n).is_symlink() else None
                 for n in ("current", "previous"))


def test_switch_pushes_records_previous_and_restarts(tmp_path, systemctl) -> None:
    base = tmp_path / "opt" / "app"
    done = switch(base, "1.0.0", artifact_=artifact({"app.py": "one"}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (base / "releases" / "1.0.0" / "app.py").read_text() == "one"
    assert links(base) == ("releases/1.0.0", None)
    assert switch(base, "1.1.0", artifact_=artifact({"app.py": "two"})).returncode == 0
    assert links(base) == ("releases/1.1.0", "releases/1.0.0")
    assert not (base / "releases" / "1.1.0" / "app.py").stat().st_mode & 0o022
    # a release that is there already is not unpacked again: what came on stdin is dropped
    assert switch(base, "1.1.0", artifact_=artifact({"app.py": "other"})).returncode == 0
    assert (base / "releases" / "1.1.0" / "app.py").read_text() == "two"
    assert links(base) == ("releases/1.1.0", "releases/1.0.0")
    assert systemctl.read_text().splitlines() == ["restart app.service"] * 3


def test_switch_back_sets_previous_as_told(tmp_path, systemctl) -> None:
    base = tmp_path / "opt" / "app"
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        assert switch(base, version, artifact_=artifact({"v": version})).returncode == 0
    # the rollback of a failed 1.2.0: back to 1.1.0, whose own previous was 1.0.0
    assert switch(base, "1.1.0", previous="1.0.0").returncode == 0
    assert links(base) == ("releases/1.1.0", "releases/1.0.0")
    assert switch(base, "1.0.0", previous="-").returncode == 0
    assert links(base) == ("releases/1.0.0", None)
    assert not list(base.glob("*.new")) and not list(base.glob("releases/*.incoming"))


def test_switch_to_a_release_that_is_not_there(tmp_path, systemctl) -> None:
    done = switch(tmp_path / "opt" / "app", "9.9.9")
    assert (done.returncode, done.stdout.strip()) == (3, "release 9.9.9 is not on this host")
    assert not systemctl.exists()


@pytest.mark.parametrize("argv, said", [
    (["--base", "/x", "--unit"], "--unit needs a value"),
    (["--colour", "red"], "unknown argument --colour"),
    (["--base", "/x"], "--unit is required"),
    (["--base", "/x", "--unit", "u", "--version", "1", "--owner", "o", "--artifact", "maybe",
      "--previous", "-"], "--artifact push|present"),
])
def test_switch_refuses_bad_arguments(argv, said) -> None:
    done = run(["sh", "-c", SWITCH, "switch_release", *argv])
    assert done.returncode == 2 and said in done.stdout, done.stdout


# --- swap_backends.sh ---------------------------------------------------------------------

@pytest.fixture
def nginx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in nginx: a master process with two workers, `nginx -t` refusing a backends
    file that says BAD, and a `systemctl reload` that ends the workers (as a graceful reload
    does once their requests are answered) unless `busy` exists, or fails if `noreload` does."""
    bin_dir, log = tmp_path / "bin", tmp_path / "systemctl.log"
    bin_dir.mkdir()
    backends = tmp_path / "backends.conf"
    backends.write_text("server 10.0.0.1:8080;\n")
    master = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text(f"{master.pid}\n")
    stand_ins = {
        "nginx": f'#!/bin/sh\nif grep -q BAD {backends}; then\n'
                 f'  echo "nginx: [emerg] invalid parameter BAD"; exit 1\nfi\necho ok\n',
        "systemctl": f'#!/bin/sh\necho "$*" >> {log}\n[ -e {tmp_path}/noreload ] && exit 1\n'
                     f'[ -e {tmp_path}/busy ] || pkill -P {master.pid} sleep\nexit 0\n'}
    for name, text in stand_ins.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    deadline = time.monotonic() + 5
    while len(_children(master.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield backends, pid_file, log
    master.kill()
    subprocess.run(["pkill", "-P", str(master.pid)], check=False)
    master.wait()


def _children(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                          text=True).stdout.split()


def swap(backends: Path, pid_file: Path, text: str,
         wait: float = 5) -> subprocess.CompletedProcess[str]:
    return run(["sh", "-c", SWAP, "swap_backends", "--file", str(backends),
                "--wait", str(int(wait)), "--pid-file", str(pid_file)], text.encode())


def test_swap_replaces_reloads_and_waits_for_the_old_workers(nginx) -> None:
    backends, pid_file, log = nginx
    done = swap(backends, pid_file, "server 10.0.0.1:8080 down;\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert backends.read_text() == "server 10.0.0.1:8080 down;\n"
    assert sorted(p.name for p in backends.parent.glob("backends.conf*")) == ["backends.conf"]
    assert log.read_text() == "reload nginx.service\n"


def test_swap_puts_the_old_file_back_when_nginx_refuses_the_new(nginx) -> None:
    backends, pid_file, log = nginx
    done = swap(backends, pid_file, "BAD;\n")
    assert (done.returncode, done.stdout.strip()) == (3, "nginx: [emerg] invalid parameter BAD")
    assert backends.read_text() == "server 10.0.0.1:8080;\n"
    assert sorted(p.name for p in backends.parent.glob("backends.conf*")) == ["backends.conf"]
    assert not log.exists()


def test_swap_names_the_old_workers_still_busy(nginx, tmp_path) -> None:
    backends, pid_file, _ = nginx
    (tmp_path / "busy").touch()
    workers = _children(int(pid_file.read_text()))
    done = swap(backends, pid_file, "server 10.0.0.1:8080 down;\n", wait=1)
    assert done.returncode == 4
    assert sorted(done.stdout.strip().removeprefix("old workers still busy: ").split()) == sorted(
        workers)


def test_swap_says_a_failed_reload(nginx, tmp_path) -> None:
    backends, pid_file, _ = nginx
    (tmp_path / "noreload").touch()
    assert swap(backends, pid_file, "server 10.0.0.1:8080 down;\n").returncode == 5


@pytest.mark.parametrize("argv, said", [
    (["--file", "/x", "--wait"], "--wait needs a value"),
    (["--file", "/x", "--wait", "1"], "--pid-file is required"),
    (["/x", "60"], "unknown argument /x"),
])
def test_swap_refuses_bad_arguments(argv, said) -> None:
    done = run(["sh", "-c", SWAP, "swap_backends", *argv])
    assert done.returncode == 2 and said in done.stdout, done.stdout


# --- the engine's calls, run locally ------------------------------------------------------

class LocalHosts:
    """Runs what the engine sends on this machine, with /opt/ under a temporary directory
    and root:root as the test's own user (the rest of argv exactly as sent)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, host: str, argv: list[str], stdin=None, timeout: float = 60) -> Result:
        mine = f"{os.getuid()}:{os.getgid()}"
        argv = [str(self.root) + a if a.startswith("/opt/") else mine if a == "root:root"
                else sys.executable if a == "python3" else a for a in argv]
        done = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout)
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def test_the_engine_switches_and_probes_through_the_programs(tmp_path, systemctl) -> None:
    hosts = LocalHosts(tmp_path)
    package = tmp_path / "app-1.0.0.tar.gz"
    package.write_bytes(artifact({"app.py": "one"}))
    engine._switch(hosts, "app1", "app", "1.0.0", package)
    package.write_bytes(artifact({"app.py": "two"}))
    engine._switch(hosts, "app1", "app", "1.1.0", package)
    state = engine.probe(hosts, "app1", "app")
    assert (state.current, state.previous, set(state.releases), state.active) == (
        "1.1.0", "1.0.0", {"1.0.0", "1.1.0"}, True)
    engine._switch(hosts, "app1", "app", "1.0.0", None, previous="-")
    assert engine.probe(hosts, "app1", "app").current == "1.0.0"
    with pytest.raises(DeployFailed, match="app1: switching app to 9.9.9 failed: release 9.9.9 "
                                           "is not on this host"):
        engine._switch(hosts, "app1", "app", "9.9.9", None)
    assert systemctl.read_text().count("restart app.service") == 3
