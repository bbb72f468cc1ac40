#!/usr/bin/env bash
# Downloads the Debian packages a Python 3.11 interpreter needs on Debian 12
# (bookworm), at the versions pinned in packages.txt, into debs/ next to the
# lock. Uses the machine's own apt sources: no mirror is named here. The
# lock pins each file's sha256 and size; `mlenv lock --check` tells whether
# what was downloaded is what was locked.
#
#   examples/python-debian/fetch-debs.sh
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p debs
cd debs
want=()
while IFS= read -r spec; do
  [ -n "$spec" ] && want+=("$spec")
done < ../packages.txt
missing=()
for spec in "${want[@]}"; do
  pkg=${spec%%=*}; ver=${spec#*=}; ver=${ver#*:}
  ls "${pkg}"_*"${ver}"_*.deb >/dev/null 2>&1 || missing+=("$spec")
done
if [ ${#missing[@]} -gt 0 ]; then
  # apt-get download needs package lists that know the pinned versions: as
  # root, refresh them when they are missing or too old to have them.
  if ! apt-get download -qq "${missing[@]}" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq
    fi
    apt-get download -qq "${missing[@]}"
  fi
fi
ls -1 *.deb
