// @aimm/client (installed from its npm tarball) against a live gateway: every method, errors,
// retries, streaming with a mid-stream error, abort mid-stream, and the live feed.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  AuthenticationError,
  Client,
  InvalidRequestError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  ServiceUnavailableError,
  UpstreamError,
  isFailure,
} from "@aimm/client";
import { FAULTY, countingFetch, documented, env, resetUpstream, setFaults } from "./helpers.mjs";

const client = new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, adminToken: env.adminToken });
afterEach(resetUpstream);

test("query is typed and complete", async () => {
  const r = await client.query("Name three colours", { model: "mock-fast", maxTokens: 64 });
  assert.equal(r.model, "mock-fast");
  assert.equal(r.provider, "mock");
  assert.ok(r.text.length > 0 && r.requestId && r.latencyMs > 0);
  assert.equal(r.usage.totalTokens, r.usage.promptTokens + r.usage.completionTokens);
  assert.ok(r.usage.totalCost > 0);
  assert.ok(["mock-smart", "mock-fast"].includes((await client.query("default route")).model));
});

test("queryMultiple compares, failures included", async () => {
  const out = await client.queryMultiple("Compare me", ["mock-fast", "mock-smart", "no-such-model"]);
  const failed = out.results.filter(isFailure);
  assert.equal(failed.length, 1);
  assert.ok(failed[0].error instanceof NotFoundError && failed[0].error.status === 404);
  assert.equal(out.comparison.succeeded, 2);
  assert.ok(out.comparison.agreementScore >= 0 && out.comparison.agreementScore <= 1);
  assert.equal((await client.queryMultiple("again", ["mock-fast"], { compare: false })).comparison, null);
});

test("stream yields content chunks then the final chunk", async () => {
  const stream = client.stream("Stream a reply please", { model: "mock-fast" });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.length > 2);
  assert.equal(chunks.at(-1).type, "usage");
  assert.equal(stream.final.model, "mock-fast");
  assert.equal(stream.final.requestId, stream.requestId);
  const whole = await client.query("Stream a reply please", { model: "mock-fast" });
  assert.equal(stream.text, whole.text);
});

test("an error mid-stream throws after content, marked duringStream", async () => {
  await setFaults({ stream_error_after: 2, stream_chunks: 8 });
  const got = [];
  await assert.rejects(
    async () => {
      for await (const chunk of client.stream("break me", { model: FAULTY })) got.push(chunk);
    },
    (err) => err instanceof APIError && err.duringStream && err.status >= 500 && !!err.message,
  );
  assert.ok(got.length > 0 && got.every((c) => c.type === "content"));
});

test("abort mid-stream stops at once", async () => {
  await setFaults({ stream_chunks: 30, chunk_interval_ms: 200 });
  const controller = new AbortController();
  const started = Date.now();
  const stream = client.stream("a slow answer", { model: FAULTY, signal: controller.signal });
  const got = [];
  await assert.rejects(
    async () => {
      for await (const chunk of stream) {
        got.push(chunk);
        controller.abort();
      }
    },
    (err) => err.name === "AbortError",
  );
  assert.equal(got.length, 1);
  assert.ok(Date.now() - started < 3000, "the whole answer would take ~6 s");
  assert.equal(stream.final, null);
  // stream.abort() works the same way, and the gateway keeps serving.
  const second = client.stream("again", { model: FAULTY });
  for await (const _ of second) {
    second.abort();
    break;
  }
  assert.equal((await client.query("still serving", { model: FAULTY })).model, FAULTY);
});

test("batch keeps order and reports failures", async () => {
  const out = await client.batch(["first", { prompt: "second", model: "mock-smart" }, { prompt: "third", model: "nope" }]);
  assert.deepEqual([out.succeeded, out.failed], [2, 1]);
  assert.equal(out.results[1].model, "mock-smart");
  assert.ok(out.results[2].error instanceof NotFoundError);
  assert.equal(out.results[2].error.code, "model_not_found");
  assert.equal((await client.batch(["x", "y"], { model: "mock-fast" })).results[1].model, "mock-fast");
});

