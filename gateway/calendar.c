/* calendar.c -- trading calendars: the sessions file, session windows from the tz database.
 *
 * Map: civil dates -> local times through TZ/mktime -> a schedule's window of spans ->
 * locating a tick and its bucket -> reading and checking the sessions file. */
#include "calendar.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ZONEINFO "/usr/share/zoneinfo"
#define WINDOW_DAYS 40 /* trading days computed each side of a tick outside the window */
#define WINDOW_MAX 400 /* a window grows up to this many days, then is recomputed around ts */
#define EVE_MAX_DAYS 8 /* a night session is at most this many days before its trading day */

/* ---- civil dates ------------------------------------------------------------------------ */

int32_t cg_calendar_days(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void cg_calendar_civil(int32_t days, int *y, int *m, int *d)
{
    days += 719468;
    int era = (days >= 0 ? days : days - 146096) / 146097;
    int doe = days - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static int weekday(int32_t days) /* 0 = Monday */
{
    int w = (days + 3) % 7;
    return w < 0 ? w + 7 : w;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- local time ------------------------------------------------------------------------- */

/* TZ is process state: set for one window computation, then put back as it was. */
struct tz_saved {
    char value[256];
    int had;
};

static void tz_enter(const char *tz, struct tz_saved *sv)
{
    const char *old = getenv("TZ");
    sv->had = old != NULL;
    snprintf(sv->value, sizeof(sv->value), "%s", old ? old : "");
    setenv("TZ", tz, 1);
    tzset();
}

static void tz_leave(const struct tz_saved *sv)
{
    if (sv->had)
        setenv("TZ", sv->value, 1);
    else
        unsetenv("TZ");
    tzset();
}

/* Epoch ms of local day + minute (minute may exceed a day: mktime normalises). A local time
 * that a daylight-saving change skips is taken as mktime takes it (moved by the change). */
static int64_t local_ms(int32_t day, int32_t minute)
{
    int y, m, d;
    cg_calendar_civil(day, &y, &m, &d);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = minute / 60;
    tm.tm_min = minute % 60;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000;
}

/* ---- schedules -------------------------------------------------------------------------- */

static int is_holiday(const struct cg_cal_sched *s, int32_t day)
{
    uint32_t lo = 0, hi = s->nholidays;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->holidays[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nholidays && s->holidays[lo] == day;
}

static int trading(const struct cg_cal_sched *s, int32_t day)
{
    return (s->weekdays & (1u << weekday(day))) && !is_holiday(s, day);
}

/* The calendar date of trading day D's night sessions, or 0 (no night) via *has. A night
 * follows the previous trading day, unless a holiday (a weekday off) lies between: exchanges
 * do not trade the evening before a holiday break. */
static int32_t eve_of(const struct cg_cal_sched *s, int32_t day, int *has)
{
    *has = 0;
    if (!s->nnight)
        return 0;
    if (s->night_prev_day) {
        *has = 1;
        return day - 1;
    }
    for (int32_t p = day - 1; p >= day - EVE_MAX_DAYS; p--) {
        if (trading(s, p)) {
            *has = 1;
            return p;
        }
        if (s->weekdays & (1u << weekday(p)))
            return 0; /* a holiday */
    }
    return 0;
}

static int push_span(struct cg_cal_span **v, size_t *n, size_t *cap, const struct cg_cal_span *sp)
{
    if (*n && sp->open < (*v)[*n - 1].close)
        return 0; /* overlaps the previous trading day (a shifted clock): the earlier wins */
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct cg_cal_span *r = realloc(*v, nc * sizeof(*r));
        if (!r)
            return -1;
        *v = r;
        *cap = nc;
    }
    (*v)[(*n)++] = *sp;
    return 0;
}

/* Computes the spans of trading days [lo, hi]. Returns 0 or -1 (OOM: the old window stays). */
static int build(struct cg_cal_sched *s, int32_t lo, int32_t hi)
{
    struct cg_cal_span *v = NULL;
    size_t n = 0, cap = 0;
    struct tz_saved sv;
    tz_enter(s->tz, &sv);
    int rc = 0;
    for (int32_t day = lo; day <= hi && rc == 0; day++) {
        if (!trading(s, day))
            continue;
        struct cg_cal_span sp[2 * CG_CALENDAR_SESSIONS_MAX];
        uint32_t k = 0;
        int has;
        int32_t eve = eve_of(s, day, &has);
        for (uint32_t i = 0; has && i < s->nnight; i++, k++) {
            sp[k].open = local_ms(eve, s->night[i][0]);
            sp[k].close = local_ms(eve, s->night[i][1]);
        }
        for (uint32_t i = 0; i < s->nday; i++, k++) {
            sp[k].open = local_ms(day, s->day[i][0]);
            sp[k].close = local_ms(day, s->day[i][1]);
        }
        if (!k)
            continue;
        int64_t label = local_ms(day, 0);
        for (uint32_t i = 0; i < k && rc == 0; i++) {
            sp[i].day = label;
            sp[i].day_open = sp[0].open;
            sp[i].day_close = sp[k - 1].close;
            if (sp[i].close > sp[i].open)
                rc = push_span(&v, &n, &cap, &sp[i]);
        }
    }
    tz_leave(&sv);
    if (rc) {
        free(v);
        return -1;
    }
    free(s->spans);
    s->spans = v;
    s->nspans = n;
    s->lo_day = lo;
    s->hi_day = hi;
    /* A span of day D lies within local dates [D - EVE_MAX_DAYS, D + 2]; zones are within a
     * day of UTC. */
    s->win_lo = ((int64_t)lo + EVE_MAX_DAYS + 2) * CG_CALENDAR_DAY_MS;
    s->win_hi = ((int64_t)hi - 3) * CG_CALENDAR_DAY_MS;
    return 0;
}

static int cover(struct cg_cal_sched *s, int64_t ts)
{
    int32_t d = (int32_t)floor_div(ts, CG_CALENDAR_DAY_MS);
    int32_t lo = d - WINDOW_DAYS, hi = d + WINDOW_DAYS;
    if (s->spans || s->hi_day > s->lo_day) { /* extend the window while it stays small */
        int32_t elo = s->lo_day < lo ? s->lo_day : lo, ehi = s->hi_day > hi ? s->hi_day : hi;
        if (ehi - elo <= WINDOW_MAX) {
            lo = elo;
            hi = ehi;
        }
    }
    return build(s, lo, hi);
}

int cg_cal_locate(struct cg_cal_sched *s, int64_t slack, int64_t ts, struct cg_cal_where *w)
{
    if ((ts < s->win_lo || ts >= s->win_hi) && cover(s, ts))
        return -1;
    size_t lo = 0, hi = s->nspans; /* the first span closing after ts */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->spans[mid].close <= ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    const struct cg_cal_span *sp = NULL;
    if (lo < s->nspans && s->spans[lo].open <= ts) {
        sp = &s->spans[lo];
        w->ts = ts;
    } else {
        const struct cg_cal_span *prev = lo ? &s->spans[lo - 1] : NULL;
        const struct cg_cal_span *next = lo < s->nspans ? &s->spans[lo] : NULL;
        int64_t after = prev ? ts - prev->close : INT64_MAX;
        int64_t before = next ? next->open - ts : INT64_MAX;
        if (after < slack && after <= before) {
            sp = prev;
            w->ts = prev->close - 1;
        } else if (before <= slack) {
            sp = next;
            w->ts = next->open;
        } else {
            return 0;
        }
    }
    w->open = sp->open;
    w->close = sp->close;
    w->day = sp->day;
    w->day_open = sp->day_open;
    w->day_close = sp->day_close;
    return 1;
}

void cg_cal_bucket(const struct cg_cal_where *w, int64_t ms, int64_t *t, int64_t *end)
{
    if (ms % CG_CALENDAR_DAY_MS == 0) {
        *t = w->day;
        *end = w->day_close;
        return;
    }
    int64_t b = w->open + (w->ts - w->open) / ms * ms;
    *t = b;
    *end = b + ms < w->close ? b + ms : w->close;
}

struct cg_cal_sched *cg_calendar_match(struct cg_calendar *cal, const char *name)
{
    for (uint32_t i = 0; i < cal->nscheds; i++) {
        struct cg_cal_sched *s = &cal->scheds[i];
        for (uint32_t j = 0; j < s->npatterns; j++)
            if (!fnmatch(s->patterns[j], name, 0))
                return s;
    }
    return &cal->all_week;
}

/* ---- the file ------------------------------------------------------------------------------ */

int cg_calendar_zone_valid(const char *name)
{
    size_t n = strlen(name);
    if (!n || n >= 64 || name[0] == '/' || strstr(name, ".."))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '/' || *p == '_' || *p == '+' || *p == '-'))
            return 0;
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", ZONEINFO, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

struct loader {
    const char *path;
    char *err;
    size_t errsz;
};

static int fail(struct loader *L, const char *where, const char *what)
{
    snprintf(L->err, L->errsz, "chartgate: --sessions: %.200s: %s: %s", L->path, where, what);
    return -1;
}

/* "HH:MM" -> minutes (24:00 allowed when end). */
static int parse_hhmm(json_t *v, int end, int32_t *out)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && (m || !end)))
        return -1;
    *out = h * 60 + m;
    return 0;
}

