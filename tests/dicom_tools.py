"""The real DICOM tools the DICOM tests run: DCMTK (``storescu``, ``echoscu``, ``dsrdump``),
dicom3tools (``dciodvfy``) and an Orthanc PACS on free localhost ports with a temporary
configuration; and ``gout-edge listen`` as a child process. Tests that need a tool skip, naming
the Debian package, only where its binary is absent (``.ci/run`` installs them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PACKAGES = {"storescu": "dcmtk", "echoscu": "dcmtk", "dsrdump": "dcmtk", "dciodvfy": "dicom3tools", "Orthanc": "orthanc"}


def tool(name: str) -> str | None:
    """The system binary ``name``, never a same-named console script from this virtual environment
    (pynetdicom installs its own ``storescu`` and ``echoscu``)."""
    venv = Path(sys.prefix).resolve()
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and venv not in Path(d).resolve().parents
            and Path(d).resolve() != venv / "bin"]
    dirs += ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
    for d in dict.fromkeys(dirs):
        found = shutil.which(name, path=d)
        if found is not None and not _python_script(found):  # another environment's pynetdicom script
            return found
    return None


def _python_script(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            first = fh.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def require(*names: str) -> dict[str, str]:
    found = {n: tool(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        pkgs = sorted({PACKAGES.get(n, n) for n in missing})
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install {' '.join(pkgs)}; .ci/run does)")
    return {n: str(p) for n, p in found.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


class Orthanc:
    """An Orthanc PACS with its own storage, DICOM port and HTTP port on localhost."""

    def __init__(self, root: Path, aet: str = "ORTHANC") -> None:
        self.binary = require("Orthanc")["Orthanc"]
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.aet = aet
        self.dicom_port, self.http_port = free_port(), free_port()
        self.config = self.root / "orthanc.json"
        self.config.write_text(json.dumps({
            "Name": "gout-edge-test", "StorageDirectory": str(self.root / "db"), "IndexDirectory": str(self.root / "db"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": aet, "DicomCheckCalledAet": False,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [], "DicomModalities": {},
            "StorageCompression": False, "ConcurrentJobs": 1, "DicomAlwaysAllowStore": True,
        }))
        self.proc: subprocess.Popen | None = None

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.dicom_port}:{self.aet}"

    def start(self) -> Orthanc:
        log = open(self.root / "orthanc.log", "ab")
        self.proc = subprocess.Popen([self.binary, str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, 30, "Orthanc to answer on its HTTP port")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
        try:
            self.get("/system")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """Kill it (SIGKILL: a PACS that crashes, and no 3 s graceful shutdown); its SQLite index survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def get(self, path: str):  # noqa: ANN201
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def instances(self) -> list[dict]:
        return self.get("/instances?expand")

    def file(self, orthanc_id: str) -> bytes:
        return self.get(f"/instances/{orthanc_id}/file")


class Node:
    """``gout-edge listen`` as a child process, its log in a file; the port read from the log."""

    def __init__(self, work: Path, *args: str) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.log_path = self.work / "listen.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    def start(self, timeout_s: float = 60) -> Node:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "gout_edge.cli", "listen", "--bind", "127.0.0.1", "--port", str(self.port or 0),
               "--spool", str(self.work / "spool"), "--out", str(self.work / "scans"), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        self.starts += 1

        def listening() -> int | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"gout-edge listen exited {self.proc.returncode}: {self.log()[-3000:]}")
            m = re.search(r"listening as \S+ on [\d.]+:(\d+)", self.log()[offset:])
            return int(m.group(1)) if m else None

        self.port = wait_for(listening, timeout_s, "gout-edge listen to listen")
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def mark(self) -> int:
        """The log's length now: ``wait_log(..., since=mark)`` looks only at what comes after."""
        return len(self.log())

    def wait_log(self, pattern: str, timeout_s: float, count: int = 1, since: int = 0) -> str:
        return wait_for(lambda: len(re.findall(pattern, self.log()[since:])) >= count and self.log(), timeout_s,
                        f"{pattern!r} ×{count} in the listen log")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    @property
    def spool(self) -> Path:
        return self.work / "spool"


def storescu(binary: str, port: int, files: list[Path], calling: str = "SCANNER", called: str = "GOUT_EDGE",
             timeout_s: float = 120) -> subprocess.CompletedProcess:
    """DCMTK storescu, verbose; ``-xy`` proposes JPEG Baseline beside the uncompressed syntaxes
    (phantom studies mix both)."""
    return subprocess.run([binary, "-v", "-xy", "-aet", calling, "-aec", called, "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=timeout_s)
