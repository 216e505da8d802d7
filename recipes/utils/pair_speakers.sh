#!/usr/bin/env bash
# pair_speakers "T1:C1 T2:C2" -> "T1,C1,T2,C2": the speakers of --pairs as one word (commas), for a
# corpus's local/data.sh given through the template's word-split --local_data_args.
pair_speakers() {
  local p out=
  for p in $1; do out+="${p%%:*},${p##*:},"; done
  printf '%s' "${out%,}"
}
