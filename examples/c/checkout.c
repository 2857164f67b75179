/*
 * checkout.c: check a feature out of QuorumLM from C, work, check it in.
 *
 *   QLM_LICENSE=host1:7400,host2:7400,host3:7400 ./checkout vhdl-editor [version] [seconds]
 *
 * The license search path comes from QLM_LICENSE (or QLM_SERVERS); see src/capi/README.md.
 * Exit status: 0 granted and checked in, 2 denied, 3 usage, 4 any other failure (1 is left
 * to tools such as valgrind's --error-exitcode).
 * Build: `make c-example` (links target/debug/libquorumlm.so).
 */
/* nanosleep under -std=c99 */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <quorumlm.h>

/* Set from the library's thread when the session is lost; read by the work loop. */
static volatile int session_lost = 0;

static void on_lost(void *user_data, int reason, const char *message)
{
    const char *name = (const char *)user_data;
    fprintf(stderr, "%s: license session lost (%s): %s\n", name,
            reason == 1 ? "expired" : "unreachable", message);
    session_lost = 1;
}

static int fail(const char *what, int status)
{
    fprintf(stderr, "checkout: %s failed (status %d): %s\n", what, status, qlm_last_error());
    return 4;
}

static void print_denial(const char *feature)
{
    size_t i, holders = qlm_last_denial_holder_count();
    fprintf(stderr, "checkout: %s denied: %s (%s)\n", feature, qlm_last_denial_reason(),
            qlm_last_error());
    for (i = 0; i < holders; i++) {
        fprintf(stderr, "  held by %s\n", qlm_last_denial_holder(i));
    }
}

/* The licensed work: here, waiting one second at a time while the seat is ours. */
static void work(long seconds)
{
    long done;
    for (done = 0; done < seconds && !session_lost; done++) {
        struct timespec one = {1, 0};
        nanosleep(&one, NULL);
    }
}

int main(int argc, char **argv)
{
    qlm_client *client = NULL;
    qlm_session *session = NULL;
    struct qlm_checkout *seat = NULL;
    struct qlm_checkout_info info;
    const char *feature, *version;
    long seconds;
    int status, exit_code = 0;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s FEATURE [VERSION] [SECONDS]\n", argv[0]);
        return 3;
    }
    feature = argv[1];
    version = argc > 2 && argv[2][0] != '\0' ? argv[2] : NULL;
    seconds = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
    printf("libquorumlm %s\n", qlm_version());

    /* NULL search path: QLM_LICENSE, then QLM_SERVERS. */
    status = qlm_client_new(NULL, NULL, &client);
    if (status != QLM_OK) {
        return fail("qlm_client_new", status);
    }
    status = qlm_session_open(client, 0, &session);
    if (status != QLM_OK) {
        exit_code = fail("qlm_session_open", status);
        goto free_client;
    }
    status = qlm_session_on_lost(session, on_lost, (void *)"checkout");
    if (status != QLM_OK) {
        exit_code = fail("qlm_session_on_lost", status);
        goto close_session;
    }
    status = qlm_checkout(session, feature, version, 1, -1, 0, &seat);
    if (status == QLM_ERR_DENIED) {
        print_denial(feature);
        exit_code = 2;
        goto close_session;
    }
    if (status != QLM_OK) {
        exit_code = fail("qlm_checkout", status);
        goto close_session;
    }
    if (qlm_checkout_info(seat, &info) == QLM_OK) {
        printf("granted %s %s, %u seat(s), handle %llu, from %s\n", info.feature, info.version,
               info.count, (unsigned long long)info.handle, info.source);
    }
    work(seconds);
    status = qlm_checkin(seat);
    if (status != QLM_OK) {
        exit_code = fail("qlm_checkin", status);
    } else {
        printf("checked in\n");
    }

close_session:
    status = qlm_session_close(session);
    if (status != QLM_OK && exit_code == 0) {
        exit_code = fail("qlm_session_close", status);
    }
free_client:
    qlm_client_free(client);
    return exit_code;
}
