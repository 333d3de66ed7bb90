// The media-server dashboard: plain JavaScript, no build step, nothing fetched but the server's own API.
// Pages (hash routes): #/ the wall of live calls, #/calls/ID a live call, #/history (filters in the hash
// query), #/history/ID a stored call, #/team the team's figures over time (charts in hand-written SVG). Server data only ever reaches the page as text nodes (textContent).
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

/** What to call the rep of a call: their name, else their id or e-mail, else "Rep". */
function repName(p) {
  return (p && (p.name || p.id || p.email)) || "Rep";
}

/** What to call the customer of a call: their name, else their phone number, else "Customer". */
function customerName(p) {
  return (p && (p.name || p.phone)) || "Customer";
}

/** One line on what each figure means (README, "Conversation intelligence"): shown beside it and as its title. */
const HELP = {
  talkRatio: "The rep's share of the talking: rep ÷ (rep + customer) speaking time, silence left out. Won B2B calls sit near 43 %; over 65 % is a warning.",
  longestMonologue: "The longest time the rep held the floor without a break (a customer's \"mm-hm\" under a second does not break it).",
  longestCustomerStory: "The longest time the customer talked, short rep interjections included: longer usually means a better call.",
  patience: "The mean pause between the customer's last word and the rep's answer (talking over counts as 0 s): longer means the rep lets the customer finish.",
  interactivity: "How often the conversation changes hands: speaker switches per minute of call.",
  questions: "Questions asked by each side: sentences ending in \"?\" (or opening like one, \"how is\", \"can you\", where the transcript has no punctuation).",
  interruptions: "Turns that started while the other side was still talking, by who cut in.",
  disposition: "The call's outcome: set by hand (PUT /v1/calls/{id}/disposition) or by the team's disposition rules.",
  questionsPerCall: "Questions the rep asked, per call.",
  cues: "Live coaching prompts the rep was given (talk ratio, monologue, pace, silence, no question, competitor, filler words), by kind.",
  trackers: "Times the team's trackers (phrases of competitors, pricing, next steps...) were said.",
};