static int parse_date(const char *s, int32_t *out)
{
    int y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return -1;
    int32_t days = cg_calendar_days(y, m, d);
    int yy, mm, dd;
    cg_calendar_civil(days, &yy, &mm, &dd);
    if (yy != y || mm != m || dd != d)
        return -1; /* 2025-02-30 */
    *out = days;
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static int add_holidays(struct loader *L, struct cg_cal_sched *s, json_t *arr, const char *where)
{
    char pos[160];
    if (!json_is_array(arr))
        return fail(L, where, "expected an array of \"YYYY-MM-DD\" dates");
    size_t n = json_array_size(arr);
    int32_t *h = realloc(s->holidays, (s->nholidays + n + 1) * sizeof(*h));
    if (!h)
        return fail(L, where, "out of memory");
    s->holidays = h;
    for (size_t i = 0; i < n; i++) {
        snprintf(pos, sizeof(pos), "%s[%zu]", where, i);
        if (parse_date(json_string_value(json_array_get(arr, i)), &h[s->nholidays]))
            return fail(L, pos, "expected a date \"YYYY-MM-DD\"");
        s->nholidays++;
    }
    qsort(h, s->nholidays, sizeof(*h), cmp_i32);
    return 0;
}

/* Sessions [[start,end],...] into out; night: ends may pass midnight (normalised to minutes
 * from the evening's midnight, increasing). */
static int parse_sessions(struct loader *L, json_t *arr, const char *where, int night,
                          int32_t out[][2], uint32_t *n)
{
    char pos[160];
    if (!json_is_array(arr) || json_array_size(arr) > CG_CALENDAR_SESSIONS_MAX)
        return fail(L, where, "expected an array of at most 8 [\"HH:MM\",\"HH:MM\"] sessions");
    int32_t last = -1;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *p = json_array_get(arr, i);
        snprintf(pos, sizeof(pos), "%s[%zu]", where, i);
        int32_t a, b;
        if (!json_is_array(p) || json_array_size(p) != 2 ||
            parse_hhmm(json_array_get(p, 0), 0, &a) || parse_hhmm(json_array_get(p, 1), 1, &b))
            return fail(L, pos, "expected [\"HH:MM\",\"HH:MM\"] (00:00 to 24:00)");
        if (night) {
            while (a < last)
                a += 1440; /* after midnight */
            while (b <= a)
                b += 1440;
        } else if (b <= a) {
            return fail(L, pos, "a day session ends after it starts, the same day");
        }
        if (a < last)
            return fail(L, pos, "sessions overlap or are out of order");
        if (night && b - (i ? out[0][0] : a) >= 1440)
            return fail(L, pos, "the night sessions span a day or more");
        out[i][0] = a;
        out[i][1] = b;
        last = b;
    }
    *n = (uint32_t)json_array_size(arr);
    return 0;
}

