// chart-panel.js -- one chart: a candlestick series and a volume histogram for one instrument
// and interval, fed only by the gateway's snapshot, bar and history frames.
//
// Frames are queued (queueSnapshot/queueBar/queueHistory) and applied in flush(), which the app
// calls at most once per animation frame. Bars are kept as [t, o, h, l, c, v] arrays, t in ms.
// Price alerts: the bell in the header (or Alt-click on the chart at a price) opens a small form
// under it; the instrument's alerts are drawn as dashed price lines (setAlerts).
// Overlays (proto/PROTOCOL.md §17), from the app's OverlayStore of the instrument (hooks.overlaysOf):
// line and histogram series, series markers and price lines, drawn with the library's own
// primitives for the overlays of the shown interval (levels on every interval), from the oldest
// bar loaded on (so they follow history scroll-back), each with a toggle in the overlay legend.

import {
  CandlestickSeries, HistogramSeries, LineSeries, createChart, createSeriesMarkers,
} from "lightweight-charts";
import { formatPrice, formatVolume, el } from "./format.js";

export const INTERVALS = ["1s", "1m", "5m", "15m", "1h", "1d"];
const HISTORY_LIMIT = 500;
const HISTORY_EDGE = 20; // request older bars when fewer than this are left of the view

const THEMES = {
  dark: { bg: "#131722", text: "#b2b5be", grid: "rgba(42, 46, 57, 0.6)", border: "#2a2e39",
          up: "#26a69a", down: "#ef5350", upVol: "rgba(38, 166, 154, 0.35)",
          downVol: "rgba(239, 83, 80, 0.35)", cross: "#758696", alert: "#f5a623" },
  light: { bg: "#ffffff", text: "#434651", grid: "rgba(240, 243, 250, 1)", border: "#e0e3eb",
           up: "#089981", down: "#f23645", upVol: "rgba(8, 153, 129, 0.3)",
           downVol: "rgba(242, 54, 69, 0.3)", cross: "#9598a1", alert: "#c77c02" },
};

const UNIT_MS = { s: 1000, m: 60000, h: 3600000, d: 86400000 };
const intervalMs = (iv) => parseInt(iv, 10) * UNIT_MS[iv[iv.length - 1]];
const OVERLAY_COLOR = "#f5a623"; // when an overlay's style names none

const pad = (n) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// Wall-clock parts of an instant in an IANA zone (one formatter per zone, made once).
const zoneFormats = new Map();
function zoneParts(ms, tz) {
  let f = zoneFormats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric",
      month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
    zoneFormats.set(tz, f);
  }
  const p = {};
  for (const { type, value } of f.formatToParts(new Date(ms))) p[type] = Number(value);
  return { y: p.year, mo: p.month - 1, d: p.day, h: p.hour % 24, mi: p.minute, s: p.second };
}

// With a trading calendar the snapshot names the exchange's zone (tz): every time is shown in
// it, and a 1d bar's t is the trading day's local midnight there (PROTOCOL.md §18). Without
// one, intraday bars are shown in the viewer's local time and daily bars are UTC days (as the
// gateway buckets them). Sessions' breaks and nights need nothing: the time scale is
// index-based, so bars of consecutive sessions sit side by side.
function parts(sec, daily, tz) {
  if (tz) return daily ? { ...zoneParts(sec * 1000, tz), h: 0, mi: 0, s: 0 } : zoneParts(sec * 1000, tz);
  const d = new Date(sec * 1000);
  return daily
    ? { y: d.getUTCFullYear(), mo: d.getUTCMonth(), d: d.getUTCDate(), h: 0, mi: 0, s: 0 }
    : { y: d.getFullYear(), mo: d.getMonth(), d: d.getDate(), h: d.getHours(), mi: d.getMinutes(),
        s: d.getSeconds() };
}

