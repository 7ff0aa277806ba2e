#!/bin/bash
# bench-libfabric.sh [-o FILE] - issue 14's table: libfabric's shm provider
# over uxpmem (FI_SHM_USE_XPMEM=1) vs CMA (=0), plain and under xpmem-run,
# MB/s of fabtests' fi_rma_bw read/write, fi_rdm_bw and fi_rdm_tagged_bw,
# min/median/max of 3 runs, side by side in one run, with the ratios and
# the targets (uxpmem >= 1.0x CMA at every size, >= 1.5x at 1 MiB and above
# for RMA).  Markdown on stdout (and into FILE with -o, e.g.
# docs/clients-bench.md).
#
# Needs the environment of a stage (UXP_PREFIX, UXP_SRCDIR,
# UXP_CLIENTS_CACHE, UXP_CLIENTS_WORK; see clients-lib.sh) and builds
# libfabric like stage-libfabric.sh when it is not cached.  fabtests'
# default iterations, after 100 warm-up transfers (-w 100: every slot of
# its window of 64 is touched once, so one-time costs - page faults, and
# for uxpmem without xpmem-run the in-place conversion of the buffers - are
# outside the timed part, for both paths alike).  UXP_LIBFABRIC_TESTS,
# UXP_LIBFABRIC_SIZES and UXP_LIBFABRIC_REPS narrow it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/clients/clients-lib.sh
. "$here/clients-lib.sh"
# shellcheck source=tests/clients/libfabric-lib.sh
. "$here/libfabric-lib.sh"

out=
if [ "${1:-}" = -o ] && [ $# -eq 2 ]; then
	out=$2
elif [ $# -ne 0 ]; then
	echo "usage: $0 [-o FILE]" >&2
	exit 2
fi
cl_require_env
tests=${UXP_LIBFABRIC_TESTS:-rma_read rma_write rdm_bw rdm_tagged_bw}
sizes=${UXP_LIBFABRIC_SIZES:-65536 1048576 16777216}
reps=${UXP_LIBFABRIC_REPS:-3}

lf_setup >&2
case $? in
0) ;;
77) echo "bench-libfabric: $lf_why" >&2; exit 77 ;;
*) echo "bench-libfabric: cannot build libfabric" >&2; exit 1 ;;
esac

# mbs TEST SIZE XPMEM RUNNER: MB/s of one client run, or "failed".
mbs() {
	local t=$1 size=$2 x=$3 runner=$4 name port args wrap=()
	name="bench $t $size $x $runner"
	[ -n "$runner" ] && wrap=("$UXP_PREFIX/bin/xpmem-run")
	port=$(cl_free_port)
	read -r -a args <<<"$(lf_args "$t")"
	args[0]=$lf_inst/bin/${args[0]}
	args+=(-p shm -E="$port" -S "$size" -w 100)
	# shellcheck disable=SC2046
	if cl_pair "$name" "$(cl_scale 300)" "$port" env $(lf_env "$x") "${wrap[@]}" "${args[@]}" -- \
		env $(lf_env "$x") "${wrap[@]}" "${args[@]}" 127.0.0.1 >/dev/null 2>&1; then
		awk '/^[0-9]+[kmg]? +[0-9]+[kmg]? / { v = $5 } END { if (v == "") print "failed"; else print v }' \
			"$(cl_log_path "$name.client")"
	else
		echo failed
	fi
}


human() {
	case $1 in
	65536) echo "64 KiB" ;; 1048576) echo "1 MiB" ;; 16777216) echo "16 MiB" ;; *) echo "$1 B" ;;
	esac
}

# shellcheck disable=SC2016
label() {
	case $1 in
	rma_read) echo '`fi_rma_bw -o read`' ;; rma_write) echo '`fi_rma_bw -o write`' ;;
	*) echo "\`fi_$1\`" ;;
	esac
}

table=$(mktemp)
trap 'rm -f "$table"' EXIT
met=0 missed=0
{
	echo "# libfabric shm provider: uxpmem vs CMA"
	echo
	echo "\`tests/clients/bench-libfabric.sh\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs," \
		"load $(cut -d' ' -f1-3 /proc/loadavg) at the start; libfabric $lf_rev (shm provider), fabtests" \
		"default iterations after 100 warm-up transfers; MB/s, min / **median** / max of $reps runs." \
		"CMA: \`FI_SHM_USE_XPMEM=0\`; uxpmem: \`=1\`; xpmem-run: both peers under \`xpmem-run\`." \
		"Ratio: uxpmem median / CMA median (target >= 1.0x, RMA at 1 MiB and above >= 1.5x)."
	echo
	echo "| test | size | CMA plain | uxpmem plain | ratio | CMA xpmem-run | uxpmem xpmem-run | ratio |"
	echo "|---|---|---|---|---|---|---|---|"
} >"$table"
for t in $tests; do
	for size in $sizes; do
		row="| $(label "$t") | $(human "$size") |"
		for runner in "" xpmem-run; do
			declare -A med=()
			for x in 0 1; do
				vals=()
				for ((r = 0; r < reps; r++)); do
					vals+=("$(mbs "$t" "$size" "$x" "$runner")")
				done
				s=$(cl_stats "${vals[@]}")
				if [ "$s" = failed ]; then
					row="$row failed |"
					med[$x]=
				else
					read -r lo m hi <<<"$s"
					row="$row $lo / **$m** / $hi |"
					med[$x]=$m
				fi
			done
			want=1.0
			case $t in rma_*) [ "$size" -ge 1048576 ] && want=1.5 ;; esac
			if [ -n "${med[0]}" ] && [ -n "${med[1]}" ] && [ "${med[0]}" != 0 ]; then
				ratio=$(awk -v a="${med[1]}" -v b="${med[0]}" 'BEGIN { printf "%.2f", a / b }')
				if awk -v r="$ratio" -v w="$want" 'BEGIN { exit !(r >= w) }'; then
					met=$((met + 1)); row="$row ${ratio}x |"
				else
					missed=$((missed + 1)); row="$row **${ratio}x** (< $want) |"
				fi
			else
				missed=$((missed + 1)); row="$row - |"
			fi
			# the columns go CMA, uxpmem, ratio for each runner
		done
		echo "$row" >>"$table"
		echo "$row" >&2
	done
done
{
	echo
	echo "Targets met: $met of $((met + missed))."
} >>"$table"
cat "$table"
[ -n "$out" ] && cp "$table" "$out"
exit 0
