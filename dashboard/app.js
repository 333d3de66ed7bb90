// The media-server dashboard: plain JavaScript, no build step, nothing fetched but the server's own API.
// Pages (hash routes): #/ the wall of live calls, #/calls/ID a live call, #/history, #/history/ID a stored call.
"use strict";

const KEY_STORE = "ms.key";
const state = { key: localStorage.getItem(KEY_STORE) || "", me: null, page: null };

// -- small helpers -------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "style") el.setAttribute("style", value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

function consentOf(value) {
  const v = String(value || "").toLowerCase().replace("consent_", "");
  return v === "granted" || v === "denied" ? v : "unknown";
}

function person(p) {
  return p ? p.name || p.phone || p.email || p.id || "" : "";
}

function banner(text) {
  const el = $("#banner");
  el.textContent = text || "";
  el.hidden = !text;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + state.key, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) throw new Unauthorized("That key was refused");
  return response;
}

async function json(path) {
  const response = await api(path);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const error = new Error(typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function wsUrl(path, after) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sep = path.includes("?") ? "&" : "?";
  return `${scheme}//${location.host}${path}${sep}token=${encodeURIComponent(state.key)}&after=${after}`;
}

function setConn(live) {
  const el = $("#conn");
  el.textContent = live ? "live" : "reconnecting…";
  el.className = "conn " + (live ? "live" : "down");
}

// An event stream that reconnects by itself and resumes after the last event it delivered, so that a
// network drop loses nothing and shows nothing twice.
class EventStream {
  constructor(path, after, onEvent, onClose) {
    this.path = path;
    this.last = after;
    this.onEvent = onEvent;
    this.onClose = onClose || (() => {});
    this.delay = 500;
    this.closed = false;
    this.open();
  }

  open() {
    if (this.closed) return;
    const ws = new WebSocket(wsUrl(this.path, this.last));
    this.ws = ws;
    ws.onopen = () => { this.delay = 500; setConn(true); };
    ws.onmessage = (message) => {
      const event = JSON.parse(message.data);
      const id = Number(event.id);
      if (id !== 0 && id <= this.last) return;  // already shown (id 0: a notice of lost events)
      if (id) this.last = id;
      this.onEvent(event);
    };
    ws.onclose = (close) => {
      if (this.closed) return;
      if (close.code === 1008) {
        this.closed = true;
        if (/unauthorized/i.test(close.reason)) return signOut("That key was refused");
        return this.onClose(close.reason);
      }
      setConn(false);
      setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
}

// -- sign in ----------------------------------------------------------------------------------------------

function signOut(message) {
  localStorage.removeItem(KEY_STORE);
  state.key = "";
  state.me = null;
  renderSignIn(message);
}

function renderSignIn(message) {
  leavePage();
  $("#signout").hidden = true;
  const error = h("p", { id: "signin-error", class: "error", hidden: !message }, message || "");
  const input = h("input", { id: "key", type: "password", autocomplete: "off", placeholder: "msk_…", required: true });
  const form = h(
    "form",
    { id: "signin", class: "card signin" },
    h("h1", {}, "Sign in"),
    h("label", { for: "key" }, "API key"),
    input,
    error,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    state.key = input.value.trim();
    try {
      state.me = await json("/v1/me");
      localStorage.setItem(KEY_STORE, state.key);
      $("#signout").hidden = false;
      route();
    } catch (err) {
      state.key = "";
      error.textContent = err instanceof Unauthorized ? "That key was refused" : String(err.message || err);
      error.hidden = false;
    }
  });
  $("#view").replaceChildren(form);
  input.focus();
}

// -- routing ----------------------------------------------------------------------------------------------

function leavePage() {
  if (state.page && state.page.leave) state.page.leave();
  state.page = null;
}

async function route() {
  leavePage();
  banner("");
  if (!state.key) return renderSignIn();
  if (!state.me) {
    try {
      state.me = await json("/v1/me");
    } catch (err) {
      return err instanceof Unauthorized ? signOut("That key was refused") : banner(String(err.message));
    }
  }
  $("#signout").hidden = false;
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const section = parts[0] === "history" ? "history" : "wall";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("current", a.dataset.nav === section));
  try {
    if (parts[0] === "calls" && parts[1]) state.page = liveCallPage(decodeURIComponent(parts[1]));
    else if (parts[0] === "history" && parts[1]) state.page = detailPage(decodeURIComponent(parts[1]));
    else if (parts[0] === "history") state.page = historyPage(params);
    else state.page = wallPage();
  } catch (err) {
    banner(String(err.message || err));
  }
}

function guard(promise) {
  promise.catch((err) => (err instanceof Unauthorized ? signOut("That key was refused") : banner(String(err.message || err))));
}

// -- shared pieces -----------------------------------------------------------------------------------------

function consentBadges(participants) {
  return (participants || []).map((p) => {
    const consent = consentOf(p.consent);
    const who = person(p) || p.role;
    const note = p.transcribed ? "" : " · not transcribed";
    return h("span", { class: `badge consent-${consent}`, title: `${p.role}: consent ${consent}` },
      `${p.role === "rep" ? "Rep" : "Customer"} ${who !== p.role ? who + " " : ""}· consent ${consent}${note}`);
  });
}

function ratioBar(ratio) {
  if (ratio === null || ratio === undefined) return h("span", { class: "muted" }, "—");
  const pct = Math.round(ratio * 100);
  return h("span", { class: "ratio" },
    h("span", { class: "bar" }, h("span", { class: "fill", style: `width:${pct}%` })),
    ` ${pct}% rep`);
}

// The rep's share of the talk, when the customer is heard on a channel of their own (else unknown).
function talkRatio(talk, channels) {
  const customerHeard = channels.some((c) => c.speaker === "customer" && c.transcribed);
  const spoken = (talk.rep || 0) + (talk.customer || 0);
  return customerHeard && spoken > 0 ? (talk.rep || 0) / spoken : null;
}

function speakerClass(speaker) {
  return "speaker-" + (speaker === "rep" || speaker === "customer" ? speaker : "mixed");
}

// A transcript list: one item per channel+segment, interims replaced in place by their final.
class Transcript {
  constructor() {
    this.el = h("ol", { id: "transcript", class: "transcript" });
    this.items = new Map();
    this.hits = new Map();  // channel:segment -> keyword hits
  }

  key(channel, segment) {
    return `${channel}:${segment}`;
  }

  show(t) {
    const key = this.key(t.channel, t.segment);
    let li = this.items.get(key);
    if (!li) {
      li = h("li", { "data-channel": t.channel, "data-segment": t.segment });
      this.items.set(key, li);
      this.insert(li, t.start);
    }
    if (li.classList.contains("final") && !t.isFinal) return;  // a late interim never undoes a final
    li.className = `seg ${t.isFinal ? "final" : "interim"} ${speakerClass(t.speaker)}`;
    li.dataset.start = t.start;
    li.dataset.text = t.text;
    this.paint(li, t.speaker, t.start, t.text, this.hits.get(key) || []);
  }

  insert(li, start) {
    const after = [...this.el.children].find((other) => Number(other.dataset.start) > start);
    this.el.insertBefore(li, after || null);
  }

  paint(li, speaker, start, text, hits) {
    const label = h("span", { class: "who" }, speaker === "rep" ? "Rep" : speaker === "customer" ? "Customer" : speaker);
    const time = h("span", { class: "time" }, clock(start));
    li.replaceChildren(label, time, h("span", { class: "text" }, ...highlight(text, hits)));
  }

  hit(k) {
    const key = this.key(k.channel, k.segment);
    const hits = this.hits.get(key) || [];
    hits.push(k);
    this.hits.set(key, hits);
    const li = this.items.get(key);
    if (li) this.paint(li, li.classList.contains("speaker-rep") ? "rep" : li.classList.contains("speaker-customer") ? "customer" : "mixed",
      Number(li.dataset.start), li.dataset.text, hits);
  }
}

// The words of a segment with its keyword hits marked (by character span, else by the words as said).
function highlight(text, hits) {
  const spans = [];
  for (const k of hits) {
    let start = Number(k.charStart || 0), end = Number(k.charEnd || 0);
    if (!(end > start)) {
      const needle = String(k.text || k.keyword || "").toLowerCase();
      start = needle ? text.toLowerCase().indexOf(needle) : -1;
      end = start + needle.length;
    }
    if (start >= 0 && end <= text.length && end > start) spans.push([start, end, k]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  const out = [];
  let at = 0;
  for (const [start, end, k] of spans) {
    if (start < at) continue;
    out.push(text.slice(at, start));
    out.push(h("mark", { class: `kw kw-${k.category || "keyterm"}`, title: `${k.keyword} (${k.category})` }, text.slice(start, end)));
    at = end;
  }
  out.push(text.slice(at));
  return out;
}

// -- the wall of live calls ---------------------------------------------------------------------------------

function wallPage() {
  const calls = new Map();
  const tbody = h("tbody");
  const empty = h("p", { id: "wall-empty", class: "empty" }, "No live calls");
  const table = h("table", { id: "wall", class: "grid" },
    h("thead", {}, h("tr", {}, ...["Rep", "Customer", "Source", "Duration", "Talk ratio", "Latest", "Consent"].map((t) => h("th", {}, t)))),
    tbody);
  $("#view").replaceChildren(h("section", {}, h("h1", {}, "Live calls"), table, empty));
  let stream = null;
  let ticker = null;

  function render(c) {
    const rep = c.participants.find((p) => p.role === "rep");
    const customer = c.participants.find((p) => p.role === "customer");
    const ratio = talkRatio(c.talkTime || {}, c.channels || []);
    const latest = c.latestCue ? h("span", { class: "cue" }, c.latestCue.message)
      : c.latestKeyword ? h("span", { class: "kw-latest" }, `${c.latestKeyword.keyword} (${c.latestKeyword.category})`)
      : h("span", { class: "muted" }, "—");
    const row = h("tr", { "data-call-id": c.id, tabindex: 0, onclick: () => (location.hash = `#/calls/${encodeURIComponent(c.id)}`) },
      h("td", {}, person(rep) || "—"),
      h("td", {}, person(customer) || "—"),
      h("td", {}, c.source),
      h("td", { class: "duration" }, clock(c.duration + (Date.now() - c.seenAt) / 1000)),
      h("td", {}, ratioBar(ratio)),
      h("td", {}, latest),
      h("td", {}, ...consentBadges(c.participants)));
    const old = c.row;
    c.row = row;
    if (old && old.parentNode) old.replaceWith(row);
    else tbody.prepend(row);
    empty.hidden = calls.size > 0;
    table.hidden = calls.size === 0;
  }

  function remove(id) {
    const c = calls.get(id);
    if (c && c.row) c.row.remove();
    calls.delete(id);
    empty.hidden = calls.size > 0;
    table.hidden = calls.size === 0;
  }

  function onEvent(e) {
    let c = calls.get(e.callId);
    if (e.type === "call_started") {
      const started = e.callStarted;
      c = { id: e.callId, source: started.source, participants: started.participants, channels: started.channels,
        duration: 0, seenAt: Date.now(), talkTime: {}, latestCue: null, latestKeyword: null };
      calls.set(e.callId, c);
      return render(c);
    }
    if (!c) return;
    if (e.type === "call_ended") return remove(e.callId);
    if (e.type === "call_updated") {
      c.participants = e.callUpdated.participants;
      c.channels = e.callUpdated.channels;
    }
    else if (e.type === "transcript" && e.transcript.isFinal) {
      const t = e.transcript;
      c.talkTime[t.speaker] = (c.talkTime[t.speaker] || 0) + Math.max(0, t.end - t.start);
    } else if (e.type === "cue") c.latestCue = e.cue;
    else if (e.type === "keyword_hit") c.latestKeyword = e.keywordHit;
    else return;
    render(c);
  }

  guard((async () => {
    const live = await json("/v1/live");
    for (const c of live.calls) {
      c.seenAt = Date.now();
      calls.set(c.id, c);
    }
    [...live.calls].reverse().forEach(render);
    empty.hidden = calls.size > 0;
    table.hidden = calls.size === 0;
    stream = new EventStream("/v1/events", live.lastEventId, onEvent);
    ticker = setInterval(() => calls.forEach((c) => {
      const cell = c.row && c.row.querySelector(".duration");
      if (cell) cell.textContent = clock(c.duration + (Date.now() - c.seenAt) / 1000);
    }), 1000);
  })());

  return { leave() { if (stream) stream.close(); clearInterval(ticker); } };
}

// -- a live call ------------------------------------------------------------------------------------------

function liveCallPage(id) {
  const transcript = new Transcript();
  const cues = h("ul", { id: "cues", class: "cues" });
  const header = h("div", { class: "call-head" });
  const status = h("p", { id: "call-status", class: "muted" }, "Connecting…");
  const channel = h("select", { id: "listen-channel", title: "What to hear" }, h("option", { value: "mixed" }, "Both channels"));
  const listenButton = h("button", { id: "listen", type: "button", disabled: !(state.me && state.me.can.listen),
    title: state.me && state.me.can.listen ? "Hear the call live" : "Your role may not listen in" }, "Listen");
  const meter = h("span", { id: "listen-level", class: "meter" }, h("span", { class: "fill" }));
  const listenBox = h("div", { class: "listen" }, listenButton, channel, meter);
  const audio = h("audio", { id: "listen-audio", autoplay: true });
  $("#view").replaceChildren(h("section", { class: "call" },
    h("h1", {}, "Call ", h("code", {}, id)), header, status, listenBox, audio,
    h("div", { class: "columns" }, h("div", { class: "main" }, transcript.el), h("aside", {}, h("h2", {}, "Cues"), cues))));
  const info = { participants: [], talk: {}, channels: [], started: null };
  window.msListen = { state: "idle", level: 0, peak: 0, levels: [], error: "" };
  let listening = null;

  function renderHeader() {
    header.replaceChildren(h("div", { class: "badges" }, ...consentBadges(info.participants)),
      h("div", {}, "Talk ratio ", ratioBar(talkRatio(info.talk, info.channels))));
    const options = [h("option", { value: "mixed" }, "Both channels")];
    for (const c of info.channels) {
      if (c.transcribed) options.push(h("option", { value: String(c.index) }, `Channel ${c.index} (${c.speaker})`));
    }
    const selected = channel.value;
    channel.replaceChildren(...options);
    channel.value = [...channel.options].some((o) => o.value === selected) ? selected : "mixed";
  }

  function addCue(cue) {
    cues.prepend(h("li", { class: `cue cue-${cue.kind}` }, h("span", { class: "time" }, clock(cue.time)), " ", cue.message));
    const li = [...transcript.el.children].reverse().find((x) => Number(x.dataset.start) <= cue.time);
    if (li) li.classList.add("cued");
  }

  function onEvent(e) {
    switch (e.type) {
      case "call_started":
      case "call_updated": {
        const p = e.callStarted || e.callUpdated;
        info.participants = p.participants;
        info.channels = p.channels;
        status.textContent = "Live";
        renderHeader();
        break;
      }
      case "transcript":
        transcript.show(e.transcript);
        if (e.transcript.isFinal) {
          const t = e.transcript;
          info.talk[t.speaker] = (info.talk[t.speaker] || 0) + Math.max(0, t.end - t.start);
          renderHeader();
        }
        break;
      case "keyword_hit":
        transcript.hit(e.keywordHit);
        break;
      case "cue":
        addCue(e.cue);
        break;
      case "error":
        banner(`${e.error.code}: ${e.error.message}`);
        break;
      case "call_ended":
        status.replaceChildren("Call ended · ", h("a", { href: `#/history/${encodeURIComponent(id)}` }, "see the stored call"));
        stopListening("call ended");
        listenButton.disabled = true;
        break;
      default:
        break;
    }
  }

  async function startListening() {
    const pc = new RTCPeerConnection();
    listening = { pc, location: null, timer: null, context: null };
    window.msListen.state = "connecting";
    listenButton.textContent = "Stop listening";
    try {
      const context = new AudioContext();
      listening.context = context;
      await context.resume();
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.ontrack = (ev) => {
        const stream = ev.streams[0] || new MediaStream([ev.track]);
        audio.srcObject = stream;
        const analyser = context.createAnalyser();
        analyser.fftSize = 2048;
        context.createMediaStreamSource(stream).connect(analyser);
        const buf = new Float32Array(analyser.fftSize);
        listening.timer = setInterval(() => {
          analyser.getFloatTimeDomainData(buf);
          let sum = 0;
          for (const v of buf) sum += v * v;
          const level = Math.sqrt(sum / buf.length);
          const m = window.msListen;
          m.level = level;
          m.peak = Math.max(m.peak, level);
          m.levels.push({ t: Date.now(), level });
          if (m.levels.length > 2000) m.levels.shift();
          meter.firstChild.style.width = `${Math.min(100, level * 400)}%`;
        }, 50);
        window.msListen.state = "listening";
      };
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((done) => {
        if (pc.iceGatheringState === "complete") return done();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
        setTimeout(done, 2000);
      });
      const response = await api(`/v1/calls/${encodeURIComponent(id)}/listen?channel=${encodeURIComponent(channel.value)}`,
        { method: "POST", body: pc.localDescription.sdp, headers: { "Content-Type": "application/sdp" } });
      const answer = await response.text();
      if (response.status !== 201) {
        const detail = response.status === 403 ? "Your role may not listen in"
          : response.status === 409 ? "The call has ended" : (JSON.parse(answer || "{}").detail || `HTTP ${response.status}`);
        throw new Error(detail);
      }
      listening.location = response.headers.get("Location");
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
    } catch (err) {
      window.msListen.error = String(err.message || err);
      banner(window.msListen.error);
      stopListening("error");
      window.msListen.state = "error";
    }
  }

  function stopListening() {
    if (!listening) return;
    const { pc, location: session, timer, context } = listening;
    listening = null;
    clearInterval(timer);
    if (session) api(session, { method: "DELETE" }).catch(() => {});
    pc.close();
    if (context) context.close();
    audio.srcObject = null;
    meter.firstChild.style.width = "0";
    listenButton.textContent = "Listen";
    window.msListen.state = "idle";
  }

  listenButton.addEventListener("click", () => (listening ? stopListening() : startListening()));
  const stream = new EventStream(`/v1/calls/${encodeURIComponent(id)}/events`, 0, onEvent, (reason) => banner(reason));
  // A call that is already stored (and whose events are gone) is shown from the store.
  guard((async () => {
    const response = await api(`/v1/calls/${encodeURIComponent(id)}`);
    if (response.status === 200 && !info.participants.length) location.hash = `#/history/${encodeURIComponent(id)}`;
  })());
  return { leave() { stream.close(); stopListening(); } };
}

// -- history ------------------------------------------------------------------------------------------------

function historyPage(params) {
  const field = (name, label, type = "text") =>
    h("label", {}, label, h("input", { name, type, value: params.get(name) || "" }));
  const form = h("form", { id: "filters", class: "filters" },
    field("q", "Search transcripts", "search"), field("rep", "Rep"), field("keyword", "Keyword"),
    field("from", "From", "date"), field("to", "To", "date"), h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) q.set(k, String(v).trim());
    location.hash = "#/history" + (q.toString() ? "?" + q : "");
  });
  const tbody = h("tbody");
  const table = h("table", { id: "history", class: "grid" },
    h("thead", {}, h("tr", {}, ...["Started", "Rep", "Customer", "Duration", "Status", "Keywords", "Match"].map((t) => h("th", {}, t)))),
    tbody);
  const more = h("button", { id: "more", type: "button", hidden: true }, "Load more");
  const empty = h("p", { class: "empty", hidden: true }, "No calls match.");
  $("#view").replaceChildren(h("section", {}, h("h1", {}, "History"), form, table, empty, more));
  let cursor = null;

  async function load() {
    const q = new URLSearchParams();
    for (const name of ["q", "rep", "keyword", "from", "to"]) if (params.get(name)) q.set(name, params.get(name));
    q.set("limit", "50");
    if (cursor) q.set("cursor", cursor);
    const page = await json("/v1/calls?" + q);
    for (const c of page.calls) {
      const rep = c.participants.find((p) => p.role === "rep");
      const customer = c.participants.find((p) => p.role === "customer");
      tbody.append(h("tr", { "data-call-id": c.id, tabindex: 0, onclick: () => (location.hash = `#/history/${encodeURIComponent(c.id)}`) },
        h("td", {}, new Date(c.startedAt).toLocaleString()),
        h("td", {}, person(rep) || "—"),
        h("td", {}, person(customer) || "—"),
        h("td", {}, clock(c.duration)),
        h("td", {}, c.status),
        h("td", {}, (c.keywords || []).join(", ")),
        h("td", { class: "snippet" }, ...highlight(c.snippet || "", params.get("q") ? params.get("q").split(/\s+/).map((w) => ({ text: w, keyword: w, category: "search" })) : []))));
    }
    cursor = page.next;
    more.hidden = !cursor;
    empty.hidden = tbody.children.length > 0;
  }
  more.addEventListener("click", () => guard(load()));
  guard(load());
  return null;
}

// -- a stored call --------------------------------------------------------------------------------------------

function detailPage(id) {
  $("#view").replaceChildren(h("p", { class: "muted" }, "Loading…"));
  guard((async () => {
    const response = await api(`/v1/calls/${encodeURIComponent(id)}`);
    if (response.status === 409) return (location.hash = `#/calls/${encodeURIComponent(id)}`);
    if (!response.ok) throw new Error(response.status === 404 ? "No such call" : `HTTP ${response.status}`);
    const call = await response.json();
    const duration = Math.max(call.duration, ...call.transcript.map((s) => s.end), 1);
    const totalTalk = call.speakers.reduce((sum, s) => sum + s.talkTime, 0) || 1;
    const stats = h("table", { id: "stats", class: "grid" },
      h("thead", {}, h("tr", {}, ...["Speaker", "Talk time", "Share", "Words", "Words per minute"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...call.speakers.map((s) => h("tr", {},
        h("td", { class: speakerClass(s.speaker) }, s.speaker),
        h("td", {}, clock(s.talkTime)),
        h("td", {}, `${Math.round((100 * s.talkTime) / totalTalk)}%`),
        h("td", {}, s.wordCount),
        h("td", {}, s.talkTime > 0 ? Math.round((60 * s.wordCount) / s.talkTime) : "—")))));
    const transcript = new Transcript();
    call.transcript.forEach((s, i) => transcript.show({ ...s, isFinal: true, segment: i }));
    const lanes = [...new Set(call.transcript.map((s) => s.speaker))];
    const timeline = h("div", { id: "timeline", class: "timeline" }, ...lanes.map((speaker) =>
      h("div", { class: "lane" }, h("span", { class: "lane-label" }, speaker),
        h("div", { class: "lane-track" }, ...call.transcript.map((s, i) => s.speaker !== speaker ? null :
          h("div", { class: `seg ${speakerClass(speaker)}`, title: `${clock(s.start)} ${s.text}`,
            style: `left:${(100 * s.start) / duration}%;width:${Math.max(0.3, (100 * (s.end - s.start)) / duration)}%`,
            onclick: () => {
              const li = transcript.items.get(`${s.channel}:${i}`);
              if (li) { li.scrollIntoView({ block: "center" }); li.classList.add("flash"); setTimeout(() => li.classList.remove("flash"), 1500); }
            } }))))));
    const metrics = call.metrics || {};
    const facts = h("dl", { class: "facts" },
      h("dt", {}, "Started"), h("dd", {}, new Date(call.startedAt).toLocaleString()),
      h("dt", {}, "Duration"), h("dd", {}, clock(call.duration)),
      h("dt", {}, "Status"), h("dd", {}, `${call.status} (${call.endReason})`),
      h("dt", {}, "Source"), h("dd", {}, call.source),
      metrics.talkRatio !== undefined && metrics.talkRatio !== null ? [h("dt", {}, "Talk ratio"), h("dd", {}, ratioBar(metrics.talkRatio))] : null,
      metrics.longestMonologue ? [h("dt", {}, "Longest monologue"), h("dd", {}, clock(metrics.longestMonologue))] : null,
      (call.keywords || []).length ? [h("dt", {}, "Keywords"), h("dd", {}, call.keywords.join(", "))] : null);
    const del = state.me && state.me.can.delete ? h("button", { id: "delete", type: "button", class: "danger", onclick: async () => {
      if (!confirm("Delete this call for good?")) return;
      const r = await api(`/v1/calls/${encodeURIComponent(id)}`, { method: "DELETE" });
      if (r.status === 204) location.hash = "#/history";
      else banner(`Could not delete: HTTP ${r.status}`);
    } }, "Delete call") : null;
    $("#view").replaceChildren(h("section", { class: "call" },
      h("h1", {}, "Call ", h("code", {}, call.id)),
      h("div", { class: "badges" }, ...consentBadges(call.participants)),
      facts, h("h2", {}, "Speakers"), stats, h("h2", {}, "Timeline"), timeline,
      h("h2", {}, "Transcript"), transcript.el, del));
  })());
  return null;
}

// -- start ----------------------------------------------------------------------------------------------------

$("#signout").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);
route();
