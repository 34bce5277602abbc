// watchlist.js -- the subscribed instruments with last price, change and change % since the
// first price this page saw, flashing green/red on every update.

import { el, formatPrice } from "./format.js";

const FLASH_GAP_MS = 1200;

export class Watchlist {
  /** hooks: onSelect(name), onRemove(name) */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.rows = new Map(); // name -> {tr, price, chg, pct, flip, shown}
    this.body = el("tbody");
    this.empty = el("p", { class: "wl-empty" }, "Search for an instrument to add it here.");
    const head = el("thead", {}, el("tr", {},
      el("th", {}, "Symbol"), el("th", {}, "Last"), el("th", {}, "Chg"), el("th", {}, "Chg%"),
      el("th", { "aria-label": "Remove" })));
    root.append(el("table", { class: "wl" }, head, this.body), this.empty);
  }

  /** Rebuilds the rows for these names, in this order; marks `active` (the active chart's). */
  setItems(names, active) {
    const keep = new Map();
    for (const name of names) {
      let row = this.rows.get(name);
      if (!row) row = this.makeRow(name);
      keep.set(name, row);
      this.body.append(row.tr);
      row.tr.classList.toggle("active", name === active);
    }
    for (const [name, row] of this.rows) if (!keep.has(name)) row.tr.remove();
    this.rows = keep;
    this.empty.hidden = names.length > 0;
  }

  makeRow(name) {
    const price = el("td", { class: "num last" }, "–");
    const chg = el("td", { class: "num" });
    const pct = el("td", { class: "num" });
    const rm = el("button", { type: "button", class: "rm", title: `Remove ${name}`, "aria-label": `Remove ${name}` }, "×");
    const tr = el("tr", { "data-instrument": name }, el("td", { class: "sym" }, name), price, chg, pct,
      el("td", {}, rm));
    tr.addEventListener("click", () => this.hooks.onSelect(name));
    rm.addEventListener("click", (ev) => {
      ev.stopPropagation();
      this.hooks.onRemove(name);
    });
    return { tr, price, chg, pct, flip: false, flashed: -Infinity, shown: null };
  }

  /** Shows the quote of one instrument: q = {price, ref}. Called from the animation frame. */
  update(name, q) {
    const row = this.rows.get(name);
    if (!row || !q || q.price == null || q.price === row.shown) return;
    const before = row.shown;
    row.shown = q.price;
    const chg = q.ref != null ? q.price - q.ref : 0;
    const pct = q.ref ? (chg / q.ref) * 100 : 0;
    const sign = chg > 0 ? "+" : "";
    row.price.textContent = formatPrice(q.price);
    row.chg.textContent = sign + formatPrice(chg, q.price);
    row.pct.textContent = sign + pct.toFixed(2) + "%";
    row.tr.dataset.dir = chg > 0 ? "up" : chg < 0 ? "down" : "flat";
    const now = performance.now();
    if (before != null && now - row.flashed > FLASH_GAP_MS) {
      // Two identical animations under different names: switching restarts it without a reflow.
      // At most one flash per FLASH_GAP_MS, so a busy instrument blinks instead of staying lit.
      row.flashed = now;
      row.flip = !row.flip;
      const up = q.price > before;
      row.price.className = `num last flash-${up ? "up" : "down"}${row.flip ? "1" : "2"}`;
    }
  }
}
