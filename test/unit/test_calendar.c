/* test_calendar.c -- unit tests of trading calendars (gateway/calendar.h) and of bars that
 * follow them (chart.h with a calendar): a night session across midnight, the breaks, Friday
 * night to Monday, a non-trading date, America/Chicago's 17:00-16:00 across the DST change,
 * slack at the edges, the 24/7 default, late ticks inside and beyond the grace, timer-closed
 * bars, and the sessions file's errors (file and position in one line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calendar.h"
#include "chart.h"
#include "check.h"
#include "frame.h"

#define MIN 60000LL
#define HOUR 3600000LL
#define DAY 86400000LL

/* Epoch ms of a UTC civil time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    return (int64_t)cg_calendar_days(y, mo, d) * DAY + h * HOUR + mi * MIN;
}

/* Shanghai is UTC+8 without daylight saving. */
static int64_t cst(int y, int mo, int d, int h, int mi)
{
    return utc(y, mo, d, h, mi) - 8 * HOUR;
}

static char tmp_path[64];

static const char *write_file(const char *text)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/cg-cal-XXXXXX");
    int fd = mkstemp(tmp_path);
    if (fd < 0)
        return NULL;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? tmp_path : NULL;
}

static const char cn_file[] =
    "{\"holidays\": [\"2024-11-20\"],\n"
    " \"calendars\": [\n"
    "  {\"name\": \"shfe-2300\", \"instruments\": [\"rb*\", \"hc*\"],\n"
    "   \"night\": [[\"21:00\",\"23:00\"]],\n"
    "   \"day\": [[\"09:00\",\"10:15\"],[\"10:30\",\"11:30\"],[\"13:30\",\"15:00\"]]},\n"
    "  {\"name\": \"shfe-0100\", \"instruments\": [\"cu*\"],\n"
    "   \"night\": [[\"21:00\",\"01:00\"]],\n"
    "   \"day\": [[\"09:00\",\"10:15\"],[\"10:30\",\"11:30\"],[\"13:30\",\"15:00\"]]},\n"
    "  {\"name\": \"cffex\", \"instruments\": [\"IF*\"],\n"
    "   \"day\": [[\"09:30\",\"11:30\"],[\"13:00\",\"15:00\"]]}\n"
    " ]}\n";

static struct cg_calendar *load(const char *text, const char *tz, int64_t slack)
{
    char err[512];
    const char *p = write_file(text);
    struct cg_calendar *cal = p ? cg_calendar_load(p, tz, slack, err, sizeof(err)) : NULL;
    if (!cal)
        fprintf(stderr, "load: %s\n", p ? err : "cannot write a temporary file");
    if (p)
        unlink(p);
    return cal;
}

static void expect_where(struct cg_cal_sched *s, int64_t slack, int64_t ts, int64_t open,
                         int64_t close, int64_t day, int line)
{
    struct cg_cal_where w;
    if (!check_int_(cg_cal_locate(s, slack, ts, &w), 1, __FILE__, line, "locate", "1"))
        return;
    check_int_(w.open, open, __FILE__, line, "open", "expected");
    check_int_(w.close, close, __FILE__, line, "close", "expected");
    check_int_(w.day, day, __FILE__, line, "day", "expected");
}
#define EXPECT_WHERE(s, slack, ts, open, close, day)                                               \
    expect_where((s), (slack), (ts), (open), (close), (day), __LINE__)

static void expect_bucket(struct cg_cal_sched *s, int64_t slack, int64_t ts, int64_t ms, int64_t t,
                          int64_t end, int line)
{
    struct cg_cal_where w;
    if (!check_int_(cg_cal_locate(s, slack, ts, &w), 1, __FILE__, line, "locate", "1"))
        return;
    int64_t bt, be;
    cg_cal_bucket(&w, ms, &bt, &be);
    check_int_(bt, t, __FILE__, line, "bucket t", "expected");
    check_int_(be, end, __FILE__, line, "bucket end", "expected");
}
#define EXPECT_BUCKET(s, slack, ts, ms, t, end)                                                    \
    expect_bucket((s), (slack), (ts), (ms), (t), (end), __LINE__)

static void expect_off(struct cg_cal_sched *s, int64_t slack, int64_t ts, int line)
{
    struct cg_cal_where w;
    check_int_(cg_cal_locate(s, slack, ts, &w), 0, __FILE__, line, "locate (off-session)", "0");
}
#define EXPECT_OFF(s, slack, ts) expect_off((s), (slack), (ts), __LINE__)

