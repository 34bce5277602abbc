/* calendar.h -- trading calendars: which instant belongs to which session and trading day.
 *
 * A calendar is the --sessions file (PROTOCOL.md §18) read once at start-up: schedules of
 * local session times for instrument patterns (globs), in an IANA time zone, with trading
 * weekdays and non-trading dates. Each schedule keeps a sorted table of its sessions as UTC
 * epoch-ms intervals ("spans") for a window of trading days; the window is computed from the
 * system tz database (/usr/share/zoneinfo, through TZ and mktime) when a timestamp falls
 * outside it and is extended, not recomputed, as time moves on. Looking a tick up is then a
 * binary search and arithmetic, with no time-zone call. Instruments no pattern matches get the
 * 24/7 schedule: one session 00:00-24:00 every day in --timezone.
 *
 * The time-zone calls set the process's TZ for the duration of a window computation and
 * restore it afterwards (one thread per process). Pure: no I/O besides reading the file and
 * the tz database. */
#ifndef CG_CALENDAR_H
#define CG_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#define CG_CALENDAR_DAY_MS 86400000LL
#define CG_CALENDAR_SESSIONS_MAX 8 /* night + day sessions of one schedule */

/* One session of one trading day, UTC epoch ms. */
struct cg_cal_span {
    int64_t open, close; /* [open, close) */
    int64_t day;         /* the trading day's label: its local midnight */
    int64_t day_open;    /* the trading day's first open (the evening before, with a night) */
    int64_t day_close;   /* the trading day's last close */
};

struct cg_cal_sched {
    char name[64];
    char tz[64];
    char **patterns; /* globs (fnmatch) */
    uint32_t npatterns;
    int night_prev_day; /* night sessions on the previous calendar day, not trading day */
    uint8_t weekdays;   /* bit d: trading on weekday d (0 = Monday) */
    uint32_t nnight, nday;
    int32_t night[CG_CALENDAR_SESSIONS_MAX][2]; /* minutes from local midnight; end may wrap */
    int32_t day[CG_CALENDAR_SESSIONS_MAX][2];   /* minutes; start < end <= 1440 */
    int32_t *holidays;                          /* days since 1970-01-01, sorted */
    uint32_t nholidays;
    /* the window: spans of trading days [lo_day, hi_day], answering [win_lo, win_hi) */
    struct cg_cal_span *spans;
    size_t nspans;
    int32_t lo_day, hi_day;
    int64_t win_lo, win_hi;
};

struct cg_calendar {
    char tz[64];   /* --timezone */
    int64_t slack; /* ms before an open / after a close that still count (--session-slack-ms) */
    int active;    /* --sessions given or a zone other than UTC: bars follow the calendar */
    struct cg_cal_sched *scheds; /* the file's, in file order (first match wins) */
    uint32_t nscheds;
    struct cg_cal_sched all_week; /* for instruments no pattern matches */
};

/* Where a tick falls: its session and trading day, ts clamped into the session. */
struct cg_cal_where {
    int64_t ts;          /* the tick time, moved into [open, close) when in the slack */
    int64_t open, close; /* its session */
    int64_t day, day_open, day_close;
};

/* Reads path (NULL: no file, only the 24/7 schedule) for zone tz. Returns a new calendar
 * (cg_calendar_destroy), or NULL with one line in err naming the file and the position (JSON
 * line:column, or the key path) of what is wrong. */
struct cg_calendar *cg_calendar_load(const char *path, const char *tz, int64_t slack, char *err,
                                     size_t errsz);
void cg_calendar_destroy(struct cg_calendar *cal); /* accepts NULL */

/* 1 when name is a zone of the tz database (or "UTC"). */
int cg_calendar_zone_valid(const char *name);

/* The schedule of instrument name: the first whose pattern matches, else the 24/7 one.
 * Borrowed, valid as long as the calendar. */
struct cg_cal_sched *cg_calendar_match(struct cg_calendar *cal, const char *name);

/* Finds ts's session. Returns 1 (w filled: in a session, or within slack ms of one edge: the
 * nearer edge wins), 0 when ts is outside every session, or -1 on OOM (window not computed). */
int cg_cal_locate(struct cg_cal_sched *s, int64_t slack, int64_t ts, struct cg_cal_where *w);

/* Bucket [*t, *end) of w for interval ms: whole days (ms a multiple of a day) are the trading
 * day (t: its label, end: its close); shorter intervals count from the session's open and end
 * at its close at the latest. */
void cg_cal_bucket(const struct cg_cal_where *w, int64_t ms, int64_t *t, int64_t *end);

/* Days since 1970-01-01 of a civil date, and back (proleptic Gregorian). */
int32_t cg_calendar_days(int y, int m, int d);
void cg_calendar_civil(int32_t days, int *y, int *m, int *d);

#endif
