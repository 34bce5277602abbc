// app.js -- wires the page together: connection, subscriptions, charts, watchlist, instrument
// picker, price alerts, layout, theme, notifications, and the once-per-animation-frame render
// loop.

import { Connection } from "./connection.js";
import { ChartPanel, INTERVALS } from "./chart-panel.js";
import { Watchlist } from "./watchlist.js";
import { el, formatPrice } from "./format.js";
import { Picker } from "./picker.js";
import { notifyMessage, toast } from "./notify.js";
import { Alerts } from "./alerts.js";
import { OverlayStore } from "./overlays.js";

const $ = (sel) => document.querySelector(sel);
const STORE_KEY = "chartgate.layout.v1";
const THEME_KEY = "chartgate.theme";
const LAYOUTS = [1, 2, 4];
const MAX_WATCHLIST = 50;
const validName = (n) => typeof n === "string" && /^[A-Za-z0-9._-]{1,32}$/.test(n); // PROTOCOL.md §3

// --- persisted state: layout, the charts' instruments/intervals, the watchlist ---------------

function loadState() {
  let s = null;
  try {
    s = JSON.parse(localStorage.getItem(STORE_KEY));
  } catch {
    s = null;
  }
  const fresh = !s || typeof s !== "object";
  if (fresh) s = {};
  const panels = Array.isArray(s.panels) ? s.panels : [];
  return {
    fresh,
    layout: LAYOUTS.includes(s.layout) ? s.layout : 1,
    active: Number.isInteger(s.active) ? s.active : 0,
    watchlist: Array.isArray(s.watchlist) ? s.watchlist.filter(validName).slice(0, MAX_WATCHLIST) : [],
    panels: [0, 1, 2, 3].map((i) => ({
      instrument: validName(panels[i]?.instrument) ? panels[i].instrument : null,
      interval: INTERVALS.includes(panels[i]?.interval) ? panels[i].interval : "1m",
    })),
  };
}

const state = loadState();

function saveState() {
  const { layout, active, watchlist, panels } = state;
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify({ layout, active, watchlist, panels }));
  } catch {
    // storage full or disabled: the page works without it
  }
}

// --- per-instrument data shared by the watchlist and the charts ------------------------------

// name -> {seq, price, ivKey, first, close, closeT, refSettled, refAsking, refUntil}: first is
// the first price this page saw, close the previous day's close (the reference, see below).
const meta = new Map();
function info(name) {
  let m = meta.get(name);
  if (!m) {
    m = { seq: null, price: null, ivKey: null, first: null, close: null, closeT: null,
          refSettled: false, refAsking: false, refUntil: 0 };
    meta.set(name, m);
  }
  return m;
}

/** What the watchlist and chart headers show: the price and its change from the previous day's
 *  close, or -- no daily bars to take it from -- from the first price this page saw. ref is null
 *  (no change shown) until the first answer about daily bars, rather than a change from the
 *  wrong reference. */
function quoteOf(m) {
  if (m.close != null) return { price: m.price, ref: m.close, refT: m.closeT };
  return { price: m.price, ref: m.refSettled ? m.first : null, refT: null };
}

function priceOf(data) {
  if (!data || typeof data !== "object") return null;
  for (const k of ["last_price", "last", "price"]) if (typeof data[k] === "number") return data[k];
  return null;
}

// --- render loop: frames only mark things dirty; the DOM and charts change once per frame ----

const changedQuotes = new Set();
let scheduled = false;

function schedule() {
  if (scheduled) return;
  scheduled = true;
  // Hidden tabs get no animation frames; still drain the queues once a second.
  if (document.hidden) setTimeout(render, 1000);
  else requestAnimationFrame(render);
}

