// connection.js -- the WebSocket to the gateway: newline-batched frames, request ids, requests
// to backend services ("send", answered by a service's "reply"), reconnection with exponential
// back-off and jitter, and the "logged out" check.
//
// States: "connecting" (first attempt), "live", "reconnecting" (waiting or retrying),
// "logged_out" (the gateway says the session is gone: no more retries until retry()).

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;
const REQUEST_TIMEOUT_MS = 10000;
const SERVICE_TIMEOUT_MS = 5000;
const REPLY_TYPES = new Set(["subscribed", "unsubscribed", "instruments", "pong", "history", "error",
  "sent", "reply"]);

export class Connection {
  constructor({ url, sessionUrl = "/session", onFrame, onOpen, onState }) {
    this.url = url;
    this.sessionUrl = sessionUrl;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onState = onState;
    this.ws = null;
    this.state = "connecting";
    this.failures = 0; // consecutive attempts that did not end in a usable socket
    this.retryAt = 0; // when the pending retry fires (ms since epoch), 0 when none
    this.timer = 0;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    addEventListener("online", () => {
      if (this.state === "reconnecting" && !this.ws) this.connectNow();
    });
  }

  start() {
    this.connectNow();
  }

  /** Reconnects at once (after "logged out", or to skip the back-off wait). */
  retry() {
    this.failures = 0;
    this.connectNow();
  }

  get live() {
    return this.state === "live";
  }

  /** Sends one frame; false when there is no open socket. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame with a fresh id; resolves with its reply, rejects with an error frame/Error. */
  request(frame, { timeoutMs = REQUEST_TIMEOUT_MS, service = false } = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...frame, id })) {
        reject(new Error("not connected"));
        return;
      }
      const timer = setTimeout(() => {
        const waiter = this.pending.get(id);
        this.pending.delete(id);
        // A service request the gateway queued ("sent") but nobody answered: the service is
        // down or slow, and may still carry it out later.
        reject(Object.assign(new Error(waiter && waiter.sent ? "the service did not answer" : "no reply"),
          { sent: Boolean(waiter && waiter.sent) }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, service, sent: false });
    });
  }

  /** Sends data to a backend service through the gateway ({"action":"send"}). Resolves with the
   *  service's `reply` frame (its data is what the service answered); rejects with an `error`
   *  frame (unknown_service, forbidden, unavailable, ...) or an Error after timeoutMs. The
   *  gateway's `sent` frame only says the request was queued. */
  ask(service, data, timeoutMs = SERVICE_TIMEOUT_MS) {
    return this.request({ action: "send", service, data }, { timeoutMs, service: true });
  }

  setState(state) {
    this.state = state;
    this.onState(state, this);
  }

  connectNow() {
    clearTimeout(this.timer);
    this.retryAt = 0;
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.onclose = old.onmessage = old.onopen = null;
      old.close();
    }
    this.setState(this.state === "connecting" ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.failures = 0;
      this.setState("live");
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") this.receive(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.failPending();
      if (ev.code === 4001) {
        this.setState("logged_out"); // "session ended": reconnecting would only get 401
      } else if (opened) {
        this.failures = 0;
        this.scheduleRetry();
      } else {
        this.checkSession();
      }
    };
  }

  // A refused handshake looks like any network failure (close 1006) to a page, so ask the
  // gateway whether the cookie still names a live session: 401 means logged out.
  async checkSession() {
    let status = 0;
    try {
      const res = await fetch(this.sessionUrl, { cache: "no-store", credentials: "same-origin" });
      status = res.status;
    } catch {
      status = 0; // gateway unreachable: keep retrying
    }
    if (this.ws) return; // someone called retry() meanwhile
    if (status === 401) this.setState("logged_out");
    else this.scheduleRetry();
  }

  scheduleRetry() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.failures);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter"
    this.failures++;
    this.retryAt = Date.now() + delay;
    this.timer = setTimeout(() => this.connectNow(), delay);
    this.setState("reconnecting");
  }

  failPending() {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error("disconnected"));
    }
    this.pending.clear();
  }

  // One WebSocket message holds one or more frames joined by "\n".
  receive(text) {
    for (const line of text.split("\n")) {
      let frame;
      try {
        frame = JSON.parse(line);
      } catch {
        console.warn("chartgate: unparsable frame", line.slice(0, 200));
        continue;
      }
      if (!frame || typeof frame !== "object") continue;
      if (frame.id !== undefined && REPLY_TYPES.has(frame.type)) {
        const waiter = this.pending.get(frame.id);
        if (waiter && frame.type === "sent") {
          waiter.sent = true; // queued for the service; its reply follows
        } else if (waiter && (frame.type !== "reply" || waiter.service)) {
          this.pending.delete(frame.id);
          clearTimeout(waiter.timer);
          if (frame.type === "error") waiter.reject(frame);
          else waiter.resolve(frame);
        }
      }
      this.onFrame(frame);
    }
  }
}
