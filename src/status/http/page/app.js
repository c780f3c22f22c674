// The relay's status page: live over server-sent events (/events), no build step, no remote
// sources. Every text from the relay goes in through textContent, never as HTML; the only
// markup inserted is the relay's own state chart, /chart.svg (drawn by the server from the machine),
// fetched when its <details> is first opened.
/* global document, location, history, fetch, EventSource, URL, CSS, setInterval */

const SVG_NS = "http://www.w3.org/2000/svg";
const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";
const $ = (id) => document.getElementById(id);

// Opened with ?token=...: the server has set the cookie; keep the token out of the address bar.
{
  const here = new URL(location.href);
  if (here.searchParams.has("token")) {
    here.searchParams.delete("token");
    history.replaceState(null, "", here.pathname + here.search + here.hash);
  }
}

const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};
const svgEl = (tag, attrs = {}, text) => {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
};

const usd = (n) => (n === null || n === undefined ? "price unknown" : n >= 100 ? `$${n.toFixed(0)}` : n >= 1 ? `$${n.toFixed(2)}` : `$${n.toFixed(4)}`);
const int = (n) => n.toLocaleString("en-US");
const when = (iso) => {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
};
const pad = (n) => String(n).padStart(2, "0");
/** Local "MM-DD HH:MM:SS" (the full time is in the cell's title). */
const stamp = (iso) => {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};
const ago = (iso) => {
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (!Number.isFinite(s)) return "";
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
};

// ---- the state strip and the chart (on demand) ------------------------------------------

let chartState = null;
let chartLoaded = null;
let stateSince = null;

/** The chart, fetched once its <details> is first opened; the state named `state` (its top-level part) gets the `current` class, CSS does the rest. */
async function renderChart(state) {
  const box = $("chart");
  const top = state.split(/[.,]/)[0];
  box.dataset.state = top;
  if (!$("chart-details").open) return;
  chartLoaded ??= fetch("/chart.svg").then(async (res) => {
    if (!res.ok) throw new Error(`GET /chart.svg: HTTP ${res.status}`);
    box.innerHTML = await res.text();
  });
  chartLoaded.catch(() => (chartLoaded = null)); // the next state tries again
  await chartLoaded;
  if (state !== chartState) return; // a newer state is being shown
  for (const node of box.querySelectorAll("g.state")) node.classList.toggle("current", node.dataset.state === top);
  box.dataset.drawn = top;
}

async function showState(state, force = false) {
  if (state === chartState && !force) return;
  chartState = state;
  try {
    await renderChart(state);
  } catch (err) {
    $("chart").replaceChildren(el("p", { class: "error", text: `cannot draw the chart: ${err instanceof Error ? err.message : String(err)}` }));
  }
}

$("chart-details").addEventListener("toggle", () => {
  if (chartState !== null) void showState(chartState, true);
});

const showSince = () => {
  const today = stateSince !== null && new Date(stateSince).toDateString() === new Date().toDateString();
  $("state-since").textContent = stateSince ? `since ${today ? stamp(stateSince).slice(6) : stamp(stateSince)} (${ago(stateSince)})` : "";
  $("state-since").title = stateSince ?? "";
};
setInterval(showSince, 15_000);

// ---- status ------------------------------------------------------------------------------

let lastCalls = -1;