/** A figure's name with its explanation as a tooltip. */
function termOf(label, key) {
  return h("span", { class: "term", title: HELP[key] || null }, label);
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

/**
 * The #conn pill shows the state of the page's event stream (a websocket): "connecting…" (opening), "live"
 * (open: updates arrive as they happen), "reconnecting…" (dropped, trying again). Pages without one (history, a
 * stored call, the team page) show no pill: nothing there is live, and nothing is wrong.
 */
function setConn(mode) {
  const el = $("#conn");
  const text = { live: "live", connecting: "connecting…", down: "reconnecting…" };
  const title = {
    live: "Live updates: connected to the server's event stream",
    connecting: "Connecting to the server's event stream…",
    down: "The event stream dropped: reconnecting, nothing will be missed",
  };
  el.hidden = !text[mode];
  el.textContent = text[mode] || "";
  el.title = title[mode] || "";
  el.className = "conn" + (text[mode] ? " " + mode : "");
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
    setConn("connecting");
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
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.CONNECTING) {
      // (close() now would log "closed before the connection is established": close it once it opens)
      ws.onopen = () => ws.close(1000);
      ws.onmessage = null;
    } else if (ws && ws.readyState === WebSocket.OPEN) {
      ws.close(1000);
    }
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
  navHighlight(parts[0] === "history" || parts[0] === "team" ? parts[0] : "wall");
  if (!state.me.can || !state.me.can.read) {
    $("#view").replaceChildren(h("p", { class: "empty" }, `This key (role ${state.me.role}) may not read calls.`));
    return;
  }
  try {
    if (parts[0] === "calls" && parts[1]) state.page = liveCallPage(parts[1]);
    else if (parts[0] === "history" && parts[1]) state.page = detailPage(parts[1], seq);
    else if (parts[0] === "history") state.page = historyPage(params, seq);
    else if (parts[0] === "team") state.page = teamPage(params, seq);
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
    return h("span", { class: "ratio muted", title: "No talk ratio (yet): it needs both sides said something, each heard on a channel of their own" }, "—");
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
    h("thead", {}, h("tr", {}, ["Rep", "Customer", "Source", "Duration", "Talk ratio", "Latest cue", "Consent"].map((t) => h("th", { scope: "col", title: t === "Talk ratio" ? HELP.talkRatio : null }, t)))),
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
    return h("span", { class: "muted" }, "none yet");
  }

  function render(c) {
    const rep = findRole(c.participants, "rep");
    const customer = findRole(c.participants, "customer");
    const open = () => go(`#/calls/${encodeURIComponent(c.id)}`);
    const row = h("tr", { "data-call-id": c.id, tabindex: 0, title: `Open call ${c.id}`, onclick: open,
      onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open()) },
      h("td", { class: "rep" }, repName(rep)),
      h("td", { class: "customer" }, customerName(customer)),
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
  const cues = h("ul", { id: "cues", class: "cues" });
  const hits = h("ul", { id: "hits", class: "hits" });
  // Until something comes: what would, and where it is set up (the team configuration, on the team page).
  const cuesEmpty = h("p", { id: "cues-empty", class: "panel-help" }, "No cues yet. Coaching cues pop up here when the rep talks too much (",
    termOf("talk ratio", "talkRatio"), "), runs a long monologue, speaks fast, leaves a silence, asks no question or a competitor is named: thresholds and trackers are the ",
    h("a", { href: "#/team?section=config" }, "team's configuration"), ".");
  const hitsEmpty = h("p", { id: "hits-empty", class: "panel-help" }, "Nothing tracked said yet.");
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
        h("dt", {}, termOf("Talk ratio", "talkRatio")), h("dd", {}, ratio))),
    h("div", { class: "status-row" }, status, statusLink),
    h("div", { class: "listen" }, listenButton, h("label", { class: "sr-only", for: "listen-channel" }, "Channel"), channel, meter, listenNote, audio),
    h("div", { class: "columns" },
      h("div", { class: "main" }, h("h2", {}, "Transcript"), transcript.el),
      h("aside", {}, h("h2", {}, "Cues"), cuesEmpty, cues, h("h2", {}, "Keywords"), hitsEmpty, hits, keypad))));

  // What the keyword panel waits for: the team's trackers (and the call's keyterms), or how to set them up.
  guard((async () => {
    const response = await api("/v1/team/config");
    if (left || !response.ok) return;
    const trackers = ((await response.json()).config || {}).trackers || [];
    hitsEmpty.replaceChildren(...(trackers.length
      ? ["Nothing tracked said yet. Tracking ", trackers.length === 1 ? "1 tracker: " : `${trackers.length} trackers: `,
        trackers.slice(0, 6).map((t) => t.name).join(", "), trackers.length > 6 ? "…" : "", ", and the call's keyterms."]
      : ["No trackers are set up for this team, so only the call's own keyterms are spotted. An admin adds trackers (competitors, pricing, next steps…) in the ",
        h("a", { href: "#/team?section=config" }, "team's configuration"), " (PUT /v1/team/config)."]));
  })());

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
    cuesEmpty.hidden = true;
    setTimeout(() => li.classList.remove("new"), 2500);
    const seg = transcript.cue(c);
    if (seg) li.addEventListener("click", () => seg.scrollIntoView({ block: "center", behavior: "smooth" }));
  }

  function addHit(k) {
    transcript.hit(k);
    hitsEmpty.hidden = true;
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
    stopListening({ ended: true }); // (the server ended the listen-in with the call: nothing to DELETE)
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
    // The DELETE first, the peer connection closed once it is answered: closed at once, the server sees the
    // connection go, ends the session itself, and the DELETE arriving after finds none (a 404 in the console).
    const close = () => session.pc && session.pc.close();
    if (options.ended) close();
    else deleteSession(session.location, options.keepalive).finally(close);
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
    return url ? api(url, { method: "DELETE", keepalive }).catch(() => {}) : Promise.resolve();
  }

  listenButton.addEventListener("click", () => (listening ? stopListening() : startListening()));

  stream = new EventStream(`${callPath(id)}/events`, 0, { onEvent, onPolicy: (reason) => guard(refused(reason)) });

  // A call that has ended: show it from the store (a live one is stored too, as `live`). A live one: its
  // duration from the snapshot.
  guard((async () => {
    const snapshot = await getJson("/v1/live");
    const call = (snapshot.calls || []).find((c) => c.id === id);
    if (left || info.ended) return;
    if (!call) {
      // Not live: a stored call (ended) shows from the store; else it may be starting (its events will say).
      const response = await api(callPath(id));
      if (left) return;
      if (await hasEnded(response)) return go(`#/history/${encodeURIComponent(id)}`);
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
      h("td", { class: "rep" }, repName(rep)),
      h("td", { class: "customer" }, customerName(customer)),
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
    m.talkRatio !== undefined && m.talkRatio !== null ? ["Talk ratio", ratioBar(m.talkRatio), "talkRatio"] : null,
    m.longestMonologue ? ["Longest monologue", clock(m.longestMonologue), "longestMonologue"] : null,
    m.longestCustomerStory ? ["Longest customer story", clock(m.longestCustomerStory), "longestCustomerStory"] : null,
    m.patience !== undefined && m.patience !== null ? ["Patience", `${Number(m.patience).toFixed(1)} s`, "patience"] : null,
    m.interactivity ? ["Interactivity", `${Number(m.interactivity).toFixed(1)} switches / min`, "interactivity"] : null,
    m.questions ? ["Questions", perSpeaker(m.questions) || "None asked", "questions"] : null,
    perSpeaker(m.interruptions) ? ["Interruptions", perSpeaker(m.interruptions), "interruptions"] : null,
    (call.keywords || []).length ? ["Keywords", call.keywords.map((k) => h("span", { class: "tag" }, k))] : null,
    call.disposition || m.disposition ? ["Disposition", call.disposition || m.disposition, "disposition"] : null,
  ].filter(Boolean);
  // Each metric with its one-line explanation under the value (and as the term's tooltip).
  return h("dl", { class: "facts" }, rows.map(([dt, dd, help]) => [
    h("dt", { "data-metric": help || null }, help ? termOf(dt, help) : dt),
    h("dd", {}, dd, help ? h("span", { class: "help" }, HELP[help]) : null)]));
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

// -- the team's figures over time ---------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f6feb", "#1a7f37", "#bf3989", "#bc4c00", "#8250df", "#cf222e", "#0a7ea4", "#6e7781"];
const TEAM_WEEKS = [4, 8, 12, 26];

/** An SVG element (attributes as h's; text children as text nodes). */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** "2026-11-20" as "Nov 20" (the day as the server counted it: no time zone shift). */
function shortDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? day : d.toLocaleDateString([], { month: "short", day: "numeric", timeZone: "UTC" });
}

/** The Monday of a "YYYY-MM-DD" day, as "YYYY-MM-DD". */
function mondayOf(day) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  return d.toISOString().slice(0, 10);
}

/** A round number at or above `max` for an axis whose middle line is round too (1, 2, 4, 6, 8 x 10^n; counts: 2 at least). */
function niceMax(max, counts = true) {
  if (!(max > 0)) return counts ? 2 : 1;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 4, 6, 8, 10]) if (m * step >= max && (!counts || m * step >= 2)) return m * step;
  return 10 * step;
}

