#!/usr/bin/env bash
# The corruption study on your own recordings: two or more speakers, one folder each (utt.wav + utt.txt side by
# side) or a CSV with columns path,text,speaker; fine-tuned from a base checkpoint you give (ours, or the official
# grad-tts-libri-tts.pt with --dictionary cmu_dictionary). Copy this folder to egs/<your corpus>/ to keep a study.
#   egs/own_corpus/run.sh --corpus_root /data/mine --pairs "alice:bob" --base_ckpt grad-tts-libri-tts.pt \
#       --dictionary cmu_dictionary --encoder ecapa --encoder_source spkrec-ecapa-voxceleb
#   egs/own_corpus/run.sh --corpus_csv /data/mine.csv --pairs "alice:bob carol:dave" --base_ckpt base.pt --stage 4
# Other options are those of recipes/fewshot.sh (--help); key=value arguments are Hydra overrides.
set -euo pipefail

corpus_root=            # a folder with one sub-folder per speaker (or give --corpus_csv)
corpus_csv=             # a CSV with columns path,text,speaker (instead of --corpus_root)
pairs=                  # target:intruder pairs, e.g. "alice:bob" (required); stage 1 keeps their speakers
base_ckpt=              # the base checkpoint to fine-tune (required: ours, or an official one)
exp=exp/own_corpus      # experiment root
parse_options_pass_through=true   # any other option goes on to recipes/fewshot.sh, which checks it
help_message="$(sed -n '2,8p' "$0")
Options of this script: --corpus_root PATH | --corpus_csv FILE, --pairs \"T:C ...\" (required),
--base_ckpt PATH (required), --exp [$exp]. It runs the template from the repository root (relative paths are
taken from there) with the template's own study design unless you override it (e.g. --n_shot 10 --fractions \"0 0.3\")."
parse_options_help() {  # this script's options, then the template's with the values this script passes
  printf '%s\n' "$help_message"
  bash "$(dirname "$0")/../../recipes/fewshot.sh" --exp "$exp" --local_data "$(dirname "$0")/local/data.sh" \
    ${pairs:+--pairs "$pairs"} ${base_ckpt:+--base_ckpt "$base_ckpt"} --help | tail -n +2
}
. "$(dirname "$0")/../../recipes/utils/parse_options.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
if [ -n "$corpus_root" ] && [ -n "$corpus_csv" ]; then
  echo "$0: give --corpus_root or --corpus_csv, not both" >&2; exit 2
fi
source_args=${corpus_root:+--corpus_root $corpus_root}${corpus_csv:+--corpus_csv $corpus_csv}
[ -n "$source_args" ] || { echo "$0: --corpus_root DIR (one folder per speaker) or --corpus_csv FILE is required" >&2; exit 2; }
# --local_data_args is split at spaces: each value must be one word.
[[ "$corpus_root$corpus_csv" != *[[:space:]]* ]] || { echo "$0: the corpus path must not hold spaces (link it elsewhere)" >&2; exit 2; }
[ -n "$pairs" ] || { echo "$0: --pairs \"TARGET:INTRUDER ...\" is required (speaker ids as the corpus names them)" >&2; exit 2; }
[ -n "$base_ckpt" ] || { echo "$0: --base_ckpt PATH is required (a corpus of a few speakers cannot train a base model)" >&2; exit 2; }
[ -f "$base_ckpt" ] || { echo "$0: --base_ckpt $base_ckpt: file not found (relative paths are taken from $root)" >&2; exit 2; }
. "$root/recipes/utils/pair_speakers.sh"
speakers=$(pair_speakers "$pairs")

exec "$root/recipes/fewshot.sh" --exp "$exp" --local_data "$here/local/data.sh" \
  --local_data_args "$source_args --speakers $speakers" --pairs "$pairs" --base_ckpt "$base_ckpt" \
  ${pass_through_args[@]+"${pass_through_args[@]}"} ${hydra_overrides[@]+"${hydra_overrides[@]}"}
