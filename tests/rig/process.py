"""Free loopback ports and child processes that are always stopped (process group, wait)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

LOOPBACK = "127.0.0.1"

# Ports handed out by free_port() in this process: the kernel may offer a just-closed port
# again, and two rig components must never be given the same one.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


class RigError(Exception):
    """A rig component failed to start or answer; carries its name and its log tail."""

    def __init__(self, component: str, reason: str, log_tail: str = "") -> None:
        self.component = component
        self.reason = reason
        self.log_tail = log_tail
        message = f"{component}: {reason}"
        if log_tail:
            message += f"\n--- {component} log (tail) ---\n{log_tail}"
        super().__init__(message)


def require_tool(name: str, package: str) -> str:
    """Absolute path of ``name``; a missing tool is an error naming the Debian package."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise RigError(name, f"not installed (Debian package {package!r})")
    return path


def port_is_free(port: int, *, udp: bool = False) -> bool:
    """True when nothing listens on 127.0.0.1:``port`` (TCP, and UDP when asked)."""
    kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            # TIME_WAIT leftovers of earlier connections must not count as "in use"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


def free_port(*, udp: bool = False) -> int:
    """A loopback port nobody uses right now (TCP, and the same UDP port when ``udp``)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        with _handed_out_lock:
            if port in _handed_out:
                continue
            if port_is_free(port, udp=udp):
                _handed_out.add(port)
                return port
    raise RigError("free_port", "no free loopback port found in 100 tries")


def claim_port(port: int | None, component: str, *, udp: bool = False) -> int:
    """``port`` checked free (a stray server would answer our probes), or a fresh free port."""
    if port is None:
        return free_port(udp=udp)
    if not port_is_free(port, udp=udp):
        raise RigError(component, f"port {port} on {LOOPBACK} is already in use")
    return port


def chosen_port(port: int | None, component: str, what: str = "") -> int:
    """``port`` once start() has chosen it; asked for earlier, an error naming the port."""
    if port is None:
        label = f"{what} port" if what else "port"
        raise RigError(component, f"not started: no {label} chosen yet")
    return port


def read_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One child in its own process group, logging to a file; stop() signals the group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        pid_path: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.pid_path = pid_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self._proc is not None:
            raise RigError(self.name, "already started")
        self._log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own group: stop() reaches every child it forks
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise RigError(self.name, f"cannot start {self.argv[0]}: {exc}") from exc
        _live.add(self)
        if self.pid_path is not None:
            self.pid_path.write_text(f"{self._proc.pid}\n")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        if self._log is not None:
            self._log.flush()
        return read_tail(self.log_path, lines)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL after ``timeout``; always reaps. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            # children that outlived the leader still carry its group id
            _signal_group(proc.pid, signal.SIGKILL)
        finally:
            self._proc = None
            _live.discard(self)
            if self._log is not None:
                self._log.close()
                self._log = None
            if self.pid_path is not None:
                self.pid_path.unlink(missing_ok=True)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def pid_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # the state letter follows the parenthesised command name, which may contain spaces
    return stat.rpartition(")")[2].split()[0] != "Z"


_live: set[ManagedProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    # last resort when a test run is torn down without fixture finalizers
    for proc in list(_live):
        proc.stop(timeout=1.0)


class RigService:
    """``with X(...) as x:`` for every rig component: start on enter, always stop on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProcessService(RigService):
    """A rig component that is one :class:`ManagedProcess` in ``workdir``.

    Subclasses provide ``log_path``, ``start()`` (ending in :meth:`_launch`) and
    ``_wait_ready()`` (normally one :meth:`_poll_until_ready`); a start that does not get
    ready stops the process again, and every error carries ``component`` and the log tail.
    """

    def __init__(self, component: str, workdir: Path, startup_timeout: float) -> None:
        self.component = component
        self.workdir = workdir.resolve()
        self._startup_timeout = startup_timeout
        self._proc: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def log_tail(self, lines: int = 40) -> str:
        if self._proc is not None:
            return self._proc.log_tail(lines)
        return read_tail(self.log_path, lines)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def _refuse_second_start(self) -> None:
        if self._proc is not None:
            raise RigError(self.component, "already started")

    def _run_checked(self, argv: Sequence[str], what: str) -> str:
        """Runs a checker/helper tool to completion; a non-zero exit is a RigError."""
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RigError(
                self.component,
                f"{what} failed (exit {result.returncode})",
                (result.stdout + result.stderr).strip(),
            )
        return result.stdout

    def _launch(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        pid_path: Path | None = None,
    ) -> None:
        proc = ManagedProcess(
            self.component,
            argv,
            cwd=self.workdir,
            log_path=self.log_path,
            env=env,
            pid_path=pid_path,
        )
        proc.start()
        self._proc = proc
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        raise NotImplementedError

    def _poll_until_ready(
        self, not_ready: Callable[[], str | None], *, interval: float = 0.02
    ) -> None:
        """Calls ``not_ready`` until it returns None. What it returns otherwise is the
        reason reported once the start-up timeout has passed; the process exiting first
        is reported at once."""
        deadline = time.monotonic() + self._startup_timeout
        while True:
            proc = self._proc
            if proc is None or not proc.alive():
                tail = proc.log_tail() if proc is not None else ""
                raise RigError(self.component, "exited during start-up", tail)
            reason = not_ready()
            if reason is None:
                return
            if time.monotonic() > deadline:
                raise RigError(self.component, reason, proc.log_tail())
            time.sleep(interval)