function renderStatus({ status, rejected, stateSince: since, lastCallAt }) {
  const pill = $("state");
  pill.textContent = status.state;
  pill.className = `pill state-${status.state.split(/[.,]/)[0]}`;
  stateSince = since ?? null;
  showSince();
  $("conversation-states").replaceChildren(
    ...Object.entries(status.conversations ?? {}).map(([id, c]) =>
      el("span", { class: `tag state-${c.state.split(/[.,]/)[0]}`, title: `conversation ${id}: ${c.state}` }, `${id} `, el("b", { text: c.state })),
    ),
  );
  const open = (status.questions ?? []).length;
  document.title = open > 0 ? `relay: needs JC (${open})` : `relay: ${status.state}`;
  $("daemon").textContent = status.daemon.running ? `daemon running (pid ${status.daemon.pid})` : "no daemon running";
  $("daemon").title = status.daemon.running ? `a relay daemon (pid ${status.daemon.pid}) holds state/.lock` : "no relay daemon holds state/.lock";
  void showState(status.state);
  void refreshPanels(status);

  // needs JC: one card per open question, each with its own form
  renderQuestions(status.questions ?? []);

  // failures
  const trouble = $("trouble");
  if (status.retry) {
    trouble.hidden = false;
    $("trouble-title").textContent = status.retry.kind === "permanent" ? "Paused:" : `Retrying (attempt ${status.retry.attempt}):`;
    $("trouble-text").textContent = `${status.retry.message}; next try ${when(status.retry.nextTryAt)}${status.retry.kind === "permanent" ? " (or run: relay resume)" : ""}`;
  } else if (status.statusError) {
    trouble.hidden = false;
    $("trouble-title").textContent = "Warning:";
    $("trouble-text").textContent = status.statusError;
  } else if (status.lastError && !recovered(status.lastError, lastCallAt) && Date.now() - new Date(status.lastError.at).getTime() < 3_600_000) {
    trouble.hidden = false;
    $("trouble-title").textContent = "Last error:";
    $("trouble-text").textContent = `${status.lastError.message} (${ago(status.lastError.at)})`;
  } else {
    trouble.hidden = true;
  }

  // queue
  $("queue-depth").textContent = int(status.queue.depth);
  $("queue-rejected").textContent = int(status.queue.rejected);
  const list = $("rejected-list");
  list.replaceChildren(
    ...(rejected.length === 0
      ? [el("li", { class: "muted", text: "none" })]
      : rejected.map((r) => el("li", {}, el("span", { class: "file", text: r.file }), " ", el("span", { class: "muted", text: r.at ? `(${ago(r.at)})` : "" }), el("br"), r.error))),
  );

  // conversations
  $("conversations").tBodies[0].replaceChildren(
    ...Object.entries(status.conversations ?? {}).map(([id, c]) =>
      el(
        "tr",
        { "data-conversation": id },
        el("td", { text: id }),
        el("td", {}, el("span", { class: `tag state-${c.state.split(/[.,]/)[0]}`, text: c.state })),
        el("td", { text: c.sessions.join(", ") }),
        el("td", { class: "num", text: int(c.turns) }),
        el("td", { class: "num", text: int(c.chars) }),
      ),
    ),
  );

  // sessions
  const rows = Object.entries(status.sessions).map(([id, s]) =>
    el(
      "tr",
      { "data-session": id },
      el("td", { text: id }),
      el("td", { class: "num", text: String(s.pending) }),
      el(
        "td",
        s.awaitingAck
          ? { class: "awaiting", text: "awaiting ack", title: "dispatch/" + id + "/input.txt exists: the session has not taken its reply yet" }
          : { class: "muted", text: "free" },
      ),
    ),
  );
  $("sessions").tBodies[0].replaceChildren(...rows);
  $("history").textContent = `history: ${int(status.history.turns)} turns, ${int(status.history.chars)} characters`;

  // permission prompts (permissions.policy decisions in flight, and the latest decisions with who made them)
  renderPermissions(status.permissions ?? { deciding: [], recent: [] });

  // cost
  $("cost-today").textContent = usd(status.cost.todayUsd);
  $("cost-total").textContent = usd(status.cost.totalUsd);
  $("cost-calls").textContent = int(status.cost.calls);
  const unpriced = $("cost-unpriced");
  unpriced.hidden = status.cost.unpricedCalls === 0;
  unpriced.textContent = `${status.cost.unpricedCalls} call(s) of unknown price are not in these totals`;
  if (status.cost.calls !== lastCalls) {
    lastCalls = status.cost.calls;
    void loadCosts();
  }
}

/** A call succeeded after the error: calls work again, the error is history. */
const recovered = (lastError, lastCallAt) => typeof lastCallAt === "string" && Date.parse(lastCallAt) > Date.parse(lastError.at);

// ---- the conversation, per session --------------------------------------------------------

/** How many entries each panel shows: ?turns=N in the page's address (1 to 50), else 10. */
const TURNS = (() => {
  const n = Number(new URL(location.href).searchParams.get("turns") ?? "10");
  return Number.isInteger(n) && n >= 1 && n <= 50 ? n : 10;
})();
/** A text longer than this (or with more lines) is collapsed behind its first words. */
const LONG_CHARS = 480;
const LONG_LINES = 8;
const PREVIEW_CHARS = 200;

/** Per session: the history key last fetched (its conversation's turns and size), and a fetch in flight. */
const panelState = new Map();
/** The long texts JC opened, kept open across refreshes. */
const opened = new Set();

