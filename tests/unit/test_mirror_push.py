"""`opsctl mirror push`: the plan (pure), the remote manifest's parsing, and a whole push
against a local directory with this machine's sh, coreutils and tar standing in for the
host (no python3 there: the mirror host is the one a bare machine's python3 comes from)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mirror_fixtures import with_mirror

from opsctl import audit
from opsctl.cli.main import main
from opsctl.errors import InvalidInput
from opsctl.mirror import push as mp
from opsctl.mirror.push import FileEntry, MirrorPushError, parse_manifest, plan
from opsctl.site.model import load_site
from opsctl.transport import Result

A, B, C = "a" * 64, "b" * 64, "c" * 64


def entry(digest: str, size: int = 10) -> FileEntry:
    return FileEntry(digest, size)


# --- the remote manifest's output --------------------------------------------------------
def test_manifest_lines_are_parsed():
    out = f"{A} 12 InRelease\n\n{B} 3456 chrony_4.3-2+deb12u1_amd64.deb\n{C} 0 pool/x y.deb\n"
    assert parse_manifest(out) == {"InRelease": entry(A, 12),
                                   "chrony_4.3-2+deb12u1_amd64.deb": entry(B, 3456),
                                   "pool/x y.deb": entry(C, 0)}
    assert parse_manifest("") == {}


@pytest.mark.parametrize(("line", "says"), [
    ("garbage", "line 1 is not 'SHA256 SIZE PATH'"),
    (f"{A} big InRelease", "line 1 is not 'SHA256 SIZE PATH'"),
    (f"{'z' * 64} 1 InRelease", "is not a sha256"),
    (f"{A} 1 ../etc/shadow", "unsafe path '../etc/shadow'"),
    (f"{A} 1 /etc/shadow", "unsafe path"),
    (f"{A} 1 .opsctl-push/x.deb", "unsafe path"),
])
def test_a_bad_manifest_line_is_named(line, says):
    with pytest.raises(MirrorPushError, match="db9: manifest line 1") as exc:
        parse_manifest(line, "db9")
    assert says in str(exc.value)


# --- the plan ----------------------------------------------------------------------------
def test_plan_sends_new_and_changed_packages_first_and_the_index_last():
    local = {"InRelease": entry(A), "Release": entry(A), "Packages.gz": entry(A),
             "Packages": entry(A), "Release.gpg": entry(A), "new_1_all.deb": entry(B),
             "same_1_all.deb": entry(C), "changed_1_all.deb": entry(B),
             "manifest.json": entry(C)}
    remote = {"InRelease": entry(B), "Release": entry(B), "Packages.gz": entry(B),
              "Packages": entry(B), "Release.gpg": entry(B), "same_1_all.deb": entry(C),
              "changed_1_all.deb": entry(A), "gone_1_all.deb": entry(A),
              "manifest.json": entry(C)}
    todo = plan(local, remote)
    assert todo.send == ("changed_1_all.deb", "new_1_all.deb", "Packages", "Packages.gz",
                         "Release", "Release.gpg", "InRelease")
    assert todo.delete == ("gone_1_all.deb",)
    assert todo.unchanged == 2


def test_a_size_difference_alone_is_a_change():
    assert plan({"x.deb": entry(A, 1)}, {"x.deb": entry(A, 2)}).send == ("x.deb",)


def test_an_identical_remote_needs_nothing():
    local = {"InRelease": entry(A), "x.deb": entry(B)}
    todo = plan(local, dict(local))
    assert todo.empty and todo.unchanged == 2


def test_an_empty_remote_gets_everything():
    local = {"InRelease": entry(A), "x.deb": entry(B)}
    assert plan(local, {}).send == ("x.deb", "InRelease")


def test_batches_bound_each_tar_stream():
    local = {"a": entry(A, 40), "b": entry(A, 40), "c": entry(A, 100), "d": entry(A, 10)}
    assert list(mp.batches(("a", "b", "c", "d"), local, limit=90)) == [["a", "b"], ["c"],
                                                                        ["d"]]


# --- a whole push, a local directory standing in for the host ----------------------------
class LocalHost:
    """Runs the argv here (sh, coreutils and tar as on the host, python3 refused); records
    every call and what it was given on stdin."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.stdins: list[str | bytes | None] = []

    def __call__(self, host: str, argv: list[str], stdin: str | bytes | None = None, *,
                 timeout: float) -> Result:
        self.calls.append(argv)
        self.stdins.append(stdin)
        if argv[0] == "python3":
            return Result(127, "", "sh: 1: python3: not found\n")
        binary = isinstance(stdin, bytes)
        done = subprocess.run(argv, input=stdin, capture_output=True, text=not binary,
                              timeout=timeout, check=False)
        out, err = done.stdout, done.stderr
        if binary:
            out, err = out.decode(), err.decode()
        return Result(done.returncode, out, err)


