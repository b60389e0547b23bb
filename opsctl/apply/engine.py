"""How Ansible talks to hosts: Mitogen's strategy when installed, else SSH with pipelining.

Both keep one SSH connection per host (ControlPersist in ansible.cfg). Mitogen also keeps
a Python interpreter on the far side for the whole run instead of one per task, which is
where most of a no-change run's time goes.
"""

from __future__ import annotations

from pathlib import Path

ENGINES = ("auto", "mitogen", "ssh")


def mitogen_strategy_dir() -> Path | None:
    try:
        import ansible_mitogen  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    path = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return path if path.is_dir() else None


def engine_env(engine: str) -> tuple[str, dict[str, str]]:
    """The engine actually used and the environment that selects it."""
    strategies = mitogen_strategy_dir()
    if engine == "mitogen" and strategies is None:
        from opsctl.errors import PrerequisiteMissing  # noqa: PLC0415

        raise PrerequisiteMissing("mitogen is not installed (pip install '.[accel]')")
    if engine in ("auto", "mitogen") and strategies is not None:
        return "mitogen", {"ANSIBLE_STRATEGY_PLUGINS": str(strategies),
                           "ANSIBLE_STRATEGY": "mitogen_linear"}
    return "ssh", {}
