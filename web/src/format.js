// format.js -- small DOM and number helpers shared by the modules.

/** el("div", {class: "x", "data-a": 1}, child, "text", ...) */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

const priceFmt = new Map();

/** A price (or a change of a price, with scale = the price) with 2 decimals, more when tiny. */
export function formatPrice(p, scale = p) {
  if (typeof p !== "number" || !Number.isFinite(p)) return "–";
  const s = Math.abs(scale);
  const dec = s >= 1 || s === 0 ? 2 : s >= 0.01 ? 4 : 6;
  let f = priceFmt.get(dec);
  if (!f) {
    f = new Intl.NumberFormat("en-US", { minimumFractionDigits: dec, maximumFractionDigits: dec });
    priceFmt.set(dec, f);
  }
  return f.format(p);
}

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

export function formatVolume(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  return v < 10000 ? String(Math.round(v * 100) / 100) : compact.format(v);
}
