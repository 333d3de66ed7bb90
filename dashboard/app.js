// The media-server dashboard: plain JavaScript, no build step, nothing fetched but the server's own API.
// Pages (hash routes): #/ the wall of live calls, #/calls/ID a live call, #/history (filters in the hash
// query), #/history/ID a stored call. Server data only ever reaches the page as text nodes (textContent).
"use strict";

const KEY_STORE = "ms.key";
const REFUSED = "That key was refused";
const state = {
  key: localStorage.getItem(KEY_STORE) || "",
  me: null,
  page: null, // the current page: { leave() } or null
  routeSeq: 0, // bumped on each navigation, so that a slow page load never draws over a newer one
  skew: 0, // ms: local clock minus server clock (estimated)
};

function idleListen() {
  return { state: "idle", level: 0, peak: 0, levels: [], error: "" };
}
window.msListen = idleListen();

// -- small helpers ---------------------------------------------------------------------------------------

/** Create an element: attrs (on* = listeners, class, style, others as attributes), children as nodes or text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (selector) => document.querySelector(selector);

/** Seconds as m:ss, or h:mm:ss from an hour on. */
function clock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

/** "granted" | "denied" | "unknown", from either "granted" or the enum name "CONSENT_GRANTED". */
function consentOf(value) {
  const v = String(value || "").toLowerCase().replace(/^consent_/, "");
  return v === "granted" || v === "denied" ? v : "unknown";
}

function person(p) {
  return p ? p.name || p.phone || p.email || p.id || "" : "";
}

function roleLabel(role) {
  return role === "rep" ? "Rep" : role === "customer" ? "Customer" : role ? String(role) : "Speaker";
}

function speakerClass(speaker) {
  return "speaker-" + (speaker === "rep" || speaker === "customer" ? speaker : "mixed");
}

function speakerLabel(speaker) {
  return speaker === "rep" ? "Rep" : speaker === "customer" ? "Customer" : speaker === "mixed" || !speaker ? "Mixed" : speaker;
}

function findRole(participants, role) {
  return (participants || []).find((p) => p.role === role);
}

function localDateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "—" : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function percent(x) {
  return `${Math.round(100 * x)}%`;
}

function banner(text) {
  const el = $("#banner");
  el.textContent = text || "";
  el.hidden = !text;
}

function callPath(id) {
  return `/v1/calls/${encodeURIComponent(id)}`;
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// -- the API ----------------------------------------------------------------------------------------------

class Unauthorized extends Error {}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** fetch with the key; a 401 anywhere throws Unauthorized (which sends back to sign in). */
async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + state.key, ...(options.headers || {}) };
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError("Cannot reach the server (network error)", 0);
  }
  if (response.status === 401) throw new Unauthorized(REFUSED);
  return response;
}

/** The message of an error response: its JSON `detail`, else the HTTP status. */
async function detailOf(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail.length) return body.detail.map((d) => d.msg || String(d)).join("; ");
  } catch (err) {
    // not JSON
  }
  return `HTTP ${response.status}`;
}

async function getJson(path) {
  const response = await api(path);
  if (!response.ok) throw new ApiError(await detailOf(response), response.status);
  return response.json();
}

/** What to do with an error from a page: a refused key signs out, anything else shows in the banner. */
function fail(err) {
  if (err instanceof Unauthorized) signOut(REFUSED);
  else banner(String((err && err.message) || err));
}

function guard(promise) {
  promise.catch(fail);
}

/** Estimate the clock skew from a response's Date header (only trusted when clearly off: it has 1 s steps). */
function noteServerDate(response) {
  const server = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(server)) return;
  const skew = Date.now() - server;
  state.skew = Math.abs(skew) > 2000 ? skew : 0;
}

// -- event streams ----------------------------------------------------------------------------------------

/** The URL of an event stream: no key in it (URLs end up in logs); the key goes as a subprotocol (wsProtocols). */
function wsUrl(path, after) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sep = path.includes("?") ? "&" : "?";
  return `${scheme}//${location.host}${path}${sep}after=${after}`;
}

/** How a browser sends its key on a websocket: `Sec-WebSocket-Protocol: token, KEY` (the server answers "token"). */
function wsProtocols() {
  return ["token", state.key];
}

/** The #conn pill: "live" (open), "down" (reconnecting) or "off" (no stream on this page). */
function setConn(mode) {
  const el = $("#conn");
  el.textContent = mode === "live" ? "live" : mode === "down" ? "reconnecting…" : "offline";
  el.className = "conn" + (mode === "off" ? "" : " " + mode);
}

/** Whether a `GET /v1/calls/{id}` answer is a call that has ended (a live call is stored too, with status `live`). */
async function hasEnded(response) {
  if (response.status !== 200) return false;
  const call = await response.json().catch(() => null);
  return Boolean(call && call.status !== "live");
}

/**
 * A websocket of events that reconnects by itself (0.5 s doubling to 10 s, reset once open) and resumes
 * after the last event id it delivered: a network drop loses nothing and shows nothing twice.
 * handlers: onEvent(event), onPolicy(reason) for a 1008 close that is not about the key.
 */
class EventStream {
  constructor(path, after, handlers) {
    this.path = path;
    this.last = Number(after) || 0;
    this.seen = new Set();
    this.handlers = handlers;
    this.delay = 500;
    this.closed = false;
    this.timer = null;
    setConn("down");
    this.open();
  }

  open() {
    if (this.closed) return;
    const ws = new WebSocket(wsUrl(this.path, this.last), wsProtocols());
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      setConn("live");
    };
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = (close) => this.closedBy(close);
  }

  receive(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch (err) {
      return;
    }
    const id = Number(event.id || 0);
    // Already shown (id 0: a notice that events were lost). Several servers' ids interleave, so a smaller id is
    // not an older event: the ids seen lately are remembered, and a resume goes on after the last one seen.
    if (id !== 0 && this.seen.has(id)) return;
    if (id) {
      this.last = id;
      this.seen.add(id);
      if (this.seen.size > 5000) this.seen.delete(this.seen.values().next().value);
    }
    try {
      this.handlers.onEvent(event);
    } catch (err) {
      console.error("event", event, err);
    }
  }

  closedBy(close) {
    if (this.closed) return;
    if (close.code === 1008 || close.code === 4401) {
      this.stop();
      if (close.code === 4401 || /unauthori[sz]ed/i.test(close.reason)) signOut(REFUSED);
      else if (this.handlers.onPolicy) this.handlers.onPolicy(close.reason || "The server refused the event stream");
      return;
    }
    // 1013 (too slow) and any other close or drop: resume after the last event seen.
    setConn("down");
    this.timer = setTimeout(() => this.open(), this.delay);
    this.delay = Math.min(this.delay * 2, 10000);
  }

  stop() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    setConn("off");
  }
}

