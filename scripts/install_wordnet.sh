#!/usr/bin/env bash
# Install WordNet 3.0 for tunelab's EDA augmentation (src/tunelab/augment/), offline-friendly.
#
# Why Debian's package: NLTK's `nltk.download("wordnet")` needs the internet, which the project
# machines lack; Debian's `wordnet-base` (WordNet 3.0, ~6.5 MB .deb) comes from the apt mirror.
# It puts the database in /usr/share/wordnet (data.*, index.*, *.exc, cntlist.rev) but without
# `lexnames` and `index.sense`; tunelab.augment.load_wordnet supplies the fixed WordNet 3.0
# lexnames list itself, so nothing is written next to the package's files.
#
# Idempotent: does nothing if the dict files are already there; runs `apt-get update` only when
# apt does not know the package yet. Prints the dict directory on stdout (all else on stderr):
#     export TUNELAB_WORDNET="$(bash scripts/install_wordnet.sh)"
# With --check it also loads the files with tunelab's reader and looks up one synonym.
# If TUNELAB_WORDNET is set, that directory is checked instead and nothing is installed.
set -euo pipefail

check=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install_wordnet.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

dict_dir="${TUNELAB_WORDNET:-/usr/share/wordnet}"
required=(index.noun index.verb index.adj index.adv data.noun data.verb data.adj data.adv)

have_all() {
  local f
  for f in "${required[@]}"; do [[ -s "$dict_dir/$f" ]] || return 1; done
}

if have_all; then
  echo "WordNet dict files present in $dict_dir" >&2
elif [[ -n "${TUNELAB_WORDNET:-}" ]]; then
  echo "TUNELAB_WORDNET=$TUNELAB_WORDNET lacks WordNet dict files (${required[*]});" \
       "unset it to install Debian's wordnet-base into /usr/share/wordnet" >&2
  exit 1
else
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "No apt-get here: get the WordNet 3.0 dict directory some other way and set" \
         "TUNELAB_WORDNET to it" >&2
    exit 1
  fi
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
      echo "Installing wordnet-base needs root (apt-get install wordnet-base)" >&2; exit 1
    fi
  fi
  candidate="$(apt-cache policy wordnet-base 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
    echo "apt does not know wordnet-base yet: apt-get update" >&2
    "${sudo[@]}" apt-get update >&2
  fi
  echo "Installing Debian wordnet-base ..." >&2
  start=$SECONDS
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
    wordnet-base >&2
  echo "wordnet-base installed in $((SECONDS - start)) s" >&2
  if ! have_all; then
    echo "wordnet-base is installed but $dict_dir lacks ${required[*]}" >&2
    exit 1
  fi
fi

if [[ $check -eq 1 ]]; then
  repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  python="${PYTHON:-python3}"
  PYTHONPATH="$repo_root/src${PYTHONPATH:+:$PYTHONPATH}" TUNELAB_WORDNET="$dict_dir" \
    "$python" - >&2 <<'EOF'
from tunelab.augment import get_synonyms, load_wordnet

wn = load_wordnet()
synonyms = get_synonyms("happy", wn)
assert "glad" in synonyms, synonyms
print(f"NLTK reads WordNet {wn.get_version()}: synonyms of 'happy' = {', '.join(synonyms)}")
EOF
fi

echo "$dict_dir"
