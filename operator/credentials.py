"""The operator's identity: a kubeconfig or the in-cluster service account, read by the official loader.

The official client's loader understands every kubeconfig form (exec plugins, inline certificates,
token files), but importing the `kubernetes` package costs the process ~52 MB of RSS that it never
gives back (its 600+ generated model classes), a quarter of the operator's budget at 5,000 models.
So the loader runs once, in a short-lived child process (`python -m aimm_operator.credentials`),
and hands the result back over a pipe as JSON: the server, the token, and the CA, client
certificate and key as paths when they are real files, or as their contents when the loader made
them from inline data (its temporary files vanish with the child; the parent writes its own, mode
0600, in a private directory removed at exit).

Nothing here is logged: a failure reports the loader's own message, which names the file or
context, never a credential.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import orjson

IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
FILE_FIELDS = ("ca", "cert", "key")


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_path: str | None = None
    insecure: bool = False
    token: str | None = None
    token_path: str | None = None  # re-read on every request (rotated service-account tokens)
    cert_path: str | None = None
    key_path: str | None = None

    def bearer(self) -> str | None:
        if self.token_path:
            try:
                with open(self.token_path) as f:
                    return f.read().strip()
            except OSError:
                return self.token
        return self.token


class CredentialsError(RuntimeError):
    """No usable kubeconfig or service account."""


def load_credentials(kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    """From `kubeconfig` (or $KUBECONFIG / ~/.kube/config), else the in-cluster service account."""
    argv = [sys.executable, "-P", "-m", "aimm_operator.credentials", kubeconfig or "", context or ""]
    done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise CredentialsError(f"cannot load Kubernetes credentials: {reason[-1] if reason else done.returncode}")
    return from_loaded(orjson.loads(done.stdout))


def from_loaded(loaded: dict[str, Any]) -> Credentials:
    """The child's answer as Credentials: files it named are used in place, contents get files here."""
    paths: dict[str, str | None] = {}
    private_dir: str | None = None
    for field in FILE_FIELDS:
        path, content = loaded.get(f"{field}_path"), loaded.get(f"{field}_data")
        if path and os.path.isfile(path):
            paths[field] = path
        elif content is not None:
            private_dir = private_dir or _private_dir()
            paths[field] = _write_private(private_dir, field, content)
        else:
            paths[field] = None
    return Credentials(
        server=str(loaded["server"]).rstrip("/"),
        ca_path=paths["ca"],
        insecure=bool(loaded.get("insecure")),
        token=loaded.get("token"),
        token_path=IN_CLUSTER_TOKEN if loaded.get("in_cluster") else None,
        cert_path=paths["cert"],
        key_path=paths["key"],
    )


def _private_dir() -> str:
    path = tempfile.mkdtemp(prefix="aimm-operator-credentials-")  # mode 0700
    atexit.register(shutil.rmtree, path, True)
    return path


def _write_private(directory: str, field: str, content: str) -> str:
    path = os.path.join(directory, field)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    return path


def _load_here(kubeconfig: str | None, context: str | None) -> dict[str, Any]:
    """The child's side: the official loader, its result as plain JSON-able values."""
    from kubernetes import client, config

    cfg = client.Configuration()
    in_cluster = False
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=cfg)
            in_cluster = True
        except config.ConfigException:
            config.load_kube_config(context=context, client_configuration=cfg)
    else:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization") or ""
    token = header.split(" ", 1)[1] if " " in header else (header or None)
    loaded: dict[str, Any] = {"server": cfg.host, "insecure": not cfg.verify_ssl, "token": token}
    loaded["in_cluster"] = in_cluster
    for field, path in zip(FILE_FIELDS, (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file), strict=True):
        loaded[f"{field}_path"] = path or None
        loaded[f"{field}_data"] = _read(path) if path else None
    return loaded


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def main(argv: list[str]) -> int:
    kubeconfig, context = [*argv, "", ""][:2]
    sys.stdout.buffer.write(orjson.dumps(_load_here(kubeconfig or None, context or None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
