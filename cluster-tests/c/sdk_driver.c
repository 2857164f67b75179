/*
 * sdk_driver.c: the C side of cluster-tests/tests/sdk_c.rs. It links libquorumlm, reads one
 * command per line on stdin and prints one JSON object per line on stdout, so the Rust test
 * drives a real C program step by step against a real cluster.
 *
 * Commands (NAME is a slot for a checkout, 0..15):
 *   client SERVERS            qlm_client_new_servers
 *   client-env                qlm_client_new(NULL, NULL): QLM_LICENSE / QLM_SERVERS
 *   open TTL_MS               qlm_session_open, then qlm_session_on_lost
 *   checkout NAME FEATURE COUNT WAIT_MS   qlm_checkout (WAIT_MS < 0: no queueing)
 *   info NAME | checkin NAME | free NAME
 *   status | lost | close | free-client | quit
 * Every answer: {"op":..., "status":N, "error":"..."} plus what the call returned. The lost
 * callback prints {"op":"lost-callback","reason":N,"message":"..."} from the library's thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <quorumlm.h>

#define SLOTS 16

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static qlm_client *client;
static qlm_session *session;
static struct qlm_checkout *seats[SLOTS];

/* Prints `text` as a JSON string. */
static void json_string(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    putchar('"');
    for (; *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

/* Starts an answer: op, status, and the last error and denial when it failed. */
static void begin(const char *op, int status)
{
    size_t i, n;
    pthread_mutex_lock(&out_lock);
    printf("{\"op\":");
    json_string(op);
    printf(",\"status\":%d", status);
    if (status != QLM_OK) {
        printf(",\"error\":");
        json_string(qlm_last_error());
        printf(",\"reason\":");
        json_string(qlm_last_denial_reason());
        printf(",\"holders\":[");
        n = qlm_last_denial_holder_count();
        for (i = 0; i < n; i++) {
            if (i > 0) {
                putchar(',');
            }
            json_string(qlm_last_denial_holder(i));
        }
        putchar(']');
    }
}

static void end(void)
{
    printf("}\n");
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void on_lost(void *user_data, int reason, const char *message)
{
    pthread_mutex_lock(&out_lock);
    printf("{\"op\":\"lost-callback\",\"reason\":%d,\"user_data_ok\":%d,\"message\":", reason,
           user_data == (void *)&session);
    json_string(message);
    printf("}\n");
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static int slot(const char *name)
{
    int n = atoi(name);
    return n >= 0 && n < SLOTS ? n : 0;
}

static void do_info(int n)
{
    struct qlm_checkout_info info;
    int status = qlm_checkout_info(seats[n], &info);
    begin("info", status);
    if (status == QLM_OK) {
        printf(",\"handle\":%llu,\"count\":%u,\"node_locked\":%d,\"feature\":",
               (unsigned long long)info.handle, info.count, info.node_locked);
        json_string(info.feature);
        printf(",\"version\":");
        json_string(info.version);
        printf(",\"source\":");
        json_string(info.source);
    }
    end();
}

static void do_status(void)
{
    struct qlm_session_status st;
    int status = qlm_session_status(session, &st);
    begin("status", status);
    if (status == QLM_OK) {
        printf(",\"heartbeats\":%llu,\"lost\":%d,\"session_id\":", (unsigned long long)st.heartbeats,
               st.lost);
        json_string(st.session_id);
        printf(",\"server\":");
        json_string(st.server);
        printf(",\"leader\":");
        json_string(st.leader);
    }
    end();
}

static void do_checkout(char *args)
{
    char feature[128];
    int n = 0, count = 0, status;
    long long wait_ms = -1;
    if (sscanf(args, "%d %127s %d %lld", &n, feature, &count, &wait_ms) != 4 || n < 0 ||
        n >= SLOTS) {
        begin("checkout", -1);
        end();
        return;
    }
    status = qlm_checkout(session, feature, NULL, (uint32_t)count, (int64_t)wait_ms, 0, &seats[n]);
    begin("checkout", status);
    end();
    if (status == QLM_OK) {
        do_info(n);
    }
}

/* Runs one command line; returns 0 on quit. */
static int run(char *line)
{
    char *args = strchr(line, ' ');
    int status, lost = 0;
    if (args) {
        *args++ = '\0';
    } else {
        args = line + strlen(line);
    }
    if (strcmp(line, "client") == 0) {
        begin("client", qlm_client_new_servers(args, &client));
    } else if (strcmp(line, "client-env") == 0) {
        begin("client", qlm_client_new(NULL, NULL, &client));
    } else if (strcmp(line, "open") == 0) {
        status = qlm_session_open(client, (uint32_t)strtoul(args, NULL, 10), &session);
        if (status == QLM_OK) {
            status = qlm_session_on_lost(session, on_lost, (void *)&session);
        }
        begin("open", status);
    } else if (strcmp(line, "checkout") == 0) {
        do_checkout(args);
        return 1;
    } else if (strcmp(line, "info") == 0) {
        do_info(slot(args));
        return 1;
    } else if (strcmp(line, "checkin") == 0) {
        begin("checkin", qlm_checkin(seats[slot(args)]));
    } else if (strcmp(line, "free") == 0) {
        begin("free", qlm_checkout_free(seats[slot(args)]));
    } else if (strcmp(line, "status") == 0) {
        do_status();
        return 1;
    } else if (strcmp(line, "lost") == 0) {
        status = qlm_session_is_lost(session, &lost);
        begin("lost", status);
        printf(",\"lost\":%d", lost);
    } else if (strcmp(line, "close") == 0) {
        begin("close", qlm_session_close(session));
    } else if (strcmp(line, "free-client") == 0) {
        begin("free-client", qlm_client_free(client));
    } else if (strcmp(line, "quit") == 0) {
        return 0;
    } else {
        begin("unknown", -1);
    }
    end();
    return 1;
}

int main(void)
{
    char line[4096];
    begin("ready", QLM_OK);
    printf(",\"version\":");
    json_string(qlm_version());
    end();
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!run(line)) {
            break;
        }
    }
    return 0;
}
