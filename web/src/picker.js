// picker.js -- the instrument search box: the gateway's `list` before typing, `search` while
// typing; arrow keys, Enter and Escape; "/" anywhere focuses it.

import { el } from "./format.js";

export class Picker {
  /**
   * hooks: search(pattern) -> Promise<names>, list() -> Promise<names> (also refreshes the
   * catalog), live() -> bool, has(name) -> bool (in the watchlist), onPick(name), onAdd(name)
   */
  constructor(input, list, hooks) {
    this.input = input;
    this.list = list;
    this.hooks = hooks;
    this.catalog = []; // the last full list, shown before anything is typed
    this.hits = [];
    this.index = -1;
    this.timer = 0;
    this.seq = 0;
    input.addEventListener("input", () => this.run());
    input.addEventListener("focus", () => this.run());
    input.addEventListener("blur", () => setTimeout(() => (list.hidden = true), 100));
    input.addEventListener("keydown", (ev) => this.key(ev));
    addEventListener("keydown", (ev) => {
      if (ev.key === "/" && document.activeElement !== input && !ev.ctrlKey && !ev.metaKey) {
        ev.preventDefault();
        this.open();
      }
    });
  }

  open() {
    if (document.activeElement === this.input) this.run();
    else this.input.focus(); // its focus handler searches
    this.input.select();
  }

  setCatalog(names) {
    this.catalog = names;
    if (document.activeElement === this.input && !this.input.value.trim()) this.show(names);
  }

  run() {
    clearTimeout(this.timer);
    const pattern = this.input.value.trim().slice(0, 32); // the gateway's limit
    const mine = ++this.seq;
    if (!pattern) {
      this.show(this.catalog);
      if (this.hooks.live()) this.hooks.list().catch(() => {});
      return;
    }
    this.timer = setTimeout(() => {
      this.hooks.search(pattern).then(
        (names) => mine === this.seq && this.show(names),
        () => mine === this.seq && this.show([], "Not connected"),
      );
    }, 120);
  }

  show(names, note) {
    if (document.activeElement !== this.input) return;
    this.hits = names.slice(0, 100);
    this.list.innerHTML = "";
    if (!this.hits.length) {
      this.list.append(el("li", { class: "none" }, note || (this.hooks.live() ? "No instruments found" : "Not connected")));
    }
    this.hits.forEach((name, i) => {
      const add = el("button", { type: "button", class: "add", title: "Add to watchlist" }, this.hooks.has(name) ? "✓" : "+");
      const li = el("li", { role: "option", "data-instrument": name }, el("span", {}, name), add);
      li.addEventListener("mousedown", (ev) => ev.preventDefault()); // keep the focus in the input
      li.addEventListener("click", () => this.pick(name));
      li.addEventListener("mousemove", () => this.highlight(i));
      add.addEventListener("click", (ev) => {
        ev.stopPropagation();
        this.hooks.onAdd(name);
        add.textContent = "✓";
      });
      this.list.append(li);
    });
    this.highlight(this.hits.length ? 0 : -1);
    this.list.hidden = false;
  }

  highlight(i) {
    this.index = i;
    [...this.list.children].forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    this.list.children[i]?.scrollIntoView({ block: "nearest" });
  }

  pick(name) {
    this.hooks.onPick(name);
    this.input.value = "";
    this.list.hidden = true;
    this.input.blur();
  }

  key(ev) {
    const n = this.hits.length;
    if (ev.key === "ArrowDown" && n) this.highlight((this.index + 1) % n);
    else if (ev.key === "ArrowUp" && n) this.highlight((this.index - 1 + n) % n);
    else if (ev.key === "Enter" && this.hits[this.index]) this.pick(this.hits[this.index]);
    else if (ev.key === "Escape") this.input.blur();
    else return;
    ev.preventDefault();
  }
}
