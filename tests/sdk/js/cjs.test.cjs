// The CommonJS build: require() works and exposes the same classes.
const assert = require("node:assert/strict");
const { test } = require("node:test");
const { Client, NotFoundError, OPERATIONS } = require("@aimm/client");

test("require('@aimm/client') queries the gateway", async () => {
  const client = new Client();
  assert.equal((await client.query("from CommonJS", { model: "mock-fast" })).model, "mock-fast");
  await assert.rejects(client.query("x", { model: "no-such-model" }), NotFoundError);
  assert.deepEqual(OPERATIONS.query, ["POST", "/api/v1/query"]);
});