test("models, metrics, stats, health, ready, feedback", async () => {
  const listed = await client.models();
  const fast = listed.models.find((m) => m.name === "mock-fast");
  assert.equal(fast.health, "healthy");
  assert.ok(fast.capabilities.includes("streaming"));
  assert.ok(listed.routes.some((r) => r.name === "smart"));
  await client.query("count me", { model: "mock-fast" });
  assert.ok((await client.metrics()).models["mock-fast"].requests_total >= 1);
  assert.ok((await client.stats()).models["mock-fast"].requests_total >= 1);
  assert.equal((await client.health()).status, "ok");
  assert.equal((await client.ready()).status, "ready");
  assert.equal((await client.feedback("mock-fast", 0.9)).accepted, true);
  await assert.rejects(client.feedback("no-such-model", 0.5), (e) => e instanceof NotFoundError && e.param === "model");
  await assert.rejects(client.feedback("mock-fast", 7), (e) => e instanceof InvalidRequestError && e.status === 400 && !!e.requestId);
});

test("admin: add, disable, enable, update, status", async () => {
  const admin = new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, adminToken: env.adminToken, maxRetries: 0 });
  const added = await admin.addModel({ name: "js-added", provider: "mock" });
  assert.equal(added.source, "runtime");
  assert.equal((await admin.query("hi", { model: "js-added" })).model, "js-added");
  assert.equal((await admin.disableModel("js-added")).enabled, false);
  await assert.rejects(admin.query("hi", { model: "js-added" }), (e) => e instanceof ServiceUnavailableError && e.code === "no_usable_model");
  assert.equal((await admin.enableModel("js-added")).enabled, true);
  assert.equal((await admin.updateModel("js-added", { enabled: false })).enabled, false);
  assert.ok((await admin.modelsStatus()).some((m) => m.name === "js-added" && !m.enabled));
  assert.equal((await admin.setModelWeight("mock-smart", 3)).weight, 3);
  const listed = await admin.models();
  assert.equal(listed.models.find((m) => m.name === "mock-smart").weight, 3);
  const route = listed.routes.find((r) => r.targets.includes("mock-smart"));
  assert.equal(route.weights[route.targets.indexOf("mock-smart")], 3);
  assert.equal((await admin.setModelWeight("mock-smart", 1)).weight, 1);
  await assert.rejects(admin.setModelWeight("mock-smart", -1), (e) => e instanceof InvalidRequestError && e.param === "weight");
  await assert.rejects(admin.enableModel("missing-model"), NotFoundError);
  await assert.rejects(admin.addModel({ name: "broken", provider: "nope" }), InvalidRequestError);
});

test("authentication and permission errors", async () => {
  await assert.rejects(new Client({ baseUrl: env.baseUrl, apiKey: "wrong" }).query("hi"), (e) => e instanceof AuthenticationError && e.status === 401);
  const notAdmin = new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, adminToken: "not-the-admin-token" });
  await assert.rejects(notAdmin.modelsStatus(), (e) => e instanceof PermissionDeniedError && e.status === 403);
});

test("429 with Retry-After: surfaced, then honoured by a retry", async () => {
  await setFaults({ fail_rate: 1, status_code: 429, retry_after_ms: 200 });
  const once = new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, maxRetries: 0 });
  let first;
  await assert.rejects(once.query("limited", { model: FAULTY }), (e) => ((first = e), e instanceof RateLimitError));
  assert.equal(first.status, 429);
  assert.ok(first.retryAfter >= 0.2 && first.requestId);
  const counting = countingFetch(async (r) => r.status === 429 && (await resetUpstream()));
  const patient = new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, maxRetries: 2, fetch: counting.fetch });
  const started = Date.now();
  const result = await patient.query("limited", { model: FAULTY });
  assert.equal(result.model, FAULTY);
  assert.deepEqual(counting.statuses, [429, 200]);
  assert.ok(Date.now() - started >= first.retryAfter * 1000);
});