function hours(seconds) {
  const s = Number(seconds) || 0;
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h` : `${Math.round(s / 60)} min`;
}

const CHART = { width: 640, height: 200, left: 40, right: 12, top: 12, bottom: 26 };

/** The frame of a chart: horizontal grid lines with their values, x labels (every `every`-th). */
function chartFrame(labels, top, format, every) {
  const c = CHART;
  const plotH = c.height - c.top - c.bottom;
  const plotW = c.width - c.left - c.right;
  const grid = [0, 0.5, 1].map((f) => {
    const y = c.top + plotH * (1 - f);
    return svg("g", { class: "grid-line" },
      svg("line", { x1: c.left, x2: c.width - c.right, y1: y, y2: y }),
      svg("text", { x: c.left - 6, y: y + 4, "text-anchor": "end" }, format(top * f)));
  });
  const slot = plotW / Math.max(labels.length, 1);
  const xs = labels.map((label, i) => (i % every === 0
    ? svg("text", { class: "x-label", x: (c.left + slot * (i + 0.5)).toFixed(1), y: c.height - 8, "text-anchor": "middle" }, label) : null));
  return { grid, xs, slot, plotH, plotW };
}

/** A legend of series names in their colours. */
function legend(series) {
  if (series.length < 2 && !(series[0] && series[0].always)) return null;
  return h("ul", { class: "legend" }, series.map((s) => h("li", { "data-series": s.name },
    h("span", { class: "swatch", style: `background:${s.color}` }), s.name)));
}

/**
 * Bars (stacked when there are several series): `labels` along x, each series' `values` (one per label).
 * Each bar is a <rect class="column"> with data-label, data-series, data-value and a <title>.
 */
function barChart(id, title, labels, series, options = {}) {
  const format = options.format || ((v) => String(Math.round(v)));
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (Number(s.values[i]) || 0), 0));
  const top = niceMax(Math.max(0, ...totals));
  const f = chartFrame(options.xLabels || labels, top, format, options.every || 1);
  const barW = Math.max(2, Math.min(36, f.slot * 0.7));
  const bars = [];
  labels.forEach((label, i) => {
    let base = 0;
    for (const s of series) {
      const v = Number(s.values[i]) || 0;
      if (v <= 0) continue;
      const y0 = CHART.top + f.plotH * (1 - base / top);
      const y1 = CHART.top + f.plotH * (1 - (base + v) / top);
      bars.push(svg("rect", { class: "column", x: (CHART.left + f.slot * (i + 0.5) - barW / 2).toFixed(1), y: y1.toFixed(1),
        width: barW.toFixed(1), height: Math.max(0.5, y0 - y1).toFixed(1), fill: s.color, rx: 2,
        "data-label": label, "data-series": s.name, "data-value": v },
      svg("title", {}, `${(options.xLabels || labels)[i]} · ${s.name}: ${format(v)}`)));
      base += v;
    }
  });
  return chartCard(id, title, options, svg("svg", { class: "chart", viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: "img", "aria-label": title },
    f.grid, f.xs, bars), legend(series));
}

/** Lines, one per series, over `labels`; a value of null leaves a gap. `guide`: a dashed line at a value. */
function lineChart(id, title, labels, series, options = {}) {
  const format = options.format || ((v) => String(v));
  const top = options.top || niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))), false);
  const f = chartFrame(options.xLabels || labels, top, format, options.every || 1);
  const yOf = (v) => CHART.top + f.plotH * (1 - v / top);
  const xOf = (i) => CHART.left + f.slot * (i + 0.5);
  const drawn = series.map((s) => {
    const runs = [];
    let run = [];
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        if (run.length) runs.push(run);
        run = [];
      } else run.push([xOf(i), yOf(v)]);
    });
    if (run.length) runs.push(run);
    return svg("g", { class: "series", "data-series": s.name },
      runs.filter((r) => r.length > 1).map((r) => svg("polyline", { points: r.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), stroke: s.color })),
      s.values.map((v, i) => (v === null || v === undefined ? null : svg("circle", { class: "point", cx: xOf(i).toFixed(1), cy: yOf(v).toFixed(1), r: 3.5, fill: s.color,
        "data-label": labels[i], "data-series": s.name, "data-value": v }, svg("title", {}, `${(options.xLabels || labels)[i]} · ${s.name}: ${format(v)}`)))));
  });
  const guide = options.guide
    ? svg("g", { class: "guide" }, svg("line", { x1: CHART.left, x2: CHART.width - CHART.right, y1: yOf(options.guide.value), y2: yOf(options.guide.value) }),
      svg("text", { x: CHART.width - CHART.right - 4, y: yOf(options.guide.value) - 5, "text-anchor": "end" }, options.guide.label))
    : null;
  return chartCard(id, title, options, svg("svg", { class: "chart", viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: "img", "aria-label": title },
    f.grid, f.xs, guide, drawn), legend(series.map((s) => ({ ...s, always: true }))));
}

function chartCard(id, title, options, chart, key) {
  const empty = options.empty ? h("p", { class: "chart-empty muted" }, options.empty) : null;
  return h("figure", { id, class: "chart-card card" },
    h("figcaption", {}, h("h2", {}, title), options.help ? h("p", { class: "help" }, options.help) : null),
    empty || chart, empty ? null : key);
}

/** Series by name from per-bucket maps ({name: n}), the biggest totals first, at most `limit` (the rest "other"). */
function seriesOf(buckets, limit = 7) {
  const totals = new Map();
  for (const b of buckets) for (const [name, n] of Object.entries(b || {})) totals.set(name, (totals.get(name) || 0) + n);
  const names = [...totals.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([name]) => name);
  const kept = names.slice(0, limit);
  const series = kept.map((name, i) => ({ name, color: PALETTE[i % PALETTE.length], values: buckets.map((b) => (b || {})[name] || 0) }));
  if (names.length > limit) {
    const rest = names.slice(limit);
    series.push({ name: "other", color: "#afb8c1", values: buckets.map((b) => rest.reduce((sum, n) => sum + ((b || {})[n] || 0), 0)) });
  }
  return series;
}

function teamPage(params, seq) {
  const weeks = TEAM_WEEKS.includes(Number(params.get("weeks"))) ? Number(params.get("weeks")) : 8;
  const picker = h("label", { class: "weeks" }, "Show ",
    h("select", { id: "team-weeks", onchange: (e) => go(`#/team?weeks=${e.target.value}`) },
      TEAM_WEEKS.map((n) => h("option", { value: n, selected: n === weeks }, `the last ${n} weeks`))));
  const heading = h("h1", {}, "Team");
  const body = h("div", { id: "team" }, h("p", { class: "muted loading" }, "Loading…"));
  $("#view").replaceChildren(h("section", { class: "page team-page" }, h("div", { class: "page-head" }, heading, picker), body));

  guard((async () => {
    const today = new Date(Date.now() - state.skew);
    const from = new Date(today.getTime() - (7 * weeks - 1) * 86400000);
    const local = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    const [activity, config] = await Promise.all([
      getJson(`/v1/reps/activity?from=${local(from)}&to=${local(today)}`),
      getJson("/v1/team/config").then((c) => c.config || {}).catch((err) => {
        if (err instanceof Unauthorized) throw err;
        return null;
      }),
    ]);
    if (!current(seq)) return;
    renderTeam(body, heading, activity, config, weeks);
    if (params.get("section") === "config") $("#team-config").scrollIntoView({ block: "start" });
  })());
  return null;
}

