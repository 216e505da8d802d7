#!/usr/bin/env bash
# The shared few-shot corruption study (the analogue of ESPnet's tts.sh). Corpus recipes call it:
#   recipes/fewshot.sh --exp exp/synthvox --local_data egs/synthvox/local/data.sh --pairs "sv024:sv025" [key=value ...]
# Stage logic lives in Python entry points; this script only sequences them. Every finished stage
# leaves $exp/.done/stageN, so re-running skips it (delete the marker, or use --force_stage N, to redo one).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0")) $*"; }

# ---- options (each can be given as --name value) -------------------------------------------------------
stage=0                 # first stage to run
stop_stage=8            # last stage to run
force_stage=-1          # run this stage even if its .done marker exists
exp=exp/fewshot         # experiment root (everything this recipe writes goes below it)
local_data=             # corpus script for stage 1: called as `$local_data DATA_DIR $local_data_args`; writes DATA_DIR/study (+ DATA_DIR/base)
local_data_args=""      # stage 1: options for the corpus script
need_synth=false        # stage 0: require espeak-ng and flite
dictionary=             # stages 2, 4, 6: CMUdict-format file for text ids (official checkpoints: the official cmu_dictionary)
base_ckpt=              # stage 3: use this checkpoint (ours or official) instead of training a base model
base_experiment=base_small        # stage 3: Hydra experiment preset for base training
base_overrides=""       # stage 3: extra Hydra overrides for base training (space-separated)
pairs=""                # stage 4: "T1:C1 T2:C2 ..." target:intruder speaker pairs (required)
n_shot=20               # stage 4: few-shot utterances of the target
fractions="0 0.15 0.30 0.45"      # stage 4: corruption levels p
n_ref=10                # stage 4: held-out reference utterances per speaker
n_test=10               # stage 4: test texts for synthesis
selection=random        # stage 4: random | dissimilar
fewshot_seed=0          # stage 4: which utterances are drawn
jobs=2                  # stages 1-2, 4: parallel processes for data preparation
losses="l2,huber,scheduled_huber" # stage 5: comma-separated loss configs (conf/loss/)
seeds="0"               # stage 5: comma-separated fine-tuning seeds
ft_steps=2000           # stage 5: fine-tuning steps
save_steps="250,500,1000,2000"    # stage 5: checkpoints kept and evaluated (step 0, before any update, is added)
launcher=joblib         # stage 5: Hydra launcher: joblib (local) | slurm | basic
grid_jobs=1             # stages 5-6: parallel jobs (fine-tuning via the joblib launcher, synthesis), each with cores/jobs CPU threads
synth_steps=""          # stage 6: steps to synthesise and score (empty: every save step); step 0 is always added
n_timesteps=10          # stage 6: reverse-diffusion steps
temperature=1.5         # stage 6: prior temperature (official default 1.5)
length_scale=1.0        # stage 6: duration scale
vocoder=hifigan         # stage 6: hifigan | griffinlim (auto may fall back to Griffin-Lim: not for studies)
device=auto             # stages 3, 5, 6: auto | cpu | cuda
encoder=ge2e            # stage 7: ge2e | ecapa
encoder_source=         # stage 7: ECAPA model directory
results_md=             # stage 8: also refresh the generated block of this RESULTS.md (curated text is kept)
title="Resilience to corrupted few-shot data"   # stage 8: report title

help_message="Usage: $0 [--option value ...] [hydra.key=value ...]
Stages: 0 environment check, 1 data prep, 2 features, 3 base model, 4 corrupted few-shot sets,
5 fine-tuning grid (losses x p x seeds x pairs, Hydra multirun), 6 synthesis + vocoding, 7 speaker
scoring, 8 report. Remaining key=value arguments are Hydra overrides for the fine-tuning grid.
Options (defaults in brackets):
$(grep -E '^[a-z_]+=.*#' "${BASH_SOURCE[0]}" | sed -E 's/^([a-z_]+)=("[^"]*"|[^ ]*) *# *(.*)$/  --\1 [\2]  \3/')"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/utils/parse_options.sh"

[ -n "$pairs" ] || { echo "$0: --pairs \"T:C ...\" is required" >&2; exit 1; }
mkdir -p "$exp/.done"
synth_steps=${synth_steps:-$save_steps}
# Parallel jobs share the CPU cores: each gets its share of threads, numba's pool included (its
# parallel alignment kernel otherwise starts a spinning worker per core in every job: 3x slower).
job_threads=$(( $(nproc) / grid_jobs )); [ "$job_threads" -ge 1 ] || job_threads=1
if [ "$grid_jobs" -gt 1 ]; then
  export NUMBA_NUM_THREADS=$job_threads OMP_NUM_THREADS=$job_threads
fi
exp=$(cd "$exp" && pwd)
data=$exp/data

run_stage() {  # run_stage N: true when stage N is in range and not done yet
  local n=$1
  [ "$n" -ge "$stage" ] && [ "$n" -le "$stop_stage" ] || return 1
  if [ -f "$exp/.done/stage$n" ] && [ "$n" != "$force_stage" ]; then
    log "stage $n: done before ($exp/.done/stage$n), skipping"
    return 1
  fi
  return 0
}
done_stage() { touch "$exp/.done/stage$1"; log "stage $1: finished"; }

base_ckpt_file() {  # the base checkpoint: given, or the last one stage 3 saved
  if [ -n "$base_ckpt" ]; then echo "$base_ckpt"; return; fi
  ls "$exp"/base/ckpt/step_*.pt 2>/dev/null | sort | tail -n 1
}