export class ChartPanel {
  /**
   * @param {HTMLElement} root  the panel's element (emptied and filled here)
   * @param {object} hooks  onActivate(), onInterval(iv), onPick(), onHistory(panel, before, limit),
   *   onSetAlert(panel, side, level) -> Promise (rejects with an Error saying why),
   *   overlaysOf(instrument) -> OverlayStore or undefined
   */
  constructor(root, { theme, hooks }) {
    this.root = root;
    this.hooks = hooks;
    this.instrument = null;
    this.interval = "1m";
    this.data = [];
    this.gen = 0; // bumped on every instrument/interval change; stale history replies are dropped
    this.pendingSnapshot = null;
    this.pendingBars = new Map(); // t -> bar array, newest version wins
    this.pendingHistory = [];
    this.historyLoading = false;
    this.historyDone = false;
    this.quote = null; // {price, ref}: ref the price the change is from, null when unknown
    this.tz = null; // exchange time zone from the snapshot (trading calendar), null: none
    this.hoverTime = null; // bar time under the crosshair (seconds), null when none
    this.notice = "";
    this.loaded = false;
    this.dirty = false;
    this.alertLines = new Map(); // alert id -> price line
    this.alertSideTouched = false; // the user chose above/below himself: do not guess it
    this.ovDrawn = new Map(); // overlay key -> {kind, rev, hidden, lower, series | line}
    this.ovHidden = new Set(); // overlay keys switched off in the legend
    this.ovMarkers = null; // the candles' series-markers primitive, made on first use
    this.build();
    this.applyTheme(theme);
    this.dirty = true; // draw the header once even before any data
  }