static void test_civil(void)
{
    CHECK_INT(cg_calendar_days(1970, 1, 1), 0);
    CHECK_INT(cg_calendar_days(2024, 11, 22), 20049);
    CHECK_INT(cg_calendar_days(1969, 12, 31), -1);
    for (int32_t d = -800; d < 30000; d += 37) {
        int y, m, dd;
        cg_calendar_civil(d, &y, &m, &dd);
        CHECK_INT(cg_calendar_days(y, m, dd), d);
    }
}

/* rb: night 21:00-23:00 on the previous trading day, then 09:00-10:15, 10:30-11:30,
 * 13:30-15:00. Week of Monday 2024-11-18; Wednesday 11-20 is made a holiday. */
static void test_cn_sessions(void)
{
    struct cg_calendar *cal = load(cn_file, "Asia/Shanghai", 0);
    if (!CHECK(cal != NULL))
        return;
    struct cg_cal_sched *rb = cg_calendar_match(cal, "rb2501");
    CHECK_STR(rb->name, "shfe-2300");
    CHECK_STR(cg_calendar_match(cal, "cu2501")->name, "shfe-0100");
    CHECK_STR(cg_calendar_match(cal, "zz2501")->name, "24/7");
    CHECK(cal->active);

    /* Monday night belongs to Tuesday: labelled Tuesday's local midnight */
    int64_t tue = cst(2024, 11, 19, 0, 0);
    EXPECT_WHERE(rb, 0, cst(2024, 11, 18, 21, 30), cst(2024, 11, 18, 21, 0),
                 cst(2024, 11, 18, 23, 0), tue);
    EXPECT_WHERE(rb, 0, cst(2024, 11, 19, 9, 0), cst(2024, 11, 19, 9, 0), cst(2024, 11, 19, 10, 15),
                 tue);
    struct cg_cal_where w;
    CHECK_INT(cg_cal_locate(rb, 0, cst(2024, 11, 19, 14, 0), &w), 1);
    CHECK_INT(w.day_open, cst(2024, 11, 18, 21, 0));
    CHECK_INT(w.day_close, cst(2024, 11, 19, 15, 0));
    /* the 1d bar: Tuesday, from Monday 21:00 to Tuesday 15:00 */
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 18, 22, 0), DAY, tue, cst(2024, 11, 19, 15, 0));
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 19, 14, 59), DAY, tue, cst(2024, 11, 19, 15, 0));

    /* 1h buckets from each session's open, cut at the breaks */
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 19, 9, 59), HOUR, cst(2024, 11, 19, 9, 0),
                  cst(2024, 11, 19, 10, 0));
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 19, 10, 5), HOUR, cst(2024, 11, 19, 10, 0),
                  cst(2024, 11, 19, 10, 15));
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 19, 10, 30), HOUR, cst(2024, 11, 19, 10, 30),
                  cst(2024, 11, 19, 11, 30));
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 19, 14, 45), HOUR, cst(2024, 11, 19, 14, 30),
                  cst(2024, 11, 19, 15, 0));
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 19, 10, 14) + 59999, 15 * MIN, cst(2024, 11, 19, 10, 0),
                  cst(2024, 11, 19, 10, 15));
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 18, 22, 59), HOUR, cst(2024, 11, 18, 22, 0),
                  cst(2024, 11, 18, 23, 0));
    /* the breaks and the night gap, without slack */
    EXPECT_OFF(rb, 0, cst(2024, 11, 19, 10, 15));
    EXPECT_OFF(rb, 0, cst(2024, 11, 19, 12, 0));
    EXPECT_OFF(rb, 0, cst(2024, 11, 19, 8, 59));
    EXPECT_OFF(rb, 0, cst(2024, 11, 18, 23, 0));
    EXPECT_OFF(rb, 0, cst(2024, 11, 19, 3, 0));
    /* with a minute of slack: the edges join the nearest session, the middle does not */
    EXPECT_BUCKET(rb, MIN, cst(2024, 11, 19, 8, 59), MIN, cst(2024, 11, 19, 9, 0),
                  cst(2024, 11, 19, 9, 1));
    EXPECT_BUCKET(rb, MIN, cst(2024, 11, 19, 10, 15) + 500, MIN, cst(2024, 11, 19, 10, 14),
                  cst(2024, 11, 19, 10, 15));
    EXPECT_BUCKET(rb, MIN, cst(2024, 11, 19, 15, 0) + 59999, HOUR, cst(2024, 11, 19, 14, 30),
                  cst(2024, 11, 19, 15, 0));
    EXPECT_OFF(rb, MIN, cst(2024, 11, 19, 15, 1));
    EXPECT_OFF(rb, MIN, cst(2024, 11, 19, 10, 20));

    /* Wednesday is a holiday: no Tuesday night, no Wednesday; Thursday starts at 09:00 */
    EXPECT_OFF(rb, 0, cst(2024, 11, 19, 21, 30));
    EXPECT_OFF(rb, 0, cst(2024, 11, 20, 9, 30));
    EXPECT_OFF(rb, 0, cst(2024, 11, 20, 21, 30) - DAY); /* same evening, again */
    int64_t thu = cst(2024, 11, 21, 0, 0);
    EXPECT_WHERE(rb, 0, cst(2024, 11, 21, 9, 30), cst(2024, 11, 21, 9, 0),
                 cst(2024, 11, 21, 10, 15), thu);
    CHECK_INT(cg_cal_locate(rb, 0, cst(2024, 11, 21, 9, 30), &w), 1);
    CHECK_INT(w.day_open, cst(2024, 11, 21, 9, 0));
    /* but Wednesday night (before Thursday? no: before Friday) trades: Thursday 21:00 is Friday's
     */
    EXPECT_WHERE(rb, 0, cst(2024, 11, 21, 21, 0), cst(2024, 11, 21, 21, 0),
                 cst(2024, 11, 21, 23, 0), cst(2024, 11, 22, 0, 0));

    /* Friday night belongs to Monday; the weekend makes no bar */
    int64_t mon = cst(2024, 11, 25, 0, 0);
    EXPECT_WHERE(rb, 0, cst(2024, 11, 22, 22, 0), cst(2024, 11, 22, 21, 0),
                 cst(2024, 11, 22, 23, 0), mon);
    EXPECT_BUCKET(rb, 0, cst(2024, 11, 22, 22, 0), DAY, mon, cst(2024, 11, 25, 15, 0));
    EXPECT_OFF(rb, 0, cst(2024, 11, 23, 10, 0));
    EXPECT_OFF(rb, 0, cst(2024, 11, 24, 21, 30));

    /* cu: the night runs past midnight into the next calendar day */
    struct cg_cal_sched *cu = cg_calendar_match(cal, "cu2501");
    EXPECT_WHERE(cu, 0, cst(2024, 11, 22, 0, 30), cst(2024, 11, 21, 21, 0), cst(2024, 11, 22, 1, 0),
                 cst(2024, 11, 22, 0, 0));
    EXPECT_BUCKET(cu, 0, cst(2024, 11, 22, 0, 59), HOUR, cst(2024, 11, 22, 0, 0),
                  cst(2024, 11, 22, 1, 0));
    EXPECT_BUCKET(cu, 0, cst(2024, 11, 21, 23, 59), 4 * HOUR, cst(2024, 11, 21, 21, 0),
                  cst(2024, 11, 22, 1, 0));
    /* Friday night to Saturday 01:00 is Monday's */
    EXPECT_WHERE(cu, 0, cst(2024, 11, 23, 0, 30), cst(2024, 11, 22, 21, 0), cst(2024, 11, 23, 1, 0),
                 mon);
    EXPECT_OFF(cu, 0, cst(2024, 11, 23, 1, 0));

    /* IF: no night; the day starts at 09:30 */
    struct cg_cal_sched *ix = cg_calendar_match(cal, "IF2412");
    EXPECT_BUCKET(ix, 0, cst(2024, 11, 22, 9, 45), DAY, cst(2024, 11, 22, 0, 0),
                  cst(2024, 11, 22, 15, 0));
    EXPECT_BUCKET(ix, 0, cst(2024, 11, 22, 11, 15), HOUR, cst(2024, 11, 22, 10, 30),
                  cst(2024, 11, 22, 11, 30));
    EXPECT_OFF(ix, 0, cst(2024, 11, 22, 21, 30));

    /* far in the past and back: the window follows */
    EXPECT_WHERE(rb, 0, cst(2020, 3, 3, 9, 5), cst(2020, 3, 3, 9, 0), cst(2020, 3, 3, 10, 15),
                 cst(2020, 3, 3, 0, 0));
    EXPECT_WHERE(rb, 0, cst(2024, 11, 19, 9, 5), cst(2024, 11, 19, 9, 0), cst(2024, 11, 19, 10, 15),
                 tue);
    cg_calendar_destroy(cal);
}