/** The text of an `error` event (id "0" is the server's notice that some events were not kept). */
function errorText(event) {
  const e = event.error || {};
  const text = [e.code, e.message].filter(Boolean).join(": ") || "error";
  return Number(event.id || 0) === 0 ? `Some events were missed: ${text}` : text;
}

// -- sign in ----------------------------------------------------------------------------------------------

function signOut(message) {
  localStorage.removeItem(KEY_STORE);
  state.key = "";
  state.me = null;
  state.routeSeq++;
  renderSignIn(message);
}

function renderSignIn(message) {
  leavePage();
  banner("");
  setConn("off");
  $("#signout").hidden = true;
  navHighlight(null);
  const error = h("p", { id: "signin-error", class: "error", role: "alert", hidden: !message }, message || "");
  const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", placeholder: "msk_…", required: true });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { id: "signin", class: "card signin" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Sign in with an API key of your team."),
    h("label", { for: "key" }, "API key"),
    input, error, button);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    signIn(input.value.trim(), error, button);
  });
  $("#view").replaceChildren(form);
  input.focus();
}

async function signIn(key, error, button) {
  if (!key) return;
  button.disabled = true;
  state.key = key;
  try {
    state.me = await getJson("/v1/me");
    localStorage.setItem(KEY_STORE, key);
    route();
  } catch (err) {
    state.key = "";
    state.me = null;
    error.textContent = err instanceof Unauthorized ? REFUSED : String(err.message || err);
    error.hidden = false;
    button.disabled = false;
  }
}

// -- routing ----------------------------------------------------------------------------------------------

function leavePage() {
  const page = state.page;
  state.page = null;
  if (page && page.leave) page.leave();
}

function parseHash() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "").split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  return { parts, params: new URLSearchParams(query || "") };
}

