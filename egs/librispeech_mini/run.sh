#!/usr/bin/env bash
# The corruption study on real read speech: target LibriSpeech reader 19 (female) corrupted by reader 26
# (male), fine-tuned from the synthvox base model. Needs ../shared/data/librispeech-3spk (or --corpus_root
# via --local_data_args "--corpus_root PATH") and a base checkpoint (default: egs/synthvox/base/base_small.pt).
# Sized like the CPU preset of egs/synthvox (120 fine-tuning steps, batch 8, lr 4e-4): about 25 minutes on 2 cores.
#   egs/librispeech_mini/run.sh [recipes/fewshot.sh options] [key=value Hydra overrides]
set -euo pipefail

base_ckpt=              # base checkpoint (default: egs/synthvox/base/base_small.pt)
parse_options_pass_through=true   # any other option goes on to recipes/fewshot.sh, after this recipe's values
help_message="$(sed -n '2,6p' "$0")
$(bash "$(dirname "$0")/../../recipes/fewshot.sh" --help)"
. "$(dirname "$0")/../../recipes/utils/parse_options.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "$base_ckpt" ]; then
  base_ckpt=$root/egs/synthvox/base/base_small.pt
  if [ ! -f "$base_ckpt" ]; then
    echo "$0: base model $base_ckpt not found: train it with egs/synthvox/run.sh (stage 3) or pass --base_ckpt PATH" >&2
    exit 1
  fi
fi
cd "$root"
exec "$root/recipes/fewshot.sh" --exp "$root/exp/librispeech_mini" --local_data "$here/local/data.sh" \
  --pairs "19:26" --fractions "0 0.30" --seeds 0 --ft_steps 120 --save_steps 60,120 --n_test 6 --device cpu \
  --base_ckpt "$base_ckpt" data.batch_size=8 data.out_size=128 optim.lr=4e-4 \
  ${pass_through_args[@]+"${pass_through_args[@]}"} ${hydra_overrides[@]+"${hydra_overrides[@]}"}
