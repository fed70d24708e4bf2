"""moto's S3 server as a separate process.

Fixtures:

* ``s3_server``: one server for the session, **with authentication**: moto checks signatures
  and IAM policies once its first three actions (creating an IAM user, its policy and its access
  key) are done, so a wrong key or secret is refused as on AWS. Credentials reach escale as a
  ``password_file`` holding ``key:secret``.
* ``s3_server_own``: a private server that a fault test may kill and restart on the same port.
  moto keeps objects in memory, so this one records every request (moto's recorder,
  ``MOTO_ENABLE_RECORDING``) to a file in its data folder, and a restart replays the recorded
  writes: the objects stored before the crash are there again, as on a real S3. It accepts any
  credentials (replayed requests carry old signatures).

Each server has a fresh bucket; ``server.url(folder)`` is the repository ``folder`` under its
``repos/`` prefix.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import re
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import pytest

from . import RelayServer, ServerProcess, on_free_port

#: moto lets this many requests through unauthenticated before it checks credentials.
SETUP_ACTIONS = 3
_UPLOAD_ID = re.compile(r"(?:^|&)uploadId=([^&]*)")


@dataclass
class MotoProcess(ServerProcess):
    """moto_server; with ``recording``, a (re)start replays the writes recorded there."""

    recording: Optional[Path] = None

    def start(self, timeout: float = 20.0) -> MotoProcess:
        super().start(timeout)
        if self.recording is not None and self.recording.exists():
            self._api("stop-recording")  # the replay must not be recorded again
            replay(self.recording, self.port)
            self._api("start-recording")
        return self

    def _api(self, action: str) -> None:
        url = f"http://127.0.0.1:{self.port}/moto-api/recorder/{action}"
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30).close()


def replay(recording: Path, port: int) -> None:
    """Send the recorded writes (PUT, POST, DELETE) again, in order.

    Multipart upload ids are new on the restarted server: each recorded id is mapped to the id
    of the matching replayed ``CreateMultipartUpload``. A last line cut by the crash is skipped:
    moto records a request before handling it, so that request never completed.
    """
    uploads: dict[str, str] = {}  # recorded upload id -> replayed one
    created: dict[str, str] = {}  # object path -> upload id of its last replayed creation
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    with open(recording, encoding="utf-8") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            url = urlsplit(entry["url"])
            if entry["method"] not in ("PUT", "POST", "DELETE") or url.path.startswith("/moto"):
                continue
            query = url.query
            match = _UPLOAD_ID.search(query)
            if match is not None:
                old = match.group(1)
                if old not in uploads and url.path in created:
                    uploads[old] = created.pop(url.path)
                query = query.replace(f"uploadId={old}", f"uploadId={uploads.get(old, old)}")
            body = entry.get("body") or ""
            data = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
            headers = {
                k: v
                for k, v in entry["headers"].items()
                if k.lower() not in ("host", "content-length", "transfer-encoding", "expect")
            }
            conn.request(entry["method"], url.path + (f"?{query}" if query else ""), data, headers)
            response = conn.getresponse()
            answer = response.read()
            if "uploads" in query.split("&") and response.status == 200:
                found = re.search(rb"<UploadId>([^<]+)</UploadId>", answer)
                if found is not None:
                    created[url.path] = found.group(1).decode()
    conn.close()


@dataclass
class S3Server(RelayServer):
    """A moto server with one bucket; ``key``/``secret`` are valid credentials."""

    endpoint: str = ""
    bucket: str = ""
    key: str = ""
    secret: str = ""
    recording: Optional[Path] = None

    @property
    def credentials(self) -> dict[str, str]:
        """Relay options that authenticate (as the section's username and password would)."""
        return {"username": self.key, "password": self.secret}


def moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def start_s3(folder: Path, *, auth: bool) -> S3Server:
    """Start moto on a free port of 127.0.0.1 with a fresh bucket.

    With ``auth``, create an IAM user allowed everything and use its access key; otherwise
    record requests into ``folder`` so that a restart finds the stored objects again.
    """
    for module in ("moto", "flask", "s3fs", "botocore"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[test]' (moto[server])")
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    recording = None
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_ACTIONS)
    else:
        recording = folder / "recording.jsonl"
        env.update(MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=str(recording))
    process = on_free_port(
        lambda port: MotoProcess(
            moto_command(port), port, folder / "moto.log", env=env, recording=recording
        ).start()
    )
    port = process.port
    endpoint = f"http://127.0.0.1:{port}"
    key, secret = "escale-test-key", "escale-test-secret"
    try:
        if auth:
            key, secret = iam_user(endpoint)
        bucket = f"escale-{uuid.uuid4().hex[:12]}"
        from s3fs import S3FileSystem

        fs = S3FileSystem(key=key, secret=secret, endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir(bucket)  # no region: s3fs would send a LocationConstraint moto refuses
    except BaseException:
        process.stop()
        raise
    secret_file = folder / "s3-credentials"
    secret_file.write_text(f"{key}:{secret}\n", encoding="utf-8")
    return S3Server(
        "s3",
        process,
        f"s3://{bucket}/repos",
        config=f'password_file = "{secret_file}"',
        relay_options={"endpoint_url": endpoint},
        endpoint=endpoint,
        bucket=bucket,
        key=key,
        secret=secret,
        recording=recording,
    )


def iam_user(endpoint: str) -> tuple[str, str]:
    """An IAM user allowed everything, and its access key (the first moto actions)."""
    import botocore.session

    iam = botocore.session.get_session().create_client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="escale")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="escale", PolicyName="all", PolicyDocument=json.dumps(policy))
    access = iam.create_access_key(UserName="escale")["AccessKey"]
    return str(access["AccessKeyId"]), str(access["SecretAccessKey"])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server (moto, credentials checked) for the session, with one bucket."""
    server = start_s3(tmp_path_factory.mktemp("s3"), auth=True)
    yield server
    server.server.stop()


@pytest.fixture
def s3_server_own(tmp_path: Path) -> Iterator[S3Server]:
    """A private S3 server whose objects survive a kill and restart (recorded, replayed)."""
    server = start_s3(tmp_path / "s3-data", auth=False)
    yield server
    server.server.stop()
