#!/usr/bin/env bash
# Stage 1 of egs/librispeech_mini: the three LibriSpeech readers of the development sample as the study data.
#   local/data.sh DATA_DIR [--corpus_root PATH]
set -euo pipefail
data=$1; shift
corpus_root=$(cd "$(dirname "$0")/../../.." && pwd)/../shared/data/librispeech-3spk
help_message="Usage: $0 DATA_DIR [--corpus_root PATH]"
. "$(dirname "$0")/../../../recipes/utils/parse_options.sh"
python -m data_prep.librispeech "$corpus_root" "$data/study"
