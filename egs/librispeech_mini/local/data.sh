#!/usr/bin/env bash
# Stage 1 of egs/librispeech_mini: LibriSpeech readers (train-clean-100 19, 26, 27, or any) as the study data.
#   local/data.sh DATA_DIR --corpus_root PATH
set -euo pipefail
data=$1; shift
corpus_root=
help_message="Usage: $0 DATA_DIR --corpus_root PATH"
. "$(dirname "$0")/../../../recipes/utils/parse_options.sh"
[ -n "$corpus_root" ] || { echo "$0: --corpus_root PATH (LibriSpeech, e.g. holding train-clean-100/) is required" >&2; exit 2; }
python -m data_prep.librispeech "$corpus_root" "$data/study"