static int parse_sched(struct loader *L, json_t *o, size_t idx, json_t *global_holidays,
                       const char *tz, struct cg_cal_sched *s)
{
    char where[64], pos[160];
    snprintf(where, sizeof(where), "calendars[%zu]", idx);
    if (!json_is_object(o))
        return fail(L, where, "expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "name") && strcmp(key, "instruments") && strcmp(key, "timezone") &&
            strcmp(key, "night") && strcmp(key, "day") && strcmp(key, "night_on") &&
            strcmp(key, "weekdays") && strcmp(key, "holidays")) {
            snprintf(pos, sizeof(pos), "%s.%.40s", where, key);
            return fail(L, pos, "unknown key");
        }
    }
    snprintf(s->name, sizeof(s->name), "%s",
             json_string_value(json_object_get(o, "name"))
                 ? json_string_value(json_object_get(o, "name"))
                 : where);
    json_t *tzv = json_object_get(o, "timezone");
    snprintf(s->tz, sizeof(s->tz), "%s",
             tzv ? (json_string_value(tzv) ? json_string_value(tzv) : "") : tz);
    if (!cg_calendar_zone_valid(s->tz)) {
        snprintf(pos, sizeof(pos), "%s.timezone", where);
        return fail(L, pos, "expected a zone of the tz database, like Asia/Shanghai");
    }
    json_t *ins = json_object_get(o, "instruments");
    snprintf(pos, sizeof(pos), "%s.instruments", where);
    if (!json_is_array(ins) || !json_array_size(ins))
        return fail(L, pos, "expected a non-empty array of instrument globs like \"rb*\"");
    s->patterns = calloc(json_array_size(ins), sizeof(*s->patterns));
    if (!s->patterns)
        return fail(L, pos, "out of memory");
    for (size_t i = 0; i < json_array_size(ins); i++) {
        const char *g = json_string_value(json_array_get(ins, i));
        snprintf(pos, sizeof(pos), "%s.instruments[%zu]", where, i);
        if (!g || !g[0] || strlen(g) > 64)
            return fail(L, pos, "expected a glob like \"rb*\" (1 to 64 characters)");
        if (!(s->patterns[s->npatterns++] = strdup(g)))
            return fail(L, pos, "out of memory");
    }
    json_t *night = json_object_get(o, "night"), *day = json_object_get(o, "day");
    snprintf(pos, sizeof(pos), "%s.night", where);
    if (night && parse_sessions(L, night, pos, 1, s->night, &s->nnight))
        return -1;
    snprintf(pos, sizeof(pos), "%s.day", where);
    if (day && parse_sessions(L, day, pos, 0, s->day, &s->nday))
        return -1;
    if (!s->nnight && !s->nday)
        return fail(L, where, "expected \"night\" or \"day\" sessions");
    /* A trading day's night begins after the previous day's day sessions end and ends before
     * its own begin, so spans never overlap. */
    if (s->nnight && s->nday &&
        (s->night[0][0] < s->day[s->nday - 1][1] ||
         s->night[s->nnight - 1][1] > 1440 + s->day[0][0])) {
        snprintf(pos, sizeof(pos), "%s.night", where);
        return fail(L, pos, "the night must lie between the day sessions' close and next open");
    }
    json_t *on = json_object_get(o, "night_on");
    if (on) {
        const char *t = json_string_value(on);
        snprintf(pos, sizeof(pos), "%s.night_on", where);
        if (t && !strcmp(t, "previous_trading_day"))
            s->night_prev_day = 0;
        else if (t && !strcmp(t, "previous_day"))
            s->night_prev_day = 1;
        else
            return fail(L, pos, "expected \"previous_trading_day\" or \"previous_day\"");
    }
    json_t *wd = json_object_get(o, "weekdays");
    s->weekdays = 0x1f; /* Monday to Friday */
    if (wd) {
        snprintf(pos, sizeof(pos), "%s.weekdays", where);
        if (!json_is_array(wd) || !json_array_size(wd))
            return fail(L, pos, "expected an array of ISO weekdays 1 (Monday) to 7 (Sunday)");
        s->weekdays = 0;
        for (size_t i = 0; i < json_array_size(wd); i++) {
            json_t *d = json_array_get(wd, i);
            if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > 7)
                return fail(L, pos, "expected an array of ISO weekdays 1 (Monday) to 7 (Sunday)");
            s->weekdays |= (uint8_t)(1u << (json_integer_value(d) - 1));
        }
    }
    if (global_holidays && add_holidays(L, s, global_holidays, "holidays"))
        return -1;
    json_t *hol = json_object_get(o, "holidays");
    snprintf(pos, sizeof(pos), "%s.holidays", where);
    if (hol && add_holidays(L, s, hol, pos))
        return -1;
    return 0;
}

