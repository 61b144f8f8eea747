#!/bin/bash
# Issue 23, item 4: a full two-chip ACS/WFC frame (synthetic _flc, 2 x 4096x2048 simulated chips,
# bench_moments.write_flc) through `cosmiq predict` with the shipped ACS-WFC-VI, reading and writing
# included, torch's default threads, one process per method: mc (T = 16, the default), moments
# (the shipped full moment pass) and the linearised moment pass with bfloat16 variances (a copy of
# the checkpoint whose "moments" section says propagation = linear).  Wall time, CPU share and peak
# resident memory from /usr/bin/time -v; the load average before and after each run.
# Run it on a quiet machine:  bash benchmarks/full_frame_methods.sh [WORKDIR]
cd "$(dirname "$0")/.."
D=${1:-/tmp/cosmiq_full_frame}; mkdir -p $D
export PYTHONPATH=$PWD:$PWD/benchmarks
if [ ! -f $D/jsynth01q_flc.fits ]; then
  .venv/bin/python -c "
import sys; sys.path.insert(0,'benchmarks')
from bench_moments import simulated, write_flc
from pathlib import Path
write_flc(Path('$D/jsynth01q_flc.fits'), simulated(4096, 2048), simulated(4096, 2048, seed=10))"
fi
.venv/bin/python -c "
from cosmiq_pyro.io.checkpoint import update_sections
from cosmiq_pyro.models.registry import PUBLISHED_DIR, load_model
from cosmiq_pyro.inference.moments import moment_settings
s = moment_settings(load_model('ACS-WFC-VI')).to_section()
s.update(propagation='linear', variance_dtype='bfloat16')
update_sections(PUBLISHED_DIR / 'ACS-WFC-VI.pth', {'moments': s}, out='$D/ACS-WFC-VI-linear.pth')"
for run in "mc:--model ACS-WFC-VI --method mc" "moments:--model ACS-WFC-VI --method moments" "linear-bf16:--model $D/ACS-WFC-VI-linear.pth --method moments"; do
  name=${run%%:*}; args=${run#*:}
  rm -rf $D/out_$name
  echo "== $name  load before: $(cut -d' ' -f1-3 /proc/loadavg)  $(date -u +%H:%M:%S)"
  /usr/bin/time -v .venv/bin/cosmiq predict $D/jsynth01q_flc.fits $args -o $D/out_$name 2> $D/time_$name.txt | tail -2
  grep -E "Elapsed|Maximum resident|Percent of CPU" $D/time_$name.txt
  echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"
done