/** Fetch a session's panel again only when its conversation changed (a turn, a note, a summary committed). */
async function refreshPanels(status) {
  const box = $("panels");
  const ids = Object.keys(status.sessions);
  if (box.querySelector(":scope > p")) box.replaceChildren();
  if (ids.length === 0) box.replaceChildren(el("p", { class: "muted small", text: "no sessions" }));
  for (const card of [...box.querySelectorAll(":scope > .panel")]) if (!ids.includes(card.dataset.session)) card.remove();
  ids.forEach((id, i) => {
    let card = box.querySelector(`:scope > .panel[data-session="${CSS.escape(id)}"]`);
    if (!card) {
      card = $("panel-template").content.firstElementChild.cloneNode(true);
      card.dataset.session = id;
      card.querySelector(".p-session").textContent = id;
      card.querySelector(".entries").replaceChildren(el("li", { class: "muted small", text: "loading…" }));
    }
    if (box.children[i] !== card) box.insertBefore(card, box.children[i] ?? null);
    const conversation = status.sessions[id].conversation ?? "";
    const c = status.conversations?.[conversation];
    card.querySelector(".p-conversation").textContent = conversation === "" ? "" : `(${conversation})`;
    const key = `${conversation}:${c?.turns ?? 0}:${c?.chars ?? 0}`;
    const st = panelState.get(id) ?? { key: null, busy: false, again: false };
    panelState.set(id, st);
    if (st.key === key) return;
    st.key = key;
    void loadPanel(id, card, st);
  });
  $("turns-note").textContent = `the last ${TURNS} of each session, newest first (?turns=N for more)`;
}

async function loadPanel(id, card, st) {
  if (st.busy) {
    st.again = true;
    return;
  }
  st.busy = true;
  try {
    const res = await fetch(`/api/history?session=${encodeURIComponent(id)}&last=${TURNS}`, { headers: { Accept: "application/json" } });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
    renderPanel(card, body);
  } catch (err) {
    st.key = null; // the next update tries again
    card.querySelector(".entries").replaceChildren(el("li", { class: "error small", text: `cannot load the conversation: ${err instanceof Error ? err.message : String(err)}` }));
  } finally {
    st.busy = false;
    if (st.again) {
      st.again = false;
      void loadPanel(id, card, st);
    }
  }
}

function renderPanel(card, panel) {
  const n = panel.entries.length;
  card.querySelector(".p-count").textContent = n === 0 ? "" : `${n}${panel.more ? "+" : ""} ${n === 1 ? "entry" : "entries"}`;
  card.querySelector(".entries").replaceChildren(
    ...(n === 0 ? [el("li", { class: "muted small", text: "nothing said yet" })] : panel.entries.map((e) => entryItem(panel, e))),
  );
  const more = card.querySelector(".p-more");
  more.hidden = !panel.more;
  more.textContent = `older entries: relay history --session ${panel.session}`;
}

/** One entry: a turn is the message (the agent's envelope or JC's chat turn) and chat-Claude's reply. */
function entryItem(panel, e) {
  const item = el("li", { class: `entry kind-${e.kind}`, "data-at": e.at });
  const head = (label, cls) => el("div", { class: "who" }, el("span", { class: `who-tag ${cls}`, text: label }), " ", el("time", { datetime: e.at, title: e.at, text: stamp(e.at) }));
  const key = `${panel.session}|${e.at}|${e.kind}`;
  if (e.kind === "summary") {
    item.append(head("summary of earlier turns", "from-summary"), textBlock(e.text, e.textChars, `${key}|text`, panel.session));
  } else if (e.kind === "note") {
    item.append(head(`JC → ${e.session} directly`, "from-jc"), textBlock(e.text, e.textChars, `${key}|text`, panel.session));
  } else {
    item.append(
      head(e.from === "jc" ? "JC (chat turn)" : `${e.session} (agent)`, e.from === "jc" ? "from-jc" : "from-agent"),
      textBlock(e.text, e.textChars, `${key}|text`, panel.session),
      el("div", { class: "who reply" }, el("span", { class: "who-tag from-claude", text: "chat-Claude" })),
      textBlock(e.reply ?? "", e.replyChars ?? 0, `${key}|reply`, panel.session),
    );
  }
  return item;
}

