#!/usr/bin/env bash
# Stage 1 of egs/vctk: DATA_DIR/study holds the study speakers, DATA_DIR/base every other speaker.
#   local/data.sh DATA_DIR --corpus_root PATH --speakers p225,p226,... [--mic mic1] [--max_utts 0] [--base true]
# --base false prepares no DATA_DIR/base: for a run with a base checkpoint.
set -euo pipefail
data=$1; shift
corpus_root=
speakers=
mic=mic1
max_utts=0
base=true
help_message="Usage: $0 DATA_DIR --corpus_root PATH --speakers T,C,... [--mic mic1|mic2] [--max_utts N] [--base true|false]
  --base false: no DATA_DIR/base (a run with a base checkpoint); --max_utts limits the base speakers"
. "$(dirname "$0")/../../../recipes/utils/parse_options.sh"
[ -n "$corpus_root" ] && [ -n "$speakers" ] || { echo "$0: --corpus_root and --speakers are required" >&2; exit 1; }
[[ $max_utts =~ ^[0-9]+$ ]] || { echo "$0: --max_utts $max_utts: a whole number (0: every utterance)" >&2; exit 2; }
case "$base" in true|false) ;; *) echo "$0: --base $base: true or false" >&2; exit 2 ;; esac
limit=(); [ "$max_utts" -gt 0 ] && limit=(--max-utts-per-speaker "$max_utts")
speakers=${speakers//,/ }
# shellcheck disable=SC2086
python -m data_prep.vctk "$corpus_root" "$data/study" --mic "$mic" --speakers $speakers
[ "$base" = true ] || exit 0
others=$(find "$corpus_root/txt" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort \
  | { grep -vxF -f <(tr ' ' '\n' <<< "$speakers" | sed '/^$/d') || true; })
if [ -z "$others" ]; then
  echo "$0: $corpus_root/txt has no speaker outside --speakers $speakers for the base-training data; give the run" \
    "a base checkpoint (egs/vctk/run.sh --base_ckpt PATH), or speakers outside the pairs" >&2
  exit 2
fi
# shellcheck disable=SC2086
python -m data_prep.vctk "$corpus_root" "$data/base" --mic "$mic" --speakers $others "${limit[@]+"${limit[@]}"}"
