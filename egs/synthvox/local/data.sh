#!/usr/bin/env bash
# Stage 1 of egs/synthvox: the synthetic corpus. DATA_DIR/base holds the voices the base model is
# trained on (built only when --base_voices > 0), DATA_DIR/study the held-out target/intruder voices.
#   local/data.sh DATA_DIR [--base_voices 24 --base_utts 60 --study_first_voice 24 --study_voices 6 --study_utts 45 --jobs 2]
set -euo pipefail
data=$1; shift
base_voices=24
base_utts=60
study_first_voice=24
study_voices=6
study_utts=45
seed=0
jobs=2
help_message="Usage: $0 DATA_DIR [--base_voices N --base_utts N --study_first_voice K --study_voices N --study_utts N --seed S --jobs J]"
. "$(dirname "$0")/../../../recipes/utils/parse_options.sh"

if [ "$base_voices" -gt 0 ]; then
  python -m data_prep.synthvox "$data/base" --voices "$base_voices" --utts-per-voice "$base_utts" --seed "$seed" --jobs "$jobs"
fi
python -m data_prep.synthvox "$data/study" --first-voice "$study_first_voice" --voices "$study_voices" \
  --utts-per-voice "$study_utts" --seed "$seed" --jobs "$jobs"
