#!/usr/bin/env bash
# FVD of the same models at other sampling seeds (the report used seed 0): how much the n = 200
# FVD moves between seeds. R is the pipeline's run folder.
R=${R:-runs/moving-digits}
for m in consistency progressive; do
  for s in 1 2 3; do
    fewstep --quiet eval fid --model "$R/$m" --steps 4 --n 200 --seed $s --guidance 2 \
      --features "$R/features" --reference "run:$R/teacher:test" --json
  done
done
for s in 1 2 3; do
  fewstep --quiet eval fid --model "$R/teacher" --steps 50 --n 200 --seed $s --guidance 2 \
    --features "$R/features" --reference "run:$R/teacher:test" --json
done
