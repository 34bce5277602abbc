"""cgcalendar.py -- chartgate's trading calendar and bar bucketing in Python (stdlib zoneinfo).

The same rules as gateway/calendar.c and gateway/bars.c (PROTOCOL.md section 18), so that bars
built offline (scripts/import-bars --ticks, the demo's history) carry the buckets a recording
gateway gives them:
- a sessions file lists schedules (instrument globs, night and day sessions in local time, a
  time zone, trading weekdays, holidays); the first schedule whose glob matches wins, anything
  else trades 24/7 (one session 00:00-24:00 a day) in the default zone;
- night sessions of trading day D are held on the previous trading day's date (or the previous
  calendar day with night_on "previous_day"), not at all when a holiday lies between;
- a tick within `slack` ms before an open / after a close belongs to that session (clamped to its
  first / last ms); other off-session ticks make no bar;
- intraday buckets count from the session's open and end at its close; an interval of a day is
  the trading day, t = its local midnight.
Without a sessions file and in UTC, buckets are the epoch-aligned ones (t = ts - ts % ms)."""

import datetime
import fnmatch
import json
import os
from zoneinfo import ZoneInfo

DAY = 86400000
ZONEINFO = "/usr/share/zoneinfo"
EVE_MAX_DAYS = 8


class CalendarError(Exception):
    pass


def days_of(date):
    return (date - datetime.date(1970, 1, 1)).days


def date_of(days):
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=days)


def zone_valid(name):
    return (isinstance(name, str) and 0 < len(name) < 64 and not name.startswith("/")
            and ".." not in name and os.path.isfile(os.path.join(ZONEINFO, name)))


def _hhmm(v, end):
    if not isinstance(v, str) or len(v) != 5 or v[2] != ":" or not (v[:2] + v[3:]).isdigit():
        raise ValueError
    h, m = int(v[:2]), int(v[3:])
    if m > 59 or h > 24 or (h == 24 and (m or not end)):
        raise ValueError
    return h * 60 + m


