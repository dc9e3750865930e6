#!/usr/bin/env bash
# Video sampling on the GPU: the moving-digits teacher at 50 guided steps vs its 4-step
# progressive student, 200 clips (wgpu/Vulkan), then the same pair at 1,000 clips.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/fewstep.xz'), open('/tmp/fewstep', 'wb'))"
chmod +x /tmp/fewstep
for n in 200 1000; do
  echo "== n $n"
  timeout 200 /tmp/fewstep --quiet --device wgpu bench sampling --teacher .gpu/md-teacher \
    --student .gpu/md-prog4 --n $n --batch 100 --json
done 2>&1 | tee "$OUT/video.txt"
