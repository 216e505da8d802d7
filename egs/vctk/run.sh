#!/usr/bin/env bash
# The paper-style corruption study on VCTK (GPU-sized). A base model is trained on the VCTK speakers
# outside the study pairs (stage 3), or given: ours, or the official grad-tts-libri-tts.pt (then also
# --dictionary with the official cmu_dictionary file).
#   egs/vctk/run.sh --corpus_root /data/VCTK-Corpus-0.92
#   egs/vctk/run.sh --corpus_root /data/VCTK-Corpus-0.92 --base_ckpt exp/vctk/base/ckpt/step_0100000.pt --stage 4
#   egs/vctk/run.sh --corpus_root /data/VCTK --pairs "p225:p226 p228:p232" --seeds 0 loss.schedule=snr
# Other options are those of recipes/fewshot.sh (--help); key=value arguments are Hydra overrides.
set -euo pipefail

corpus_root=                            # the unpacked VCTK (required)
pairs="p225:p226 p228:p227 p229:p232"   # target:intruder pairs; stage 1 keeps their speakers for the study
mic=mic1                                # mic1 | mic2
parse_options_pass_through=true         # any other option goes on to recipes/fewshot.sh, which checks it
help_message="$(sed -n '2,8p' "$0")
Options of this script: --corpus_root PATH, --pairs \"T:C ...\" [$pairs], --mic [$mic]
$(bash "$(dirname "$0")/../../recipes/fewshot.sh" --help)"
. "$(dirname "$0")/../../recipes/utils/parse_options.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ -n "$corpus_root" ] || { echo "$0: --corpus_root PATH (the unpacked VCTK) is required" >&2; exit 1; }
. "$root/recipes/utils/pair_speakers.sh"
speakers=$(pair_speakers "$pairs")

cd "$root"
exec "$root/recipes/fewshot.sh" --exp "$root/exp/vctk" --local_data "$here/local/data.sh" \
  --local_data_args "--corpus_root $corpus_root --mic $mic --speakers $speakers" \
  --pairs "$pairs" --seeds 0,1,2 --fractions "0 0.15 0.30 0.45" --ft_steps 2000 --save_steps 250,500,1000,2000 \
  --n_shot 20 --n_ref 10 --n_test 10 --base_experiment base \
  ${pass_through_args[@]+"${pass_through_args[@]}"} ${hydra_overrides[@]+"${hydra_overrides[@]}"}
