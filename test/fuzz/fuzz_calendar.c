/* fuzz_calendar.c -- cg_calendar_load and cg_cal_locate (gateway/calendar.h) over a hostile
 * --sessions file.
 *
 * Input: the file's bytes, written to a memfd and loaded as /proc/self/fd/N in
 * Asia/Shanghai with a minute of slack. A refused file must give one printable line naming
 * the file. An accepted one is then asked for timestamps over two weeks of 2024 (and one far
 * away, which moves the window): every tick found in a session must lie in it after clamping,
 * inside its trading day, and in a bucket that contains it and ends by the session's close. */
#include <sys/mman.h>
#include <unistd.h>

#include "calendar.h"
#include "fuzz_common.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("chartgate-fuzz-calendar", 0);
    FUZZ_CHECK(fd >= 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

static void check_where(struct cg_cal_sched *s, int64_t slack, int64_t ts)
{
    static const int64_t ms[] = {1000, 60000, 300000, 3600000, 7 * 3600000, 86400000};
    struct cg_cal_where w;
    int r = cg_cal_locate(s, slack, ts, &w);
    FUZZ_CHECK(r == 0 || r == 1);
    if (r != 1)
        return;
    FUZZ_CHECK(w.open <= w.ts && w.ts < w.close);
    FUZZ_CHECK(w.ts == ts || (ts < w.open && w.open - ts <= slack) ||
               (ts >= w.close && ts - w.close < slack));
    FUZZ_CHECK(w.day_open <= w.open && w.close <= w.day_close);
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        int64_t t, end;
        cg_cal_bucket(&w, ms[i], &t, &end);
        if (ms[i] % CG_CALENDAR_DAY_MS == 0) {
            FUZZ_CHECK(t == w.day && end == w.day_close);
        } else {
            FUZZ_CHECK(w.open <= t && t <= w.ts && w.ts < end && end <= w.close);
            FUZZ_CHECK(end - t <= ms[i]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
    char err[512];
    struct cg_calendar *cal = cg_calendar_load(path, "Asia/Shanghai", 60000, err, sizeof(err));
    if (!cal) {
        FUZZ_CHECK(strstr(err, "chartgate: --sessions: ") == err);
        FUZZ_CHECK(strstr(err, path) != NULL);
        for (const char *p = err; *p; p++)
            FUZZ_CHECK(*p != '\n' && *p != '\r');
        return 0;
    }
    const int64_t t0 = 1731888000000; /* 2024-11-18 00:00 UTC, a Monday */
    for (uint32_t i = 0; i <= cal->nscheds; i++) {
        struct cg_cal_sched *s = i < cal->nscheds ? &cal->scheds[i] : &cal->all_week;
        for (int64_t ts = t0; ts < t0 + 14 * CG_CALENDAR_DAY_MS; ts += 7 * 60000 + 13)
            check_where(s, cal->slack, ts);
        check_where(s, cal->slack, t0 + 3000LL * CG_CALENDAR_DAY_MS);
        check_where(s, 0, t0 + 5 * CG_CALENDAR_DAY_MS);
    }
    cg_calendar_destroy(cal);
    return 0;
}