def make_mirror(root: Path, debs: dict[str, bytes]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.deb"):
        old.unlink()
    for name, body in debs.items():
        (root / name).write_bytes(body)
    index = ",".join(sorted(debs)).encode()
    for name in ("Packages", "Release", "Release.gpg", "InRelease"):
        (root / name).write_bytes(name.encode() + b":" + index)
    (root / "opsctl-mirror.gpg").write_bytes(b"key")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def pushed_site(site_copy, tmp_path):
    remote = tmp_path / "host" / "srv" / "opsctl-mirror"
    with_mirror(site_copy, {"host": "mon1", "path": str(remote)})
    return load_site(site_copy), remote


def test_the_manifest_script_agrees_with_the_local_manifest(tmp_path):
    root = tmp_path / "m"
    make_mirror(root, {"a_1_all.deb": b"a" * 5000, "b_1_all.deb": b"b"})
    (root / "sub").mkdir()
    (root / "sub" / "c.deb").write_bytes(b"c")
    (root / ".opsctl-push").mkdir()
    (root / ".opsctl-push" / "half.deb").write_bytes(b"half")
    remote = mp.remote_manifest(LocalHost(), "mon1", str(root))
    assert remote == mp.local_manifest(root)
    assert "sub/c.deb" in remote and not any(k.startswith(".") for k in remote)
    assert mp.remote_manifest(LocalHost(), "mon1", str(tmp_path / "nothing-yet")) == {}


def test_push_copies_then_sends_only_what_changed(pushed_site, tmp_path):
    site, remote = pushed_site
    local = tmp_path / "mirror"
    make_mirror(local, {"a_1_all.deb": b"a" * 3000, "b_1_all.deb": b"b" * 10})

    host = LocalHost()
    first = mp.push(site, host, source=local)
    assert (first.sent, first.deleted, first.unchanged) == (7, 0, 0)
    assert files(remote) == files(local)
    assert oct((remote / "a_1_all.deb").stat().st_mode & 0o777) == "0o644"

    host = LocalHost()
    again = mp.push(site, host, source=local)
    assert (again.sent, again.deleted, again.unchanged) == (0, 0, 7)
    assert [c[:2] for c in host.calls] == [["sh", "-s"]], "only the manifest is read"

    make_mirror(local, {"a_1_all.deb": b"a" * 3000, "c_2_all.deb": b"c"})
    host = LocalHost()
    third = mp.push(site, host, source=local)
    assert third.deleted == 1 and files(remote) == files(local)
    commit = host.stdins[host.calls.index(["sh", "-s"], 1)]
    moves = [line.split()[-1] for line in commit.splitlines() if line.startswith("mv ")]
    assert moves[0] == '"$root"/c_2_all.deb' and moves[-1] == '"$root"/InRelease'
    assert [line for line in commit.splitlines() if line.startswith("rm -f")] == [
        'rm -f -- "$root"/b_1_all.deb']
    assert not (remote / mp.STAGING).exists()


def test_a_failed_step_is_one_line_naming_the_host(pushed_site, tmp_path):
    site, _remote = pushed_site
    local = tmp_path / "mirror"
    make_mirror(local, {"a_1_all.deb": b"a"})

    def broken(host, argv, stdin=None, *, timeout):
        if argv[0] == "tar":
            return Result(2, "", "tar: /srv: Cannot open: No space left on device\n")
        return LocalHost()(host, argv, stdin, timeout=timeout)

    with pytest.raises(MirrorPushError, match="mon1: unpacking failed: tar: /srv: Cannot open"):
        mp.push(site, broken, source=local)


def test_no_local_mirror_is_a_clear_error(pushed_site, tmp_path):
    site, _remote = pushed_site
    with pytest.raises(MirrorPushError, match="run `opsctl mirror build` first"):
        mp.push(site, LocalHost(), source=tmp_path / "none")


def test_a_site_without_site_mirror_is_refused():
    with pytest.raises(InvalidInput) as exc:
        mp.require_mirror(load_site("reference"))
    assert exc.value.lines()[0].endswith("site.yml: site.mirror: missing: the control node "
                                         "serves this site's mirror; set site.mirror.host to "
                                         "push it to a host of the site")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_cli_without_site_mirror_exits_2_with_one_line(capsys, state_dir):
    code, _out, err = run_cli(capsys, "mirror", "push", "--site", "reference")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "site.mirror: missing" in err
    assert audit.records() == []


def test_cli_push_is_audited(capsys, state_dir, pushed_site, tmp_path, monkeypatch):
    site, remote = pushed_site
    local = tmp_path / "mirror"
    make_mirror(local, {"a_1_all.deb": b"a"})
    monkeypatch.setattr(mp, "mirror_dir", lambda: local)
    monkeypatch.setattr(mp, "for_site",
                        lambda _site, _via: type("T", (), {"run": LocalHost()})())
    code, out, err = run_cli(capsys, "mirror", "push", "--site", str(site.directory),
                             "--output", "json")
    assert code == 0, err
    assert json.loads(out)["sent"] == 6
    record = audit.records()[-1]
    assert record["action"] == "mirror.push"
    assert record["args"] == {"site": site.name, "host": "mon1", "path": str(remote)}
    assert record["result"].startswith("ok: sent 6 files")


def test_cli_failed_push_is_audited_too(capsys, state_dir, pushed_site, tmp_path, monkeypatch):
    site, _remote = pushed_site
    monkeypatch.setattr(mp, "mirror_dir", lambda: tmp_path / "none")
    code, _out, err = run_cli(capsys, "mirror", "push", "--site", str(site.directory))
    assert code == 1 and "run `opsctl mirror build` first" in err
    assert audit.records()[-1]["result"].startswith("failed: no mirror at")


def test_the_mirror_server_role_installs_what_the_mirror_holds():
    from opsctl.mirror.packages import role_packages

    root = Path(__file__).resolve().parents[2] / "roles"
    assert role_packages(root)["mirror_server"] == role_packages(root)["lb"]



def test_the_commit_changes_nothing_unless_every_staged_file_is_there(tmp_path):
    root, staging = tmp_path / "m", tmp_path / "m" / mp.STAGING
    staging.mkdir(parents=True)
    (staging / "a_1_all.deb").write_bytes(b"a")
    (root / "old_1_all.deb").write_bytes(b"o")
    script = mp.commit_script(str(root), str(staging), ("a_1_all.deb", "InRelease"),
                              ("old_1_all.deb",))
    done = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1 and done.stderr.strip() == "staged files missing: InRelease"
    assert sorted(p.name for p in root.iterdir()) == [".opsctl-push", "old_1_all.deb"]


def test_the_commit_quotes_what_it_is_given(tmp_path):
    root, staging = tmp_path / "a mirror", tmp_path / "a mirror" / mp.STAGING
    (staging / "pool" / "x").mkdir(parents=True)
    (staging / "pool" / "x" / "it's_1_all.deb").write_bytes(b"q")
    script = mp.commit_script(str(root), str(staging), ("pool/x/it's_1_all.deb",), ())
    subprocess.run(["sh", "-s"], input=script, text=True, check=True)
    assert (root / "pool" / "x" / "it's_1_all.deb").read_bytes() == b"q"
    assert not staging.exists()