/** A text as text (never markup); a long one collapsed behind its start, opened with a click. */
function textBlock(text, fullChars, key, session) {
  const cut = fullChars > text.length ? [el("p", { class: "muted small", text: `… ${int(fullChars - text.length)} more characters: relay history --session ${session}` })] : [];
  const long = text.length > LONG_CHARS || text.split("\n").length > LONG_LINES;
  if (!long) return el("div", { class: "text" }, text, ...cut);
  const preview = text.slice(0, PREVIEW_CHARS).replace(/\s+/g, " ").trim();
  const box = el(
    "details",
    { class: "long" },
    el("summary", {}, el("span", { class: "preview", text: `${preview}…` }), " ", el("span", { class: "toggle" }, el("span", { class: "show", text: `show all ${int(fullChars)} characters` }), el("span", { class: "hide", text: "hide" }))),
    el("div", { class: "text" }, text, ...cut),
  );
  box.open = opened.has(key);
  box.addEventListener("toggle", () => (box.open ? opened.add(key) : opened.delete(key)));
  return box;
}

// ---- permission prompts ------------------------------------------------------------------

const PERMISSIONS_SHOWN = 5;

function renderPermissions({ deciding, recent }) {
  const none = () => el("li", { class: "muted", text: "none" });
  $("permissions-deciding").replaceChildren(
    ...(deciding.length === 0 ? [none()] : deciding.map((id) => el("li", {}, el("span", { class: "file", text: id }), " ", el("span", { class: "muted", text: "asked of chat-Claude (permissions.policy)" })))),
  );
  const latest = recent.slice(-PERMISSIONS_SHOWN).reverse();
  $("permissions-recent").replaceChildren(
    ...(latest.length === 0
      ? [none()]
      : latest.map((d) =>
          el(
            "li",
            { "data-permission": d.id, class: d.allow ? "allowed" : "denied" },
            el("span", { class: "file", text: d.id }),
            d.session ? ` (${d.session}) ` : " ",
            el("b", { text: d.allow ? "allowed" : "denied" }),
            ` by ${d.by}`,
            el("br"),
            el("span", { class: "muted", text: d.reason }),
          ),
        )),
  );
}

// ---- open questions ----------------------------------------------------------------------

/** Cards are kept by question id, so an answer being typed survives every live update. */
function renderQuestions(questions) {
  const banner = $("needs-jc");
  const box = $("questions");
  banner.hidden = questions.length === 0;
  $("jc-count").textContent = questions.length === 1 ? "1 open question" : `${questions.length} open questions`;
  const cards = new Map([...box.children].map((c) => [c.dataset.question, c]));
  const wanted = questions.map((q) => {
    const card = cards.get(q.id) ?? questionCard(q);
    cards.delete(q.id);
    card.querySelector(".q-session").textContent = q.session;
    card.querySelector(".q-direct-session").textContent = q.session;
    card.querySelector(".q-conversation").textContent = `(${q.conversation})`;
    card.querySelector(".q-since").textContent = ago(q.since);
    card.querySelector(".q-since").title = q.since;
    card.querySelector(".q-id").textContent = q.id;
    card.querySelector(".q-text").textContent = q.question;
    return card;
  });
  for (const gone of cards.values()) gone.remove();
  // in the daemon's order (oldest first), moving only what is out of place
  wanted.forEach((card, i) => {
    if (box.children[i] !== card) box.insertBefore(card, box.children[i] ?? null);
  });
}

function questionCard(q) {
  const card = $("question-template").content.firstElementChild.cloneNode(true);
  card.dataset.question = q.id;
  const form = card.querySelector("form");
  form.querySelector('input[name="question"]').value = q.id;
  wireForm(form, () => {
    const text = form.querySelector("textarea").value;
    const session = card.querySelector(".q-session").textContent;
    // straight to the session: `@session: text`, which answers that conversation's open question
    return form.querySelector(".q-direct").checked && session ? { text: `@${session}: ${text}` } : { text, question: q.id };
  });
  return card;
}

// ---- costs -------------------------------------------------------------------------------

