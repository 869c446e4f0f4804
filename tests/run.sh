#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need
# (apt packages for the QEMU lab when running as root, Python packages into
# .venv), runs ruff and mypy, then pytest, lab tier included.  Extra arguments go to
# each pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(qemu-system-x86 busybox-static kmod cpio makedumpfile dwarves binutils crash mmdebstrap debian-archive-keyring)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for p in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "tests/run.sh: installing ${missing[*]}" >&2
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,docs,fleet]'
# Lint and type-check first (seconds); their config is in pyproject.toml.
.venv/bin/ruff check kcoretool tests benchmarks
.venv/bin/mypy
# The oldest drgn pyproject.toml allows (kcoretool/_drgn_required.py): the
# non-lab suite once with it, in a venv cached under ~/.cache.
floor=$(.venv/bin/python -c 'from kcoretool._drgn_required import DRGN_MINIMUM as m; print(".".join(map(str, m)))')
fvenv="${XDG_CACHE_HOME:-$HOME/.cache}/kcoretool/venv-drgn-$floor"
if [ ! -x "$fvenv/bin/python" ] || ! "$fvenv/bin/python" -c "import drgn, sys; sys.exit(drgn.__version__ != '$floor')"; then
    "$python" -m venv --clear "$fvenv"
    "$fvenv/bin/python" -m pip install -q --disable-pip-version-check "drgn==$floor" pyelftools click tabulate \
        pytest pytest-xdist hypothesis
fi
# kcoretool itself, the manual's tools (the suite builds docs/) and the fleet extra's Dask and
# pyarrow (the fleet tests run here too); drgn stays at the floor.
"$fvenv/bin/python" -m pip install -q --disable-pip-version-check "drgn==$floor" -e '.[docs,fleet]' pytest-xdist
echo "tests/run.sh: the non-lab suite with drgn $floor (the campaigns run once, below)" >&2
# The non-lab tests on two workers (pytest-xdist): they are independent
# processes' work and this machine has two cores.
"$fvenv/bin/python" -m pytest -q -m "not lab and not campaign" -p no:cacheprovider -n 2
echo "tests/run.sh: the whole suite with drgn $(.venv/bin/python -c 'import drgn; print(drgn.__version__)')" >&2
.venv/bin/python -m pytest -ra -m "not lab" -n 2 "$@"
# The lab in one process: a kernel's guest under TCG and the host's reading
# of its dumps already use both cores; two kernels' tiers side by side
# (-n 2 --dist loadgroup, which tests/lab/pytest_plugin.py schedules one
# kernel per worker) took longer than one after the other (61 min vs 59 for the whole run).
exec .venv/bin/python -m pytest -ra -m lab --durations=30 "$@"
