/*
 * blockd plugin ABI: everything a plugin may use, in one include.
 */
#ifndef BLOCKD_BLOCKD_H
#define BLOCKD_BLOCKD_H

#include <blockd/plugin.h>
#include <blockd/registry.h>
#include <blockd/error.h>
#include <blockd/json.h>
#include <blockd/coroutine.h>
#include <blockd/aio.h>
#include <blockd/iothread.h>
#include <blockd/block.h>
#include <blockd/block-driver.h>
#include <blockd/block-backend.h>
#include <blockd/block-chain.h>
#include <blockd/dirty-bitmap.h>
#include <blockd/export.h>
#include <blockd/object.h>
#include <blockd/authz.h>
#include <blockd/secret.h>
#include <blockd/tls.h>
#include <blockd/throttle.h>
#include <blockd/job.h>
#include <blockd/qmp.h>
#include <blockd/socket-activation.h>
#include <blockd/socket.h>
#include <blockd/trace.h>

#endif /* BLOCKD_BLOCKD_H */
