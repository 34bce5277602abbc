// watchlist.js -- the subscribed instruments with last price, change and change % from a
// reference price (the previous day's close, else the first price this page saw: app.js decides),
// flashing green/red on every price update.

import { el, formatPrice } from "./format.js";

const FLASH_GAP_MS = 1200;

export class Watchlist {
  /** hooks: onSelect(name), onRemove(name) */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.rows = new Map(); // name -> {tr, price, chg, pct, flip, flashed, shown, ref, refT}
    this.body = el("tbody");
    this.empty = el("p", { class: "wl-empty" }, "Search for an instrument to add it here.");
    const head = el("thead", {}, el("tr", {},
      el("th", {}, "Symbol"), el("th", {}, "Last"),
      el("th", { title: "Change from the previous day's close" }, "Chg"),
      el("th", { title: "Change from the previous day's close, in %" }, "Chg%"),
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
    return { tr, price, chg, pct, flip: false, flashed: -Infinity, shown: null, ref: undefined, refT: undefined };
  }

  /** Shows the quote of one instrument: q = {price, ref, refT}; ref null: no change shown (yet);
   *  refT: the start of the daily bar whose close ref is, null when ref is the first price seen.
   *  Called from the animation frame. */
  update(name, q) {
    const row = this.rows.get(name);
    if (!row || !q || q.price == null) return;
    if (q.price === row.shown && q.ref === row.ref && q.refT === row.refT) return;
    const before = row.shown;
    row.shown = q.price;
    row.price.textContent = formatPrice(q.price);
    if (q.ref !== row.ref || q.refT !== row.refT) {
      row.ref = q.ref;
      row.refT = q.refT;
      const tip = q.ref == null ? "" : q.refT != null
        ? `from the close of ${new Date(q.refT).toISOString().slice(0, 10)} (UTC day): ${formatPrice(q.ref)}`
        : `from the first price this page saw (no daily bars): ${formatPrice(q.ref)}`;
      row.chg.title = row.pct.title = tip;
      row.tr.dataset.ref = q.ref == null ? "none" : q.refT != null ? "close" : "seen";
    }
    if (q.ref != null) {
      const chg = q.price - q.ref;
      const pct = q.ref ? (chg / q.ref) * 100 : 0;
      const sign = chg > 0 ? "+" : "";
      row.chg.textContent = sign + formatPrice(chg, q.price);
      row.pct.textContent = sign + pct.toFixed(2) + "%";
      row.tr.dataset.dir = chg > 0 ? "up" : chg < 0 ? "down" : "flat";
    } else {
      row.chg.textContent = row.pct.textContent = "";
      delete row.tr.dataset.dir;
    }
    const now = performance.now();
    if (before != null && q.price !== before && now - row.flashed > FLASH_GAP_MS) {
      // Two identical animations under different names: switching restarts it without a reflow.
      // At most one flash per FLASH_GAP_MS, so a busy instrument blinks instead of staying lit.
      row.flashed = now;
      row.flip = !row.flip;
      const up = q.price > before;
      row.price.className = `num last flash-${up ? "up" : "down"}${row.flip ? "1" : "2"}`;
    }
  }
}
