#!/bin/sh
# install-man.sh install|uninstall MANDIR PAGE...
# Installs (or removes) each page, and for every other name a page
# documents in its NAME section (kv_put_ttl in kv_put.3, say) a one-line
# ".so" page, so that `man kv_put_ttl` finds it with man-db as with mandoc.
set -eu
what=$1 mandir=$2
shift 2
for page in "$@"; do
	base=${page##*/}
	sec=${base##*.}
	dir=$mandir/man$sec
	names=$(sed -n 's/^\.Nm \([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' "$page" | sort -u)
	if [ "$what" = install ]; then
		install -d "$dir"
		install -m 644 "$page" "$dir/$base"
	else
		rm -f "$dir/$base"
	fi
	for n in $names; do
		[ "$n.$sec" = "$base" ] && continue
		[ -e "man/man$sec/$n.$sec" ] && continue   # has a page of its own
		if [ "$what" = install ]; then
			echo ".so man$sec/$base" > "$dir/$n.$sec"
			chmod 644 "$dir/$n.$sec"
		else
			rm -f "$dir/$n.$sec"
		fi
	done
done
