# shellcheck shell=bash
# The paper-style study design of the GPU-sized corpus recipes (egs/libritts, egs/vctk), defined once: sourced
# before the options are parsed, so each recipe's --help prints these values as the ones it passes.
# shellcheck disable=SC2034,SC2054  # (used by the sourcing recipe; commas separate values, not array elements)
paper_study=(--seeds 0,1,2 --fractions "0 0.15 0.30 0.45" --ft_steps 2000 --save_steps 250,500,1000,2000
             --n_shot 20 --n_ref 10 --n_test 10 --base_experiment base)
