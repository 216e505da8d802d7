#!/usr/bin/env bash
# Stage 1 of egs/libritts: DATA_DIR/base (base-training speakers) and DATA_DIR/study (targets and intruders).
#   local/data.sh DATA_DIR --corpus_root PATH [--base_subsets train-clean-100,train-clean-360 | none]
#                 [--study_subsets test-clean] [--speakers 121,1089,...] [--max_utts 0]
# --base_subsets none (or "") prepares no DATA_DIR/base: for a run with a base checkpoint.
set -euo pipefail
data=$1; shift
corpus_root=
base_subsets=train-clean-100
study_subsets=test-clean
speakers=
max_utts=0
help_message="Usage: $0 DATA_DIR --corpus_root PATH [--base_subsets S|none] [--study_subsets S] [--speakers T,C,...] [--max_utts N]
  --base_subsets none (or \"\"): no DATA_DIR/base (a run with a base checkpoint); --max_utts limits the base speakers"
. "$(dirname "$0")/../../../recipes/utils/parse_options.sh"
[ -n "$corpus_root" ] || { echo "$0: --corpus_root is required" >&2; exit 1; }
[[ $max_utts =~ ^[0-9]+$ ]] || { echo "$0: --max_utts $max_utts: a whole number (0: every utterance)" >&2; exit 2; }
[ -n "${study_subsets//[ ,]/}" ] || { echo "$0: --study_subsets is empty: name the subsets of the pairs' speakers (e.g. test-clean)" >&2; exit 2; }
limit=(); [ "$max_utts" -gt 0 ] && limit=(--max-utts-per-speaker "$max_utts")
base_subsets=${base_subsets//,/ }; study_subsets=${study_subsets//,/ }; speakers=${speakers//,/ }
if [ -n "${base_subsets// /}" ] && [ "$base_subsets" != none ]; then
  # shellcheck disable=SC2086
  python -m data_prep.libritts "$corpus_root" "$data/base" --subsets $base_subsets "${limit[@]+"${limit[@]}"}"
fi
# shellcheck disable=SC2086
python -m data_prep.libritts "$corpus_root" "$data/study" --subsets $study_subsets ${speakers:+--speakers $speakers}
