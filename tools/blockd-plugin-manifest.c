/*
 * blockd-plugin-manifest: write the manifest (<kind>-<name>.plugin) of a
 * plugin by loading it and recording what its init() registers.
 *
 * Usage: blockd-plugin-manifest PLUGIN.so OUTPUT.plugin
 *
 * Run at build time for every plugin, in-tree or third-party, so that the
 * daemon can know a plugin without loading it.  Exits 1 with the loader's
 * message if the plugin cannot be loaded.
 */
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "plugin/plugin-loader.h"

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;

    if (argc != 3) {
        fprintf(stderr, "Usage: %s PLUGIN.so OUTPUT.plugin\n", argv[0]);
        return EXIT_FAILURE;
    }
    /*
     * libltdl searches its path for a bare file name; an absolute path
     * makes "block-x.so" mean the file in the current directory.
     */
    g_autofree char *path = g_canonicalize_filename(argv[1], NULL);
    BdPlugin *plugin = bd_plugins_load_file(path);
    if (!bd_plugin_write_manifest(plugin, argv[2], &err)) {
        fprintf(stderr, "%s: %s\n", argv[0], err->message);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
