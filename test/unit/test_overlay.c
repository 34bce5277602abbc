/* test_overlay.c -- unit tests of gateway/overlay.h: the function library's text, the check of
 * applied operations, the ring of recent operations and who may see them; and the overlay
 * frame encoders of gateway/frame.h. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "frame.h"
#include "instrument.h"
#include "overlay.h"

static void test_library(void)
{
    struct cg_config cfg;
    char err[256];
    char *argv[] = {"test",    "--overlay-max",
                    "7",       "--overlay-points",
                    "123",     "--chart-prefix",
                    "c\"h\\:", "--intervals",
                    "1m,5m",   NULL};
    CHECK(cg_config_load(&cfg, 9, argv, "web", err, sizeof(err), NULL) == CG_CONFIG_OK);
    char *lib = cg_overlay_library(&cfg);
    if (!CHECK(lib != NULL))
        return;
    CHECK(!strncmp(lib, "#!lua name=chartgate_overlays\n", 30));
    CHECK(strstr(lib, "local MAX_OVERLAYS = 7\n") != NULL);
    CHECK(strstr(lib, "local MAX_POINTS = 123\n") != NULL);
    /* the prefix as decimal escapes: a quote or a backslash cannot end the Lua string */
    CHECK(strstr(lib, "local PREFIX = \"\\099\\034\\104\\092\\058\"\n") != NULL);
    CHECK(strstr(lib, "local INTERVALS = {['1m'] = true, ['5m'] = true, }\n") != NULL);
    CHECK(strstr(lib, "redis.register_function('chartgate_overlay'") != NULL);
    CHECK(strstr(lib, "function_name = 'chartgate_overlay_read'") != NULL);
    CHECK(lib[strlen(lib) - 1] == '\n');
    free(lib);
}

static void test_config_bounds(void)
{
    struct cg_config cfg;
    char err[256];
    char *zero[] = {"test", "--overlay-max", "0", NULL};
    CHECK(cg_config_load(&cfg, 3, zero, "web", err, sizeof(err), NULL) == CG_CONFIG_ERROR);
    CHECK(strstr(err, "--overlay-max") != NULL);
    char *few[] = {"test", "--overlay-points", "9", NULL};
    CHECK(cg_config_load(&cfg, 3, few, "web", err, sizeof(err), NULL) == CG_CONFIG_ERROR);
    CHECK(strstr(err, "--overlay-points") != NULL);
    char *clash[] = {"test", "--chart-prefix", "md:chart:", NULL};
    CHECK(cg_config_load(&cfg, 3, clash, "web", err, sizeof(err), NULL) == CG_CONFIG_ERROR);
    CHECK(strstr(err, "--chart-prefix") != NULL && strstr(err, "--md-prefix") != NULL);
    char *empty[] = {"test", "--chart-prefix", "", NULL};
    CHECK(cg_config_load(&cfg, 3, empty, "web", err, sizeof(err), NULL) == CG_CONFIG_ERROR);
    char *user[] = {"test", "--chart-prefix", "use", NULL};
    CHECK(cg_config_load(&cfg, 3, user, "web", err, sizeof(err), NULL) == CG_CONFIG_ERROR);
    CHECK(strstr(err, "--user-prefix") != NULL);
    char *none[] = {"test", NULL};
    CHECK(cg_config_load(&cfg, 1, none, "web", err, sizeof(err), NULL) == CG_CONFIG_OK);
    CHECK(!strcmp(cfg.chart_prefix, "chart:"));
    CHECK_UINT(cfg.overlay_max, 32);
    CHECK_UINT(cfg.overlay_points, 1000);
}

static void test_key(void)
{
    char key[CG_OVERLAY_KEY_MAX];
    CHECK_UINT(cg_overlay_key("rb2501", key), 17);
    CHECK(!strcmp(key, "overlays:{rb2501}"));
    char longest[CG_INSTRUMENT_MAX + 1];
    memset(longest, 'a', CG_INSTRUMENT_MAX);
    longest[CG_INSTRUMENT_MAX] = 0;
    CHECK_UINT(cg_overlay_key(longest, key), 11 + CG_INSTRUMENT_MAX);
}

