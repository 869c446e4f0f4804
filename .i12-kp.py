import sys, traceback
sys.path.insert(0, "/work/wt/i12")
from tests.lab import guest_bpf
try:
    t = guest_bpf.fentry([])
    t.pop("jited", None); print(t)
except Exception:
    traceback.print_exc()
import subprocess
print(subprocess.run("grep -E 'bpf_trampoline|kct_fentry' /proc/kallsyms", shell=True, capture_output=True, text=True).stdout)
