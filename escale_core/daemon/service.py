"""``escale service install|uninstall``: the daemon run by the user's service manager (DESIGN §9).

On Linux a systemd user unit (``Type=notify``: the daemon speaks sd_notify, :mod:`.sdnotify`;
restarted on failure and by the watchdog; logging to the journal, :mod:`.logs`); on macOS a
launchd agent. The unit runs the very command ``escale start`` runs in the background, with the
configuration file pinned by its absolute path, since the service manager's environment has
neither the shell's ``$ESCALE_CONFIG`` nor its working folder.

The unit and the plist are made by pure functions (:func:`systemd_unit`,
:func:`launchd_plist`), so that both are tested on any system.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import find_config_file, load_config
from ..errors import EscaleError
from ..plugins import get_plugins
from ..state import state_dir
from .pidfile import get_pid_file, running_pid

UNIT_NAME = "escale.service"
LAUNCHD_LABEL = "org.escale.daemon"
DOCUMENTATION = "https://github.com/escale/escale/blob/main/docs/daemon.md"
#: systemd restarts a daemon whose main loop sent no WATCHDOG=1 for this long
WATCHDOG_SEC = 60
#: a daemon that failed is started again after this pause (not in a tight loop)
RESTART_SEC = 10
#: the daemon's own stop waits up to 30 s for the rounds running; systemd waits longer
TIMEOUT_STOP_SEC = 60
#: the environment the service keeps from the installing shell: where the state is (the pid
#: file and control socket that ``escale status`` looks for) and which plugins load
CARRIED = ("ESCALE_STATE_DIR", "ESCALE_LOAD_PLUGINS", "ESCALE_DISABLE_PLUGINS")
#: how long a systemctl or launchctl call may take
TOOL_TIMEOUT = 120


def daemon_command(config_file: Optional[Path]) -> list[str]:
    """The daemon's command line: what ``escale start`` runs in the background, and the
    service's."""
    config = ["-c", str(config_file)] if config_file is not None else []
    return [sys.executable, "-m", "escale_core", *config, "daemon-run"]


