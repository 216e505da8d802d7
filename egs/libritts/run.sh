#!/usr/bin/env bash
# The paper-style corruption study on LibriTTS (GPU-sized). Targets and intruders come from test-clean,
# which the official multi-speaker model never saw; the base model is either the official
# grad-tts-libri-tts.pt or one trained here on train-clean-100.
#   egs/libritts/run.sh --corpus_root /data/LibriTTS --base_ckpt /ckpt/grad-tts-libri-tts.pt \
#       --dictionary /ckpt/cmu_dictionary                       # official base (its CMUdict 0.7 file)
#   egs/libritts/run.sh --corpus_root /data/LibriTTS            # train the base model first (stage 3)
#   egs/libritts/run.sh --corpus_root /data/LibriTTS --pairs "121:1089 237:260" loss.delta_min=0.01
# Other options are those of recipes/fewshot.sh (--help); key=value arguments are Hydra overrides.
set -euo pipefail

corpus_root=                            # the unpacked LibriTTS (required)
pairs="121:1089 237:260 1284:1320"      # target:intruder pairs; stage 1 keeps their speakers for the study
base_subsets=train-clean-100            # subsets for base training (space- or comma-separated; "" or none: no base data)
study_subsets=test-clean                # subsets the pairs' speakers come from
base_ckpt=                              # a base checkpoint (ours or the official one): stage 1 then prepares the study only
parse_options_pass_through=true         # any other option goes on to recipes/fewshot.sh, which checks it
help_message="$(sed -n '2,9p' "$0")
Options of this script: --corpus_root PATH, --pairs \"T:C ...\" [$pairs], --base_subsets [$base_subsets],
--study_subsets [$study_subsets], --base_ckpt PATH (no base-training data is prepared, no base model trained).
It runs the template from the repository root (relative paths are taken from there), with --local_data_args
built from the options above and the values below."
# The template's options this study sets (its --help prints them as the values in effect).
. "$(dirname "$0")/../../recipes/utils/paper_study.sh"
study=(--exp exp/libritts "${paper_study[@]}")
parse_options_help() {  # this script's options, then the template's with the values this script passes
  printf '%s\n' "$help_message"
  bash "$(dirname "$0")/../../recipes/fewshot.sh" "${study[@]}" --local_data "$(dirname "$0")/local/data.sh" \
    --pairs "$pairs" ${base_ckpt:+--base_ckpt "$base_ckpt"} --help | tail -n +2
}
. "$(dirname "$0")/../../recipes/utils/parse_options.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
[ -n "$corpus_root" ] || { echo "$0: --corpus_root PATH (the unpacked LibriTTS) is required" >&2; exit 1; }
# --local_data_args is split at spaces: each value must be one word.
[[ $corpus_root != *[[:space:]]* ]] || { echo "$0: --corpus_root \"$corpus_root\": a path without spaces, please (link it elsewhere)" >&2; exit 2; }
[ -n "${study_subsets//[ ,]/}" ] || { echo "$0: --study_subsets is empty: name the subsets of the pairs' speakers (e.g. test-clean)" >&2; exit 2; }
if [ -n "$base_ckpt" ]; then
  [ -f "$base_ckpt" ] || { echo "$0: --base_ckpt $base_ckpt: file not found (relative paths are taken from $root)" >&2; exit 2; }
  base_subsets=none  # the base model is given: its training data would go unused
fi
base_subsets=$(tr ' ' ',' <<< "$base_subsets" | sed -E 's/,+/,/g; s/^,|,$//g')
. "$root/recipes/utils/pair_speakers.sh"
speakers=$(pair_speakers "$pairs")

exec "$root/recipes/fewshot.sh" "${study[@]}" --local_data "$here/local/data.sh" \
  --local_data_args "--corpus_root $corpus_root --base_subsets ${base_subsets:-none} --study_subsets ${study_subsets// /,} --speakers $speakers" \
  --pairs "$pairs" ${base_ckpt:+--base_ckpt "$base_ckpt"} \
  ${pass_through_args[@]+"${pass_through_args[@]}"} ${hydra_overrides[@]+"${hydra_overrides[@]}"}
