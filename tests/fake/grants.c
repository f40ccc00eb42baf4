/* grants: account state of the fake platforms: grants by id and by key,
 * token naming and judging, rotation. See grants.h for the token format. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "tests/fake/codec.h"
#include "tests/fake/grants.h"
#include "tests/fake/jwt.h"
#include "tests/fake/platforms.h"

#define LOGIN_WINDOW_S 300
#define FOREVER_S ((int64_t)100 * 365 * 86400)

struct grants {
	const struct fake_config *cfg;
	struct grant **v; /* by id */
	size_t n, cap;
	uint32_t *index; /* open addressing over keys: id + 1, 0 = empty */
	size_t index_cap;
	size_t per_plat[PLAT_COUNT];
	uint64_t epoch;
	unsigned char secret[JWT_KEY_LEN]; /* signs Bluesky JWTs */
};

/* A token of the fake's own format, taken apart. */
struct parsed {
	int plat;
	char kind;
	uint32_t id, gen;
	int64_t iat;
	uint64_t epoch;
};

static uint64_t hash_key(const char *key)
{
	uint64_t h = 14695981039346656037u;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211u;
	return h;
}

static void index_put(struct grants *g, const struct grant *gr)
{
	size_t mask = g->index_cap - 1;
	size_t i = hash_key(gr->key) & mask;

	while (g->index[i] != 0)
		i = (i + 1) & mask;
	g->index[i] = gr->id + 1;
}

static int index_grow(struct grants *g)
{
	size_t cap = g->index_cap ? g->index_cap * 2 : 1024;
	uint32_t *index = calloc(cap, sizeof(*index));

	if (!index)
		return -1;
	free(g->index);
	g->index = index;
	g->index_cap = cap;
	for (size_t i = 0; i < g->n; i++)
		index_put(g, g->v[i]);
	return 0;
}

static void new_epoch(struct grants *g)
{
	if (RAND_bytes((unsigned char *)&g->epoch, sizeof(g->epoch)) != 1 ||
	    RAND_bytes(g->secret, sizeof(g->secret)) != 1) {
		g->epoch ^= (uint64_t)time(NULL) * 6364136223846793005u + 1;
		memcpy(g->secret, &g->epoch, sizeof(g->epoch));
	}
}

struct grants *grants_new(const struct fake_config *cfg)
{
	struct grants *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->cfg = cfg;
	if (index_grow(g) < 0) {
		free(g);
		return NULL;
	}
	new_epoch(g);
	return g;
}

static void grant_free(struct grant *gr)
{
	free(gr->key);
	free(gr->password);
	free(gr->logins);
	free(gr);
}

void grants_reset(struct grants *g)
{
	for (size_t i = 0; i < g->n; i++)
		grant_free(g->v[i]);
	g->n = 0;
	memset(g->index, 0, g->index_cap * sizeof(*g->index));
	memset(g->per_plat, 0, sizeof(g->per_plat));
	new_epoch(g);
}

void grants_free(struct grants *g)
{
	if (!g)
		return;
	grants_reset(g);
	free(g->v);
	free(g->index);
	free(g);
}

struct grant *grants_by_key(struct grants *g, const char *key)
{
	size_t mask = g->index_cap - 1;

	for (size_t i = hash_key(key) & mask; g->index[i] != 0; i = (i + 1) & mask) {
		struct grant *gr = g->v[g->index[i] - 1];
		if (strcmp(gr->key, key) == 0)
			return gr;
	}
	return NULL;
}

static void make_did(struct grant *gr)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)gr->key, strlen(gr->key), digest);
	memcpy(gr->did, "did:plc:", 8);
	codec_base32(digest, 24, gr->did + 8);
}

static int reserve(struct grants *g)
{
	if ((g->n + 1) * 2 > g->index_cap && index_grow(g) < 0)
		return -1;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 1024;
		struct grant **v = realloc(g->v, cap * sizeof(*v));
		if (!v)
			return -1;
		g->v = v;
		g->cap = cap;
	}
	return 0;
}

struct grant *grants_add(struct grants *g, enum plat_id plat, const char *key, char seed_kind,
                         int64_t now)
{
	struct grant *gr;

	if (g->n >= UINT32_MAX - 1 || reserve(g) < 0)
		return NULL;
	gr = calloc(1, sizeof(*gr));
	if (!gr || !(gr->key = strdup(key))) {
		free(gr);
		return NULL;
	}
	gr->id = (uint32_t)g->n;
	gr->plat = plat;
	gr->seed_kind = seed_kind;
	gr->created = now;
	gr->s = (struct session){.access_iat = now, .refresh_iat = now};
	gr->pages = 1;
	make_did(gr);
	g->v[g->n++] = gr;
	g->per_plat[plat]++;
	index_put(g, gr);
	return gr;
}

int grants_platform_of(const char *token)
{
	const char *dash = strchr(token, '-');

	return dash ? plat_index(token, (size_t)(dash - token)) : -1;
}