  build() {
    this.root.classList.add("panel");
    this.root.innerHTML = "";
    this.symBtn = el("button", { class: "sym", type: "button", title: "Change instrument" });
    this.priceEl = el("span", { class: "price" });
    this.chgEl = el("span", { class: "chg" });
    this.ivBox = el("div", { class: "intervals", role: "group", "aria-label": "Interval" });
    for (const iv of INTERVALS) {
      const b = el("button", { type: "button", "data-iv": iv }, iv);
      b.addEventListener("click", (ev) => {
        ev.stopPropagation();
        this.hooks.onInterval(this, iv);
      });
      this.ivBox.append(b);
    }
    this.symBtn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      this.hooks.onPick(this);
    });
    this.bellBtn = el("button", { class: "bell", type: "button", title: "Set a price alert (or Alt-click the chart at a price)",
      "aria-label": "Set a price alert", "aria-expanded": "false" });
    this.bellBtn.innerHTML = '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M8 2.2a3.8 3.8 0 0 0-3.8 3.8v2.6L3 10.8h10l-1.2-2.2V6A3.8 3.8 0 0 0 8 2.2zM6.5 12.3a1.5 1.5 0 0 0 3 0"/></svg>';
    this.bellBtn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      if (this.alertForm.hidden) this.openAlertForm(null);
      else this.closeAlertForm();
    });
    const head = el("div", { class: "panel-head" },
      this.symBtn, el("span", { class: "quote" }, this.priceEl, this.chgEl), this.bellBtn, this.ivBox);
    this.buildAlertForm();
    this.legend = el("div", { class: "legend" });
    this.msg = el("div", { class: "panel-msg" });
    this.host = el("div", { class: "chart-host" });
    this.ovLegend = el("div", { class: "ov-legend", role: "group", "aria-label": "Overlays" });
    const body = el("div", { class: "panel-body" }, this.host, this.legend, this.ovLegend, this.msg);
    this.root.append(head, this.alertForm, body);
    this.root.addEventListener("pointerdown", () => this.hooks.onActivate(this), true);

    this.chart = createChart(this.host, {
      autoSize: true,
      layout: { fontSize: 11, attributionLogo: true },
      rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.25 } },
      timeScale: { rightOffset: 4, barSpacing: 7, minBarSpacing: 0.5 },
      crosshair: { mode: 0 },
      localization: { timeFormatter: (t) => this.formatTime(t) },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, { borderVisible: false });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceScaleId: "vol",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((r) => this.onRange(r));
    this.chart.subscribeCrosshairMove((p) => {
      this.hoverTime = p.time ?? null;
      this.showLegend(this.hoverTime);
    });
    // Alt-click: an alert at the price under the pointer. While the form is open, any click
    // on the chart picks the price.
    this.chart.subscribeClick((p) => {
      if (!p.point || !this.instrument || document.body.dataset.alerts === "off") return;
      if (!p.sourceEvent?.altKey && this.alertForm.hidden) return;
      const price = this.candles.coordinateToPrice(p.point.y);
      if (price != null && Number.isFinite(price)) this.openAlertForm(this.roundPrice(price));
    });
    this.configureInterval();
  }

  // --- price alerts ---------------------------------------------------------------------------

  buildAlertForm() {
    this.alertSide = el("select", { name: "side", "aria-label": "Direction" },
      el("option", { value: "above" }, "rises to ≥"), el("option", { value: "below" }, "falls to ≤"));
    this.alertPrice = el("input", { name: "price", type: "number", step: "any", required: "",
      "aria-label": "Alert price", inputmode: "decimal", autocomplete: "off" });
    this.alertSet = el("button", { type: "submit", class: "set" }, "Set alert");
    const close = el("button", { type: "button", class: "close", title: "Close", "aria-label": "Close" }, "×");
    this.alertErr = el("span", { class: "err", role: "alert" });
    this.alertLabel = el("span", { class: "lbl" });
    this.alertForm = el("form", { class: "alert-form", hidden: "", autocomplete: "off" },
      this.alertLabel, this.alertSide, this.alertPrice, this.alertSet, close, this.alertErr);
    this.alertSide.addEventListener("change", () => (this.alertSideTouched = true));
    this.alertPrice.addEventListener("input", () => {
      this.alertErr.textContent = "";
      this.guessSide();
    });
    close.addEventListener("click", () => this.closeAlertForm());
    this.alertForm.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") this.closeAlertForm();
    });
    this.alertForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submitAlert();
    });
  }

  /** Opens the form for this chart's instrument, at price (default: the last price). */
  openAlertForm(price) {
    if (!this.instrument) return;
    const last = this.quote && this.quote.price;
    const p = price ?? last;
    this.alertLabel.textContent = `${this.instrument}: alert when it`;
    if (p != null) this.alertPrice.value = String(p);
    if (price == null) this.alertSideTouched = false;
    this.alertErr.textContent = "";
    this.guessSide();
    this.alertForm.hidden = false;
    this.bellBtn.setAttribute("aria-expanded", "true");
    this.alertPrice.focus();
    this.alertPrice.select();
  }

  closeAlertForm() {
    this.alertForm.hidden = true;
    this.bellBtn.setAttribute("aria-expanded", "false");
    this.alertErr.textContent = "";
  }

  // Above the last price: "rises to"; below it: "falls to" (until the user picks one himself).
  guessSide() {
    const last = this.quote && this.quote.price;
    const v = Number(this.alertPrice.value);
    if (this.alertSideTouched || last == null || this.alertPrice.value === "" || !Number.isFinite(v)) return;
    this.alertSide.value = v >= last ? "above" : "below";
  }

  // A price picked on the chart, to the precision the page shows prices with.
  roundPrice(p) {
    const s = Math.abs(this.quote?.price ?? p);
    const dec = s >= 1 || s === 0 ? 2 : s >= 0.01 ? 4 : 6;
    return Number(p.toFixed(dec));
  }

  async submitAlert() {
    const level = Number(this.alertPrice.value);
    if (this.alertPrice.value.trim() === "" || !Number.isFinite(level)) {
      this.alertErr.textContent = "Enter a price";
      return;
    }
    this.alertSet.disabled = true;
    this.alertErr.textContent = "";
    try {
      await this.hooks.onSetAlert(this, this.alertSide.value, level);
      this.closeAlertForm();
    } catch (err) {
      this.alertErr.textContent = err && err.message ? err.message : String(err);
    } finally {
      this.alertSet.disabled = false;
    }
    // Disabling the button dropped the focus: back to the price, to correct it (or Escape).
    if (!this.alertForm.hidden) this.alertPrice.focus();
  }

  /** The alerts of this chart's instrument ({alert, above|below}), drawn as price lines. */
  setAlerts(list) {
    const want = new Map();
    for (const a of list) {
      const side = typeof a.above === "number" ? "above" : typeof a.below === "number" ? "below" : null;
      if (side) want.set(a.alert, { side, price: a[side] });
    }
    for (const [id, line] of this.alertLines) {
      if (!want.has(id)) {
        this.candles.removePriceLine(line);
        this.alertLines.delete(id);
      }
    }
    for (const [id, { side, price }] of want) {
      if (this.alertLines.has(id)) continue;
      this.alertLines.set(id, this.candles.createPriceLine({
        price, color: this.colors.alert, lineWidth: 1, lineStyle: 2, axisLabelVisible: true,
        title: side === "above" ? "alert ≥" : "alert ≤",
      }));
    }
    this.root.dataset.alerts = String(this.alertLines.size);
  }

  applyTheme(name) {
    const c = THEMES[name] || THEMES.dark;
    this.colors = c;
    this.chart.applyOptions({
      layout: { background: { color: c.bg }, textColor: c.text },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      rightPriceScale: { borderColor: c.border },
      timeScale: { borderColor: c.border },
      crosshair: { vertLine: { color: c.cross, labelBackgroundColor: c.border },
                   horzLine: { color: c.cross, labelBackgroundColor: c.border } },
    });
    this.candles.applyOptions({ upColor: c.up, downColor: c.down, wickUpColor: c.up,
                                wickDownColor: c.down });
    for (const line of this.alertLines.values()) line.applyOptions({ color: c.alert });
    if (this.data.length) this.setAll();
    this.overlaysChanged();
  }

  // --- what the panel shows ---------------------------------------------------------------

  show(instrument, interval) {
    if (instrument === this.instrument && interval === this.interval) return;
    this.instrument = instrument;
    this.interval = interval;
    this.gen++;
    this.data = [];
    this.pendingSnapshot = null;
    this.pendingBars.clear();
    this.pendingHistory = [];
    this.historyLoading = false;
    this.historyDone = false;
    this.quote = null;
    this.notice = "";
    this.loaded = false; // a snapshot has been applied
    this.closeAlertForm();
    this.setAlerts([]); // the app gives the new instrument's
    this.clearOverlays();
    this.candles.setData([]);
    this.volume.setData([]);
    this.configureInterval();
    this.dirty = true;
  }

  configureInterval() {
    const daily = this.interval.endsWith("d");
    this.chart.applyOptions({
      timeScale: {
        timeVisible: !daily,
        secondsVisible: this.interval.endsWith("s"),
        tickMarkFormatter: (t, type) => {
          const p = parts(t, daily, this.tz);
          if (type === 0) return String(p.y);
          if (type === 1) return MONTHS[p.mo];
          if (type === 2) return `${p.d} ${MONTHS[p.mo]}`;
          if (type === 4) return `${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
          return `${pad(p.h)}:${pad(p.mi)}`;
        },
      },
    });
    for (const b of this.ivBox.children) b.classList.toggle("on", b.dataset.iv === this.interval);
  }

  formatTime(t) {
    const daily = this.interval.endsWith("d");
    const p = parts(t, daily, this.tz);
    const date = `${p.y}-${pad(p.mo + 1)}-${pad(p.d)}`;
    if (daily) return date;
    return `${date} ${pad(p.h)}:${pad(p.mi)}${this.interval.endsWith("s") ? ":" + pad(p.s) : ""}`;
  }

  /** A message over the chart instead of data (e.g. the instrument was refused). */
  setNotice(text) {
    this.notice = text;
    this.dirty = true;
  }

  setQuote(price, ref) {
    this.quote = { price, ref };
    this.dirty = true;
  }

  // --- frames in ----------------------------------------------------------------------------

  /** A snapshot's bars for this panel's interval: replaces everything shown. tz: the
   * instrument's exchange zone when the gateway has a trading calendar, else undefined. */
  queueSnapshot(bars, tz) {
    if ((tz || null) !== this.tz) {
      this.tz = tz || null;
      this.root.dataset.tz = this.tz || "";
      this.configureInterval();
    }
    this.pendingSnapshot = bars;
    this.pendingBars.clear(); // the snapshot already reflects every earlier update
    this.dirty = true;
  }

  queueBar(b) {
    this.pendingBars.set(b.t, [b.t, b.o, b.h, b.l, b.c, b.v]);
    this.dirty = true;
  }

  queueHistory(gen, bars) {
    if (gen !== this.gen) return;
    this.historyLoading = false;
    if (bars.length < HISTORY_LIMIT) this.historyDone = true;
    if (bars.length) this.pendingHistory.push(bars);
    this.dirty = true;
  }

  /** permanent: the gateway refused the request (an error frame), so do not ask again. */
  historyFailed(gen, permanent) {
    if (gen !== this.gen) return;
    if (permanent) this.historyDone = true;
    setTimeout(() => (this.historyLoading = false), 2000); // not once per frame while scrolling
  }

  // --- applying queued frames (once per animation frame) ----------------------------------

  flush() {
    if (!this.dirty) return;
    this.dirty = false;
    if (this.pendingSnapshot) {
      // Replacing the data (e.g. after a reconnect) keeps the view on the same times, or on the
      // newest bars when it was following them.
      const ts = this.chart.timeScale();
      const logical = ts.getVisibleLogicalRange();
      const following = !this.data.length || !logical || logical.to >= this.data.length - 1;
      const firstT = following ? 0 : this.data[Math.max(0, Math.floor(logical.from))][0];
      this.data = this.pendingSnapshot.filter((b) => Array.isArray(b) && b.length >= 6);
      this.pendingSnapshot = null;
      this.loaded = true;
      this.historyDone = false;
      this.setAll();
      if (following || !this.data.length) ts.scrollToRealTime();
      else {
        // Same zoom, same first time shown (or the oldest bar held, and history fills in).
        const from = this.search(firstT);
        ts.setVisibleLogicalRange({ from, to: from + (logical.to - logical.from) });
      }
    }
    if (this.pendingHistory.length) this.prependHistory();
    if (this.pendingBars.size) {
      const bars = [...this.pendingBars.values()].sort((a, b) => a[0] - b[0]);
      this.pendingBars.clear();
      for (const b of bars) this.applyBar(b);
    }
    this.drawOverlays();
    this.renderHead();
    this.showLegend(this.hoverTime);
    this.root.dataset.instrument = this.instrument || "";
    this.root.dataset.interval = this.interval;
    this.root.dataset.bars = String(this.data.length);
    this.root.dataset.lastT = this.data.length ? String(this.data[this.data.length - 1][0]) : "";
  }

  candle(b) {
    return { time: b[0] / 1000, open: b[1], high: b[2], low: b[3], close: b[4] };
  }

  vol(b) {
    const c = this.colors;
    return { time: b[0] / 1000, value: b[5], color: b[4] >= b[1] ? c.upVol : c.downVol };
  }

  setAll() {
    this.candles.setData(this.data.map((b) => this.candle(b)));
    this.volume.setData(this.data.map((b) => this.vol(b)));
  }

  applyBar(b) {
    const d = this.data;
    const last = d[d.length - 1];
    if (!last || b[0] >= last[0]) {
      if (last && b[0] === last[0]) d[d.length - 1] = b;
      else d.push(b);
      this.candles.update(this.candle(b));
      this.volume.update(this.vol(b));
      return;
    }
    // An older bar: a late tick corrected a completed bar (final:true sent again).
    const lo = this.search(b[0]);
    if (d[lo] && d[lo][0] === b[0]) {
      d[lo] = b;
      try {
        this.candles.update(this.candle(b), true);
        this.volume.update(this.vol(b), true);
        return;
      } catch {
        // fall through to a full reload
      }
    } else if (lo === 0) {
      return; // older than everything loaded: history will bring it when scrolled to
    } else {
      d.splice(lo, 0, b); // a bar filling a gap
    }
    this.setAll();
  }

  /** Index of the first bar with t >= the given t (binary search). */
  search(t) {
    const d = this.data;
    let lo = 0;
    let hi = d.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (d[mid][0] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  prependHistory() {
    const chunks = this.pendingHistory;
    this.pendingHistory = [];
    let older = [];
    for (const c of chunks) older = older.concat(c);
    const first = this.data.length ? this.data[0][0] : Infinity;
    older = older.filter((b) => Array.isArray(b) && b[0] < first).sort((a, b) => a[0] - b[0]);
    older = older.filter((b, i) => i === 0 || b[0] !== older[i - 1][0]);
    if (!older.length) return;
    const ts = this.chart.timeScale();
    const range = ts.getVisibleLogicalRange();
    this.data = older.concat(this.data);
    this.setAll();
    if (range) ts.setVisibleLogicalRange({ from: range.from + older.length, to: range.to + older.length });
  }

  onRange(range) {
    if (!range || !this.instrument || !this.data.length) return;
    if (range.from > HISTORY_EDGE || this.historyLoading || this.historyDone) return;
    this.historyLoading = true;
    this.hooks.onHistory(this, this.gen, this.data[0][0], HISTORY_LIMIT);
  }

  // --- overlays ---------------------------------------------------------------------------

  /** The instrument's overlays changed (or their drawing must be redone). */
  overlaysChanged() {
    for (const d of this.ovDrawn.values()) d.rev = -1;
    this.dirty = true;
  }

  clearOverlays() {
    for (const [key, d] of this.ovDrawn) this.undrawOverlay(key, d);
    if (this.ovMarkers) this.ovMarkers.setMarkers([]);
    this.ovLegend.innerHTML = "";
    this.ovLegendKey = "";
    this.root.dataset.overlays = "0";
    this.root.dataset.overlaySeries = "0";
    this.root.dataset.overlayMarkers = "0";
    this.root.dataset.overlayLevels = "0";
  }

  undrawOverlay(key, d) {
    if (d.series) this.chart.removeSeries(d.series);
    if (d.line) this.candles.removePriceLine(d.line);
    this.ovDrawn.delete(key);
  }

  /** A point's bar time in seconds: overlays share the candles' time scale. */
  barTime(t) {
    const ms = intervalMs(this.interval);
    return (t - (t % ms)) / 1000;
  }

  drawOverlays() {
    const store = this.instrument && this.hooks.overlaysOf ? this.hooks.overlaysOf(this.instrument) : null;
    const want = new Map();
    if (store) {
      for (const [key, o] of store.items) {
        if (o.kind === "level" || o.interval === this.interval) want.set(key, o);
      }
    }
    let markersDirty = false;
    for (const [key, d] of this.ovDrawn) {
      if (want.has(key) && want.get(key).kind === d.kind) continue;
      if (d.kind === "markers") markersDirty = true;
      this.undrawOverlay(key, d);
    }
    const lower = this.data.length ? this.data[0][0] : Infinity; // nothing before the bars held
    const counts = { series: 0, markers: 0, levels: 0 };
    for (const [key, o] of want) {
      const hidden = this.ovHidden.has(key);
      const d = this.ovDrawn.get(key);
      if (o.kind === "markers") counts.markers += hidden ? 0 : o.points.filter((p) => p.t >= lower).length;
      else if (o.kind === "level") counts.levels += hidden ? 0 : 1;
      else counts.series += hidden ? 0 : 1;
      if (d && d.rev === o.rev && d.hidden === hidden && d.lower === lower) continue;
      if (o.kind === "markers") {
        markersDirty = true;
        this.ovDrawn.set(key, { kind: o.kind, rev: o.rev, hidden, lower });
      } else if (o.kind === "level") {
        if (d && d.line) this.candles.removePriceLine(d.line);
        const st = o.style || {};
        const line = hidden ? null : this.candles.createPriceLine({
          price: o.price, color: o.color || st.color || OVERLAY_COLOR, lineWidth: st.lineWidth || 1,
          lineStyle: Number.isInteger(st.lineStyle) ? st.lineStyle : 2, axisLabelVisible: true,
          title: o.title || st.title || o.overlay,
        });
        this.ovDrawn.set(key, { kind: o.kind, rev: o.rev, hidden, lower, line });
      } else {
        const series = d && d.series ? d.series : this.addOverlaySeries(o);
        this.ovDrawn.set(key, { kind: o.kind, rev: o.rev, hidden, lower, series });
        series.applyOptions({ visible: !hidden });
        series.setData(this.overlayData(o, lower));
      }
    }
    if (markersDirty) {
      const all = [];
      for (const [key, o] of want) {
        if (o.kind !== "markers" || this.ovHidden.has(key)) continue;
        for (const p of o.points) {
          if (p.t < lower) continue;
          const position = p.position === "inBar" ? "inBar" : p.position === "above" ? "aboveBar" : "belowBar";
          all.push({ time: this.barTime(p.t), position, shape: p.shape,
                     color: p.color || o.style?.color || OVERLAY_COLOR, text: p.text || "" });
        }
      }
      all.sort((a, b) => a.time - b.time);
      if (!this.ovMarkers) this.ovMarkers = createSeriesMarkers(this.candles, []);
      this.ovMarkers.setMarkers(all);
    }
    this.root.dataset.overlays = String(want.size);
    this.root.dataset.overlaySeries = String(counts.series);
    this.root.dataset.overlayMarkers = String(counts.markers);
    this.root.dataset.overlayLevels = String(counts.levels);
    this.renderOverlayLegend(want);
  }

  addOverlaySeries(o) {
    const st = o.style || {};
    const below = st.pane === "below";
    const opts = {
      color: st.color || OVERLAY_COLOR, lastValueVisible: false, priceLineVisible: false,
      title: "", crosshairMarkerVisible: false,
      ...(below ? { priceScaleId: "ov-below" } : {}),
    };
    let series;
    if (o.kind === "histogram") series = this.chart.addSeries(HistogramSeries, opts);
    else {
      series = this.chart.addSeries(LineSeries, {
        ...opts, lineWidth: Math.min(4, Math.max(1, st.lineWidth || 1)),
        lineStyle: Number.isInteger(st.lineStyle) ? st.lineStyle : 0,
      });
    }
    if (below) this.chart.priceScale("ov-below").applyOptions({ scaleMargins: { top: 0.7, bottom: 0.02 } });
    return series;
  }

  /** The points of a line or histogram overlay from lower on, one per bar time. */
  overlayData(o, lower) {
    const out = [];
    for (const p of o.points) {
      if (p[0] < lower) continue;
      const v = { time: this.barTime(p[0]), value: p[1] };
      if (o.kind === "histogram" && typeof p[2] === "string") v.color = p[2];
      if (out.length && out[out.length - 1].time === v.time) out[out.length - 1] = v;
      else out.push(v);
    }
    return out;
  }

  renderOverlayLegend(want) {
    const sig = [...want].map(([k, o]) => `${k}:${this.ovHidden.has(k) ? 0 : 1}:${o.style?.color || o.color || ""}`).join(",");
    if (sig === this.ovLegendKey) return;
    this.ovLegendKey = sig;
    this.ovLegend.innerHTML = "";
    for (const [key, o] of want) {
      const on = !this.ovHidden.has(key);
      const color = o.style?.color || o.color || OVERLAY_COLOR;
      const name = o.title || o.style?.title || o.overlay;
      const b = el("button", { type: "button", class: "ov", "data-overlay": key, "data-kind": o.kind,
        "aria-pressed": String(on), title: on ? `Hide ${name}` : `Show ${name}` },
        el("i", { style: `background:${color}` }), name);
      b.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (this.ovHidden.has(key)) this.ovHidden.delete(key);
        else this.ovHidden.add(key);
        this.dirty = true;
        this.flush();
      });
      this.ovLegend.append(b);
    }
  }

  // --- header and legend ------------------------------------------------------------------

  renderHead() {
    this.symBtn.textContent = this.instrument || "Pick an instrument";
    this.root.classList.toggle("empty", !this.instrument);
    const q = this.quote;
    if (q && q.price != null) {
      this.priceEl.textContent = formatPrice(q.price);
      if (q.ref != null) {
        const chg = q.price - q.ref;
        const pct = q.ref ? (chg / q.ref) * 100 : 0;
        this.chgEl.textContent = `${chg >= 0 ? "+" : ""}${formatPrice(chg, q.price)} (${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%)`;
        this.root.dataset.dir = chg > 0 ? "up" : chg < 0 ? "down" : "flat";
      } else {
        this.chgEl.textContent = ""; // the reference price is not known yet
        this.root.dataset.dir = "flat";
      }
    } else {
      this.priceEl.textContent = "";
      this.chgEl.textContent = "";
    }
    let msg = this.notice;
    if (!msg && !this.instrument) msg = "Pick an instrument from the search box or the watchlist";
    else if (!msg && !this.data.length) msg = this.loaded ? "No trades yet" : "Loading…";
    this.msg.textContent = msg;
    this.msg.hidden = !msg;
  }

  showLegend(time) {
    const d = this.data;
    if (!d.length) {
      this.legend.textContent = "";
      return;
    }
    let b = d[d.length - 1];
    if (time != null) {
      const i = this.search(time * 1000);
      if (d[i] && d[i][0] === time * 1000) b = d[i];
    }
    const dir = b[4] >= b[1] ? "up" : "down";
    this.legend.innerHTML = "";
    this.legend.dataset.dir = dir;
    for (const [k, v] of [["O", b[1]], ["H", b[2]], ["L", b[3]], ["C", b[4]]]) {
      this.legend.append(el("span", {}, k + " ", el("b", {}, formatPrice(v))));
    }
    this.legend.append(el("span", {}, "V ", el("b", {}, formatVolume(b[5]))));
  }

  destroy() {
    this.chart.remove();
    this.root.remove();
  }
}
