/* registry: the platform descriptors the registry table lists. Private to
 * platforms/; everything else goes through platform.h. */
#ifndef TOKEND_REGISTRY_H
#define TOKEND_REGISTRY_H

#include "platforms/platform.h"

extern const struct platform platform_x;
extern const struct platform platform_bluesky;
extern const struct platform platform_threads;
extern const struct platform platform_instagram;
extern const struct platform platform_facebook;
extern const struct platform platform_linkedin;
extern const struct platform platform_pinterest;
extern const struct platform platform_tiktok;
extern const struct platform platform_youtube;

#endif