/* CME-style: trading day D runs from 17:00 on D-1 to 16:00 on D, Chicago time. The US
 * switched to daylight saving on Sunday 2024-03-10 02:00 (CST -6 -> CDT -5). */
static void test_chicago_dst(void)
{
    const char *text = "{\"calendars\": [{\"instruments\": [\"ES*\"], \"timezone\": "
                       "\"America/Chicago\", \"night\": [[\"17:00\",\"16:00\"]], "
                       "\"night_on\": \"previous_day\"},\n"
                       "{\"instruments\": [\"X*\"], \"timezone\": \"America/Chicago\", "
                       "\"night\": [[\"17:00\",\"16:00\"]], \"night_on\": \"previous_day\", "
                       "\"weekdays\": [1,2,3,4,5,6,7]}]}";
    struct cg_calendar *cal = load(text, "UTC", 0);
    if (!CHECK(cal != NULL))
        return;
    struct cg_cal_sched *es = cg_calendar_match(cal, "ESH4");
    /* Friday 03-08: Thursday 17:00 CST (23:00Z) to Friday 16:00 CST (22:00Z) */
    EXPECT_WHERE(es, 0, utc(2024, 3, 8, 12, 0), utc(2024, 3, 7, 23, 0), utc(2024, 3, 8, 22, 0),
                 utc(2024, 3, 8, 6, 0));
    /* Monday 03-11: Sunday 17:00 CDT (22:00Z) to Monday 16:00 CDT (21:00Z); label 05:00Z */
    EXPECT_WHERE(es, 0, utc(2024, 3, 10, 22, 0), utc(2024, 3, 10, 22, 0), utc(2024, 3, 11, 21, 0),
                 utc(2024, 3, 11, 5, 0));
    EXPECT_BUCKET(es, 0, utc(2024, 3, 11, 14, 10), HOUR, utc(2024, 3, 11, 14, 0),
                  utc(2024, 3, 11, 15, 0));
    EXPECT_BUCKET(es, 0, utc(2024, 3, 11, 20, 59), DAY, utc(2024, 3, 11, 5, 0),
                  utc(2024, 3, 11, 21, 0));
    EXPECT_OFF(es, 0, utc(2024, 3, 10, 21, 59)); /* Sunday 16:59 CDT */
    EXPECT_OFF(es, 0, utc(2024, 3, 8, 22, 0));   /* Friday 16:00 CST: the weekend */
    EXPECT_OFF(es, 0, utc(2024, 3, 11, 21, 30)); /* the daily break, 16:00-17:00 */
    /* every day a trading day: Sunday 03-10's session spans the change and is 22 hours */
    struct cg_cal_sched *x = cg_calendar_match(cal, "X1");
    EXPECT_WHERE(x, 0, utc(2024, 3, 10, 8, 0), utc(2024, 3, 9, 23, 0), utc(2024, 3, 10, 21, 0),
                 utc(2024, 3, 10, 6, 0));
    EXPECT_BUCKET(x, 0, utc(2024, 3, 10, 8, 30), HOUR, utc(2024, 3, 10, 8, 0),
                  utc(2024, 3, 10, 9, 0));
    /* and back in November (Sunday 11-03 02:00 CDT -> CST): 24 + 1 hours less the break */
    EXPECT_WHERE(x, 0, utc(2024, 11, 3, 12, 0), utc(2024, 11, 2, 22, 0), utc(2024, 11, 3, 22, 0),
                 utc(2024, 11, 3, 5, 0));
    cg_calendar_destroy(cal);
}