function render() {
  scheduled = false;
  for (const name of changedQuotes) {
    const m = meta.get(name);
    if (!m) continue;
    const q = quoteOf(m);
    watchlist.update(name, q);
    for (const p of panels) if (p.instrument === name) p.setQuote(q.price, q.ref);
  }
  changedQuotes.clear();
  for (const p of panels) p.flush();
  const p = panels[state.active];
  const m = p && p.instrument && meta.get(p.instrument);
  document.title = m && m.price != null ? `${p.instrument} ${formatPrice(m.price)} · chartgate` : "chartgate";
}

// --- the connection -------------------------------------------------------------------------

const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
const conn = new Connection({
  url: wsUrl,
  onFrame,
  onOpen: () => {
    subscribed.clear();
    refused.clear();
    syncSubscriptions(true); // also asks for the reference prices still missing
    loadCatalog().catch(() => {});
    alerts.refresh();
  },
  onState: showConnState,
});

function onFrame(f) {
  switch (f.type) {
    case "tick": {
      const m = info(f.instrument);
      if (Number.isInteger(f.seq)) m.seq = m.seq == null ? f.seq : Math.max(m.seq, f.seq);
      setPrice(f.instrument, priceOf(f.data));
      break;
    }
    case "snapshot": {
      const m = info(f.instrument);
      // A snapshot starts the instrument over (after a gateway restart seq starts over too).
      if (Number.isInteger(f.seq)) m.seq = f.seq;
      setPrice(f.instrument, priceOf(f.last));
      const bars = f.bars && typeof f.bars === "object" ? f.bars : {};
      for (const p of panels) {
        if (p.instrument === f.instrument && Array.isArray(bars[p.interval])) {
          p.queueSnapshot(bars[p.interval], typeof f.tz === "string" ? f.tz : undefined);
        }
      }
      if (Array.isArray(f.overlays)) {
        if (!overlayStores.has(f.instrument)) overlayStores.set(f.instrument, new OverlayStore());
        overlayStores.get(f.instrument).reset(f.overlays);
        overlaysChanged(f.instrument);
      }
      schedule();
      break;
    }
    case "bar": {
      const m = info(f.instrument);
      if (Number.isInteger(f.seq)) m.seq = m.seq == null ? f.seq : Math.max(m.seq, f.seq);
      if (!f.bar || typeof f.bar.t !== "number") break;
      for (const p of panels) {
        if (p.instrument === f.instrument && p.interval === f.interval) p.queueBar(f.bar);
      }
      schedule();
      break;
    }
    case "overlay": {
      // Only a snapshot with overlays starts a store: operations before it have nothing to act on.
      const store = overlayStores.get(f.instrument);
      if (store && store.apply(f.op)) overlaysChanged(f.instrument);
      break;
    }
    case "message":
      if (f.channel === "user" && alerts.onMessage(f.data)) break; // a fired alert
      notifyMessage(toasts, f.channel, f.data);
      break;
    case "error":
      if (f.id === undefined) console.warn("chartgate:", f.code, f.message);
      break;
    default:
      break; // replies are handled by their requests; unknown types are ignored
  }
}

function setPrice(name, price) {
  if (price == null) return;
  const m = info(name);
  m.price = price;
  if (m.first == null) m.first = price;
  // E.g. a new UTC day: a new previous close.
  if (Date.now() >= m.refUntil && subscribed.has(name)) askReference(name);
  changedQuotes.add(name);
  schedule();
}

// --- reference prices: the previous day's close from the 1d bars -------------------------------

const DAY_MS = 86400000;
const REF_IN_FLIGHT = 4; // history requests for references at once (the gateway rate-limits)
const REF_RECHECK_MS = 10 * 60000;
let refInFlight = 0;

/** Asks the gateway for name's last two 1d bars and keeps the close of the newest one before
 *  today's bucket (1d bars are UTC days, PROTOCOL.md §14; Redis may hold a bar for today that a
 *  backend imported). Asked again on the next UTC day, and after REF_RECHECK_MS while the bar
 *  found is older than yesterday's (or there is none): a recording gateway writes yesterday's bar
 *  only when the first tick of the new day arrives. No 1d interval configured, or no daily bars:
 *  the change counts from the first price seen. */
