/* check.h -- a minimal unit-test harness shared by test/unit/test_*.c.
 *
 * CHECK(cond) records a failure with file:line and the expression and carries on,
 * so one run reports every broken expectation. The typed variants print both
 * values. check_summary() prints one summary line and returns the exit status
 * (0 when every check passed, 1 otherwise). Header only: each test is one
 * translation unit. */
#ifndef CG_TEST_CHECK_H
#define CG_TEST_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned long check_total_;
static unsigned long check_failed_;

static inline int check_(int ok, const char *file, int line, const char *expr)
{
    check_total_++;
    if (!ok) {
        check_failed_++;
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
    }
    return ok;
}

static inline int check_int_(int64_t a, int64_t b, const char *file, int line, const char *ea,
                             const char *eb)
{
    check_total_++;
    if (a != b) {
        check_failed_++;
        fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%" PRId64 " != %" PRId64 ")\n", file, line,
                ea, eb, a, b);
        return 0;
    }
    return 1;
}

static inline int check_uint_(uint64_t a, uint64_t b, const char *file, int line, const char *ea,
                              const char *eb)
{
    check_total_++;
    if (a != b) {
        check_failed_++;
        fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%" PRIu64 " != %" PRIu64 ")\n", file, line,
                ea, eb, a, b);
        return 0;
    }
    return 1;
}

/* Prints n bytes of s, escaping anything that is not printable ASCII. */
static inline void check_show_(const char *s, size_t n)
{
    fputc('"', stderr);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('"', stderr);
}

/* Compares n bytes at a with the NUL-terminated string b (lengths must match too). */
static inline int check_mem_(const void *a, size_t n, const char *b, const char *file, int line,
                             const char *ea)
{
    check_total_++;
    size_t bl = b ? strlen(b) : 0;
    if (!a || !b || n != bl || memcmp(a, b, n)) {
        check_failed_++;
        fprintf(stderr, "%s:%d: CHECK failed: %s\n    got      ", file, line, ea);
        if (a)
            check_show_(a, n);
        else
            fputs("(null)", stderr);
        fputs("\n    expected ", stderr);
        if (b)
            check_show_(b, bl);
        else
            fputs("(null)", stderr);
        fputc('\n', stderr);
        return 0;
    }
    return 1;
}

static inline int check_str_(const char *a, const char *b, const char *file, int line,
                             const char *ea)
{
    return check_mem_(a, a ? strlen(a) : 0, b, file, line, ea);
}

#define CHECK(cond) check_(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_INT(a, b) check_int_((int64_t)(a), (int64_t)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_UINT(a, b) check_uint_((uint64_t)(a), (uint64_t)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_PTR(a, b)                                                                            \
    check_((const void *)(a) == (const void *)(b), __FILE__, __LINE__, #a " == " #b)
/* String a (NUL-terminated) equals b. */
#define CHECK_STR(a, b) check_str_((a), (b), __FILE__, __LINE__, #a " == " #b)
/* n bytes at a equal the string b. */
#define CHECK_MEM(a, n, b) check_mem_((a), (n), (b), __FILE__, __LINE__, #a " == " #b)

/* Prints "<name>: N checks, M failed" and returns the process exit status. */
static inline int check_summary(const char *name)
{
    fprintf(check_failed_ ? stderr : stdout, "%s: %lu checks, %lu failed\n", name, check_total_,
            check_failed_);
    if (!check_total_)
        fprintf(stderr, "%s: no checks ran\n", name);
    return check_failed_ || !check_total_ ? 1 : 0;
}

#endif