static int check_text(const char *text, uint64_t *v, const char **user, const char **why)
{
    json_t *o = json_loads(text, JSON_DECODE_ANY, NULL);
    struct cg_overlay_op op;
    int rc = cg_overlay_check(o, &op, why);
    *v = op.v;
    *user = op.user ? "set" : NULL;
    json_decref(o);
    return rc;
}

static void test_check(void)
{
    uint64_t v;
    const char *user, *why;
    CHECK(check_text("{\"op\":\"set\",\"overlay\":\"a\",\"v\":3}", &v, &user, &why) == 0);
    CHECK_UINT(v, 3);
    CHECK(user == NULL);
    CHECK(check_text("{\"op\":\"remove\",\"overlay\":\"a\",\"user\":\"u1\",\"v\":1}", &v, &user,
                     &why) == 0);
    CHECK(user != NULL);
    CHECK(check_text("{\"op\":\"append\",\"overlay\":\"a\",\"v\":9007199254740993}", &v, &user,
                     &why) == 0);
    const char *bad[] = {
        "[1]",
        "{\"op\":\"sync\",\"overlay\":\"a\",\"v\":1}",
        "{\"overlay\":\"a\",\"v\":1}",
        "{\"op\":\"set\",\"v\":1}",
        "{\"op\":\"set\",\"overlay\":1,\"v\":1}",
        "{\"op\":\"set\",\"overlay\":\"a\"}",
        "{\"op\":\"set\",\"overlay\":\"a\",\"v\":0}",
        "{\"op\":\"set\",\"overlay\":\"a\",\"v\":-4}",
        "{\"op\":\"set\",\"overlay\":\"a\",\"v\":1.5}",
        "{\"op\":\"set\",\"overlay\":\"a\",\"v\":\"1\"}",
        "{\"op\":\"set\",\"overlay\":\"a\",\"v\":1,\"user\":\"\"}",
        "{\"op\":\"set\",\"overlay\":\"a\",\"v\":1,\"user\":7}",
        "{\"op\":\"set\",\"overlay\":\"a\",\"v\":1,\"user\":\"a\\u0000b\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (!CHECK(check_text(bad[i], &v, &user, &why) == -1 && why && *why))
            fprintf(stderr, "    %s\n", bad[i]);
    }
    char big[CG_SESSION_USER_MAX + 64];
    int n = snprintf(big, sizeof(big), "{\"op\":\"set\",\"overlay\":\"a\",\"v\":1,\"user\":\"");
    memset(big + n, 'u', CG_SESSION_USER_MAX + 1);
    snprintf(big + n + CG_SESSION_USER_MAX + 1, sizeof(big) - (size_t)n - CG_SESSION_USER_MAX - 1,
             "\"}");
    CHECK(check_text(big, &v, &user, &why) == -1);
    struct cg_overlay_op op;
    CHECK(cg_overlay_check(NULL, &op, &why) == -1);
}

struct seen {
    uint64_t v[CG_OVERLAY_RING + 8];
    size_t n;
};

static void collect(void *arg, struct cg_frame *f)
{
    struct seen *s = arg;
    /* each frame's data is its version, as text */
    s->v[s->n++] = strtoull((const char *)cg_frame_data(f), NULL, 10);
}

static struct cg_frame *numbered(uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
    struct cg_frame *f = cg_frame_alloc((size_t)n + 1);
    memcpy(cg_frame_data(f), t, (size_t)n + 1);
    f->len = (size_t)n;
    return f;
}

