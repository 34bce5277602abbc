// notify.js -- unobtrusive notifications (bottom right), for `message` frames, fired price
// alerts and errors.

import { el } from "./format.js";

const MAX_SHOWN = 4;
const SHOW_MS = 7000;

/** kind: a class ("user", "broadcast", "alert", "error"); attrs: extra attributes. */
export function toast(root, kind, title, text, showMs = SHOW_MS, attrs = {}) {
  const t = el("div", { class: `toast ${kind}`, role: "status", ...attrs }, el("strong", {}, title), el("span", {}, text));
  t.addEventListener("click", () => t.remove());
  root.append(t);
  while (root.children.length > MAX_SHOWN) root.firstChild.remove();
  setTimeout(() => {
    t.classList.add("out");
    setTimeout(() => t.remove(), 400);
  }, showMs);
}

/** A `message` frame: data may be any JSON value; objects with text/title/kind read best. */
export function notifyMessage(root, channel, data) {
  let title = channel === "broadcast" ? "Announcement" : "Message";
  let text;
  if (typeof data === "string") text = data;
  else if (data && typeof data === "object" && !Array.isArray(data)) {
    if (typeof data.title === "string") title = data.title;
    else if (typeof data.kind === "string") title = data.kind.replace(/[_-]+/g, " ");
    const key = ["text", "message", "msg", "body"].find((k) => typeof data[k] === "string");
    text = key
      ? data[key]
      : Object.entries(data)
          .filter(([k]) => k !== "title" && k !== "kind")
          .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
          .join(" · ");
  } else text = JSON.stringify(data);
  toast(root, channel === "broadcast" ? "broadcast" : "user", title, String(text).slice(0, 240));
}