/* No file, UTC: every bucket is the epoch-aligned one; another zone moves only the day. */
static void test_all_week(void)
{
    char err[256];
    struct cg_calendar *cal = cg_calendar_load(NULL, "UTC", 0, err, sizeof(err));
    if (!CHECK(cal != NULL))
        return;
    CHECK(!cal->active);
    struct cg_cal_sched *s = cg_calendar_match(cal, "anything");
    const int64_t ms[] = {1000, MIN, 5 * MIN, 15 * MIN, HOUR, DAY};
    for (int64_t ts = utc(2024, 11, 22, 0, 0) - 3 * DAY; ts < utc(2024, 11, 22, 0, 0) + 3 * DAY;
         ts += 7777777) {
        for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
            int64_t t0 = ts - ts % ms[i];
            EXPECT_BUCKET(s, 0, ts, ms[i], t0, t0 + ms[i]);
        }
    }
    cg_calendar_destroy(cal);
    cal = cg_calendar_load(NULL, "Asia/Shanghai", 0, err, sizeof(err));
    if (!CHECK(cal != NULL))
        return;
    CHECK(cal->active);
    s = cg_calendar_match(cal, "x");
    EXPECT_BUCKET(s, 0, cst(2024, 11, 23, 3, 0), DAY, cst(2024, 11, 23, 0, 0),
                  cst(2024, 11, 24, 0, 0));
    EXPECT_BUCKET(s, 0, cst(2024, 11, 23, 3, 7), MIN, cst(2024, 11, 23, 3, 7),
                  cst(2024, 11, 23, 3, 8));
    cg_calendar_destroy(cal);
}

