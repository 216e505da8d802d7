#!/usr/bin/env bash
# Stage 1 of egs/own_corpus: DATA_DIR/study from your recordings (data_prep.folder), the pairs' speakers only.
#   local/data.sh DATA_DIR (--corpus_root DIR | --corpus_csv FILE) [--speakers T,C,...] [--encoding utf-8]
set -euo pipefail
data=$1; shift
corpus_root=
corpus_csv=
speakers=
encoding=utf-8
help_message="Usage: $0 DATA_DIR (--corpus_root DIR | --corpus_csv FILE) [--speakers T,C,...] [--encoding utf-8]"
. "$(dirname "$0")/../../../recipes/utils/parse_options.sh"
speakers=${speakers//,/ }
if [ -n "$corpus_csv" ]; then
  src=(--csv "$corpus_csv")
elif [ -n "$corpus_root" ]; then
  src=("$corpus_root")
else
  echo "$0: --corpus_root DIR or --corpus_csv FILE is required" >&2; exit 2
fi
# shellcheck disable=SC2086
python -m data_prep.folder "${src[@]}" "$data/study" --encoding "$encoding" ${speakers:+--speakers $speakers}
