"""The container image (Containerfile, built by `make image`): the gateway inside it serves the
official OpenAI SDK on a read-only root filesystem, the operator's CLI runs, it runs as uid
65532, carries no pip or compiler, and stays under 300 MB.

Containers run with `buildah run --isolation chroot` (no daemon; the host's network, so the
gateway's loopback port is the host's). The whole module is skipped, with the reason, only where
buildah cannot run (not installed, or not root).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from aimm_gateway.bench.procs import free_port
from tests.install.image import Container, build_image, buildah, why_buildah_cannot_run

pytestmark = pytest.mark.timeout(60 * 60)

UID = "65532"
MAX_BYTES = 300 * 1000 * 1000
API_KEY = "sk-image-test"
CONFIG = """
server: {default_model: fast}
auth:
  enabled: true
  api_keys:
    - {name: test, key: {env: AIMM_API_KEY}}
models:
  - name: mock-fast
    provider: mock
    capabilities: [chat, streaming]
routes:
  - name: fast
    targets: [{model: mock-fast}]
"""


@pytest.fixture(scope="module")
def image() -> str:
    reason = why_buildah_cannot_run()
    if reason:
        pytest.skip(reason)
    return build_image()


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    """One working container for the module: with vfs storage each is a full copy of the image."""
    c = Container(image)
    yield c
    c.remove()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gateway exited:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"gateway not ready in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def test_metadata_user_entrypoint_and_labels(image: str) -> None:
    info = json.loads(buildah("inspect", "--type", "image", image).stdout)
    config = info["OCIv1"]["config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["aimm"]
    labels = config["Labels"]
    for key in ("title", "version", "revision", "created", "source", "licenses", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == "0.1.0"


def test_runs_as_uid_65532(container: Container) -> None:
    res = container.run("id")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"uid={UID}(aimm) gid={UID}(aimm)"), res.stdout


def test_no_pip_and_no_compiler(container: Container) -> None:
    root = container.root()
    for tool in ("pip", "pip3", "gcc", "cc", "c++", "make"):
        for d in ("usr/bin", "usr/local/bin", "opt/aimm/bin"):
            assert not (root / d / tool).exists(), f"/{d}/{tool} in the image"
    res = container.run("python", "-c", "import pip")
    assert res.returncode != 0 and "No module named 'pip'" in res.stderr
    res = container.run("python", "-c", "import aimm_gateway, aimm_operator, uvloop, kopf; print('ok')")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# Imports every compiled extension module in the virtualenv (they are stripped at build time).
IMPORT_EXTENSIONS = """
import importlib, pathlib, sys
site = next(pathlib.Path('/opt/aimm/lib').glob('python3*/site-packages'))
names = sorted({'.'.join(p.relative_to(site).with_suffix('').with_suffix('').parts)
                for p in site.rglob('*.so') if '.libs' not in str(p.parent)})
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != 'tkinter':  # PIL._imagingtk: Tk support, for a GUI the image has no use for
            failed.append(f'{name}: {exc!r}')
    except Exception as exc:
        failed.append(f'{name}: {exc!r}')
print(len(names))
sys.exit('\\n'.join(failed) or None)
"""


def test_every_extension_module_loads(container: Container) -> None:
    res = container.run("python", "-c", IMPORT_EXTENSIONS)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) >= 20  # uvloop, pydantic_core, asyncpg, PIL, cryptography, yaml, ...


def test_operator_cli_and_its_kubeconfig_loader(container: Container, tmp_path: Path) -> None:
    res = container.run("aimm", "operator", "run", "--help")
    assert res.returncode == 0, res.stderr
    assert "--all-namespaces" in res.stdout and "--kubeconfig" in res.stdout
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "kubeconfig", 0o644)
    code = "from aimm_operator.credentials import load_credentials as l; c = l('/kube/kubeconfig'); print(c.server, c.token)"
    res = container.run("python", "-c", code, mounts=[f"type=bind,source={tmp_path},destination=/kube,ro=true"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["https://10.1.2.3:6443", "t0ken"]


def test_gateway_serves_the_openai_sdk_on_a_read_only_root(container: Container, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir(mode=0o755)
    (conf / "config.yaml").write_text(CONFIG)
    os.chmod(conf / "config.yaml", 0o644)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mounts = [f"type=bind,source={conf},destination=/etc/aimm,ro=true", "type=tmpfs,destination=/tmp"]
    command = ("aimm", "gateway", "serve", "--config", "/etc/aimm/config.yaml", "--host", "127.0.0.1")
    log = tmp_path / "gateway.log"
    with (
        container.read_only_root(),
        container.background(
            *command, "--port", str(port), log=log, env={"AIMM_API_KEY": API_KEY}, mounts=mounts
        ) as proc,
    ):
        wait_ready(url, proc, log)
        client = OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=20)
        assert "mock-fast" in {m.id for m in client.models.list()}
        reply = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content and reply.usage and reply.usage.total_tokens > 0
        chunks = client.chat.completions.create(
            model="mock-fast", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        bad = OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(Exception) as err:
            bad.models.list()
        assert getattr(err.value, "status_code", None) == 401
        # The root really is read-only for the process; /tmp (an emptyDir in the pod) is not.
        res = container.run("sh", "-c", "touch /opt/aimm/x; touch /tmp/x && echo tmp-ok", mounts=mounts)
        assert "Read-only file system" in res.stderr and "tmp-ok" in res.stdout, (res.stdout, res.stderr)


def image_bytes(root: Path) -> dict[str, int]:
    """Apparent size of the image's files, by contributor: each installed Python distribution's
    top-level package, the Python standard library, and the rest of the Debian base."""
    groups: dict[str, int] = {}
    site = next((root / "opt/aimm/lib").glob("python3*/site-packages"))
    seen: set[int] = set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            st = path.lstat()
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            rel = path.relative_to(root)
            if path.is_relative_to(site):
                key = "site-packages/" + path.relative_to(site).parts[0].split("-")[0]
            elif rel.parts[:3] == ("usr", "lib", "python3.11"):
                key = "python3.11 standard library"
            else:
                key = "Debian base: /" + "/".join(rel.parts[:2])
            groups[key] = groups.get(key, 0) + st.st_size
    return groups


def test_image_size(container: Container) -> None:
    groups = image_bytes(container.root())
    total = sum(groups.values())
    top = sorted(groups.items(), key=lambda kv: -kv[1])[:5]
    print(f"image files: {total / 1e6:.0f} MB; largest: " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in top))
    assert total <= MAX_BYTES, f"{total / 1e6:.0f} MB > 300 MB; largest: {top}"
