#!/bin/sh
# make-corpus.sh - (re)generate the seed corpus tests/fuzz/corpus/{decode,conn}
# from make-corpus.c (the messages are built with proto.h's struct, so the
# corpus follows the protocol).  Usage: tests/fuzz/make-corpus.sh [OUTDIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$here/corpus}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -I"$top/include" -I"$top/transports/shm" \
	-o "$tmp/make-corpus" "$here/make-corpus.c"
rm -rf "$out/decode" "$out/conn"
"$tmp/make-corpus" "$out"
echo "make-corpus: $(find "$out/decode" -type f | wc -l) decode + $(find "$out/conn" -type f | wc -l) conn inputs," \
	"$(cat "$out"/decode/* "$out"/conn/* | wc -c) bytes in $out"
