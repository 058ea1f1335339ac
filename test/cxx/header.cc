// header.cc - kv.h must compile and link from C++ (extern "C", no C-only
// constructs); this also checks that the version macros match kv_version().
#include <kv.h>

#include <cstdio>
#include <cstring>

int main()
{
	int major = -1, minor = -1, patch = -1;
	const char *v = kv_version(&major, &minor, &patch);
	char want[32];

	std::snprintf(want, sizeof want, "%d.%d.%d", KV_VERSION_MAJOR,
		      KV_VERSION_MINOR, KV_VERSION_PATCH);
	if (major != KV_VERSION_MAJOR || minor != KV_VERSION_MINOR ||
	    patch != KV_VERSION_PATCH || std::strcmp(v, want) != 0) {
		std::fprintf(stderr, "version mismatch: %s vs %s\n", v, want);
		return 1;
	}
	kv_options o;
	kv_options_init(&o);
	kv_t *db = nullptr;
	int rc = kv_open(nullptr, &o, &db);
	if (rc != KV_EINVAL || db != nullptr) {
		std::fprintf(stderr, "kv_open(NULL) gave %d\n", rc);
		return 1;
	}
	std::printf("cxx header: ok (libkv %s)\n", v);
	return 0;
}