function navHighlight(section) {
  document.querySelectorAll("[data-nav]").forEach((a) => {
    const current = a.dataset.nav === section;
    a.classList.toggle("current", current);
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

async function route() {
  const seq = ++state.routeSeq;
  leavePage();
  banner("");
  setConn("off");
  if (!state.key) return renderSignIn();
  if (!state.me) {
    $("#view").replaceChildren(h("p", { class: "muted loading" }, "Signing in…"));
    try {
      state.me = await getJson("/v1/me");
    } catch (err) {
      if (err instanceof Unauthorized) return signOut(REFUSED);
      if (seq === state.routeSeq) {
        $("#view").replaceChildren(h("p", { class: "empty" }, "Cannot sign in: ", String(err.message)),);
        banner(String(err.message));
      }
      return;
    }
    if (seq !== state.routeSeq) return;
  }
  $("#signout").hidden = false;
  const { parts, params } = parseHash();
  navHighlight(parts[0] === "history" ? "history" : "wall");
  if (!state.me.can || !state.me.can.read) {
    $("#view").replaceChildren(h("p", { class: "empty" }, `This key (role ${state.me.role}) may not read calls.`));
    return;
  }
  try {
    if (parts[0] === "calls" && parts[1]) state.page = liveCallPage(parts[1]);
    else if (parts[0] === "history" && parts[1]) state.page = detailPage(parts[1], seq);
    else if (parts[0] === "history") state.page = historyPage(params, seq);
    else state.page = wallPage();
  } catch (err) {
    fail(err);
  }
}

/** True while the page drawn for navigation `seq` is still the current one. */
function current(seq) {
  return seq === state.routeSeq;
}

// -- shared pieces ----------------------------------------------------------------------------------------

/** Per participant: role, a consent badge ("Dana · consent granted") and a "not transcribed" note. */
function participantChips(participants) {
  const list = (participants || []).map((p) => {
    const consent = consentOf(p.consent);
    const who = person(p);
    return h("span", { class: `participant ${speakerClass(p.role)}` },
      h("span", { class: "role" }, roleLabel(p.role)),
      h("span", { class: `badge consent-${consent}`, title: `${roleLabel(p.role)}${who ? " " + who : ""}: consent ${consent}` },
        `${who || roleLabel(p.role)} · consent ${consent}`),
      p.transcribed === false ? h("span", { class: "note" }, "not transcribed") : null);
  });
  return h("div", { class: "participants" }, list.length ? list : h("span", { class: "muted" }, "No participants yet"));
}

/** Compact consent badges for a table cell. */
function consentBadges(participants) {
  return (participants || []).map((p) => {
    const consent = consentOf(p.consent);
    const who = person(p);
    return h("span", { class: `badge consent-${consent}`, title: `${roleLabel(p.role)}${who ? " " + who : ""}: consent ${consent}` },
      `${roleLabel(p.role)} · ${consent}`);
  });
}

/** A small bar of the rep's share of talk time and "58% rep" (or "—" when nobody has spoken). */
function ratioBar(ratio) {
  if (ratio === null || ratio === undefined || Number.isNaN(Number(ratio))) {
    return h("span", { class: "ratio muted", title: "No talk ratio yet" }, "—");
  }
  const pct = Math.round(Number(ratio) * 100);
  const fill = h("span", { class: "fill" });
  fill.style.width = `${pct}%`;
  return h("span", { class: "ratio", title: `Rep ${pct}% · customer ${100 - pct}% of talk time` },
    h("span", { class: "bar" }, fill), h("span", { class: "ratio-text" }, `${pct}% rep`));
}

/** The rep's share of the talk, when the customer is heard on a transcribed channel of their own (else null). */
function talkRatio(talk, channels) {
  const customerHeard = (channels || []).some((c) => c.speaker === "customer" && c.transcribed !== false);
  const rep = talk.rep || 0, spoken = rep + (talk.customer || 0);
  return customerHeard && spoken > 0 ? rep / spoken : null;
}

/** Text with some [start, end) ranges wrapped in <mark>: a list of text nodes and marks, never HTML. */
function marked(text, ranges) {
  const out = [];
  let at = 0;
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
    if (r.start < at || r.end <= r.start || r.end > text.length) continue;
    if (r.start > at) out.push(text.slice(at, r.start));
    out.push(h("mark", { class: r.cls || "", title: r.title || null }, text.slice(r.start, r.end)));
    at = r.end;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/** Every case-insensitive occurrence of each term (whole words when `words`), as ranges. */
function termRanges(text, terms, cls, words = false) {
  const lower = text.toLowerCase();
  const ranges = [];
  for (const term of terms) {
    const needle = String(term || "").toLowerCase();
    if (!needle) continue;
    for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, at + needle.length)) {
      const end = at + needle.length;
      if (words && (/[\p{L}\p{N}]/u.test(lower[at - 1] || "") || /[\p{L}\p{N}]/u.test(lower[end] || ""))) continue;
      ranges.push({ start: at, end, cls, title: term });
    }
  }
  return ranges;
}

const bare = (w) => String(w || "").toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, "");

/** Where a keyword hit is in a segment's text: its character span, else the words as said, else by time. */
function hitRange(text, hit, words) {
  const title = `${hit.keyword}${hit.category ? " (" + hit.category + ")" : ""}`;
  const cls = `kw kw-${hit.category || "keyterm"}`;
  const start = Number(hit.charStart || 0), end = Number(hit.charEnd || 0);
  if (end > start && end <= text.length) return { start, end, cls, title };
  const lower = text.toLowerCase();
  for (const needle of [hit.text, hit.keyword]) {
    const n = String(needle || "").toLowerCase();
    const at = n ? lower.indexOf(n) : -1;
    if (at >= 0) return { start: at, end: at + n.length, cls, title };
  }
  // By time: the words said between the hit's start and end, found in order in the text.
  const inside = (w) => (Number(w.start) + Number(w.end)) / 2 >= hit.start && (Number(w.start) + Number(w.end)) / 2 <= hit.end;
  const said = (words || []).filter(inside).map((w) => bare(w.word)).filter(Boolean);
  if (!said.length) return null;
  const first = lower.indexOf(said[0]);
  if (first < 0) return null;
  let last = first + said[0].length;
  for (const w of said.slice(1)) {
    const at = lower.indexOf(w, last);
    if (at < 0) break;
    last = at + w.length;
  }
  return { start: first, end: last, cls, title };
}

// -- transcripts -------------------------------------------------------------------------------------------

/**
 * A transcript list: one <li class="seg final|interim speaker-..."> per channel+segment, in order of start,
 * interims replaced in place by later interims and by the final; keyword hits marked, cues shown inline.
 */
class Transcript {
  constructor() {
    this.el = h("ol", { id: "transcript", class: "transcript" });
    this.items = new Map(); // "channel:segment" -> { li, t, hits, cues }
    this.pendingCues = []; // cues that came before any segment
  }

  static key(channel, segment) {
    return `${Number(channel || 0)}:${Number(segment || 0)}`;
  }

  show(t) {
    const key = Transcript.key(t.channel, t.segment);
    let item = this.items.get(key);
    if (!item) {
      item = { li: h("li", { "data-channel": Number(t.channel || 0), "data-segment": Number(t.segment || 0) }), t, hits: [], cues: [] };
      this.items.set(key, item);
      this.insert(item.li, Number(t.start || 0));
      if (this.pendingCues.length) item.cues.push(...this.pendingCues.splice(0));
    } else if (item.t.isFinal && !t.isFinal) {
      return; // a late interim never undoes the final
    }
    item.t = t;
    this.paint(item);
  }

  insert(li, start) {
    li.dataset.start = String(start);
    const later = [...this.el.children].find((other) => other.dataset.start !== undefined && Number(other.dataset.start) > start);
    this.el.insertBefore(li, later || null);
  }

  paint(item) {
    const { li, t } = item;
    const text = String(t.text || "");
    li.className = `seg ${t.isFinal ? "final" : "interim"} ${speakerClass(t.speaker)}${item.cues.length ? " cued" : ""}`;
    const ranges = item.hits.map((k) => hitRange(text, k, t.words)).filter(Boolean);
    li.replaceChildren(
      h("span", { class: "who" }, speakerLabel(t.speaker)),
      h("span", { class: "time" }, clock(t.start)),
      h("span", { class: "text" }, marked(text, ranges)),
      ...item.cues.map((c) => h("span", { class: `cue-inline cue-${c.kind || "cue"}`, title: c.kind || "cue" }, c.message || c.kind)),
    );
  }

  hit(k) {
    const key = Transcript.key(k.channel, k.segment);
    let item = this.items.get(key);
    if (!item) {
      // A hit for a segment not shown yet (its final is on the way): keep it for when it comes.
      item = { li: h("li", { "data-channel": Number(k.channel || 0), "data-segment": Number(k.segment || 0) }),
        t: { channel: k.channel, segment: k.segment, speaker: k.speaker, start: k.start, end: k.end, text: "", isFinal: false }, hits: [], cues: [] };
      this.items.set(key, item);
      this.insert(item.li, Number(k.start || 0));
    }
    item.hits.push(k);
    this.paint(item);
  }

  /** Attach a cue to the segment it was said in (or the last one before it); returns that <li>. */
  cue(c) {
    const time = Number(c.time || 0);
    let best = null;
    for (const item of this.items.values()) {
      const start = Number(item.t.start || 0);
      if (start > time + 0.5) continue;
      const sameChannel = Number(item.t.channel || 0) === Number(c.channel || 0);
      if (!best || (sameChannel && !best.same) || (sameChannel === best.same && start > best.start)) {
        best = { item, start, same: sameChannel };
      }
    }
    if (!best) {
      this.pendingCues.push(c);
      return null;
    }
    best.item.cues.push(c);
    this.paint(best.item);
    return best.item.li;
  }

  /** Scroll to a segment and flash it. */
  reveal(channel, segment) {
    const item = this.items.get(Transcript.key(channel, segment));
    if (!item) return;
    item.li.scrollIntoView({ block: "center", behavior: "smooth" });
    item.li.classList.remove("flash");
    void item.li.offsetWidth; // restart the animation
    item.li.classList.add("flash");
  }
}

// -- the wall of live calls ---------------------------------------------------------------------------------

function wallPage() {
  const calls = new Map(); // id -> call state (below)
  const tbody = h("tbody");
  const table = h("table", { id: "wall", class: "grid wall", hidden: true },
    h("thead", {}, h("tr", {}, ["Rep", "Customer", "Source", "Duration", "Talk ratio", "Latest cue", "Consent"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  const empty = h("p", { id: "wall-empty", class: "empty", hidden: true }, "No live calls");
  const count = h("span", { class: "count muted" });
  const loading = h("p", { class: "muted loading" }, "Loading live calls…");
  $("#view").replaceChildren(h("section", { class: "page wall-page" },
    h("div", { class: "page-head" }, h("h1", {}, "Live calls ", count)), loading, h("div", { class: "table-wrap" }, table), empty));
  let stream = null;
  let ticker = null;
  let left = false;
  const asked = new Set(); // calls not in the list whose events came: the list was taken again for them

  const elapsed = (c) => (c.ended ? c.baseDuration : c.baseDuration + (Date.now() - c.baseAt) / 1000);

  function fromSnapshot(s) {
    return {
      id: s.id, source: s.source || "", participants: s.participants || [], channels: s.channels || [],
      talkTime: { ...(s.talkTime || {}) }, talkRatio: s.talkRatio === undefined ? null : s.talkRatio,
      latestCue: s.latestCue || null, latestKeyword: null,
      baseDuration: Number(s.duration) || 0, baseAt: Date.now(), startedAt: s.startedAt, row: null,
    };
  }

  function latestCell(c) {
    if (c.latestCue) return h("span", { class: "cue", title: c.latestCue.kind || "" }, c.latestCue.message || c.latestCue.kind);
    if (c.latestKeyword) {
      const k = c.latestKeyword;
      return h("span", { class: "kw-latest", title: k.category || "" }, h("mark", { class: `kw kw-${k.category || "keyterm"}` }, k.keyword),
        k.category ? h("span", { class: "muted" }, ` ${k.category}`) : null);
    }
    return h("span", { class: "muted" }, "—");
  }

  function render(c) {
    const rep = findRole(c.participants, "rep");
    const customer = findRole(c.participants, "customer");
    const open = () => go(`#/calls/${encodeURIComponent(c.id)}`);
    const row = h("tr", { "data-call-id": c.id, tabindex: 0, title: `Open call ${c.id}`, onclick: open,
      onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open()) },
      h("td", { class: "rep" }, person(rep) || "—"),
      h("td", { class: "customer" }, (customer && (customer.name || customer.phone || customer.email || customer.id)) || "—"),
      h("td", { class: "source" }, h("span", { class: "source-tag" }, c.source || "—")),
      h("td", { class: "duration num" }, clock(elapsed(c))),
      h("td", { class: "talk" }, ratioBar(c.talkRatio)),
      h("td", { class: "latest" }, latestCell(c)),
      h("td", { class: "consent" }, consentBadges(c.participants)));
    if (c.row && c.row.parentNode) c.row.replaceWith(row);
    else tbody.prepend(row);
    c.row = row;
  }

  function refreshEmpty() {
    empty.hidden = calls.size > 0;
    table.hidden = calls.size === 0;
    count.textContent = calls.size ? `(${calls.size})` : "";
  }

  function remove(id) {
    const c = calls.get(id);
    if (c && c.row) c.row.remove();
    calls.delete(id);
    refreshEmpty();
  }

  function onEvent(e) {
    if (e.type === "error" && Number(e.id || 0) === 0) {
      banner(errorText(e));
      guard(load(false)); // events were lost: take a fresh snapshot of the live calls
      return;
    }
    let c = calls.get(e.callId);
    if (e.type === "call_started") {
      const s = e.callStarted || {};
      const startedServer = Date.parse(e.time || "");
      const since = Number.isNaN(startedServer) ? 0 : Math.max(0, (Date.now() - state.skew - startedServer) / 1000);
      if (c && c.row) c.row.remove();
      c = fromSnapshot({ id: e.callId, source: s.source, participants: s.participants, channels: s.channels, duration: since, startedAt: e.time });
      calls.set(e.callId, c);
      render(c);
      return refreshEmpty();
    }
    if (!c) {
      // A call started on another server just before the list was read may be in neither: take the list again.
      if (e.type !== "call_ended" && !asked.has(e.callId)) {
        asked.add(e.callId);
        setTimeout(() => left || guard(load(false)), 1500); // (the other server shows it within a second)
      }
      return;
    }
    switch (e.type) {
      case "call_ended":
        return remove(e.callId);
      case "call_updated": {
        const u = e.callUpdated || {};
        if (u.participants) c.participants = u.participants;
        if (u.channels) c.channels = u.channels;
        c.talkRatio = talkRatio(c.talkTime, c.channels);
        break;
      }
      case "transcript": {
        const t = e.transcript || {};
        if (!t.isFinal) return;
        const speaker = t.speaker || "mixed";
        c.talkTime[speaker] = (c.talkTime[speaker] || 0) + Math.max(0, Number(t.end || 0) - Number(t.start || 0));
        c.talkRatio = talkRatio(c.talkTime, c.channels);
        break;
      }
      case "cue":
        c.latestCue = e.cue || null;
        break;
      case "keyword_hit":
        c.latestKeyword = e.keywordHit || null;
        break;
      default:
        return;
    }
    render(c);
  }

  /** Take a snapshot of the live calls; the first time, subscribe to the team's events after it. */
  async function load(first) {
    const response = await api("/v1/live");
    if (!response.ok) throw new ApiError(await detailOf(response), response.status);
    noteServerDate(response);
    const live = await response.json();
    if (left) return;
    loading.remove();
    const snapshot = live.calls || [];
    if (snapshot.length) {
      const s = snapshot[0];
      const skew = Date.now() - (Date.parse(s.startedAt) + 1000 * (Number(s.duration) || 0));
      if (!Number.isNaN(skew)) state.skew = skew;
    }
    for (const c of calls.values()) if (c.row) c.row.remove();
    calls.clear();
    for (const s of snapshot) calls.set(s.id, fromSnapshot(s));
    [...calls.values()].reverse().forEach(render); // newest first: each render prepends
    refreshEmpty();
    if (first) {
      stream = new EventStream("/v1/events", live.lastEventId || 0, { onEvent, onPolicy: banner });
      ticker = setInterval(tick, 1000);
    }
  }

  function tick() {
    for (const c of calls.values()) {
      const cell = c.row && c.row.querySelector(".duration");
      if (cell) cell.textContent = clock(elapsed(c));
    }
  }

  guard(load(true));
  return {
    leave() {
      left = true;
      if (stream) stream.stop();
      clearInterval(ticker);
    },
  };
}

// -- a live call ------------------------------------------------------------------------------------------

function liveCallPage(id) {
  const can = (state.me && state.me.can) || {};
  const transcript = new Transcript();
  const cues = h("ul", { id: "cues", class: "cues" }); // empty: "No cues yet" (CSS)
  const hits = h("ul", { id: "hits", class: "hits" });
  const keypad = h("p", { id: "dtmf", class: "dtmf muted", hidden: true });
  const people = h("div", { class: "people" }, participantChips([]));
  const duration = h("span", { id: "call-duration", class: "num" }, "0:00");
  const ratio = h("span", { id: "call-ratio" }, ratioBar(null));
  const source = h("span", { id: "call-source", class: "source-tag", hidden: true });
  const status = h("p", { id: "call-status", class: "call-status" }, "Connecting…");
  const statusLink = h("span", { class: "status-link" });

  // Listen-in controls.
  const channel = h("select", { id: "listen-channel", title: "What to hear" }, h("option", { value: "mixed" }, "Mixed"));
  const listenButton = h("button", { id: "listen", type: "button", class: "primary", disabled: !can.listen,
    title: can.listen ? "Hear the call live" : "Your role may not listen in" }, "Listen");
  const meterFill = h("span", { class: "fill" });
  const meter = h("span", { id: "listen-level", class: "meter", role: "meter", "aria-label": "Listen-in level", "aria-valuemin": 0, "aria-valuemax": 1, "aria-valuenow": 0 }, meterFill);
  const listenNote = h("span", { id: "listen-note", class: "muted" }, can.listen ? "" : "Your role may not listen in");
  const audio = h("audio", { id: "listen-audio", autoplay: true });

  $("#view").replaceChildren(h("section", { class: "page call-page" },
    h("div", { class: "page-head" }, h("h1", {}, "Call ", h("code", {}, id)), source),
    h("div", { class: "call-head card" },
      people,
      h("dl", { class: "facts inline" },
        h("dt", {}, "Duration"), h("dd", {}, duration),
        h("dt", {}, "Talk ratio"), h("dd", {}, ratio))),
    h("div", { class: "status-row" }, status, statusLink),
    h("div", { class: "listen" }, listenButton, h("label", { class: "sr-only", for: "listen-channel" }, "Channel"), channel, meter, listenNote, audio),
    h("div", { class: "columns" },
      h("div", { class: "main" }, h("h2", {}, "Transcript"), transcript.el),
      h("aside", {}, h("h2", {}, "Cues"), cues, h("h2", {}, "Keywords"), hits, keypad))));

  window.msListen = idleListen();
  const info = { participants: [], channels: [], talk: {}, baseDuration: 0, baseAt: Date.now(), known: false, ended: false };
  let listening = null;
  let stream = null;
  let left = false;

  const elapsed = () => (info.ended ? info.baseDuration : info.baseDuration + (Date.now() - info.baseAt) / 1000);
  const ticker = setInterval(() => (duration.textContent = clock(elapsed())), 1000);

  function renderHeader() {
    people.replaceChildren(participantChips(info.participants));
    ratio.replaceChildren(ratioBar(talkRatio(info.talk, info.channels)));
    duration.textContent = clock(elapsed());
    renderChannels();
  }

  function renderChannels() {
    const options = [h("option", { value: "mixed" }, "Mixed")];
    for (const c of info.channels) {
      options.push(h("option", { value: String(c.index || 0) }, `Channel ${c.index || 0} · ${speakerLabel(c.speaker)}`));
    }
    const selected = channel.value;
    channel.replaceChildren(...options);
    channel.value = [...channel.options].some((o) => o.value === selected) ? selected : "mixed";
  }

  function setLive() {
    if (info.ended) return;
    status.className = "call-status live";
    status.textContent = "Live";
  }

  function setParticipants(p, time) {
    if (p.participants) info.participants = p.participants;
    if (p.channels) info.channels = p.channels;
    if (p.source) {
      source.textContent = p.source;
      source.hidden = false;
    }
    if (!info.known && time) {
      const started = Date.parse(time);
      if (!Number.isNaN(started)) {
        info.baseDuration = Math.max(0, (Date.now() - state.skew - started) / 1000);
        info.baseAt = Date.now();
      }
    }
    info.known = true;
    setLive();
    renderHeader();
  }

  function addCue(c) {
    const li = h("li", { class: `cue cue-${c.kind || "cue"} new` },
      h("span", { class: "time" }, clock(c.time)), " ",
      h("span", { class: "cue-kind" }, c.kind || "cue"), " ",
      h("span", { class: "cue-message" }, c.message || ""));
    cues.prepend(li);
    setTimeout(() => li.classList.remove("new"), 2500);
    const seg = transcript.cue(c);
    if (seg) li.addEventListener("click", () => seg.scrollIntoView({ block: "center", behavior: "smooth" }));
  }

  function addHit(k) {
    transcript.hit(k);
    hits.prepend(h("li", { class: speakerClass(k.speaker), onclick: () => transcript.reveal(k.channel, k.segment) },
      h("span", { class: "time" }, clock(k.start)), " ",
      h("mark", { class: `kw kw-${k.category || "keyterm"}` }, k.keyword),
      k.category ? h("span", { class: "muted" }, ` ${k.category}`) : null));
  }

  function ended(e) {
    const c = e.callEnded || {};
    info.ended = true;
    if (c.duration !== undefined) info.baseDuration = Number(c.duration) || 0;
    else info.baseDuration = elapsed();
    clearInterval(ticker);
    duration.textContent = clock(info.baseDuration);
    status.className = "call-status ended";
    status.textContent = "Call ended";
    const reason = [c.status, c.reason].filter(Boolean).join(", ");
    statusLink.replaceChildren(reason ? h("span", { class: "muted" }, ` (${reason}) · `) : " · ",
      h("a", { href: `#/history/${encodeURIComponent(id)}` }, "View the stored call"));
    stopListening();
    listenButton.disabled = true;
    // Nothing follows call_ended but a late event or two: keep the stream a moment, then close it.
    setTimeout(() => stream && stream.stop(), 3000);
  }

  function onEvent(e) {
    switch (e.type) {
      case "call_started":
        setParticipants(e.callStarted || {}, e.time);
        break;
      case "call_updated":
        setParticipants(e.callUpdated || {}, null);
        break;
      case "transcript": {
        const t = e.transcript || {};
        setLive();
        transcript.show(t);
        if (t.isFinal) {
          const speaker = t.speaker || "mixed";
          info.talk[speaker] = (info.talk[speaker] || 0) + Math.max(0, Number(t.end || 0) - Number(t.start || 0));
          ratio.replaceChildren(ratioBar(talkRatio(info.talk, info.channels)));
        }
        break;
      }
      case "keyword_hit":
        addHit(e.keywordHit || {});
        break;
      case "cue":
        addCue(e.cue || {});
        break;
      case "dtmf": {
        const d = e.dtmf || {};
        keypad.hidden = false;
        keypad.textContent = `${keypad.textContent || "Keypad:"} ${d.digit}`;
        break;
      }
      case "error":
        banner(errorText(e));
        break;
      case "call_ended":
        ended(e);
        break;
      default:
        break;
    }
  }

  /** The stream was refused (an unknown call): show the stored call if there is one. */
  async function refused(reason) {
    const response = await api(callPath(id));
    if (left) return;
    if (await hasEnded(response)) return go(`#/history/${encodeURIComponent(id)}`);
    status.className = "call-status ended";
    status.textContent = response.status === 404 ? "No such call" : reason;
  }

  // -- listen-in (WHEP-style) --

  async function startListening() {
    if (listening || !can.listen) return;
    const m = window.msListen;
    m.state = "connecting";
    m.error = "";
    listenButton.textContent = "Stop listening";
    channel.disabled = true;
    listenNote.textContent = "Connecting…";
    const session = { pc: null, location: null, timer: null, context: null };
    listening = session;
    try {
      session.context = new AudioContext(); // made in the click, so that it may play
      session.context.resume().catch(() => {});
      const pc = new RTCPeerConnection();
      session.pc = pc;
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.ontrack = (ev) => onTrack(session, ev);
      pc.onconnectionstatechange = () => {
        if (listening === session && pc.connectionState === "failed") listenFailed(session, "The audio connection failed");
      };
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc, 2000);
      if (listening !== session) return;
      const response = await api(`${callPath(id)}/listen?channel=${encodeURIComponent(channel.value)}`,
        { method: "POST", body: pc.localDescription.sdp, headers: { "Content-Type": "application/sdp" } });
      if (response.status !== 201) {
        const message = response.status === 403 ? "Your role may not listen in"
          : response.status === 409 ? "The call is not live"
          : response.status === 404 ? "No such call" : await detailOf(response);
        throw new Error(message);
      }
      const location_ = response.headers.get("Location");
      session.location = location_ ? new URL(location_, location.href).href : null;
      const answer = await response.text();
      if (listening !== session) return deleteSession(session.location);
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      await session.context.resume().catch(() => {});
    } catch (err) {
      if (err instanceof Unauthorized) return signOut(REFUSED);
      listenFailed(session, String(err.message || err));
    }
  }

  function onTrack(session, ev) {
    if (listening !== session) return;
    const media = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
    audio.srcObject = media; // playing it is also what makes Chromium feed WebAudio from a remote track
    audio.play().catch(() => {});
    const analyser = session.context.createAnalyser();
    analyser.fftSize = 2048;
    session.context.createMediaStreamSource(media).connect(analyser);
    const buffer = new Float32Array(analyser.fftSize);
    clearInterval(session.timer);
    session.timer = setInterval(() => measure(analyser, buffer), 50);
    window.msListen.state = "listening";
    listenNote.textContent = `Listening · ${channel.options[channel.selectedIndex] ? channel.options[channel.selectedIndex].text : channel.value}`;
  }

  function measure(analyser, buffer) {
    analyser.getFloatTimeDomainData(buffer);
    let sum = 0;
    for (let i = 0; i < buffer.length; i++) sum += buffer[i] * buffer[i];
    const level = Math.sqrt(sum / buffer.length);
    const m = window.msListen;
    m.level = level;
    m.peak = Math.max(m.peak, level);
    m.levels.push({ t: Date.now(), level });
    if (m.levels.length > 2000) m.levels.splice(0, m.levels.length - 2000);
    showLevel(level);
  }

  function showLevel(level) {
    // On a decibel scale: -60 dBFS (silence) is empty, 0 dBFS full.
    const db = level > 0 ? 20 * Math.log10(level) : -120;
    const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    meterFill.style.width = `${pct.toFixed(1)}%`;
    meter.setAttribute("aria-valuenow", level.toFixed(3));
  }

  function listenFailed(session, message) {
    if (listening === session) stopListening({ keepalive: false });
    const m = window.msListen;
    m.state = "error";
    m.error = message;
    listenNote.textContent = message;
    banner(message);
  }

  function stopListening(options = {}) {
    const session = listening;
    if (!session) return;
    listening = null;
    clearInterval(session.timer);
    deleteSession(session.location, options.keepalive);
    if (session.pc) session.pc.close();
    if (session.context) session.context.close().catch(() => {});
    audio.srcObject = null;
    showLevel(0);
    listenButton.textContent = "Listen";
    channel.disabled = false;
    listenNote.textContent = "";
    const m = window.msListen;
    m.state = "idle";
    m.level = 0;
  }

  function deleteSession(url, keepalive = false) {
    if (url) api(url, { method: "DELETE", keepalive }).catch(() => {});
  }

  listenButton.addEventListener("click", () => (listening ? stopListening() : startListening()));

  stream = new EventStream(`${callPath(id)}/events`, 0, { onEvent, onPolicy: (reason) => guard(refused(reason)) });

  // A call that has ended: show it from the store (a live one is stored too, as `live`). A live one: its
  // duration from the snapshot.
  guard((async () => {
    const response = await api(callPath(id));
    if (left) return;
    if (await hasEnded(response)) return go(`#/history/${encodeURIComponent(id)}`);
    const snapshot = await getJson("/v1/live");
    const call = (snapshot.calls || []).find((c) => c.id === id);
    if (left || info.ended) return;
    if (!call) {
      if (!info.known) status.textContent = "Waiting for the call…";
      return;
    }
    info.baseDuration = Number(call.duration) || 0;
    info.baseAt = Date.now();
    if (!info.participants.length) setParticipants(call, null);
    info.known = true;
    renderHeader();
  })());

  return {
    leave() {
      left = true;
      clearInterval(ticker);
      stopListening({ keepalive: true });
      if (stream) stream.stop();
    },
  };
}

/** Resolve when ICE gathering is complete, or after `ms`. */
function iceGathered(pc, ms) {
  return new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        done();
      }
    });
  });
}

