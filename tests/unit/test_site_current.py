"""Naming the site: --site > OPSCTL_SITE > `opsctl site use` > reference only when alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from opsctl.cli.main import cli, main
from opsctl.errors import Ambiguous, NotFound
from opsctl.site import current
from opsctl.site.current import SiteChoice, resolve

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose inventory/ holds only the reference site."""
    shutil.copytree(ROOT / "inventory" / "reference", tmp_path / "inventory" / "reference")
    monkeypatch.setenv("OPSCTL_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def provinces(root: Path) -> Path:
    """The same project once a province has its own site beside the reference one."""
    from opsctl.site.new import new_site

    new_site("gansu", cidr_base="172.31.200.0/22")
    return root


def test_reference_when_it_is_the_only_site(root: Path) -> None:
    assert resolve(None) == SiteChoice("reference", current.ALONE)


def test_another_site_means_the_site_must_be_named(provinces: Path) -> None:
    with pytest.raises(Ambiguous) as exc:
        resolve(None)
    [line] = exc.value.lines()
    assert "gansu, reference" in line
    assert all(way in line for way in ("--site NAME", "OPSCTL_SITE=NAME", "opsctl site use NAME"))


def test_flag_beats_environment_beats_stored(provinces: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    current.use("gansu")
    assert resolve(None) == SiteChoice("gansu", current.STORED)
    monkeypatch.setenv("OPSCTL_SITE", "reference")
    assert resolve(None) == SiteChoice("reference", current.ENVIRONMENT)
    assert resolve("gansu") == SiteChoice("gansu", current.FLAG)
    monkeypatch.setenv("OPSCTL_SITE", "")  # empty is unset
    assert resolve(None) == SiteChoice("gansu", current.STORED)


def test_stored_beats_reference_even_when_alone(root: Path, tmp_path: Path) -> None:
    shutil.copytree(root / "inventory" / "reference", tmp_path / "elsewhere")
    stored, _ = current.use(str(tmp_path / "elsewhere"))
    assert stored == str((tmp_path / "elsewhere").resolve())  # a directory: its absolute path
    assert resolve(None) == SiteChoice(stored, current.STORED)
    assert current.use(str(root / "inventory" / "reference"))[0] == "reference"
    assert current.forget() and resolve(None).source == current.ALONE


def test_a_site_that_does_not_load_is_not_stored(root: Path, site_copy: Path) -> None:
    (site_copy / "hosts.yml").write_text("all: [not, a, mapping]\n")
    for bad in ("no-such-site", str(site_copy)):
        with pytest.raises(Exception):  # noqa: B017 - NotFound or InvalidInput
            current.use(bad)
        assert not current.choice_file().exists()


def test_a_stored_site_that_went_away_says_where_it_came_from(root: Path) -> None:
    current.choice_file().parent.mkdir(parents=True, exist_ok=True)
    current.choice_file().write_text("gone\n")
    with pytest.raises(NotFound, match=r"site 'gone'.*\(from opsctl site use\)"):
        current.resolve_and_load(None)


def test_announcement_names_the_site_and_the_source(root: Path) -> None:
    from opsctl.site import load_site

    loaded = load_site("reference")
    assert SiteChoice("reference", current.FLAG).announcement(loaded) == \
        "site reference (from --site)"
    assert SiteChoice("reference", current.ALONE).announcement(loaded) == \
        "site reference (the only site in inventory/)"
    by_path = SiteChoice(str(loaded.directory), current.ENVIRONMENT).announcement(loaded)
    assert by_path == f"site reference at {loaded.directory} (from OPSCTL_SITE)"


@pytest.mark.parametrize("args", [
    ("apply",), ("harden",), ("up",), ("deploy", "query-service", "1.1.0"),
    ("rollback", "query-service"), ("db", "switchover"), ("db", "failover"),
    ("backup", "run"), ("backup", "drill"), ("jobs", "run", "log-cleanup"), ("lab", "up"),
    ("lab", "down"), ("lab", "stop", "db1"), ("site", "validate"), ("status",),
])
def test_an_unnamed_site_among_several_is_one_line_exit_2_and_changes_nothing(
        capsys: pytest.CaptureFixture[str], provinces: Path, args: tuple[str, ...]) -> None:
    state = current.state_dir()
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("opsctl: which site?")
    assert not state.exists() or list(state.iterdir()) == []


class Announced(Exception):
    pass


@pytest.mark.parametrize("args", [
    ("apply",), ("harden",), ("up",), ("deploy", "query-service", "1.1.0"),
    ("rollback", "query-service"), ("db", "switchover"), ("db", "failover"),
    ("backup", "run"), ("backup", "drill"), ("jobs", "run", "log-cleanup"), ("lab", "up"),
    ("lab", "down"), ("lab", "stop", "db1"),
])
def test_every_changing_command_names_its_site_before_anything_else(
        monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    """The announcement stops the command here, so nothing after it can have run first."""
    said: list[str] = []

    def announce(self: SiteChoice, loaded=None) -> str:
        said.append(f"{self.site} ({self.how})")
        raise Announced

    monkeypatch.setattr(SiteChoice, "announcement", announce)
    result = CliRunner().invoke(cli, [*args, "--site", "reference"])
    assert isinstance(result.exception, Announced), (result.output, result.exception)
    assert said == ["reference (from --site)"]


def test_the_announcement_is_the_first_line_of_output_before_the_error() -> None:
    result = CliRunner().invoke(cli, ["jobs", "run", "no-such-job", "--site", "reference"])
    assert isinstance(result.exception, NotFound)  # main() makes it one line, exit 2
    assert result.stdout.splitlines() == ["site reference (from --site)"]


def test_with_json_output_the_announcement_goes_to_stderr_and_stdout_stays_json() -> None:
    result = CliRunner().invoke(cli, ["jobs", "run", "no-such-job", "--site", "reference",
                                      "-o", "json"])
    assert isinstance(result.exception, NotFound)
    assert result.stderr.splitlines() == ["site reference (from --site)"]
    assert result.stdout == ""


def test_an_error_after_the_announcement_is_still_one_line_on_stderr(
        capsys: pytest.CaptureFixture[str], root: Path) -> None:
    code, out, err = run(capsys, "deploy", "billing", "1.0.0")
    assert code == 2
    assert out == "site reference (the only site in inventory/)\n"
    assert len(err.splitlines()) == 1 and "unknown component 'billing'" in err


def test_site_use_stores_prints_and_clears(capsys: pytest.CaptureFixture[str],
                                           provinces: Path) -> None:
    code, _, err = run(capsys, "site", "use")
    assert code == 2 and err.startswith("opsctl: which site?")
    code, out, _ = run(capsys, "site", "use", "gansu")
    assert code == 0 and out.startswith("site gansu: commands without --site act on it")
    assert current.choice_file().read_text() == "gansu\n"
    code, out, _ = run(capsys, "site", "use")
    assert (code, out) == (0, "site gansu (from opsctl site use)\n")
    code, out, _ = run(capsys, "site", "validate")
    assert code == 0 and out.startswith("site gansu: valid")
    code, _, err = run(capsys, "site", "use", "no-such-site")
    assert code == 2 and "no-such-site" in err
    assert current.choice_file().read_text() == "gansu\n"
    code, out, _ = run(capsys, "site", "use", "--clear")
    assert (code, out) == (0, "no stored site (forgot gansu)\n")
    assert not current.choice_file().exists()


def test_site_use_says_when_the_environment_overrides_it(
        capsys: pytest.CaptureFixture[str], root: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_SITE", "reference")
    code, out, err = run(capsys, "site", "use", "reference")
    assert code == 0 and "OPSCTL_SITE is set" in err
    code, out, _ = run(capsys, "site", "use", "-o", "json")
    assert '"source": "OPSCTL_SITE"' in out
