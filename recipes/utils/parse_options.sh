#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by recipes after they define their variables.
#   --name value   sets the existing shell variable `name` (dashes in NAME become underscores);
#   --name=value   same;
#   --help / -h    prints $help_message and exits;
#   key=value      (anything else) is collected, in order, into the array `hydra_overrides`.
# An option naming a variable that the recipe did not define is an error, so typos fail loudly.
hydra_overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      printf '%s\n' "${help_message:-no help available}"
      exit 0 ;;
    --*=*)
      _name="${1%%=*}"; _name="${_name#--}"; _name="${_name//-/_}"; _value="${1#*=}"; shift ;;
    --*)
      _name="${1#--}"; _name="${_name//-/_}"
      if [ $# -lt 2 ]; then echo "$0: option --${_name} needs a value" >&2; exit 1; fi
      _value="$2"; shift 2 ;;
    *)
      hydra_overrides+=("$1"); shift; continue ;;
  esac
  if ! declare -p "${_name}" >/dev/null 2>&1; then
    echo "$0: unknown option --${_name//_/-} (see --help)" >&2
    exit 1
  fi
  printf -v "${_name}" '%s' "${_value}"
done
unset _name _value
