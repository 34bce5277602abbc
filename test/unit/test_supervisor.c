/* test_supervisor.c -- the restart policy of --workers (gateway/supervisor.h): back-off and
 * giving up. (The supervisor itself is run by test/integration/test_workers.py.) */
#include "check.h"

#include "supervisor.h"

static void test_backoff(void)
{
    CHECK_UINT(cg_supervisor_backoff_ms(1), CG_SUPERVISOR_BACKOFF_BASE_MS);
    CHECK_UINT(cg_supervisor_backoff_ms(2), 2 * CG_SUPERVISOR_BACKOFF_BASE_MS);
    CHECK_UINT(cg_supervisor_backoff_ms(4), 8 * CG_SUPERVISOR_BACKOFF_BASE_MS);
    CHECK_UINT(cg_supervisor_backoff_ms(30), CG_SUPERVISOR_BACKOFF_MAX_MS);
    CHECK_UINT(cg_supervisor_backoff_ms(1000000), CG_SUPERVISOR_BACKOFF_MAX_MS);
    for (uint32_t s = 1; s < 40; s++)
        CHECK(cg_supervisor_backoff_ms(s + 1) >= cg_supervisor_backoff_ms(s));
}

static void test_give_up(void)
{
    static struct cg_supervisor_policy p;
    cg_supervisor_policy_init(&p, 3, 10000);
    /* Three deaths within the window are tolerated, the fourth is one too many. */
    CHECK_INT(cg_supervisor_policy_death(&p, 1000), 0);
    CHECK_INT(cg_supervisor_policy_death(&p, 2000), 0);
    CHECK_INT(cg_supervisor_policy_death(&p, 3000), 0);
    CHECK_INT(cg_supervisor_policy_death(&p, 4000), 1);
    /* Deaths spread out never add up: one every 4 s with a 10 s window keeps <= 3 in it. */
    cg_supervisor_policy_init(&p, 3, 10000);
    for (uint64_t t = 0; t < 1000000; t += 4000)
        if (!CHECK_INT(cg_supervisor_policy_death(&p, t), 0))
            break;
    /* The window slides: after a quiet spell the count starts again. */
    cg_supervisor_policy_init(&p, 2, 1000);
    CHECK_INT(cg_supervisor_policy_death(&p, 0), 0);
    CHECK_INT(cg_supervisor_policy_death(&p, 100), 0);
    CHECK_INT(cg_supervisor_policy_death(&p, 5000), 0);
    CHECK_INT(cg_supervisor_policy_death(&p, 5100), 0);
    CHECK_INT(cg_supervisor_policy_death(&p, 5200), 1);
    /* A limit above the ring's size is capped, not overflowed. */
    cg_supervisor_policy_init(&p, CG_SUPERVISOR_DEATHS_MAX + 50, 1000000);
    CHECK_UINT(p.deaths_max, CG_SUPERVISOR_DEATHS_MAX);
    int gave_up = 0;
    for (uint32_t i = 0; i <= CG_SUPERVISOR_DEATHS_MAX && !gave_up; i++)
        gave_up = cg_supervisor_policy_death(&p, i);
    CHECK(gave_up);
}

static void test_workers(void)
{
    struct cg_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workers = 3;
    CHECK_UINT(cg_supervisor_workers(&cfg), 3);
    cfg.workers = 0; /* auto */
    uint32_t n = cg_supervisor_workers(&cfg);
    CHECK(n >= 1 && n <= CG_SHARED_WORKERS_MAX);
}

int main(void)
{
    test_backoff();
    test_give_up();
    test_workers();
    return check_summary("supervisor");
}