/* Reads digits in base up to `end`; moves *q past it. */
static bool number(const char **q, int base, char end, unsigned long long *out)
{
	char *stop;
	char first = **q;

	if (!((first >= '0' && first <= '9') || (base == 16 && first >= 'a' && first <= 'f')))
		return false;
	errno = 0;
	*out = strtoull(*q, &stop, base);
	if (errno != 0 || *stop != end)
		return false;
	*q = end ? stop + 1 : stop;
	return true;
}

static bool parse_token(const char *s, struct parsed *p)
{
	const char *dash = strchr(s, '-');
	unsigned long long id, gen, iat, epoch;
	const char *q;

	if (!dash || !strchr("arp", dash[1]) || dash[1] == '\0' || dash[2] != '.')
		return false;
	p->plat = plat_index(s, (size_t)(dash - s));
	p->kind = dash[1];
	q = dash + 3;
	if (p->plat < 0 || !number(&q, 10, '.', &id) || !number(&q, 10, '.', &gen) ||
	    !number(&q, 10, '.', &iat) || !number(&q, 16, '\0', &epoch))
		return false;
	if (id > UINT32_MAX || gen > UINT32_MAX || iat > INT64_MAX)
		return false;
	p->id = (uint32_t)id;
	p->gen = (uint32_t)gen;
	p->iat = (int64_t)iat;
	p->epoch = epoch;
	return true;
}

/* The jti of a JWT signed by this epoch's key, copied into buf. */
static bool jwt_jti(const struct grants *g, const char *token, char *buf, size_t size)
{
	json_t *payload = jwt_open(g->secret, token);
	const char *jti = json_string_value(json_object_get(payload, "jti"));
	bool ok = jti && strlen(jti) < size;

	if (ok)
		strcpy(buf, jti);
	json_decref(payload);
	return ok;
}

/* 1: token names a grant (ref filled); 0: unseen; -1: a JWT that does not verify. */
static int resolve(struct grants *g, const char *token, struct token_ref *ref)
{
	char jti[TOKEN_MAX];
	const char *name = token;
	struct parsed p;
	struct grant *gr;

	if (jwt_looks_like(token)) {
		if (!jwt_jti(g, token, jti, sizeof(jti)))
			return -1;
		name = jti;
	}
	if (parse_token(name, &p) && p.epoch == g->epoch && p.id < g->n &&
	    g->v[p.id]->plat == (enum plat_id)p.plat) {
		*ref = (struct token_ref){g->v[p.id], p.kind, p.gen, p.iat, false};
		return 1;
	}
	if (name != token)
		return -1;
	gr = grants_by_key(g, token);
	if (!gr || !gr->seed_kind)
		return 0;
	*ref = (struct token_ref){gr, gr->seed_kind, 0, gr->created, true};
	return 1;
}

bool grants_find(struct grants *g, const char *token, struct token_ref *ref)
{
	return resolve(g, token, ref) == 1;
}

static int64_t expiry(const struct grants *g, const struct grant *gr, char kind, int64_t iat)
{
	int64_t ttl, base = iat;

	if (kind == KIND_ACCESS) {
		ttl = g->cfg->access_ttl_s[gr->plat];
	} else if (kind == KIND_REFRESH) {
		ttl = g->cfg->refresh_ttl_s[gr->plat];
		if (!plat_get(gr->plat)->rotates)
			base = gr->created; /* LinkedIn: fixed from the first grant */
	} else {
		return 0;
	}
	return ttl > 0 ? base + ttl : 0;
}

int64_t grants_expires_at(const struct grants *g, const struct grant *gr, const struct session *s,
                          char kind)
{
	return expiry(g, gr, kind, kind == KIND_ACCESS ? s->access_iat : s->refresh_iat);
}

static bool expired(const struct grants *g, const struct token_ref *ref, int64_t now)
{
	int64_t at = expiry(g, ref->grant, ref->kind, ref->iat);

	return at != 0 && now >= at;
}

static enum verdict spent(struct grants *g, const struct token_ref *ref, int64_t now)
{
	struct grant *gr = ref->grant;

	gr->reuse++;
	if (gr->plat == PLAT_BLUESKY && ref->gen + 1 == gr->s.refresh_gen &&
	    now < gr->s.rotated_at + g->cfg->bluesky_grace_s && !expired(g, ref, now))
		return VERDICT_GRACE;
	if (g->cfg->reuse_revokes)
		gr->revoked = true;
	return VERDICT_SPENT;
}

static enum verdict judge(struct grants *g, const struct token_ref *ref, char kind, int64_t now)
{
	const struct grant *gr = ref->grant;
	uint32_t current;

	if (kind == KIND_ANY ? ref->kind == KIND_REFRESH : ref->kind != kind)
		return VERDICT_WRONG_KIND;
	if (gr->takedown)
		return VERDICT_TAKEDOWN;
	if (gr->revoked)
		return VERDICT_REVOKED;
	if (ref->kind == KIND_PAGE)
		return ref->gen < gr->pages ? VERDICT_OK : VERDICT_NO_PAGE;
	current = ref->kind == KIND_ACCESS ? gr->s.access_gen : gr->s.refresh_gen;
	if (ref->gen > current)
		return VERDICT_UNKNOWN;
	if (ref->kind == KIND_REFRESH && ref->gen < current)
		return spent(g, ref, now);
	return expired(g, ref, now) ? VERDICT_EXPIRED : VERDICT_OK;
}