static void expect_error(const char *text, const char *tz, const char *needle, int line)
{
    char err[512] = "";
    const char *p = write_file(text);
    struct cg_calendar *cal = p ? cg_calendar_load(p, tz, 0, err, sizeof(err)) : NULL;
    check_(cal == NULL, __FILE__, line, "load refused");
    cg_calendar_destroy(cal);
    if (!check_(strstr(err, needle) != NULL, __FILE__, line, "error names the position"))
        fprintf(stderr, "    got: %s\n    expected to contain: %s\n", err, needle);
    check_(p && strstr(err, p) != NULL, __FILE__, line, "error names the file");
    check_(strchr(err, '\n') == NULL, __FILE__, line, "one line");
    if (p)
        unlink(p);
}
#define EXPECT_ERROR(text, needle) expect_error((text), "UTC", (needle), __LINE__)

static void test_file_errors(void)
{
    EXPECT_ERROR("{\"calendars\": [\n  {\"instruments\": [\"a*\"],,}]}", ":2:");
    EXPECT_ERROR("{\"calendars\": []}", "calendars: expected a non-empty array");
    EXPECT_ERROR("{\"calendar\": []}", "calendar: unknown key");
    EXPECT_ERROR("{\"cal\\nendar\\r\": []}", "cal?endar?: unknown key"); /* one line */
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"], \"day\": [[\"09:00\",\"9:30\"]]}]}",
                 "calendars[0].day[0]: expected");
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"], \"day\": [[\"10:00\",\"09:30\"]]}]}",
                 "calendars[0].day[0]: a day session ends after it starts");
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"], \"day\": [[\"09:00\",\"10:00\"],"
                 "[\"09:30\",\"11:00\"]]}]}",
                 "calendars[0].day[1]: sessions overlap");
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"], \"day\": [[\"09:00\",\"10:00\"]]},"
                 "{\"instruments\": [], \"day\": [[\"09:00\",\"10:00\"]]}]}",
                 "calendars[1].instruments");
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"], \"timezone\": \"Mars/Olympus\", "
                 "\"day\": [[\"09:00\",\"10:00\"]]}]}",
                 "calendars[0].timezone");
    EXPECT_ERROR("{\"holidays\": [\"2024-02-30\"], \"calendars\": [{\"instruments\": [\"a*\"], "
                 "\"day\": [[\"09:00\",\"10:00\"]]}]}",
                 "holidays[0]: expected a date");
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"], \"night\": [[\"21:00\",\"10:00\"]], "
                 "\"day\": [[\"09:00\",\"15:00\"]]}]}",
                 "calendars[0].night: the night must lie");
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"], \"day\": [[\"09:00\",\"10:00\"]], "
                 "\"night_on\": \"friday\"}]}",
                 "calendars[0].night_on");
    EXPECT_ERROR("{\"calendars\": [{\"instruments\": [\"a*\"]}]}", "calendars[0]: expected");
    char err[256];
    CHECK(cg_calendar_load("/nonexistent/sessions.json", "UTC", 0, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/sessions.json") != NULL);
    CHECK(cg_calendar_load(NULL, "Asia/Nowhere", 0, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "--timezone") != NULL);
    CHECK(!cg_calendar_zone_valid("../../etc/passwd"));
    CHECK(!cg_calendar_zone_valid(""));
    CHECK(cg_calendar_zone_valid("UTC"));
    CHECK(cg_calendar_zone_valid("America/Chicago"));
}

/* ---- bars through the chart, with a calendar --------------------------------------------- */

static int feed(struct cg_chart *c, const struct cg_config *cfg, uint64_t seq, int64_t ts,
                double price, double vol, int64_t now, struct cg_chart_event *ev)
{
    char text[160];
    int len = snprintf(text, sizeof(text), "{\"last_price\":%g,\"volume\":%g,\"ts\":%lld}", price,
                       vol, (long long)ts);
    json_t *data = json_loads(text, 0, NULL);
    struct cg_frame *f = cg_frame_alloc(16);
    int n = cg_chart_tick(c, cfg, seq, data, text, (size_t)len, f, now, ev);
    cg_frame_unref(f);
    json_decref(data);
    return n;
}

static int count_kind(const struct cg_chart_event *ev, int n, uint32_t interval,
                      enum cg_bar_event_kind kind)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += ev[i].interval == interval && ev[i].ev.kind == kind;
    return k;
}

