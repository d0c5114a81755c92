# `helm test` for the chart's AIGateway (templates/tests/gateway-test.yaml runs this with the
# image's Python): the gateway answers /ready, and /v1/models lists at least one model.
# Standard library only. Env: AIMM_URL (the gateway Service), AIMM_API_KEY (optional).
import json
import os
import sys
import time
import urllib.error
import urllib.request

url = os.environ["AIMM_URL"].rstrip("/")
key = os.environ.get("AIMM_API_KEY", "")


def get(path: str) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


deadline = time.monotonic() + float(os.environ.get("AIMM_TEST_TIMEOUT", "60"))
status, body = get("/ready")
while status != 200 and time.monotonic() < deadline:
    time.sleep(2)
    status, body = get("/ready")
if status != 200:
    sys.exit(f"FAIL {url}/ready: {status} {body[:300]!r}")
print(f"ok {url}/ready")
status, body = get("/v1/models")
models = [m.get("id") for m in json.loads(body).get("data", [])] if status == 200 else []
if not models:
    sys.exit(f"FAIL {url}/v1/models: {status} {body[:300]!r}")
print(f"ok {url}/v1/models: {', '.join(models)}")