static void sched_finish(struct cg_cal_sched *s)
{
    for (uint32_t i = 0; i < s->npatterns; i++)
        free(s->patterns[i]);
    free(s->patterns);
    free(s->holidays);
    free(s->spans);
}

void cg_calendar_destroy(struct cg_calendar *cal)
{
    if (!cal)
        return;
    for (uint32_t i = 0; i < cal->nscheds; i++)
        sched_finish(&cal->scheds[i]);
    free(cal->scheds);
    sched_finish(&cal->all_week);
    free(cal);
}

static int load_file(struct loader *L, struct cg_calendar *cal)
{
    json_error_t je;
    json_t *root = json_load_file(L->path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 0)
            snprintf(L->err, L->errsz, "chartgate: --sessions: %.200s: %.120s", L->path, je.text);
        else
            snprintf(L->err, L->errsz, "chartgate: --sessions: %.200s:%d:%d: %.120s", L->path,
                     je.line, je.column, je.text);
        return -1;
    }
    int rc = -1;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        fail(L, "top level", "expected an object with \"calendars\"");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "calendars") && strcmp(key, "holidays") && strcmp(key, "comment")) {
            fail(L, key, "unknown key");
            goto out;
        }
    }
    json_t *arr = json_object_get(root, "calendars");
    json_t *hol = json_object_get(root, "holidays");
    if (!json_is_array(arr) || !json_array_size(arr)) {
        fail(L, "calendars", "expected a non-empty array");
        goto out;
    }
    if (hol && !json_is_array(hol)) {
        fail(L, "holidays", "expected an array of \"YYYY-MM-DD\" dates");
        goto out;
    }
    cal->scheds = calloc(json_array_size(arr), sizeof(*cal->scheds));
    if (!cal->scheds) {
        fail(L, "calendars", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        cal->nscheds++;
        if (parse_sched(L, json_array_get(arr, i), i, hol, cal->tz, &cal->scheds[i]))
            goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The error is one line whatever the file held: keys and jansson's context are echoed in it. */
static void one_line(char *err)
{
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

struct cg_calendar *cg_calendar_load(const char *path, const char *tz, int64_t slack, char *err,
                                     size_t errsz)
{
    if (!cg_calendar_zone_valid(tz)) {
        snprintf(err, errsz,
                 "chartgate: --timezone: expected a zone of the tz database (" ZONEINFO
                 "), like Asia/Shanghai or UTC, got \"%.64s\"",
                 tz);
        one_line(err);
        return NULL;
    }
    struct cg_calendar *cal = calloc(1, sizeof(*cal));
    if (!cal) {
        snprintf(err, errsz, "chartgate: --sessions: out of memory");
        return NULL;
    }
    snprintf(cal->tz, sizeof(cal->tz), "%s", tz);
    cal->slack = slack;
    cal->active = (path && path[0]) || strcmp(tz, "UTC") != 0;
    struct cg_cal_sched *a = &cal->all_week;
    snprintf(a->name, sizeof(a->name), "24/7");
    snprintf(a->tz, sizeof(a->tz), "%s", tz);
    a->weekdays = 0x7f;
    a->nday = 1;
    a->day[0][0] = 0;
    a->day[0][1] = 1440;
    struct loader L = {path, err, errsz};
    if (path && path[0] && load_file(&L, cal)) {
        one_line(err);
        cg_calendar_destroy(cal);
        return NULL;
    }
    return cal;
}
