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
base_ckpt=                              # a base checkpoint (ours or the official one): stage 1 then prepares the study only
parse_options_pass_through=true         # any other option goes on to recipes/fewshot.sh, which checks it
help_message="$(sed -n '2,8p' "$0")
Options of this script: --corpus_root PATH, --pairs \"T:C ...\" [$pairs], --mic [$mic],
--base_ckpt PATH (no base-training data is prepared, no base model trained).
It runs the template from the repository root (relative paths are taken from there), with --local_data_args
built from the options above and the values below."
# The template's options this study sets (its --help prints them as the values in effect).
. "$(dirname "$0")/../../recipes/utils/paper_study.sh"
study=(--exp exp/vctk "${paper_study[@]}")
parse_options_help() {  # this script's options, then the template's with the values this script passes
  printf '%s\n' "$help_message"
  bash "$(dirname "$0")/../../recipes/fewshot.sh" "${study[@]}" --local_data "$(dirname "$0")/local/data.sh" \
    --pairs "$pairs" ${base_ckpt:+--base_ckpt "$base_ckpt"} --help | tail -n +2
}
. "$(dirname "$0")/../../recipes/utils/parse_options.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
[ -n "$corpus_root" ] || { echo "$0: --corpus_root PATH (the unpacked VCTK) is required" >&2; exit 1; }
# --local_data_args is split at spaces: each value must be one word. With a base checkpoint it says --base false:
# its training data would go unused.
[[ $corpus_root != *[[:space:]]* ]] || { echo "$0: --corpus_root \"$corpus_root\": a path without spaces, please (link it elsewhere)" >&2; exit 2; }
case "$mic" in mic1|mic2) ;; *) echo "$0: --mic $mic: mic1 or mic2" >&2; exit 2 ;; esac
if [ -n "$base_ckpt" ]; then
  [ -f "$base_ckpt" ] || { echo "$0: --base_ckpt $base_ckpt: file not found (relative paths are taken from $root)" >&2; exit 2; }
fi
. "$root/recipes/utils/pair_speakers.sh"
speakers=$(pair_speakers "$pairs")

exec "$root/recipes/fewshot.sh" "${study[@]}" --local_data "$here/local/data.sh" \
  --local_data_args "--corpus_root $corpus_root --mic $mic --speakers $speakers${base_ckpt:+ --base false}" \
  --pairs "$pairs" ${base_ckpt:+--base_ckpt "$base_ckpt"} \
  ${pass_through_args[@]+"${pass_through_args[@]}"} ${hydra_overrides[@]+"${hydra_overrides[@]}"}