function renderTeam(body, heading, a, config, weeks) {
  const own = a.scope === "rep";
  heading.replaceChildren(own ? "My figures" : "Team", " ", h("span", { class: "count muted" }, `${shortDay(a.from)} – ${shortDay(a.to)}`));
  const parts = [];
  if (own) {
    parts.push(h("p", { id: "team-scope", class: "scope-note" }, a.rep
      ? ["Your own calls as rep ", h("code", {}, a.rep), ": a rep's key shows only that rep's figures (managers and admins see the whole team)."]
      : ["This rep key names no rep, so it shows no figures. Ask an admin for a key labelled with your rep id or e-mail as calls carry it (",
        h("code", {}, "media-server keys create --role rep --label u-17"), ")."]));
  }
  const t = a.team || {};
  const days = a.days || [];
  const dayLabels = days.map((d) => d.day);
  const every = Math.max(1, Math.ceil(days.length / 10));
  const weekList = a.weeks || [];
  const weekLabels = weekList.map((w) => w.week);
  const weekShort = weekLabels.map((w) => shortDay(w));
  // Team figures per week (summed from the days) for the trends.
  const perWeek = (field) => weekLabels.map((w) => {
    const out = {};
    for (const d of days) if (mondayOf(d.day) === w) for (const [k, n] of Object.entries(d[field] || {})) out[k] = (out[k] || 0) + n;
    return out;
  });

  parts.push(h("div", { class: "tiles" },
    tile("Calls", String(t.calls || 0), null),
    tile("On the phone", hours(t.callTime), null),
    tile("Talk ratio", t.averageTalkRatio === null || t.averageTalkRatio === undefined ? "—" : percent(t.averageTalkRatio), "talkRatio"),
    tile("Patience", t.averagePatience === null || t.averagePatience === undefined ? "—" : `${Number(t.averagePatience).toFixed(1)} s`, "patience"),
    tile("Questions per call", t.questionsPerCall === null || t.questionsPerCall === undefined ? "—" : String(t.questionsPerCall), "questionsPerCall")));

  const noCalls = (t.calls || 0) === 0 ? "No calls in these weeks." : null;
  parts.push(h("div", { class: "charts" },
    barChart("chart-calls", "Calls per day", dayLabels, [{ name: "calls", color: PALETTE[0], values: days.map((d) => d.calls) }],
      { xLabels: dayLabels.map(shortDay), every, empty: noCalls, help: `${t.calls || 0} calls, ${hours(t.callTime)} in all; days in the team's time zone (${a.timeZone}).` }),
    talkRatioChart(a, weekLabels, weekShort, config, noCalls),
    barChart("chart-cues", "Coaching cues per week", weekLabels, seriesOf(perWeek("cues")),
      { xLabels: weekShort, empty: noCalls || (Object.keys(t.cues || {}).length ? null : "No cues were given."), help: HELP.cues, format: (v) => String(Math.round(v)) }),
    barChart("chart-trackers", "Tracker hits per week", weekLabels, seriesOf(perWeek("trackerHits")),
      { xLabels: weekShort, empty: noCalls || (Object.keys(t.trackerHits || {}).length ? null : trackersMissing(config)), help: HELP.trackers }),
    barChart("chart-dispositions", "Dispositions per week", weekLabels, seriesOf(perWeek("dispositions")),
      { xLabels: weekShort, empty: noCalls || (Object.keys(t.dispositions || {}).length ? null : "No call has a disposition yet."), help: HELP.disposition })));

  parts.push(h("h2", {}, own ? "My averages" : "Reps"), repTable(a.reps || []));
  parts.push(configSection(config));
  parts.push(h("p", { class: "help" }, "From the anonymised daily aggregates (GET /v1/reps/activity): sums per day and rep, kept when calls are deleted or purged, with no customer data."));
  body.replaceChildren(...parts);
}

