#!/usr/bin/env bash
# Runs the decoder fuzzers (issue 12: at least 10^7 execs each) one after
# the other and prints each one's exec count, time and rate.
#
# usage: test/fuzz/run.sh [execs] [fuzzer ...]
#   execs    per fuzzer, default 10000000
#   fuzzer   pkg:Name, default: every decoder fuzzer listed below
#
# -fuzzminimizetime is cut to 5s: the engine minimizes every new
# interesting input for up to 60 s by default, during which it runs no
# counted exec; on inputs of 20 KB (the recorded Forward transcripts) that
# was most of the wall time. Minimizing less changes what is kept in the
# corpus, not what is tried. A failure stops the script with the engine's
# report (the failing input is written under the package's testdata/fuzz).
set -euo pipefail
cd "$(dirname "$0")/../.."
execs=${1:-10000000}
shift || true
fuzzers=("$@")
if [ ${#fuzzers[@]} -eq 0 ]; then
	fuzzers=(
		./internal/wire:FuzzReadRequest
		./inputs/forward:FuzzConn
		./inputs/docker:FuzzParse
		./inputs/cri:FuzzParseCRI
		./internal/record:FuzzPayload
		./internal/record:FuzzFind
		./internal/codec/jsonl:FuzzAppendRecord
		./outputs/elasticsearch:FuzzParseResponse
		./internal/parse:FuzzNginx
		./internal/parse:FuzzSyslog
		./internal/parse:FuzzLogfmt
		./internal/parse:FuzzKlog
		./internal/parse:FuzzTime
		./internal/multiline:FuzzJoiner
	)
fi
for f in "${fuzzers[@]}"; do
	pkg=${f%%:*} name=${f##*:}
	start=$(date +%s)
	log=$(mktemp)
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "${execs}x" -fuzzminimizetime 5s "$pkg" >"$log" 2>&1; then
		cat "$log"
		echo "FAIL $pkg $name"
		exit 1
	fi
	secs=$(( $(date +%s) - start ))
	last=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	printf '%-40s %-20s execs %s in %ss (%s/s)\n' "$pkg" "$name" "${last:-?}" "$secs" "$(( ${last:-0} / (secs > 0 ? secs : 1) ))"
	rm -f "$log"
done
