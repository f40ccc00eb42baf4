/* registry: the table of platforms. Adding a platform = one file + one row. */
#include <string.h>

#include "platforms/platform.h"
#include "platforms/registry.h"

static const struct platform *const platforms[] = {
    &platform_x,         &platform_bluesky,  &platform_threads,
    &platform_instagram, &platform_facebook, &platform_linkedin,
    &platform_pinterest, &platform_tiktok,   &platform_youtube,
};
_Static_assert(sizeof(platforms) / sizeof(platforms[0]) <= PLATFORM_MAX, "raise PLATFORM_MAX");

size_t platform_count(void)
{
	return sizeof(platforms) / sizeof(platforms[0]);
}

const struct platform *platform_at(size_t index)
{
	return index < platform_count() ? platforms[index] : NULL;
}

int platform_index_of(const char *name)
{
	for (size_t i = 0; i < platform_count(); i++)
		if (strcmp(platforms[i]->name, name) == 0)
			return (int)i;
	return -1;
}

const struct platform *platform_find(const char *name)
{
	int i = platform_index_of(name);
	return i < 0 ? NULL : platforms[i];
}