function tile(label, value, help) {
  return h("div", { class: "tile card", title: help ? HELP[help] : null }, h("span", { class: "tile-value" }, value), h("span", { class: "tile-label" }, label));
}

function talkRatioChart(a, weekLabels, weekShort, config, noCalls) {
  const reps = (a.reps || []).slice(0, 8).map((r) => r.rep);
  const series = reps.map((rep, i) => ({
    name: rep || "(no rep)",
    color: PALETTE[i % PALETTE.length],
    values: (a.weeks || []).map((w) => {
      const r = (w.reps || []).find((x) => x.rep === rep);
      return r && r.averageTalkRatio !== null && r.averageTalkRatio !== undefined ? r.averageTalkRatio : null;
    }),
  }));
  const threshold = Number(((config || {}).thresholds || {}).talk_ratio) || 0.65;
  const measured = series.some((s) => s.values.some((v) => v !== null));
  const title = a.scope === "rep" ? "My talk ratio, week by week" : "Talk ratio per rep, week by week";
  return lineChart("chart-talk", title, weekLabels, series, {
    xLabels: weekShort, top: 1, format: (v) => percent(v), guide: { value: threshold, label: `cue at ${percent(threshold)}` },
    empty: noCalls || (measured ? null : "No call had both sides heard on channels of their own."), help: HELP.talkRatio,
  });
}