function askReference(name) {
  const m = info(name);
  const now = Date.now();
  if (m.refAsking || now < m.refUntil || refInFlight >= REF_IN_FLIGHT || !conn.live) return;
  const today = now - (now % DAY_MS);
  const tomorrow = today + DAY_MS;
  m.refAsking = true;
  refInFlight++;
  const done = (until) => {
    m.refAsking = false;
    m.refSettled = true;
    m.refUntil = Math.min(until, tomorrow);
    refInFlight--;
    changedQuotes.add(name);
    schedule();
    askReferences(); // the ones that waited for a free slot
  };
  conn.request({ action: "history", instrument: name, interval: "1d", limit: 2 }).then(
    (f) => {
      const bars = Array.isArray(f.bars) ? f.bars : [];
      let prev = null;
      for (const b of bars) {
        const ok = Array.isArray(b) && b.length >= 6 && typeof b[4] === "number" && b[0] < today;
        if (ok && (!prev || b[0] > prev[0])) prev = b;
      }
      if (prev) {
        m.close = prev[4];
        m.closeT = prev[0];
      }
      done(prev && prev[0] === today - DAY_MS ? tomorrow : now + REF_RECHECK_MS);
    },
    (err) => {
      // An error frame: 1d is not a configured interval, or forbidden -- not again today. Rate
      // limited or no reply: again soon. Disconnected: on the next socket.
      if (err && err.type === "error") done(err.code === "rate_limited" ? now + 30000 : tomorrow);
      else done(conn.live ? now + 30000 : 0);
    },
  );
}

function askReferences() {
  for (const name of wanted().keys()) askReference(name);
}

// --- subscriptions: the watchlist's instruments plus those on the visible charts -------------

// Tick frames per second for instruments only in the watchlist (proto/PROTOCOL.md §7, max_rate).
const WATCHLIST_MAX_RATE = 4;
const subscribed = new Map(); // name -> interval key ("1m,5m") subscribed on the current socket
// The gateway process the seq numbers we hold came from: seq is counted per process, so a resume
// ("since") carries it, and a different process (or a restarted one) answers with a snapshot.
let epoch = null;
let sharedEpoch = null;
const refused = new Map(); // name -> error code: the gateway would not subscribe it (this socket)

function wanted() {
  const want = new Map();
  for (const n of state.watchlist) if (!refused.has(n)) want.set(n, new Set());
  for (const p of panels) {
    if (!p.instrument || refused.has(p.instrument)) continue;
    if (!want.has(p.instrument)) want.set(p.instrument, new Set());
    want.get(p.instrument).add(p.interval);
  }
  const out = new Map();
  for (const [n, ivs] of want) out.set(n, INTERVALS.filter((iv) => ivs.has(iv)));
  return out;
}

/** Brings the socket's subscriptions in line with what is shown. resume: first sync on a new
 *  socket, which asks the gateway to replay what was missed ("since") where the charts can use it. */
function syncSubscriptions(resume = false) {
  if (!conn.live) return;
  const want = wanted();
  const groups = new Map(); // interval key -> names (one subscribe carries one interval set)
  for (const [name, ivs] of want) {
    const key = ivs.join(",");
    if (subscribed.get(name) === key) continue;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(name);
  }
  for (const [key, names] of groups) subscribe(names, key, resume);
  askReferences();
  const gone = [...subscribed.keys()].filter((n) => !want.has(n));
  if (gone.length) {
    for (const n of gone) {
      subscribed.delete(n);
      info(n).ivKey = null;
    }
    conn.request({ action: "unsubscribe", instruments: gone }).catch(() => {});
  }
}

// Overlays (proto/PROTOCOL.md §17) of the instruments on a chart: one store each, shared by the
// charts that show the instrument.
const overlayStores = new Map(); // name -> OverlayStore

function overlaysChanged(name) {
  for (const p of panels) if (p.instrument === name) p.overlaysChanged();
  schedule();
}