// -- history ------------------------------------------------------------------------------------------------

const FILTERS = ["q", "rep", "from", "to", "keyword"];

function historyPage(params, seq) {
  const field = (name, label, type, placeholder) => h("label", { class: `field field-${name}` }, label,
    h("input", { name, type, value: params.get(name) || "", placeholder: placeholder || null, autocomplete: "off" }));
  const form = h("form", { id: "filters", class: "filters card", role: "search" },
    field("q", "Search transcripts", "search", "words said in the call"),
    field("rep", "Rep", "text", "name"),
    field("from", "From", "date"),
    field("to", "To", "date"),
    field("keyword", "Keyword", "text", "tracked phrase"),
    h("div", { class: "filter-buttons" },
      h("button", { type: "submit", class: "primary" }, "Search"),
      h("button", { type: "button", class: "link", onclick: () => go("#/history") }, "Clear")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const query = new URLSearchParams();
    for (const name of FILTERS) {
      const value = String(form.elements[name].value || "").trim();
      if (value) query.set(name, value);
    }
    go("#/history" + (query.toString() ? "?" + query : ""));
  });
  const tbody = h("tbody");
  const table = h("table", { id: "history", class: "grid history", hidden: true },
    h("thead", {}, h("tr", {}, ["Started", "Rep", "Customer", "Duration", "Status", "Keywords", "Snippet"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  const more = h("button", { id: "more", type: "button", hidden: true }, "Load more");
  const empty = h("p", { id: "history-empty", class: "empty", hidden: true }, "No calls match.");
  const loading = h("p", { class: "muted loading" }, "Loading…");
  const count = h("span", { class: "count muted" });
  $("#view").replaceChildren(h("section", { class: "page history-page" },
    h("div", { class: "page-head" }, h("h1", {}, "History ", count)), form, loading, h("div", { class: "table-wrap" }, table), empty, more));

  const terms = searchTerms(params.get("q") || "");
  let cursor = null;
  let shown = 0;

  function row(c) {
    const rep = findRole(c.participants, "rep");
    const customer = findRole(c.participants, "customer");
    // A call still live (stored as it goes) opens on its live page.
    const open = () => go(`#/${c.status === "live" ? "calls" : "history"}/${encodeURIComponent(c.id)}`);
    return h("tr", { "data-call-id": c.id, tabindex: 0, title: `Open call ${c.id}`, onclick: open,
      onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open()) },
      h("td", { class: "started nowrap", title: c.startedAt || "" }, localDateTime(c.startedAt)),
      h("td", { class: "rep" }, person(rep) || "—"),
      h("td", { class: "customer" }, person(customer) || "—"),
      h("td", { class: "duration num" }, clock(c.duration)),
      h("td", { class: "status" }, h("span", { class: `status-tag status-${c.status || "unknown"}`, title: c.endReason || "" }, c.status || "—")),
      h("td", { class: "keywords" }, (c.keywords || []).length ? c.keywords.map((k) => h("span", { class: "tag" }, k)) : h("span", { class: "muted" }, "—")),
      h("td", { class: "snippet" }, c.snippet ? marked(c.snippet, termRanges(c.snippet, terms, "hit")) : h("span", { class: "muted" }, "—")));
  }

  async function load() {
    more.disabled = true;
    const query = new URLSearchParams();
    query.set("limit", "50");
    if (cursor) query.set("cursor", cursor);
    for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
    try {
      const page = await getJson("/v1/calls?" + query);
      if (!current(seq)) return;
      loading.remove();
      for (const c of page.calls || []) tbody.append(row(c));
      shown += (page.calls || []).length;
      cursor = page.next || null;
      more.hidden = !cursor;
      table.hidden = shown === 0;
      empty.hidden = shown > 0;
      count.textContent = shown ? `(${shown}${cursor ? "+" : ""})` : "";
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", () => guard(load()));
  guard(load());
  return null;
}

/** The words of a search, for marking them in snippets. */
function searchTerms(q) {
  return String(q).split(/\s+/).map((w) => w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, "")).filter((w) => w.length > 0);
}

// -- a stored call ------------------------------------------------------------------------------------------

function detailPage(id, seq) {
  $("#view").replaceChildren(h("p", { class: "muted loading" }, "Loading…"));
  guard((async () => {
    const response = await api(callPath(id));
    if (!current(seq)) return;
    if (response.status === 409) return go(`#/calls/${encodeURIComponent(id)}`);
    if (response.status === 404) {
      $("#view").replaceChildren(h("section", { class: "page" }, h("h1", {}, "Call ", h("code", {}, id)),
        h("p", { class: "empty" }, "No such call. ", h("a", { href: "#/history" }, "Back to history"))));
      return;
    }
    if (!response.ok) throw new ApiError(await detailOf(response), response.status);
    renderDetail(await response.json());
  })());
  return null;
}

function renderDetail(call) {
  const segments = call.transcript || [];
  const duration = Math.max(Number(call.duration) || 0, ...segments.map((s) => Number(s.end) || 0), 1);
  const transcript = new Transcript();
  segments.forEach((s, i) => transcript.show({ ...s, isFinal: true, segment: i }));
  markStoredKeywords(transcript, call.keywords || []);
  const del = state.me && state.me.can && state.me.can.delete
    ? h("button", { id: "delete", type: "button", class: "danger", onclick: () => guard(deleteCall(call.id)) }, "Delete call")
    : null;
  $("#view").replaceChildren(h("section", { class: "page detail-page" },
    h("div", { class: "page-head" },
      h("h1", {}, "Call ", h("code", {}, call.id)),
      h("a", { class: "back", href: "#/history" }, "← History")),
    h("div", { class: "call-head card" }, participantChips(call.participants), facts(call)),
    h("h2", {}, "Speakers"), statsTable(call),
    h("h2", {}, "Timeline"), timeline(segments, duration, transcript),
    h("h2", {}, "Transcript"), transcript.el,
    del ? h("div", { class: "danger-zone" }, del) : null));
}

/** Mark the call's keywords (as whole words) where they were said, for a stored transcript. */
function markStoredKeywords(transcript, keywords) {
  if (!keywords.length) return;
  for (const item of transcript.items.values()) {
    const text = String(item.t.text || "");
    for (const r of termRanges(text, keywords, "", true)) {
      item.hits.push({ keyword: r.title, category: "", charStart: r.start, charEnd: r.end, channel: item.t.channel, segment: item.t.segment });
    }
    if (item.hits.length) transcript.paint(item);
  }
}

function facts(call) {
  const m = call.metrics || {};
  const rows = [
    ["Started", localDateTime(call.startedAt)],
    ["Ended", localDateTime(call.endedAt)],
    ["Duration", clock(call.duration)],
    ["Status", h("span", {}, h("span", { class: `status-tag status-${call.status || "unknown"}` }, call.status || "—"), call.endReason ? ` ${call.endReason}` : "")],
    ["Source", call.source || "—"],
    m.talkRatio !== undefined && m.talkRatio !== null ? ["Talk ratio", ratioBar(m.talkRatio)] : null,
    m.longestMonologue ? ["Longest monologue", clock(m.longestMonologue)] : null,
    m.longestCustomerStory ? ["Longest customer story", clock(m.longestCustomerStory)] : null,
    m.patience !== undefined && m.patience !== null ? ["Patience", `${Number(m.patience).toFixed(1)} s`] : null,
    m.interactivity ? ["Interactivity", `${Number(m.interactivity).toFixed(1)} switches / min`] : null,
    perSpeaker(m.questions) ? ["Questions", perSpeaker(m.questions)] : null,
    perSpeaker(m.interruptions) ? ["Interruptions", perSpeaker(m.interruptions)] : null,
    (call.keywords || []).length ? ["Keywords", call.keywords.map((k) => h("span", { class: "tag" }, k))] : null,
    call.disposition || m.disposition ? ["Disposition", call.disposition || m.disposition] : null,
  ].filter(Boolean);
  return h("dl", { class: "facts" }, rows.map(([dt, dd]) => [h("dt", {}, dt), h("dd", {}, dd)]));
}

function perSpeaker(counts) {
  const entries = Object.entries(counts || {}).filter(([, n]) => n);
  return entries.length ? entries.map(([who, n]) => `${speakerLabel(who)} ${n}`).join(" · ") : "";
}

function statsTable(call) {
  const speakers = call.speakers || [];
  const total = speakers.reduce((sum, s) => sum + (Number(s.talkTime) || 0), 0);
  return h("table", { id: "stats", class: "grid stats" },
    h("thead", {}, h("tr", {}, ["Speaker", "Talk time", "Share", "Words", "Words per minute"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, speakers.length ? speakers.map((s) => {
      const talk = Number(s.talkTime) || 0;
      return h("tr", { "data-speaker": s.speaker },
        h("td", { class: speakerClass(s.speaker) }, h("span", { class: "dot" }), speakerLabel(s.speaker)),
        h("td", { class: "num" }, clock(talk)),
        h("td", { class: "num" }, total > 0 ? percent(talk / total) : "—"),
        h("td", { class: "num" }, s.wordCount || 0),
        h("td", { class: "num" }, talk > 0 ? Math.round((60 * (s.wordCount || 0)) / talk) : "—"));
    }) : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nobody was transcribed."))));
}

/** One lane per speaker, one positioned bar per segment; a click shows that segment in the transcript. */
function timeline(segments, duration, transcript) {
  const order = ["rep", "customer"];
  const speakers = [...new Set(segments.map((s) => s.speaker || "mixed"))]
    .sort((a, b) => (order.indexOf(a) + 1 || 9) - (order.indexOf(b) + 1 || 9));
  const lanes = speakers.map((speaker) => {
    const bars = [];
    segments.forEach((s, i) => {
      if ((s.speaker || "mixed") !== speaker) return;
      const start = Number(s.start) || 0, end = Number(s.end) || start;
      const bar = h("div", { class: `seg ${speakerClass(speaker)}`, title: `${clock(start)} ${s.text || ""}`, tabindex: 0,
        "data-segment": i, role: "button",
        onclick: () => transcript.reveal(s.channel, i),
        onkeydown: (e) => e.key === "Enter" && transcript.reveal(s.channel, i) });
      bar.style.left = `${((100 * start) / duration).toFixed(3)}%`;
      bar.style.width = `${Math.max(0.3, (100 * (end - start)) / duration).toFixed(3)}%`;
      bars.push(bar);
    });
    return h("div", { class: "lane", "data-speaker": speaker },
      h("span", { class: `lane-label ${speakerClass(speaker)}` }, speakerLabel(speaker)),
      h("div", { class: "lane-track" }, bars));
  });
  return h("div", { id: "timeline", class: "timeline card" },
    lanes.length ? lanes : h("p", { class: "muted" }, "Nothing was said."),
    h("div", { class: "axis" }, h("span", {}, "0:00"), h("span", {}, clock(duration))));
}

async function deleteCall(id) {
  if (!confirm(`Delete call ${id} and its transcript for good?`)) return;
  const response = await api(callPath(id), { method: "DELETE" });
  if (response.ok) return go("#/history");
  banner(response.status === 403 ? "Your role may not delete calls" : `Could not delete the call: ${await detailOf(response)}`);
}

// -- start ----------------------------------------------------------------------------------------------------

$("#signout").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);
window.addEventListener("pagehide", leavePage); // stops a listen-in (DELETE with keepalive) when the tab goes
window.addEventListener("pageshow", (e) => e.persisted && route()); // back from the back-forward cache
route();