function trackersMissing(config) {
  return config && (config.trackers || []).length
    ? "No tracker was said."
    : h("span", {}, "No trackers are set up: see ", h("a", { href: "#/team?section=config" }, "the team configuration"), " below.");
}

function repTable(reps) {
  const cols = [["Rep"], ["Calls"], ["Avg duration"], ["Talk ratio", "talkRatio"], ["Longest monologue", "longestMonologue"],
    ["Patience", "patience"], ["Questions per call", "questionsPerCall"]];
  const fmt = (v, f) => (v === null || v === undefined ? "—" : f(v));
  return h("div", { class: "table-wrap" }, h("table", { id: "team-reps", class: "grid reps" },
    h("thead", {}, h("tr", {}, cols.map(([t, help]) => h("th", { scope: "col", title: help ? HELP[help] : null }, t)))),
    h("tbody", {}, reps.length ? reps.map((r) => h("tr", { "data-rep": r.rep },
      h("td", { class: "rep" }, r.rep || "(no rep)"),
      h("td", { class: "num" }, r.calls),
      h("td", { class: "num" }, fmt(r.averageDuration, clock)),
      h("td", {}, fmt(r.averageTalkRatio, ratioBar)),
      h("td", { class: "num" }, fmt(r.averageLongestMonologue, clock)),
      h("td", { class: "num" }, fmt(r.averagePatience, (v) => `${Number(v).toFixed(1)} s`)),
      h("td", { class: "num" }, fmt(r.questionsPerCall, String))))
      : h("tr", {}, h("td", { colspan: cols.length, class: "muted" }, "No calls in these weeks.")))));
}