enum verdict grants_check(struct grants *g, enum plat_id plat, char kind, const char *token,
                          int64_t now, struct token_ref *ref)
{
	int found = resolve(g, token, ref);
	char seed = kind == KIND_ANY ? KIND_ACCESS : kind;
	struct grant *gr;

	if (found < 0)
		return VERDICT_UNKNOWN;
	if (found > 0)
		return ref->grant->plat == plat ? judge(g, ref, kind, now) : VERDICT_UNKNOWN;
	if (grants_platform_of(token) != (int)plat || strlen(token) >= TOKEN_MAX)
		return VERDICT_UNKNOWN;
	gr = grants_add(g, plat, token, seed, now);
	if (!gr)
		return VERDICT_UNKNOWN;
	*ref = (struct token_ref){gr, seed, 0, now, true};
	return VERDICT_OK;
}

struct session grants_next(const struct grant *gr, enum rotation how, int64_t now)
{
	struct session s = gr->s;

	s.access_gen++;
	s.access_iat = now;
	if (how == ROTATE_BOTH) {
		s.refresh_gen++;
		s.refresh_iat = now;
		s.rotated_at = now;
	}
	return s;
}

static int bluesky_jwt(const struct grants *g, const struct grant *gr, char kind, const char *jti,
                       int64_t iat, char *buf, size_t size)
{
	char payload[512];
	int64_t exp = expiry(g, gr, kind, iat);
	bool access = kind == KIND_ACCESS;
	int n;

	n = snprintf(payload, sizeof(payload),
	             "{\"scope\":\"%s\",\"sub\":\"%s\",\"aud\":\"did:web:fake-pds.test\","
	             "\"jti\":\"%s\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
	             access ? "com.atproto.access" : "com.atproto.refresh", gr->did, jti, iat,
	             exp ? exp : iat + FOREVER_S);
	if (n < 0 || (size_t)n >= sizeof(payload))
		return -1;
	return jwt_sign(g->secret,
	                access ? "{\"typ\":\"at+jwt\",\"alg\":\"HS256\"}"
	                       : "{\"typ\":\"refresh+jwt\",\"alg\":\"HS256\"}",
	                payload, buf, size);
}

static int format(const struct grants *g, const struct grant *gr, char kind, uint32_t gen,
                  int64_t iat, char *buf, size_t size)
{
	char name[128];
	int n =
	    snprintf(name, sizeof(name), "%s-%c.%" PRIu32 ".%" PRIu32 ".%" PRId64 ".%016" PRIx64,
	             plat_get(gr->plat)->name, kind, gr->id, gen, iat, g->epoch);

	if (n < 0 || (size_t)n >= sizeof(name))
		return -1;
	if (gr->plat == PLAT_BLUESKY)
		return bluesky_jwt(g, gr, kind, name, iat, buf, size);
	if ((size_t)n >= size)
		return -1;
	memcpy(buf, name, (size_t)n + 1);
	return n;
}

int grants_token(const struct grants *g, const struct grant *gr, const struct session *s, char kind,
                 char *buf, size_t size)
{
	bool access = kind == KIND_ACCESS;
	uint32_t gen = access ? s->access_gen : s->refresh_gen;
	size_t n;

	if (gen == 0 && kind == gr->seed_kind) {
		n = strlen(gr->key);
		if (n >= size)
			return -1;
		memcpy(buf, gr->key, n + 1);
		return (int)n;
	}
	return format(g, gr, kind, gen, access ? s->access_iat : s->refresh_iat, buf, size);
}

int grants_page_token(const struct grants *g, const struct grant *gr, uint32_t page, int64_t now,
                      char *buf, size_t size)
{
	return format(g, gr, KIND_PAGE, page, now, buf, size);
}

bool grants_login_allowed(struct grants *g, struct grant *gr, int64_t now, int *retry_after)
{
	unsigned limit =
	    g->cfg->bluesky_session_limit > 0 ? (unsigned)g->cfg->bluesky_session_limit : 0;
	int64_t oldest;

	if (limit == 0)
		return true;
	if (!gr->logins && !(gr->logins = calloc(limit, sizeof(*gr->logins))))
		return true;
	oldest = gr->logins[gr->login_next];
	if (oldest != 0 && now - oldest < LOGIN_WINDOW_S) {
		*retry_after = (int)(oldest + LOGIN_WINDOW_S - now);
		return false;
	}
	gr->logins[gr->login_next] = now;
	gr->login_next = (gr->login_next + 1) % limit;
	return true;
}

size_t grants_count(const struct grants *g, enum plat_id plat)
{
	return g->per_plat[plat];
}
