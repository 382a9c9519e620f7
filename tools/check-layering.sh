#!/usr/bin/env bash
# Checks that dependencies point inward (../shared/STYLE.md, section 1):
#
#   include/cart/  libc/POSIX headers and other cart/ headers only
#   lib/           include/cart/ and its own headers; no civetweb, cJSON,
#                  curl, openssl, adapters/ or app/, and no HTTP/JSON words
#   adapters/X/    include/cart/, its own headers and its wire libraries;
#                  no lib/ private headers, civetweb, app/ or adapters/Y/
#                  (except the support libraries adapters/aws/ and
#                  adapters/codec/, which adapters share)
#   app/           only app/server.c includes civetweb.h: the rest of app/
#                  sees http_request/http_response (app/http.h), so the
#                  pipeline and handlers do not depend on the HTTP server
#
# The Makefile already compiles lib/ with only -Iinclude -Ilib; this script
# also catches what a compiler cannot (relative paths, words in lib/) and
# says which rule a line breaks.  Exit 0 when clean, 1 with one line per
# violation otherwise.  Usage: tools/check-layering.sh [repo-root]
set -euo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
cd "$root"

violations=0
checked=0

fail() {  # file:line, message
	echo "layering: $1: $2" >&2
	violations=$((violations + 1))
}

# Source files under a directory (C sources and headers), sorted.
sources() {
	[ -d "$1" ] || return 0
	find "$1" -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort
}

