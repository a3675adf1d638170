#!/usr/bin/env bash
# Fetch the real street video of the footage test (tests/search/test_footage_index.py): OpenCV's sample vtest.avi
# (768 x 576, 795 frames at 10 fps, people walking on a campus path; 8.1 MB), from Debian's opencv-doc package,
# which ships it under /usr/share/doc/opencv-doc/examples/data/. Debian's copyright file for opencv-doc puts it under
# "Files: *": Copyright Intel, Willow Garage, NVIDIA, AMD, OpenCV Foundation, Itseez, Xperience AI and others,
# "License: Apache-2.0 AND BSD-3-Clause". It is not committed: this script downloads the .deb with apt (about 95 MB,
# nothing installed), keeps only that file, and checks its SHA-256.
#
#   bash scripts/fetch_test_video.sh          # prints where it is: $IVT_TEST_VIDEO, or ~/.cache/ivt_hf/vtest.avi
set -euo pipefail
SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
target=${IVT_TEST_VIDEO:-${XDG_CACHE_HOME:-$HOME/.cache}/ivt_hf/vtest.avi}
if [ -f "$target" ] && echo "$SHA256  $target" | sha256sum --check --status; then
  echo "$target"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's download user (_apt) writes into it
if ! (cd "$work" && apt-get download -qq opencv-doc >/dev/null 2>&1); then
  apt-get update -qq >/dev/null
  (cd "$work" && apt-get download -qq opencv-doc >/dev/null)
fi
member=./usr/share/doc/opencv-doc/examples/data/vtest.avi
dpkg-deb --fsys-tarfile "$work"/opencv-doc_*.deb | tar -x -C "$work" "$member"
echo "$SHA256  $work/$member" | sha256sum --check --status || {
  echo "error: vtest.avi in this opencv-doc differs from the one the test was written for (SHA-256 $SHA256)" >&2
  exit 1
}
mkdir -p "$(dirname "$target")"
mv "$work/$member" "$target"
echo "$target"