function subscribe(names, key, resume) {
  // Instruments on a chart (an interval set) want its overlays; the watchlist's do not.
  const frame = { action: "subscribe", instruments: names, intervals: key ? key.split(",") : [] };
  if (key) frame.overlays = true;
  else for (const n of names) overlayStores.delete(n);
  // A watchlist row shows the latest price: a few updates a second are plenty (the gateway sends
  // the latest, and the last of a burst). A chart draws every tick: no max_rate there.
  if (!key) frame.max_rate = WATCHLIST_MAX_RATE;
  if (resume) {
    const since = {};
    for (const n of names) {
      const m = info(n);
      // Only when the charts already hold these intervals; otherwise a snapshot is needed.
      if (m.seq != null && m.ivKey === key) since[n] = m.seq;
    }
    if (Object.keys(since).length && (epoch || sharedEpoch)) {
      frame.since = since;
      if (epoch) frame.epoch = epoch;
      // Ticks numbered by Redis (PROTOCOL.md §19) resume on any gateway process.
      if (sharedEpoch) frame.shared_epoch = sharedEpoch;
    }
  }
  for (const n of names) subscribed.set(n, key);
  conn.request(frame).then(
    (reply) => {
      if (reply && reply.epoch) epoch = reply.epoch;
      if (reply && reply.shared_epoch) sharedEpoch = reply.shared_epoch;
      names.forEach((n) => (info(n).ivKey = key));
    },
    (err) => {
      for (const n of names) if (subscribed.get(n) === key) subscribed.delete(n);
      if (!err || err.type !== "error") {
        // Disconnected (the next socket resubscribes) or no reply (try again shortly).
        if (conn.live) setTimeout(() => syncSubscriptions(), 2000);
        return;
      }
      if (names.length > 1) {
        for (const n of names) subscribe([n], key, false); // find the one that was refused
        return;
      }
      const name = names[0];
      const why = err.code === "forbidden" ? "not allowed for this session" : err.message || err.code;
      refused.set(name, why);
      toast(toasts, "error", `${name}: cannot subscribe`, why);
      for (const p of panels) if (p.instrument === name) p.setNotice(`${name}: ${why}`);
      removeFromWatchlist(name, false);
      schedule();
    },
  );
}

// --- charts and layout ----------------------------------------------------------------------

const chartsEl = $("#charts");
let panels = [];

function theme() {
  return document.documentElement.dataset.theme;
}

/** Makes state.layout charts: existing ones keep their data, new ones get a snapshot. */
function buildPanels() {
  while (panels.length > state.layout) panels.pop().destroy();
  chartsEl.dataset.layout = String(state.layout);
  if (state.active >= state.layout) state.active = 0;
  for (let i = panels.length; i < state.layout; i++) {
    const root = el("section", { "data-index": String(i) });
    chartsEl.append(root);
    const panel = new ChartPanel(root, { theme: theme(), hooks: panelHooks });
    panel.index = i;
    panel.show(state.panels[i].instrument, state.panels[i].interval);
    if (panel.instrument) panel.setAlerts(alerts.forInstrument(panel.instrument));
    const m = panel.instrument && meta.get(panel.instrument);
    if (m && m.price != null) panel.setQuote(m.price, quoteOf(m).ref);
    if (panel.instrument) subscribed.delete(panel.instrument); // resubscribe: snapshot for it
    panels.push(panel);
  }
  markActive();
  for (const b of document.querySelectorAll("#layouts button")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.layout) === state.layout));
  }
  schedule();
}

const panelHooks = {
  onActivate(panel) {
    if (state.active === panel.index) return;
    state.active = panel.index;
    markActive();
    saveState();
  },
  onPick(panel) {
    panelHooks.onActivate(panel);
    picker.open();
  },
  onInterval(panel, iv) {
    panelHooks.onActivate(panel);
    showInPanel(panel, panel.instrument, iv);
  },
  onHistory(panel, gen, before, limit) {
    conn.request({ action: "history", instrument: panel.instrument, interval: panel.interval, before, limit })
      .then((f) => {
        panel.queueHistory(gen, Array.isArray(f.bars) ? f.bars : []);
        schedule();
      })
      .catch((err) => panel.historyFailed(gen, err && err.type === "error"));
  },
  onSetAlert(panel, side, level) {
    return alerts.set(panel.instrument, side, level);
  },
  overlaysOf(name) {
    return overlayStores.get(name);
  },
};

