#!/usr/bin/env bash
# The paper-style corruption study on VCTK (GPU-sized). A base model is trained on the VCTK speakers
# outside the study pairs (stage 3), or given: ours, or the official grad-tts-libri-tts.pt (then also
# --dictionary with the official cmu_dictionary file).
#   egs/vctk/run.sh --corpus_root /data/VCTK-Corpus-0.92
#   egs/vctk/run.sh --corpus_root /data/VCTK-Corpus-0.92 --base_ckpt exp/vctk/base/ckpt/step_0100000.pt --stage 4
#   egs/vctk/run.sh --corpus_root /data/VCTK --pairs "p225:p226 p228:p232" --seeds 0 loss.schedule=snr
# Other options are those of recipes/fewshot.sh (--help); key=value arguments are Hydra overrides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

corpus_root=
pairs="p225:p226 p228:p227 p229:p232"
mic=mic1
rest=()
while [ $# -gt 0 ]; do   # the options this script consumes; the rest go to the template
  case "$1" in
    --corpus_root) corpus_root=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --mic) mic=$2; shift 2 ;;
    --help|-h) sed -n '2,9p' "$0"; "$root/recipes/fewshot.sh" --help; exit 0 ;;
    *) rest+=("$1"); shift ;;
  esac
done
[ -n "$corpus_root" ] || { echo "$0: --corpus_root PATH (the unpacked VCTK) is required" >&2; exit 1; }
. "$root/recipes/utils/pair_speakers.sh"
speakers=$(pair_speakers "$pairs")

cd "$root"
exec "$root/recipes/fewshot.sh" --exp "$root/exp/vctk" --local_data "$here/local/data.sh" \
  --local_data_args "--corpus_root $corpus_root --mic $mic --speakers $speakers" \
  --pairs "$pairs" --seeds 0,1,2 --fractions "0 0.15 0.30 0.45" --ft_steps 2000 --save_steps 250,500,1000,2000 \
  --n_shot 20 --n_ref 10 --n_test 10 --base_experiment base \
  "${rest[@]+"${rest[@]}"}"