static void test_ring(void)
{
    struct cg_overlay_inst *s = cg_overlay_inst_create();
    if (!CHECK(s != NULL))
        return;
    CHECK(cg_overlay_covers(s, 0)); /* nothing seen: nothing to miss */
    for (uint64_t v = 1; v <= 5; v++) {
        struct cg_frame *f = numbered(v);
        cg_overlay_remember(s, v, f, v == 3 ? "u1" : v == 4 ? "u2" : NULL);
        CHECK_UINT(f->refs, 2);
        cg_frame_unref(f);
        s->last_v = v;
    }
    struct seen a = {0};
    cg_overlay_each_after(s, 1, "u1", collect, &a);
    CHECK_UINT(a.n, 3);
    CHECK(a.v[0] == 2 && a.v[1] == 3 && a.v[2] == 5);
    struct seen b = {0};
    cg_overlay_each_after(s, 0, NULL, collect, &b);
    CHECK(b.n == 3 && b.v[0] == 1 && b.v[1] == 2 && b.v[2] == 5);
    struct seen c = {0};
    cg_overlay_each_after(s, 5, "u2", collect, &c);
    CHECK_UINT(c.n, 0);
    CHECK(cg_overlay_covers(s, 0) && cg_overlay_covers(s, 4) && cg_overlay_covers(s, 9));
    /* past the ring's size the oldest go: a reader further back must read again */
    for (uint64_t v = 6; v <= CG_OVERLAY_RING + 10; v++) {
        struct cg_frame *f = numbered(v);
        cg_overlay_remember(s, v, f, NULL);
        cg_frame_unref(f);
        s->last_v = v;
    }
    CHECK_UINT(s->count, CG_OVERLAY_RING);
    CHECK(!cg_overlay_covers(s, 0));
    CHECK(!cg_overlay_covers(s, 9));
    CHECK(cg_overlay_covers(s, 10)); /* the oldest held is 11 */
    struct seen d = {0};
    cg_overlay_each_after(s, CG_OVERLAY_RING + 8, NULL, collect, &d);
    CHECK(d.n == 2 && d.v[0] == CG_OVERLAY_RING + 9 && d.v[1] == CG_OVERLAY_RING + 10);
    cg_overlay_inst_destroy(s);
    cg_overlay_inst_destroy(NULL);
}

static void test_visible(void)
{
    CHECK(cg_overlay_visible(NULL, NULL));
    CHECK(cg_overlay_visible(NULL, "u1"));
    CHECK(cg_overlay_visible("u1", "u1"));
    CHECK(!cg_overlay_visible("u1", "u2"));
    CHECK(!cg_overlay_visible("u1", NULL));
    CHECK(!cg_overlay_visible("u1", "u10"));
}

static void expect_bytes(struct cg_frame *f, const char *want, int line)
{
    if (!check_(f != NULL, __FILE__, line, "frame"))
        return;
    check_mem_(cg_frame_data(f), f->len, want, __FILE__, line, "frame bytes");
    check_int_(f->kind, CG_FRAME_MESSAGE, __FILE__, line, "kind", "CG_FRAME_MESSAGE");
    json_t *v = json_loadb((const char *)cg_frame_data(f), f->len, JSON_REJECT_DUPLICATES, NULL);
    check_(json_is_object(v), __FILE__, line, "one JSON object");
    json_decref(v);
    cg_frame_unref(f);
}

static void test_frames(void)
{
    const char *op = "{\"op\":\"remove\",\"overlay\":\"ma20\",\"v\":7}";
    expect_bytes(cg_frame_overlay("rb2501", op, strlen(op)),
                 "{\"type\":\"overlay\",\"instrument\":\"rb2501\",\"op\":{\"op\":\"remove\","
                 "\"overlay\":\"ma20\",\"v\":7}}",
                 __LINE__);
    expect_bytes(cg_frame_overlay_sync("x", 0, "[]", 2),
                 "{\"type\":\"overlay\",\"instrument\":\"x\",\"op\":{\"op\":\"sync\",\"v\":0,"
                 "\"overlays\":[]}}",
                 __LINE__);
    const char *ov = "[{\"overlay\":\"s\",\"kind\":\"level\",\"price\":1}]";
    struct cg_frame *f = cg_frame_snapshot_full("x", 3, "{}", 2, NULL, 0, NULL, ov, strlen(ov));
    if (CHECK(f != NULL)) {
        const char *want = "{\"type\":\"snapshot\",\"instrument\":\"x\",\"seq\":3,\"last\":{},"
                           "\"bars\":{},\"overlays\":[{\"overlay\":\"s\",\"kind\":\"level\","
                           "\"price\":1}]}";
        CHECK_MEM(cg_frame_data(f), f->len, want);
        cg_frame_unref(f);
    }
}

int main(void)
{
    test_library();
    test_config_bounds();
    test_key();
    test_check();
    test_ring();
    test_visible();
    test_frames();
    return check_summary("overlay");
}