if run_stage 0; then
  log "stage 0: environment check"
  args=()
  [ "$need_synth" = true ] && args+=(--need-synth)
  [ -n "$base_ckpt" ] && args+=(--file "$base_ckpt")
  python -m gradtts.envcheck "${args[@]}"
  done_stage 0
fi

if run_stage 1; then
  log "stage 1: data preparation ($local_data)"
  [ -n "$local_data" ] || { echo "$0: --local_data is required for stage 1" >&2; exit 1; }
  # shellcheck disable=SC2086
  bash "$local_data" "$data" $local_data_args
  python -m data_prep.validate "$data/study"
  done_stage 1
fi

if run_stage 2; then
  if [ -z "$base_ckpt" ]; then
    log "stage 2: features of the base-training data"
    python -m data_prep.features "$data/base" "$exp/feats/base" --jobs "$jobs" ${dictionary:+--dictionary "$dictionary"}
  else
    log "stage 2: nothing to do (a base checkpoint is given)"
  fi
  done_stage 2
fi

if run_stage 3; then
  if [ -n "$base_ckpt" ]; then
    log "stage 3: using the given base checkpoint $base_ckpt"
  else
    log "stage 3: training the base model ($base_experiment)"
    # shellcheck disable=SC2086
    gradtts-train experiment="$base_experiment" data.feats_dir="$exp/feats/base" trainer.out_dir="$exp/base" \
      trainer.device="$device" $base_overrides
  fi
  done_stage 3
fi

if run_stage 4; then
  log "stage 4: corrupted few-shot sets for pairs: $pairs"
  for pair in $pairs; do
    t=${pair%%:*}; c=${pair##*:}
    out=$exp/fewshot/${t}_${c}
    # shellcheck disable=SC2086
    python -m data_prep.fewshot "$data/study" "$out" --target "$t" --intruder "$c" --n "$n_shot" \
      --fractions $fractions --n-ref "$n_ref" --n-test "$n_test" --seed "$fewshot_seed" --selection "$selection"
    for set in "$out"/p*/; do
      python -m data_prep.features "$set" "${set%/}/feats" --jobs "$jobs" --no-progress \
        ${dictionary:+--dictionary "$dictionary"}
    done
  done
  done_stage 4
fi

if run_stage 5; then
  ckpt=$(base_ckpt_file)
  [ -n "$ckpt" ] || { echo "$0: no base checkpoint (run stage 3 or give --base_ckpt)" >&2; exit 1; }
  # Quoted for Hydra: an unquoted 19_26 would be read as the integer 1926.
  pair_names=$(for pair in $pairs; do printf "'%s'," "${pair%%:*}_${pair##*:}"; done)
  psets=$(for p in $fractions; do printf 'p%.2f,' "$p"; done)
  log "stage 5: fine-tuning grid: losses {$losses} x sets {${psets%,}} x seeds {$seeds} x pairs {${pair_names%,}} from $ckpt"
  launch=()
  case "$launcher" in
    joblib) launch=(hydra/launcher=joblib "hydra.launcher.n_jobs=$grid_jobs")
            [ "$grid_jobs" -gt 1 ] && launch+=("trainer.num_threads=$job_threads") ;;
    slurm) launch=(hydra/launcher=slurm) ;;
    basic) ;;
    *) echo "$0: unknown --launcher $launcher" >&2; exit 1 ;;
  esac
  # Pairs vary slowest: a grid stopped part-way leaves whole pairs (every loss, p and seed) finished.
  gradtts-train -m experiment=finetune adapt.checkpoint="$ckpt" \
    "+study.pair=${pair_names%,}" "trainer.seed=$seeds" "loss=$losses" "+study.pset=${psets%,}" \
    "data.feats_dir=$exp/fewshot/\${study.pair}/\${study.pset}/feats" \
    "trainer.out_dir='$exp/finetune/\${study.pair}/\${loss_tag:\${loss}}/\${study.pset}/seed\${trainer.seed}'" \
    "trainer.max_steps=$ft_steps" "trainer.save_steps=[0,$save_steps]" "trainer.device=$device" \
    "hydra.sweep.dir=$exp/finetune/.hydra" "hydra.sweep.subdir=\${hydra.job.num}" \
    "${launch[@]}" "${hydra_overrides[@]}"
  done_stage 5
fi

if run_stage 6; then
  log "stage 6: synthesis and vocoding ($vocoder) at steps 0,$synth_steps"
  python -m gradtts.grid synth "$exp" --steps 0 ${synth_steps//,/ } --n-timesteps "$n_timesteps" --jobs "$grid_jobs" \
    --temperature "$temperature" --length-scale "$length_scale" --vocoder "$vocoder" --device "$device" \
    ${dictionary:+--dictionary "$dictionary"}
  done_stage 6
fi

if run_stage 7; then
  log "stage 7: speaker similarity ($encoder)"
  args=(--encoder "$encoder")
  [ -n "$encoder_source" ] && args+=(--encoder-source "$encoder_source")
  python -m gradtts.grid score "$exp" "${args[@]}"
  done_stage 7
fi

if run_stage 8; then
  log "stage 8: report"
  gradtts-report root="$exp/finetune" out_dir="$exp/report" "title=$title" ${results_md:+"results_md=$results_md"}
  done_stage 8
fi
log "all requested stages finished; results in $exp/report"
