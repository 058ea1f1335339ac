/* replay.c - runs a fuzz target over files, without libFuzzer: `make
 * check` replays the seed corpus (and any crash input kept as a
 * regression) through every target, built with the ordinary compiler. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf;
		long n;

		if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
		    fseek(f, 0, SEEK_SET) || !(buf = malloc((size_t)n + 1))) {
			fprintf(stderr, "replay: %s: cannot read\n", argv[i]);
			return 1;
		}
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			fprintf(stderr, "replay: %s: short read\n", argv[i]);
			return 1;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(buf, (size_t)n);
		free(buf);
	}
	printf("replay: %d inputs\n", argc - 1);
	return 0;
}
