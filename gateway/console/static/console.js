// aimm console: plain JavaScript, no build step. Data comes from the gateway's API with the
// key the user logs in with; live numbers come over the WebSocket at /api/v1/ws.
"use strict";

const KEY = "aimm.console.key";
const state = { key: null, session: null, ws: null, metrics: null, models: [], routes: [], rps: [], retry: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the console's CSP
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

const fmt = {
  ms: (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(v < 10 ? 1 : 0)} ms`),
  pct: (v) => (v === null || v === undefined ? "–" : `${(Number(v) * 100).toFixed(1)} %`),
  usd: (v) => (v === null || v === undefined ? "–" : `$${Number(v).toFixed(Number(v) < 1 ? 6 : 2)}`),
  num: (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en")),
  time: (t) => new Date(t * 1000).toLocaleTimeString("en-GB"),
  date: (t) => (t ? new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "–"),
};

const can = (perm) => !!state.session && state.session.permissions.includes(perm);

async function api(path, options = {}) {
  const headers = { authorization: `Bearer ${state.key}`, ...(options.body ? { "content-type": "application/json" } : {}) };
  const resp = await fetch(path, { ...options, headers });
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const message = body?.error?.message || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401) logout(message);
    throw new Error(message);
  }
  return body;
}

function notice(text) { $("notice").textContent = text || ""; }

// -- login -------------------------------------------------------------------------------------

async function login(key) {
  state.key = key;
  try {
    state.session = await api("/console/session");
  } catch (err) {
    state.key = null;
    $("login-error").textContent = `Login failed: ${err.message}`;
    return;
  }
  sessionStorage.setItem(KEY, key);
  $("login").hidden = true;
  $("app").hidden = false;
  $("who-name").textContent = state.session.name;
  $("who-role").textContent = state.session.role;
  for (const li of document.querySelectorAll("#nav li")) li.hidden = !can(li.dataset.needs);
  if (can("read")) connect();
  const first = can("read") ? "overview" : "playground";
  if (!location.hash || !document.querySelector(`#nav li:not([hidden]) a[href="${location.hash}"]`)) location.hash = `#${first}`;
  else show();
}

function logout(reason) {
  sessionStorage.removeItem(KEY);
  state.key = state.session = null;
  if (state.ws) { state.ws.onclose = null; state.ws.close(1000, "logged out"); state.ws = null; }
  clearTimeout(state.retry);
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = reason || "";
  $("api-key").value = "";
  $("api-key").focus();
}

// -- pages -------------------------------------------------------------------------------------

const loaders = { overview: () => {}, models: loadModels, routes: loadModels, budgets: loadBudgets, keys: loadKeys, audit: loadAudit, playground: loadPlayground };

function show() {
  const page = (location.hash || "#overview").slice(1);
  if (!(page in loaders) || !state.session) return;
  notice("");
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${page}`;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `aimm console: ${page}`;
  $(`h-${page}`).setAttribute("tabindex", "-1");
  $(`h-${page}`).focus({ preventScroll: true });
  Promise.resolve(loaders[page]()).catch((err) => notice(`Could not load ${page}: ${err.message}`));
}

// -- live feed -----------------------------------------------------------------------------------

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const url = `${proto}://${location.host}/api/v1/ws?channels=metrics,models,alerts,requests`;
  const ws = new WebSocket(url, ["aimm.v1", `bearer.${state.key}`]);
  state.ws = ws;
  ws.onopen = () => { $("live-state").textContent = "live"; $("live-state").classList.add("live"); notice(""); };
  ws.onmessage = (ev) => onEvent(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    $("live-state").textContent = "offline";
    $("live-state").classList.remove("live");
    if (ev.code !== 1000 && ev.reason) notice(`Live feed closed (${ev.code}: ${ev.reason}); reconnecting…`);
    if (state.session) state.retry = setTimeout(connect, 2000);
  };
}

function onEvent(msg) {
  if (msg.channel === "metrics") onMetrics(msg.data);
  else if (msg.channel === "requests") onRequest(msg.data);
  else if (msg.channel === "alerts") onAlert(msg);
  else if (msg.channel === "models" && msg.type === "model") {
    const page = location.hash.slice(1);
    if (page === "models" || page === "routes") loadModels().catch(() => {});
  }
}

function onMetrics(data) {
  state.metrics = data;
  $("m-rps").textContent = Number(data.requests_per_second).toFixed(2);
  $("m-latency").textContent = `${fmt.ms(data.latency_ms.p50)} / ${fmt.ms(data.latency_ms.p95)}`;
  $("m-errors").textContent = fmt.pct(data.error_rate);
  $("m-spend").textContent = fmt.usd(data.spend_usd_total);
  $("m-cost-hour").textContent = `${fmt.usd(data.cost_per_hour_usd)} / hour at the current pace`;
  $("m-total").textContent = fmt.num(data.requests_total);
  const n = data.fleet ? data.fleet.processes.length : 1;
  $("m-scope").textContent = data.fleet
    ? `Across ${n} gateway process${n === 1 ? "" : "es"} (merged over the state layer; latency is the slowest process's, an upper bound).`
    : "This gateway process.";
  state.rps.push(Number(data.requests_per_second));
  if (state.rps.length > 60) state.rps.shift();
  drawChart();
  if (location.hash === "#models" || location.hash === "#routes") renderModels();
}

function drawChart() {
  const canvas = $("rps-chart");
  const ctx = canvas.getContext("2d");
  const max = Math.max(1, ...state.rps);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#0b5cad";
  ctx.lineWidth = 2;
  ctx.beginPath();
  state.rps.forEach((v, i) => {
    const x = (i / 59) * canvas.width;
    const y = canvas.height - (v / max) * (canvas.height - 4) - 2;
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

function onRequest(r) {
  const row = el("tr", { "data-model": r.model || "" },
    el("td", {}, fmt.time(r.at)), el("td", {}, r.model || r.requested || "–"), el("td", {}, r.key || "–"),
    el("td", { class: r.ok ? "s-ok" : "s-critical" }, String(r.status)), el("td", {}, fmt.ms(r.latency_ms)),
    el("td", {}, `${r.prompt_tokens} → ${r.completion_tokens}`), el("td", {}, fmt.usd(r.cost_usd)));
  const tail = $("tail");
  tail.prepend(row);
  while (tail.children.length > 20) tail.lastChild.remove();
}

function onAlert(a) {
  const list = $("alerts");
  if (list.querySelector(".muted")) list.replaceChildren();
  const where = a.pod ? ` (${a.pod})` : "";
  list.prepend(el("li", { class: `s-${a.level}` }, `${fmt.time(a.at)} · ${a.kind} · ${a.message}${where}`));
  while (list.children.length > 30) list.lastChild.remove();
}

// -- models and routes -----------------------------------------------------------------------------

async function loadModels() {
  const doc = await api("/api/v1/models");
  state.models = doc.models;
  state.routes = doc.routes;
  renderModels();
}

function liveOf(name) { return (state.metrics && state.metrics.models[name]) || {}; }

// Rows are keyed by model and updated in place, so a live tick never steals keyboard focus.
function renderModels() {
  const body = $("models");
  const names = state.models.map((m) => m.name).join("\n");
  if (body.dataset.names !== names) {
    body.replaceChildren(...state.models.map(modelRow));
    body.dataset.names = names;
  }
  for (const m of state.models) updateModelRow(body.querySelector(`tr[data-model="${CSS.escape(m.name)}"]`), m);
  renderRoutes();
}

function modelRow(m) {
  const cells = ["provider", "health", "breaker", "p95", "errors", "requests", "cost"].map((c) => el("td", { "data-col": c }));
  const admin = can("admin");
  const toggle = admin
    ? el("button", { type: "button", class: "toggle", "data-model": m.name, onclick: () => toggleModel(m.name) })
    : el("span", { "data-col": "enabled" });
  return el("tr", { "data-model": m.name }, el("th", { scope: "row" }, m.name), cells,
    el("td", {}, admin ? weightForm(m) : el("span", { "data-col": "weight" })), el("td", {}, toggle));
}

// Admins type a weight and press Enter (or the Set button): a form, so the keyboard just works.
function weightForm(m) {
  const id = `weight-${m.name}`;
  return el("form", { class: "weight", "data-weight": m.name, novalidate: true, onsubmit: (ev) => { ev.preventDefault(); setWeight(m.name, ev.target); } },
    el("label", { for: id, class: "sr-only" }, `Routing weight of ${m.name}`),
    el("input", { id, name: "weight", type: "number", min: "0", step: "any", required: true, inputmode: "decimal" }),
    el("button", { type: "submit", "aria-label": `Set the weight of ${m.name}` }, "Set"));
}

function updateModelRow(row, m) {
  const live = liveOf(m.name);
  const set = (col, value, cls) => {
    const cell = row.querySelector(`[data-col="${col}"]`);
    if (cell.textContent !== value) cell.textContent = value;
    if (cls !== undefined) cell.className = cls;
  };
  const breaker = live.circuit_state || m.circuit_state;
  set("provider", m.provider);
  set("health", m.health + (m.reason ? ` (${m.reason})` : ""), `s-${m.health}`);
  set("breaker", breaker, `s-${breaker}`);
  set("p95", fmt.ms(live.p95_latency_ms));
  set("errors", fmt.pct(live.error_rate ?? 0));
  set("requests", fmt.num(live.requests_total ?? 0));
  set("cost", fmt.usd(live.cost_usd_total ?? 0));
  const weight = row.querySelector('input[name="weight"]');
  if (weight && document.activeElement !== weight && weight.value !== String(m.weight)) weight.value = String(m.weight);
  else if (!weight) set("weight", String(m.weight));
  const toggle = row.querySelector("button.toggle");
  if (toggle) {
    toggle.setAttribute("aria-pressed", String(m.enabled));
    toggle.setAttribute("aria-label", `${m.enabled ? "Disable" : "Enable"} ${m.name}`);
    toggle.textContent = m.enabled ? "On" : "Off";
  } else set("enabled", m.enabled ? "yes" : "no");
}

function renderRoutes() {
  const box = $("routes");
  const shape = JSON.stringify(state.routes) + state.models.map((m) => m.name + m.enabled + m.health).join();
  if (box.dataset.shape !== shape) {
    box.dataset.shape = shape;
    box.replaceChildren(...state.routes.map(routeCard));
  }
  for (const cell of box.querySelectorAll("td[data-rpm]")) {
    const value = Number(liveOf(cell.dataset.rpm).requests_per_minute || 0).toFixed(1);
    if (cell.textContent !== value) cell.textContent = value;
  }
}

function routeCard(r) {
  const weights = r.weights || [];
  const rows = [...r.targets.map((t, i) => [t, weights[i]]), ...r.fallbacks.map((t) => [t, null])].map(([t, w]) => {
    const m = state.models.find((x) => x.name === t) || {};
    return el("tr", { "data-target": t }, el("td", {}, w === null ? `${t} (fallback)` : t),
      el("td", { class: `s-${m.health}` }, m.enabled === false ? "disabled" : m.health || "–"),
      el("td", { "data-col": "weight" }, w === null || w === undefined ? "–" : String(w)), el("td", { "data-rpm": t }, "0.0"));
  });
  return el("article", { class: "card", "data-route": r.name }, el("h3", {}, r.name),
    el("p", {}, "Algorithm: ", el("strong", {}, r.algorithm)),
    el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["Target", "Status", "Weight", "Req/min"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}

async function toggleModel(name) {
  const m = state.models.find((x) => x.name === name);
  try {
    await api(`/admin/models/${encodeURIComponent(m.name)}`, { method: "PATCH", body: JSON.stringify({ enabled: !m.enabled }) });
    notice(`${m.name} ${m.enabled ? "disabled" : "enabled"}: routes skip it at once.`);
    await loadModels();
    document.querySelector(`button[data-model="${CSS.escape(m.name)}"]`)?.focus();
  } catch (err) { notice(`Could not change ${m.name}: ${err.message}`); }
}

async function setWeight(name, form) {
  const input = form.elements.weight;
  if (!input.checkValidity()) { notice(`Weight of ${name}: ${input.validationMessage}`); input.focus(); return; }
  try {
    const m = await api(`/admin/models/${encodeURIComponent(name)}`, { method: "PATCH", body: JSON.stringify({ weight: Number(input.value) }) });
    notice(`${name} now weighs ${m.weight}: weighted routes use it from the next request.`);
    input.blur(); // let the refresh show the stored value
    await loadModels();
    document.querySelector(`form[data-weight="${CSS.escape(name)}"] input`)?.focus();
  } catch (err) { notice(`Could not change ${name}: ${err.message}`); input.focus(); }
}

// -- budgets, keys, audit -------------------------------------------------------------------------

async function loadBudgets() {
  if (state.session.features.budgets) {
    const doc = await api("/api/v1/budgets");
    $("budgets-note").textContent = "Spend this period across the fleet, with the forecast to the period's end.";
    $("budgets").replaceChildren(...doc.budgets.map((b) => budgetRow(b.name, b.period, b.costThisPeriod, b.limitUsd,
      Number(b.percentUsed) / 100, b.projectedPeriodCost, b.action, b.state)));
  } else {
    const doc = await api("/api/v1/stats");
    $("budgets-note").textContent = "This gateway has no GET /api/v1/budgets: spend below is this pod's since it started; limits, forecast and state need the budgets API.";
    const rows = Object.entries(doc.budgets || {}).map(([name, b]) => budgetRow(name, "–", b.spent_usd, null, null, null, "–", "–"));
    $("budgets").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No budget has seen spend yet."))]));
  }
}

function budgetRow(name, period, spent, limit, used, forecast, action, st) {
  const bar = used === null ? "–" : el("div", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(Math.round(used * 100)), "aria-label": `${name} used` }, el("span", { style: `width:${Math.min(100, used * 100)}%` }));
  return el("tr", { "data-budget": name }, el("th", { scope: "row" }, name), el("td", {}, period), el("td", {}, fmt.usd(spent)),
    el("td", {}, limit === null ? "–" : fmt.usd(limit)), el("td", {}, bar, used === null ? "" : ` ${(used * 100).toFixed(1)} %`),
    el("td", {}, forecast === null ? "–" : fmt.usd(forecast)), el("td", {}, action), el("td", { class: `s-${st}` }, st));
}

function emptyState(target, title, why) {
  $(target).replaceChildren(el("div", { class: "empty", role: "note" }, el("h3", {}, title), el("p", {}, why)));
}

async function loadKeys() {
  if (!state.session.features.keys) {
    emptyState("keys", "No key management on this gateway", "GET /admin/keys is not served here: keys come from the config file (auth.api_keys) until the key store is enabled.");
    return;
  }
  const doc = await api("/admin/keys");
  const now = Date.now() / 1000;
  const stateOf = (k) => (k.revoked_at ? "revoked" : k.expires_at && k.expires_at < now ? "expired" : "active");
  const rows = doc.data.map((k) => el("tr", { "data-key": k.name }, el("th", { scope: "row" }, k.name), el("td", {}, k.role), el("td", {}, k.owner || "–"),
    el("td", {}, (k.models || []).join(", ") || "all"), el("td", {}, fmt.date(k.created_at)), el("td", { class: `s-${stateOf(k)}` }, stateOf(k))));
  $("keys").replaceChildren(el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["Name", "Role", "Owner", "Models", "Created", "State"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No keys in the key store.")))));
}

async function loadAudit(cursor) {
  if (!state.session.features.audit) {
    emptyState("audit", "No readable audit trail on this gateway", "GET /admin/audit reads the trail from the usage store (hardening.audit.store: true) or the audit file (hardening.audit.sink: file); this gateway writes it to neither, so there is nothing to show here.");
    return;
  }
  const doc = await api(`/admin/audit?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  const when = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  const rows = doc.data.map((e) => el("tr", { "data-audit": `${e.chain || ""}/${e.seq}`, class: e.verified ? null : "tampered" },
    el("td", {}, when(e.ts)), el("td", {}, e.action), el("td", {}, e.who ? `${e.who}${e.role ? ` (${e.role})` : ""}` : "–"),
    el("td", {}, e.target || "–"), el("td", { class: `s-${e.outcome}` }, e.outcome),
    el("td", { title: e.problem || "content matches its hash and its link to the record before it" }, e.verified ? "✓ verified" : "✗ tampered")));
  const body = cursor && $("audit-rows") ? $("audit-rows") : el("tbody", { id: "audit-rows" });
  body.append(...rows);
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No audit records yet.")));
  const older = doc.has_more ? el("button", { type: "button", id: "audit-older", onclick: () => loadAudit(doc.next_cursor).catch((err) => notice(`Could not load older records: ${err.message}`)) }, "Older records") : "";
  const verdict = el("p", { id: "audit-chain", class: doc.verified ? "muted" : "s-tampered", role: "status" },
    doc.verified ? `Hash chain verified for the records shown (from the ${doc.source}).` : `A record on this page failed its hash-chain check (from the ${doc.source}): see the rows marked tampered.`);
  if (cursor && $("audit-rows")) {
    $("audit-older")?.replaceWith(older);
    if (!doc.verified) $("audit-chain").replaceWith(verdict);
    return;
  }
  $("audit").replaceChildren(verdict, el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["Time", "Action", "Actor", "Target", "Outcome", "Chain"].map((h) => el("th", { scope: "col" }, h)))), body), older);
}

// -- playground -----------------------------------------------------------------------------------

async function loadPlayground() {
  if ($("play-models").children.length) return;
  const doc = await api("/v1/models");
  const names = doc.data.filter((m) => m.owned_by !== "aimm-route").map((m) => m.id);
  $("play-models").replaceChildren(...names.map((n, i) => el("label", {},
    el("input", { type: "checkbox", name: "play-model", value: n, checked: i < 2 }), n)));
}

async function runPlayground(ev) {
  ev.preventDefault();
  const models = [...document.querySelectorAll('input[name="play-model"]:checked')].map((c) => c.value);
  if (!models.length) { $("play-summary").textContent = "Pick at least one model."; return; }
  $("play-run").disabled = true;
  $("play-summary").textContent = `Asking ${models.length} model(s)…`;
  try {
    const doc = await api("/api/v1/query/multiple", { method: "POST", body: JSON.stringify({
      prompt: $("play-prompt").value, models, max_tokens: Number($("play-max").value) || undefined, compare_results: true }) });
    const c = doc.comparison || {};
    $("play-summary").textContent = c.agreement_score === null || c.agreement_score === undefined
      ? "No model answered."
      : `Agreement score ${Number(c.agreement_score).toFixed(2)} · fastest ${c.fastest_model} · cheapest ${c.cheapest_model}`;
    $("play-results").replaceChildren(...doc.results.map((r) => el("article", { class: "card result", "data-model": r.model },
      el("h3", {}, r.model),
      r.error ? el("p", { class: "error" }, r.error.message) : el("pre", {}, r.text),
      r.error ? "" : el("dl", {}, el("dt", {}, "Latency"), el("dd", {}, fmt.ms(r.latency_ms)),
        el("dt", {}, "Tokens"), el("dd", {}, `${r.usage.prompt_tokens} in · ${r.usage.completion_tokens} out`),
        el("dt", {}, "Cost"), el("dd", {}, fmt.usd(r.usage.total_cost))))));
  } catch (err) {
    $("play-summary").textContent = `Failed: ${err.message}`;
  } finally {
    $("play-run").disabled = false;
  }
}

// -- start ------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); login($("api-key").value.trim()); });
  $("logout").addEventListener("click", () => logout(""));
  $("play-form").addEventListener("submit", runPlayground);
  window.addEventListener("hashchange", show);
  const saved = sessionStorage.getItem(KEY);
  if (saved) login(saved); else $("api-key").focus();
});
