/*
 * One C client's closed loop for `make bench-sdk`: checkout + checkin of FEATURE through
 * libquorumlm, with no think time, for a warm-up and then a measured window.
 *
 *   bench SERVERS FEATURE WARMUP_SECONDS SECONDS   ->  "ops N seconds S errors E"
 */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <quorumlm.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Loops until `until`; returns the checkouts granted and checked in, counts failures. */
static long loop(qlm_session *session, const char *feature, double until, long *errors)
{
    long ops = 0;
    while (now() < until) {
        struct qlm_checkout *seat = NULL;
        if (qlm_checkout(session, feature, NULL, 1, -1, 0, &seat) != QLM_OK) {
            (*errors)++;
            continue;
        }
        if (qlm_checkin(seat) == QLM_OK) {
            ops++;
        } else {
            (*errors)++;
        }
    }
    return ops;
}

int main(int argc, char **argv)
{
    qlm_client *client = NULL;
    qlm_session *session = NULL;
    double warmup, seconds, start;
    long ops, errors = 0;
    if (argc != 5) {
        fprintf(stderr, "usage: bench SERVERS FEATURE WARMUP_SECONDS SECONDS\n");
        return 3;
    }
    warmup = atof(argv[3]);
    seconds = atof(argv[4]);
    if (qlm_client_new_servers(argv[1], &client) != QLM_OK ||
        qlm_session_open(client, 0, &session) != QLM_OK) {
        fprintf(stderr, "bench: %s\n", qlm_last_error());
        return 4;
    }
    loop(session, argv[2], now() + warmup, &errors);
    errors = 0;
    start = now();
    ops = loop(session, argv[2], start + seconds, &errors);
    printf("ops %ld seconds %.3f errors %ld\n", ops, now() - start, errors);
    qlm_session_close(session);
    qlm_client_free(client);
    return 0;
}
