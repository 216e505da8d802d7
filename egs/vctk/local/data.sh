#!/usr/bin/env bash
# Stage 1 of egs/vctk: DATA_DIR/study holds the study speakers, DATA_DIR/base every other speaker.
#   local/data.sh DATA_DIR --corpus_root PATH --speakers p225,p226,... [--mic mic1] [--max_utts 0]
set -euo pipefail
data=$1; shift
corpus_root=
speakers=
mic=mic1
max_utts=0
help_message="Usage: $0 DATA_DIR --corpus_root PATH --speakers T,C,... [--mic mic1|mic2] [--max_utts N]"
. "$(dirname "$0")/../../../recipes/utils/parse_options.sh"
[ -n "$corpus_root" ] && [ -n "$speakers" ] || { echo "$0: --corpus_root and --speakers are required" >&2; exit 1; }
limit=(); [ "$max_utts" -gt 0 ] && limit=(--max-utts-per-speaker "$max_utts")
speakers=${speakers//,/ }
# shellcheck disable=SC2086
python -m data_prep.vctk "$corpus_root" "$data/study" --mic "$mic" --speakers $speakers
others=$(find "$corpus_root/txt" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | grep -vxF -f <(tr ' ' '\n' <<< "$speakers" | sed '/^$/d'))
# shellcheck disable=SC2086
python -m data_prep.vctk "$corpus_root" "$data/base" --mic "$mic" --speakers $others "${limit[@]+"${limit[@]}"}"
