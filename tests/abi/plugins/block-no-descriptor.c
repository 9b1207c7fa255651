/* A shared object that exports something, but no descriptor. */
#include <blockd/blockd.h>

BD_PLUGIN_EXPORT int block_no_descriptor_value(void);

BD_PLUGIN_EXPORT int block_no_descriptor_value(void)
{
    return 42;
}
