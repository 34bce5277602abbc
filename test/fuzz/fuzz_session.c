/* fuzz_session.c -- cg_session_parse (gateway/session.h) over hostile session JSON.
 *
 * Sessions are written by the web application, but whoever can write the Redis key
 * controls them. Checks the contract (OK <=> a session; BAD says why in one line
 * without quoting the input) and runs both allowlists' globs (instruments, services) over a
 * few names: an absent list allows all, a present one (even []) only what it matches. */
#include "fuzz_common.h"
#include "instrument.h"
#include "session.h"

#define NOW 1767225600

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const probes[] = {"rb2501", "au2412",  "a",
                                         "rb",     "ZZ.9_-x", "0123456789abcdef0123456789abcdef"};
    static const char *const services[] = {"alerts", "orders.v2", "a", "x-y_z", "ALERTS"};
    char *json = fuzz_dup(data, size);
    struct cg_session *s = (struct cg_session *)1;
    char why[96];
    memset(why, 'X', sizeof(why));
    enum cg_session_status st = cg_session_parse(json, size, NOW, &s, why, sizeof(why));
    FUZZ_CHECK(st == CG_SESSION_OK || st == CG_SESSION_BAD || st == CG_SESSION_EXPIRED ||
               st == CG_SESSION_NOMEM);
    if (st != CG_SESSION_OK) {
        FUZZ_CHECK(s == NULL);
        if (st == CG_SESSION_BAD) {
            FUZZ_CHECK(FUZZ_TERMINATED(why));
            for (const char *c = why; *c; c++)
                FUZZ_CHECK(*c >= 0x20 && *c < 0x7f);
        }
    } else {
        FUZZ_CHECK(s != NULL);
        size_t ul = strnlen(s->user_id, sizeof(s->user_id));
        FUZZ_CHECK(ul >= 1 && ul <= CG_SESSION_USER_MAX);
        FUZZ_CHECK(!s->has_exp || s->exp > NOW);
        FUZZ_CHECK(s->npatterns <= CG_SESSION_PATTERNS_MAX);
        FUZZ_CHECK(!s->all_instruments || s->npatterns == 0);
        for (size_t i = 0; i < s->npatterns; i++)
            FUZZ_CHECK(s->patterns[i] && strlen(s->patterns[i]) <= 64);
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
            int a = cg_session_allows(s, probes[i]);
            FUZZ_CHECK(a == 0 || a == 1);
            FUZZ_CHECK(!s->all_instruments || a == 1);
        }
        /* each pattern, taken as a name, when it is a valid one (no glob characters) */
        for (size_t i = 0; i < s->npatterns; i++)
            if (cg_instrument_valid(s->patterns[i], strlen(s->patterns[i])))
                FUZZ_CHECK(cg_session_allows(s, s->patterns[i]) == 1);
        /* services: the same rules, on their own list */
        json_t *root = json_loadb(json, size, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(json_is_object(root));
        json_t *sv = json_object_get(root, "services");
        FUZZ_CHECK(s->all_services == !sv);
        FUZZ_CHECK(s->all_instruments == !json_object_get(root, "instruments"));
        FUZZ_CHECK(s->nservice_patterns == json_array_size(sv));
        FUZZ_CHECK(s->nservice_patterns <= CG_SESSION_PATTERNS_MAX);
        for (size_t i = 0; i < s->nservice_patterns; i++) {
            const char *p = s->service_patterns[i];
            FUZZ_CHECK(p && strlen(p) >= 1 && strlen(p) <= 64);
            FUZZ_CHECK(!strcmp(p, json_string_value(json_array_get(sv, i))));
            if (cg_config_service_name_valid(p, strlen(p)) && !strpbrk(p, "*?["))
                FUZZ_CHECK(cg_session_allows_service(s, p) == 1);
        }
        json_decref(root);
        for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
            int a = cg_session_allows_service(s, services[i]);
            FUZZ_CHECK(a == 0 || a == 1);
            FUZZ_CHECK(!s->all_services || a == 1);
            FUZZ_CHECK(s->all_services || s->nservice_patterns || a == 0);
        }
        cg_session_destroy(s);
    }
    /* the same bytes as a session id and an instrument name */
    int idv = cg_session_id_valid(json, size);
    FUZZ_CHECK(!idv || (size >= 1 && size <= CG_SESSION_ID_MAX));
    int inv = cg_instrument_valid(json, size);
    FUZZ_CHECK(!inv || (size >= 1 && size <= CG_INSTRUMENT_MAX));
    free(json);
    return 0;
}
