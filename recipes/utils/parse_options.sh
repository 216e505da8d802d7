#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by recipes after they define their variables.
#   --name value   sets the recipe variable `name` (dashes in NAME become underscores);
#   --name=value   same;
#   --help / -h    prints $help_message and exits, or, in a script that defines a function
#                  `parse_options_help() {` (at the start of a line, above the line that sources this file),
#                  calls it and exits: it runs after the options before --help are set, so it can print
#                  the values in effect (the template prints what a corpus recipe passes as its defaults);
#   key=value      (anything else) is collected, in order, into the array `hydra_overrides`.
# Only the recipe's declared options can be set: the variables the sourcing script assigns at the start of a
# line (`name=default`) above the line that sources this file; an array (`name=(...)`) is no option. Any
# other name (a typo, or PATH, IFS, HOME, a variable of this parser) is an error that names it, and nothing
# is changed. An empty value (`--name ""` or `--name=`) sets the option to the empty string.
#
# Pass-through mode, for a script in front of another recipe (egs/<corpus>/run.sh before recipes/fewshot.sh):
# a script that sets `parse_options_pass_through=true` before sourcing this file gets every option it does not
# declare collected, in order and as given (`--name value` or `--name=value`), into the array
# `pass_through_args` instead of refused. It hands them (and `hydra_overrides`) on to the next script, whose
# own parser refuses the names that are not its options, so a typo still stops the run.
hydra_overrides=()
pass_through_args=()

# The declared options, read from the sourcing script's text (never from the environment).
_caller="${BASH_SOURCE[1]:-}"
_caller_line="${BASH_LINENO[0]:-0}"
if [ -z "${_caller}" ] || [ ! -f "${_caller}" ]; then
  echo "$0: parse_options.sh must be sourced by a recipe script (its option defaults are read from that file)" >&2
  exit 1
fi
_head="$(head -n "$((_caller_line > 0 ? _caller_line - 1 : 0))" "${_caller}")"
_declared=" $(sed -nE 's/^([A-Za-z_][A-Za-z0-9_]*)=([^(].*)?$/\1/p' <<< "${_head}" \
  | grep -vxE 'help_message|hydra_overrides|parse_options_pass_through' | tr '\n' ' ')"
# Pass-through is opted into in the script's text too, so an exported variable cannot switch it on.
_pass_through=
if [ "${parse_options_pass_through:-}" = true ] \
   && grep -qE '^parse_options_pass_through=true([[:space:]]+#.*)?$' <<< "${_head}"; then
  _pass_through=1
fi
# The help function, likewise only when the script's text defines it (a function exported into the
# environment is not the script's help).
_help_fn=
if declare -F parse_options_help > /dev/null && grep -qE '^parse_options_help\(\) *\{' <<< "${_head}"; then
  _help_fn=1
fi

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if [ -n "${_help_fn}" ]; then parse_options_help; else printf '%s\n' "${help_message:-no help available}"; fi
      exit 0 ;;
    --*=*)
      _given="${1%%=*}"; _name="${_given#--}"; _name="${_name//-/_}"; _value="${1#*=}"; _joined=1; shift ;;
    --*)
      _given="$1"; _name="${1#--}"; _name="${_name//-/_}"; _joined=
      if [ $# -lt 2 ]; then echo "$0: option --${_name} needs a value" >&2; exit 1; fi
      _value="$2"; shift 2 ;;
    *)
      hydra_overrides+=("$1"); shift; continue ;;
  esac
  if [[ ! "${_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [[ "${_declared}" != *" ${_name} "* ]]; then
    if [ -n "${_pass_through}" ]; then
      if [ -n "${_joined}" ]; then pass_through_args+=("${_given}=${_value}"); else pass_through_args+=("${_given}" "${_value}"); fi
      continue
    fi
    echo "$0: unknown option ${_given} (not one of this recipe's options; see --help)" >&2
    exit 1
  fi
  printf -v "${_name}" '%s' "${_value}"
done
unset _given _name _value _joined _caller _caller_line _declared _head _pass_through _help_fn
