#!/usr/bin/env bash
# The embedded default: the corruption study on the synthetic synthvox corpus, CPU-sized by default.
#   egs/synthvox/run.sh                      # preset cpu: 1 pair, {l2, huber, scheduled_huber} x {0, 0.3} (demo)
#   egs/synthvox/run.sh --preset study       # the CPU study: 5 pairs x 2 seeds x {0, 0.3} x 3 losses (~80 min, 2 cores)
#   egs/synthvox/run.sh --preset decisive    # the pre-registered study: the 36 pairs of decisive/pairs.tsv x 1 seed x
#                                            # {0, 0.3} x {l2, scheduled_huber, reweighted_l2} (decisive/RESULTS.md)
#   egs/synthvox/run.sh --preset gpu         # official-size model, 3 pairs x 3 seeds x p in {0, .15, .30, .45}
#   egs/synthvox/run.sh --preset smoke       # seconds-long end-to-end check with a tiny model (CI)
#   egs/synthvox/run.sh --base_ckpt PATH --stage 4 loss.delta_min=0.01   # own base model, Hydra overrides
# A run writes only under exp/. The committed RESULTS.md is the study's; refreshing it is explicit (curated
# text is kept), from a study run or from the committed summaries alone:
#   egs/synthvox/run.sh --preset study --stage 8 --force_stage 8 --results_md egs/synthvox/RESULTS.md
#   gradtts-report root=egs/synthvox/results/study/finetune out_dir=exp/study_report results_md=egs/synthvox/RESULTS.md
set -euo pipefail

