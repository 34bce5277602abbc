// alerts.js -- price alerts, kept by the "alerts" backend service (scripts/services/alerts) and
// reached through the gateway's "send" action: the list under the watchlist, set and cancel,
// and the notification when one fires (a `message` on the user channel, so every tab gets it).
//
// The service is the only truth: the list is asked for on every new socket, when the tab comes
// back to the front (another tab may have changed it) and after an answer that says it is stale;
// set and cancel update it from the service's reply. Status: "loading", "ok", "down" (the
// gateway has the service but it does not answer: retried), "off" (the gateway has no such
// service, or this session may not use it: the alert controls are hidden).

import { el, formatPrice } from "./format.js";
import { toast } from "./notify.js";

export const SERVICE = "alerts";
const RETRY_MS = 10000;
const REFRESH_GAP_MS = 2000; // at most one list request per this, for focus changes
const ALERT_TOAST_MS = 30000;

/** Readable text of a failed request: an error frame, an Error, or a service's refusal. */
export function failure(err) {
  if (!err) return "failed";
  if (err.type === "error") {
    if (err.code === "unavailable") return "alerts service unavailable, try again shortly";
    if (err.code === "unknown_service") return "alerts are not enabled on this gateway";
    if (err.code === "forbidden") return "alerts are not allowed for this session";
    return err.message || err.code;
  }
  if (err.sent) return "the alerts service did not answer";
  return err.message || String(err);
}

export class Alerts {
  /** hooks: onChange() (the list changed: redraw chart lines), onSelect(instrument) */
  constructor({ conn, root, toasts, hooks }) {
    this.conn = conn;
    this.root = root;
    this.toasts = toasts;
    this.hooks = hooks;
    this.items = new Map(); // alert id -> {alert, instrument, above|below, created}
    this.status = "loading";
    this.asking = null;
    this.askedAt = 0;
    this.retry = 0;
    this.list = el("ul", { class: "al-list" });
    this.note = el("p", { class: "al-note" });
    root.append(this.list, this.note);
    this.render();
  }

  get enabled() {
    return this.status !== "off";
  }

  /** Alerts on one instrument, oldest first. */
  forInstrument(name) {
    return [...this.items.values()].filter((a) => a.instrument === name);
  }

  /** Asks the service for the list (once at a time; throttled unless forced). */
  refresh(force = true) {
    if (!this.conn.live || this.asking || this.status === "off") return;
    if (!force && Date.now() - this.askedAt < REFRESH_GAP_MS) return;
    clearTimeout(this.retry);
    this.askedAt = Date.now();
    this.asking = this.conn.ask(SERVICE, { op: "list" }).then(
      (f) => {
        const d = f.data;
        if (d && d.ok === true && Array.isArray(d.alerts)) {
          this.items = new Map(d.alerts.filter((a) => a && typeof a.alert === "string").map((a) => [a.alert, a]));
          this.setStatus("ok");
        } else this.down(d && d.error ? String(d.error) : "unexpected answer");
      },
      (err) => {
        if (err && err.type === "error" && (err.code === "unknown_service" || err.code === "forbidden")) {
          this.items.clear();
          this.setStatus("off");
        } else if (this.conn.live) this.down(failure(err));
      },
    ).finally(() => (this.asking = null));
  }

  down(why) {
    this.downWhy = why;
    this.setStatus("down");
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.refresh(), RETRY_MS);
  }

  setStatus(s) {
    this.status = s;
    document.body.dataset.alerts = s;
    this.changed();
  }

  /** Sets an alert; resolves with its id, rejects with an Error whose message says why. */
  async set(instrument, side, level) {
    let f;
    try {
      f = await this.conn.ask(SERVICE, { op: "set", instrument, [side]: level });
    } catch (err) {
      throw new Error(failure(err));
    }
    const d = f.data || {};
    if (d.ok !== true || typeof d.alert !== "string") throw new Error(String(d.error || "refused"));
    this.items.set(d.alert, { alert: d.alert, instrument, [side]: level, created: Date.now() });
    this.changed();
    if (this.status !== "ok") this.refresh(); // it answers again: fetch the whole list
    return d.alert;
  }

  async cancel(id) {
    const row = this.list.querySelector(`li[data-alert="${CSS.escape(id)}"]`);
    row?.classList.add("busy");
    try {
      const f = await this.conn.ask(SERVICE, { op: "cancel", alert: id });
      const d = f.data || {};
      if (d.ok !== true) {
        // Most likely it fired or was cancelled in another tab meanwhile: show what is left.
        toast(this.toasts, "error", "Alert not cancelled", String(d.error || "refused"));
        this.refresh();
        return;
      }
      this.items.delete(id);
      this.changed();
    } catch (err) {
      toast(this.toasts, "error", "Alert not cancelled", failure(err));
    } finally {
      row?.classList.remove("busy");
    }
  }

  /** A `message` on the user channel: true when it was an alert notification (shown here). */
  onMessage(data) {
    if (!data || typeof data !== "object" || data.kind !== "alert" || typeof data.alert !== "string") return false;
    const side = typeof data.above === "number" ? "above" : "below";
    const level = data[side];
    const inst = typeof data.instrument === "string" ? data.instrument : "";
    const text = `${side === "above" ? "Rose to" : "Fell to"} ${formatPrice(data.price)} · alert ${side === "above" ? "≥" : "≤"} ${formatPrice(level)}`;
    toast(this.toasts, "alert", `Alert: ${inst}`, text, ALERT_TOAST_MS, { "data-alert": data.alert });
    if (this.items.delete(data.alert)) this.changed();
    return true;
  }

  changed() {
    this.render();
    this.hooks.onChange();
  }

  render() {
    const rows = [];
    for (const a of this.items.values()) {
      const side = typeof a.above === "number" ? "above" : "below";
      const rm = el("button", { type: "button", class: "rm", title: "Cancel this alert", "aria-label": `Cancel alert ${a.alert}` }, "×");
      const li = el("li", { "data-alert": a.alert, "data-instrument": a.instrument, "data-side": side, title: `Show ${a.instrument}` },
        el("span", { class: "sym" }, a.instrument),
        el("span", { class: "cond" }, `${side === "above" ? "≥" : "≤"} ${formatPrice(a[side])}`),
        rm);
      li.addEventListener("click", () => this.hooks.onSelect(a.instrument));
      rm.addEventListener("click", (ev) => {
        ev.stopPropagation();
        this.cancel(a.alert);
      });
      rows.push(li);
    }
    this.list.replaceChildren(...rows);
    let note = "";
    if (this.status === "loading") note = "Loading…";
    else if (this.status === "down") note = `Alerts unavailable: ${this.downWhy}. Retrying…`;
    else if (!rows.length) note = "No alerts. Use the bell on a chart, or Alt-click a price on it.";
    this.note.textContent = note;
    this.note.hidden = !note;
    this.note.classList.toggle("bad", this.status === "down");
  }
}