def carried_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of :data:`CARRIED` set in ``env``."""
    return {name: env[name] for name in CARRIED if env.get(name)}


def _unit_word(text: str, *, command: bool) -> str:
    """``text`` as one word of a unit file: ``%`` is a specifier and ``$`` (in commands) a
    variable to systemd, so both are doubled; quoted when it holds blanks or quotes."""
    text = text.replace("%", "%%")
    if command:
        text = text.replace("$", "$$")
    if re.fullmatch(r"[\w@%$+=:,./-]+", text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def systemd_unit(argv: list[str], environment: Mapping[str, str]) -> str:
    """The systemd user unit that runs ``argv`` (:func:`daemon_command`)."""
    lines = [
        "[Unit]",
        "Description=escale: folders kept in sync through a relay storage",
        f"Documentation={DOCUMENTATION}",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(_unit_word(arg, command=True) for arg in argv),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        f"WatchdogSec={WATCHDOG_SEC}",
        f"TimeoutStopSec={TIMEOUT_STOP_SEC}",
        "SyslogIdentifier=escale",
    ]
    lines += [
        "Environment=" + _unit_word(f"{name}={value}", command=False)
        for name, value in sorted(environment.items())
    ]
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def launchd_plist(argv: list[str], environment: Mapping[str, str], output: Path) -> bytes:
    """The launchd agent that runs ``argv``, started at login and again if it fails; what it
    prints before its log is set up goes to ``output``."""
    agent: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # a stop (exit 0) is not undone
        "ThrottleInterval": RESTART_SEC,
        "ProcessType": "Background",
        "StandardOutPath": str(output),
        "StandardErrorPath": str(output),
    }
    if environment:
        agent["EnvironmentVariables"] = dict(environment)
    return plistlib.dumps(agent)


def systemd_unit_path(env: Mapping[str, str]) -> Path:
    """Where the user unit goes: ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config`` by default)."""
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def launchd_plist_path(env: Mapping[str, str]) -> Path:
    """Where the agent goes: ``~/Library/LaunchAgents``."""
    home = Path(env.get("HOME", "~")).expanduser()
    return home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


@dataclass
class ServiceFile:
    """A service definition made for a configuration: its place, content and kind."""

    path: Path
    content: bytes
    launchd: bool
    #: the pid file of the configuration's daemon
    pid_file: Path


def service_file(config_file: Optional[Path], env: Mapping[str, str]) -> ServiceFile:
    """The unit (Linux) or plist (macOS) for the daemon of ``config_file`` (``None``: the
    usual places, pinned now).

    :raises ConfigError: no configuration, or one that does not load.
    """
    config = load_config(config_file, get_plugins())  # a broken configuration fails now
    argv = daemon_command(find_config_file(config_file).resolve())
    environment = carried_environment(env)
    if sys.platform == "darwin":
        output = state_dir(config.globals.state_dir) / "escale-launchd.log"
        plist = launchd_plist(argv, environment, output.resolve())
        return ServiceFile(launchd_plist_path(env), plist, True, get_pid_file(config))
    unit = systemd_unit(argv, environment).encode("utf-8")
    return ServiceFile(systemd_unit_path(env), unit, False, get_pid_file(config))


def refuse_if_started(service: ServiceFile) -> None:
    """Refuse to install while ``escale start``'s daemon runs: the service's daemon would be
    refused its pid file, and systemd would restart it again and again. (A daemon running
    while the service is installed is the service's: installing again updates the file.)

    :raises EscaleError: a daemon runs on this configuration and no service is installed.
    """
    pid = running_pid(service.pid_file)
    if pid is not None and not service.path.exists():
        raise EscaleError(
            f"escale's daemon is running (pid {pid}): stop it with 'escale stop', then run "
            "'escale service install' again"
        )


def _run(*command: str) -> Optional[str]:
    """Run a service manager's command; ``None`` when it succeeded, else why it failed."""
    if shutil.which(command[0]) is None:
        return f"{command[0]} is not installed"
    try:
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if run.returncode == 0:
        return None
    lines = (run.stderr or run.stdout).strip().splitlines()
    return lines[0] if lines else f"exit {run.returncode}"


def write_file(path: Path, content: bytes) -> None:
    """Write ``path`` (and its folders).

    :raises EscaleError: it cannot be written, in one line naming it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)  # a half-written unit is never left for the manager to read
    except OSError as exc:
        raise EscaleError(
            f"{path}: {(exc.strerror or str(exc)).lower()}; make its folder writable, or "
            "use 'escale service install --print' and install the file by hand"
        ) from None


def install(config_file: Optional[Path], env: Mapping[str, str]) -> str:
    """Write the service file and start the service; return what was done, in one line.

    :raises EscaleError: a daemon started by ``escale start`` runs, the file cannot be
        written, or the service manager refused the service.
    """
    service = service_file(config_file, env)
    refuse_if_started(service)
    write_file(service.path, service.content)
    if service.launchd:
        return _launchd_install(service.path)
    reason = _run("systemctl", "--user", "daemon-reload")
    if reason is not None:
        return (
            f"wrote {service.path}; systemctl --user is not available here ({reason}): run "
            f"'systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}'"
        )
    failed = _run("systemctl", "--user", "enable", "--now", UNIT_NAME)
    if failed is not None:
        raise EscaleError(
            f"wrote {service.path}, but systemd did not start it ({failed}); see "
            f"'systemctl --user status {UNIT_NAME}' and 'journalctl --user -u escale'"
        )
    return (
        f"installed {service.path}: escale's daemon runs as {UNIT_NAME} "
        "('systemctl --user status escale', 'journalctl --user -u escale')"
    )


def _launchd_install(path: Path) -> str:
    domain = f"gui/{os.getuid()}"
    _run("launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}")  # an older agent: replaced
    reason = _run("launchctl", "bootstrap", domain, str(path))
    if reason is not None:
        return (
            f"wrote {path}; launchctl could not load it ({reason}): run "
            f"'launchctl bootstrap {domain} {path}'"
        )
    return f"installed {path}: escale's daemon runs as the launchd agent {LAUNCHD_LABEL}"


def uninstall(env: Mapping[str, str]) -> str:
    """Stop and remove the service; return what was done, in one line (also when nothing
    was installed).

    :raises EscaleError: the file cannot be removed.
    """
    launchd = sys.platform == "darwin"
    path = launchd_plist_path(env) if launchd else systemd_unit_path(env)
    if not path.exists():
        return f"escale's service is not installed (no {path})"
    if launchd:
        stopped = _run("launchctl", "bootout", f"gui/{os.getuid()}/{LAUNCHD_LABEL}") is None
    else:
        stopped = _run("systemctl", "--user", "disable", "--now", UNIT_NAME) is None
        # disable's own work, for a manager that is not reachable: the link enabling the unit
        link = path.parent / "default.target.wants" / UNIT_NAME
        if link.is_symlink():
            link.unlink()
    try:
        path.unlink()
    except OSError as exc:
        raise EscaleError(
            f"{path}: {(exc.strerror or str(exc)).lower()}; remove it by hand"
        ) from None
    if not launchd and stopped:
        _run("systemctl", "--user", "daemon-reload")
    done = "stopped the service and removed" if stopped else "removed"
    return f"{done} {path}" + ("" if stopped else " (the service manager was not reachable)")