test("a POST that may have run is not retried unless told to", async () => {
  await setFaults({ fail_rate: 1, status_code: 500 });
  const a = countingFetch();
  await assert.rejects(new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, fetch: a.fetch }).query("x", { model: FAULTY }), UpstreamError);
  assert.deepEqual(a.statuses, [502]);
  const b = countingFetch();
  const told = new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, fetch: b.fetch, retryNonIdempotent: true });
  await assert.rejects(told.query("x", { model: FAULTY }), UpstreamError);
  assert.deepEqual(b.statuses, [502, 502, 502]);
});

test("timeouts and unreachable gateways", async () => {
  await setFaults({ latency_ms: 3000 });
  const started = Date.now();
  await assert.rejects(new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, timeoutMs: 300 }).query("slow", { model: FAULTY }), APITimeoutError);
  assert.ok(Date.now() - started < 2000);
  await assert.rejects(new Client({ baseUrl: "http://127.0.0.1:9", maxRetries: 0 }).health(), APIConnectionError);
});

test("settings from the environment", async () => {
  const c = new Client(); // AIMM_BASE_URL, AIMM_API_KEY, AIMM_ADMIN_TOKEN
  assert.equal(c.baseUrl, env.baseUrl);
  assert.ok((await c.query("env", { model: "mock-fast" })).text);
  assert.ok((await c.modelsStatus()).length > 0);
});

test("live feed", async () => {
  const feed = client.subscribe(["metrics"]);
  if (!(await documented("GET", "/api/v1/ws"))) {
    await assert.rejects(feed.open(), APIConnectionError); // the gateway has no feed yet
    return;
  }
  try {
    const hello = (await feed.next()).value; // who you are, your channels
    assert.deepEqual([hello.channel, hello.data.type], ["control", "hello"]);
    assert.equal((await feed.next()).value.channel, "metrics");
  } finally {
    feed.close(); // an open socket would keep node (and this test run) alive
  }
  await assert.rejects(new Client({ baseUrl: env.baseUrl, apiKey: "wrong" }).subscribe(["metrics"]).open(), APIConnectionError);
});

test("analytics and budgets", async () => {
  await client.query("for the books", { model: "mock-smart" });
  const usage = await client.usage({ groupBy: "model" });
  assert.ok(usage.groups.some((g) => g.model === "mock-smart"));
  const top = await client.topConsumers({ by: "key", limit: 3 });
  assert.equal(top.top[0].key, "demo");
  const pdf = await client.report();
  assert.equal(new TextDecoder().decode(pdf.slice(0, 4)), "%PDF");
  assert.ok((await client.budgets()).budgets.some((b) => b.name === "demo-daily"));
  await assert.rejects(client.usage({ groupBy: "planet" }), (e) => e instanceof InvalidRequestError && e.param === "group_by");
});

test("audit: newest first, checked, paged", async () => {
  await client.createKey("js-audit-key-1", { role: "viewer" });
  await client.createKey("js-audit-key-2", { role: "viewer" });
  const page = await client.audit({ action: "key.create", limit: 1 });
  assert.equal(page.source, "store");
  assert.equal(page.verified, true);
  assert.ok(page.data[0].target.endsWith("(js-audit-key-2)") && page.data[0].verified);
  assert.ok(page.has_more && typeof page.next_cursor === "string");
  const older = await client.audit({ action: "key.create", limit: 1, cursor: page.next_cursor });
  assert.ok(older.data[0].target.endsWith("(js-audit-key-1)") && older.data[0].ts <= page.data[0].ts);
  await assert.rejects(client.audit({ limit: 0 }), (e) => e instanceof InvalidRequestError && e.param === "limit");
  await assert.rejects(new Client({ baseUrl: env.baseUrl, apiKey: env.apiKey, adminToken: "" }).audit(), PermissionDeniedError);
});

test("keys: called where the gateway has them, a clean 404 where not", async () => {
  if (await documented("GET", "/admin/keys")) {
    const created = await client.createKey("js-test-key", { role: "viewer" });
    const id = created.id ?? created.key_id;
    assert.ok(id && (await client.rotateKey(id)) && (await client.listKeys()));
    await client.revokeKey(id);
  } else await assert.rejects(client.listKeys(), NotFoundError);
});