class Schedule:
    def __init__(self, name, tz, patterns, night, day, night_prev_day, weekdays, holidays):
        self.name, self.tz, self.patterns = name, ZoneInfo(tz), patterns
        self.night, self.day = night, day            # minutes from the (eve's) local midnight
        self.night_prev_day, self.weekdays = night_prev_day, weekdays   # weekdays: set of 0..6
        self.holidays = holidays                     # set of day numbers
        self._spans = {}                             # trading day -> [(open, close, label)]

    def trading(self, d):
        return date_of(d).weekday() in self.weekdays and d not in self.holidays

    def _eve(self, d):
        if not self.night:
            return None
        if self.night_prev_day:
            return d - 1
        for p in range(d - 1, d - EVE_MAX_DAYS - 1, -1):
            if self.trading(p):
                return p
            if date_of(p).weekday() in self.weekdays:
                return None                          # a holiday: no night before the break
        return None

    def _local(self, d, minute):
        # wall-clock arithmetic, like mktime's normalisation of tm_hour/tm_min
        base = date_of(d) + datetime.timedelta(days=minute // 1440)
        m = minute % 1440
        dt = datetime.datetime(base.year, base.month, base.day, m // 60, m % 60, tzinfo=self.tz)
        return int(dt.timestamp()) * 1000

    def spans_of(self, d):
        if d not in self._spans:
            out = []
            if self.trading(d):
                eve = self._eve(d)
                sp = []
                if eve is not None:
                    sp += [(self._local(eve, a), self._local(eve, b)) for a, b in self.night]
                sp += [(self._local(d, a), self._local(d, b)) for a, b in self.day]
                label = self._local(d, 0)
                if sp:
                    out = [(o, c, label, sp[0][0], sp[-1][1]) for o, c in sp if c > o]
            self._spans[d] = out
        return self._spans[d]

    def locate(self, ts, slack):
        """(ts clamped, open, close, label, day_open, day_close), or None off-session."""
        d = ts // DAY
        spans = []
        for day in range(d - EVE_MAX_DAYS - 2, d + 4):
            for s in self.spans_of(day):
                if not spans or s[0] >= spans[-1][1]:
                    spans.append(s)
        prev = nxt = None
        for s in spans:
            if s[0] <= ts < s[1]:
                return (ts,) + s
            if s[1] <= ts:
                prev = s
            elif s[0] > ts and nxt is None:
                nxt = s
        after = ts - prev[1] if prev else None
        before = nxt[0] - ts if nxt else None
        if after is not None and after < slack and (before is None or after <= before):
            return (prev[1] - 1,) + prev
        if before is not None and before <= slack:
            return (nxt[0],) + nxt
        return None


def bucket(where, ms):
    ts, open_, close, label, day_open, day_close = where
    if ms % DAY == 0:
        return label, day_close
    t = open_ + (ts - open_) // ms * ms
    return t, min(t + ms, close)


class Calendar:
    def __init__(self, path=None, tz="UTC", slack=60000):
        if not zone_valid(tz):
            raise CalendarError("--timezone: expected a zone of the tz database, got %r" % tz)
        self.tz, self.slack = tz, slack
        self.active = bool(path) or tz != "UTC"
        self.schedules = []
        self.all_week = Schedule("24/7", tz, [], [], [(0, 1440)], False, set(range(7)), set())
        if path:
            self._load(path)

    def _fail(self, path, where, what):
        raise CalendarError("--sessions: %s: %s: %s" % (path, where, what))

    def _load(self, path):
        try:
            with open(path) as f:
                root = json.load(f)
        except json.JSONDecodeError as e:
            raise CalendarError("--sessions: %s:%d:%d: %s" % (path, e.lineno, e.colno, e.msg))
        except OSError as e:
            raise CalendarError("--sessions: %s: %s" % (path, e.strerror))
        if not isinstance(root, dict) or not isinstance(root.get("calendars"), list) \
                or not root["calendars"]:
            self._fail(path, "calendars", "expected a non-empty array")
        for k in root:
            if k not in ("calendars", "holidays", "comment"):
                self._fail(path, k, "unknown key")
        glob_h = self._dates(path, root.get("holidays", []), "holidays")
        for i, c in enumerate(root["calendars"]):
            w = "calendars[%d]" % i
            if not isinstance(c, dict):
                self._fail(path, w, "expected an object")
            for k in c:
                if k not in ("name", "instruments", "timezone", "night", "day", "night_on",
                             "weekdays", "holidays"):
                    self._fail(path, "%s.%s" % (w, k), "unknown key")
            tz = c.get("timezone", self.tz)
            if not zone_valid(tz):
                self._fail(path, w + ".timezone", "expected a zone of the tz database")
            pats = c.get("instruments")
            if not isinstance(pats, list) or not pats or \
                    not all(isinstance(p, str) and 0 < len(p) <= 64 for p in pats):
                self._fail(path, w + ".instruments", "expected a non-empty array of globs")
            night = self._sessions(path, c.get("night", []), w + ".night", True)
            day = self._sessions(path, c.get("day", []), w + ".day", False)
            if not night and not day:
                self._fail(path, w, "expected \"night\" or \"day\" sessions")
            if night and day and (night[0][0] < day[-1][1] or night[-1][1] > 1440 + day[0][0]):
                self._fail(path, w + ".night", "the night must lie between the day sessions")
            on = c.get("night_on", "previous_trading_day")
            if on not in ("previous_trading_day", "previous_day"):
                self._fail(path, w + ".night_on", "expected previous_trading_day/previous_day")
            wd = c.get("weekdays", [1, 2, 3, 4, 5])
            if not isinstance(wd, list) or not wd or \
                    not all(isinstance(x, int) and 1 <= x <= 7 for x in wd):
                self._fail(path, w + ".weekdays", "expected ISO weekdays 1..7")
            hol = glob_h | self._dates(path, c.get("holidays", []), w + ".holidays")
            self.schedules.append(Schedule(c.get("name", w), tz, pats, night, day,
                                           on == "previous_day", {x - 1 for x in wd}, hol))

    def _dates(self, path, arr, where):
        if not isinstance(arr, list):
            self._fail(path, where, "expected an array of \"YYYY-MM-DD\" dates")
        out = set()
        for i, s in enumerate(arr):
            try:
                if not isinstance(s, str) or len(s) != 10:
                    raise ValueError
                out.add(days_of(datetime.date.fromisoformat(s)))
            except ValueError:
                self._fail(path, "%s[%d]" % (where, i), "expected a date \"YYYY-MM-DD\"")
        return out

    def _sessions(self, path, arr, where, night):
        if not isinstance(arr, list) or len(arr) > 8:
            self._fail(path, where, "expected at most 8 sessions")
        out, last = [], -1
        for i, p in enumerate(arr):
            pos = "%s[%d]" % (where, i)
            try:
                if not isinstance(p, list) or len(p) != 2:
                    raise ValueError
                a, b = _hhmm(p[0], False), _hhmm(p[1], True)
            except ValueError:
                self._fail(path, pos, "expected [\"HH:MM\",\"HH:MM\"]")
            if night:
                while a < last:
                    a += 1440
                while b <= a:
                    b += 1440
            elif b <= a:
                self._fail(path, pos, "a day session ends after it starts, the same day")
            if a < last:
                self._fail(path, pos, "sessions overlap or are out of order")
            out.append((a, b))
            last = b
        return out

    def match(self, name):
        for s in self.schedules:
            if any(fnmatch.fnmatchcase(name, p) for p in s.patterns):
                return s
        return self.all_week

    def is_bucket_start(self, sched, t, ms):
        """Whether a bar starting at t is one this calendar makes for interval ms."""
        if not self.active:
            return t % ms == 0
        if ms % DAY == 0:
            return any(s[2] == t for d in range(t // DAY - 1, t // DAY + 2)
                       for s in sched.spans_of(d))
        w = sched.locate(t, 0)
        return w is not None and bucket(w, ms)[0] == t

    def bucket(self, sched, ts, ms):
        """(t, end) of ts for interval ms, or None when ts is off-session."""
        if not self.active:
            t = ts - ts % ms
            return t, t + ms
        w = sched.locate(ts, self.slack)
        return bucket(w, ms) if w else None


class Aggregator:
    """One instrument's bars from its ticks, as the chart agent builds them when the ticks
    arrive in order (a late tick corrects the bar it belongs to; nothing closes on a timer)."""

    def __init__(self, cal, instrument, intervals, cumulative=False):
        self.cal, self.sched = cal, cal.match(instrument)
        self.intervals = intervals          # [(name, ms)]
        self.cumulative, self.total, self.total_ts = cumulative, None, None
        self.bars = {name: {} for name, _ in intervals}   # t -> [t,o,h,l,c,v]
        self.newest = {name: None for name, _ in intervals}
        self.newest_ts = {name: None for name, _ in intervals}
        self.off_session = 0

    def _volume(self, v, ts):
        if not self.cumulative:
            return v
        if self.total is None:
            d = 0
        elif ts < self.total_ts:
            return 0
        else:
            d = v - self.total if v >= self.total else v
        self.total, self.total_ts = v, ts
        return d

    def tick(self, ts, price, volume):
        v = self._volume(volume, ts) if volume is not None else 0
        if self.cal.active:
            w = self.sched.locate(ts, self.cal.slack)
            if w is None:
                self.off_session += 1
                return
            ts = w[0]
        for name, ms in self.intervals:
            t = bucket(w, ms)[0] if self.cal.active else ts - ts % ms
            bars, b = self.bars[name], self.bars[name].get(t)
            if b is None:
                if self.newest[name] is not None and t < self.newest[name]:
                    continue                       # older than what is held: ignored
                bars[t] = [t, price, price, price, price, v]
                self.newest[name], self.newest_ts[name] = t, ts
                continue
            b[2], b[3], b[5] = max(b[2], price), min(b[3], price), b[5] + v
            if t == self.newest[name] and ts >= self.newest_ts[name]:
                b[4], self.newest_ts[name] = price, ts

    def result(self):
        return {name: [self.bars[name][t] for t in sorted(self.bars[name])]
                for name, _ in self.intervals}
