/*
 * What the files of object/ share besides object.h: the objects in
 * creation order and their types, for the QOM tree (qom.c).  Private to
 * object/.  Main thread only.
 */
#ifndef BLOCKD_CORE_OBJECT_OBJECT_INT_H
#define BLOCKD_CORE_OBJECT_OBJECT_INT_H

#include <glib.h>

#include <blockd/object.h>

/* The objects, oldest first (g_ptr_array_unref; the objects stay). */
GPtrArray *bd_objects_in_order(void);

/* @obj's type (the daemon's zero-extended copy of the plugin's). */
const BdObjectType *bd_object_type_of(BdObject *obj);

#endif /* BLOCKD_CORE_OBJECT_OBJECT_INT_H */
