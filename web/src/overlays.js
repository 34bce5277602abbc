// overlays.js -- an instrument's chart overlays (proto/PROTOCOL.md §17) as the gateway sends
// them: the snapshot's list, then set / append / remove / sync operations. Pure data: the chart
// panels draw what a store holds (chart-panel.js).
//
// Overlays are keyed by name and user ("ma20" and u1's "ma20" are two). Each carries a rev,
// bumped whenever it changes, so a panel redraws only what changed since it last looked.

const KINDS = new Set(["line", "histogram", "markers", "level"]);

export function overlayKey(o) {
  return o.user ? `${o.overlay}|${o.user}` : o.overlay;
}

function pointT(p) {
  return Array.isArray(p) ? p[0] : p && p.t;
}

function validPoint(kind, p) {
  if (kind === "markers") return p && typeof p === "object" && Number.isFinite(p.t);
  return Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]);
}

/** points merged by t (a later one replaces an earlier one), in time order. */
function merge(have, add, kind) {
  const byT = new Map();
  for (const p of have) byT.set(pointT(p), p);
  for (const p of add) if (validPoint(kind, p)) byT.set(pointT(p), p);
  return [...byT.values()].sort((a, b) => pointT(a) - pointT(b));
}

export class OverlayStore {
  constructor() {
    this.items = new Map(); // key -> overlay {overlay, kind, interval, style, points, ..., rev}
    this.rev = 0;
    this.v = 0; // the newest operation version applied
  }

  /** The overlays of a snapshot or a sync: they replace everything held. */
  reset(list, v = 0) {
    this.items.clear();
    for (const o of Array.isArray(list) ? list : []) this.put(o);
    this.v = v;
    this.rev++;
  }

  put(o) {
    if (!o || typeof o.overlay !== "string" || !KINDS.has(o.kind)) return;
    const item = { ...o, rev: ++this.rev };
    delete item.op;
    delete item.v;
    if (o.kind !== "level") item.points = merge([], Array.isArray(o.points) ? o.points : [], o.kind);
    this.items.set(overlayKey(o), item);
  }

  /** One operation of an overlay frame; returns true when something changed. */
  apply(op) {
    if (!op || typeof op !== "object") return false;
    if (op.op === "sync") {
      this.reset(op.overlays, op.v);
      return true;
    }
    if (Number.isFinite(op.v)) this.v = Math.max(this.v, op.v);
    const key = overlayKey(op);
    if (op.op === "set") {
      this.put(op);
      return true;
    }
    const item = this.items.get(key);
    if (!item) return false; // an append or remove of something we do not hold
    if (op.op === "remove") {
      this.items.delete(key);
      this.rev++;
      return true;
    }
    if (op.op === "append" && item.kind !== "level" && Array.isArray(op.points)) {
      item.points = merge(item.points, op.points, item.kind);
      item.rev = ++this.rev;
      return true;
    }
    return false;
  }
}
