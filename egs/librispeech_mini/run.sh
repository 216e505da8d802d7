#!/usr/bin/env bash
# The corruption study on real read speech: target LibriSpeech reader 19 (female) corrupted by reader 26
# (male), fine-tuned from the synthvox base model. Needs LibriSpeech's train-clean-100 readers 19 and 26
# (--corpus_root PATH: a folder holding train-clean-100/) and a base checkpoint (default: the committed synthvox base).
# Sized like the CPU preset of egs/synthvox (120 fine-tuning steps, batch 8, lr 4e-4): about 25 minutes on 2 cores.
#   egs/librispeech_mini/run.sh [recipes/fewshot.sh options] [key=value Hydra overrides]
set -euo pipefail

base_ckpt=egs/synthvox/base/base_small.pt   # base checkpoint (relative paths: from the repository root)
corpus_root=            # LibriSpeech root holding train-clean-100/ (required)
parse_options_pass_through=true   # any other option goes on to recipes/fewshot.sh, after this recipe's values
help_message="$(sed -n '2,6p' "$0")
Options of this script: --corpus_root PATH (required), --base_ckpt PATH [$base_ckpt].
It runs the template from the repository root (relative paths are taken from there) with the values below."
# The template's options (and Hydra overrides) this study sets (its --help prints them as the values in effect).
# shellcheck disable=SC2054  # (commas separate the values of --save_steps and --seeds, not array elements)
study=(--exp exp/librispeech_mini --pairs "19:26" --fractions "0 0.30" --seeds 0 --ft_steps 120 --save_steps 60,120
       --n_test 6 --device cpu data.batch_size=8 data.out_size=128 optim.lr=4e-4)
parse_options_help() {  # this script's options, then the template's with the values this script passes
  printf '%s\n' "$help_message"
  bash "$(dirname "$0")/../../recipes/fewshot.sh" "${study[@]}" --local_data "$(dirname "$0")/local/data.sh" \
    --base_ckpt "$base_ckpt" --help | tail -n +2
}
. "$(dirname "$0")/../../recipes/utils/parse_options.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
[ -n "$corpus_root" ] || { echo "$0: --corpus_root PATH (LibriSpeech, holding train-clean-100/) is required" >&2; exit 2; }
if [ ! -f "$base_ckpt" ]; then
  echo "$0: base model $base_ckpt not found (relative paths are taken from $root): train it with" \
    "egs/synthvox/run.sh (stage 3) or pass --base_ckpt PATH" >&2
  exit 2
fi
exec "$root/recipes/fewshot.sh" "${study[@]}" --local_data "$here/local/data.sh" --base_ckpt "$base_ckpt" \
  --local_data_args "--corpus_root $corpus_root" \
  ${pass_through_args[@]+"${pass_through_args[@]}"} ${hydra_overrides[@]+"${hydra_overrides[@]}"}