preset=cpu              # cpu | study | decisive | gpu | smoke
exp=                    # experiment root (default: exp/synthvox, exp/synthvox_study, ... by preset)
base_ckpt=              # a base checkpoint instead of the committed one (cpu, study) or of stage 3
parse_options_pass_through=true   # any other option goes on to recipes/fewshot.sh, after the preset's values
help_message="Usage: $0 [--preset cpu|study|decisive|gpu|smoke] [recipes/fewshot.sh options] [key=value Hydra overrides]
Options of the template (below, with the values of the preset given before --help) override the preset's.
It runs the template from the repository root (relative paths are taken from there)."
parse_options_help() {  # this script's usage, then the template's options with the values the preset passes
  printf '%s\n' "$help_message"
  preset_opts "$(cd "$(dirname "$0")" && pwd)"
  bash "$(dirname "$0")/../../recipes/fewshot.sh" "${opts[@]}" ${hydra[@]+"${hydra[@]}"} --help | tail -n +2
}
preset_opts() {  # preset_opts HERE: sets opts (the template options of --preset) and hydra (its Hydra overrides)
  local here=$1 committed_base=$1/base/base_small.pt base=$base_ckpt base_voices=24 cpu_cell
  # cpu, study and decisive fine-tune the committed base model; every preset uses --base_ckpt when given.
  case "$preset" in cpu|study|decisive) [ -n "$base" ] || [ ! -f "$committed_base" ] || base=$committed_base ;; esac
  # With a base model, stage 1 prepares the study voices only. Without one, stage 3 trains one (smoke on 3 voices,
  # the others on 24; base_cpu takes about an hour on 2 cores).
  [ "$preset" = smoke ] && base_voices=3
  [ -z "$base" ] || base_voices=0
  # The CPU cell (benchmarks/bench_cell.py): two 1-thread jobs side by side, bf16 U-Net in training, and only
  # the last step synthesised and scored (step 0 once per pair).
  # shellcheck disable=SC2054  # (commas separate the values of --save_steps and --seeds, not array elements)
  cpu_cell=(--ft_steps 120 --save_steps 60,120 --synth_steps 120 --n_shot 20 --n_test 6 --n_ref 10
            --grid_jobs 2 --device cpu --base_experiment base_cpu)
  hydra=()
  # shellcheck disable=SC2054
  case "$preset" in
    cpu)
      opts=(--exp "${exp:-exp/synthvox}" --pairs "sv024:sv025" --fractions "0 0.30" --seeds 0 "${cpu_cell[@]}"
            --local_data_args "--base_voices $base_voices --base_utts 60 --study_voices 2 --study_utts 45")
      hydra=(data.batch_size=8 data.out_size=128 optim.lr=1e-3 trainer.precision=bf16)
      ;;
    study)
      opts=(--exp "${exp:-exp/synthvox_study}" --fractions "0 0.30" --seeds 0,1 "${cpu_cell[@]}"
            --pairs "sv024:sv025 sv026:sv027 sv028:sv029 sv030:sv031 sv032:sv033"
            --local_data_args "--base_voices $base_voices --base_utts 60 --study_voices 10 --study_utts 45")
      hydra=(data.batch_size=8 data.out_size=128 optim.lr=1e-3 trainer.precision=bf16)
      ;;
    decisive)
      # The pairs come from decisive/pairs.tsv (egs/synthvox/local/decisive_pairs.py). Stage 1 builds study voices
      # as one contiguous range, so it covers sv034 up to the highest voice a pair uses.
      decisive_pairs "$here/decisive/pairs.tsv"
      opts=(--exp "${exp:-exp/synthvox_decisive}" --fractions "0 0.30" --seeds 0 "${cpu_cell[@]}"
            --losses "l2,scheduled_huber,reweighted_l2" --pairs "$tsv_pairs"
            --local_data_args "--base_voices $base_voices --base_utts 60 --study_first_voice 34 --study_voices $((tsv_last - 33)) --study_utts 45")
      hydra=(data.batch_size=8 data.out_size=128 optim.lr=1e-3 trainer.precision=bf16)
      ;;
    gpu)
      opts=(--exp "${exp:-exp/synthvox_gpu}" --pairs "sv024:sv025 sv026:sv027 sv028:sv029" --seeds 0,1,2
            --fractions "0 0.15 0.30 0.45" --ft_steps 2000 --save_steps 250,500,1000,2000 --base_experiment base
            --local_data_args "--base_voices $base_voices --base_utts 60 --study_voices 6 --study_utts 45")
      ;;
    smoke)
      opts=(--exp "${exp:-exp/synthvox_smoke}" --pairs "sv024:sv025" --fractions "0 0.30" --seeds 0
            --n_shot 6 --n_ref 3 --n_test 2 --ft_steps 4 --save_steps 2,4 --base_experiment smoke --vocoder griffinlim
            --base_overrides "trainer.max_steps=10" --device cpu --jobs 2
            --local_data_args "--base_voices $base_voices --base_utts 6 --study_voices 2 --study_utts 12")
      hydra=(data.batch_size=4 data.out_size=32 data.num_workers=0 model=tiny trainer.deterministic=false
             trainer.tensorboard=false trainer.progress=false trainer.sample_every=0)
      ;;
    *) echo "$0: unknown preset $preset (cpu, study, decisive, gpu, smoke)" >&2; exit 2 ;;
  esac
  opts=(--local_data "$here/local/data.sh" --need_synth true "${opts[@]}" ${base:+--base_ckpt "$base"})
}
decisive_pairs() {  # decisive_pairs PAIRS_TSV: sets tsv_pairs ("T:C ...") and tsv_last (the highest voice index)
  local tsv=$1
  [ -s "$tsv" ] || { echo "$0: $tsv is missing: run python egs/synthvox/local/decisive_pairs.py $(dirname "$tsv")" >&2; exit 2; }
  tsv_pairs=$(awk -F'\t' 'NR > 1 { printf "%s%s:%s", (NR > 2 ? " " : ""), $1, $2 }' "$tsv")
  tsv_last=$(awk -F'\t' 'NR > 1 { for (i = 1; i <= 2; i++) { n = substr($i, 3) + 0; if (n > m) m = n } } END { print m + 0 }' "$tsv")
  [ -n "$tsv_pairs" ] && [ "$tsv_last" -ge 34 ] || { echo "$0: $tsv: no pairs of voices sv034 or later" >&2; exit 2; }
}
. "$(dirname "$0")/../../recipes/utils/parse_options.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
preset_opts "$here"
cd "$root"
exec "$root/recipes/fewshot.sh" "${opts[@]}" ${hydra[@]+"${hydra[@]}"} \
  ${pass_through_args[@]+"${pass_through_args[@]}"} ${hydra_overrides[@]+"${hydra_overrides[@]}"}