function markActive() {
  panels.forEach((p, i) => p.root.classList.toggle("active", i === state.active && state.layout > 1));
  const p = panels[state.active];
  watchlist.setItems(state.watchlist, p && p.instrument);
}

function showInPanel(panel, name, interval) {
  state.panels[panel.index] = { instrument: name, interval };
  panel.show(name, interval);
  if (name) panel.setAlerts(alerts.forInstrument(name));
  const m = name && meta.get(name);
  if (m && m.price != null) panel.setQuote(m.price, quoteOf(m).ref);
  if (name && !state.watchlist.includes(name)) state.watchlist.push(name);
  if (state.watchlist.length > MAX_WATCHLIST) state.watchlist.shift();
  saveState();
  markActive();
  // Another subscribe for this instrument brings a fresh snapshot for the new interval set.
  if (name) subscribed.delete(name);
  syncSubscriptions();
  schedule();
}

function setLayout(n) {
  if (!LAYOUTS.includes(n) || n === state.layout) return;
  state.layout = n;
  // Fill new empty charts with watchlist instruments not shown yet.
  for (let i = 0; i < n; i++) {
    if (state.panels[i].instrument) continue;
    const shown = new Set(state.panels.slice(0, n).map((p) => p.instrument));
    const next = state.watchlist.find((w) => !shown.has(w));
    if (next) state.panels[i].instrument = next;
  }
  saveState();
  buildPanels();
  syncSubscriptions();
}

// --- watchlist --------------------------------------------------------------------------------

const watchlist = new Watchlist($("#watchlist-body"), {
  onSelect(name) {
    const p = panels[state.active];
    if (p) showInPanel(p, name, p.interval);
  },
  onRemove(name) {
    removeFromWatchlist(name, true);
  },
});

function removeFromWatchlist(name, sync) {
  state.watchlist = state.watchlist.filter((n) => n !== name);
  saveState();
  markActive();
  if (sync) syncSubscriptions();
}

function addToWatchlist(name) {
  if (state.watchlist.includes(name)) return;
  state.watchlist.push(name);
  if (state.watchlist.length > MAX_WATCHLIST) state.watchlist.shift();
  saveState();
  markActive();
  syncSubscriptions();
  const m = meta.get(name);
  if (m && m.price != null) changedQuotes.add(name);
  schedule();
}

// --- instrument picker (list / search) --------------------------------------------------------

const picker = new Picker($("#search"), $("#results"), {
  list: loadCatalog,
  search: (pattern) => allNames({ action: "search", pattern }),
  live: () => conn.live,
  has: (name) => state.watchlist.includes(name),
  onPick(name) {
    const p = panels[state.active];
    if (p) showInPanel(p, name, p.interval);
  },
  onAdd: addToWatchlist,
});

function names(f) {
  return Array.isArray(f.instruments) ? f.instruments : [];
}

// list and search answer in pages (PROTOCOL.md §3 list): "more" asks for the names after the
// last one received. A catalog of MAX_PAGES pages is plenty for a picker; the rest is not asked.
const MAX_PAGES = 20;

async function allNames(req) {
  let all = [];
  for (let page = 0; page < MAX_PAGES; page++) {
    const f = await conn.request(all.length ? { ...req, after: all[all.length - 1] } : req);
    const got = names(f);
    all = all.concat(got);
    if (f.more !== true || !got.length) break;
  }
  return all;
}

