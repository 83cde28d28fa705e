#!/usr/bin/env bash
# Check the built wheel and sdist the way a user meets them: install the wheel (with the test extras) into a
# fresh virtual environment, run `opendicke --help` outside the repository, then run the test suite from the
# unpacked sdist against the installed wheel (the sdist ships tests/; the src/ layout keeps the unpacked
# sources off sys.path, so the tests import the installed package).
#
#   bash tools/check_dist.sh [DIST_DIR] [pytest arguments...]      (make dist runs it on dist/)
set -euo pipefail

dist=$(cd "${1:-dist}" && pwd)
shift || true
python=${PYTHON:-python3}
wheels=("$dist"/opendicke-*.whl)
sdists=("$dist"/opendicke-*.tar.gz)
[[ ${#wheels[@]} -eq 1 && -f ${wheels[0]} ]] || { echo "expected one wheel in $dist" >&2; exit 1; }
[[ ${#sdists[@]} -eq 1 && -f ${sdists[0]} ]] || { echo "expected one sdist in $dist" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fresh environment in $work"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "${wheels[0]}[test]"

cd "$work"
"$work/venv/bin/opendicke" --help > /dev/null
installed=$("$work/venv/bin/python" -c "import opendicke; print(opendicke.__version__)")
wheel_version=$(basename "${wheels[0]}" | cut -d- -f2)
[[ "$installed" == "$wheel_version" ]] || { echo "version mismatch: $installed vs $wheel_version" >&2; exit 1; }
echo "opendicke $installed: wheel installs, 'opendicke --help' runs"

tar xzf "${sdists[0]}" -C "$work"
cd "$work/opendicke-$installed"
location=$("$work/venv/bin/python" -c "import opendicke, pathlib; print(pathlib.Path(opendicke.__file__).parent)")
[[ "$location" == "$work/venv/"* ]] || { echo "tests would import $location, not the installed wheel" >&2; exit 1; }
OMP_NUM_THREADS=1 "$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
echo "wheel and sdist OK"
