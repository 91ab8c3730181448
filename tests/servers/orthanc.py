"""Orthanc with its DICOMweb plugin, on a free loopback port, for the DICOMweb tests and benchmark.

The configuration is written by :class:`OrthancServer` into a temporary folder that also
holds the storage: HTTP only (no DICOM port), remote access refused (Orthanc 1.10 binds
every address and answers only loopback clients then), the DICOMweb plugin at
``/dicom-web/``, optionally HTTP Basic authentication (``users={"name": "password"}``).
Files are sent over the REST API (``POST /instances``) with an empty ``Expect:`` header:
with ``Expect: 100-continue`` Orthanc makes each upload wait a second.

    with OrthancServer() as server:
        series = server.upload(files)          # -> {(study, series): [sop uids]}
        url = server.series_url(study, series)  # https://127.0.0.1:PORT/dicom-web/studies/...
"""
from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

from . import ProcessServer, free_port, program, require, start_process

ORTHANC_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc", "/usr/local/bin/Orthanc")
PLUGIN_PATTERNS = ("/usr/share/orthanc/plugins*/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                   "/usr/local/share/orthanc/plugins*/libOrthancDicomWeb.so")


def orthanc_path() -> str | None:
    return program("Orthanc", *ORTHANC_CANDIDATES)


def dicomweb_plugin() -> str | None:
    for pattern in PLUGIN_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def require_orthanc() -> None:
    """Skip (fail when CI is set) without Orthanc and its DICOMweb plugin."""
    require("Orthanc", orthanc_path() is not None, "install the Debian package orthanc")
    require("Orthanc's DICOMweb plugin", dicomweb_plugin() is not None, "install the Debian package orthanc-dicomweb")


class OrthancServer(ProcessServer):
    """An Orthanc process with the DICOMweb plugin; ``url`` is its REST root, ``dicomweb`` the DICOMweb root."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.port = 0
        self.url = ""
        self.dicomweb = ""
        self._pool: object = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, attempts: int = 3) -> OrthancServer:
        binary, plugin = orthanc_path(), dicomweb_plugin()
        if binary is None or plugin is None:
            raise RuntimeError("Orthanc or its DICOMweb plugin is not installed")
        self._folder = tempfile.TemporaryDirectory(prefix="wsikit-orthanc-")
        folder = Path(self._folder.name)
        for attempt in range(attempts):  # the free port may be taken before Orthanc binds it
            self.port = free_port()
            config = {
                "Name": "wsikit-test", "StorageDirectory": str(folder / "storage"),
                "IndexDirectory": str(folder / "storage"), "HttpPort": self.port, "DicomServerEnabled": False,
                "RemoteAccessAllowed": False, "AuthenticationEnabled": bool(self.users),
                "RegisteredUsers": self.users, "Plugins": [plugin], "HttpCompressionEnabled": False,
                "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
                "HttpThreadsCount": 16, "StorageCompression": False, "HttpTimeout": 60,
            }
            (folder / "orthanc.json").write_text(json.dumps(config))
            self.url = f"http://127.0.0.1:{self.port}"
            self.dicomweb = f"{self.url}/dicom-web"
            try:
                with open(folder / "orthanc.log", "ab") as log:
                    self._process = start_process([binary, str(folder / "orthanc.json")], self.port,
                                                  ready=self._wait_ready, cwd=folder, stdout=log,
                                                  stderr=subprocess.STDOUT)
                return self
            except RuntimeError:
                if attempt == attempts - 1:
                    raise RuntimeError(f"Orthanc did not start; its log:\n{self.log()[-2000:]}") from None
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("Orthanc exited")
            try:
                status, _ = self.request("GET", "/system")
                if status == 200:
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("Orthanc did not answer")

    def log(self) -> str:
        if self._folder is None:
            return ""
        try:
            return (Path(self._folder.name) / "orthanc.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- REST ------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """The Basic authentication header of the first registered user (none without users)."""
        if not self.users:
            return {}
        user, password = next(iter(self.users.items()))
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        import urllib3

        if self._pool is None:
            self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))
        sent = dict(self.auth_headers())
        sent.update(headers or {})
        response = self._pool.request(method, self.url + path, body=body, headers=sent)  # type: ignore[attr-defined]
        return response.status, response.data

    def upload(self, files: Iterable[str | os.PathLike[str]]) -> dict[tuple[str, str], list[str]]:
        """Store DICOM files; returns {(study UID, series UID): [SOP instance UIDs]} of what was stored."""
        import pydicom

        stored: dict[tuple[str, str], list[str]] = {}
        for path in files:
            data = Path(path).read_bytes()
            sent = {"Expect": "", "Content-Type": "application/dicom"}
            status, answer = self.request("POST", "/instances", data, sent)
            if status != 200:
                raise RuntimeError(f"Orthanc refused {path}: HTTP {status} {answer[:300]!r}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # real files bend the standard (over-long UIDs)
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                                     specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
                key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
                stored.setdefault(key, []).append(str(ds.SOPInstanceUID))
        return stored

    def series_url(self, study: str, series: str, root: str | None = None) -> str:
        """The DICOMweb URL of a series (through ``root`` instead of the server's own, e.g. a proxy's)."""
        return f"{root or self.dicomweb}/studies/{study}/series/{series}"


__all__ = ["OrthancServer", "dicomweb_plugin", "orthanc_path", "require_orthanc"]
