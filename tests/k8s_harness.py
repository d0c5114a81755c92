"""A real, throw-away Kubernetes control plane for integration tests.

Runs etcd, kube-apiserver and kube-controller-manager (built from Go modules by
``hack/envtest.sh``, see ``make envtest``) as local processes on free loopback
ports. There are no nodes and no kubelet: Pods are created by the controllers
but never scheduled or run.

Typical use (session-scoped pytest fixture)::

    @pytest.fixture(scope="session")
    def control_plane():
        cp = ControlPlane().start()
        try:
            yield cp
        finally:
            cp.stop()

Environment:
    AIMM_K8S_BIN        directory holding kube-apiserver, kube-controller-manager,
                        kubectl and etcd (default: newest ``bin/k8s-*/`` in the repo)
    AIMM_K8S_KEEP_TMP=1 keep the temp dir (certs, kubeconfigs, process logs) after stop()

Only the standard library, ``cryptography`` and (for ``api_client()``) the
``kubernetes`` Python client are used.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aimm_gateway.bench.procs import free_port, stop

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """Raised when the control plane cannot be found, started or used."""


# --------------------------------------------------------------------------- binaries


def _version_key(path: Path) -> tuple:
    m = re.fullmatch(r"k8s-v?(\d+)\.(\d+)\.(\d+)(.*)", path.name)
    if not m:
        return (-1,)
    return (int(m[1]), int(m[2]), int(m[3]), m[4] == "", m[4])


def find_bin_dir(bin_dir: str | os.PathLike | None = None) -> Path:
    """Locate the directory with the control-plane binaries, or raise with a hint."""
    hint = (
        "Build them with `make envtest` (i.e. `bash hack/envtest.sh`) "
        "or point AIMM_K8S_BIN at a directory containing " + ", ".join(REQUIRED_BINARIES) + "."
    )
    if bin_dir is None and os.environ.get("AIMM_K8S_BIN"):
        bin_dir = os.environ["AIMM_K8S_BIN"]
    if bin_dir is not None:
        candidates = [Path(bin_dir)]
    else:
        candidates = sorted(REPO_ROOT.glob("bin/k8s-*/"), key=_version_key, reverse=True)
        if not candidates:
            raise ControlPlaneError(f"No Kubernetes test binaries found under {REPO_ROOT / 'bin'}/k8s-*/. {hint}")
    problems = []
    for cand in candidates:
        missing = [b for b in REQUIRED_BINARIES if not os.access(cand / b, os.X_OK)]
        if not missing:
            return cand
        problems.append(f"{cand} lacks {', '.join(missing)}")
    raise ControlPlaneError(f"Incomplete Kubernetes test binaries ({'; '.join(problems)}). {hint}")


# --------------------------------------------------------------------------- PKI


def _new_key() -> ec.EllipticCurvePrivateKey:
    # ECDSA P-256: generated in microseconds (RSA-2048 takes ~100 ms per key) and
    # accepted by the apiserver for serving, client and service-account keys.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    subject: x509.Name,
    key,
    issuer_cert: x509.Certificate | None,
    issuer_key,
    *,
    ca: bool = False,
    server: bool = False,
    client: bool = False,
    sans: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2 if not ca else 7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
            critical=False,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class _PKI:
    """CA, apiserver serving cert, service-account key pair, admin client cert."""

    def __init__(self, directory: Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)

        ca_key = _new_key()
        ca_cert = _issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aimm-test-ca")]),
            ca_key,
            None,
            ca_key,
            ca=True,
        )
        self.ca_cert_pem, self.ca_key_pem = _cert_pem(ca_cert), _key_pem(ca_key)
        self.ca_file = self._write("ca.crt", self.ca_cert_pem)
        self.ca_key_file = self._write("ca.key", self.ca_key_pem)

        srv_key = _new_key()
        srv_cert = _issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            srv_key,
            ca_cert,
            ca_key,
            server=True,
            sans=[
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
                # first IP of the service range = in-cluster "kubernetes" Service
                x509.IPAddress(next(ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE).hosts())),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.DNSName("kubernetes.default.svc.cluster.local"),
            ],
        )
        self.serving_cert_file = self._write("apiserver.crt", _cert_pem(srv_cert))
        self.serving_key_file = self._write("apiserver.key", _key_pem(srv_key))

        sa_key = _new_key()
        self.sa_key_file = self._write("sa.key", _key_pem(sa_key))
        self.sa_pub_file = self._write(
            "sa.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

        admin_key = _new_key()
        admin_cert = _issue(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "aimm-admin"),
                ]
            ),
            admin_key,
            ca_cert,
            ca_key,
            client=True,
        )
        self.admin_cert_pem, self.admin_key_pem = _cert_pem(admin_cert), _key_pem(admin_key)
        self.admin_cert_file = self._write("admin.crt", self.admin_cert_pem)
        self.admin_key_file = self._write("admin.key", self.admin_key_pem)

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


# --------------------------------------------------------------------------- helpers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    # Make the kernel SIGTERM the child if the test process dies without stop().
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _Proc:
    def __init__(self, name: str, args: list[str], log_path: Path, env: dict | None = None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not hit by the terminal's Ctrl-C aimed at pytest
            preexec_fn=_set_pdeathsig if os.name == "posix" else None,
            env=env,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            stop(self.popen, timeout, 5)
        self._log.close()


# --------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback.

    ``start()`` returns ``self``; ``stop()`` is idempotent and also registered
    with ``atexit``. Attributes valid after ``start()``:

    ``kubeconfig_path``  admin kubeconfig (client cert with O=system:masters)
    ``server``           https://127.0.0.1:<port>
    ``tmp_dir``          certs, kubeconfigs, etcd data, ``logs/<process>.log``
    ``ca_file``, ``bin_dir``
    """

    def __init__(
        self,
        bin_dir: str | os.PathLike | None = None,
        *,
        controller_manager: bool = True,
        crds: Iterable[str | os.PathLike] = (),
        extra_apiserver_args: Iterable[str] = (),
        extra_controller_manager_args: Iterable[str] = (),
        startup_timeout: float = 90.0,
    ):
        self.bin_dir = find_bin_dir(bin_dir)
        self.with_controller_manager = controller_manager
        # Installed before the controller-manager starts, so its garbage collector knows the
        # custom types at once (it otherwise learns new types only at a 30 s discovery resync).
        self.crd_dirs = [Path(d) for d in crds]
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.extra_controller_manager_args = list(extra_controller_manager_args)
        self.startup_timeout = startup_timeout
        self.tmp_dir: Path | None = None
        self.kubeconfig_path: Path | None = None
        self.server: str | None = None
        self.ca_file: Path | None = None
        self._procs: list[_Proc] = []
        self._pki: _PKI | None = None
        self._env: dict[str, str] = {}
        self._stopped = False

    # ----------------------------------------------------------- lifecycle

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        if self._procs:
            raise ControlPlaneError("control plane already started")
        t0 = time.monotonic()
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="aimm-k8s-"))
        (self.tmp_dir / "logs").mkdir()
        atexit.register(self.stop)
        # kubectl: keep its discovery cache and config lookups out of $HOME.
        self._env = dict(os.environ)
        self._env.pop("KUBECONFIG", None)
        self._env["KUBECACHEDIR"] = str(self.tmp_dir / "kubectl-cache")
        try:
            self._pki = _PKI(self.tmp_dir / "pki")
            self.ca_file = self._pki.ca_file
            self._start_etcd()
            self._start_apiserver()
            for crd_dir in self.crd_dirs:
                self.apply_dir(crd_dir)
            if self.with_controller_manager:
                self._start_controller_manager()
                self._wait_for_controllers()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def pids(self, *names: str) -> list[int]:
        """Process ids of the named components (e.g. "kube-apiserver", "etcd"), for measurements."""
        return [p.popen.pid for p in self._procs if p.name in names]

    def stop(self) -> None:
        """Terminate all processes (reverse start order) and remove the temp dir."""
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):  # best effort cleanup
                proc.stop()
        self._procs.clear()
        if self.tmp_dir is not None and self.tmp_dir.exists():
            if os.environ.get("AIMM_K8S_KEEP_TMP") == "1":
                print(f"k8s_harness: keeping {self.tmp_dir}")
            else:
                shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._stopped = True
        atexit.unregister(self.stop)

    def log_path(self, name: str) -> Path:
        """Log file of one process: 'etcd', 'kube-apiserver', 'kube-controller-manager'."""
        assert self.tmp_dir is not None, "not started"
        return self.tmp_dir / "logs" / f"{name}.log"

    # ----------------------------------------------------------- processes

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        proc = _Proc(name, [str(self.bin_dir / name), *args], self.log_path(name), env=self._env)
        self._procs.append(proc)
        return proc

    def _fail(self, proc: _Proc, why: str) -> ControlPlaneError:
        status = proc.popen.poll()
        state = "still running" if status is None else f"exited with status {status}"
        return ControlPlaneError(
            f"{proc.name} {why} ({state}).\n"
            f"command: {' '.join(proc.args)}\n"
            f"--- last lines of {proc.log_path} ---\n{_tail(proc.log_path)}"
        )

    def _wait(self, proc: _Proc, what: str, probe, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        delay = 0.05
        while True:
            if not proc.alive():
                raise self._fail(proc, f"died while waiting for {what}")
            try:
                if probe():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise self._fail(proc, f"did not become ready ({what}) within {timeout or self.startup_timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        proc = self._spawn(
            "etcd",
            [
                "--name=aimm-test",
                f"--data-dir={self.tmp_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=aimm-test={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",  # throw-away data: skip fsync, much faster writes
                "--snapshot-count=100000",
                "--log-level=warn",
            ],
        )

        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def healthy() -> bool:
            with no_proxy.open(self.etcd_url + "/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"

        self._wait(proc, f"{self.etcd_url}/health", healthy)

    def _start_apiserver(self) -> None:
        pki = self._pki
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        proc = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki.serving_cert_file}",
                f"--tls-private-key-file={pki.serving_key_file}",
                f"--client-ca-file={pki.ca_file}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.sa_pub_file}",
                f"--service-account-signing-key-file={pki.sa_key_file}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                # Endpoints may not hold loopback IPs, so the default "lease"
                # reconciler would log errors forever for 127.0.0.1.
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self.tmp_dir / 'apiserver-certs'}",
                "--profiling=false",
                *self.extra_apiserver_args,
            ],
        )
        self._write_admin_kubeconfig()

        ssl_ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        ssl_ctx.load_cert_chain(str(pki.admin_cert_file), str(pki.admin_key_file))
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl_ctx)
        )
        # 500 while post-start hooks are still running
        self._wait(proc, f"{self.server}/readyz", lambda: self._admin_get("/readyz") == 200)

    def _admin_get(self, path: str) -> int:
        """HTTP status of an admin GET on the apiserver (errors -> their status)."""
        try:
            with self._opener.open(self.server + path, timeout=3) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _start_controller_manager(self) -> None:
        pki = self._pki
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig_path}",
                "--controllers=*",  # all default-on controllers (no cloud ones without a provider)
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--secure-port=0",  # no health endpoint needed; avoids a port clash
                f"--service-account-private-key-file={pki.sa_key_file}",
                f"--root-ca-file={pki.ca_file}",
                f"--cluster-signing-cert-file={pki.ca_file}",
                f"--cluster-signing-key-file={pki.ca_key_file}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--concurrent-gc-syncs=5",
                *self.extra_controller_manager_args,
            ],
        )

    def _wait_for_controllers(self) -> None:
        """Controllers are up once the serviceaccount controller made default/default.

        Until then Pods can't be created (ServiceAccount admission), so waiting here
        also spares tests a race.
        """
        kcm = self._procs[-1]

        self._wait(
            kcm,
            "ServiceAccount default/default created by the controllers",
            lambda: self._admin_get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
        )

    # ----------------------------------------------------------- kubeconfigs

    def _kubeconfig(self, user: dict, name: str) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "aimm-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self._pki.ca_cert_pem),
                    },
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": "aimm-test", "user": name}}],
            "current-context": name,
            "preferences": {},
        }

    def _write_kubeconfig(self, path: Path, config: dict) -> Path:
        path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        path.chmod(0o600)
        return path

    def _write_admin_kubeconfig(self) -> None:
        self.kubeconfig_path = self._write_kubeconfig(
            self.tmp_dir / "admin.kubeconfig",
            self._kubeconfig(
                {
                    "client-certificate-data": _b64(self._pki.admin_cert_pem),
                    "client-key-data": _b64(self._pki.admin_key_pem),
                },
                "admin",
            ),
        )

    def kubeconfig_for_token(self, token: str, name: str | None = None) -> Path:
        """Write a kubeconfig that authenticates with a bearer token (e.g. a ServiceAccount's)."""
        self._require_started()
        name = name or "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        return self._write_kubeconfig(self.tmp_dir / f"{safe}.kubeconfig", self._kubeconfig({"token": token}, safe))

    # ----------------------------------------------------------- clients

    def _require_started(self) -> None:
        if self.kubeconfig_path is None or self._stopped:
            raise ControlPlaneError("control plane is not running; call start() first")

    def api_client(self, kubeconfig: str | os.PathLike | None = None):
        """A ``kubernetes.client.ApiClient`` for the admin (or the given kubeconfig)."""
        self._require_started()
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig_path))

    def kubectl(
        self,
        *args: str,
        kubeconfig: str | os.PathLike | None = None,
        input: str | None = None,
        check: bool = False,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster (admin unless ``kubeconfig`` is given); text output."""
        self._require_started()
        cmd = [str(self.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig_path}", *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=self._env)
        if check and res.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}")
        return res

    def apply_dir(
        self,
        path: str | os.PathLike,
        *,
        recursive: bool = False,
        server_side: bool = True,
        timeout: float = 60,
    ) -> list[str]:
        """``kubectl apply -f <dir>`` and wait until applied CRDs are Established.

        Server-side apply is the default because large CRDs exceed the 256 KiB
        last-applied-configuration annotation of client-side apply. Returns the
        applied object names (``kind.group/name``).
        """
        self._require_started()
        args = ["apply", "-f", str(path), "-o", "name"]
        if recursive:
            args.append("--recursive")
        if server_side:
            args += ["--server-side", "--force-conflicts", "--field-manager=aimm-tests"]
        res = self.kubectl(*args, check=True, timeout=timeout)
        names = [line.strip() for line in res.stdout.splitlines() if line.strip()]
        crds = [n for n in names if n.startswith("customresourcedefinition.apiextensions.k8s.io/")]
        if crds:
            self.kubectl(
                "wait",
                "--for=condition=Established",
                f"--timeout={int(timeout)}s",
                *crds,
                check=True,
                timeout=timeout + 10,
            )
        return names

    def __repr__(self) -> str:
        state = "running" if self._procs else ("stopped" if self._stopped else "new")
        return f"<ControlPlane {state} server={self.server} bin_dir={self.bin_dir}>"
