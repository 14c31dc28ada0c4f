// The shoal shopping list in a browser: plain JavaScript over the peer's client API.
//
// Data (see examples/web/run.py): shop:lists (ORMap id -> LWW title), and per list
// shop:list:ID:items (ORMap id -> LWW text), shop:list:ID:done (ORSet of ticked ids),
// shop:list:ID:note (MVRegister: concurrent edits are siblings). The page reads each key
// once, then follows every change under "shop:" on the client API's websocket.
"use strict";

const LISTS = "shop:lists";
const PREFIX = "shop:";
const keyOf = (id, part) => `shop:list:${id}:${part}`;
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  objects: new Map(), // key -> object view {key, kind, value, version, siblings}
  selected: sessionStorage.getItem("shoal-selected"),
  status: null,
  network: null, // the demo's /demo/network, when the peer serves it
  noteDraft: null, // {list, version} while the note is being edited
  noteStatus: null, // {list, text}: what the last save did
};

// -- the token: from the URL's fragment (never sent to a server), kept for this tab -----------

function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("shoal-token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("shoal-token");
}

// -- the client API ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.body = body;
  }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (response.status === 401) {
    sessionStorage.removeItem("shoal-token");
    showLogin("That token was refused.");
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

async function read(key) {
  try {
    remember(await api("GET", `/v1/keys/${encodeURIComponent(key)}`));
  } catch (err) {
    if (err.status !== 404) throw err;
    remember({ key, kind: null, value: null }); // nothing there now (emptied or deleted)
  }
}

async function write(key, kind, op, args, extra = {}) {
  const reply = await api("POST", `/v1/keys/${encodeURIComponent(key)}`, { kind, op, args, ...extra });
  if (reply.object) remember(reply.object);
  return reply;
}

const lwwSet = (value) => ({ kind: "lww", op: "set", args: [value] });

// -- what the page knows ------------------------------------------------------------------

function remember(view) {
  if (!view || !view.key) return;
  const isNewList = view.key === LISTS;
  const before = isNewList ? new Set(Object.keys(valueOf(LISTS) || {})) : null;
  if (view.kind === null) state.objects.delete(view.key);
  else state.objects.set(view.key, view);
  if (isNewList) {
    for (const id of Object.keys(view.value || {})) {
      if (!before.has(id)) loadList(id);
    }
  }
  scheduleRender();
}

const valueOf = (key) => state.objects.get(key)?.value;

function lists() {
  const titles = valueOf(LISTS) || {};
  return Object.entries(titles)
    .map(([id, title]) => ({ id, title: String(title ?? "") }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

function itemsOf(id) {
  const texts = valueOf(keyOf(id, "items")) || {};
  const done = new Set(valueOf(keyOf(id, "done")) || []);
  return Object.entries(texts)
    .map(([itemId, text]) => ({ id: itemId, text: String(text ?? ""), done: done.has(itemId) }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

// Ids sort by creation time, so every device shows the same order.
function newId() {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return `${Date.now().toString(36).padStart(9, "0")}-${random}`;
}

async function loadList(id) {
  await Promise.all(["items", "done", "note"].map((part) => read(keyOf(id, part))));
}

async function loadAll() {
  await read(LISTS);
  await Promise.all(lists().map((l) => loadList(l.id)));
}

// -- live changes -------------------------------------------------------------------------

let socket = null;
let retry = 500;

function subscribe() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/subscribe?prefix=${encodeURIComponent(PREFIX)}`);
  socket = ws;
  setLive("connecting");
  ws.onopen = () => ws.send(JSON.stringify({ token: state.token }));
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      retry = 500;
      setLive("live");
      loadAll().catch(reportError); // what changed while the socket was down
    } else if (message.type === "change") {
      remember(message);
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    setLive("offline");
    if (event.code === 4401) return showLogin("That token was refused.");
    setTimeout(subscribe, retry);
    retry = Math.min(retry * 2, 5000);
  };
}

function setLive(how) {
  const live = $("live");
  live.dataset.state = how;
  live.textContent = { live: "live", connecting: "connecting…", offline: "page disconnected" }[how];
  live.title = how === "live"
    ? "This page follows the peer's changes as they happen"
    : "This page lost its connection to the peer; it reconnects by itself";
}

// -- actions ------------------------------------------------------------------------------

function reportError(err) {
  console.error(err);
  const status = $("status-error");
  status.textContent = err.message;
  status.hidden = false;
}

async function createList(title) {
  const id = newId();
  await write(LISTS, "ormap", "update", [id, lwwSet(title)]);
  select(id);
}

async function deleteList(id) {
  await write(LISTS, "ormap", "remove", [id]);
  if (state.selected === id) select(null);
}

async function addItem(listId, text) {
  await write(keyOf(listId, "items"), "ormap", "update", [newId(), lwwSet(text)]);
}

// Both writes are sent whatever the other answers: a tick must not outlive its item.
async function removeItem(listId, itemId) {
  const results = await Promise.allSettled([
    write(keyOf(listId, "items"), "ormap", "remove", [itemId]),
    write(keyOf(listId, "done"), "orset", "remove", [itemId]),
  ]);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

async function tick(listId, itemId, done) {
  await write(keyOf(listId, "done"), "orset", done ? "add" : "remove", [itemId]);
}

// A note is written against the version the user saw: if another device changed it since,
// the peer refuses (409) and the page shows what is there now instead of replacing it.
const EMPTY_VERSION = { vv: {}, cloud: [] }; // a key never written

async function setNote(listId, text, version) {
  try {
    await write(keyOf(listId, "note"), "mvregister", "set", [text], { if_version: version || EMPTY_VERSION });
    return true;
  } catch (err) {
    if (err.code !== "version_mismatch") throw err;
    await read(keyOf(listId, "note"));
    return false;
  }
}

function mergeTexts(texts) {
  const lines = [];
  for (const text of texts) {
    for (const line of String(text).split("\n")) {
      if (line.trim() && !lines.includes(line)) lines.push(line);
    }
  }
  return lines.join("\n");
}

function select(id) {
  state.selected = id;
  state.noteDraft = null;
  if (id) sessionStorage.setItem("shoal-selected", id);
  else sessionStorage.removeItem("shoal-selected");
  scheduleRender();
}

// -- rendering ----------------------------------------------------------------------------

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function render() {
  renderLists();
  renderDetail();
  renderSync();
}

function renderLists() {
  const all = lists();
  if (state.selected && !all.some((l) => l.id === state.selected)) state.selected = null;
  if (!state.selected && all.length) state.selected = all[0].id;
  $("no-lists").hidden = all.length > 0;
  $("lists").replaceChildren(...all.map((l) => {
    const items = itemsOf(l.id);
    const left = items.filter((i) => !i.done).length;
    return el("li", {},
      el("button", {
        type: "button",
        className: l.id === state.selected ? "list-link selected" : "list-link",
        dataset: { testid: "list", title: l.title },
        onclick: () => select(l.id),
      },
      el("span", { className: "list-name", textContent: l.title || "Untitled" }),
      el("span", {
        className: "count",
        title: `${left} of ${items.length} still to get`,
        textContent: items.length ? String(left) : "",
      })));
  }));
}

function renderDetail() {
  const current = lists().find((l) => l.id === state.selected);
  $("detail").hidden = !current;
  $("empty-detail").hidden = Boolean(current);
  if (!current) return;
  $("list-title").textContent = current.title || "Untitled";
  const items = itemsOf(current.id);
  const ticked = items.filter((i) => i.done).length;
  $("list-summary").textContent = items.length
    ? `${items.length} item${items.length === 1 ? "" : "s"} · ${ticked} ticked`
    : "";
  $("no-items").hidden = items.length > 0;
  $("items").replaceChildren(...items.map((item) => {
    const box = el("input", {
      type: "checkbox",
      checked: item.done,
      id: `item-${item.id}`,
      onchange: (e) => tick(current.id, item.id, e.target.checked).catch(reportError),
    });
    return el("li", { className: item.done ? "item done" : "item", dataset: { testid: "item", text: item.text, done: String(item.done) } },
      box,
      el("label", { htmlFor: `item-${item.id}`, textContent: item.text }),
      el("button", {
        type: "button",
        className: "remove",
        title: `Remove ${item.text}`,
        "aria-label": `Remove ${item.text}`,
        textContent: "×",
        onclick: () => removeItem(current.id, item.id).catch(reportError),
      }));
  }));
  renderNote(current.id);
}

function renderNote(listId) {
  const note = state.objects.get(keyOf(listId, "note"));
  const siblings = note?.value || [];
  const conflict = siblings.length > 1;
  $("note-single").hidden = conflict;
  $("note-conflict").hidden = !conflict;
  const text = $("note-text");
  const editing = state.noteDraft && state.noteDraft.list === listId;
  if (conflict) {
    state.noteDraft = null;
    $("siblings").replaceChildren(...siblings.map((value, i) => el("div", { className: "sibling", dataset: { testid: "note-sibling" } },
      el("span", { className: "sibling-label", textContent: `Version ${i + 1}` }),
      el("p", { className: "sibling-text", textContent: String(value) || "(empty)" }),
      el("button", {
        type: "button",
        className: "secondary",
        dataset: { testid: "keep-sibling" },
        textContent: "Keep this one",
        onclick: () => setNote(listId, value, note.version).catch(reportError),
      }))));
    $("note-merge").onclick = () => setNote(listId, mergeTexts(siblings), note.version).catch(reportError);
    return;
  }
  const value = siblings.length ? String(siblings[0]) : "";
  let status = state.noteStatus?.list === listId ? state.noteStatus.text : "";
  if (!editing) {
    if (text.value !== value) text.value = value;
  } else if (JSON.stringify(note?.version || EMPTY_VERSION) !== JSON.stringify(state.noteDraft.version)) {
    status = "Changed on another device while you type: saving asks first.";
  }
  $("note-status").textContent = status;
}

function noteStatus(listId, text) {
  state.noteStatus = { list: listId, text };
  scheduleRender();
}

function peerName(rid) {
  return state.network?.names?.[rid] || `${rid.slice(0, 8)}…`;
}

// A known peer is "connected" (a link is open), "offline" with the reason the status gives
// (newer peers report a state and last error per dialled URL), or, while this peer is linked
// to others, "not linked": changes still reach it through them (a relay, say).
// A catch-up from a peer (more than one message of changes coming): how much is left.
function describeCatchUp(c) {
  if (!c || typeof c.entries !== "number" || c.entries <= 0) return null;
  const left = Math.max(0, c.entries_left ?? 0);
  const done = Math.round(100 * (1 - left / c.entries));
  return `catching up: ${done}% (${left.toLocaleString()} of ${c.entries.toLocaleString()} left)`;
}

function describePeer(rid, p, anyUp, catchUp) {
  const up = p.connected === true || p.state === "connected";
  const failed = p.state && !["connected", "connecting", "disconnected"].includes(p.state);
  let label = "connected";
  let how = "up";
  if (!up) {
    if (failed) [label, how] = [p.state.replaceAll("_", " "), "down"];
    else if (p.state === "connecting") [label, how] = ["connecting", "waiting"];
    else if (anyUp) [label, how] = ["not linked", "indirect"];
    else [label, how] = ["offline", "down"];
  }
  const details = [];
  if (typeof p.lag === "number") details.push(p.lag === 0 ? "in sync" : `${p.lag} change${p.lag === 1 ? "" : "s"} it lacks`);
  if (p.pending_hints) details.push(`${p.pending_hints} held for it`);
  const progress = describeCatchUp(catchUp);
  if (progress) details.push(progress);
  if (how === "indirect") details.push("reached through the others");
  if (!up && p.error) details.push(p.error);
  return el("li", { className: `peer ${how}`, dataset: { testid: "peer", name: peerName(rid), state: label } },
    el("span", { className: "dot", "aria-hidden": "true" }),
    el("div", { className: "peer-body" },
      el("div", { className: "peer-line" },
        el("span", { className: "peer-name", textContent: peerName(rid) }),
        el("span", { className: "chip", textContent: label })),
      details.length ? el("div", { className: "peer-details small muted", textContent: details.join(" · ") }) : null));
}

function renderSync() {
  const s = state.status;
  const net = state.network;
  $("device-name").textContent = net?.device || new URLSearchParams(location.search).get("device") || "";
  $("network").hidden = !(net && net.available);
  if (net && net.available) {
    const toggle = $("network-toggle");
    toggle.textContent = net.online ? "Go offline" : "Go back online";
    toggle.dataset.online = String(net.online);
    $("network-note").textContent = net.online
      ? "Cuts this device's link to the others, as a lost network would."
      : "Offline: edits stay on this device and sync when it is back.";
  }
  if (!s) return;
  $("me").textContent = peerName(s.replica_id);
  $("me").title = s.replica_id;
  const pending = Object.values(s.peers || {}).reduce((n, p) => n + (typeof p.lag === "number" ? p.lag : 0), 0);
  $("pending").textContent = pending
    ? `${pending} change${pending === 1 ? "" : "s"}${s.pending_hints ? `, ${s.pending_hints} hint${s.pending_hints === 1 ? "" : "s"}` : ""}`
    : (s.pending_hints ? `${s.pending_hints} hints` : "nothing");
  const peers = Object.entries(s.peers || {}).sort(([a], [b]) => peerName(a).localeCompare(peerName(b)));
  const anyUp = (s.connected || []).length > 0;
  const rows = peers.map(([rid, p]) => describePeer(rid, p, anyUp, s.catching_up?.[rid]));
  // Dialled URLs not linked to a known replica yet, with their state, when the peer reports them.
  for (const [url, link] of Object.entries(s.links || {})) {
    if (link.replica_id && s.peers?.[link.replica_id]) continue;
    rows.push(describePeer(url, { state: link.state, error: link.error }, anyUp));
  }
  $("peers").replaceChildren(...rows);
  $("no-peers").hidden = rows.length > 0;
}

async function refreshStatus() {
  try {
    state.status = await api("GET", "/v1/status");
    $("status-error").hidden = true;
  } catch (err) {
    if (err.status !== 401) reportError(err);
  }
  try {
    state.network = await api("GET", "/demo/network");
  } catch {
    state.network = null; // a peer without the example's network switch
  }
  scheduleRender();
}

// -- wiring -------------------------------------------------------------------------------

function showLogin(message) {
  $("app").hidden = true;
  $("live").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
}

function wire() {
  $("new-list").addEventListener("submit", (e) => {
    e.preventDefault();
    const title = $("new-list-title").value.trim();
    if (!title) return;
    $("new-list-title").value = "";
    createList(title).catch(reportError);
  });
  $("new-item").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("new-item-text").value.trim();
    if (!text || !state.selected) return;
    $("new-item-text").value = "";
    addItem(state.selected, text).catch(reportError);
  });
  $("delete-list").addEventListener("click", () => {
    const current = lists().find((l) => l.id === state.selected);
    if (current && confirm(`Delete the list "${current.title}"?`)) deleteList(current.id).catch(reportError);
  });
  $("note-text").addEventListener("input", () => {
    if (!state.noteDraft || state.noteDraft.list !== state.selected) {
      const note = state.objects.get(keyOf(state.selected, "note"));
      state.noteDraft = { list: state.selected, version: note?.version || EMPTY_VERSION };
    }
    noteStatus(state.selected, "Not saved yet");
  });
  $("note-save").addEventListener("click", async () => {
    const listId = state.selected;
    const note = state.objects.get(keyOf(listId, "note"));
    // Written against the version the user started from: a change made elsewhere meanwhile
    // is not replaced unseen (the peer answers 409; the user saves again to replace it).
    const draft = state.noteDraft && state.noteDraft.list === listId ? state.noteDraft : null;
    const version = (draft ? draft.version : note?.version) || EMPTY_VERSION;
    try {
      if (await setNote(listId, $("note-text").value, version)) {
        state.noteDraft = null;
        noteStatus(listId, "Saved");
      } else {
        const fresh = state.objects.get(keyOf(listId, "note"));
        state.noteDraft = { list: listId, version: fresh?.version || EMPTY_VERSION };
        noteStatus(listId, "Changed on another device meanwhile. Save again to replace it.");
      }
    } catch (err) {
      reportError(err);
    }
  });
  $("network-toggle").addEventListener("click", async () => {
    const online = !(state.network && state.network.online);
    try {
      state.network = await api("POST", "/demo/network", { online });
      scheduleRender();
      refreshStatus();
    } catch (err) {
      reportError(err);
    }
  });
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("shoal-token", $("login-token").value.trim());
    location.reload();
  });
}

async function start() {
  wire();
  $("device-name").textContent = new URLSearchParams(location.search).get("device") || "";
  state.token = takeToken();
  if (!state.token) return showLogin();
  $("app").hidden = false;
  subscribe();
  try {
    await loadAll();
  } catch (err) {
    if (err.status !== 401) reportError(err);
  }
  await refreshStatus();
  setInterval(refreshStatus, 1000);
}

start();