# Prints "line<TAB>kind<TAB>target" for each #include in a file, where kind
# is "sys" for <...> and "local" for "...".
includes() {
	awk '
	match($0, /^[ \t]*#[ \t]*include[ \t]*[<"][^>"]+[>"]/) {
		s = substr($0, RSTART, RLENGTH)
		kind = (index(s, "<") ? "sys" : "local")
		sub(/^[^<"]*[<"]/, "", s); sub(/[>"]$/, "", s)
		printf "%d\t%s\t%s\n", NR, kind, s
	}' "$1"
}

# Third-party headers that only app/ (or an adapter's wire code) may use.
THIRD_PARTY='^(civetweb\.h|cjson/|cJSON\.h|cJSON_Utils\.h|curl/|openssl/)'

# Standard C11 and the POSIX headers a public header might need.
STD_HEADERS=' assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h
iso646.h limits.h locale.h math.h setjmp.h signal.h stdalign.h stdarg.h
stdatomic.h stdbool.h stddef.h stdint.h stdio.h stdlib.h stdnoreturn.h
string.h tgmath.h threads.h time.h uchar.h wchar.h wctype.h pthread.h
unistd.h strings.h fcntl.h '
STD_HEADERS=" $(echo $STD_HEADERS) "   # one line: a name at a line's end matches too

# Basenames of headers private to lib/ and app/.
private_headers() {
	[ -d "$1" ] || return 0
	find "$1" -maxdepth 2 -type f -name '*.h' -printf '%f\n'
}
LIB_PRIVATE=" $(private_headers lib | tr '\n' ' ') "
APP_PRIVATE=" $(private_headers app | tr '\n' ' ') "
ADAPTERS=" $(find adapters -mindepth 1 -maxdepth 1 -type d -printf '%f ' 2>/dev/null || true) "

check_public_header() {  # include/cart/*.h
	local f=$1 line kind target
	while IFS=$'\t' read -r line kind target; do
		if [[ $target =~ $THIRD_PARTY ]]; then
			fail "$f:$line" "public header includes third-party <$target>"
		elif [[ $target == cart/* ]]; then
			[ -f "include/$target" ] ||
				fail "$f:$line" "includes \"$target\", which is not in include/cart/"
		elif [[ $kind == sys && ( $STD_HEADERS == *" $target "* || $target == sys/* ) ]]; then
			:
		else
			fail "$f:$line" "public header may include only libc/POSIX and cart/ headers, not '$target'"
		fi
	done < <(includes "$f")
}

check_lib_file() {  # lib/**
	local f=$1 line kind target base
	while IFS=$'\t' read -r line kind target; do
		base=${target##*/}
		if [[ $target =~ $THIRD_PARTY ]]; then
			fail "$f:$line" "the core includes third-party '$target' (only app/ and adapters may)"
		elif [[ $target == *adapters/* || $target == *app/* || $target == ../* ]]; then
			fail "$f:$line" "the core includes '$target' outside include/ and lib/"
		elif [[ $kind == local && $target != cart/* && $APP_PRIVATE == *" $base "* && $LIB_PRIVATE != *" $base "* ]]; then
			fail "$f:$line" "the core includes app/ header '$target'"
		fi
	done < <(includes "$f")
	# JSON and HTTP belong to app/: the core speaks in cart_err and structs.
	local hits
	hits=$(grep -nE 'cJSON|\bmg_[a-z]|Content-Type|application/(problem\+)?json' "$f" || true)
	while IFS= read -r h; do
		[ -n "$h" ] || continue
		fail "$f:${h%%:*}" "JSON/HTTP detail in the core: ${h#*:}"
	done <<<"$hits"
}

check_adapter_file() {  # adapters/<name>/**
	local f=$1 own line kind target base first
	own=${f#adapters/}; own=${own%%/*}
	while IFS=$'\t' read -r line kind target; do
		base=${target##*/}
		first=${target%%/*}
		if [[ $target == civetweb.h ]]; then
			fail "$f:$line" "adapter includes civetweb.h (HTTP serving is app/'s job)"
		elif [[ $target == *app/* ]]; then
			fail "$f:$line" "adapter includes app/ header '$target'"
		elif [[ $target == lib/* || $target == */lib/* ]]; then
			fail "$f:$line" "adapter includes lib/ private header '$target'"
		elif [[ $kind == local && $target != cart/* && $target != */* && ! -f "$(dirname "$f")/$target" && $LIB_PRIVATE == *" $base "* ]]; then
			fail "$f:$line" "adapter includes lib/ private header '$target'"
		elif [[ $kind == local && $target != cart/* && $target != */* && ! -f "$(dirname "$f")/$target" && $APP_PRIVATE == *" $base "* ]]; then
			fail "$f:$line" "adapter includes app/ header '$target'"
		elif [[ $target == */* && $first != "$own" && $first != .. && $ADAPTERS == *" $first "* &&
			! ( ( $first == aws || $first == codec ) && $own != "$first" ) ]]; then
			# adapters/aws/ (the shared AWS client: credentials, SigV4 calls,
			# retry and breaker) and adapters/codec/ (the event document) are
			# support libraries, not port adapters: adapters build on them.
			fail "$f:$line" "adapter '$own' includes another adapter's header '$target'"
		elif [[ $target == ../* ]]; then
			local dest
			dest=$(realpath -m "$(dirname "$f")/$target")
			case "$dest" in
			"$root"/adapters/"$own"/*) ;;
			"$root"/include/*) ;;
			*) fail "$f:$line" "adapter includes '$target' outside its own directory and include/" ;;
			esac
		fi
	done < <(includes "$f")
}

check_app_file() {  # app/**
	local f=$1 line kind target
	[[ $f == app/server.c ]] && return 0
	while IFS=$'\t' read -r line kind target; do
		if [[ ${target##*/} == civetweb.h ]]; then
			fail "$f:$line" "only app/server.c may include civetweb.h (the rest of app/ uses app/http.h)"
		fi
	done < <(includes "$f")
}

while IFS= read -r f; do
	checked=$((checked + 1))
	[[ $f == include/cart/*.h ]] ||
		fail "$f:1" "include/ holds only the public headers in include/cart/"
	check_public_header "$f"
done < <(sources include)

while IFS= read -r f; do
	checked=$((checked + 1))
	check_lib_file "$f"
done < <(sources lib)

while IFS= read -r f; do
	checked=$((checked + 1))
	check_adapter_file "$f"
done < <(sources adapters)

while IFS= read -r f; do
	checked=$((checked + 1))
	check_app_file "$f"
done < <(sources app)

if [ "$violations" -ne 0 ]; then
	echo "layering: FAILED: $violations violation(s) of the include rules in ../shared/STYLE.md section 1" >&2
	exit 1
fi
echo "layering: ok ($checked files in include/, lib/, adapters/, app/)"
