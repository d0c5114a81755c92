"""The operator's credentials come from the official loader in a child process, and the operator
itself never imports the official client (~52 MB of RSS it would keep for its whole life)."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aimm_operator.credentials import CredentialsError, load_credentials
from aimm_operator.kube import _ssl_context
from tests.security.test_hardening import _cert


def _kubeconfig(tmp_path: Path, ca_file: Path, cert: bytes, key: bytes) -> Path:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "a", "cluster": {"server": "https://10.0.0.1:6443", "certificate-authority-data": b64(cert)}},
            {"name": "b", "cluster": {"server": "https://10.0.0.2:6443/", "certificate-authority": str(ca_file)}},
        ],
        "users": [
            {"name": "certs", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}},
            {"name": "tok", "user": {"token": "s3cret-token"}},
        ],
        "contexts": [
            {"name": "one", "context": {"cluster": "a", "user": "certs"}},
            {"name": "two", "context": {"cluster": "b", "user": "tok"}},
        ],
        "current-context": "one",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def kubeconfig(tmp_path: Path) -> tuple[Path, Path, bytes, bytes]:
    _cert(tmp_path / "aimm-test", "aimm-test")  # a self-signed client certificate, as .crt and .key
    cert, key = (tmp_path / "aimm-test.crt").read_bytes(), (tmp_path / "aimm-test.key").read_bytes()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(cert)
    return _kubeconfig(tmp_path, ca_file, cert, key), ca_file, cert, key


def test_inline_certificates_become_private_files_that_outlive_the_loader(kubeconfig) -> None:
    path, _, cert, key = kubeconfig
    creds = load_credentials(str(path))  # current context "one": inline CA and client certificate
    assert creds.server == "https://10.0.0.1:6443" and creds.token is None and not creds.insecure
    assert creds.ca_path and creds.cert_path and creds.key_path
    assert Path(creds.ca_path).read_bytes() == cert
    assert Path(creds.cert_path).read_bytes() == cert
    assert Path(creds.key_path).read_bytes() == key
    for file in (creds.ca_path, creds.cert_path, creds.key_path):
        assert stat.S_IMODE(Path(file).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(creds.key_path).parent.stat().st_mode) == 0o700
    _ssl_context(creds)  # the files are a valid CA and a matching certificate and key


def test_a_named_context_and_files_used_in_place(kubeconfig) -> None:
    path, ca_file, _, _ = kubeconfig
    creds = load_credentials(str(path), "two")
    assert creds.server == "https://10.0.0.2:6443"
    assert creds.ca_path == str(ca_file)
    assert creds.bearer() == "s3cret-token" and creds.token_path is None
    assert creds.cert_path is None and creds.key_path is None


def test_a_bad_kubeconfig_is_a_clear_error_without_secrets(kubeconfig) -> None:
    path, _, _, _ = kubeconfig
    with pytest.raises(CredentialsError, match="nope") as err:
        load_credentials(str(path), "nope")
    assert "s3cret-token" not in str(err.value)
    with pytest.raises(CredentialsError, match="cannot load Kubernetes credentials"):
        load_credentials(str(path.parent / "missing"))


def _imports(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_operator_process_never_imports_the_official_client(kubeconfig) -> None:
    path, _, _, _ = kubeconfig
    everything = (
        "import sys, json\n"
        "from aimm_operator.lean_imports import import_kopf_without_kubernetes_client\n"
        "import_kopf_without_kubernetes_client()\n"
        "import kopf, aimm_operator.cli, aimm_operator.handlers, aimm_operator.stats, aimm_operator.viewer\n"
        "from aimm_operator.credentials import load_credentials\n"
        f"load_credentials({str(path)!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes')))\n"
    )
    assert _imports(everything) == []
    # Without the guard kopf would have imported it: the test can fail.
    plain = "import sys, json, kopf\nprint(json.dumps(sorted(m for m in sys.modules if m == 'kubernetes')))"
    assert _imports(plain) == ["kubernetes"]