/** Horizontal bars: one row per {label, value}, drawn as inline SVG. */
function bars(box, rows, { highlight } = {}) {
  if (rows.length === 0) {
    box.replaceChildren(el("p", { class: "muted small", text: "no calls yet" }));
    return;
  }
  const rowH = 20;
  const labelW = 96;
  const valueW = 64;
  const width = 360;
  const max = Math.max(...rows.map((r) => r.value), 1e-9);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${rows.length * rowH}`, role: "img" });
  rows.forEach((r, i) => {
    const y = i * rowH;
    const w = Math.max(r.value > 0 ? 2 : 0, ((width - labelW - valueW) * r.value) / max);
    svg.append(svgEl("text", { x: labelW - 6, y: y + 14, "text-anchor": "end" }, r.label));
    const bar = svgEl("rect", { x: labelW, y: y + 3, width: w.toFixed(1), height: rowH - 6, rx: 2, class: `bar${highlight === r.label ? " today" : ""}` });
    bar.append(svgEl("title", {}, `${r.label}: ${usd(r.value)} (${r.calls} calls)`));
    svg.append(bar);
    svg.append(svgEl("text", { x: labelW + w + 4, y: y + 14, class: "value" }, usd(r.value)));
  });
  box.replaceChildren(svg);
}

async function loadCosts() {
  try {
    const [costs, calls] = await Promise.all([fetch("/api/costs").then((r) => r.json()), fetch("/api/calls?limit=50").then((r) => r.json())]);
    const today = new Date().toISOString().slice(0, 10);
    bars($("cost-by-day"), costs.byDay.slice(-14).map((r) => ({ label: r.key, value: r.usd, calls: r.calls })), { highlight: today });
    bars($("cost-by-session"), costs.bySession.map((r) => ({ label: r.key, value: r.usd, calls: r.calls })));
    const body = $("calls").tBodies[0];
    if (calls.calls.length === 0) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted", text: "no calls yet" })));
      return;
    }
    body.replaceChildren(
      ...calls.calls.map((c) =>
        el(
          "tr",
          {},
          el("td", { class: "c-time", text: stamp(c.at), title: c.at }),
          el("td", { class: "c-session", text: c.session }),
          el("td", { class: "c-model" }, c.model, ...(c.purpose === "reply" ? [] : [" ", el("span", { class: "tag", text: c.purpose })])),
          el("td", { class: "num c-input", "data-label": "input", text: int(c.inputTokens) }),
          el("td", { class: "num c-output", "data-label": "output", text: int(c.outputTokens) }),
          el("td", { class: "num c-cache", "data-label": "cache w/r", text: `${int(c.cacheWriteTokens)} / ${int(c.cacheReadTokens)}` }),
          el("td", { class: "num c-cost", "data-label": "cost", text: usd(c.usd) }),
          el("td", { class: "num c-latency", "data-label": "latency", text: `${(c.latencyMs / 1000).toFixed(1)} s` }),
        ),
      ),
    );
  } catch (err) {
    $("cost-by-day").replaceChildren(el("p", { class: "muted small", text: `cannot load costs: ${err instanceof Error ? err.message : String(err)}` }));
  }
}

// ---- answering as JC ---------------------------------------------------------------------

/** `bodyOf` gives what is posted to /jc: `{text}`, or `{text, question}` for one question. */
function wireForm(form, bodyOf) {
  const status = form.querySelector(".form-status");
  const button = form.querySelector("button");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = bodyOf();
    if (body.text.trim() === "") return;
    button.disabled = true;
    status.className = "form-status";
    status.textContent = "sending…";
    try {
      const res = await fetch("/jc", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
      const answer = await res.json().catch(() => ({ ok: false, error: `HTTP ${res.status}` }));
      if (res.ok && answer.ok) {
        status.className = "form-status ok";
        status.textContent =
          answer.kind === "direct" ? `sent to ${answer.session}` : answer.kind === "answer" ? `sent as the answer to ${answer.question}` : "sent as the next chat turn";
        form.querySelector("textarea").value = "";
      } else {
        status.className = "form-status bad";
        status.textContent = answer.error ?? `HTTP ${res.status}`;
      }
    } catch (err) {
      status.className = "form-status bad";
      status.textContent = err instanceof Error ? err.message : String(err);
    } finally {
      button.disabled = false;
    }
  });
}

wireForm($("jc-form"), () => ({ text: $("jc-text").value }));

// ---- live updates ------------------------------------------------------------------------

const live = $("live");
const events = new EventSource("/events");
events.addEventListener("open", () => {
  live.className = "live on";
  live.textContent = "live";
});
events.addEventListener("error", () => {
  live.className = "live off";
  live.textContent = "reconnecting…";
});
events.addEventListener("status", (ev) => {
  try {
    renderStatus(JSON.parse(ev.data));
  } catch (err) {
    live.textContent = `bad update: ${err instanceof Error ? err.message : String(err)}`;
  }
});
