/*
 * Command-line help drawn from the schema (see cli-help.h).
 *
 * qemu-storage-daemon 7.2 refuses "--blockdev help" and "--export help"
 * ("Help is not available for this option"); blockd answers them from
 * the same extensible enums and union branches that validate the options,
 * so a plugin's driver or export type is listed as soon as it is
 * installed.
 */
#include <string.h>

#include "cli/cli-help.h"
#include "cli/keyval.h"
#include "schema/schema-query.h"

void bd_cli_print_names(FILE *out, const char *heading, GPtrArray *names)
{
    fprintf(out, "%s\n", heading);
    for (guint i = 0; i < names->len; i++) {
        fprintf(out, "  %s\n", (const char *)names->pdata[i]);
    }
}

static gint compare_lines(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void bd_cli_print_options(FILE *out, const char *name, GPtrArray *members)
{
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < members->len; i++) {
        BdSchemaMemberInfo *m = members->pdata[i];
        g_autofree char *type = bd_schema_qom_type_name(m->type);

        g_ptr_array_add(lines, g_strdup_printf("  %s=<%s>", m->name, type));
    }
    /* QEMU sorts whole lines, so "a-b=<int>" comes before "a=<int>" */
    g_ptr_array_sort(lines, compare_lines);
    if (lines->len == 0) {
        fprintf(out, "There are no options for %s.\n", name);
        return;
    }
    fprintf(out, "%s options:\n", name);
    for (guint i = 0; i < lines->len; i++) {
        fprintf(out, "%s\n", (const char *)lines->pdata[i]);
    }
}

typedef struct HelpTopic {
    const char *option;         /* "blockdev" */
    const char *implied_key;    /* "driver" */
    const char *enum_name;      /* "BlockdevDriver" */
    const char *union_name;     /* "BlockdevOptions" */
    const char *heading;        /* the list's first line */
} HelpTopic;

static const HelpTopic blockdev_topic = {
    "blockdev", "driver", "BlockdevDriver", "BlockdevOptions",
    "List of block drivers:",
};

static const HelpTopic export_topic = {
    "export", "type", "BlockExportType", "BlockExportOptions",
    "List of export types:",
};

static bool help_option(const HelpTopic *topic, const char *prog,
                        const char *arg, bool *was_help)
{
    g_autoptr(GError) err = NULL;
    bool help = false;
    g_autoptr(JsonObject) opts =
        bd_cli_parse_option(arg, topic->implied_key, &help, NULL, &err);
    g_autoptr(GPtrArray) values = NULL;
    g_autoptr(GPtrArray) members = NULL;
    JsonNode *which;

    if (!opts) {
        fprintf(stderr, "%s: --%s %s: %s\n", prog, topic->option, arg,
                err->message);
        return false;
    }
    *was_help = help;
    if (!help) {
        return true;
    }

    which = json_object_get_member(opts, topic->implied_key);
    if (which && JSON_NODE_HOLDS_VALUE(which) &&
        json_node_get_value_type(which) == G_TYPE_STRING) {
        members = bd_schema_union_branch_members(
            topic->union_name, json_node_get_string(which), true);
    }
    if (members) {
        bd_cli_print_options(stdout, json_node_get_string(which), members);
    } else {
        values = bd_schema_enum_values(topic->enum_name);
        if (!values) {
            values = g_ptr_array_new();
        }
        g_ptr_array_sort(values, compare_lines);
        bd_cli_print_names(stdout, topic->heading, values);
    }
    return true;
}

bool bd_cli_blockdev_help(const char *prog, const char *arg, bool *was_help)
{
    return help_option(&blockdev_topic, prog, arg, was_help);
}

bool bd_cli_export_help(const char *prog, const char *arg, bool *was_help)
{
    return help_option(&export_topic, prog, arg, was_help);
}