function loadCatalog() {
  return allNames({ action: "list" }).then((catalog) => {
    picker.setCatalog(catalog);
    if (state.fresh && catalog.length) {
      // First visit: something to look at right away.
      state.fresh = false;
      state.watchlist = catalog.slice(0, 8);
      const p = panels[0];
      if (p && !p.instrument) showInPanel(p, catalog[0], p.interval); // saves and subscribes
      else {
        saveState();
        markActive();
        syncSubscriptions();
      }
    }
    return catalog;
  });
}

// --- connection state -------------------------------------------------------------------------

const connEl = $("#conn");
const connText = $("#conn-text");
const connAction = $("#conn-action");
const gate = $("#gate");
const gateAction = $("#gate-action");
let countdown = 0;

function showConnState(s) {
  clearInterval(countdown);
  connEl.dataset.state = s;
  document.body.dataset.conn = s;
  connAction.hidden = true;
  connAction.replaceChildren();
  if (s === "connecting") connText.textContent = "Connecting…";
  else if (s === "live") connText.textContent = "Live";
  else if (s === "reconnecting") {
    const tickDown = () => {
      const left = Math.ceil((conn.retryAt - Date.now()) / 1000);
      connText.textContent = conn.retryAt && left > 0 ? `Reconnecting in ${left}s` : "Reconnecting…";
    };
    tickDown();
    countdown = setInterval(tickDown, 500);
  } else if (s === "logged_out") {
    connText.textContent = "Logged out";
    connAction.hidden = false;
    connAction.append(loginAction());
    gateAction.replaceChildren(loginAction());
  }
  gate.hidden = s !== "logged_out";
}

// On a developer's machine the gateway's --dev-login page; elsewhere a retry after logging in.
function loginAction() {
  if (["localhost", "127.0.0.1", "[::1]"].includes(location.hostname)) {
    return el("a", { href: "/dev/login?user=demo" }, "Log in (dev)");
  }
  const b = el("button", { type: "button" }, "Retry");
  b.addEventListener("click", () => conn.retry());
  return b;
}

// --- notifications ------------------------------------------------------------------------------

const toasts = $("#toasts");

// --- price alerts (the "alerts" service) ------------------------------------------------------------

const alerts = new Alerts({
  conn,
  root: $("#alerts-body"),
  toasts,
  hooks: {
    onChange() {
      for (const p of panels) if (p.instrument) p.setAlerts(alerts.forInstrument(p.instrument));
    },
    onSelect(name) {
      const p = panels[state.active];
      if (p) showInPanel(p, name, p.interval);
    },
  },
});

// --- theme ----------------------------------------------------------------------------------------

const systemDark = matchMedia("(prefers-color-scheme: dark)");
let themeChoice = null; // "light" | "dark" once the user toggled; null follows the system
try {
  themeChoice = localStorage.getItem(THEME_KEY);
} catch {
  // no storage: follow the system
}

function applyTheme() {
  const t = themeChoice === "light" || themeChoice === "dark" ? themeChoice : systemDark.matches ? "dark" : "light";
  document.documentElement.dataset.theme = t;
  document.querySelector('meta[name="theme-color"]')?.setAttribute("content", t === "dark" ? "#131722" : "#ffffff");
  for (const p of panels) p.applyTheme(t);
}

systemDark.addEventListener("change", applyTheme);
$("#theme").addEventListener("click", () => {
  themeChoice = theme() === "dark" ? "light" : "dark";
  try {
    localStorage.setItem(THEME_KEY, themeChoice);
  } catch {
    // not remembered across reloads then
  }
  applyTheme();
});

// --- start ----------------------------------------------------------------------------------------

for (const b of document.querySelectorAll("#layouts button")) {
  b.addEventListener("click", () => setLayout(Number(b.dataset.layout)));
}
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  schedule();
  alerts.refresh(false); // another tab may have set or cancelled some
});
applyTheme();
buildPanels();
conn.start();
// For the console and tests: read-only use, e.g. chartgate.conn.state, chartgate.meta.get("rb2501").
window.chartgate = { conn, meta, state, alerts, get panels() { return panels; } };
