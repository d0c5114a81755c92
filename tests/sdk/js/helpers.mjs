// Shared by the node --test files: the live gateway started by pytest (tests/sdk/test_js_sdk.py).
export const env = {
  baseUrl: process.env.AIMM_BASE_URL,
  apiKey: process.env.AIMM_API_KEY,
  adminToken: process.env.AIMM_ADMIN_TOKEN,
  upstream: process.env.AIMM_TEST_UPSTREAM, // the fault-injectable mock behind model "faulty"
};
export const FAULTY = "faulty";

export async function setFaults(faults) {
  const r = await fetch(`${env.upstream}/_mock/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(faults),
  });
  if (!r.ok) throw new Error(`set faults: ${r.status}`);
}

export async function resetUpstream() {
  const r = await fetch(`${env.upstream}/_mock/reset`, { method: "POST" });
  if (!r.ok) throw new Error(`reset: ${r.status}`);
}

export async function documented(method, path) {
  const doc = await (await fetch(`${env.baseUrl}/openapi.json`)).json();
  return method.toLowerCase() in (doc.paths[path] ?? {});
}

/** A real fetch that records each response's status and can react to it. */
export function countingFetch(onResponse) {
  const statuses = [];
  const wrapped = async (input, init) => {
    const response = await fetch(input, init);
    statuses.push(response.status);
    if (onResponse) await onResponse(response);
    return response;
  };
  return { fetch: wrapped, statuses };
}
