/*
 * The job manager's state machine: every entry of the transition table
 * and of the verb table (11 x 11 and 7 x 11) against job.json's state
 * diagram, written here as the list of the edges it allows, and the
 * names of states and verbs against JobStatus and JobVerb.
 */
#include <glib.h>

#include "job/job.h"

typedef struct Edge {
    BdJobStatus from, to;
} Edge;

/* job.json: the arrows of the diagram */
static const Edge allowed_edges[] = {
    { BD_JOB_STATUS_UNDEFINED, BD_JOB_STATUS_CREATED },
    { BD_JOB_STATUS_CREATED, BD_JOB_STATUS_RUNNING },
    { BD_JOB_STATUS_CREATED, BD_JOB_STATUS_ABORTING },
    { BD_JOB_STATUS_CREATED, BD_JOB_STATUS_NULL },
    { BD_JOB_STATUS_RUNNING, BD_JOB_STATUS_PAUSED },
    { BD_JOB_STATUS_RUNNING, BD_JOB_STATUS_READY },
    { BD_JOB_STATUS_RUNNING, BD_JOB_STATUS_WAITING },
    { BD_JOB_STATUS_RUNNING, BD_JOB_STATUS_ABORTING },
    { BD_JOB_STATUS_PAUSED, BD_JOB_STATUS_RUNNING },
    { BD_JOB_STATUS_READY, BD_JOB_STATUS_STANDBY },
    { BD_JOB_STATUS_READY, BD_JOB_STATUS_WAITING },
    { BD_JOB_STATUS_READY, BD_JOB_STATUS_ABORTING },
    { BD_JOB_STATUS_STANDBY, BD_JOB_STATUS_READY },
    { BD_JOB_STATUS_WAITING, BD_JOB_STATUS_PENDING },
    { BD_JOB_STATUS_WAITING, BD_JOB_STATUS_ABORTING },
    { BD_JOB_STATUS_PENDING, BD_JOB_STATUS_ABORTING },
    { BD_JOB_STATUS_PENDING, BD_JOB_STATUS_CONCLUDED },
    { BD_JOB_STATUS_ABORTING, BD_JOB_STATUS_ABORTING },
    { BD_JOB_STATUS_ABORTING, BD_JOB_STATUS_CONCLUDED },
    { BD_JOB_STATUS_CONCLUDED, BD_JOB_STATUS_NULL },
};

typedef struct VerbState {
    BdJobVerb verb;
    BdJobStatus s;
} VerbState;

#define ACTIVE(v)                                                         \
    { v, BD_JOB_STATUS_CREATED }, { v, BD_JOB_STATUS_RUNNING },           \
    { v, BD_JOB_STATUS_PAUSED }, { v, BD_JOB_STATUS_READY },              \
    { v, BD_JOB_STATUS_STANDBY }

/* which states each of job.json's verbs applies to, as QEMU 7.2 */
static const VerbState allowed_verbs[] = {
    ACTIVE(BD_JOB_VERB_CANCEL),
    { BD_JOB_VERB_CANCEL, BD_JOB_STATUS_WAITING },
    { BD_JOB_VERB_CANCEL, BD_JOB_STATUS_PENDING },
    ACTIVE(BD_JOB_VERB_PAUSE),
    ACTIVE(BD_JOB_VERB_RESUME),
    ACTIVE(BD_JOB_VERB_SET_SPEED),
    { BD_JOB_VERB_COMPLETE, BD_JOB_STATUS_READY },
    /* a READY job paused (STANDBY) may be completed too (QEMU 6.0 on) */
    { BD_JOB_VERB_COMPLETE, BD_JOB_STATUS_STANDBY },
    { BD_JOB_VERB_DISMISS, BD_JOB_STATUS_CONCLUDED },
    { BD_JOB_VERB_FINALIZE, BD_JOB_STATUS_PENDING },
};

static bool edge_listed(BdJobStatus from, BdJobStatus to)
{
    for (size_t i = 0; i < G_N_ELEMENTS(allowed_edges); i++) {
        if (allowed_edges[i].from == from && allowed_edges[i].to == to) {
            return true;
        }
    }
    return false;
}

static bool verb_listed(BdJobVerb verb, BdJobStatus s)
{
    for (size_t i = 0; i < G_N_ELEMENTS(allowed_verbs); i++) {
        if (allowed_verbs[i].verb == verb && allowed_verbs[i].s == s) {
            return true;
        }
    }
    return false;
}

static void test_transitions(void)
{
    unsigned allowed = 0;

    for (int from = 0; from < BD_JOB_STATUS__MAX; from++) {
        for (int to = 0; to < BD_JOB_STATUS__MAX; to++) {
            bool want = edge_listed(from, to);

            if (bd_job_transition_allowed(from, to) != want) {
                g_test_message("%s -> %s", bd_job_status_name(from),
                               bd_job_status_name(to));
            }
            g_assert_cmpint(bd_job_transition_allowed(from, to), ==, want);
            allowed += want;
        }
    }
    g_assert_cmpuint(allowed, ==, G_N_ELEMENTS(allowed_edges));
    /* out of range is refused, not read past the table */
    g_assert_false(bd_job_transition_allowed(BD_JOB_STATUS__MAX,
                                             BD_JOB_STATUS_NULL));
    g_assert_false(bd_job_transition_allowed(BD_JOB_STATUS_CREATED,
                                             BD_JOB_STATUS__MAX));
}

static void test_verbs(void)
{
    for (int v = 0; v < BD_JOB_VERB__MAX; v++) {
        for (int s = 0; s < BD_JOB_STATUS__MAX; s++) {
            bool want = verb_listed(v, s);

            if (bd_job_verb_allowed(v, s) != want) {
                g_test_message("%s in %s", bd_job_verb_name(v),
                               bd_job_status_name(s));
            }
            g_assert_cmpint(bd_job_verb_allowed(v, s), ==, want);
        }
    }
    g_assert_false(bd_job_verb_allowed(BD_JOB_VERB__MAX,
                                       BD_JOB_STATUS_RUNNING));
}

static void test_names(void)
{
    static const char *const status[] = {
        "undefined", "created", "running", "paused", "ready", "standby",
        "waiting", "pending", "aborting", "concluded", "null",
    };
    static const char *const verb[] = {
        "cancel", "pause", "resume", "set-speed", "complete", "dismiss",
        "finalize",
    };

    G_STATIC_ASSERT(G_N_ELEMENTS(status) == BD_JOB_STATUS__MAX);
    G_STATIC_ASSERT(G_N_ELEMENTS(verb) == BD_JOB_VERB__MAX);
    for (int i = 0; i < BD_JOB_STATUS__MAX; i++) {
        g_assert_cmpstr(bd_job_status_name(i), ==, status[i]);
    }
    for (int i = 0; i < BD_JOB_VERB__MAX; i++) {
        g_assert_cmpstr(bd_job_verb_name(i), ==, verb[i]);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/job/transitions", test_transitions);
    g_test_add_func("/job/verbs", test_verbs);
    g_test_add_func("/job/names", test_names);
    return g_test_run();
}