/** The team's configuration as it bears on the figures: trackers and thresholds, and how to change them. */
function configSection(config) {
  const section = h("section", { id: "team-config", class: "card team-config" }, h("h2", {}, "Team configuration"));
  if (!config) {
    section.append(h("p", { class: "muted" }, "The team configuration could not be read."));
    return section;
  }
  const trackers = config.trackers || [];
  const th = config.thresholds || {};
  section.append(
    h("p", { class: "help" }, "What is tracked and when a cue fires. An admin changes it with PUT /v1/team/config (a whole JSON document; README, \"Conversation intelligence\"); calls that start afterwards use it."),
    h("h3", {}, "Trackers"),
    trackers.length
      ? h("ul", { id: "config-trackers", class: "trackers" }, trackers.map((t) => h("li", {},
        h("mark", { class: `kw kw-${t.category || "keyterm"}` }, t.name), t.category ? h("span", { class: "muted" }, ` ${t.category}`) : null,
        ": ", (t.phrases || []).join(", "))))
      : h("p", { id: "config-trackers-none", class: "panel-help" }, "None yet: nothing is tracked but each call's own keyterms. Example: ",
        h("code", {}, '{"trackers": [{"name": "Zorvexa", "category": "competitors", "phrases": ["Zorvexa"]}]}')),
    h("h3", {}, "Cue thresholds"),
    h("p", { class: "thresholds" }, [
      th.talk_ratio !== undefined ? `talk ratio over ${percent(th.talk_ratio)}` : null,
      th.monologue_s !== undefined ? `monologue over ${th.monologue_s} s` : null,
      th.words_per_minute !== undefined ? `pace over ${th.words_per_minute} words/min` : null,
      th.silence_s !== undefined ? `silence over ${th.silence_s} s` : null,
      th.no_question_s !== undefined ? `no question for ${th.no_question_s} s` : null,
    ].filter(Boolean).join(" · ") || "defaults"));
  return section;
}

// -- start ----------------------------------------------------------------------------------------------------

$("#signout").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);
window.addEventListener("pagehide", leavePage); // stops a listen-in (DELETE with keepalive) when the tab goes
window.addEventListener("pageshow", (e) => e.persisted && route()); // back from the back-forward cache
route();