static void test_chart_grace_and_timer(void)
{
    struct cg_config cfg;
    char err[256];
    char *argv[] = {"test", "--intervals=1m,1h,1d", "--bar-close-grace-ms=2000",
                    "--session-slack-ms=60000", NULL};
    if (!CHECK(cg_config_load(&cfg, 4, argv, "web", err, sizeof(err), NULL) == CG_CONFIG_OK))
        return;
    struct cg_calendar *cal = load(cn_file, "Asia/Shanghai", 60000);
    if (!CHECK(cal != NULL))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 0);
    cg_chart_set_calendar(c, cal, "rb2501");
    CHECK(c->sched == cg_calendar_match(cal, "rb2501"));
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    int64_t m0 = cst(2024, 11, 19, 10, 13); /* live: the wall clock follows the ticks */
    CHECK_INT(feed(c, &cfg, 1, m0 + 1000, 100, 1, m0 + 1010, ev), 3);
    CHECK_INT(ev[1].ev.bar.t, cst(2024, 11, 19, 10, 0)); /* 1h */
    CHECK_INT(ev[2].ev.bar.t, cst(2024, 11, 19, 0, 0));  /* 1d: Tuesday */
    CHECK_INT(cg_series_due(&c->series[0]), m0 + MIN + 2000);
    /* the 1h bar ends at the break: due after the slack too */
    CHECK_INT(cg_series_due(&c->series[1]), cst(2024, 11, 19, 10, 15) + 60000 + 2000);
    /* the next minute closes the 1m bar (a tick-driven close) */
    CHECK_INT(feed(c, &cfg, 2, m0 + MIN + 500, 101, 1, m0 + MIN + 510, ev), 4);
    CHECK_INT(count_kind(ev, 4, 0, CG_BAR_CLOSED), 1);
    /* a late tick inside the grace corrects the closed bar */
    CHECK_INT(feed(c, &cfg, 3, m0 + 30000, 99, 1, m0 + MIN + 1500, ev), 3);
    CHECK_INT(count_kind(ev, 3, 0, CG_BAR_CORRECTED), 1);
    CHECK(ev[0].ev.bar.l == 99 && ev[0].ev.bar.c == 100);
    /* beyond the grace it is ignored and counted (in 1m; 1h and 1d still take it) */
    uint64_t late = c->late_ignored;
    CHECK_INT(feed(c, &cfg, 4, m0 + 40000, 98, 1, m0 + MIN + 2000, ev), 2);
    CHECK_INT(c->late_ignored, late + 1);
    /* the 10:14 bar ends at the break: the timer waits for the slack too */
    int64_t end = cst(2024, 11, 19, 10, 15);
    CHECK_INT(cg_chart_expire(c, end + 2000, ev), 0);
    /* a tick in the slack after the close goes into the last bars */
    CHECK_INT(feed(c, &cfg, 5, end + 30000, 103, 1, end + 30010, ev), 3);
    CHECK_INT(count_kind(ev, 3, 0, CG_BAR_UPDATED), 1);
    CHECK_INT(ev[0].ev.bar.t, cst(2024, 11, 19, 10, 14));
    CHECK(ev[0].ev.bar.h == 103 && ev[0].ev.bar.c == 103);
    /* no later tick: the timer closes both at the close + slack + grace, once */
    CHECK_INT(cg_chart_expire(c, end + 61999, ev), 0);
    CHECK_INT(cg_chart_expire(c, end + 62000, ev), 2);
    CHECK_INT(ev[0].interval, 0);
    CHECK_INT(ev[0].ev.kind, CG_BAR_CLOSED);
    CHECK_INT(ev[0].ev.bar.t, cst(2024, 11, 19, 10, 14));
    CHECK_INT(ev[1].interval, 1);
    CHECK_INT(ev[1].ev.bar.t, cst(2024, 11, 19, 10, 0));
    CHECK_INT(cg_chart_expire(c, end + 62000, ev), 0);
    /* in the break, beyond the slack: relayed, no bar, counted */
    uint64_t off = c->off_session;
    CHECK_INT(feed(c, &cfg, 6, end + 5 * MIN, 104, 1, end + 5 * MIN, ev), 0);
    CHECK_INT(c->off_session, off + 1);
    /* mid-session, a quiet minute closes at its end + grace with no later tick */
    int64_t m1 = cst(2024, 11, 19, 10, 31);
    CHECK_INT(feed(c, &cfg, 7, m1 + 5000, 105, 1, m1 + 5010, ev), 3);
    CHECK_INT(cg_chart_expire(c, m1 + MIN + 1999, ev), 0);
    CHECK_INT(cg_chart_expire(c, m1 + MIN + 2000, ev), 1);
    CHECK_INT(ev[0].ev.bar.t, m1);
    CHECK(ev[0].ev.bar.c == 105);
    /* a late tick for it after that: ignored (the 1h and 1d bars take it) */
    late = c->late_ignored;
    CHECK_INT(feed(c, &cfg, 8, m1 + 6000, 104, 1, m1 + MIN + 2100, ev), 2);
    CHECK_INT(c->late_ignored, late + 1);
    /* a replayed feed (wall clock days ahead), Thursday: the bars due meanwhile close first
     * (1h, 1d); a bar then stays open while its ticks come and closes a grace after the last
     * (the slack counts from the end, long past) */
    int64_t wall = cst(2024, 12, 1, 12, 0), r = cst(2024, 11, 21, 9, 31);
    CHECK_INT(feed(c, &cfg, 9, r, 106, 1, wall, ev), 5);
    CHECK_INT(count_kind(ev, 5, 1, CG_BAR_CLOSED), 1);
    CHECK_INT(count_kind(ev, 5, 2, CG_BAR_CLOSED), 1);
    CHECK_INT(cg_series_due(&c->series[0]), wall + 2000);
    CHECK_INT(feed(c, &cfg, 10, r + 5000, 107, 1, wall + 1500, ev), 3);
    CHECK_INT(cg_chart_expire(c, wall + 3499, ev), 0);
    CHECK_INT(cg_chart_expire(c, wall + 3500, ev), 3); /* 1m, 1h, 1d: their ends are long past */
    CHECK_INT(ev[2].ev.bar.t, cst(2024, 11, 21, 0, 0));
    CHECK(ev[2].ev.bar.o == 106 && ev[2].ev.bar.c == 107);
    cg_chart_destroy(c);
    cg_calendar_destroy(cal);
}

/* The snapshot names the instrument's zone when there is a calendar. */
static void test_snapshot_tz(void)
{
    struct cg_frame *f =
        cg_frame_snapshot_full("rb2501", 3, "{}", 2, NULL, 0, "Asia/Shanghai", NULL, 0);
    if (CHECK(f != NULL))
        CHECK_MEM(cg_frame_data(f), f->len,
                  "{\"type\":\"snapshot\",\"instrument\":\"rb2501\",\"seq\":3,\"last\":{},"
                  "\"bars\":{},\"tz\":\"Asia/Shanghai\"}");
    cg_frame_unref(f);
    f = cg_frame_snapshot_full("rb2501", 3, "{}", 2, NULL, 0, NULL, NULL, 0);
    if (CHECK(f != NULL))
        CHECK_MEM(cg_frame_data(f), f->len,
                  "{\"type\":\"snapshot\",\"instrument\":\"rb2501\",\"seq\":3,\"last\":{},"
                  "\"bars\":{}}");
    cg_frame_unref(f);
}

int main(void)
{
    test_snapshot_tz();
    test_civil();
    test_cn_sessions();
    test_chicago_dst();
    test_all_week();
    test_file_errors();
    test_chart_grace_and_timer();
    return check_summary("calendar");
}
